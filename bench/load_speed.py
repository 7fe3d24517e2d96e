"""Loading a packed low-bit LM against its fp32 checkpoint, on CPU: time and peak memory.

    python bench/load_speed.py [--repeats 5]

The model is the paper's PTB shape (embedding 200, one LSTM layer of 200
units, the 10k PTB vocabulary built from ptb.train), randomly initialised and
quantized here, not trained: loading cost does not depend on the values.
Quantization is the simple projection of ``bench/toy_lms.py`` (nearest
level of alpha * set, alpha = mean |w| per matrix or per row).  Cases:

* fp32 checkpoint: a full-precision training checkpoint (the baseline);
* quantized checkpoint: a training checkpoint of the layer-tied binary model
  (full-precision Θ plus the ``quantized`` codes, as training writes it);
* packed files of that binary model (1 bit), of a node-tied ternary model
  (1.6 bits) and of a node-tied {±1,±2,±4} model (2.67 bits).

Each case runs in its own subprocess (so memory figures do not mix):
``rescorer.pack.lm_file.load_lm`` is timed (best of ``--repeats``, first load
included) and peak RSS (VmHWM, reset after the imports through /proc/self/clear_refs)
is read after the first load; "added" is that peak minus the RSS after
importing torch and admmq.
Ratios are against the fp32 checkpoint measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, from /proc (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    """Make VmHWM restart from the current RSS (importing torch peaks higher than a small load)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def child(path: str, repeats: int) -> None:
    import torch

    from rescorer.pack.lm_file import load_lm

    torch.set_num_threads(1)
    _reset_peak()
    base = _status_mib("VmRSS")
    times = []
    t0 = time.perf_counter()
    lm = load_lm(path)
    times.append(time.perf_counter() - t0)
    peak = _status_mib("VmHWM")
    del lm
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        load_lm(path)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": min(times), "first": times[0], "peak_mib": peak, "base_mib": base}))


def build(tmp: Path) -> dict:
    import torch

    from bench.common import ptb_slice
    from rescorer.pack.bitpack import CodePacking
    from rescorer.pack.checkpoint import save_checkpoint
    from rescorer.lm.model import LSTMLM, ModelConfig
    from rescorer.pack.lm_file import export_packed
    from rescorer.lm.vocab import Vocab
    from bench.toy_lms import quantize_model

    train = ptb_slice("train", 0, tmp / "train.txt")
    vocab = Vocab.build(line.split() for line in train.read_text().splitlines())
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(vocab))
    model = LSTMLM(cfg)
    base = {"model_config": cfg.to_dict(), "units": vocab.to_state(), "model": model.state_dict()}
    paths = {"fp32 checkpoint": tmp / "fp32.pt"}
    save_checkpoint(paths["fp32 checkpoint"], {**base, "method_config": {"method": "fp"}})
    for scheme, tying, bits, label in (("binary", "layer", CodePacking(bits=1), "binary layer, 1 bit"),
                                       ("ternary", "node", CodePacking(base=3), "{0,±1} node, 1.6 bits"),
                                       ("pow4", "node", CodePacking(base=6), "{±1,±2,±4} node, 2.67 bits")):
        q = quantize_model(model, scheme, tying)
        ckpt = tmp / f"{scheme}-{tying}.pt"
        save_checkpoint(ckpt, {**base, "method_config": {"method": "admm", "tying": tying},
                               "quantized": {k: v.to_state() for k, v in q.items()}})
        if scheme == "binary":
            paths["quantized checkpoint (binary layer)"] = ckpt
        paths[f"packed {label}"] = tmp / f"{scheme}-{tying}.packed"
        export_packed(ckpt, paths[f"packed {label}"], bits)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="loads per case (the best is reported)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.repeats)
    from bench.common import machine, table

    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(tmp))
        results = {}
        for label, path in paths.items():
            out = subprocess.run([sys.executable, __file__, "--child", str(path), "--repeats", str(args.repeats)],
                                 check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            results[label] = {**json.loads(out.stdout.strip().splitlines()[-1]), "bytes": path.stat().st_size}
    ref = results["fp32 checkpoint"]
    rows = []
    for label, r in results.items():
        added, ref_added = r["peak_mib"] - r["base_mib"], ref["peak_mib"] - ref["base_mib"]
        rows.append([label, f"{r['bytes']:,}", ref["bytes"] / r["bytes"], 1000 * r["seconds"],
                     r["seconds"] / ref["seconds"], r["peak_mib"], added, added / ref_added])
    print(f"# load_lm on CPU, 1x200 LSTM, PTB vocabulary (random weights), one process and 1 torch thread per "
          f"case, best of {args.repeats}; {machine()}")
    print(table(["file", "bytes", "smaller x", "load ms (best)", "time vs fp32", "peak RSS MiB", "added MiB",
                 "added vs fp32"], rows))


if __name__ == "__main__":
    main()
