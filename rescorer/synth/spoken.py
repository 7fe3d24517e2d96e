"""PTB tokens <-> spoken words, and the choice of sentences to synthesize.

Mikolov's PTB text splits clitics off (``do n't``, ``marshall 's``); a TTS
voice and a recogniser's dictionary want them joined (``don't``,
``marshall's``).  :func:`to_spoken` joins them for the synthesizer and the
eligibility check; :func:`to_ptb` maps a recogniser's word forms back to PTB
tokens so hypotheses and references share one text space (lowercase, clitics
split), the space a PTB-trained LM scores.

Eligible sentences (the rule the shipped ``data/ptb-tts`` lists were made
with): 6–25 tokens, no ``<unk>``, no ``N`` (PTB's number token), every spoken
word in the recogniser's pronunciation dictionary, exact duplicate lines kept
once.  :func:`select_sentences` samples them with Python's
``random.Random(seed).sample`` and returns them in line order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Container, Iterable, List, Sequence, Tuple

# clitics PTB splits off a word; "n't" needs the special cases below
CLITICS = ("'s", "'re", "'ve", "'d", "'ll", "'m")
# spoken contraction -> PTB tokens, where the stem changes
SPECIAL_NT = {"can't": ("ca", "n't"), "won't": ("wo", "n't"), "ain't": ("ai", "n't")}
_SPECIAL_JOIN = {v: k for k, v in SPECIAL_NT.items()}


def to_spoken(tokens: Sequence[str]) -> List[str]:
    """PTB tokens -> spoken words: ``do n't`` -> ``don't``, ``ca n't`` -> ``can't``, ``x 's`` -> ``x's``.

    A clitic at the start of a sentence (nothing to join to) stays a word.
    """
    out: List[str] = []
    for tok in tokens:
        if out and tok == "n't":
            out[-1] = _SPECIAL_JOIN.get((out[-1], tok), out[-1] + tok)
        elif out and tok in CLITICS:
            out[-1] = out[-1] + tok
        else:
            out.append(tok)
    return out


def to_ptb(words: Iterable[str]) -> List[str]:
    """Recogniser words -> PTB tokens: lowercase, ``can't`` -> ``ca n't``, ``x's`` -> ``x 's``, ...

    The inverse of :func:`to_spoken` on lowercase text; other words are unchanged.
    """
    out: List[str] = []
    for word in words:
        w = word.lower()
        if w in SPECIAL_NT:
            out.extend(SPECIAL_NT[w])
        elif w.endswith("n't") and len(w) > 3:
            out.extend((w[:-3], "n't"))
        else:
            for c in CLITICS:
                if w.endswith(c) and len(w) > len(c):
                    out.extend((w[:-len(c)], c))
                    break
            else:
                out.append(w)
    return out


@dataclass(frozen=True)
class Sentence:
    """One selected sentence: its 1-based line number in the source text and its PTB tokens."""

    line: int
    tokens: Tuple[str, ...]

    @property
    def spoken(self) -> str:
        return " ".join(to_spoken(self.tokens))


def is_eligible(tokens: Sequence[str], dictionary: Container[str], min_tokens: int = 6,
                max_tokens: int = 25) -> bool:
    """6..25 tokens, no ``<unk>`` or ``N``, every spoken word in ``dictionary``."""
    if not min_tokens <= len(tokens) <= max_tokens:
        return False
    if "<unk>" in tokens or "N" in tokens:
        return False
    return all(w in dictionary for w in to_spoken(tokens))


def eligible_sentences(lines: Iterable[str], dictionary: Container[str], min_tokens: int = 6,
                       max_tokens: int = 25) -> List[Sentence]:
    """The eligible lines of a PTB text, in line order, exact duplicates after the first dropped."""
    seen = set()
    out = []
    for lineno, line in enumerate(lines, start=1):
        tokens = tuple(line.split())
        if tokens in seen or not is_eligible(tokens, dictionary, min_tokens, max_tokens):
            continue
        seen.add(tokens)
        out.append(Sentence(lineno, tokens))
    return out


def select_sentences(eligible: Sequence[Sentence], count: int, seed: int) -> List[Sentence]:
    """``Random(seed).sample(eligible, count)`` in line order (all of them when count >= len)."""
    if count >= len(eligible):
        return list(eligible)
    chosen = random.Random(seed).sample(list(eligible), count)
    return sorted(chosen, key=lambda s: s.line)


def utterance_id(voice: str, letter: str, index: int) -> str:
    """``<voice>_<letter><4-digit index>``, e.g. ``rms_d0001`` (index is 1-based)."""
    return f"{voice}_{letter}{index:04d}"
