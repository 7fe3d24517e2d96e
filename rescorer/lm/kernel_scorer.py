"""LSTM scoring on the compiled CPU kernels from numpy weights: ``admmq rescore``'s path without PyTorch.

:class:`KernelScorer` scores like :class:`rescorer.lm.scoring.NeuralScorer` on its prefix-shared
path (same trees, same stepper protocol, same scores to float rounding) for a model loaded by
:func:`rescorer.pack.numpy_lm.load_weights_lm`, with :class:`rescorer.lm.kernel_step.KernelStep`
as the stepper.  It applies where the kernels do (one CPU thread, fp32, no int8, no
activation quantization): :func:`rescorer.ngram.scorers.kernel_scorer_for` says when and builds
it; elsewhere the PyTorch scorer runs.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from rescorer.lm.batch_control import BatchControl
from rescorer.lm.corpus import encode_each
from rescorer.lm.kernel_step import KernelStep
from rescorer.lm.prefix_scoring import prefix_shared_unit_logprobs
from rescorer.lm.word_scores import UnitLMScorer


class KernelScorer(UnitLMScorer):
    """Scores word sequences with ``lm`` (a :class:`rescorer.pack.numpy_lm.WeightsLM`) on the kernels.

    ``batch_tokens``: sentences per tree and tree nodes stepped at once; ``normalize=False``: a word's
    log-probability is its logit (a self-normalised model)."""

    def __init__(self, lib, lm, batch_tokens: int = 8192, normalize: bool = True, softmax_rows: int = 256,
                 before_batch: Optional[Callable[[int], None]] = None):
        super().__init__(lm.units)
        self.lm = lm
        self.batch_tokens = batch_tokens
        self.normalize = normalize
        self.before_batch = before_batch
        cfg = lm.cfg
        self._step_lm = KernelStep(lib, lm.weights, cfg.layers, cfg.hidden_dim, cfg.output_size,
                                   min(softmax_rows, batch_tokens), normalize)
        self._budget: Optional[int] = None

    @property
    def step_lm(self) -> KernelStep:
        return self._step_lm

    def describe(self) -> str:
        return f"prefix-shared, {self._step_lm.describe()}, precision fp32, batch tokens {self.batch_tokens}"

    def _unit_logprobs(self, unique: List[Tuple[str, ...]], start: Optional[np.ndarray] = None,
                       table=None) -> List[np.ndarray]:
        control = BatchControl(self._budget or self.batch_tokens, self.before_batch, self.stats)
        starts = (table, start + 1) if table is not None else None  # carry-over: numpy tables
        out = prefix_shared_unit_logprobs(self._step_lm, encode_each(self.units, unique), self.units.bos_id,
                                          self.units.eos_id, control, self.batch_tokens, starts=starts)
        if control.stats.oom_splits:
            self._budget = control.max_rows
        return out
