import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rescorer.pack.bitpack import CodePacking, choose_packing, pack_codes, parse_bits, smallest_packing, unpack_codes
from rescorer.pack.lm_file import load_lm
from rescorer.errors import AdmmqError, FormatError
from rescorer.report.model_size import describe_lm_file, set_label
from rescorer.pack.lm_file import ALIGN, PREAMBLE, encode_packed, export_packed, read_packed, write_packed
from rescorer.lm.subword import SubwordUnits
from tests.conftest import ptb_lines
from tests.packed_models import claim_one_bit_codes, make_quantized_checkpoint, project_scaled, rewrite_header

WORDS = ["the", "a", "of", "to", "in", "and", "stock", "market", "fell"]
PACKINGS = [CodePacking(bits=b) for b in range(1, 9)] + [CodePacking(base=b) for b in (3, 5, 6, 7, 9, 17)]


# ------------------------------------------------------------ bit packing
@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PACKINGS), st.integers(1, 37), st.integers(1, 41), st.integers(0, 2**32 - 1))
def test_random_codes_of_odd_shapes_round_trip_bit_exactly(packing, rows, cols, seed):
    codes = np.random.default_rng(seed).integers(0, packing.capacity, (rows, cols)).astype(np.uint8)
    buf = pack_codes(codes, packing)
    n = rows * cols
    assert buf.size == (-(-n // packing.per_byte) if packing.base else -(-n * packing.bits // 8))
    assert np.array_equal(unpack_codes(buf, rows * cols, packing).reshape(rows, cols), codes)


def test_layout_is_little_endian_as_specified():
    # 1 bit: code i is bit i % 8 of byte i // 8
    assert pack_codes(np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], np.uint8), CodePacking(bits=1)).tolist() == [0x81, 0x01]
    # 3 bits: codes straddle bytes; 5, 3, 7 -> bits 101 110 111 (LSB first) -> 0b11_011_101, 0b1
    assert pack_codes(np.array([5, 3, 7], np.uint8), CodePacking(bits=3)).tolist() == [0b11011101, 0b1]
    # base 3 x 5: first code is the least significant digit; last byte padded with zero digits
    assert pack_codes(np.array([1, 2, 0, 0, 1, 2], np.uint8), CodePacking(base=3)).tolist() == [1 + 2 * 3 + 81, 2]
    # base 6 x 3
    assert pack_codes(np.array([5, 4, 3], np.uint8), CodePacking(base=6)).tolist() == [5 + 4 * 6 + 3 * 36]


def test_widths_auto_and_requests():
    assert [smallest_packing(levels).label for levels in (2, 3, 4, 5, 6, 7, 8, 9, 16, 17)] == \
        ["1", "1.6", "2", "2.67", "2.67", "3", "3", "4", "4", "5"]
    assert parse_bits("1.6") == CodePacking(base=3) and parse_bits("2.67") == CodePacking(base=6)
    assert parse_bits("3") == CodePacking(bits=3) and parse_bits("auto") is None
    with pytest.raises(AdmmqError, match="--bits '1.5'"):
        parse_bits("1.5")
    with pytest.raises(AdmmqError, match=r"matrix 'lstm.weight_ih_l0' has 6 levels; --bits 2 holds at most 4"):
        choose_packing(CodePacking(bits=2), 6, "lstm.weight_ih_l0")
    with pytest.raises(AdmmqError, match="has 4 levels; --bits 1.6 holds at most 3"):
        choose_packing(CodePacking(base=3), 4, "m")
    with pytest.raises(ValueError, match="code 3 does not fit 1.6 bits"):
        pack_codes(np.array([3], np.uint8), CodePacking(base=3))
    with pytest.raises(ValueError, match="byte value 250"):
        unpack_codes(np.array([250], np.uint8), 5, CodePacking(base=3))


def test_set_labels():
    w = torch.randn(4, 6)
    assert set_label(project_scaled(w, [-1, 1], "layer")) == "{±1}"
    assert set_label(project_scaled(w, [-1, 0, 1], "node")) == "{0,±1}"
    assert set_label(project_scaled(w, [-4, -2, -1, 1, 2, 4], "node")) == "{±1,±2,±4}"


# ------------------------------------------------------------ whole files
CASES = [("binary", "layer", "1"), ("binary", "node", "auto"), ("ternary", "layer", "1.6"),
         ("ternary", "node", "2"), ("pow2", "node", "2"), ("pow4", "layer", "2.67"), ("pow4", "node", "3"),
         ("pow8", "node", "auto"), ("multibit2", "node", "2"), ("multibit3", "node", "8")]


@pytest.mark.parametrize("scheme,tying,bits", CASES)
def test_packed_file_loads_the_same_model(tmp_path, scheme, tying, bits):
    q = make_quantized_checkpoint(tmp_path / "c.pt", WORDS, scheme, tying, dim=12)
    export_packed(tmp_path / "c.pt", tmp_path / "q.pt", parse_bits(bits))
    ref, lm = load_lm(tmp_path / "c.pt"), load_lm(tmp_path / "q.pt")
    assert lm.kind == "packed" and lm.method_config == {"method": "admm", "qset": scheme, "tying": tying}
    assert lm.units == ref.units
    sd = lm.model.state_dict()
    for name, t in ref.model.state_dict().items():
        assert torch.equal(sd[name], t), name
    for name, m in q.items():
        assert torch.equal(lm.quantized[name].codes, m.codes) and torch.equal(lm.quantized[name].alpha, m.alpha)
    if bits != "auto":
        assert set(lm.meta["bits"].values()) == {bits}


def test_mixed_precision_bin_lin_layers_and_tied_embeddings(tmp_path):
    schemes = {"embedding.weight": "binary", "input_linear.weight": "multibit2", "lstm.weight_ih_l0": "pow4",
               "lstm.weight_hh_l0": "pow2", "output_linear.weight": "ternary"}
    make_quantized_checkpoint(tmp_path / "c.pt", WORDS, schemes, "node", dim=12, input_linear=True,
                              output_linear=True, tie_embeddings=True)
    export_packed(tmp_path / "c.pt", tmp_path / "q.pt")  # auto: each matrix at its own smallest width
    ref, lm = load_lm(tmp_path / "c.pt"), load_lm(tmp_path / "q.pt")
    assert lm.meta["bits"] == {"embedding.weight": "1", "input_linear.weight": "2", "lstm.weight_ih_l0": "2.67",
                               "lstm.weight_hh_l0": "2", "output_linear.weight": "1.6"}
    for name, t in ref.model.state_dict().items():
        assert torch.equal(lm.model.state_dict()[name], t), name
    r = describe_lm_file(tmp_path / "q.pt")
    assert r.to_dict()["set"] == "mixed" and r.to_dict()["tying"] == "node"
    assert {m.name: m.levels for m in r.matrices} == {"embedding.weight": 2, "input_linear.weight": 4,
                                                      "lstm.weight_ih_l0": 6, "lstm.weight_hh_l0": 4,
                                                      "output_linear.weight": 3}
    # the bin-lin scales stay fp32 vectors
    assert read_packed(tmp_path / "q.pt")[1]["tensors"]["input_linear.scale"]["role"] == "vector"


def _expected_parts(header):
    return {name: t["nbytes"] for name, t in header["tensors"].items()}


def test_file_size_is_payload_plus_tables_plus_biases_plus_header(tmp_path):
    q = make_quantized_checkpoint(tmp_path / "c.pt", WORDS, "ternary", "node", dim=12, skip=["lstm.weight_hh_l0"])
    export_packed(tmp_path / "c.pt", tmp_path / "q.pt", CodePacking(base=3))
    pm, header, size = read_packed(tmp_path / "q.pt")
    assert size == (tmp_path / "q.pt").stat().st_size
    t = header["tensors"]
    for name, m in q.items():  # codes: ceil(R*C/5) bytes; alpha (R,1) and basis (3,1) fp32
        R, C = m.shape
        assert t[f"{name}.codes"]["nbytes"] == -(-R * C // 5)
        assert t[f"{name}.alpha"]["nbytes"] == 4 * R and t[f"{name}.basis"]["nbytes"] == 4 * 3
    ref = torch.load(tmp_path / "c.pt", weights_only=True)["model"]
    for name, w in ref.items():  # biases and the unquantized matrix: fp32, full size
        if name not in q:
            assert t[name]["nbytes"] == 4 * w.numel() and t[name]["role"] == ("matrix" if w.dim() == 2 else "vector")
    assert t["lstm.weight_hh_l0"]["role"] == "matrix"
    data = (tmp_path / "q.pt").read_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    assert hlen <= 4096 and (PREAMBLE.size + hlen) % ALIGN == 0
    buffers = sum(_expected_parts(header).values())
    padding = header["payload_bytes"] - buffers
    assert 0 <= padding < ALIGN * len(t)
    assert size == PREAMBLE.size + hlen + buffers + padding
    # the vocabulary buffer is the zlib of the symbols
    units = t["units"]
    start = PREAMBLE.size + hlen + units["offset"]
    assert zlib.decompress(data[start:start + units["nbytes"]]).decode().split("\n") == pm.units_state["symbols"]


def test_fp16_alpha_halves_alpha_and_is_reported(tmp_path):
    make_quantized_checkpoint(tmp_path / "c.pt", WORDS, "pow4", "node", dim=12)
    a = export_packed(tmp_path / "c.pt", tmp_path / "a.pt", None, "fp32")
    b = export_packed(tmp_path / "c.pt", tmp_path / "b.pt", None, "fp16")
    alpha = [n for n in a.header["tensors"] if n.endswith(".alpha")]
    assert all(b.header["tensors"][n]["nbytes"] * 2 == a.header["tensors"][n]["nbytes"] for n in alpha)
    assert describe_lm_file(tmp_path / "b.pt").alpha_dtype == "float16"
    ref, lm = load_lm(tmp_path / "a.pt"), load_lm(tmp_path / "b.pt")
    w16, w32 = lm.model.lstm.weight_ih_l0, ref.model.lstm.weight_ih_l0
    assert not torch.equal(w16, w32) and torch.allclose(w16, w32, rtol=1e-3, atol=0)


def test_export_is_deterministic_and_repacks(tmp_path):
    make_quantized_checkpoint(tmp_path / "c.pt", WORDS, "ternary", "layer", dim=12)
    export_packed(tmp_path / "c.pt", tmp_path / "a.pt", CodePacking(bits=2))
    export_packed(tmp_path / "c.pt", tmp_path / "b.pt", CodePacking(bits=2))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    export_packed(tmp_path / "a.pt", tmp_path / "dense.pt", CodePacking(base=3))  # re-pack a packed file
    assert (tmp_path / "dense.pt").stat().st_size < (tmp_path / "a.pt").stat().st_size
    export_packed(tmp_path / "dense.pt", tmp_path / "back.pt", CodePacking(bits=2))
    assert (tmp_path / "back.pt").read_bytes() == (tmp_path / "a.pt").read_bytes()


def test_subword_units_are_stored(tmp_path):
    units = SubwordUnits.train([line.split() for line in ptb_lines("train", 300)], vocab_size=120)
    make_quantized_checkpoint(tmp_path / "c.pt", WORDS, "binary", "layer", dim=8)
    data = torch.load(tmp_path / "c.pt", weights_only=True)
    from rescorer.lm.model import LSTMLM, ModelConfig
    from rescorer.pack.lm_file import PackedModel
    cfg = ModelConfig(vocab_size=len(units), embed_dim=8, hidden_dim=8)
    model = LSTMLM(cfg)
    pm = PackedModel(cfg.to_dict(), data["method_config"], units.to_state(), model.state_dict(), {})
    write_packed(tmp_path / "s.pt", encode_packed(pm))
    lm = load_lm(tmp_path / "s.pt")
    assert lm.units.model_proto == units.model_proto
    words = "investors bought shares".split()
    assert np.array_equal(lm.units.encode_sentence(words), units.encode_sentence(words))


def test_the_papers_table1_accounting_on_a_ptb_sized_model(tmp_path):
    """1x200 LSTM, 10k outputs: fp32 16.52 MiB (paper 16.53), layer-tied binary 0.515 MiB (paper 0.52)."""
    words = [f"w{i}" for i in range(9998)]  # + </s>, <unk> = 10,000 outputs, + <s> = 10,001 inputs
    make_quantized_checkpoint(tmp_path / "c.pt", words, "binary", "layer", dim=200)
    export_packed(tmp_path / "c.pt", tmp_path / "q.pt", CodePacking(bits=1))
    r = describe_lm_file(tmp_path / "q.pt")
    assert r.params == 10001 * 200 + 2 * (800 * 200 + 800) + 10000 * 201 == 4_331_800
    assert r.fp32_bytes == 17_327_200 and round(r.fp32_bytes / 2**20, 2) == 16.52
    assert r.paper_bytes == (10001 * 200 + 2 * 800 * 200 + 10000 * 200) // 8 == 540_025
    assert round(r.paper_bytes / 2**20, 2) == 0.52 and round(r.paper_ratio, 2) == 32.09
    # the whole file adds biases (46,404 B), 4 alphas and bases, the vocabulary and the header
    b = r.breakdown
    assert b["vector"] == 4 * (1600 + 10000) and b["codes"] == 540_025 and b["alpha"] == 16 and b["basis"] == 32
    assert r.size_bytes == (tmp_path / "q.pt").stat().st_size == sum(b.values())
    assert b["header"] < 4096 and r.compression_ratio == r.fp32_bytes / r.size_bytes
    # a training checkpoint's info predicts the export's exact size
    assert describe_lm_file(tmp_path / "c.pt", CodePacking(bits=1)).size_bytes == r.size_bytes


# ------------------------------------------------------------ bad files
@pytest.fixture()
def packed(tmp_path):
    make_quantized_checkpoint(tmp_path / "c.pt", WORDS, "ternary", "node", dim=8)
    export_packed(tmp_path / "c.pt", tmp_path / "q.pt", CodePacking(bits=2))
    return tmp_path / "q.pt"


def _one_line_format_error(path, match):
    with pytest.raises(FormatError, match=match) as info:
        load_lm(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


def test_truncated_files(packed):
    data = packed.read_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    for n, match in ((10, "truncated: 10 bytes"), (PREAMBLE.size + 5, "the header alone needs"),
                     (PREAMBLE.size + hlen + 100, "truncated: .* the header promises"), (len(data) - 1, "truncated")):
        packed.write_bytes(data[:n])
        _one_line_format_error(packed, match)


def test_flipped_bytes_wrong_magic_version_and_trailing_bytes(packed):
    data = bytearray(packed.read_bytes())
    hlen = struct.unpack_from("<I", data, 12)[0]

    def with_change(pos, value):
        d = bytearray(data)
        d[pos] = value
        packed.write_bytes(bytes(d))

    with_change(0, ord("X"))  # load_lm then takes it for a torch checkpoint: still one clear line
    with pytest.raises(FormatError, match="not a readable admmq checkpoint"):
        load_lm(packed)
    with pytest.raises(FormatError, match=r"not an admmq packed file \(magic"):
        read_packed(packed)
    with_change(8, 2)
    _one_line_format_error(packed, "packed file version 2 is not supported")
    with_change(20, 1)
    _one_line_format_error(packed, "reserved preamble field")
    with_change(PREAMBLE.size + 10, data[PREAMBLE.size + 10] ^ 0x04)
    _one_line_format_error(packed, "header checksum mismatch")
    with_change(len(data) - 3, data[-3] ^ 0x80)
    _one_line_format_error(packed, "payload checksum mismatch")
    with_change(PREAMBLE.size + hlen + 1, data[PREAMBLE.size + hlen + 1] ^ 0x01)
    _one_line_format_error(packed, "payload checksum mismatch")
    packed.write_bytes(bytes(data) + b"\0")
    _one_line_format_error(packed, "1 unexpected bytes after the payload")


def test_every_single_byte_corruption_is_caught(packed):
    data = packed.read_bytes()
    for pos in list(range(PREAMBLE.size)) + list(range(PREAMBLE.size, len(data), 13)):
        d = bytearray(data)
        d[pos] ^= 0x5A
        packed.write_bytes(bytes(d))
        with pytest.raises(AdmmqError):
            load_lm(packed)


def test_bits_too_small_for_the_codes(packed):
    rewrite_header(packed, claim_one_bit_codes("decoder.weight"))
    _one_line_format_error(packed, r"'decoder.weight' has 3 levels but its codes are stored at 1 bit \(2 levels")


def test_codes_beyond_the_levels_and_bad_header_facts(packed, tmp_path):
    def big_code(header, payload):  # 2-bit code 3 in a 3-level matrix
        payload[header["tensors"]["decoder.weight.codes"]["offset"]] = 0xFF

    rewrite_header(packed, big_code)
    _one_line_format_error(packed, "'decoder.weight' has code 3 but only 3 levels")
    export_packed(tmp_path / "c.pt", packed, CodePacking(bits=2))

    def bad_shape(header, payload):
        header["tensors"]["lstm.bias_ih_l0"]["shape"] = [33]

    rewrite_header(packed, bad_shape)
    _one_line_format_error(packed, r"'lstm.bias_ih_l0': 128 bytes stored, its shape \[33\]")
    export_packed(tmp_path / "c.pt", packed, CodePacking(bits=2))
    rewrite_header(packed, lambda h, p: h["tensors"].pop("units"))
    _one_line_format_error(packed, "names tensor 'units' but does not describe it")
    export_packed(tmp_path / "c.pt", packed, CodePacking(bits=2))
    rewrite_header(packed, lambda h, p: h["model_config"].update(dropout="high"))
    _one_line_format_error(packed, "model config .* is malformed")
    export_packed(tmp_path / "c.pt", packed, CodePacking(bits=2))
    rewrite_header(packed, lambda h, p: h["quantized"]["decoder.weight"].update(codes=["x"]))
    _one_line_format_error(packed, "'decoder.weight' is not described by codes/basis/alpha/levels")


def test_export_refuses_codes_that_do_not_fit_and_writes_nothing(tmp_path):
    make_quantized_checkpoint(tmp_path / "c.pt", WORDS, "pow4", "layer", dim=8)
    with pytest.raises(AdmmqError, match="matrix 'embedding.weight' has 6 levels; --bits 2 holds at most 4"):
        export_packed(tmp_path / "c.pt", tmp_path / "q.pt", CodePacking(bits=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
