"""Prefix trees (tries) of unit sequences, built with array operations.

The hypotheses of an n-best list share long prefixes.  An LSTM LM's state
after a prefix depends on that prefix alone, so it needs computing once per
distinct prefix: once per node of the prefix tree of the hypotheses.  Node 0
is the root, the state after ``<s>``; a node at depth ``d >= 1`` is a
distinct prefix ``u_1 .. u_d`` of at least one sequence, reached from its
parent (the prefix ``u_1 .. u_{d-1}``) by the unit ``u_d``.  Every node's
output distribution is needed exactly once: for its children's units and,
where a sequence ends at the node, for ``</s>`` — a leaf always ends a
sequence, so LSTM steps = softmax rows = nodes.

Construction, without a per-token Python loop: the sequences are sorted
lexicographically; the longest common prefix ``lcp_i`` of each sequence with
the one before it is found by one vectorised comparison; position ``k`` of
sequence ``i`` opens a new node iff ``k >= lcp_i``, otherwise it is the node of
the sequence before at the same position.  Numbering the new nodes depth by
depth (then in sorted order), the node of every position is a running
maximum down each depth column.  Nodes of one depth are consecutive, and the
parents of the nodes of a depth are non-decreasing: a depth's nodes can be
stepped as one batch and cut into slices whose children are contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence

import numpy as np


@dataclass
class PrefixTree:
    """The prefix tree of S unit sequences (M nodes, depths 0..D).

    ``token``: (M,) int64 unit each node consumes as LSTM input (root: ``bos``).
    ``parent``: (M,) int64 (root: -1); parents of a depth's nodes are non-decreasing.
    ``depth_offsets``: (D+2,) int64, nodes of depth d are ``depth_offsets[d]:depth_offsets[d+1]``.
    ``path``: (sum(n_i + 1),) int64; sequence i owns ``path[offsets[i]:offsets[i+1]]``, the nodes of
    its prefixes of length 0..n_i (root first), in the order the sequences were given.
    ``terminal``: (M,) bool, some sequence ends at the node (its ``</s>`` probability is needed).
    """

    token: np.ndarray
    parent: np.ndarray
    depth_offsets: np.ndarray
    path: np.ndarray
    offsets: np.ndarray
    terminal: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.token.size)

    @property
    def depth(self) -> int:
        """Largest node depth D (0 when every sequence is empty)."""
        return int(self.depth_offsets.size - 2)

    @property
    def tokens(self) -> int:
        """Units + ``</s>`` of all sequences: the steps and softmax rows of unshared scoring."""
        return int(self.path.size)

    def unit_logprobs(self, node_logprob: np.ndarray, eos_logprob: np.ndarray) -> np.ndarray:
        """Per-unit scores of every sequence, flat like ``path``: (sum(n_i + 1),).

        ``node_logprob``: (M,) log P(node's unit | parent); ``eos_logprob``: (M,) log P(</s> | node).
        Sequence i gets its n_i unit scores then its ``</s>`` score.
        """
        nxt = np.zeros_like(self.path)
        nxt[:-1] = self.path[1:]  # the entry after a sequence's last node is overwritten below
        out = node_logprob[nxt] if self.path.size else np.zeros(0)
        last = self.offsets[1:] - 1
        out[last] = eos_logprob[self.path[last]]
        return out


def lexicographic_order(seqs: Sequence[np.ndarray]) -> np.ndarray:
    """Indices that sort ``seqs`` lexicographically (a prefix before its extensions): (S,) int64."""
    keys = [s.tolist() for s in seqs]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _common_prefix_lengths(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """lcp of each sequence with the one before it (0 for the first): (S,) int64."""
    S = lens.size
    lcp = np.zeros(S, dtype=np.int64)
    if S < 2:
        return lcp
    m = np.minimum(lens[:-1], lens[1:])  # pair i compares sequences i and i + 1
    nz = np.flatnonzero(m)
    if nz.size == 0:
        return lcp
    mm = m[nz]
    seg = np.repeat(np.arange(nz.size), mm)
    k = np.arange(int(mm.sum())) - np.repeat(np.cumsum(mm) - mm, mm)
    a = starts[nz][seg] + k
    b = starts[nz + 1][seg] + k
    first_diff = np.where(flat[a] != flat[b], k, np.repeat(mm, mm))
    lcp[nz + 1] = np.minimum.reduceat(first_diff, np.cumsum(mm) - mm)
    return lcp


def build_prefix_tree(seqs: Sequence[np.ndarray], bos: int) -> PrefixTree:
    """The prefix tree of ``seqs`` (each a (n_i,) int64 unit array; any order, duplicates allowed)."""
    S = len(seqs)
    order = lexicographic_order(seqs)
    lens = np.array([len(seqs[i]) for i in order], dtype=np.int64)
    starts = np.zeros(S, dtype=np.int64)
    if S:
        starts[1:] = np.cumsum(lens)[:-1]
    flat = (np.concatenate([np.asarray(seqs[i], dtype=np.int64) for i in order]) if S
            else np.zeros(0, dtype=np.int64))
    lcp = _common_prefix_lengths(flat, starts, lens)
    row = np.repeat(np.arange(S), lens)
    pos = np.arange(flat.size) - np.repeat(starts, lens)  # position k of the cell in its sequence
    new = pos >= lcp[row]
    col = np.argsort(pos, kind="stable")  # depth-major: all cells of position 0, then 1, ...
    new_c = new[col]
    fresh = np.where(new_c, np.cumsum(new_c), 0)  # node ids 1.. in depth-major order
    node = np.empty(flat.size, dtype=np.int64)
    node[col] = np.maximum.accumulate(fresh) if fresh.size else fresh
    M = 1 + int(new.sum())
    token = np.empty(M, dtype=np.int64)
    token[0] = bos
    token[node] = flat
    parent = np.empty(M, dtype=np.int64)
    parent[0] = -1
    prev = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        prev[1:] = node[:-1]
        prev[pos == 0] = 0
    parent[node] = prev
    depth = np.zeros(M, dtype=np.int64)
    depth[node] = pos + 1
    counts = np.bincount(depth, minlength=1)
    depth_offsets = np.zeros(counts.size + 1, dtype=np.int64)
    depth_offsets[1:] = np.cumsum(counts)
    # paths: root then the cells of each sequence, sequences back in the given order
    path_sorted = np.empty(flat.size + S, dtype=np.int64)
    root_at = starts + np.arange(S)
    path_sorted[root_at] = 0
    keep = np.ones(path_sorted.size, dtype=bool)
    keep[root_at] = False
    path_sorted[keep] = node
    lens_given = np.array([len(s) for s in seqs], dtype=np.int64) + 1
    offsets = np.zeros(S + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lens_given)
    path = np.empty_like(path_sorted)
    src_start = root_at  # sorted sequence j starts at root_at[j] in path_sorted
    dst_start = offsets[:-1][order]
    span = lens + 1
    idx = np.arange(path.size) - np.repeat(np.cumsum(span) - span, span)
    path[np.repeat(dst_start, span) + idx] = path_sorted[np.repeat(src_start, span) + idx]
    terminal = np.zeros(M, dtype=bool)
    terminal[path[offsets[1:] - 1]] = True
    return PrefixTree(token, parent, depth_offsets, path, offsets, terminal)


def prefix_groups(seqs: Sequence[np.ndarray], max_sequences: int, max_tokens: int) -> Iterator[np.ndarray]:
    """Indices of ``seqs`` in lexicographic order, cut into groups of at most ``max_sequences`` sequences
    and at most ``max_tokens`` units + ``</s>`` (a longer sequence forms a group of its own).

    Consecutive sequences in lexicographic order share the most prefixes, so
    each group's tree loses little sharing.  A group of S sequences has at most
    S nodes at any depth: ``max_sequences`` bounds the LSTM states held for a
    depth; ``max_tokens`` bounds the tree's index arrays.
    """
    assert max_sequences >= 1 and max_tokens >= 1, (max_sequences, max_tokens)
    order = lexicographic_order(seqs)
    group: List[int] = []
    tokens = 0
    for i in order.tolist():
        n = len(seqs[i]) + 1
        if group and (tokens + n > max_tokens or len(group) >= max_sequences):
            yield np.array(group, dtype=np.int64)
            group, tokens = [], 0
        group.append(i)
        tokens += n
    if group:
        yield np.array(group, dtype=np.int64)
