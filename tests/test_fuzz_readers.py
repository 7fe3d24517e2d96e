"""Bad input at scale: randomly corrupted n-best, archive, ARPA, text, symbol-table and packed files.

Each reader gets a valid file with random corruptions (bytes flipped,
inserted or deleted, truncation, lines duplicated or swapped, CRLF, non-UTF-8
bytes).  It must either read the file or raise :class:`AdmmqError` with a
one-line message — never another exception.  Then the documented edge cases:
1000-best lists, 500-word hypotheses, empty hypotheses, CRLF files, duplicate keys.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescorer.ngram.arpa_reader import read_arpa
from rescorer.errors import AdmmqError
from rescorer.nbest.kaldi_archive import SCALAR, read_archive, write_archive
from rescorer.nbest.kaldi_dir import read_nbest, read_symbol_table
from rescorer.nbest.lists import read_nbest_file
from rescorer.pack.bitpack import parse_bits
from rescorer.pack.lm_file import export_packed, read_packed
from rescorer.nbest.wer import read_text
from tests.conftest import NBEST_DIR
from tests.ngram_fixtures import TINY_ARPA
from tests.packed_models import make_quantized_checkpoint

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _nbest_file_bytes() -> bytes:
    with gzip.open(NBEST_DIR / "test" / "words_text.gz", "rt", encoding="utf-8") as fh:
        words = [next(fh) for _ in range(12)]
    with gzip.open(NBEST_DIR / "test" / "acwt.gz", "rt", encoding="utf-8") as fh:
        ac = [next(fh).split()[1] for _ in range(12)]
    lines = ["# admmq-nbest costs: acwt lmwt.nolm\n"]
    for w, a in zip(words, ac):
        key, *ws = w.split()
        lines.append(" ".join([key, a, "1.5"] + ws) + "\n")
    return "".join(lines).encode()


def _gz_head(name: str, n: int) -> bytes:
    with gzip.open(NBEST_DIR / "test" / name, "rb") as fh:
        return b"".join(next(fh) for _ in range(n))


SEEDS = {
    "nbest": _nbest_file_bytes(),
    "archive": _gz_head("acwt.gz", 12),
    "text": _gz_head("text.gz", 6),
    "symbols": _gz_head("words.txt.gz", 30),
    "arpa": TINY_ARPA.encode(),
}

corruption = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate", "dup_line", "swap_lines",
                                                  "crlf", "latin1", "nul"]),
                                 st.integers(0, 10**6), st.binary(min_size=1, max_size=6)),
                      min_size=1, max_size=4)


def corrupt(data: bytes, ops) -> bytes:
    for op, pos, blob in ops:
        n = max(len(data), 1)
        i = pos % n
        if op == "flip":
            data = data[:i] + bytes([data[i] ^ (1 << (pos % 8))]) + data[i + 1:] if data else blob
        elif op == "insert":
            data = data[:i] + blob + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + len(blob):]
        elif op == "truncate":
            data = data[:i]
        elif op in ("dup_line", "swap_lines"):
            lines = data.splitlines(keepends=True)
            if len(lines) >= 2:
                j = pos % len(lines)
                k = (j + 1 + len(blob)) % len(lines)
                if op == "dup_line":
                    lines.insert(k, lines[j])
                else:
                    lines[j], lines[k] = lines[k], lines[j]
                data = b"".join(lines)
        elif op == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif op == "latin1":
            data = data[:i] + b"\xe9\xff" + data[i:]
        elif op == "nul":
            data = data[:i] + b"\x00" + data[i:]
    return data


def must_read_or_fail_cleanly(fn, path: Path) -> None:
    try:
        fn(path)
    except AdmmqError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, repr(msg)


READERS = {
    "nbest": read_nbest_file,
    "archive": lambda p: read_archive(p, SCALAR),
    "text": read_text,
    "symbols": read_symbol_table,
    "arpa": read_arpa,
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_corrupted_files_give_admmq_errors_only(kind, tmp_path):
    @FUZZ
    @given(ops=corruption)
    def check(ops):
        path = tmp_path / kind
        path.write_bytes(corrupt(SEEDS[kind], ops))
        must_read_or_fail_cleanly(READERS[kind], path)

    check()


def test_corrupted_binary_archives_and_packed_files(tmp_path):
    write_archive(tmp_path / "ark", [(f"u-{i}", float(i) * 1.5) for i in range(1, 9)], SCALAR, binary=True)
    make_quantized_checkpoint(tmp_path / "c.pt", ["a", "b", "c", "d"], "ternary", "layer", dim=6)
    export_packed(tmp_path / "c.pt", tmp_path / "q.pt", parse_bits("2"))
    seeds = {"ark": (tmp_path / "ark").read_bytes(), "q.pt": (tmp_path / "q.pt").read_bytes()}
    readers = {"ark": lambda p: read_archive(p, SCALAR), "q.pt": read_packed}

    @FUZZ
    @given(ops=corruption, which=st.sampled_from(sorted(seeds)))
    def check(ops, which):
        ops = [(op, pos, blob) for op, pos, blob in ops if op not in ("crlf", "dup_line", "swap_lines")]
        path = tmp_path / f"fuzz-{which}"
        path.write_bytes(corrupt(seeds[which], ops))
        must_read_or_fail_cleanly(readers[which], path)

    check()


# ------------------------------------------------------------ documented edge cases
def _write_nbest(path: Path, rows, crlf: bool = False) -> Path:
    nl = "\r\n" if crlf else "\n"
    path.write_text(nl.join(f"{k} {a} {g} {' '.join(w)}".rstrip() for k, a, g, w in rows) + nl, newline="")
    return path


def test_thousand_best_lists_of_long_and_empty_hypotheses(tmp_path):
    long_words = tuple(f"w{i % 97}" for i in range(500))
    rows = [(f"utt1-{n}", 10.0 + n, 2.0, long_words[: n % 3 * 250]) for n in range(1, 1001)]
    rows += [(f"utt2-{n}", 1.0, 1.0, ()) for n in range(1, 4)]  # only empty hypotheses: kept, warned
    nb = read_nbest_file(_write_nbest(tmp_path / "nb", rows))
    assert nb.num_utterances == 2 and len(nb) == 1003
    assert max(len(w) for w in nb.words) == 500 and nb.words[nb.offsets[1]] == ()
    assert nb.all_empty == 1 and "only empty hypotheses" in nb.warnings[0]
    crlf = read_nbest_file(_write_nbest(tmp_path / "nb_crlf", rows, crlf=True))
    assert crlf.words == nb.words and (crlf.costs["acwt"] == nb.costs["acwt"]).all()


def test_duplicate_keys_and_non_utf8_name_the_line(tmp_path):
    rows = [("u-1", 1.0, 1.0, ("a",)), ("u-2", 1.0, 1.0, ("b",)), ("u-1", 2.0, 1.0, ("c",))]
    with pytest.raises(AdmmqError, match=r"nb:3: .*appears twice"):
        read_nbest_file(_write_nbest(tmp_path / "nb", rows))
    (tmp_path / "bad").write_bytes(b"u-1 1 1 a\nu-2 1 1 caf\xe9\n")
    with pytest.raises(AdmmqError, match=r"bad:2: not valid UTF-8"):
        read_nbest(tmp_path / "bad")
