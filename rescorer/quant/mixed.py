"""Mixed precision: one quantization table per weight matrix, chosen under a size budget.

Bit widths and their tables
---------------------------
"b bits" for a matrix means the ADMM table :data:`BITS_TO_QSET` names, a
symmetric set scaled by α (eqs. 18-20) with at most 2^b levels:

====  ==========  =======================  ===============================
bits  table       levels                   stored width (``--bits auto``)
====  ==========  =======================  ===============================
1     ``pm1``     {±1}                     1 bit
2     ``pm12``    {±1,±2}                  2 bits
3     ``pm124``   {±1,±2,±4}               2.67 bits (3 base-6 codes/byte)
4     ``int:4``   {0,±1,…,±7} (uniform)    4 bits
8     ``int:8``   {0,±1,…,±127} (uniform)  8 bits
====  ==========  =======================  ===============================

A candidate may also be any quantization table by name (``0pm1`` = {0,±1} at
1.6 stored bits, ``pow2:1`` = {0,±1,±2} at 2.67, ``int:3`` = {0,±1,±2,±3} at 3
bits, ...): ``--widths 1,0pm1,2,pow2:1,int:3,3,4`` lets the allocator choose among
all of them.  Such a candidate keeps its name as its key wherever a width would
appear (tables, precision files).

The cost of a choice is what packed export really stores for the codes:
``numel × width`` bits, width from :func:`rescorer.pack.bitpack.smallest_packing`
(so 3 "bits" costs 2.67).  Budgets are paper-style: weight-matrix codes only
(biases, α tables, vocabulary not counted, as ``admmq info``'s paper figures);
``--budget-bits B`` means B bits per weight on average over the matrices
allocated, ``--budget-mb M`` means M MiB (2^20 bytes) for those matrices.

Allocation (:func:`allocate`)
-----------------------------
Minimise Σ_l s_l(b_l) subject to Σ_l cost_l(b_l) <= budget: a multiple-choice
knapsack.  Solved exactly by dynamic programming over the matrices that keeps,
after each matrix, the Pareto front of (total cost, total sensitivity) over the
choices made so far: a partial allocation dominated in both is never part of an
optimum, and costs are exact integers (bits), so the front is exact.  With a
handful of matrices and options the front stays tiny.

Precision files
---------------
``--allocation FILE``: one matrix per line, ``NAME BITS`` (BITS from the table
above) or ``NAME SET`` (any quantization set, e.g. ``pow2:2``); ``#`` starts a
comment.  :func:`write_precision` writes the chosen allocation in this format
(with the sensitivities and sizes as comments), so an automatic choice can be
edited and reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from rescorer.pack.bitpack import smallest_packing
from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import atomic_open, iter_lines
from rescorer.quant.qsets import parse_qset

BITS_TO_QSET: Dict[int, str] = {1: "pm1", 2: "pm12", 3: "pm124", 4: "int:4", 8: "int:8"}
DEFAULT_BITS: Tuple[int, ...] = (1, 2, 3, 4, 8)
MIB = 1 << 20
Width = Union[int, str]  # a width of BITS_TO_QSET, or a quantization table by name


def as_width(spec) -> Width:
    """``2`` / ``"2"`` -> 2 (a width of :data:`BITS_TO_QSET`); ``"0pm1"`` -> ``"0pm1"`` (a table by name)."""
    text = str(spec).strip()
    if text.isdigit():
        return int(text)
    parse_qset(text)  # a one-line error for a name that is no table
    return text


def qset_for_bits(bits: Width) -> str:
    """The ADMM table of a candidate: a b-bit width (:data:`BITS_TO_QSET`) or a table named directly."""
    if isinstance(bits, str) and not bits.strip().isdigit():
        parse_qset(bits)
        return bits
    try:
        return BITS_TO_QSET[int(bits)]
    except (KeyError, ValueError):
        raise AdmmqError(f"no table for {bits} bits; choose from {sorted(BITS_TO_QSET)} or name a table "
                         "(e.g. 0pm1, pow2:1, int:3)") from None


def width_order(widths) -> List[Width]:
    """Candidates sorted by stored bits per weight, then by name (ints and table names mixed)."""
    return sorted(widths, key=lambda b: (stored_bits(qset_for_bits(b)), str(b)))


def stored_bits(qset: str) -> float:
    """Bits per weight packed export stores for codes of this set (1, 2, 2.67, 4, ...)."""
    return smallest_packing(len(parse_qset(qset).levels)).bits_per_code


def cost_bits(numel: int, qset: str) -> int:
    """Exact packed code bits of a matrix of ``numel`` weights in ``qset`` (whole codes per byte)."""
    p = smallest_packing(len(parse_qset(qset).levels))
    if p.base:
        return 8 * -(-numel // p.per_byte)
    return numel * p.bits


def parse_bits_list(spec: str) -> Tuple[Width, ...]:
    """``"1,2,3"`` -> (1, 2, 3); ``"1,0pm1,2"`` -> (1, "0pm1", 2): widths of :data:`BITS_TO_QSET` or
    table names, in stored-bits order."""
    try:
        bits = tuple(width_order({as_width(b) for b in spec.split(",") if b.strip()}))
    except AdmmqError as exc:
        raise AdmmqError(f"--widths must list widths ({sorted(BITS_TO_QSET)}) or table names: {exc}") from None
    if not bits:
        raise AdmmqError("--widths is empty")
    return bits


# ------------------------------------------------------------- allocation
@dataclass(frozen=True)
class Allocation:
    """The chosen bits per matrix with its total cost (bits) and summed sensitivity."""

    bits: Dict[str, Width]
    cost: int
    sensitivity: float
    budget: int

    def qsets(self) -> Dict[str, str]:
        return {n: qset_for_bits(b) for n, b in self.bits.items()}


def allocate(sensitivity: Mapping[str, Mapping[Width, float]], costs: Mapping[str, Mapping[Width, int]],
             budget: int) -> Allocation:
    """Exact minimum of Σ sensitivity[l][b_l] subject to Σ costs[l][b_l] <= budget.

    sensitivity / costs: matrix -> {bits: value}; every matrix needs the same
    keys in both.  Raises :class:`AdmmqError` when even the cheapest choice
    exceeds the budget.
    """
    names = list(sensitivity)
    front: List[Tuple[int, float, Tuple[Width, ...]]] = [(0, 0.0, ())]  # (cost, sensitivity, choices)
    for name in names:
        options = sorted(sensitivity[name], key=str)
        if set(options) != set(costs[name]):
            raise ValueError(f"{name}: sensitivity bits {options} and cost bits {sorted(costs[name], key=str)} differ")
        cand = [(c + int(costs[name][b]), s + float(sensitivity[name][b]), ch + (b,))
                for c, s, ch in front for b in options if c + int(costs[name][b]) <= budget]
        cand.sort(key=lambda t: (t[0], t[1]))
        front = []
        for item in cand:  # keep the Pareto front: strictly lower sensitivity than every cheaper state
            if not front or item[1] < front[-1][1]:
                front.append(item)
        if not front:
            cheapest = sum(min(costs[n].values()) for n in names)
            raise AdmmqError(f"no allocation fits the budget of {budget:,} bits: the smallest costs {cheapest:,} bits")
    cost, sens, choice = min(front, key=lambda t: (t[1], t[0]))
    return Allocation(dict(zip(names, choice)), cost, sens, budget)


#: stored bits per quantized weight an allocation aims at when neither budget is given
DEFAULT_BUDGET_BITS = 2.0


def budget_in_bits(numels: Mapping[str, int], budget_bits: Optional[float], budget_mb: Optional[float]) -> int:
    """The code budget in bits: ``budget_bits`` per weight over ``numels`` or ``budget_mb`` MiB."""
    if (budget_bits is None) == (budget_mb is None):
        raise AdmmqError("give exactly one of --budget-bits and --budget-mb")
    if budget_bits is not None:
        if budget_bits <= 0:
            raise AdmmqError(f"--budget-bits must be positive, got {budget_bits}")
        return int(budget_bits * sum(numels.values()))
    if budget_mb <= 0:
        raise AdmmqError(f"--budget-mb must be positive, got {budget_mb}")
    return int(budget_mb * MIB * 8)


def allocate_from_sensitivity(table: Mapping[str, Mapping[Width, float]], numels: Mapping[str, int],
                              budget_bits: Optional[float] = None, budget_mb: Optional[float] = None) -> Allocation:
    """:func:`allocate` with costs = packed code bits of each matrix at each width."""
    missing = [n for n in numels if n not in table]
    if missing:
        raise AdmmqError(f"the sensitivity table has no row for {', '.join(missing)}")
    sens = {n: dict(table[n]) for n in numels}
    costs = {n: {b: cost_bits(numels[n], qset_for_bits(b)) for b in sens[n]} for n in numels}
    return allocate(sens, costs, budget_in_bits(numels, budget_bits, budget_mb))


# -------------------------------------------------------- precision files
def read_precision(path: PathLike, names: Sequence[str]) -> Dict[str, str]:
    """Read a precision file (``NAME BITS`` or ``NAME SET`` per line) for the matrices ``names``.

    Returns name -> quantization set spec, in the order of ``names``.  Every
    matrix must appear exactly once; unknown names and bad widths are
    :class:`FormatError` naming the line.
    """
    got: Dict[str, str] = {}
    for lineno, line in iter_lines(path):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2:
            raise FormatError(f"expected 'MATRIX BITS' or 'MATRIX SET', got {text!r}", path, lineno)
        name, spec = parts
        if name not in names:
            raise FormatError(f"{name!r} is not a quantized weight matrix of this model; expected one of "
                              f"{', '.join(names)}", path, lineno)
        if name in got:
            raise FormatError(f"{name!r} is given twice", path, lineno)
        try:
            qset = qset_for_bits(int(spec)) if spec.isdigit() else spec
            parse_qset(qset)
        except AdmmqError as exc:
            raise FormatError(str(exc), path, lineno) from None
        got[name] = qset
    missing = [n for n in names if n not in got]
    if missing:
        raise FormatError(f"no precision for {', '.join(missing)}", path)
    return {n: got[n] for n in names}


def write_precision(path: PathLike, alloc: Allocation, numels: Mapping[str, int],
                    sensitivity: Optional[Mapping[str, Mapping[Width, float]]] = None, note: str = "") -> None:
    """Write ``alloc`` as a precision file (atomically), sizes and sensitivities as comments."""
    with atomic_open(path) as f:
        f.write(f"# admmq precision file: MATRIX BITS (tables: {BITS_TO_QSET})\n")
        if note:
            f.write(f"# {note}\n")
        total = sum(numels[n] for n in alloc.bits)
        f.write(f"# code size {alloc.cost:,} bits = {alloc.cost / 8 / MIB:.4f} MiB = "
                f"{alloc.cost / max(total, 1):.3f} bits/weight; budget {alloc.budget:,} bits; "
                f"summed sensitivity {alloc.sensitivity:.6g}\n")
        for name, b in alloc.bits.items():
            extra = f"  # {numels[name]:,} weights, {stored_bits(qset_for_bits(b)):.3g} stored bits"
            if sensitivity is not None:
                extra += f", sensitivity {sensitivity[name][b]:.6g}"
            f.write(f"{name} {b}{extra}\n")


def describe(alloc: Allocation, numels: Mapping[str, int]) -> str:
    """One line: ``embedding.weight 2, lstm.weight_ih_l0 3, ... (1.98 bits/weight, 4.1 MiB)``."""
    total = sum(numels[n] for n in alloc.bits)
    parts = ", ".join(f"{n} {b}" for n, b in alloc.bits.items())
    return (f"{parts} ({alloc.cost / max(total, 1):.3f} bits/weight, {alloc.cost / 8 / MIB:.4f} MiB of codes; "
            f"summed sensitivity {alloc.sensitivity:.6g})")
