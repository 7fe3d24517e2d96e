"""Recognise one utterance with pocketsphinx and build its scored n-best list.

pocketsphinx (PyPI ``pocketsphinx>=5``) with its bundled default models:
``en-us`` acoustic model, ``cmudict-en-us.dict``, ``en-us.lm.bin`` trigram,
default decoder settings, a fresh decoder per utterance (no state carried
across utterances, so results do not depend on order or job split).

The n-best list: rank 1 is the decoder's own hypothesis (``Decoder.hyp()``);
then ``Decoder.nbest()`` (A* over the word lattice) in its own order, each
entry cleaned (fillers, sentence markers, variant marks removed) and kept when
its word sequence is new, until ``nbest`` distinct sequences or ``max_raw``
entries.  Scores per hypothesis, as Kaldi costs (negated natural log):

* ``acwt``: the best lattice path spelling it (:mod:`.lattice`), no LM,
  silence or filler penalty;
* ``lm``: −ln P(w1 … wn </s> | <s>) under the decoder's trigram (with
  back-off), on the decoder's word forms, no language weight or insertion
  penalty.

Finally hypotheses are mapped to PTB tokens and a later entry identical to an
earlier one is dropped.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Set, Tuple

import numpy as np

from rescorer.errors import AdmmqError
from rescorer.synth.lattice import clean_hypothesis, read_lattice
from rescorer.synth.spoken import to_ptb


@dataclass
class Hypothesis:
    """One n-best entry: PTB tokens and its two costs."""

    words: Tuple[str, ...]
    acwt: float
    lm: float


@dataclass
class DecodeResult:
    """The scored n-best list of one utterance and what was dropped on the way."""

    hypotheses: List[Hypothesis]
    raw_entries: int = 0
    not_in_lattice: int = 0
    same_after_mapping: int = 0
    frames: int = 0
    notes: List[str] = field(default_factory=list)


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise AdmmqError("pocketsphinx is not installed (pip install 'admmq[synth]' or pip install pocketsphinx)") \
            from None
    return pocketsphinx


def decoder(rate: int):
    """A fresh pocketsphinx decoder with the default models at ``rate`` Hz, logging off."""
    ps = _pocketsphinx()
    return ps.Decoder(samprate=rate, loglevel="FATAL")


def dictionary_words() -> Set[str]:
    """The words of pocketsphinx's default pronunciation dictionary (variants folded)."""
    ps = _pocketsphinx()
    path = Path(ps.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                word = line.split(None, 1)[0]
                words.add(word.split("(", 1)[0] if word.endswith(")") else word)
    return words


def lm_cost(lm, words: Sequence[str], order: int) -> float:
    """−ln P(w1 … wn </s> | <s>) under a pocketsphinx ``NGramModel`` of the given order.

    ``NGramModel.prob`` takes the word followed by its history, most recent first,
    and returns a log score in base 1.0001.
    """
    seq = ["<s>", *words, "</s>"]
    total = 0
    for i in range(1, len(seq)):
        context = seq[max(0, i - order + 1):i + 1]
        total += lm.prob(context[::-1])
    return -total * math.log(1.0001)


def decode(samples: np.ndarray, rate: int, nbest: int = 100, max_raw: int = 5000) -> DecodeResult:
    """Recognise (n,) int16 audio and return its scored, PTB-tokenized n-best list."""
    dec = decoder(rate)
    dec.start_utt()
    dec.process_raw(samples.astype("<i2").tobytes(), full_utt=True)
    dec.end_utt()
    result = DecodeResult([], frames=dec.n_frames())
    best = dec.hyp()
    seqs: List[Tuple[str, ...]] = [clean_hypothesis(best.hypstr)] if best is not None else [()]
    seen = set(seqs)
    if best is not None:
        for entry in dec.nbest():
            if len(seqs) >= nbest or result.raw_entries >= max_raw:
                break
            result.raw_entries += 1
            words = clean_hypothesis(entry.hypstr)
            if words not in seen:
                seen.add(words)
                seqs.append(words)
    lattice = dec.get_lattice()
    if lattice is None:
        acoustic = [None] * len(seqs)
        result.notes.append("no lattice")
    else:
        with tempfile.TemporaryDirectory(prefix="admmq-lat-") as tmp:
            path = os.path.join(tmp, "utt.lat")
            lattice.write(path)
            acoustic = read_lattice(path).acoustic_costs(seqs)
    lm = dec.get_lm()
    order = lm.size()
    mapped = set()
    for words, ac in zip(seqs, acoustic):
        if ac is None:
            result.not_in_lattice += 1
            continue
        ptb = tuple(to_ptb(words))
        if ptb in mapped:
            result.same_after_mapping += 1
            continue
        mapped.add(ptb)
        result.hypotheses.append(Hypothesis(ptb, ac, lm_cost(lm, words, order)))
    return result
