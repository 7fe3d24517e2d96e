"""Fixtures for the n-gram tests: a hand-written ARPA file and a small back-off estimator.

``TINY_ARPA`` is a trigram whose every probability can be computed by hand
(see ``TINY_EXPECTED``).  :func:`backoff_arpa` (from :mod:`bench.toy_lms`) writes a
*normalised* back-off model for any toy corpus and order — a test oracle for the
ARPA back-off definition, not an LM estimator for users.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Tuple

from bench.toy_lms import backoff_arpa  # noqa: F401 (re-exported)

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
