"""Perplexity of a text under an LM, and per-sentence scores.

Perplexity is ``exp(-sum log P / tokens)`` where tokens are the words plus one
``</s>`` per sentence (the PTB convention: 82,430 tokens on ``ptb.test.txt``).
Unknown words follow one default across ``eval``, ``interpolate`` and
``rescore``, :class:`~rescorer.ngram.mixture.OovPolicy` ``share``: a text token
spelled as the unknown word (``<unk>``, as in PTB) gets the LM's full
unknown-word probability; a word outside the vocabulary gets that probability
divided among 10,000 unseen types (``ln P(<unk>|h) - ln 10^4``), is counted as
a token and reported as ``oov``.

The per-sentence file has one line per sentence, ``<key> <cost>``, with
``cost = -ln P(w_1 .. w_n </s> | <s>)`` (natural log, like Kaldi's LM costs);
the key is the utterance id (Kaldi text) or the line number (plain text).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from rescorer.pack.checkpoint import LoadedLM
from rescorer.fileio import read_sentences
from rescorer.errors import AdmmqError, PathLike
from rescorer.fileio import atomic_open, check_writable
from rescorer.ngram.mixture import MixtureScorer, OovPolicy
from rescorer.perplexity import format_ppl, perplexity_from
from rescorer.lm.scoring import NeuralScorer
from rescorer.nbest.recordings import CarryOver, text_context


@dataclass
class Perplexity:
    ppl: float
    logprob: float  # total natural-log probability
    tokens: int  # words + sentences
    words: int
    sentences: int
    oov: int

    @property
    def oov_rate(self) -> float:
        return self.oov / self.words if self.words else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["oov_rate"] = self.oov_rate
        return d

    def summary(self) -> str:
        return (f"ppl {format_ppl(self.ppl)}  logprob {self.logprob:.1f}  {self.words} words + "
                f"{self.sentences} </s> = {self.tokens} tokens  oov {self.oov} ({100 * self.oov_rate:.2f}%)")


def evaluate_text(lm: LoadedLM, path: PathLike, fmt: str = "plain", batch_tokens: int = 8192,
                  per_sentence: Optional[PathLike] = None, oov: Optional[OovPolicy] = None,
                  carry: Optional[CarryOver] = None) -> Perplexity:
    """Perplexity of the text file ``path``; optionally write per-sentence costs.

    Unknown words cost what ``oov`` says (default :class:`OovPolicy`: ``share``), as in a mixture.
    """
    scorer = MixtureScorer([NeuralScorer(lm.model, lm.units, batch_tokens=batch_tokens)], [1.0],
                           oov or OovPolicy(), names=[lm.path], kinds=["lstm"])
    return evaluate_scorer(scorer, path, fmt, per_sentence, carry)


def evaluate_scorer(scorer, path: PathLike, fmt: str = "plain", per_sentence: Optional[PathLike] = None,
                    carry: Optional[CarryOver] = None) -> Perplexity:
    """Perplexity of ``path`` under any scorer with ``.score(sentences) -> WordScores`` (LSTM, n-gram, mixture).

    ``oov`` counts the words the scorer flags (for a mixture: words no component knows).  ``carry``:
    each sentence's LSTM state starts where the sentence before it in its chain left it (the text's own
    words; :func:`rescorer.nbest.recordings.text_context`).
    """
    if per_sentence is not None:
        check_writable(per_sentence)
    sents = read_sentences(path, fmt)
    context = text_context([s.key for s in sents], [s.words for s in sents], carry or CarryOver(), str(path))
    if context is not None and not getattr(scorer, "uses_context", False):
        raise AdmmqError(f"--carry-over {carry.mode} carries an LSTM's state: give an LSTM (--lm)")
    scores = scorer.score([s.words for s in sents]) if context is None else \
        scorer.score([s.words for s in sents], context=context)
    totals = scores.totals()
    logprob = float(totals.sum())
    words = int(sum(len(s.words) for s in sents))
    result = Perplexity(ppl=perplexity_from(logprob, words + len(sents)), logprob=logprob,
                        tokens=words + len(sents), words=words, sentences=len(sents), oov=int(scores.oov.sum()))
    if per_sentence is not None:
        with atomic_open(per_sentence) as fh:
            for s, lp in zip(sents, totals):
                fh.write(f"{s.key} {-lp:.6f}\n")
    return result
