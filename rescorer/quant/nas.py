"""Differentiable search over per-matrix precisions (``--metric nas``, the third method of Xu et al. 2021).

Every weight matrix W_l of the full-precision LM gets a softmax over its
candidate tables, π_l = softmax(a_l).  Each step the LM runs with a relaxed
sample of one table per matrix (Gumbel-softmax, temperature τ annealed
geometrically from ``tau_start`` to ``tau_end``, so late steps see nearly
discrete choices and the cross entropy of actual quantized weights),

    W_l = Σ_b y_l,b · Q_b(W_l),  y_l = softmax((a_l + g_l) / τ), g_l Gumbel noise
    (Q_b: the projections of :mod:`.sensitivity`),

while the architecture logits a_l are trained (Adam) on validation batches
to minimise

    CE(W) + μ · max(0, E_π[stored bits per weight] − budget),

the expected size Σ_l n_l Σ_b π_l,b · bits_b / Σ_l n_l; the hinge (``mu``
nats per bit over the budget) pushes the search under the budget and leaves
it alone below, so the choice among the allocations that fit is the cross
entropy's.  The weights themselves stay frozen — the search only decides how
much each matrix prefers each table.

The result is a sensitivity table like the other metrics' with value
−ln π_l,b (nats, lower = preferred), so the exact knapsack of
:mod:`.mixed` turns it into the most preferred allocation that fits the
budget exactly (the search alone only meets it in expectation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from rescorer.lm.batching import length_sorted_batches
from rescorer.lm.corpus import EncodedCorpus
from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM
from rescorer.progress import progress_bar
from rescorer.quant.mixed import Width, qset_for_bits, stored_bits


@dataclass
class SearchTrace:
    """How the search went: per step the cross entropy, expected bits per weight, excess over the budget."""

    ce: List[float] = field(default_factory=list)
    bits: List[float] = field(default_factory=list)
    over: List[float] = field(default_factory=list)


def _output_weight(model: LSTMLM, mixed: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The output layer's (V, H) weight under the mixture (embedding rows when tied)."""
    if model.decoder.weight is not None:
        return mixed.get("decoder.weight", model.decoder.weight)
    emb = mixed.get("embedding.weight", model.embedding.weight)
    return emb[: model.cfg.output_size]


def nas_preferences(model: LSTMLM, corpus: EncodedCorpus, units,
                    variants: Mapping[str, Mapping[Width, torch.Tensor]], budget_bits: float, steps: int = 200,
                    lr: float = 0.05, mu: float = 2.0, batch_tokens: int = 4096, seed: int = 1,
                    tau_start: float = 1.0, tau_end: float = 0.1, quiet: bool = True) -> Tuple[Dict[str, Dict[Width, float]], int, SearchTrace]:
    """−ln π per (matrix, table) after ``steps`` search steps; also the tokens seen and the trace.

    ``variants``: name -> table -> Q_b(W) ((R, C) float, as :func:`.sensitivity.quantized_variants`).
    """
    if budget_bits <= 0:
        raise AdmmqError(f"nas: the budget must be positive bits per weight, got {budget_bits}")
    if steps < 1:
        raise AdmmqError(f"nas: at least one search step is needed, got {steps}")
    batches = list(length_sorted_batches(corpus, batch_tokens, units.bos_id, units.eos_id))
    if not batches:
        raise AdmmqError("nas: the validation text has no sentences")
    names = list(variants)
    widths = {n: list(variants[n]) for n in names}
    params = dict(model.named_parameters())
    numel = {n: params[n].numel() for n in names}
    total = float(sum(numel.values()))
    dev = next(model.parameters()).device
    bits = {n: torch.tensor([stored_bits(qset_for_bits(b)) for b in widths[n]], device=dev) for n in names}
    stacks = {n: torch.stack([variants[n][b].to(dev) for b in widths[n]]) for n in names}  # (|B|, R, C)
    logits = {n: torch.zeros(len(widths[n]), device=dev, requires_grad=True) for n in names}
    opt = torch.optim.Adam(list(logits.values()), lr=lr)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    trace = SearchTrace()
    tokens = 0
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with progress_bar("precision search", steps, quiet) as bar:
            for step in range(steps):
                batch = batches[int(rng.integers(len(batches)))].to(dev)
                tau = tau_start * (tau_end / tau_start) ** (step / max(1, steps - 1))
                probs = {n: torch.softmax(logits[n], 0) for n in names}
                mixed = {}
                for n in names:
                    u = torch.rand(len(widths[n]), generator=gen).clamp_(1e-9, 1 - 1e-9).to(dev)
                    y = torch.softmax((logits[n] - torch.log(-torch.log(u))) / tau, 0)
                    mixed[n] = torch.tensordot(y, stacks[n], dims=1)  # Σ_b y_b Q_b
                hidden = functional_call(model, mixed, (batch.inputs,))[0]
                mask = batch.targets != -100
                out = F.linear(hidden[mask], _output_weight(model, mixed), model.decoder.bias)
                ce = F.cross_entropy(out, batch.targets[mask])
                size = sum(numel[n] * (probs[n] * bits[n]).sum() for n in names) / total
                loss = ce + mu * torch.relu(size - budget_bits)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tokens += int(mask.sum())
                trace.ce.append(float(ce.detach()))
                trace.bits.append(float(size.detach()))
                trace.over.append(max(0.0, float(size.detach()) - budget_bits))
                bar.advance(1)
                bar.update(info=f"ce {trace.ce[-1]:.3f} bits {trace.bits[-1]:.3f}")
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
    values: Dict[str, Dict[Width, float]] = {}
    for n in names:
        logp = torch.log_softmax(logits[n].detach(), 0).tolist()
        values[n] = {b: -lp for b, lp in zip(widths[n], logp)}
        assert all(math.isfinite(v) for v in values[n].values()), (n, values[n])
    return values, tokens, trace
