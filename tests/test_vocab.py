import pytest

from rescorer.errors import FormatError
from rescorer.lm.vocab import BOS, EOS, UNK, Vocab


def test_build_orders_by_frequency_then_bytes():
    v = Vocab.build([["b", "a", "c"], ["a", "c"], ["a"]])
    assert v.symbols == [EOS, UNK, "a", "c", "b", BOS]
    assert (v.eos_id, v.unk_id, v.bos_id) == (0, 1, 5)
    assert v.output_size == 5 and len(v) == 6


def test_cap_and_min_count_map_rare_words_to_unk():
    sents = [["x"] * 5 + ["y"] * 3 + ["z"]]
    capped = Vocab.build(sents, max_size=3)  # </s>, <unk>, x
    assert capped.symbols == [EOS, UNK, "x", BOS]
    assert capped.index("y") == capped.unk_id and capped.is_oov("y") and not capped.is_oov("x")
    mc = Vocab.build(sents, min_count=3)
    assert "y" in mc and "z" not in mc


def test_unk_in_text_is_the_unknown_word_and_bos_is_not_a_word():
    v = Vocab.build([["<unk>", "a"]])
    assert v.index("<unk>") == v.unk_id
    assert v.encode_sentence(["a", "nope", BOS]).tolist() == [2, 1, 1]
    assert v.is_oov(BOS)


def test_words_txt_roundtrip_and_kaldi_symbols(tmp_path):
    p = tmp_path / "words.txt"
    p.write_text("<eps> 0\n!SIL 1\n<unk> 2\nhello 3\nworld 4\n#0 5\n<s> 6\n</s> 7\n")
    v = Vocab.from_words_txt(p)
    assert v.symbols == [EOS, UNK, "!SIL", "hello", "world", BOS]
    out = tmp_path / "out.txt"
    v.write_words_txt(out)
    assert Vocab.from_words_txt(out) == v


@pytest.mark.parametrize("content, where, what", [
    ("a 0\nb\n", 2, "expected 'word integer-id'"),
    ("a 0\nb x\n", 2, "not an integer"),
    ("a 0\nb 0\n", 2, "already used on line 1"),
])
def test_words_txt_errors_name_the_line(tmp_path, content, where, what):
    p = tmp_path / "words.txt"
    p.write_text(content)
    with pytest.raises(FormatError) as ei:
        Vocab.from_words_txt(p)
    assert f"words.txt:{where}:" in str(ei.value) and what in str(ei.value)


def test_state_roundtrip():
    v = Vocab.build([["a", "b", "b"]], unk="<UNK>")
    assert Vocab.from_state(v.to_state()) == v
    assert v.unk == "<UNK>" and v.index("zzz") == 1
