"""admmq plot: PNG size, CSV = the points drawn, Pareto marking, errors, and life without the extras."""

import builtins
import csv
import json
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.report.plots import PAPER_TABLE1, pareto_front
from tests.conftest import ROOT, train_tiny

pytest.importorskip("matplotlib")


def png_size(path):
    """(width, height) from the PNG signature and IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data
    return struct.unpack(">II", data[16:24])


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


RUNS = {
    "std": ('{"method": "fp"}', [(1, 260.5, None), (2, 180.25, None), (3, 150.0, None)]),
    "admm": ('{"method": "admm", "qset": "pm1", "tying": "layer"}',
             [(1, 400.0, 900.5), (2, 200.0, 260.0), (3, 170.0, 190.75), (4, 160.0, 175.5)]),
}


@pytest.fixture
def log_runs(tmp_path):
    dirs = []
    for name, (method, points) in RUNS.items():
        d = tmp_path / name
        d.mkdir()
        rows = [{"epoch": e, "lr": 1.0, "valid_ppl": v, "valid_ppl_q": q, "best": True, "admm_primal": 0.5}
                for e, v, q in points]
        (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "train.log").write_text(f"2026-01-01 00:00:00 method config: {method}\n"
                                     f"2026-01-01 00:00:00 model config: {{\"hidden_dim\": 200, \"layers\": 1}}\n")
        dirs.append(d)
    return dirs


def test_curves_png_size_csv_rows_and_svg(log_runs, tmp_path):
    out = tmp_path / "fig" / "curves.png"
    out.parent.mkdir()
    r = invoke(["plot", "curves", *log_runs, "-o", out, "--width", 640, "--height", 480, "--dpi", 80, "--svg"])
    assert r.exit_code == 0, r.output
    assert png_size(out) == (640, 480)
    assert (tmp_path / "fig" / "curves.svg").read_text().lstrip().startswith("<?xml")
    rows = read_csv(tmp_path / "fig" / "curves.csv")
    assert rows[0] == ["run", "label", "epoch", "valid_ppl", "valid_ppl_q"]
    expected = [[str(d), label, e, v, q] for d, label in zip(log_runs, ["STD", "ADMM {±1} layer"])
                for e, v, q in RUNS[d.name][1]]
    got = [[a, b, int(e), float(v), float(q) if q else None] for a, b, e, v, q in rows[1:]]
    assert got == expected
    # odd pixel sizes are exact too, and the linear axis works
    r = invoke(["plot", "curves", log_runs[0], "-o", out, "--width", 1001, "--height", 333, "--dpi", 97,
                "--y-scale", "linear"])
    assert r.exit_code == 0, r.output
    assert png_size(out) == (1001, 333)


def test_curves_leave_a_binarized_runs_latent_perplexity_off_the_axes(log_runs, tmp_path):
    from rescorer.report.plots import theta_ceiling
    from rescorer.train.runlogs import read_runs

    d = tmp_path / "binlin"
    d.mkdir()
    rows = [{"epoch": 1, "lr": 1.0, "valid_ppl": 5.4e50, "valid_ppl_q": 415.5, "best": True}]
    (d / "train_log.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (d / "train.log").write_text('2026-01-01 00:00:00 method config: {"method": "bin-lin"}\n')
    runs = read_runs([*log_runs, d])
    assert theta_ceiling(runs) == 10 * 900.5  # the worst deployed model, not the latent 5.4e50
    out = tmp_path / "c.png"
    r = invoke(["plot", "curves", *log_runs, d, "-o", out, "--svg"])
    assert r.exit_code == 0, r.output
    assert "off the scale" in (tmp_path / "c.svg").read_text()
    assert read_csv(tmp_path / "c.csv")[-1][3:] == ["5.4e+50", "415.5"]  # the CSV keeps every point


def test_pareto_marking_on_hand_made_points():
    pts = [(1.0, 120.0), (2.0, 110.0), (2.0, 115.0), (3.0, 110.0), (0.5, 130.0), (4.0, 100.0), (1.0, 120.0),
           (5.0, 100.0), (0.4, 140.0), (0.6, 131.0)]
    # (2,115) loses to (2,110); (3,110) to (2,110); (5,100) to (4,100); (0.6,131) to (0.5,130); equal points both stay
    assert pareto_front(pts) == [True, True, False, False, True, True, True, False, True, False]
    assert pareto_front([]) == [] and pareto_front([(1.0, 1.0)]) == [True]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, ptb_slice):
    """A real (tiny) trained run directory with its test evaluation."""
    d = train_tiny(tmp_path_factory.mktemp("front") / "std", ptb_slice, 40, 8)
    r = invoke(["eval", "--lm", d, "--text", ptb_slice / "test.txt", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    (d / "test_eval.json").write_text(r.output)
    return d


def test_front_from_run_dirs_with_paper_points(tiny_run, tmp_path):
    from rescorer.report.model_size import describe_lm_file

    worse = tmp_path / "worse"
    shutil.copytree(tiny_run, worse)
    ppl = json.loads((tiny_run / "test_eval.json").read_text())["ppl"]
    (worse / "test_eval.json").write_text(json.dumps({"ppl": ppl * 1.5}))
    out = tmp_path / "front.png"
    r = invoke(["plot", "front", tiny_run, worse, "--paper", "-o", out, "--width", 800, "--height", 600,
                "--label", "tiny", "--label", "tiny worse"])
    assert r.exit_code == 0, r.output
    assert png_size(out) == (800, 600)
    rows = read_csv(tmp_path / "front.csv")
    assert rows[0] == ["source", "label", "run", "size_mib", "test_ppl", "pareto"]
    rep = describe_lm_file(tiny_run)
    runs = [r for r in rows[1:] if r[0] == "run"]
    assert [(r[1], float(r[3]), float(r[4]), r[5]) for r in runs] == [
        ("tiny", pytest.approx(rep.paper_bytes / 2 ** 20), pytest.approx(ppl), "1"),
        ("tiny worse", pytest.approx(rep.paper_bytes / 2 ** 20), pytest.approx(ppl * 1.5), "0")]  # same size
    paper = [(r[1], float(r[3]), float(r[4])) for r in rows[1:] if r[0] == "paper"]
    assert paper == [(p.label, p.size_mb, p.ppl) for p in PAPER_TABLE1] and len(paper) == 14
    # the true file size instead of the paper's count
    r = invoke(["plot", "front", tiny_run, "--size", "file", "-o", out])
    assert r.exit_code == 0, r.output
    assert float(read_csv(tmp_path / "front.csv")[1][3]) == pytest.approx(rep.size_bytes / 2 ** 20)


SWEEP = """lm_scale\twip\terrors\twer\terrors:slt\twer:slt\terrors:rms\twer:rms
0\t0\t60\t30.00\t40\t40.00\t20\t20.00
1\t0\t50\t25.00\t30\t30.00\t20\t20.00
2\t0\t55\t27.50\t33\t33.00\t22\t22.00
0\t0.5\t58\t29.00\t38\t38.00\t20\t20.00
1\t0.5\t52\t26.00\t31\t31.00\t21\t21.00
2\t0.5\t57\t28.50\t35\t35.00\t22\t22.00
"""


def rescore_dir(d, test=True):
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({"weights": {"lm_scale": 1.0, "wip": 0.0}, "chosen_by": "dev"}))
    (d / "sweep.tsv").write_text(SWEEP)
    if test:
        (d / "sweep.test.tsv").write_text(SWEEP.replace("\t50\t25.00", "\t48\t24.00"))
    return d


def test_sweep_png_and_csv_rows_equal_the_sweep_files(tmp_path):
    d = rescore_dir(tmp_path / "resc")
    out = tmp_path / "sweep.png"
    r = invoke(["plot", "sweep", d, "-o", out, "--width", 900, "--height", 500])
    assert r.exit_code == 0, r.output
    assert png_size(out) == (900, 500)
    rows = read_csv(tmp_path / "sweep.csv")
    assert rows[0] == ["set", "subset", "wip", "lm_scale", "errors", "wer", "chosen"]
    got = sorted((s, n, float(w), float(a), int(e), float(x), int(c)) for s, n, w, a, e, x, c in rows[1:])
    expected = []
    for set_name, text in (("dev", SWEEP), ("test", SWEEP.replace("\t50\t25.00", "\t48\t24.00"))):
        for line in text.splitlines()[1:]:
            f = line.split("\t")
            for k, name in enumerate(("total", "slt", "rms")):
                expected.append((set_name, name, float(f[1]), float(f[0]), int(f[2 + 2 * k]), float(f[3 + 2 * k]),
                                 int(f[0] == "1" and f[1] == "0")))
    assert got == sorted(expected)
    assert sum(int(r[6]) for r in rows[1:]) == 6  # 2 sets x 3 lines at the chosen weights


def test_sweep_chosen_point_must_be_on_the_grid(tmp_path):
    d = rescore_dir(tmp_path / "resc", test=False)
    (d / "summary.json").write_text(json.dumps({"weights": {"lm_scale": 1.5, "wip": 0.0}, "chosen_by": "dev"}))
    r = invoke(["plot", "sweep", d, "-o", tmp_path / "s.png"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "sweep.tsv: the chosen weights (LM scale 1.5, wip 0)" in r.output
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "s.csv").exists()


def test_bad_inputs_are_one_line_errors(log_runs, tmp_path):
    out = tmp_path / "c.png"
    (log_runs[1] / "train_log.jsonl").write_text('{"epoch": 1, "valid_ppl": 3.0}\n{"epoch": 2,\n')
    r = invoke(["plot", "curves", *log_runs, "-o", out])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert r.output.startswith(f"admmq: error: {log_runs[1] / 'train_log.jsonl'}:2: not JSON")
    (log_runs[1] / "train_log.jsonl").unlink()
    r = invoke(["plot", "curves", *log_runs, "-o", out])
    assert r.exit_code == 1 and f"{log_runs[1] / 'train_log.jsonl'}: no such file" in r.output
    r = invoke(["plot", "front", log_runs[0], "-o", out])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "test_eval.json: no such file" in r.output
    r = invoke(["plot", "curves", log_runs[0], "-o", tmp_path / "c.jpg"])
    assert r.exit_code == 1 and "output must be a .png file name" in r.output
    r = invoke(["plot", "sweep", tmp_path, "-o", out])
    assert r.exit_code == 1 and "summary.json: no such file" in r.output
    assert not out.exists()


def test_without_matplotlib_or_tensorboard_the_features_name_their_extra(log_runs, tmp_path, monkeypatch,
                                                                         ptb_slice):
    real = builtins.__import__

    def no_extras(name, *args, **kw):
        if name.split(".")[0] in ("matplotlib", "tensorboard") or name.startswith("torch.utils.tensorboard"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_extras)
    r = invoke(["plot", "curves", *log_runs, "-o", tmp_path / "c.png"])
    assert r.exit_code == 1 and r.output == "admmq: error: admmq plot needs matplotlib: pip install 'admmq[plot]'\n"
    out = tmp_path / "run"
    r = invoke(["train", "--train", ptb_slice / "train.txt", "--valid", ptb_slice / "valid.txt", "-o", out,
                "--tensorboard", tmp_path / "tb", "--quiet"])
    assert r.exit_code == 1
    assert r.output == ("admmq: error: --tensorboard needs the tensorboard package: "
                        "pip install 'admmq[tensorboard]'\n")
    assert not out.exists()  # refused before any work


BLOCKED_RUN = textwrap.dedent("""
    import importlib.abc, json, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("matplotlib", "tensorboard") or name.startswith("torch.utils.tensorboard"):
                raise ImportError("blocked: " + name)

    sys.meta_path.insert(0, Blocker())
    from click.testing import CliRunner
    from rescorer.cli import cli
    d = sys.argv[1]
    results = {}
    for name, args in [
        ("train", ["train", "--train", d + "/train.txt", "--valid", d + "/valid.txt", "-o", d + "/run",
                   "--embed-dim", "8", "--hidden-dim", "8", "--epochs", "1", "--max-sentences", "20",
                   "--device", "cpu", "--quiet"]),
        ("eval", ["eval", "--lm", d + "/run", "--text", d + "/valid.txt", "--json", "--quiet"]),
        ("export", ["export", "--lm", d + "/run", "-o", d + "/run.admmq", "--quiet"]),
        ("wer", ["wer", d + "/ref.txt", d + "/hyp.txt"]),
        ("rescore", ["rescore", d + "/nbest.txt", "--lm", d + "/run.admmq", "--ref", d + "/ref.txt",
                     "-o", d + "/resc", "--lm-scale-grid", "0:1:0.5", "--quiet"]),
        ("plot", ["plot", "curves", d + "/run", "-o", d + "/c.png"]),
    ]:
        r = CliRunner().invoke(cli, args)
        results[name] = [r.exit_code, r.output]
    results["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "tensorboard"))
    print(json.dumps(results))
""")


def test_core_commands_import_and_run_without_matplotlib_and_tensorboard(ptb_slice, tmp_path):
    for name in ("train.txt", "valid.txt"):
        shutil.copy(ptb_slice / name, tmp_path / name)
    sents = (ptb_slice / "valid.txt").read_text().splitlines()[:2]
    (tmp_path / "ref.txt").write_text("".join(f"u{i} {s}\n" for i, s in enumerate(sents)))
    (tmp_path / "hyp.txt").write_text("".join(f"u{i} {' '.join(s.split()[1:])}\n" for i, s in enumerate(sents)))
    nbest = "".join(f"u{i}-{n} {c} {' '.join(s.split()[n - 1:])}\n" for i, s in enumerate(sents) for n, c in
                    ((1, 5.0), (2, 4.0)))
    (tmp_path / "nbest.txt").write_text("# admmq-nbest costs: acwt\n" + nbest)
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("train", "eval", "export", "wer", "rescore"):
        assert res[name][0] == 0, (name, res[name][1])
    assert json.loads(res["eval"][1])["ppl"] > 1
    assert res["plot"] == [1, "admmq: error: admmq plot needs matplotlib: pip install 'admmq[plot]'\n"]
    assert res["loaded"] == []
