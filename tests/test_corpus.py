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


def test_kaldi_text_notice_on_real_kaldi_text_and_not_on_plain_text(tmp_path):
    from rescorer.corpus import kaldi_text_notice
    from tests.conftest import NBEST_DIR, PTB_DIR

    ptb = PTB_DIR / "ptb.valid.txt.gz"
    vocab = Vocab.build(s.words for s in read_sentences(PTB_DIR / "ptb.train.txt.gz"))
    kaldi = NBEST_DIR / "dev" / "text.gz"  # real ptb-tts references: 'rms_d0001 the point is ...'
    for known in (None, lambda w: w in vocab):
        note = kaldi_text_notice(kaldi, known)
        assert note is not None and "'rms_d0001'" in note and "on 120 of the first 120 lines" in note  # all its lines
        assert "--text-format kaldi" in note and len(note.splitlines()) == 1
        assert kaldi_text_notice(ptb, known) is None
    # ids the LM knows, repeated first fields, ids without digits, or only a minority of id-like lines: no notice
    cases = {"known": "u1 a b\nu2 c d\n", "repeated": "u1 a\nu1 b\n", "no digit": "ua a\nub b\n",
             "minority": "u1 a\nthe b\nthe c\n"}
    for name, text in cases.items():
        p = tmp_path / name.replace(" ", "_")
        p.write_text(text)
        known = (lambda w: w in {"u1", "u2"}) if name == "known" else None
        assert kaldi_text_notice(p, known) is None, name
    p = tmp_path / "two"
    p.write_text("u1 a b\nu2 c d\n")
    assert kaldi_text_notice(p) is not None
