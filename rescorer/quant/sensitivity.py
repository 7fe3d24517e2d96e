"""How much each weight matrix suffers from quantization: the two metrics of Xu et al. (2021).

For a full-precision LM and each weight matrix W_l (R, C) and width b,
Q_b(W_l) is the optimal projection of W_l onto the b-bit table of
:mod:`.mixed` (α from the exact breakpoint sweep, eqs. 18-20).

* ``kl``: the mean over validation tokens of KL(p_fp ‖ p_q), where p_q is the
  LM with only W_l replaced by Q_b(W_l) (every other matrix full precision).
  0 when Q_b(W_l) = W_l.
* ``hessian``: Tr(C_l)/n_l · ‖Q_b(W_l) − W_l‖², C_l a curvature matrix of
  the mean per-token cross entropy with respect to W_l (n_l weights): the
  second-order estimate of the loss increase when the quantization error is
  spread evenly over C_l's eigen-directions.  Two estimators of the trace
  (``trace``):

  - ``gauss-newton`` (default): C_l = G_l, the Gauss-Newton matrix
    (1/N) Σ_t J_tᵀ (diag p_t − p_t p_tᵀ) J_t (J_t the Jacobian of token t's
    logits), which for softmax cross entropy equals the Fisher matrix.  One
    sample draws a label y_t ~ p_t at every token and takes the gradient g of
    Σ_t −ln p_t(y_t) (one ordinary backward pass per batch):
    E‖g_l‖²/N = Tr(G_l), since the per-token gradients J_tᵀ(p_t − e_{y_t}) are
    independent with mean 0.  Every sample is ≥ 0, so the estimate is never
    negative: G is positive semi-definite, unlike the Hessian.
  - ``hutchinson``: C_l = H_l, the Hessian, by Hutchinson's estimator: for
    Rademacher probes v (entries ±1), E[vᵀ H v] = Tr(H).  One probe draws an
    independent v_l for every matrix and computes all products H v with one
    double backward pass, so vᵀ_l (H v)_l = vᵀ_l H_ll v_l + Σ_{m≠l} vᵀ_l H_lm v_m,
    whose cross terms have mean 0.  The cross entropy is not convex: a trace
    can be negative, where the second-order model predicts no loss at all.
    A table is then refused (one line naming the matrix) rather than built on
    a trace clipped to 0.  cuDNN's / oneDNN's LSTM has no double backward,
    so the model runs its native cell (:attr:`rescorer.lm.model.LSTMLM.native_lstm`).

  Either way at least ``probes`` samples are drawn, then more until every
  standard error (sample std / √samples) is at most ``rel_se`` of its trace's
  magnitude, up to ``max_probes``; the table reports trace ± standard error.
* ``nas``: −ln π_l,b of a differentiable search over the tables
  (:mod:`.nas`): softmax weights over each matrix's candidates, trained on the
  validation text against the cross entropy plus a size penalty aiming at
  ``budget_bits``; lower = preferred.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from rescorer.lm.batching import length_sorted_batches
from rescorer.lm.corpus import EncodedCorpus
from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM
from rescorer.progress import progress_bar
from rescorer.quant.mixed import DEFAULT_BITS, Width, as_width, qset_for_bits, width_order
from rescorer.quant.qsets import alpha_start, parse_qset, project

METRICS = ("kl", "hessian", "nas")
TRACES = ("gauss-newton", "hutchinson")


@dataclass(frozen=True)
class SensitivityConfig:
    """``metric`` kl|hessian|nas; ``bits`` candidate widths; ``tying`` of the tables (layer|node);
    ``trace`` estimator of the hessian metric (gauss-newton|hutchinson); ``probes`` .. ``max_probes``
    trace samples, stopping once every standard error <= ``rel_se`` · |trace|; ``batch_tokens`` padded
    tokens per batch; ``max_sentences`` validation sentences used (0 = all); ``seed`` of the samples."""

    metric: str = "kl"
    bits: Sequence[Width] = DEFAULT_BITS
    tying: str = "layer"
    probes: int = 32
    trace: str = "gauss-newton"
    max_probes: int = 256
    rel_se: float = 0.1
    batch_tokens: int = 8192
    max_sentences: int = 0
    seed: int = 1
    budget_bits: float = 2.0  # nas: the size the search aims at (stored bits per weight)
    steps: int = 200  # nas: search steps (one validation batch each)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", tuple(as_width(b) for b in self.bits))
        if self.metric not in METRICS:
            raise AdmmqError(f"sensitivity metric must be one of {METRICS}, got {self.metric!r}")
        if self.tying not in ("layer", "node"):
            raise AdmmqError(f"tying must be layer or node, got {self.tying!r}")
        if self.probes < 2:
            raise AdmmqError(f"at least 2 probes are needed for a standard error, got {self.probes}")
        if self.trace not in TRACES:
            raise AdmmqError(f"trace estimator must be one of {TRACES}, got {self.trace!r}")
        if self.max_probes < self.probes or self.rel_se < 0:
            raise AdmmqError(f"need max_probes >= probes and rel_se >= 0, got max_probes {self.max_probes}, "
                             f"probes {self.probes}, rel_se {self.rel_se}")
        for b in self.bits:
            qset_for_bits(b)


@dataclass
class TraceEstimate:
    """A sampled trace: ``mean`` over ``probes`` samples, ``se`` = std / sqrt(probes)."""

    mean: float
    se: float
    probes: int


@dataclass
class SensitivityTable:
    """Sensitivity per matrix and width: ``values[name][bits]``; ``error2[name][bits]`` = ‖Q_b(W) − W‖²;
    ``numel[name]``; for ``hessian`` also ``trace[name]``."""

    metric: str
    values: Dict[str, Dict[Width, float]]
    error2: Dict[str, Dict[Width, float]]
    numel: Dict[str, int]
    trace: Dict[str, TraceEstimate] = field(default_factory=dict)
    tokens: int = 0
    config: Dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready (bits keys become strings); :meth:`from_dict` reads it back."""
        return {"format": "admmq-sensitivity", "metric": self.metric, "tokens": self.tokens,
                "config": dict(self.config), "numel": dict(self.numel),
                "values": {n: {str(b): v for b, v in d.items()} for n, d in self.values.items()},
                "error2": {n: {str(b): v for b, v in d.items()} for n, d in self.error2.items()},
                "trace": {n: asdict(t) for n, t in self.trace.items()}}

    @classmethod
    def from_dict(cls, d: dict, source: str = "sensitivity file") -> "SensitivityTable":
        if not isinstance(d, dict) or d.get("format") != "admmq-sensitivity":
            raise AdmmqError(f"{source}: not an admmq sensitivity table (write one with admmq sensitivity --json)")
        try:
            return cls(d["metric"], {n: {as_width(b): float(v) for b, v in row.items()}
                                     for n, row in d["values"].items()},
                       {n: {as_width(b): float(v) for b, v in row.items()} for n, row in d["error2"].items()},
                       {n: int(v) for n, v in d["numel"].items()},
                       {n: TraceEstimate(**t) for n, t in d.get("trace", {}).items()}, int(d.get("tokens", 0)),
                       dict(d.get("config", {})))
        except (KeyError, TypeError, ValueError, AttributeError, AdmmqError) as exc:
            raise AdmmqError(f"{source}: malformed sensitivity table ({exc})") from None

    def text(self) -> str:
        bits = width_order({b for row in self.values.values() for b in row})
        head = f"{'matrix':<22} {'weights':>10}" + "".join(f" {f'{b} bit' if isinstance(b, int) else b:>11}"
                                                              for b in bits)
        gauss_newton = self.config.get("trace") == "gauss-newton"
        if self.trace:
            head += f" {'Tr(G)' if gauss_newton else 'Tr(H)':>11} {'± se':>9}"
        lines = [f"sensitivity by {self.metric} over {self.tokens} tokens", head]
        for name, row in self.values.items():
            line = f"{name:<22} {self.numel[name]:>10,}" + "".join(f" {row[b]:>11.4g}" for b in bits)
            if name in self.trace:
                t = self.trace[name]
                line += f" {t.mean:>11.4g} {t.se:>9.2g}"
            lines.append(line)
        if self.trace:
            n = next(iter(self.trace.values())).probes
            lines.append(f"(Gauss-Newton trace, {n} draws of labels from the model)" if gauss_newton
                         else f"(Hutchinson, {n} Rademacher probes)")
        if self.metric == "nas":
            lines.append(f"(-ln pi of the precision search, {self.config.get('steps')} steps aiming at "
                         f"{self.config.get('budget_bits')} bits/weight; lower = preferred)")
        return "\n".join(lines)


# ------------------------------------------------------------ quantization
def quantized_variants(model: LSTMLM, names: Sequence[str], bits: Sequence[Width],
                       tying: str = "layer") -> Dict[str, Dict[Width, torch.Tensor]]:
    """Q_b(W) for every matrix and width: name -> bits -> (R, C) float32 (exact-start projection)."""
    params = dict(model.named_parameters())
    out: Dict[str, Dict[Width, torch.Tensor]] = {}
    for name in names:
        w = params[name].detach()
        out[name] = {}
        for b in bits:
            qset = parse_qset(qset_for_bits(b))
            proj = project(w, qset, tying, alpha_start(w, tying, "mean"), "exact")
            out[name][b] = proj.dequantize(qset).to(w.dtype)
    return out


def _batches(model: LSTMLM, corpus: EncodedCorpus, units, batch_tokens: int):
    dev = next(model.parameters()).device
    for batch in length_sorted_batches(corpus, batch_tokens, units.bos_id, units.eos_id):
        yield batch.to(dev)


# ---------------------------------------------------------------------- KL
@torch.no_grad()
def kl_sensitivity(model: LSTMLM, corpus: EncodedCorpus, units, variants: Mapping[str, Mapping[int, torch.Tensor]],
                   batch_tokens: int = 4096, quiet: bool = True) -> tuple:
    """Mean KL(p_fp ‖ p_q) per token for each (matrix, width) of ``variants``.

    Returns (name -> bits -> KL in nats, tokens).  The model's weights are
    restored afterwards.
    """
    model.eval()
    params = dict(model.named_parameters())
    sums = {n: {b: 0.0 for b in row} for n, row in variants.items()}
    tokens = 0
    n_batches = sum(1 for _ in length_sorted_batches(corpus, batch_tokens, units.bos_id, units.eos_id))
    with progress_bar("KL sensitivity", n_batches, quiet) as bar:
        for batch in _batches(model, corpus, units, batch_tokens):
            mask = batch.targets != -100
            ref = F.log_softmax(model.logits(model(batch.inputs)[0][mask]).double(), -1)  # (N, V)
            p_ref = ref.exp()
            tokens += int(mask.sum())
            for name, row in variants.items():
                saved = params[name].detach().clone()
                for b, q in row.items():
                    params[name].data.copy_(q)
                    logq = F.log_softmax(model.logits(model(batch.inputs)[0][mask]).double(), -1)
                    sums[name][b] += float((p_ref * (ref - logq)).sum())
                params[name].data.copy_(saved)
            bar.advance(1)
    return {n: {b: s / max(tokens, 1) for b, s in row.items()} for n, row in sums.items()}, tokens


# ------------------------------------------------------------ trace samples
def sample_traces(draw: Callable[[], Sequence[float]], names: Sequence[str], probes: int, max_probes: int = 0,
                  rel_se: float = 0.0, label: str = "trace samples", quiet: bool = True) -> Dict[str, TraceEstimate]:
    """Mean and standard error of ``draw()`` (one sample per name) over at least ``probes`` calls.

    After ``probes`` calls, more are made until every standard error is at
    most ``rel_se`` · |mean| or ``max(probes, max_probes)`` calls were made.
    """
    samples: Dict[str, List[float]] = {n: [] for n in names}
    cap = max(probes, max_probes)

    def estimate(n: str) -> TraceEstimate:
        s = torch.tensor(samples[n], dtype=torch.float64)
        return TraceEstimate(float(s.mean()), float(s.std(unbiased=True)) / math.sqrt(len(s)), len(s))

    with progress_bar(label, cap, quiet) as bar:
        for k in range(1, cap + 1):
            for n, z in zip(names, draw()):
                samples[n].append(float(z))
            bar.advance(1)
            if k >= probes and all(e.se <= rel_se * abs(e.mean) for e in map(estimate, names)):
                break
    return {n: estimate(n) for n in names}


def _rademacher_hv_draw(loss_terms, tensors: Sequence[torch.Tensor], generator) -> List[float]:
    """One Hutchinson sample per block: v_lᵀ (H v)_l with v ∈ {±1} drawn for every block."""
    vs = [(torch.randint(0, 2, t.shape, generator=generator, dtype=torch.int64) * 2 - 1).to(t.device, t.dtype)
          for t in tensors]
    z = [0.0] * len(tensors)
    for term in loss_terms():
        grads = torch.autograd.grad(term, tensors, create_graph=True, allow_unused=True)
        used = [(g * v).sum() for g, v in zip(grads, vs) if g is not None and g.requires_grad]
        if not used:  # the term is at most linear in every block: no curvature
            continue
        hv = torch.autograd.grad(sum(used), tensors, allow_unused=True)
        for i, (h, v) in enumerate(zip(hv, vs)):
            if h is not None:
                z[i] += float((h * v).sum())
    return z


def hutchinson_traces(loss_terms: Callable[[], Iterable[torch.Tensor]], params: Mapping[str, torch.Tensor],
                      probes: int, generator: Optional[torch.Generator] = None, quiet: bool = True,
                      max_probes: int = 0, rel_se: float = 0.0) -> Dict[str, TraceEstimate]:
    """Tr(H_l) of each parameter block by Hutchinson's estimator with Rademacher probes.

    ``loss_terms()`` yields scalar tensors whose sum is the loss (batches, so
    memory stays one batch's graph); ``params``: name -> tensor with
    ``requires_grad``.  Per probe, v_l ∈ {±1}^shape for every block, H v by a
    double backward pass per term, sample z_l = v_lᵀ (H v)_l.  Returns name ->
    mean, standard error (sample std / sqrt(probes)) and probe count
    (``max_probes``, ``rel_se``: :func:`sample_traces`).
    """
    names = list(params)
    tensors = [params[n] for n in names]
    return sample_traces(lambda: _rademacher_hv_draw(loss_terms, tensors, generator), names, probes, max_probes,
                         rel_se, "Hutchinson probes", quiet)


def _prepared(model: LSTMLM, corpus: EncodedCorpus, units, batch_tokens: int):
    model.eval()
    batches = list(_batches(model, corpus, units, batch_tokens))
    return dict(model.named_parameters()), batches, sum(int((b.targets != -100).sum()) for b in batches)


def model_hessian_traces(model: LSTMLM, corpus: EncodedCorpus, units, names: Sequence[str], probes: int,
                         batch_tokens: int = 4096, seed: int = 1, quiet: bool = True, max_probes: int = 0,
                         rel_se: float = 0.0):
    """Tr(H_l) of the mean per-token cross entropy over ``corpus`` for the matrices ``names``.

    Runs the native LSTM cell (twice differentiable); returns (name -> TraceEstimate, tokens).
    """
    params, batches, tokens = _prepared(model, corpus, units, batch_tokens)
    was_native = model.native_lstm
    model.native_lstm = True

    def terms():
        for batch in batches:
            loss, _ = model.loss(batch.inputs, batch.targets)
            yield loss / tokens

    gen = torch.Generator().manual_seed(seed)
    try:
        traces = hutchinson_traces(terms, {n: params[n] for n in names}, probes, gen, quiet, max_probes, rel_se)
    finally:
        model.native_lstm = was_native
    return traces, tokens


def model_gauss_newton_traces(model: LSTMLM, corpus: EncodedCorpus, units, names: Sequence[str], probes: int,
                              batch_tokens: int = 4096, seed: int = 1, quiet: bool = True, max_probes: int = 0,
                              rel_se: float = 0.0):
    """Tr(G_l) of the Gauss-Newton (= Fisher) matrix of the mean per-token cross entropy (module docstring).

    A sample: labels y_t ~ p_t (the model's own distribution) at every token,
    g = ∇ Σ_t −ln p_t(y_t) per batch, z_l = Σ_batches ‖g_l‖² / N (N tokens) —
    never negative.  Returns (name -> TraceEstimate, tokens).
    """
    params, batches, tokens = _prepared(model, corpus, units, batch_tokens)
    tensors = [params[n] for n in names]
    gen = torch.Generator().manual_seed(seed)

    def draw() -> List[float]:
        z = [0.0] * len(tensors)
        for batch in batches:
            mask = batch.targets != -100
            logits = model.logits(model(batch.inputs)[0][mask])  # (N_b, V)
            with torch.no_grad():
                probs = F.softmax(logits.detach().double().cpu(), -1)
                labels = torch.multinomial(probs, 1, generator=gen).squeeze(1).to(logits.device)  # (N_b,)
            grads = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), tensors,
                                        allow_unused=True)
            for i, g in enumerate(grads):
                if g is not None:
                    z[i] += float((g.double() ** 2).sum()) / tokens
        return z

    return sample_traces(draw, list(names), probes, max_probes, rel_se, "Gauss-Newton samples", quiet), tokens


# -------------------------------------------------------------- together
def measure_sensitivity(model: LSTMLM, corpus: EncodedCorpus, units, cfg: SensitivityConfig,
                        names: Optional[Sequence[str]] = None, quiet: bool = True) -> SensitivityTable:
    """The sensitivity table of ``model`` (full precision) on ``corpus`` by ``cfg.metric``."""
    if cfg.max_sentences:
        corpus = corpus.subset(range(min(cfg.max_sentences, len(corpus))))
    if len(corpus) == 0:
        raise AdmmqError("the sensitivity text has no sentences")
    names = list(names or model.weight_matrix_names())
    params = dict(model.named_parameters())
    variants = quantized_variants(model, names, cfg.bits, cfg.tying)
    error2 = {n: {b: float(((q - params[n].detach()) ** 2).sum()) for b, q in row.items()}
              for n, row in variants.items()}
    numel = {n: int(params[n].numel()) for n in names}
    trace: Dict[str, TraceEstimate] = {}
    if cfg.metric == "kl":
        values, tokens = kl_sensitivity(model, corpus, units, variants, cfg.batch_tokens, quiet)
    elif cfg.metric == "nas":
        from rescorer.quant.nas import nas_preferences
        values, tokens, _ = nas_preferences(model, corpus, units, variants, cfg.budget_bits, cfg.steps,
                                            batch_tokens=cfg.batch_tokens, seed=cfg.seed, quiet=quiet)
    else:
        estimate = model_gauss_newton_traces if cfg.trace == "gauss-newton" else model_hessian_traces
        trace, tokens = estimate(model, corpus, units, names, cfg.probes, cfg.batch_tokens, cfg.seed, quiet,
                                 cfg.max_probes, cfg.rel_se)
        for n, t in trace.items():  # never a table on a clipped or insignificant trace (Gauss-Newton: >= 0)
            if not t.mean > 2 * t.se:
                raise AdmmqError(f"the trace estimate for {n} is {t.mean:.3g} ± {t.se:.2g} after {t.probes} "
                                 f"samples, not significantly positive: no second-order sensitivity "
                                 f"(use --trace gauss-newton, which is never negative)")
        values = {n: {b: trace[n].mean / numel[n] * e for b, e in error2[n].items()} for n in names}
    return SensitivityTable(cfg.metric, values, error2, numel, trace, tokens,
                            {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()})
