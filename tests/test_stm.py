"""stm references: reading, labels and comments, Kaldi's utterance ids, errors."""

from __future__ import annotations

import pytest

from rescorer.errors import FormatError
from rescorer.nbest.wer import read_references, read_stm_references
from rescorer.scoring.stm import is_ignored, read_stm, utterance_index

STM = """;; LABEL "O" "Overall" "All"
;;comment
   ;; indented comment
** info line

en_4156 A en_4156_A 357.64 359.64 <O,en,F,en-F>  HE IS A (%HESITATION) POLICE OFFICER
sw_4390 B sw_4390_B 0.29 1.15 {  yes / yeah } okay
sw_4390 B sw_4390_B 2.00 3.00
sw_4390 B sw_4390_B 4.00 5.00 <O> IGNORE_TIME_SEGMENT_IN_SCORING
"""


def test_segments_labels_comments_and_kaldi_ids(tmp_path):
    (tmp_path / "ref.stm").write_text(STM)
    segs = read_stm(tmp_path / "ref.stm")
    assert [(s.file, s.channel, s.speaker, s.begin, s.end, s.labels, s.line) for s in segs] == [
        ("en_4156", "A", "en_4156_A", 357.64, 359.64, "<O,en,F,en-F>", 6),
        ("sw_4390", "B", "sw_4390_B", 0.29, 1.15, "", 7), ("sw_4390", "B", "sw_4390_B", 2.0, 3.0, "", 8),
        ("sw_4390", "B", "sw_4390_B", 4.0, 5.0, "<O>", 9)]
    assert segs[0].words == ("HE", "IS", "A", "(%HESITATION)", "POLICE", "OFFICER") and segs[2].words == ()
    # Kaldi's eval2000_data_prep.sh: awk's %06d of t*100 truncates (0.29*100 = 28.999...)
    assert [s.kaldi_id() for s in segs] == ["en_4156-A_035764-035964", "sw_4390-B_000028-000114",
                                            "sw_4390-B_000200-000300", "sw_4390-B_000400-000500"]
    index = utterance_index(segs)
    assert index["sw_4390-B_000029-000115"] is segs[1]  # rounded times find the segment too
    assert is_ignored(" ignore_time_segment_in_scoring ") and not is_ignored(" IGNORE TIME ")
    refs = read_stm_references(tmp_path / "ref.stm", ["sw_4390-B_000029-000115"])
    assert list(refs) == ["en_4156-A_035764-035964", "sw_4390-B_000200-000300", "sw_4390-B_000400-000500",
                          "sw_4390-B_000029-000115"]
    assert read_references(stm=tmp_path / "ref.stm") == {s.kaldi_id(): s.words for s in segs}


@pytest.mark.parametrize("text,message", [
    ("a A s 1.0\n", ":1: expected '<file> <channel> <speaker> <begin> <end>"),
    (";; only comments\n", "no segments in stm file"),
    ("a A s 1.0 x y\n", ":1: begin and end times must be numbers, got '1.0' 'x'"),
    ("a A s 1.001 2.0 x\na A s 1.002 2.0 y\n", ":2: segments on lines 1 and 2 have the same Kaldi utterance id"),
])
def test_bad_stm_is_an_error_naming_the_line(tmp_path, text, message):
    (tmp_path / "ref.stm").write_text(text)
    with pytest.raises(FormatError, match=message):
        utterance_index(read_stm(tmp_path / "ref.stm"), tmp_path / "ref.stm")
