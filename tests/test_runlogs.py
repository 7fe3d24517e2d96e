"""Run logs (train_log.jsonl columns, resume, sinks, TensorBoard), their readers, and the per-subset sweeps."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from rescorer.checkpoint import load_lm
from rescorer.cli import cli
from rescorer.corpus import load_corpus
from rescorer.errors import AdmmqError, FormatError
from rescorer.model import ModelConfig
from rescorer.nbest import read_nbest
from rescorer.rescore import RescoreConfig, rescore
from rescorer.runlogs import (TRAIN_LOG_COLUMNS, format_epoch_row, method_label, read_rescore_dir,
                              read_runs, read_sweep_tsv, read_test_ppl, read_train_log)
from rescorer.scorers import load_scorer
from rescorer.scoring import corpus_nll
from rescorer.train import TrainConfig, train
from rescorer.wer import read_text
from tests.ngram_fixtures import TINY_ARPA, write

TINY = ModelConfig(vocab_size=0, embed_dim=8, hidden_dim=8)


def tiny_cfg(d, **kw):
    base = dict(train=str(d / "train.txt"), valid=str(d / "valid.txt"), epochs=2, device="cpu", seed=2,
                schedule="constant", max_sentences=60)
    base.update(kw)
    return TrainConfig(**base)


class RecordingSink:
    """An epoch sink that keeps what it is given."""

    def __init__(self):
        self.rows, self.closed = [], 0

    def write(self, row):
        self.rows.append(dict(row))

    def close(self):
        self.closed += 1


def test_training_writes_one_row_per_epoch_with_the_documented_columns_and_resume_appends(ptb_slice, tmp_path):
    run = tmp_path / "run"
    first = RecordingSink()
    train(run, tiny_cfg(ptb_slice, epochs=1), TINY, quiet=True, sinks=[first])
    again = RecordingSink()
    train(run, resume=True, epochs=3, quiet=True, sinks=[again])
    rows = read_train_log(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # one row per epoch, none twice after the resume
    for r in rows:
        assert set(TRAIN_LOG_COLUMNS) <= set(r), set(TRAIN_LOG_COLUMNS) - set(r)
        assert r["valid_ppl_q"] is None  # full precision
        assert isinstance(r["best"], bool) and r["lr"] == 1.0
        assert r["train_ppl"] == pytest.approx(math.exp(r["train_loss"]))
        assert r["seconds"] > 0 and r["tokens_per_s"] > 0 and r["eval_seconds"] > 0
        assert math.isfinite(r["valid_ppl"]) and r["valid_ppl"] > 1
    raw = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert all("valid_ppl_q" in r for r in raw)  # written as null, not left out
    assert first.rows == rows[:1] and again.rows == rows[1:]  # the sinks saw each epoch once
    assert first.closed == 1 and again.closed == 1
    assert rows[0]["best"] and sum(r["best"] for r in rows) >= 1
    # the progress line carries the figures
    text = (run / "train.log").read_text()
    assert "epoch 3: lr 1 | train loss " in text and "+ eval " in text


def test_train_loss_is_the_epochs_mean_token_nll(ptb_slice, tmp_path):
    """With lr 1e-12 the weights stay put: train_loss must equal the saved model's mean NLL per token of the
    training text, computed by the evaluation code (measured: equal to 4e-8 relative)."""
    train(tmp_path / "r", tiny_cfg(ptb_slice, epochs=1, lr=1e-12), TINY, quiet=True)
    row = read_train_log(tmp_path / "r")[0]
    lm = load_lm(tmp_path / "r")
    corpus = load_corpus(lm.units, ptb_slice / "train.txt", max_sentences=60)
    nll, tokens = corpus_nll(lm.model, corpus, lm.units.bos_id, lm.units.eos_id)
    assert lm.model.cfg.dropout == 0 and tokens == corpus.tokens
    assert row["train_loss"] == pytest.approx(nll / tokens, rel=1e-5)
    assert row["train_ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)


def test_tensorboard_sink_writes_the_scalars_per_epoch(ptb_slice, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rescorer.tensorboard_sink import TensorBoardSink

    run, tb = tmp_path / "run", tmp_path / "tb"
    train(run, tiny_cfg(ptb_slice, epochs=1), TINY, quiet=True, sinks=[TensorBoardSink(tb)])
    train(run, resume=True, epochs=2, quiet=True, sinks=[TensorBoardSink(tb)])
    rows = read_train_log(run)
    acc = EventAccumulator(str(tb))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/lr", "train/loss", "train/ppl", "valid/ppl", "time/train_seconds", "time/eval_seconds",
            "time/tokens_per_s"} <= tags
    assert "valid/ppl_quantized" not in tags  # null for full precision: no scalar
    for tag, col in (("valid/ppl", "valid_ppl"), ("train/loss", "train_loss")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([r[col] for r in rows], rel=1e-6)


def test_tensorboard_sink_tags_method_figures():
    pytest.importorskip("tensorboard")
    from rescorer.tensorboard_sink import scalar_tag

    assert scalar_tag("valid_ppl_q") == "valid/ppl_quantized"
    assert scalar_tag("admm_primal") == "method/admm_primal"


def test_format_epoch_row_shows_quantized_and_method_figures():
    row = {"epoch": 4, "lr": 0.5, "train_loss": 4.5, "train_ppl": math.exp(4.5), "valid_ppl": 130.0,
           "valid_ppl_q": 141.25, "best": True, "seconds": 12.0, "tokens_per_s": 999.0, "eval_seconds": 1.5,
           "admm_primal": 0.123456, "admm_codes_changed": 1234}
    line = format_epoch_row(row)
    assert line.startswith("epoch 4: lr 0.5 | train loss 4.5000 (ppl 90.02)")
    assert "valid ppl 130.00 (quantized 141.25)" in line
    assert "admm_primal 0.1235 admm_codes_changed 1234" in line and line.endswith("*best*")
    assert "quantized" not in format_epoch_row(dict(row, valid_ppl_q=None, best=False))


def write_log(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("lines, message, line", [
    (['{"epoch": 1, "valid_ppl": 200.0}', '{"epoch": 2, "valid_ppl": 1'], "not JSON", 2),
    (['[1, 2]'], "expected a JSON object per epoch", 1),
    (['{"epoch": 1, "valid_ppl": 200.0}', '{"epoch": 1, "valid_ppl": 190.0}'], "epoch 1 after epoch 1", 2),
    (['{"epoch": 1}'], "no 'valid_ppl' column", 1),
    (['{"epoch": "1", "valid_ppl": 1.0}'], "'epoch' must be a positive integer", 1),
    (['{"epoch": 1, "valid_ppl": "high"}'], "'valid_ppl' must be a number", 1),
    (['{"epoch": 1, "valid_ppl": 9.0, "valid_ppl_q": "x"}'], "'valid_ppl_q' must be a number", 1),
])
def test_malformed_logs_name_file_and_line(tmp_path, lines, message, line):
    p = tmp_path / "train_log.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as exc:
        read_train_log(p)
    assert str(exc.value).startswith(f"{p}:{line}: ") and message in str(exc.value)


def test_missing_or_empty_logs_are_errors(tmp_path):
    with pytest.raises(AdmmqError, match="train_log.jsonl: no such file"):
        read_train_log(tmp_path)
    (tmp_path / "train_log.jsonl").write_text("\n")
    with pytest.raises(FormatError, match="no epochs logged"):
        read_train_log(tmp_path)
    with pytest.raises(AdmmqError, match="test_eval.json: no such file .*admmq eval --lm"):
        read_test_ppl(tmp_path)
    (tmp_path / "test_eval.json").write_text('{"ppl": -3}')
    with pytest.raises(FormatError, match="'ppl' must be a positive number"):
        read_test_ppl(tmp_path)
    (tmp_path / "test_eval.json").write_text('{"ppl": 123.5, "words": 10}')
    assert read_test_ppl(tmp_path) == 123.5


def test_labels_from_method_settings():
    assert method_label({"method": "fp"}, {"hidden_dim": 200, "layers": 1}) == "STD"
    assert method_label({"method": "fp"}, {"hidden_dim": 64, "layers": 2}) == "STD H=64 L=2"
    assert method_label({"method": "admm", "qset": "pm124", "tying": "node"}, None) == "ADMM {±1,±2,±4} node"
    assert method_label({"method": "admm", "qset": "pow2:2", "tying": "layer"}, None) == "ADMM {0,±1,…,±4} layer"
    assert method_label({"method": "admm", "qset": "pm1", "tying": "none"}, None) == "ADMM NoTie"
    assert method_label({"method": "bin-lin"}, None) == "Bin+Lin"
    assert method_label({"method": "multibit", "bits": 2}, None) == "2-bit"
    assert method_label(None, None) is None


def test_read_runs_labels_from_train_log_and_disambiguates(tmp_path):
    for name, method in (("a", '{"method": "fp"}'), ("b", '{"method": "fp"}'),
                         ("c", '{"method": "admm", "qset": "pm1", "tying": "layer"}')):
        d = tmp_path / name
        d.mkdir()
        write_log(d / "train_log.jsonl", [{"epoch": 1, "valid_ppl": 300.0, "valid_ppl_q": None}])
        (d / "train.log").write_text(f"2026-01-01 00:00:00 command: admmq train\n"
                                     f"2026-01-01 00:00:00 method config: {method}\n")
    runs = read_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert [r.label for r in runs] == ["STD (a)", "STD (b)", "ADMM {±1} layer"]
    assert [r.label for r in read_runs([tmp_path / "a", tmp_path / "c"], ["x", "y"])] == ["x", "y"]
    with pytest.raises(AdmmqError, match="1 --label for 2 runs"):
        read_runs([tmp_path / "a", tmp_path / "c"], ["x"])


# ---------------------------------------------------------------- sweeps
def kaldi_set(d, prefix_utts, seed):
    """A Kaldi n-best directory over the tiny ARPA's words {a, b, c}: 3 hypotheses per utterance."""
    rng = np.random.default_rng(seed)
    d.mkdir()
    refs, lines, acwt = {}, [], []
    pool = [("a", "b"), ("a", "c"), ("b",), ("a", "b", "c"), ("c", "a"), ("a",), ("b", "b")]
    for utt in prefix_utts:
        picks = rng.choice(len(pool), size=3, replace=False)
        refs[utt] = pool[picks[int(rng.integers(3))]]
        for n, k in enumerate(picks, 1):
            lines.append((f"{utt}-{n}", pool[k]))
            acwt.append(float(rng.uniform(0, 6)))
    (d / "words_text").write_text("".join(" ".join((key,) + w) + "\n" for key, w in lines))
    (d / "acwt").write_text("".join(f"{key} {a:.4f}\n" for (key, _), a in zip(lines, acwt)))
    text = d.parent / f"{d.name}.text"
    text.write_text("".join(" ".join((u,) + w) + "\n" for u, w in refs.items()))
    return d, text


def test_sweep_per_subset_errors_equal_rescoring_at_each_setting(tmp_path):
    arpa = write(tmp_path / "tiny.arpa", TINY_ARPA)
    dev, dev_text = kaldi_set(tmp_path / "dev", [f"{p}_{i}" for p in "xy" for i in range(6)], 1)
    test, test_text = kaldi_set(tmp_path / "test", [f"{p}_{i}" for p in "xyz" for i in range(5)], 2)
    specs = ("x_=X", "y_=Y", "z_=Z")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(test), "--ngram", str(arpa), "--ref", str(test_text), "--dev", str(dev),
                                 "--dev-ref", str(dev_text), "-o", str(out), "--lm-scale-grid", "0:3:0.5",
                                 "--wip-grid", "0,1", "--quiet"] + [a for s in specs for a in ("--subset", s)])
    assert r.exit_code == 0, r.output
    sweeps = read_rescore_dir(out)
    dev_t, test_t = sweeps.tables
    assert (dev_t.set, test_t.set, sweeps.chosen_by) == ("dev", "test", "dev")
    assert dev_t.subsets == ["X", "Y"] and test_t.subsets == ["X", "Y", "Z"]  # Z has no dev utterances
    assert len(test_t.lm_scales) == 14
    # every grid point = rescoring the test list at those fixed weights
    lm = load_scorer([], [arpa])
    nb, refs = read_nbest(test), read_text(test_text)
    for i in (0, 3, 8, 13):
        res = rescore(nb, lm, RescoreConfig(lm_scale=test_t.lm_scales[i], wip=test_t.wips[i], subset_specs=specs),
                      refs=refs, quiet=True)
        rep = res.wer["rescored"]
        assert test_t.errors["total"][i] == rep.total.errors
        assert [test_t.errors[n][i] for n in "XYZ"] == [rep.subsets[n].errors for n in "XYZ"]
        assert test_t.wer["X"][i] == pytest.approx(rep.subsets["X"].wer, abs=0.005)
    # the chosen weights are dev's first minimum, and test's row there is the reported WER
    s = json.loads((out / "summary.json").read_text())
    k = int(np.argmin(dev_t.errors["total"]))
    assert (dev_t.lm_scales[k], dev_t.wips[k]) == (sweeps.lm_scale, sweeps.wip)
    j = [i for i in range(14) if (test_t.lm_scales[i], test_t.wips[i]) == (sweeps.lm_scale, sweeps.wip)][0]
    assert test_t.errors["total"][j] == s["wer"]["rescored"]["total"]["errors"]
    assert [test_t.errors[n][j] for n in "XYZ"] == [s["wer"]["rescored"][n]["errors"] for n in "XYZ"]
    assert s["sweep"]["subset_words"] == {"X": sum(len(w) for u, w in read_text(dev_text).items() if u[0] == "x"),
                                          "Y": sum(len(w) for u, w in read_text(dev_text).items() if u[0] == "y")}


def test_sweep_file_errors(tmp_path):
    p = tmp_path / "sweep.tsv"
    with pytest.raises(AdmmqError, match="sweep.tsv: no such file"):
        read_sweep_tsv(p, "dev")
    p.write_text("lm_scale\twip\terr\twer\n")
    with pytest.raises(FormatError, match=r"sweep.tsv:1: header must be"):
        read_sweep_tsv(p, "dev")
    p.write_text("lm_scale\twip\terrors\twer\terrors:a\twer:b\n")
    with pytest.raises(FormatError, match="not errors:NAME wer:NAME"):
        read_sweep_tsv(p, "dev")
    p.write_text("lm_scale\twip\terrors\twer\n1\t0\t5\t10.00\n2\t0\tfive\t9.00\n")
    with pytest.raises(FormatError, match=r"sweep.tsv:3: not numbers"):
        read_sweep_tsv(p, "dev")
    p.write_text("lm_scale\twip\terrors\twer\terrors:a\twer:a\n1\t0\t5\t10.00\t2\t8.00\n")
    t = read_sweep_tsv(p, "test")
    assert t.subsets == ["a"] and t.errors == {"total": [5], "a": [2]} and t.wer["a"] == [8.0]
    (tmp_path / "summary.json").write_text(json.dumps({"weights": {"lm_scale": 1, "wip": 0}, "chosen_by": "given"}))
    with pytest.raises(AdmmqError, match="nothing was swept"):
        read_rescore_dir(tmp_path)
