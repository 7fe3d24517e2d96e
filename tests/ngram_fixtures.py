"""Fixtures for the n-gram tests: a hand-written ARPA file and a small back-off estimator.

``TINY_ARPA`` is a trigram whose every probability can be computed by hand
(see ``TINY_EXPECTED``).  :func:`backoff_arpa` writes a *normalised* back-off
model (absolute discounting, back-off weights computed so that every
distribution sums to one) for any toy corpus and order — a test oracle for the
ARPA back-off definition, not an LM estimator for users.
"""

from __future__ import annotations

import math
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

TINY_ARPA = """\
\\data\\
ngram 1=6
ngram 2=4
ngram 3=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-0.6\t</s>
-0.5\ta\t-0.3
-0.7\tb\t-0.2
-0.9\tc

\\2-grams:
-0.3\t<s> a\t-0.1
-0.4\ta b\t-0.25
-0.2\tb </s>
-0.5\ta c

\\3-grams:
-0.1\t<s> a b
-0.15\ta b </s>

\\end\\
"""

# log10 scores of each word and </s>, worked out by hand from TINY_ARPA with the ARPA back-off rule
TINY_EXPECTED: List[Tuple[List[str], List[float]]] = [
    # "<s> a" and "<s> a b" and "a b </s>" are all listed
    (["a", "b"], [-0.3, -0.1, -0.15]),
    # c | <s> a: no "<s> a c" -> bo(<s> a) + p(c | a) = -0.1 - 0.5
    # b | a c:   no "a c b", "a c" has no back-off (0); no "c b", bo(c) = 0 -> p(b) = -0.7
    # </s> | c b: "c b" unlisted history (0) -> p(</s> | b) = -0.2
    (["a", "c", "b"], [-0.3, -0.6, -0.7, -0.2]),
    # c | <s>: bo(<s>) + p(c) = -0.5 - 0.9; a | <s> c: unlisted history, p(a | c) = bo(c) + p(a) = -0.5
    # b | c a: p(b | a) = -0.4; b | a b: bo(a b) + bo(b) + p(b) = -0.25 - 0.2 - 0.7
    (["c", "a", "b", "b"], [-1.4, -0.5, -0.4, -1.15, -0.2]),
    # an unknown word is <unk>: bo(<s>) + p(<unk>) = -0.5 - 1.0
    (["zz", "a", "b"], [-1.5, -0.5, -0.4, -0.15]),
    # the empty sentence: p(</s> | <s>) = bo(<s>) + p(</s>)
    ([], [-1.1]),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def backoff_arpa(sentences: Sequence[Sequence[str]], order: int, discount: float = 0.5) -> str:
    """A normalised back-off ARPA model of ``sentences`` (closed vocabulary: no ``<unk>``).

    p(w|h) = (c(h w) - D) / c(h) for listed n-grams; bo(h) makes every
    conditional distribution over the vocabulary plus ``</s>`` sum to one.
    Raises ValueError when a history has seen every word (no mass left to back off to).
    """
    counts: List[Dict[Tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]
    for s in sentences:
        toks = ["<s>"] + list(s) + ["</s>"]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                gram = tuple(toks[i:i + n])
                if n == 1 and gram == ("<s>",):
                    continue
                if n > 1 and "<s>" in gram[1:]:
                    continue
                counts[n][gram] += 1
    vocab = sorted(w for (w,) in counts[1])  # words and </s>
    total = sum(counts[1].values())
    prob: List[Dict[Tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    bow: List[Dict[Tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    for (w,), c in counts[1].items():
        prob[1][(w,)] = c / total

    def p(w: str, h: Tuple[str, ...]) -> float:
        if (h + (w,)) in prob[len(h) + 1]:
            return prob[len(h) + 1][h + (w,)]
        if not h:
            return 0.0
        return bow[len(h)].get(h, 1.0) * p(w, h[1:])

    for n in range(2, order + 1):
        ctx_count: Dict[Tuple[str, ...], int] = defaultdict(int)
        followers: Dict[Tuple[str, ...], List[str]] = defaultdict(list)
        for gram, c in counts[n].items():
            ctx_count[gram[:-1]] += c
            followers[gram[:-1]].append(gram[-1])
        for gram, c in counts[n].items():
            prob[n][gram] = (c - discount) / ctx_count[gram[:-1]]
        for h, ws in followers.items():
            left = discount * len(ws) / ctx_count[h]
            lower = 1.0 - sum(p(w, h[1:]) for w in ws)
            if lower <= 1e-9:
                raise ValueError(f"history {h} has seen every word")
            bow[n - 1][h] = left / lower
    lines = ["\\data\\"]
    listed = [None] + [sorted(prob[n]) for n in range(1, order + 1)]
    listed[1] = [("<s>",)] + listed[1]
    for n in range(1, order + 1):
        lines.append(f"ngram {n}={len(listed[n])}")
    for n in range(1, order + 1):
        lines += ["", f"\\{n}-grams:"]
        for gram in listed[n]:
            lp = -99.0 if gram == ("<s>",) else math.log10(prob[n][gram])
            entry = f"{lp:.10f}\t{' '.join(gram)}"
            if n < order and gram in bow[n]:
                entry += f"\t{math.log10(bow[n][gram]):.10f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    assert vocab  # the model covers these words (and </s>)
    return "\n".join(lines)


def estimation_tools() -> List[str]:
    """The real n-gram estimators make_4gram.sh can use here: 'lmplz' (PATH or its build cache), 'irstlm'."""
    import os

    tools = []
    cache = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "admmq/kenlm/bin/lmplz"
    if shutil.which("lmplz") or os.access(cache, os.X_OK):
        tools.append("lmplz")
    if os.access(os.path.join(os.environ.get("IRSTLM", "/usr/lib/irstlm"), "bin", "tlm"), os.X_OK):
        tools.append("irstlm")
    return tools
