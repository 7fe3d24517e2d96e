"""Knowledge distillation from a trained LM: the training objective with a teacher's soft targets.

With a teacher LM T (full precision, trained; evaluated without dropout) and a weight β, the summed
training objective of a batch is

    (1 − β) · Σ_t −log p_S(w_t | h_t)  +  β · Σ_t Σ_v −p_T(v | h_t) · log p_S(v | h_t)

i.e. the cross entropy against the data mixed with the cross entropy against the teacher's whole
next-word distribution (KL(p_T ‖ p_S) plus the teacher's entropy, which does not depend on the
student).  A quantized student that starts from the teacher's weights (``--init-from``) is pulled
towards what the teacher predicts for *every* word, not only towards the observed one, which
regularises it on a small corpus (the teacher's distribution carries what it learnt from the data
without re-fitting the data's noise).  The cross entropy against the data alone is returned as well,
for the training perplexity that the logs report.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from rescorer.errors import MismatchError
from rescorer.lm.model import LSTMLM, State


def check_teacher(student: LSTMLM, teacher: LSTMLM, source: str) -> None:
    """The teacher must predict the same outputs as the student (same vocabulary size)."""
    if teacher.cfg.output_size != student.cfg.output_size:
        raise MismatchError(f"teacher has {teacher.cfg.output_size} outputs, the model being trained "
                            f"{student.cfg.output_size} (distillation needs the same vocabulary)", source)


def distillation_loss(student: LSTMLM, teacher: LSTMLM, inputs: torch.Tensor, targets: torch.Tensor, weight: float,
                      state: Optional[State] = None,
                      ignore_index: int = -100) -> Tuple[torch.Tensor, torch.Tensor, State]:
    """(objective, data cross entropy, student's final state) of one batch, both sums in nats.

    inputs, targets: (B, T) int64 (targets ``ignore_index`` where padded); ``weight`` β in [0, 1].
    The teacher runs from a zero state without gradients (sentence-level training).
    """
    assert 0.0 <= weight <= 1.0, weight
    h, state = student(inputs, state)
    mask = targets != ignore_index
    logp = F.log_softmax(student.logits(h[mask]), dim=-1)  # (N, V) over the N real target positions
    ce = -logp.gather(1, targets[mask].unsqueeze(1)).sum()
    with torch.no_grad():
        was_training = teacher.training
        teacher.eval()
        th, _ = teacher(inputs)
        p_teacher = F.softmax(teacher.logits(th[mask]), dim=-1)  # (N, V)
        teacher.train(was_training)
    soft = -(p_teacher * logp).sum()
    return (1.0 - weight) * ce + weight * soft, ce, state
