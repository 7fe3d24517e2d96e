"""Prefix-shared scoring: one LSTM step and one output distribution per prefix-tree node.

Sentences are grouped in lexicographic order (:func:`rescorer.lm.prefix_tree.prefix_groups`,
at most ``group_sequences`` sentences and ``group_tokens`` units per group), each group's prefix tree is built,
and the tree is walked depth by depth: the nodes of a depth form the frontier,
stepped as one batch (slices of at most ``BatchControl.max_rows`` nodes) from
their parents' states; each slice's output distributions are computed once and
the log-probabilities of its children's units and, for nodes where a sentence
ends, of ``</s>`` are gathered (the outputs wait in a queue until
``softmax_rows`` of them, from one depth or several, fill one output product).  Only two depths of LSTM states are alive
((L, nodes, H) each, nodes <= ``group_sequences``) and ``softmax_rows`` rows of
logits: memory is bounded by the group and slice sizes, not by the length or
number of hypotheses.

The result per sentence is what the plain batched path gives (the same
arithmetic; float rounding differs by ~1e-6 per unit).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.lm.batch_control import BatchControl
from rescorer.lm.prefix_tree import PrefixTree, build_prefix_tree, prefix_groups


class _PendingRows:
    """Top-layer outputs waiting for the output layer, gathered across depths.

    A depth's frontier can be a handful of nodes (the first and last depths of a
    tree); running the (rows x V) output product per frontier slice would stream
    the whole output matrix for a few rows.  Rows are queued with the (row,
    target, destination) of every log-probability they serve and sent through
    the output layer once ``softmax_rows`` of them are waiting.
    """

    def __init__(self, step_lm, flat: np.ndarray, control: BatchControl):
        self.step_lm, self.flat, self.control = step_lm, flat, control
        self.h: List[Any] = []
        self.rows: List[np.ndarray] = []
        self.targets: List[np.ndarray] = []
        self.dest: List[np.ndarray] = []
        self.n = 0

    def add(self, h, rows: np.ndarray, targets: np.ndarray, dest: np.ndarray) -> None:
        """Queue (n, H) outputs; ``rows`` (sorted) index them, ``dest`` says where each log-prob goes in ``flat``."""
        self.h.append(h)
        self.rows.append(rows + self.n)
        self.targets.append(targets)
        self.dest.append(dest)
        self.n += h.shape[0]
        if self.n >= self.step_lm.softmax_rows:
            self.flush()

    def flush(self) -> None:
        if not self.n:
            return
        h = self.step_lm.concat(self.h)
        rows, targets, dest = (np.concatenate(x) for x in (self.rows, self.targets, self.dest))
        while True:
            try:
                lp = self.step_lm.logprobs_at(h, rows, targets)
                break
            except Exception as exc:  # out of memory: fewer logits rows at once (the node budget stays), retry
                self.step_lm.softmax_rows = self.control.halve(self.step_lm.softmax_rows, exc, "softmax row")
        self.flat[dest] = lp
        self.control.stats.softmax_rows += h.shape[0]
        self.h, self.rows, self.targets, self.dest, self.n = [], [], [], [], 0


def score_tree(step_lm, tree: PrefixTree, eos: int, control: BatchControl,
               roots: Optional[Tuple[Any, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Log-probabilities on the tree: (M,) log P(node's unit | parent) and (M,) log P(</s> | node).

    ``step_lm`` is a stepper (:class:`rescorer.lm.step_lm.StepLM` in PyTorch,
    :class:`rescorer.lm.kernel_step.KernelStep` on numpy): ``step(tokens, prev, parents)``,
    ``new_state(n)`` ((L, n, H) h and c), ``concat(outputs)``, ``logprobs_at(h, rows, targets)``
    and ``softmax_rows``; the bookkeeping here is numpy index
    arithmetic.  Entries not needed (the root's unit; ``</s>`` at non-terminal nodes) are 0.
    ``roots`` = ((h, c) tables (L, R, H) in the stepper's array type, ``base``): a forest of start
    states (carry-over, :mod:`rescorer.lm.carry_over`): the root is not stepped and each depth-1
    node, of virtual unit ``base + r``, reads ``<s>`` from state ``r`` (its parent row in the tables).
    """
    M = tree.num_nodes
    flat = np.zeros(2 * M, dtype=np.float64)  # node log-probs, then </s> log-probs
    pending = _PendingRows(step_lm, flat, control)
    offs = tree.depth_offsets.tolist()
    prev = None
    for d in range(len(offs) - 1):
        a, b = offs[d], offs[d + 1]
        n = b - a
        if roots is not None and d == 0:  # the forest's virtual root: its children start from the tables
            continue
        ca, cb = (offs[d + 1], offs[d + 2]) if d + 2 < len(offs) else (b, b)
        child_parent = tree.parent[ca:cb] - a  # local row of each child's parent, non-decreasing
        term = np.flatnonzero(tree.terminal[a:b])
        local_parent = tree.parent[a:b] - (offs[d - 1] if d else 0)
        tokens = tree.token
        if roots is not None and d == 1:  # virtual unit base + r: read <s> from table row r
            prev, local_parent = roots[0], tree.token[a:b] - roots[1]
            tokens = np.full(b, int(tree.token[0]), dtype=np.int64)
        new = step_lm.new_state(n)
        s0 = 0
        while s0 < n:
            s1 = min(n, s0 + control.max_rows)
            try:
                control.start(s1 - s0)
                out, state = step_lm.step(tokens[a + s0: a + s1], prev, local_parent[s0:s1] if d else None)
            except Exception as exc:  # out of memory: halve the slice and retry it
                control.shrink(s1 - s0, exc, "tree node")
                continue
            ka, kb = np.searchsorted(child_parent, [s0, s1]).tolist()
            ta, tb = np.searchsorted(term, [s0, s1]).tolist()
            rows = np.concatenate([child_parent[ka:kb] - s0, term[ta:tb] - s0])
            targets = np.concatenate([tree.token[ca + ka: ca + kb], np.full(tb - ta, eos, dtype=np.int64)])
            dest = np.concatenate([np.arange(ca + ka, ca + kb), M + a + term[ta:tb]])
            perm = np.argsort(rows, kind="stable")
            pending.add(out, rows[perm], targets[perm], dest[perm])
            new[0][:, s0:s1] = state[0]  # (numpy arrays or tensors alike)
            new[1][:, s0:s1] = state[1]
            s0 = s1
        prev = new
        control.stats.lstm_steps += n
    pending.flush()
    return flat[:M], flat[M:]


GROUP_TOKENS = 1 << 18  # units per tree: its index arrays stay around 20 MiB


def prefix_shared_unit_logprobs(step_lm, seqs: Sequence[np.ndarray], bos: int, eos: int,
                                control: BatchControl, group_sequences: int,
                                group_tokens: int = GROUP_TOKENS,
                                starts: Optional[Tuple[Any, np.ndarray]] = None) -> List[np.ndarray]:
    """Per-unit log-probabilities (``</s>`` last) of each (n_i,) unit sequence: a list of (n_i + 1,) float64.

    ``starts`` = ((h, c) tables (L, R, H) in the stepper's array type, (S,) row of each sequence's
    start state): sequence i starts from state row ``rows[i]`` instead of zeros; sequences of one
    start state share prefixes.
    """
    roots = None
    if starts is not None:  # a virtual first unit per start state: the trees become forests of per-state trees
        base = step_lm.vocab_size
        seqs = [np.concatenate([np.array([base + int(r)], dtype=np.int64), s]) for s, r in zip(seqs, starts[1])]
        roots = (starts[0], base)
    skip = 0 if roots is None else 1
    out: List[np.ndarray] = [np.zeros(0)] * len(seqs)
    for group in prefix_groups(seqs, group_sequences, group_tokens):
        tree = build_prefix_tree([seqs[i] for i in group], bos)
        node_lp, eos_lp = score_tree(step_lm, tree, eos, control, roots)
        flat = tree.unit_logprobs(node_lp, eos_lp)
        for j, i in enumerate(group.tolist()):
            out[i] = flat[tree.offsets[j] + skip: tree.offsets[j + 1]]
        control.stats.tokens += tree.tokens - skip * len(group)
    return out
