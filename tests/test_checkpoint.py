import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from rescorer.pack.lm_file import load_lm
from rescorer.pack.checkpoint import read_checkpoint, save_checkpoint
from rescorer.errors import AdmmqError, FormatError, MismatchError
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.vocab import Vocab
from rescorer.report.evaluate import evaluate_text
from tests.conftest import ptb_lines


def make_ckpt(path, vocab_words=("a", "b", "c")):
    v = Vocab(list(vocab_words))
    cfg = ModelConfig(vocab_size=len(v), embed_dim=4, hidden_dim=4)
    m = LSTMLM(cfg)
    save_checkpoint(path, {"model_config": cfg.to_dict(), "units": v.to_state(), "model": m.state_dict(),
                           "method_config": {"method": "fp"}})
    return m


def test_roundtrip(tmp_path):
    m = make_ckpt(tmp_path / "c.pt")
    lm = load_lm(tmp_path / "c.pt")
    for k, t in m.state_dict().items():
        assert torch.equal(t, lm.model.state_dict()[k])
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # atomic write left nothing behind


def test_truncated_and_flipped_files_are_clear_errors(tmp_path):
    make_ckpt(tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="trunc.pt: not a readable admmq checkpoint"):
        read_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(FormatError, match="junk.pt"):
        read_checkpoint(tmp_path / "junk.pt")


def test_code_in_a_pickle_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"format": "admmq-checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(FormatError, match="evil.pt: refused: it holds pickled Python objects"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    # through the CLI: admmq's one line, nothing of torch's advice to load it unsafely
    from click.testing import CliRunner

    from rescorer.cli.group import cli

    text = tmp_path / "t.txt"
    text.write_text("a b\n")
    r = CliRunner().invoke(cli, ["eval", "--lm", str(tmp_path / "evil.pt"), "--text", str(text)])
    assert r.exit_code != 0 and "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nothing was run" in lines[0] and "weights_only" not in lines[0], r.output
    assert not (tmp_path / "pwned").exists()


def test_wrong_tag_version_and_shapes(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(FormatError, match="not an admmq checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    make_ckpt(tmp_path / "c.pt")
    d = torch.load(tmp_path / "c.pt", weights_only=True)
    d["version"] = 99
    torch.save(d, tmp_path / "v.pt")
    with pytest.raises(FormatError, match="version 99"):
        read_checkpoint(tmp_path / "v.pt")
    d["version"] = 1
    d["units"] = Vocab(["a", "b", "c", "d"]).to_state()  # one word more than the model has
    torch.save(d, tmp_path / "mm.pt")
    with pytest.raises(MismatchError, match="vocabulary has 7 symbols but the model was built for 6"):
        load_lm(tmp_path / "mm.pt")


def test_missing_and_directory(tmp_path):
    with pytest.raises(AdmmqError, match="no such file"):
        load_lm(tmp_path / "nope.pt")
    with pytest.raises(AdmmqError, match="no best.pt"):
        load_lm(tmp_path)


MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("name", ["ptb-ref-std-1x200", "ptb-ref-std-1x200-10k", "ptb-ref-std-1x200-24k"])
def test_the_reference_std_loads_without_unpickling_and_scores_as_its_log_says(tmp_path, name):
    """The recipe's reference STDs (fp, dropout 0.3; all of PTB, its first 10k and 24k sentences) are safe
    checkpoints with their config and vocabulary, and each is the model its log describes: all of PTB
    valid scores the best validation perplexity recorded there."""
    reference_std = MODELS / name
    lm = load_lm(reference_std / "best.pt")
    cfg = lm.model.cfg
    assert (cfg.layers, cfg.hidden_dim, cfg.dropout) == (1, 200, 0.3), cfg
    assert len(lm.units) == 10001, len(lm.units)
    best = min(json.loads(line)["valid_ppl"] for line in (reference_std / "train_log.jsonl").open())
    valid = tmp_path / "valid.txt"
    valid.write_text("".join(ptb_lines("valid", 10**6)), encoding="utf-8")
    ppl = evaluate_text(lm, valid).ppl
    assert abs(ppl - best) < 1e-3 * best, (ppl, best)
