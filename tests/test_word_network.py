"""sclite's words (optional, fragments, tags), transcripts with alternations, and their arc graphs."""

from __future__ import annotations

import pytest

from rescorer.errors import FormatError
from rescorer.scoring.word_network import (Alternation, build_network, hypothesis_sequence, make_word,
                                           parse_transcript, words_equal)


def w(token):
    return make_word(token)


def test_words_as_sclite_reads_them():
    assert (w("(uh)").optional, w("(uh)").text, w("(uh)").fragment) == (True, "uh", False)
    assert w("hel-").fragment and w("-ing").fragment and w("(th-)").fragment and w("(th-)").optional
    assert w("@").null and not w("(@)").null
    assert w("word;tag1;tag2").value == "word" and w(r"a\;b;c").value == "a;b" and w("ok*").value == "ok"
    assert w("*").value == "*" and w("{a/b};x").value == "{a/b};x"
    with pytest.raises(FormatError, match="no text before its ';' tag"):
        make_word(";x")


def test_equality_with_fragments_and_optional_words():
    assert words_equal(w("hel-"), w("hello")) and words_equal(w("hello"), w("hel-"))
    assert words_equal(w("-ing"), w("going")) and not words_equal(w("-ing"), w("ng"))
    assert not words_equal(w("hel-"), w("he")) and words_equal(w("(hel-)"), w("help"))
    assert words_equal(w("(uh)"), w("uh")) and not words_equal(w("a"), w("A"))  # case is folded before parsing
    assert not words_equal(w("-"), w("x")) and words_equal(w("-"), w("-"))


def test_transcripts_alternations_and_sclite_cutting_an_unclosed_one():
    seq = parse_transcript("a {b c / {d / e} / } {f/g}h")
    assert [x.value if not isinstance(x, Alternation) else "ALT" for x in seq] == ["a", "ALT", "ALT", "h"]
    assert [[y.value if not isinstance(y, Alternation) else "ALT" for y in alt] for alt in seq[1].alternatives] == \
        [["b", "c"], ["ALT"]]  # the empty alternative after the last '/' is skipped, as sclite does
    cut = []
    assert [x.value for x in parse_transcript("a b {c / d e", "utt7", cut)] == ["a", "b"] and cut == ["utt7"]
    with pytest.raises(FormatError, match="'\\{' inside the word 'x\\{y'"):
        parse_transcript("a x{y / z}")
    with pytest.raises(FormatError, match="empty alternation"):
        parse_transcript("a { / } b")


def test_graph_order_and_in_arc_order():
    """DP order is sclite's breadth-first walk; in-arcs keep the alternatives' order."""
    net = build_network(parse_transcript("a { b c / d } e"))
    assert [x.value if x else None for x in net.words] == [None, "a", "b", "d", "c", "e"]
    assert net.preds == ((), (0,), (1,), (1,), (2,), (4, 3)) and net.ends == (5,)
    assert not net.is_chain and not net.has_null
    empty = build_network(())
    assert empty.words == (None,) and empty.ends == (0,)
    hyp = build_network(hypothesis_sequence(["HE", (("IS",), ()), "OK"]))
    assert [x.value if x else None for x in hyp.words] == [None, "he", "is", "@", "ok"] and hyp.has_null
