"""Self-normalised training (``admmq train --self-norm A``): the start of a run from a trained model.

The penalty ``A * (log Z)^2`` (:meth:`rescorer.lm.model.LSTMLM.loss`) pulls every position's
normaliser towards 1.  A trained model's normaliser is far from it (log Z about 13 per token for the
PTB STD), and the penalty's first gradients would then be large; but adding a constant to every output
bias leaves the normalised model unchanged and moves log Z by that constant.  So a run that starts
from a trained model (``--init-from``) first shifts the output biases by minus the mean log Z over
training sentences, and the penalty only has the spread of log Z left to remove.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from rescorer.lm.batching import IGNORE, length_sorted_batches
from rescorer.lm.corpus import EncodedCorpus
from rescorer.lm.model import LSTMLM


@torch.no_grad()
def centre_log_z(model: LSTMLM, corpus: EncodedCorpus, units, log: Optional[Callable[[str], None]] = None,
                 sentences: int = 2000) -> float:
    """Subtract the mean log Z over the first ``sentences`` sentences of ``corpus`` (encoded with ``units``)
    from the output bias, and say so to ``log``; returns that mean (the shift).  The normalised model's
    probabilities do not change."""
    bos, eos = units.bos_id, units.eos_id
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    part = corpus.subset(range(min(sentences, len(corpus))))
    device = next(model.parameters()).device
    for batch in length_sorted_batches(part, 8192, bos, eos):
        b = batch.to(device)
        h, _ = model(b.inputs)
        log_z = torch.logsumexp(model.logits(h[b.targets != IGNORE]).double(), -1)
        total += float(log_z.sum())
        count += log_z.numel()
    model.train(was_training)
    shift = total / max(count, 1)
    model.decoder.bias.sub_(shift)
    if log is not None:
        log(f"self-norm: output biases shifted by {-shift:.4f} (mean log Z of the training text's first "
            f"sentences); the normalised model is unchanged")
    return shift
