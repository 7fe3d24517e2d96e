"""Log-probabilities of word sequences under an LSTM LM — the rescoring primitive.

For each sentence ``w_1 .. w_n`` the LM gives ``n + 1`` per-word natural-log
probabilities ``log P(w_t | <s> w_1 .. w_{t-1})`` and ``log P(</s> | ...)``.
With subword units a word's figure is the sum over its pieces (exact: each
word has one segmentation).  A word outside the vocabulary is scored as the
unknown word and flagged in ``oov``; what to charge for it is decided by the
caller (:mod:`rescorer.ngram.interpolate` and :mod:`rescorer.nbest.rescore`).

Two paths give the same scores (to float rounding, <= 1e-4 per sentence):

* plain: length-sorted batches of at most ``batch_tokens`` padded tokens;
  identical sentences are scored once.  A sentence's scores do not depend on
  which batch it lands in (padding is after the sentence and the LSTM is causal).
* prefix-shared (``prefix_sharing=True``, the default): one LSTM step and one
  softmax row per node of the sentences' prefix tree
  (:mod:`rescorer.lm.prefix_scoring`); trees of at most ``batch_tokens``
  sentences, frontier slices of at most ``batch_tokens`` nodes.  On the ptb-tts 100-best lists this computes 3x
  fewer steps and rows (README, ``bench/rescore_speed.py``).

Opt-in approximations: ``int8=True`` (CPU, prefix-shared path: int8 output
layer, :mod:`rescorer.lm.int8_output`) and ``precision="bf16"`` / ``"tf32"``
(:func:`rescorer.lm.batch_control.precision_context`).  Out-of-memory failures
halve the batch and retry (:class:`rescorer.lm.batch_control.BatchControl`);
:attr:`NeuralScorer.stats` counts steps, rows and splits.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from rescorer.lm.batch_control import BatchControl, precision_context
from rescorer.lm.batching import IGNORE, Batch, length_sorted_batches, make_batch
from rescorer.lm.corpus import EncodedCorpus, encode_each, encode_sentences
from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM, State
from rescorer.lm.prefix_scoring import prefix_shared_unit_logprobs
from rescorer.lm.step_lm import DenseOutput, StepLM
from rescorer.lm.word_scores import NeuralOptions, UnitLMScorer, WordScores  # noqa: F401  (re-exported)


@torch.no_grad()
def corpus_unit_nll(model: LSTMLM, corpus: EncodedCorpus, bos: int, eos: int, batch_tokens: int = 8192,
                    device: Optional[torch.device] = None,
                    control: Optional[BatchControl] = None,
                    initial: Optional[Callable[[np.ndarray], State]] = None) -> List[np.ndarray]:
    """Negative log-probability (nats) of every unit and final ``</s>``, per sentence.

    Returns a list of N (len_i + 1,) float64 arrays.  ``control`` (optional)
    counts the work and halves a batch that runs out of memory; ``initial``
    (optional) gives the (L, B, H) start states of the sentences of a batch
    (their indices), else every sentence starts from zeros.
    """
    device = device or next(model.parameters()).device
    control = control or BatchControl(1 << 30)
    was_training = model.training
    model.eval()
    out: List[Optional[np.ndarray]] = [None] * len(corpus)

    def run(batch: Batch) -> None:
        B = len(batch.index)
        if B > control.max_rows:  # the budget shrank after an earlier failure
            for part in np.array_split(batch.index, -(-B // control.max_rows)):
                run(make_batch(corpus, part, bos, eos))
            return
        try:
            control.start(B)
            b = batch.to(device)
            state = initial(batch.index) if initial is not None else None
            nll, _ = model.token_nll(b.inputs, b.targets, state)
            nll = nll.double().cpu().numpy()
        except Exception as exc:  # out of memory: halve and retry
            control.shrink(B, exc, f"sentence of {batch.inputs.shape[1]} tokens")
            return run(batch)
        control.stats.lstm_steps += int(batch.inputs.numel())
        control.stats.softmax_rows += batch.ntokens
        control.stats.tokens += batch.ntokens
        mask = batch.targets.numpy() != IGNORE
        for row, idx in enumerate(batch.index):
            out[int(idx)] = nll[row][mask[row]]

    try:
        for batch in length_sorted_batches(corpus, batch_tokens, bos, eos):
            run(batch)
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def corpus_nll(model: LSTMLM, corpus: EncodedCorpus, bos: int, eos: int, batch_tokens: int = 8192,
               device: Optional[torch.device] = None) -> Tuple[float, int]:
    """Total negative log-probability (nats) of a corpus and the number of predicted tokens."""
    per = corpus_unit_nll(model, corpus, bos, eos, batch_tokens, device)
    return float(sum(a.sum() for a in per)), corpus.tokens


class NeuralScorer(UnitLMScorer):
    """Scores word sequences with an LSTM LM and its units (word vocabulary or SentencePiece).

    ``batch_tokens`` bounds a batch: padded tokens (plain path) or tree
    nodes stepped at once (prefix-shared path, whose trees hold at most
    ``batch_tokens`` sentences, so no depth is wider; logits rows at once <=
    ``batch_tokens`` too).  Memory is O(batch_tokens * (H + V)) either way.  ``prefix_sharing``: score on the prefix tree
    (default) or in plain padded batches.  ``int8``: int8 output layer (CPU,
    prefix-shared; ``quantized`` = the model's quantized matrices make its
    weights exact).  ``precision``: ``fp32`` | ``tf32`` | ``bf16``.  ``normalize=False``
    (prefix-shared): a word's log-probability is its logit, no normaliser (a self-normalised model).
    ``native=False``: PyTorch even where the compiled kernels would run.
    ``softmax_rows``: logits rows at once (default 256 on CPU, ``batch_tokens``
    on GPU).  ``before_batch``: called with the rows of every batch (fault injection).
    """

    def __init__(self, model: LSTMLM, units, batch_tokens: int = 8192, device: Optional[str] = None,
                 prefix_sharing: bool = True, int8: bool = False, precision: str = "fp32",
                 quantized: Optional[dict] = None, softmax_rows: Optional[int] = None,
                 before_batch: Optional[Callable[[int], None]] = None, normalize: bool = True,
                 native: Optional[bool] = None):
        super().__init__(units)
        self.model = model
        self.normalize = normalize
        self.native = native  # False: never the compiled kernels (PyTorch throughout)
        self.batch_tokens = batch_tokens
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.device_type = self.device.type
        self.prefix_sharing = prefix_sharing
        self.precision = precision
        self.int8 = int8
        if int8 and not prefix_sharing:
            raise AdmmqError("--int8 runs on the prefix-shared path; drop --no-prefix-sharing")
        if not normalize and not prefix_sharing:
            raise AdmmqError("--no-normalize-probs runs on the prefix-shared path; drop --no-prefix-sharing")
        if not normalize and int8:
            raise AdmmqError("--no-normalize-probs computes no output layer beyond the words' logits; drop --int8")
        with precision_context(precision, self.device):  # checks the name / device pair
            pass
        self.softmax_rows = softmax_rows or (256 if self.device.type == "cpu" else batch_tokens)
        self.quantized = quantized or {}
        self.before_batch = before_batch
        self._budget: Optional[int] = None  # rows per batch after out-of-memory halvings
        self._history = None  # (history, its end-state table) of the last carry-over

    @property
    def step_lm(self):
        """The stepper of prefix-tree scoring: the compiled kernels (:class:`KernelStep`) on one CPU thread
        for an fp32 model, else :class:`StepLM` (PyTorch)."""
        if self._step_lm is None:
            self._step_lm = self._kernel_step() or self._torch_step()
        return self._step_lm

    def _kernel_step(self):
        if not (self.native is not False and self.device.type == "cpu" and self.precision == "fp32" and not self.int8
                and not self.model.cfg.act_bits and torch.get_num_threads() == 1):
            return None
        from rescorer.lm import native_kernel
        lib = native_kernel.load()
        if lib is None:
            return None
        from rescorer.lm.kernel_step import KernelStep
        weights = {k: v.detach() for k, v in self.model.state_dict().items()}
        cfg = self.model.cfg
        return KernelStep(lib, weights, cfg.layers, cfg.hidden_dim, cfg.output_size,
                          min(self.softmax_rows, self.batch_tokens), self.normalize)

    def _torch_step(self) -> StepLM:
        if self.int8:
            from rescorer.lm.int8_output import Int8Output
            output = Int8Output(self.model, self.quantized)
        else:  # a quantized model's weights are already its exact (dequantized) values
            output = DenseOutput(self.model)
        return StepLM(self.model, output, min(self.softmax_rows, self.batch_tokens), self.normalize)

    def describe(self) -> str:
        path = "prefix-shared" if self.prefix_sharing else "plain batched"
        step = self.step_lm
        if hasattr(step, "output"):
            out = step.output.describe() if hasattr(step.output, "describe") else "fp32 output layer"
        else:
            out = step.describe()
        return f"{path}, {out}, precision {self.precision}, batch tokens {self.batch_tokens}"

    def _history_table(self, hist):
        with precision_context(self.precision, self.device):
            return super()._history_table(hist)

    def _unit_logprobs(self, unique: List[Tuple[str, ...]], start: Optional[np.ndarray] = None,
                       table: Optional[State] = None) -> List[np.ndarray]:
        bos, eos = self.units.bos_id, self.units.eos_id
        with precision_context(self.precision, self.device):
            if self.prefix_sharing:
                control = BatchControl(self._budget or self.batch_tokens, self.before_batch, self.stats)
                seqs = encode_each(self.units, unique)
                starts = (table, start + 1) if table is not None else None
                out = prefix_shared_unit_logprobs(self.step_lm, seqs, bos, eos, control, self.batch_tokens,
                                                  starts=starts)
            else:
                budget = self._budget or (1 << 30)
                control = BatchControl(budget, self.before_batch, self.stats)
                corpus = encode_sentences(self.units, unique)
                initial = None
                if table is not None:
                    initial = lambda index: start_states(table, start[index], self.device)  # noqa: E731
                out = [-x for x in corpus_unit_nll(self.model, corpus, bos, eos, self.batch_tokens, self.device,
                                                   control, initial)]
        if control.stats.oom_splits:
            self._budget = control.max_rows
        return out


def start_states(table, start: np.ndarray, device: Optional[torch.device] = None) -> State:
    """The (L, B, H) initial states of sentences starting after entries ``start`` (B,) (-1: zeros), from a
    carry-over table ((L, K + 1, H) h and c, numpy arrays or tensors: :func:`history_states`)."""
    rows = np.asarray(start, dtype=np.int64) + 1
    h, c = (torch.as_tensor(t[:, rows]) for t in table)
    return (h.to(device), c.to(device)) if device is not None else (h, c)
