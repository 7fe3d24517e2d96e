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

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from rescorer.lm.batch_control import BatchControl, ScoringStats, precision_context
from rescorer.lm.batching import IGNORE, Batch, length_sorted_batches, make_batch
from rescorer.lm.corpus import EncodedCorpus, encode_sentences
from rescorer.errors import AdmmqError
from rescorer.lm.carry_over import SentenceContext, history_states, start_states
from rescorer.lm.model import LSTMLM, State
from rescorer.lm.prefix_scoring import prefix_shared_unit_logprobs
from rescorer.lm.step_lm import DenseOutput, StepLM


@dataclass
class WordScores:
    """Per-word scores of N sentences, flat.

    ``logprob``: (total,) float64 natural-log probability of each word and of
    each sentence's final ``</s>``; sentence ``i`` owns
    ``logprob[offsets[i]:offsets[i+1]]`` (``n_i + 1`` entries, ``</s>`` last).
    ``oov``: (total,) bool, True where the word was scored as the unknown word.
    """

    logprob: np.ndarray
    offsets: np.ndarray
    oov: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sentence(self, i: int) -> np.ndarray:
        return self.logprob[self.offsets[i]: self.offsets[i + 1]]

    def totals(self) -> np.ndarray:
        """Sum per sentence: (N,) float64."""
        if self.logprob.size == 0:
            return np.zeros(len(self), dtype=np.float64)
        sums = np.add.reduceat(self.logprob, self.offsets[:-1])
        return sums


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


@dataclass(frozen=True)
class NeuralOptions:
    """How :class:`NeuralScorer` computes (``admmq rescore --prefix-sharing/--int8/--precision``)."""

    prefix_sharing: bool = True
    int8: bool = False
    precision: str = "fp32"

    def to_dict(self) -> dict:
        return {"prefix_sharing": self.prefix_sharing, "int8": self.int8, "precision": self.precision}


class NeuralScorer:
    """Scores word sequences with an LSTM LM and its units (word vocabulary or SentencePiece).

    ``batch_tokens`` bounds a batch: padded tokens (plain path) or tree
    nodes stepped at once (prefix-shared path, whose trees hold at most
    ``batch_tokens`` sentences, so no depth is wider; logits rows at once <=
    ``batch_tokens`` too).  Memory is O(batch_tokens * (H + V)) either way.  ``prefix_sharing``: score on the prefix tree
    (default) or in plain padded batches.  ``int8``: int8 output layer (CPU,
    prefix-shared; ``quantized`` = the model's quantized matrices make its
    weights exact).  ``precision``: ``fp32`` | ``tf32`` | ``bf16``.
    ``softmax_rows``: logits rows at once (default 256 on CPU, ``batch_tokens``
    on GPU).  ``before_batch``: called with the rows of every batch (fault injection).
    """

    kind = "lstm"
    uses_context = True  # takes carry-over start states (score(..., context=))

    def __init__(self, model: LSTMLM, units, batch_tokens: int = 8192, device: Optional[str] = None,
                 prefix_sharing: bool = True, int8: bool = False, precision: str = "fp32",
                 quantized: Optional[dict] = None, softmax_rows: Optional[int] = None,
                 before_batch: Optional[Callable[[int], None]] = None):
        self.model = model
        self.units = units
        self.batch_tokens = batch_tokens
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.prefix_sharing = prefix_sharing
        self.precision = precision
        self.int8 = int8
        if int8 and not prefix_sharing:
            raise AdmmqError("--int8 runs on the prefix-shared path; drop --no-prefix-sharing")
        with precision_context(precision, self.device):  # checks the name / device pair
            pass
        self.softmax_rows = softmax_rows or (256 if self.device.type == "cpu" else batch_tokens)
        self.quantized = quantized or {}
        self.before_batch = before_batch
        self.stats = ScoringStats()
        self._step_lm: Optional[StepLM] = None
        self._budget: Optional[int] = None  # rows per batch after out-of-memory halvings
        self._history = None  # (history, its end-state table) of the last carry-over

    @property
    def sentence_order(self) -> str:
        """How callers should order sentences into calls: ``prefix`` (lexicographic) or ``length``."""
        return "prefix" if self.prefix_sharing else "length"

    @property
    def prefers_concurrency(self) -> bool:
        """Run beside the other mixture components (n-grams on the CPU) when the LSTM is on a GPU."""
        return self.device.type == "cuda"

    @property
    def step_lm(self) -> StepLM:
        if self._step_lm is None:
            output = None
            if self.int8:
                from rescorer.lm.int8_output import Int8Output
                output = Int8Output(self.model, self.quantized)
            else:
                if self.precision == "fp32":  # a quantized output matrix: its exact integer codes (fp16 GEMM)
                    from rescorer.lm.code_output import codes_output
                    output = codes_output(self.model, self.quantized)
                output = output or DenseOutput(self.model)
            self._step_lm = StepLM(self.model, output, min(self.softmax_rows, self.batch_tokens))
        return self._step_lm

    def describe(self) -> str:
        path = "prefix-shared" if self.prefix_sharing else "plain batched"
        output = self.step_lm.output
        out = output.describe() if hasattr(output, "describe") else "fp32 output layer"
        return f"{path}, {out}, precision {self.precision}, batch tokens {self.batch_tokens}"

    def is_oov(self, word: str) -> bool:
        return self.units.is_oov(word)

    def _start_table(self, context: SentenceContext) -> State:
        """End states of every entry of ``context``'s history: one batched pass per history, reused by later
        calls (callers pass a history of the entries they need: ``History.restrict``)."""
        hist = context.history
        if self._history is None or self._history[0] is not hist:
            with precision_context(self.precision, self.device):
                table, steps = history_states(self.step_lm, self.units, hist, np.arange(len(hist)))
            self.stats.history_steps += steps
            self.stats.lstm_steps += steps
            self._history = (hist, table)
        return self._history[1]

    def _unit_logprobs(self, unique: List[Tuple[str, ...]],
                       start: Optional[np.ndarray] = None, table: Optional[State] = None) -> List[np.ndarray]:
        bos, eos = self.units.bos_id, self.units.eos_id
        with precision_context(self.precision, self.device):
            if self.prefix_sharing:
                control = BatchControl(self._budget or self.batch_tokens, self.before_batch, self.stats)
                seqs = [self.units.encode_sentence(s) for s in unique]
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

    def score(self, sentences: Sequence[Sequence[str]], dedup: bool = True,
              context: Optional[SentenceContext] = None) -> WordScores:
        """Per-word log-probabilities of ``sentences`` (see :class:`WordScores`).

        ``context``: carry-over (:mod:`rescorer.lm.carry_over`), each sentence's start state.
        """
        sentences = [tuple(s) for s in sentences]
        start = context.start if context is not None else np.full(len(sentences), -1, dtype=np.int64)
        assert start.shape == (len(sentences),), (start.shape, len(sentences))
        if dedup:
            first: Dict[Tuple[int, Tuple[str, ...]], int] = {}
            unique: List[Tuple[str, ...]] = []
            where = np.empty(len(sentences), dtype=np.int64)
            for i, s in enumerate(sentences):
                key = (int(start[i]), s)
                j = first.get(key)
                if j is None:
                    j = first[key] = len(unique)
                    unique.append(s)
                where[i] = j
            unique_start = np.array([k[0] for k in first], dtype=np.int64)
        else:
            unique, where, unique_start = sentences, np.arange(len(sentences)), start
        table = self._start_table(context) if context is not None and (start >= 0).any() else None
        per_unit = self._unit_logprobs(unique, unique_start, table)
        self.stats.sentences += len(unique)
        per_word: List[np.ndarray] = []
        for s, lp in zip(unique, per_unit):
            counts = self.units.units_per_word(s)
            if counts is not None and len(s):
                starts = np.concatenate([[0], np.cumsum(counts)])  # </s> is the last unit
                lp = np.add.reduceat(lp, starts)
            per_word.append(lp)
        lens = np.array([len(sentences[i]) + 1 for i in range(len(sentences))], dtype=np.int64)
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lens)
        logprob = np.concatenate([per_word[j] for j in where]) if len(where) else np.zeros(0)
        oov_u = [np.array([self.units.is_oov(w) for w in s] + [False], dtype=bool) for s in unique]
        oov = np.concatenate([oov_u[j] for j in where]) if len(where) else np.zeros(0, dtype=bool)
        return WordScores(logprob.astype(np.float64), offsets, oov)
