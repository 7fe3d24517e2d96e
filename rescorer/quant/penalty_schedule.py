"""ADMM's schedule of the penalty γ (eq. 14) and of the updates (eqs. 18-21) over training.

Schedule, in units of the corpus (``MethodConfig.admm_per_epoch = K``): 2-3 run K
times per epoch, evenly: after mini-batch b of an epoch of B whenever ⌊bK/B⌋ grows
(so at the fractions 1/K, 2/K, …, 1 of every epoch, whatever the corpus size or
batch size; K = 1 is the paper's once per epoch).  γ is a function of the training
progress t in epochs (t = epoch + b/B at the iteration): γ(t) = γ₀·g^t up to
``gamma_max`` (0: no cap), ``g = gamma_growth`` per epoch; from t_r =
``gamma_restart_after`` epochs on (0: never) γ(t) = γ₀·g_r^(t − t_r), g_r =
``gamma_restart_growth`` (0: g), a second warm-up.  The γ that an iteration at t
sets holds for the mini-batches up to the next one.

Thaw (``MethodConfig.thaw``), driven by what training observes: when an epoch gains under
``min_improvement`` and its last ADMM iteration changed no code (the projection of eq. 18 is a fixed
point: γ has grown until Θ + λ no longer crosses a decision boundary), the trainer does not halve the rate;
instead γ(t) starts again, γ(t) = γ₀·g_r^(t − t_thaw) from that epoch's end t_thaw (replacing the
``gamma_restart_after`` warm-up), and the next epoch is a warm-up the plateau schedule does not judge (no
halving, no return to the best epoch).  A run whose codes never freeze at a stall is unchanged.

The earlier form, counted in mini-batches (``admm_interval = N``, ``admm_per_epoch
= 0``): 2-3 run after every N-th mini-batch of an epoch and once more at its end
(unless its last batch was one), ⌈B/N⌉ per epoch; γ is multiplied by
``gamma_growth`` after each iteration, and restarts after iteration
``gamma_restart_after``.  Its shape depends on the corpus size (kept so that
older runs and checkpoints reproduce).  ``admm_interval = 0`` with
``admm_per_epoch = 0`` is once per epoch.
"""

from __future__ import annotations

from rescorer.quant.method import MethodConfig


def gamma_at(cfg: MethodConfig, t: float, thaw_at: float = -1.0) -> float:
    """γ(t) of the epoch-unit schedule at ``t`` epochs of training: γ₀·g^t up to the cap; from the restart
    point on (the latest thaw ``thaw_at`` ≥ 0, else ``gamma_restart_after`` > 0) γ₀·g_r^(t − t_r)."""
    restart = thaw_at if thaw_at >= 0 else (cfg.gamma_restart_after or None)  # None: no second warm-up
    if restart is not None and t >= restart:
        growth = cfg.gamma_restart_growth or cfg.gamma_growth
        gamma = cfg.gamma * growth ** (t - restart)
    else:
        gamma = cfg.gamma * cfg.gamma_growth ** t
    return min(gamma, max(cfg.gamma_max, cfg.gamma)) if cfg.gamma_max > 0 else gamma


def gamma_after_iteration(cfg: MethodConfig, iteration: int, gamma_used: float) -> float:
    """The iteration-counted form: γ for the mini-batches after ADMM iteration ``iteration`` (1-based), which
    ran with ``gamma_used``: γ·growth up to the cap, or the warm-up started again after iteration
    ``gamma_restart_after`` (RESULTS_admm.md §10)."""
    restart = cfg.gamma_restart_after
    if restart > 0 and iteration == restart:
        return float(cfg.gamma)
    growth = cfg.gamma_growth
    if restart > 0 and iteration > restart and cfg.gamma_restart_growth > 0:
        growth = cfg.gamma_restart_growth
    gamma = gamma_used * growth
    if cfg.gamma_max > 0:
        gamma = min(gamma, max(cfg.gamma_max, gamma_used))
    return gamma
