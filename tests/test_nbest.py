import gzip
import struct

import kaldiio
import numpy as np
import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.errors import AdmmqError, FormatError, MismatchError
from rescorer.nbest.kaldi_archive import INT_VECTOR, SCALAR, read_archive, write_archive
from rescorer.nbest.kaldi_dir import read_nbest, read_nbest_dir, write_nbest_dir
from rescorer.nbest.lists import read_nbest_file, split_key, write_nbest_file
from tests.conftest import NBEST_DIR

# 3 utterances; one id contains '-' like Switchboard's; ranks out of order in the files; one empty hypothesis
SYMS = ["<eps>", "the", "cat", "sat", "on", "mat", "a", "hat"]
HYPS = [  # key, words, acwt, lmwt.withlm, lmwt.nolm
    ("sw_02001-A_000098-001027-2", "the cat sat on a mat", 120.5, 30.25, 1.5),
    ("sw_02001-A_000098-001027-1", "the cat sat on the mat", 118.0, 28.0, 1.0),
    ("en_4156-1", "a hat", 50.0, 12.0, 0.0),
    ("en_4156-2", "", 55.0, 4.0, 0.0),
    ("en_4156-3", "a cat", 49.0, 14.5, 0.5),
    ("sw_3-1", "mat", 10.0, 9.0, 0.25),
]


def write_kaldi_dir(d, hyps=HYPS, with_ali=True):
    """The text-archive layout lmrescore_nbest.sh leaves (words, words_text, acwt, lmwt.*, words.txt, ali)."""
    d.mkdir(parents=True, exist_ok=True)
    ids = {w: i for i, w in enumerate(SYMS)}
    (d / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in ids.items()))
    (d / "words").write_text("".join(f"{k} {''.join(f'{ids[w]} ' for w in ws.split())}\n" for k, ws, *_ in hyps))
    (d / "words_text").write_text("".join(f"{k} {ws}\n".replace(" \n", "\n") for k, ws, *_ in hyps))
    for name, col in (("acwt", 2), ("lmwt.withlm", 3), ("lmwt.nolm", 4)):
        (d / name).write_text("".join(f"{h[0]} {h[col]} \n" for h in hyps))
    if with_ali:
        (d / "ali").write_text("".join(f"{h[0]} 3 3 4 \n" for h in hyps))
    return d


def assert_same(a, b, tol=0.0):
    assert a.keys == b.keys and a.words == b.words and a.utts == b.utts
    assert list(a.offsets) == list(b.offsets) and list(a.ranks) == list(b.ranks)
    assert set(a.costs) == set(b.costs)
    for k in a.costs:
        assert np.allclose(a.costs[k], b.costs[k], atol=tol, rtol=0), k


def test_reads_kaldi_directory_grouped_by_utterance_in_rank_order(tmp_path):
    nb = read_nbest(write_kaldi_dir(tmp_path / "d"))
    assert nb.utts == ["sw_02001-A_000098-001027", "en_4156", "sw_3"]
    assert nb.keys[:2] == ["sw_02001-A_000098-001027-1", "sw_02001-A_000098-001027-2"]
    assert list(nb.offsets) == [0, 2, 5, 6] and list(nb.ranks) == [1, 2, 1, 2, 3, 1]
    assert nb.words[0] == tuple("the cat sat on the mat".split()) and nb.words[3] == ()
    assert nb.costs["acwt"][0] == 118.0 and nb.costs["lmwt.nolm"][1] == 1.5
    # lmwt.lmonly is derived as withlm - nolm, as lmrescore_nbest.sh does
    assert np.allclose(nb.costs["lmwt.lmonly"], nb.costs["lmwt.withlm"] - nb.costs["lmwt.nolm"])
    assert nb.all_empty == 0 and not nb.warnings
    assert split_key("a-b-12") == ("a-b", 12)


@pytest.mark.parametrize("layout", ["shipped", "costs-reordered", "ids-only", "binary"])
def test_bulk_reader_equals_the_careful_reader(tmp_path, monkeypatch, layout):
    """Text archives in one key order are read in bulk; anything else falls back to the careful reader:
    either way the same list."""
    import rescorer.nbest.kaldi_dir as kaldi_dir

    d = write_kaldi_dir(tmp_path / "d")
    if layout == "shipped":
        d = NBEST_DIR / "dev"
    elif layout == "costs-reordered":
        (d / "acwt").write_text("".join(reversed((d / "acwt").read_text().splitlines(True))))
    elif layout == "ids-only":
        (d / "words_text").unlink()
    else:
        nb = read_nbest(d)
        d = tmp_path / "bin"
        write_nbest_dir(nb, d, archive="binary")
    fast_calls = []
    real_fast = kaldi_dir._read_dir_fast
    monkeypatch.setattr(kaldi_dir, "_read_dir_fast", lambda *a: fast_calls.append(real_fast(*a)) or fast_calls[-1])
    bulk = read_nbest(d)
    assert (fast_calls[0] is not None) == (layout in ("shipped", "ids-only"))
    monkeypatch.setattr(kaldi_dir, "_read_dir_fast", lambda *a: None)
    assert_same(bulk, read_nbest(d))


def test_round_trip_dir_file_dir_text_binary_scp(tmp_path):
    src = read_nbest(write_kaldi_dir(tmp_path / "d"))
    write_nbest_file(src, tmp_path / "one.txt")
    one = read_nbest_file(tmp_path / "one.txt")
    assert_same(src, one)
    for archive in ("text", "binary", "scp"):
        out = tmp_path / f"back_{archive}"
        write_nbest_dir(one, out, archive, symbols={w: i for i, w in enumerate(SYMS)})
        back = read_nbest_dir(out)
        assert_same(src, back, tol=1e-4 if archive != "text" else 0.0)  # binary costs are float32 (BaseFloat)
        write_nbest_file(back, tmp_path / f"again_{archive}.txt")
        assert_same(one, read_nbest(tmp_path / f"again_{archive}.txt"), tol=1e-4 if archive != "text" else 0.0)
    assert (tmp_path / "back_scp" / "acwt.scp").exists() and (tmp_path / "back_scp" / "words.ark").exists()
    # the text directory is byte-identical after a second trip
    write_nbest_dir(read_nbest(tmp_path / "back_text"), tmp_path / "again_text")
    for name in ("words", "words_text", "acwt", "lmwt.nolm", "lmwt.withlm", "words.txt"):
        assert (tmp_path / "back_text" / name).read_bytes() == (tmp_path / "again_text" / name).read_bytes()


def test_binary_archives_agree_with_kaldiio_and_kaldi_byte_layout(tmp_path):
    # int32 vectors: kaldiio writes, we read; we write, kaldiio reads
    vecs = {"u-1": np.array([1, 2, 3], dtype=np.int32), "u-2": np.array([], dtype=np.int32),
            "u-3": np.array([7], dtype=np.int32)}
    kaldiio.save_ark(str(tmp_path / "k.ark"), vecs)
    ours = read_archive(tmp_path / "k.ark", INT_VECTOR)
    assert [(e.key, e.value) for e in ours] == [(k, tuple(v.tolist())) for k, v in vecs.items()]
    write_archive(tmp_path / "o.ark", [(k, tuple(v.tolist())) for k, v in vecs.items()], INT_VECTOR, binary=True,
                  scp=tmp_path / "o.scp")
    assert {k: v.tolist() for k, v in kaldiio.load_ark(str(tmp_path / "o.ark"))} == \
        {k: v.tolist() for k, v in vecs.items()}
    assert {k: v.tolist() for k, v in kaldiio.load_scp(str(tmp_path / "o.scp")).items()} == \
        {k: v.tolist() for k, v in vecs.items()}
    # float scalars as nbest-to-linear writes them: "key \0B" + size byte + float32 (or float64)
    raw = b"a-1 \0B\x04" + struct.pack("<f", 1.5) + b"a-2 \0B\x08" + struct.pack("<d", -2.25)
    (tmp_path / "c.ark").write_bytes(raw)
    assert [(e.key, e.value) for e in read_archive(tmp_path / "c.ark", SCALAR)] == [("a-1", 1.5), ("a-2", -2.25)]
    write_archive(tmp_path / "c2.ark", [("a-1", 1.5)], SCALAR, binary=True)
    assert (tmp_path / "c2.ark").read_bytes() == b"a-1 \0B\x04" + struct.pack("<f", 1.5)
    # text scalars: kaldiio reads what we write
    write_archive(tmp_path / "t.ark", [("a-1", 1.5), ("a-2", 3.0)], SCALAR)
    assert dict(kaldiio.load_ark(str(tmp_path / "t.ark"))) == {"a-1": 1.5, "a-2": 3.0}


def test_gzip_archives_and_real_ptb_tts_slice(tmp_path):
    """The shipped real lists (gzipped): the first three utterances, some files left gzipped."""
    d = tmp_path / "slice"
    d.mkdir()
    for name in ("words", "words_text", "acwt", "lmwt.withlm", "lmwt.nolm", "lmwt.lmonly", "words.txt"):
        with gzip.open(NBEST_DIR / "test" / f"{name}.gz", "rt", encoding="utf-8") as fh:
            lines = fh.readlines()
        keep = lines if name == "words.txt" else lines[:300]
        if name in ("acwt", "words"):
            with gzip.open(d / f"{name}.gz", "wt", encoding="utf-8") as fh:
                fh.writelines(keep)
        else:
            (d / name).write_text("".join(keep), encoding="utf-8")
    nb = read_nbest(d)  # words (ids) and words_text are checked against each other on reading
    assert nb.num_utterances == 3 and len(nb) == 300 and list(np.diff(nb.offsets)) == [100, 100, 100]
    assert nb.utts[0] == "rms_t0001" and nb.keys[0] == "rms_t0001-1"
    assert nb.costs["acwt"][0] == pytest.approx(2334.1937)
    assert np.allclose(nb.costs["lmwt.lmonly"], nb.costs["lmwt.withlm"] - nb.costs["lmwt.nolm"], atol=1e-3)
    full = read_nbest(NBEST_DIR / "test")  # the whole shipped set reads too
    assert len(full) == 20000 and full.num_utterances == 200


def test_utterance_with_only_empty_hypotheses_is_kept_and_counted(tmp_path):
    hyps = [("u1-1", "", 1.0, 1.0, 0.0), ("u1-2", "", 2.0, 1.0, 0.0), ("u2-1", "the cat", 3.0, 2.0, 0.0)]
    nb = read_nbest(write_kaldi_dir(tmp_path / "d", hyps))
    assert nb.all_empty == 1 and "1 utterance(s) have only empty hypotheses" in nb.warnings[0]
    assert nb.utts == ["u1", "u2"] and nb.words[:2] == [(), ()]


def test_crlf_lines_read_like_lf(tmp_path):
    d = write_kaldi_dir(tmp_path / "d")
    for name in ("words_text", "acwt"):
        p = d / name
        p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    assert_same(read_nbest(d), read_nbest(write_kaldi_dir(tmp_path / "e")))


def corrupt(tmp_path, name, old, new):
    d = write_kaldi_dir(tmp_path / "d")
    p = d / name
    data = p.read_bytes()
    assert old in data, (old, data)
    p.write_bytes(data.replace(old, new, 1))
    return d


@pytest.mark.parametrize("name,old,new,cls,line,what", [
    ("words_text", b"en_4156-1 a hat", b"en_4156 a hat", FormatError, 3, "is not '<utterance>-<n>'"),
    ("acwt", b"en_4156-1 50.0", b"en_4156-1", FormatError, 3, "missing value"),
    ("acwt", b"en_4156-1 50.0", b"en_4156-1 fifty", FormatError, 3, "'fifty' is not a number"),
    ("acwt", b"en_4156-1 50.0", b"en_4156-1 nan", FormatError, 3, "not a finite number"),
    ("words", b"en_4156-1 6 7", b"en_4156-1 6 99", MismatchError, 3, "word id 99 is not in"),
    ("words", b"en_4156-1 6 7", b"en_4156-1 6 x7", FormatError, 3, "'x7' is not an integer id"),
    ("words", b"en_4156-1 6 7", b"en_4156-1 6 2", MismatchError, 3, "ids spell 'a cat' but"),
    ("acwt", b"en_4156-1 50.0 \n", b"", MismatchError, 3, "key 'en_4156-1' has no entry in"),
    ("acwt", b"en_4156-1 50.0", b"en_4156-9 50.0", MismatchError, 3, "1 key(s) not in"),
    ("acwt", b"sw_3-1 10.0 \n", b"sw_3-1 10.0 \nsw_3-2 1.0\n", MismatchError, 7, "'sw_3-2' is not in"),
    ("lmwt.nolm", b"en_4156-2 0.0", b"en_4156-1 0.0", FormatError, 4, "appears twice (first at line 3)"),
    ("words_text", b"en_4156-2\n", b"en_4156-1 a hat\n", FormatError, 4, "appears twice (first at line 3)"),
    ("words_text", b"en_4156-1 a hat", b"en_4156-1 a h\xe4t", FormatError, 3, "not valid UTF-8"),
])
def test_malformed_directory_names_file_and_line(tmp_path, name, old, new, cls, line, what):
    d = corrupt(tmp_path, name, old, new)
    with pytest.raises(cls) as exc:
        read_nbest(d)
    msg = str(exc.value)
    assert what in msg, msg
    assert f"{name}:{line}:" in msg or f"words_text:{line}:" in msg, msg


def test_malformed_directory_whole_file_cases(tmp_path):
    d = write_kaldi_dir(tmp_path / "d")
    (d / "acwt").write_text("")
    with pytest.raises(FormatError, match="empty archive, but .* has 6 hypotheses"):
        read_nbest(d)
    for name in ("words_text", "words"):
        (d / name).write_text("")
    with pytest.raises(FormatError, match="no hypotheses"):
        read_nbest(d)
    (d / "words_text").unlink()
    (d / "words").unlink()
    with pytest.raises(AdmmqError, match="no words_text or words archive"):
        read_nbest(d)
    e = write_kaldi_dir(tmp_path / "e")
    (e / "words_text").unlink()
    (e / "words.txt").unlink()
    with pytest.raises(AdmmqError, match="no words.txt"):
        read_nbest(e)
    f = write_kaldi_dir(tmp_path / "f")
    (f / "acwt.gz").write_bytes(gzip.compress((f / "acwt").read_bytes()))
    with pytest.raises(AdmmqError, match="both acwt and acwt.gz exist"):
        read_nbest(f)


def test_malformed_binary_and_scp(tmp_path):
    d = write_kaldi_dir(tmp_path / "d")
    nb = read_nbest(d)
    write_nbest_dir(nb, tmp_path / "b", "binary")
    data = (tmp_path / "b" / "acwt").read_bytes()
    (tmp_path / "b" / "acwt").write_bytes(data[:-2])
    with pytest.raises(FormatError, match=r"acwt: entry 6 at byte \d+: archive ends inside a float"):
        read_nbest(tmp_path / "b")
    (tmp_path / "b" / "acwt").write_bytes(data.replace(b"\0B\x04", b"\0B\x05", 1))
    with pytest.raises(FormatError, match="size byte 4 or 8"):
        read_nbest(tmp_path / "b")
    write_nbest_dir(nb, tmp_path / "s", "scp")
    (tmp_path / "s" / "acwt.ark").unlink()
    with pytest.raises(FormatError, match=r"acwt.scp:1: archive .* does not exist"):
        read_nbest(tmp_path / "s")


@pytest.mark.parametrize("text,line,what", [
    ("u-1 1.0 2.0 a b\nu-2 1.0\n", 2, "missing cost 'lmwt.nolm'"),
    ("u-1 1.0 x a b\n", 1, "cost 'lmwt.nolm' value 'x' is not a number"),
    ("# admmq-nbest costs: acwt acwt\nu-1 1 2 a\n", 1, "cost column names repeat"),
    ("u-1 1.0 2.0 a\n# admmq-nbest costs: acwt\n", 2, "'#' lines are only allowed as the first line"),
    ("u-1 1.0 2.0 a\nu-1 1.0 2.0 b\n", 2, "appears twice (first at line 1)"),
    ("u 1.0 2.0 a\n", 1, "is not '<utterance>-<n>'"),
    ("u-0 1.0 2.0 a\n", 1, "is not '<utterance>-<n>'"),
])
def test_malformed_single_file(tmp_path, text, line, what):
    p = tmp_path / "n.txt"
    p.write_text(text)
    with pytest.raises(FormatError) as exc:
        read_nbest(p)
    assert f"n.txt:{line}:" in str(exc.value) and what in str(exc.value), str(exc.value)
    p.write_text("\n")
    with pytest.raises(FormatError, match="no hypotheses"):
        read_nbest(p)


def test_headerless_single_file_is_acwt_then_graph_cost(tmp_path):
    p = tmp_path / "n.txt"
    p.write_text("u-2 5.5 0.5 b c\nu-1 4.0 0.25 a\n\n")
    nb = read_nbest(p)
    assert nb.keys == ["u-1", "u-2"] and nb.words == [("a",), ("b", "c")]
    assert list(nb.costs["acwt"]) == [4.0, 5.5] and list(nb.costs["lmwt.nolm"]) == [0.25, 0.5]


def test_cli_nbest_convert_both_ways(tmp_path):
    d = write_kaldi_dir(tmp_path / "d")
    r = CliRunner().invoke(cli, ["nbest", "convert", str(d), "-o", str(tmp_path / "n.txt")])
    assert r.exit_code == 0, r.output
    assert "3 utterances, 6 hypotheses" in r.output
    assert (tmp_path / "n.txt").read_text().startswith("# admmq-nbest costs: acwt lmwt.nolm lmwt.withlm lmwt.lmonly\n")
    r = CliRunner().invoke(cli, ["nbest", "convert", str(tmp_path / "n.txt"), "-o", str(tmp_path / "back"),
                                 "--archive", "binary", "--words-txt", str(d / "words.txt")])
    assert r.exit_code == 0, r.output
    assert read_nbest(tmp_path / "back").keys == read_nbest(d).keys
    assert (tmp_path / "back" / "words").read_bytes()[:40].count(b"\0B") == 1  # binary ids
    (tmp_path / "bad.txt").write_text("u-1 1.0\n")
    r = CliRunner().invoke(cli, ["nbest", "convert", str(tmp_path / "bad.txt"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and r.output.startswith("admmq: error:") and "bad.txt:1:" in r.output
    assert not (tmp_path / "x").exists()
