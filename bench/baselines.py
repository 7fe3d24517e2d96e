"""Baselines of ``bench/rescore_speed.py``: a naive loop, a lean per-utterance batch, and what Kaldi
users run, ``steps/pytorchnn/compute_sentence_scores.py``.

:func:`naive_scores` runs one forward pass per hypothesis; :func:`per_utterance_scores` one padded
batch per utterance from a zero state (masked log-softmax sums, nothing written).
:func:`kaldi_like_scores` does per utterance what that script does (Kaldi's
``egs/wsj/s5/steps/pytorchnn``, called by ``lmrescore_nbest_pytorchnn.sh``):

* one batch per utterance holding all its hypotheses (no dedup), each
  ``<s> w1 .. wn`` as input and ``w1 .. wn </s>`` as target, padded at the
  end to the longest with the id of ``<s>`` (Kaldi pads with id 0, which is
  ``<s>`` in its vocabulary; our output layer has no ``<s>``, so padded targets
  take ``</s>`` — the same work);
* the LSTM over the (B, T) batch, the full output layer at every padded
  position, cross entropy per position (``reduction="none"``), each
  hypothesis' first n+1 costs kept and written as text with four decimals
  (``key c1 .. cn+1``), as the script's ``write_scores`` does;
* the hidden state carried over: the first utterance starts from zeros; each
  later one from the state the model reaches on the *previous* utterance's
  first hypothesis (its padded input row, run once more from that
  utterance's own initial state, output layer included, as the script does),
  repeated over the batch.

Because of the carried state, a hypothesis' cost differs from the zero-state
cost admmq computes, except in the first utterance.

:func:`run_kaldi_script` runs the real script on the same n-best list, with a
same-shape model (Kaldi's ``RNNModel`` state dict: ``encoder``, ``rnn``,
``decoder`` with tied input/output embeddings, random weights — speed does not
depend on them) and our vocabulary with ``<s>`` first, and returns its wall
time and peak memory.  The script comes from a Kaldi checkout (``--kaldi-dir``)
or, by default, from the Kaldi source tarball the project keeps
(:data:`KALDI_TARBALL`): :func:`kaldi_script_dir` extracts
``compute_sentence_scores.py`` and ``model.py`` (Apache-2.0, with Kaldi's
``COPYING``) into ``${XDG_CACHE_HOME:-~/.cache}/admmq/kaldi-scripts/<digest>/``
once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from bench.commands import Timed, run_timed

Hyps = List[Tuple[str, ...]]
SCRIPT_DIRS = ("egs/wsj/s5/steps/pytorchnn", "steps/pytorchnn")
SCRIPT_FILES = ("compute_sentence_scores.py", "model.py")
#: Kaldi at commit f4007661 (the files Kaldi users run for n-best rescoring), next to this checkout
KALDI_TARBALL = Path(__file__).resolve().parents[2] / "shared" / "kaldi" / "kaldi-f4007661-subset.tar.gz"


@torch.no_grad()
def naive_scores(model, units, sentences, device) -> np.ndarray:
    """One forward pass per hypothesis: ln P(words </s>)."""
    out = np.empty(len(sentences))
    for i, words in enumerate(sentences):
        ids = units.encode_sentence(words).tolist()
        x = torch.tensor([[units.bos_id] + ids], device=device)
        y = torch.tensor(ids + [units.eos_id], device=device)
        hidden, _ = model(x)
        logp = torch.log_softmax(model.logits(hidden[0]).float(), dim=-1)
        out[i] = logp.gather(1, y[:, None]).sum().item()
    return out


@torch.no_grad()
def per_utterance_scores(model, units, utterances: Sequence[Hyps], device) -> Tuple[np.ndarray, int]:
    """Kaldi-style: each utterance's hypotheses as one padded batch, log-softmax at every position.

    Returns ln P(words </s>) per hypothesis and the padded positions computed.
    """
    out, positions = [], 0
    for hyps in utterances:
        ids = [units.encode_sentence(h) for h in hyps]
        T = max(len(s) for s in ids) + 1
        inputs = torch.full((len(ids), T), units.eos_id, dtype=torch.int64)
        targets = torch.full((len(ids), T), units.eos_id, dtype=torch.int64)
        mask = torch.zeros(len(ids), T)
        for b, s in enumerate(ids):
            inputs[b, 0] = units.bos_id
            inputs[b, 1: len(s) + 1] = torch.from_numpy(s)
            targets[b, : len(s)] = torch.from_numpy(s)
            mask[b, : len(s) + 1] = 1.0
        hidden, _ = model(inputs.to(device))
        nll = F.cross_entropy(model.logits(hidden).reshape(-1, model.cfg.output_size), targets.reshape(-1).to(device),
                              reduction="none").reshape(len(ids), T).cpu()
        out.append(-(nll * mask).sum(dim=1).double().numpy())
        positions += len(ids) * T
    return np.concatenate(out), positions


@torch.no_grad()
def kaldi_like_scores(model, units, utterances: Sequence[Hyps], device) -> Tuple[np.ndarray, int, List[str]]:
    """Per utterance, as Kaldi's ``compute_sentence_scores.py`` (module docstring).

    Returns ln P(words </s>) per hypothesis (float64, in input order), the LSTM steps (= output rows)
    computed, and the score lines the script would write (``<utt>-<rank> c1 .. cn+1``).
    """
    out, steps, lines = [], 0, []
    carry = None  # ((L, 1, H), (L, 1, H)) after the previous utterance's first hypothesis
    for u, hyps in enumerate(utterances):
        ids = [units.encode_sentence(h) for h in hyps]
        B, T = len(ids), max(len(s) for s in ids) + 1
        inputs = torch.full((B, T), units.bos_id, dtype=torch.int64)
        targets = torch.full((B, T), units.eos_id, dtype=torch.int64)
        for b, s in enumerate(ids):
            inputs[b, 1: len(s) + 1] = torch.from_numpy(s)
            targets[b, : len(s)] = torch.from_numpy(s)
        inputs, targets = inputs.to(device), targets.to(device)
        if carry is None:
            L, H = model.cfg.layers, model.cfg.hidden_dim
            first = (torch.zeros(L, 1, H, device=device), torch.zeros(L, 1, H, device=device))
        else:
            first = carry
        state = (first[0].repeat(1, B, 1), first[1].repeat(1, B, 1))
        hidden, _ = model(inputs, state)  # (B, T, H)
        nll = F.cross_entropy(model.logits(hidden).reshape(B * T, -1), targets.reshape(-1),
                              reduction="none").reshape(B, T).cpu().numpy()
        h1, carry = model(inputs[:1], first)  # the first hypothesis again, for the next utterance's state
        model.logits(h1)  # the script's model computes (and drops) its output layer here too
        steps += B * T + T
        for b, s in enumerate(ids):
            costs = nll[b, : len(s) + 1]
            lines.append(f"{u}-{b + 1} " + " ".join(f"{c:.4f}" for c in costs))
            out.append(-costs.astype(np.float64).sum())
    return np.array(out), steps, lines


def kaldi_positions(utterances: Sequence[Hyps]) -> int:
    """LSTM steps (= output rows) Kaldi's script computes: each utterance's hypotheses padded to its longest
    plus ``</s>``, and the first hypothesis once more for the carried state."""
    return sum((len(hyps) + 1) * (max(len(h) for h in hyps) + 1) for hyps in utterances if hyps)


def script_dir(kaldi_dir: str) -> Path:
    """The directory of ``compute_sentence_scores.py`` and ``model.py`` in a Kaldi checkout."""
    for rel in SCRIPT_DIRS:
        d = Path(kaldi_dir) / rel
        if all((d / f).is_file() for f in SCRIPT_FILES):
            return d
    sys.exit(f"error: --kaldi-dir {kaldi_dir}: no {SCRIPT_DIRS[0]}/compute_sentence_scores.py and model.py there")


def extract_scripts(tarball: Path, cache: Optional[Path] = None) -> Path:
    """Kaldi's ``steps/pytorchnn`` scripts (and ``COPYING``) from a Kaldi source tarball, extracted once into
    ``cache`` (default ``${XDG_CACHE_HOME:-~/.cache}/admmq/kaldi-scripts``) under the tarball's digest."""
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()[:16]
    base = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "admmq" / "kaldi-scripts"
    dest = base / digest
    if all((dest / f).is_file() for f in SCRIPT_FILES):
        return dest
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=base))
    try:
        with tarfile.open(tarball) as tar:
            found = {}
            for m in tar.getmembers():
                name = Path(m.name)
                if m.isfile() and (name.name in SCRIPT_FILES and any(m.name.endswith(f"{r}/{name.name}")
                                                                    for r in SCRIPT_DIRS) or
                                   name.name == "COPYING" and len(name.parts) <= 2):
                    found.setdefault(name.name, m)
            missing = [f for f in SCRIPT_FILES if f not in found]
            if missing:
                sys.exit(f"error: {tarball} holds no {SCRIPT_DIRS[0]}/{missing[0]}")
            for fname, m in found.items():
                (tmp / fname).write_bytes(tar.extractfile(m).read())
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def kaldi_script_dir(kaldi_dir: Optional[str] = None, tarball: Optional[Path] = KALDI_TARBALL) -> Optional[Path]:
    """Where Kaldi's script is: in ``kaldi_dir`` (a checkout) when given, else extracted from ``tarball``;
    None when neither is at hand."""
    if kaldi_dir:
        return script_dir(kaldi_dir)
    if tarball is not None and Path(tarball).is_file():
        return extract_scripts(Path(tarball))
    return None


def kaldi_inputs(model, units, utterances: Sequence[Hyps], tmp: Path) -> Tuple[Path, Path, Path]:
    """The script's three inputs: hypotheses (``<utt>-<rank> words``), vocabulary (``word index``, ``<s>``
    first, then our words) and a same-shape ``RNNModel`` state dict (tied embeddings, random weights)."""
    cfg = model.cfg
    if cfg.embed_dim != cfg.hidden_dim:
        sys.exit("rescore_speed.py: error: --kaldi-dir needs embed_dim == hidden_dim (the script ties them)")
    words = ["<s>"] + [w for w in units.vocab.symbols if w != "<s>"]
    vocab = tmp / "words.txt"
    vocab.write_text("".join(f"{w} {i}\n" for i, w in enumerate(words)), encoding="utf-8")
    infile = tmp / "nbest.txt"
    infile.write_text("".join(f"{u}-{r} {' '.join(h)}\n" for u, hyps in enumerate(utterances)
                              for r, h in enumerate(hyps, 1)), encoding="utf-8")
    g = torch.Generator().manual_seed(0)
    V, E, H = len(words), cfg.embed_dim, cfg.hidden_dim
    emb = (torch.rand(V, E, generator=g) - 0.5) * 0.2
    state = {"encoder.weight": emb, "decoder.weight": emb, "decoder.bias": torch.zeros(V)}
    for layer in range(cfg.layers):
        fan_in = E if layer == 0 else H
        state[f"rnn.weight_ih_l{layer}"] = (torch.rand(4 * H, fan_in, generator=g) - 0.5) * 0.2
        state[f"rnn.weight_hh_l{layer}"] = (torch.rand(4 * H, H, generator=g) - 0.5) * 0.2
        state[f"rnn.bias_ih_l{layer}"] = torch.zeros(4 * H)
        state[f"rnn.bias_hh_l{layer}"] = torch.zeros(4 * H)
    weights = tmp / "model.pt"
    torch.save(state, weights)
    return infile, vocab, weights


def run_kaldi_script(scripts: Path, model, units, utterances: Sequence[Hyps], threads: int, tmp: Path) -> Timed:
    """Kaldi's script (in the directory ``scripts``) scoring ``utterances``: wall seconds (Python start and
    model load included) and peak memory, after checking that it wrote one line per hypothesis with one
    cost per word and ``</s>``."""
    infile, vocab, weights = kaldi_inputs(model, units, utterances, tmp)
    outfile = tmp / "scores.txt"
    cfg = model.cfg
    env = dict(os.environ, PYTHONPATH=str(scripts), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(scripts / "compute_sentence_scores.py"), "--infile", str(infile), "--outfile",
           str(outfile), "--vocabulary", str(vocab), "--model-path", str(weights), "--model", "LSTM",
           "--emsize", str(cfg.embed_dim), "--nhid", str(cfg.hidden_dim), "--nlayers", str(cfg.layers),
           "--oov", units.vocab.unk]
    res = run_timed(cmd, env)
    if res.returncode != 0:
        sys.exit(f"error: Kaldi's script failed (exit {res.returncode}): "
                 f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.stdout[-300:]}")
    lines = outfile.read_text(encoding="utf-8").splitlines()
    expected = [len(h) + 1 for hyps in utterances for h in hyps]
    got = [len(ln.split()) - 1 for ln in lines]
    if sorted(got) != sorted(expected):
        sys.exit(f"error: Kaldi's script wrote {len(lines)} score lines, not one per hypothesis "
                 f"({len(expected)}) with one cost per word and </s>")
    return res


def within(stand_in: float, real: float, tolerance: float = 0.2) -> bool:
    """True when the stand-in's time is within ``tolerance`` (relative) of the real script's."""
    return abs(stand_in - real) <= tolerance * real
