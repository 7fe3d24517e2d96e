import gzip

import pytest

from rescorer.corpus import encode_sentences, read_sentences
from rescorer.errors import AdmmqError, FormatError
from rescorer.vocab import Vocab


def test_plain_and_kaldi_formats(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(" a b \n\n c \r\n")
    s = read_sentences(p)
    assert [(x.key, x.words) for x in s] == [("1", ("a", "b")), ("3", ("c",))]
    k = tmp_path / "text"
    k.write_text("u1 a b\nu2\n")
    s = read_sentences(k, "kaldi")
    assert [(x.key, x.words) for x in s] == [("u1", ("a", "b")), ("u2", ())]


def test_gzip_is_read_transparently(tmp_path):
    p = tmp_path / "t.txt.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("a b\nc\n")
    assert [x.words for x in read_sentences(p)] == [("a", "b"), ("c",)]


def test_errors(tmp_path):
    with pytest.raises(AdmmqError, match="no such file"):
        read_sentences(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(AdmmqError, match="no sentences"):
        read_sentences(empty)
    dup = tmp_path / "text"
    dup.write_text("u1 a\nu1 b\n")
    with pytest.raises(FormatError, match=r"text:2: utterance id 'u1' already used on line 1"):
        read_sentences(dup, "kaldi")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nbad \xff\xfe bytes\n")
    with pytest.raises(FormatError, match=r"bad.txt:2: not valid UTF-8"):
        read_sentences(bad)


def test_encoding_counts_oov():
    v = Vocab.build([["a", "b"]])
    c = encode_sentences(v, [["a", "x"], [], ["b"]])
    assert len(c) == 3 and c.words == 3 and c.oov == 1 and c.tokens == 3 + 3
    assert c.sentence(0).tolist() == [v.index("a"), v.unk_id] and c.sentence(1).size == 0
