"""Loading the language models a command scores with as one scorer.

:func:`load_scorer` is what ``admmq eval``, ``admmq interpolate`` and
``admmq rescore`` call: any number of LSTM checkpoints / packed files and
n-gram files, their interpolation weights (a weights file, a list, or none for
a single LM) and the OOV policy, returned as one
:class:`~rescorer.ngram.mixture.MixtureScorer` whose ``.score(sentences)`` gives
per-word natural-log probabilities.

:func:`load_tuned_scorer` is the same for several LMs given without weights
(``admmq rescore``/``eval --lm A --ngram G``): the weights are found by EM on
a text exactly as ``admmq interpolate`` finds them
(:func:`rescorer.ngram.interpolate.interpolate`), or are equal, with a warning, when
there is no text to tune them on.  :class:`WeightChoice` says which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from rescorer.fileio import kaldi_text_notice
from rescorer.errors import AdmmqError, MismatchError, PathLike
from rescorer.ngram.interpolate import interpolate
from rescorer.ngram.mixture import MixtureScorer, OovPolicy
from rescorer.ngram.ngram_lm import NgramScorer
from rescorer.lm import native_kernel
from rescorer.lm.kernel_scorer import KernelScorer
from rescorer.lm.word_scores import NeuralOptions
from rescorer.ngram.weightsfile import WeightsFile, read_weights
from rescorer.settings import parse_numbers

WeightsSpec = Union[None, str, "os.PathLike[str]", Sequence[float]]


@dataclass
class Component:
    """What one mixture component is: ``kind`` (lstm or ngram), its path and its scorer."""

    kind: str
    path: str
    scorer: object


def parse_weights(spec: WeightsSpec) -> Union[None, WeightsFile, List[float]]:
    """``None``; a weights file path; a list of numbers; or a string ``"0.6,0.4"``."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return [float(x) for x in spec]
    s = os.fspath(spec)
    if Path(s).is_file():
        return read_weights(s)
    return list(parse_numbers(s, "--weights", "a weights file (from admmq interpolate) or comma-separated numbers"))


def kernel_scorer_for(path: PathLike, options: NeuralOptions, device: str,
                      batch_tokens: int) -> Optional[KernelScorer]:
    """A :class:`KernelScorer` of the LM file ``path`` (read by numpy, no PyTorch) when ``options`` on ``device``
    are the compiled kernels' case (:meth:`NeuralOptions.kernel_path`), the kernels load and the model needs
    nothing they lack (activation quantization); else None."""
    if not options.kernel_path(device):
        return None
    lib = native_kernel.load()
    if lib is None:
        return None
    from rescorer.pack.numpy_lm import load_weights_lm

    lm = load_weights_lm(path)
    if lm.cfg.act_bits:
        return None
    return KernelScorer(lib, lm, batch_tokens, options.normalize)


def load_components(lm_paths: Sequence[PathLike] = (), ngram_paths: Sequence[PathLike] = (), device: str = "cpu",
                    batch_tokens: int = 8192, ngram_backend: str = "auto", ngram_case: str = "keep",
                    quiet: bool = True, neural: Optional[NeuralOptions] = None) -> List[Component]:
    """Load every LM: LSTMs first, then n-grams, in the order given."""
    comps: List[Component] = []
    neural = neural or NeuralOptions()
    for p in lm_paths:
        scorer = kernel_scorer_for(p, neural, device, batch_tokens)  # no PyTorch on this path
        lm = scorer.lm if scorer is not None else None
        if scorer is None:
            import torch

            from rescorer.lm.scoring import NeuralScorer
            from rescorer.pack.lm_file import load_lm
            if neural.threads:
                torch.set_num_threads(neural.threads)
            lm = load_lm(p, device=device)
            scorer = NeuralScorer(lm.model, lm.units, batch_tokens, device, prefix_sharing=neural.prefix_sharing,
                                  int8=neural.int8, precision=neural.precision, quantized=lm.quantized,
                                  normalize=neural.normalize)
        if not neural.normalize and not lm.self_norm:
            scorer.warning = (f"--no-normalize-probs with {lm.path}, which was not trained with --self-norm: its "
                              f"word logits are not log-probabilities (docs/rescoring.md)")
        comps.append(Component("lstm", lm.path, scorer))
    for p in ngram_paths:
        ng = NgramScorer(p, backend=ngram_backend, case=ngram_case, quiet=quiet)
        comps.append(Component("ngram", ng.path, ng))
    return comps


def load_scorer(lm_paths: Sequence[PathLike] = (), ngram_paths: Sequence[PathLike] = (),
                weights: WeightsSpec = None, oov: Optional[OovPolicy] = None, device: str = "cpu",
                batch_tokens: int = 8192, ngram_backend: str = "auto", ngram_case: str = "keep",
                quiet: bool = True, neural: Optional[NeuralOptions] = None) -> MixtureScorer:
    """One scorer for the given LMs.

    ``weights``: a weights file (its components must have the kinds given, in
    order: LSTMs then n-grams; with no paths given, the file's own paths are
    loaded), a list / comma string of one weight per LM (scaled to sum to 1),
    or ``None`` for a single LM.  ``oov``: ``None`` takes the weights file's
    policy, else the default :class:`OovPolicy`.  ``neural``: how the LSTMs
    compute (prefix sharing, int8, precision; :class:`NeuralOptions`).
    """
    spec = parse_weights(weights)
    lm_paths, ngram_paths = list(lm_paths), list(ngram_paths)
    if isinstance(spec, WeightsFile):
        if not lm_paths and not ngram_paths:
            lm_paths = [p for k, p in zip(spec.kinds, spec.paths) if k == "lstm"]
            ngram_paths = [p for k, p in zip(spec.kinds, spec.paths) if k == "ngram"]
            if spec.kinds != ["lstm"] * len(lm_paths) + ["ngram"] * len(ngram_paths):
                raise MismatchError("components must be listed LSTMs first, then n-grams", spec.path)
        given = ["lstm"] * len(lm_paths) + ["ngram"] * len(ngram_paths)
        if given != spec.kinds:
            raise MismatchError(f"weights are for ({', '.join(spec.kinds)}) but the LMs given are "
                                f"({', '.join(given)})", spec.path)
        values = spec.weights
        if oov is None:
            oov = spec.oov
    else:
        values = spec
    n = len(lm_paths) + len(ngram_paths)
    if n == 0:
        raise AdmmqError("no language model given (--lm, --ngram or --weights FILE)")
    if values is None:
        if n > 1:
            raise AdmmqError(f"{n} language models need interpolation weights: --weights FILE (from admmq "
                             f"interpolate) or --weights w1,w2,...")
        values = [1.0]
    if len(values) != n:
        raise AdmmqError(f"{len(values)} interpolation weight(s) given for {n} language model(s)")
    comps = load_components(lm_paths, ngram_paths, device, batch_tokens, ngram_backend, ngram_case, quiet, neural)
    return MixtureScorer([c.scorer for c in comps], values, oov or OovPolicy(), names=[c.path for c in comps],
                         kinds=[c.kind for c in comps])


@dataclass
class WeightChoice:
    """How a scorer's interpolation weights were set.

    ``source``: ``given`` (``--weights``), ``single`` (one LM), ``em`` (EM on
    ``text``, as ``admmq interpolate``) or ``equal`` (several LMs, nothing to
    tune on: see :attr:`warning`).  ``em``: the EM result's ``to_dict()``.
    """

    source: str
    weights: List[float]
    names: List[str]
    text: Optional[str] = None
    em: dict = field(default_factory=dict)
    notice: Optional[str] = None  # the tuning text looked like Kaldi text but was read as plain

    @property
    def warning(self) -> Optional[str]:
        if self.source != "equal":
            return None
        return (f"{len(self.weights)} language models and no --weights: equal interpolation weights; tune them "
                f"by EM with --valid TEXT (or --dev-ref for rescore), or give --weights FILE|w1,w2,...")

    def describe(self) -> str:
        """One line: the weights and where they came from."""
        how = {"given": "given by --weights", "single": "one LM",
               "equal": "equal, not tuned",
               "em": f"EM on {self.text}, {len(self.em.get('iterations', [])) - 1} iterations, "
                     f"ppl {self.em.get('ppl', float('nan')):.2f}"}[self.source]
        parts = ", ".join(f"{Path(n).name} {w:.4f}" for n, w in zip(self.names, self.weights))
        return f"interpolation weights: {parts} ({how})"

    def to_dict(self) -> dict:
        return {"source": self.source, "weights": list(self.weights), "components": list(self.names),
                "text": self.text, "em": self.em or None}


def load_tuned_scorer(lm_paths: Sequence[PathLike] = (), ngram_paths: Sequence[PathLike] = (),
                      weights: WeightsSpec = None, oov: Optional[OovPolicy] = None,
                      tune_on: Optional[Tuple[PathLike, Optional[str]]] = None, device: str = "cpu",
                      batch_tokens: int = 8192, ngram_backend: str = "auto", ngram_case: str = "keep",
                      quiet: bool = True, neural: Optional[NeuralOptions] = None,
                      tolerance: float = 1e-7, max_iterations: int = 200) -> Tuple[MixtureScorer, WeightChoice]:
    """:func:`load_scorer`, and for several LMs without ``weights`` their weights by EM on ``tune_on``.

    ``tune_on``: ``(text, format)`` (``plain`` or ``kaldi``; ``None``: plain, with
    :attr:`WeightChoice.notice` set when the text looks like a Kaldi text file)
    or ``None``: equal weights (:attr:`WeightChoice.warning` says how to tune them).
    """
    n = len(lm_paths) + len(ngram_paths)
    if weights is not None or n <= 1:
        scorer = load_scorer(lm_paths, ngram_paths, weights, oov, device, batch_tokens, ngram_backend, ngram_case,
                             quiet, neural)
        return scorer, WeightChoice("given" if weights is not None else "single",
                                    [float(x) for x in scorer.weights], list(scorer.names))
    scorer = load_scorer(lm_paths, ngram_paths, [1.0] * n, oov, device, batch_tokens, ngram_backend, ngram_case,
                         quiet, neural)
    if tune_on is None:
        return scorer, WeightChoice("equal", [float(x) for x in scorer.weights], list(scorer.names))
    text, fmt = tune_on
    notice = None if fmt is not None else kaldi_text_notice(text, lambda w: not scorer.is_oov(w))
    result = interpolate(scorer, text, fmt or "plain", None, tolerance, max_iterations, quiet)
    return scorer, WeightChoice("em", list(result.weights), list(scorer.names), str(text), result.to_dict(), notice)


def unseen_types(scorer, words: Iterable[str]) -> int:
    """How many distinct ``words`` (e.g. a decoder's ``words.txt``) no component of ``scorer`` knows.

    A natural ``OovPolicy(types=...)`` for rescoring a decoder's output: the unknown
    word's probability shared among the decoder words the LMs lack (at least 1).
    """
    skip = {"<eps>", "<s>", "</s>", "#0"}
    return max(1, sum(1 for w in set(words) if w not in skip and scorer.is_oov(w)))
