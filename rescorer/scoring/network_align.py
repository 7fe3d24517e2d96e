"""sclite's dynamic-programming alignment of a reference and a hypothesis word network.

**Costs** (sclite's ``wwd_WORD``, single precision): correct 0; substitution 4; insertion or
deletion 3; insertion or deletion of an optionally deletable word 2; insertion or deletion of the
null word ``@`` 0.001; ``@`` against ``@`` 1.  Words are equal when their texts are, or when one is
a fragment matching the other's start or end (``-F``, :func:`words_equal`).

**DP** over pairs of arcs (``Network_dpalign``): cell (a, b) is the cheapest alignment that ends with
reference arc a and hypothesis arc b; its substitution, deletion and insertion candidates each take
the cheapest predecessor cell, the first one in in-arc order on ties (a strict ``<``).  Then
substitution (or match) wins when it is ``<=`` both others, deletion when strictly below insertion,
else insertion.  The final cell is the cheapest pair of arcs entering the two final nodes (first in
order).  Sums are kept in single precision like sclite's ``float`` cells, so ties between paths
through ``@`` arcs fall as they fall there.

**Counting** the back-traced path (``extract_NET_ALIGN_result`` without nulls): a deleted (or
inserted) optionally deletable word is *correct*; ``@`` arcs are not counted; a substitution pair
is correct when the words are equal.  Reference words = correct + substitutions + deletions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from rescorer.scoring.word_network import Network, Word, words_equal

SUB, INS_DEL, OPTIONAL, NULL_NULL = 4.0, 3.0, 2.0, 1.0
NULL_INS_DEL = struct.unpack("f", struct.pack("f", 0.001))[0]  # 0.001 as sclite's float
_F32: Dict[float, float] = {}
_NO_CELL = 999999999.9


def _f32(x: float) -> float:
    """``x`` rounded to single precision (the sum of two floats as C computes it)."""
    y = _F32.get(x)
    if y is None:
        y = _F32[x] = struct.unpack("f", struct.pack("f", x))[0]
    return y


@dataclass(frozen=True)
class AlignCounts:
    """sclite's counts for one utterance."""

    corr: int = 0
    sub: int = 0
    dels: int = 0
    ins: int = 0

    @property
    def words(self) -> int:
        return self.corr + self.sub + self.dels

    @property
    def errors(self) -> int:
        return self.sub + self.dels + self.ins


def _alone(w: Word) -> float:
    """Cost of a word inserted or deleted."""
    if w.null:
        return NULL_INS_DEL
    return OPTIONAL if w.optional else INS_DEL


def _pair(r: Word, h: Word) -> float:
    if r.null and h.null:
        return NULL_NULL
    return 0.0 if words_equal(r, h) else SUB


def _pair_row(r: Word, hw: Sequence[Optional[Word]], texts: List[str], special: List[int]) -> List[float]:
    """Substitution costs of reference word ``r`` against every hypothesis arc (index 0: the head)."""
    if r.fragment or r.null:
        return [0.0] + [_pair(r, h) for h in hw[1:]]
    t = r.text
    row = [0.0 if x == t else SUB for x in texts]  # neither a fragment: equal texts
    for b in special:  # hypothesis fragments
        row[b] = _pair(r, hw[b])
    return row


def _tally(steps: Iterable[Tuple[int, int, int]], rw, hw) -> AlignCounts:
    """Count a back-traced path of (op, reference arc, hypothesis arc), op 0 pair, 1 deletion, 2 insertion."""
    tally = {"corr": 0, "sub": 0, "dels": 0, "ins": 0}
    for op, a, b in steps:
        if op:  # a hypothesis word alone (insertion) or a reference word alone (deletion)
            w, kind = (hw[b], "ins") if op == 2 else (rw[a], "dels")
            if not w.null:
                tally["corr" if w.optional else kind] += 1
        elif not (rw[a].null and hw[b].null):
            tally["corr" if words_equal(rw[a], hw[b]) else "sub"] += 1
    return AlignCounts(**tally)


def align(ref: Network, hyp: Network) -> AlignCounts:
    """sclite's counts for hypothesis network ``hyp`` against reference network ``ref``."""
    rw, hw = ref.words, hyp.words
    rounding = ref.has_null or hyp.has_null  # integer costs are exact in any precision
    hcost = [0.0] + [_alone(w) for w in hw[1:]]
    rcost = [0.0] + [_alone(w) for w in rw[1:]]
    texts = [""] + [w.text for w in hw[1:]]
    special = [b for b in range(1, len(hw)) if hw[b].fragment]
    pairs = [[]] + [_pair_row(w, hw, texts, special) for w in rw[1:]]
    if ref.is_chain and hyp.is_chain:
        return _tally(chain_path(len(rw), len(hw), rcost, hcost, pairs, rounding), rw, hw)
    return _tally(_network_path(ref, hyp, rcost, hcost, pairs, rounding), rw, hw)


def chain_path(na: int, nb: int, rcost, hcost, pairs, rounding: bool) -> List[Tuple[int, int, int]]:
    """The DP when both networks are chains (each arc's one predecessor is the previous arc): the back-traced
    steps (op 0 pair, 1 deletion, 2 insertion; reference arc, hypothesis arc), last first.  ``rcost``,
    ``hcost``: (na,), (nb,) deletion / insertion costs (index 0: the head arc, unused); ``pairs[a][b]``:
    substitution costs."""
    rnd = _f32 if rounding else float
    prev = [0.0] * nb
    ops = [bytearray(nb) for _ in range(na)]
    for b in range(1, nb):
        prev[b] = rnd(prev[b - 1] + hcost[b])
        ops[0][b] = 2
    for a in range(1, na):
        cur = [rnd(prev[0] + rcost[a])] + [0.0] * (nb - 1)
        op, dc, sub = ops[a], rcost[a], pairs[a]
        op[0] = 1
        for b in range(1, nb):
            sb, dl, ins = prev[b - 1] + sub[b], prev[b] + dc, cur[b - 1] + hcost[b]
            if rounding:
                sb, dl, ins = rnd(sb), rnd(dl), rnd(ins)
            if sb <= dl and sb <= ins:
                cur[b] = sb
            elif dl < ins:
                cur[b], op[b] = dl, 1
            else:
                cur[b], op[b] = ins, 2
        prev = cur
    steps = []
    a, b = na - 1, nb - 1
    while a > 0 or b > 0:
        op = ops[a][b]
        steps.append((op, a, b))
        a, b = (a - 1, b - 1) if op == 0 else (a - 1, b) if op == 1 else (a, b - 1)
    return steps


def _network_path(ref: Network, hyp: Network, rcost, hcost, pairs, rounding: bool) -> List[Tuple[int, int, int]]:
    """The DP over arc pairs of two networks with branches (module docstring)."""
    na, nb = len(ref.words), len(hyp.words)
    rnd = _f32 if rounding else float
    cost = [[0.0] * nb for _ in range(na)]
    back: List[List[Tuple[int, int]]] = [[(-1, -1)] * nb for _ in range(na)]
    for b in range(1, nb):
        best, pb = _NO_CELL, -1
        for p in hyp.preds[b]:
            if cost[0][p] < best:
                best, pb = cost[0][p], p
        cost[0][b], back[0][b] = rnd(best + hcost[b]), (0, pb)
    for a in range(1, na):
        best, pa = _NO_CELL, -1
        for p in ref.preds[a]:
            if cost[p][0] < best:
                best, pa = cost[p][0], p
        cost[a][0], back[a][0] = rnd(best + rcost[a]), (pa, 0)
    for a in range(1, na):
        row, preds_a, del_a, sub = cost[a], ref.preds[a], rcost[a], pairs[a]
        for b in range(1, nb):
            preds_b = hyp.preds[b]
            ins, ib = _NO_CELL, -1
            for p in preds_b:
                if row[p] < ins:
                    ins, ib = row[p], p
            dl, da = _NO_CELL, -1
            sb, sa, sbb = _NO_CELL, -1, -1
            for p in preds_a:
                prow = cost[p]
                if prow[b] < dl:
                    dl, da = prow[b], p
                for q in preds_b:
                    if prow[q] < sb:
                        sb, sa, sbb = prow[q], p, q
            sb, dl, ins = rnd(sb + sub[b]), rnd(dl + del_a), rnd(ins + hcost[b])
            if sb <= dl and sb <= ins:
                row[b], back[a][b] = sb, (sa, sbb)
            elif dl < ins:
                row[b], back[a][b] = dl, (da, b)
            else:
                row[b], back[a][b] = ins, (a, ib)
    best, a, b = _NO_CELL, -1, -1
    for ea in ref.ends:
        for eb in hyp.ends:
            if cost[ea][eb] < best:
                best, a, b = cost[ea][eb], ea, eb
    steps = []
    while a > 0 or b > 0:
        ba, bb = back[a][b]
        steps.append((2 if a == ba else 1 if b == bb else 0, a, b))
        a, b = ba, bb
    return steps
