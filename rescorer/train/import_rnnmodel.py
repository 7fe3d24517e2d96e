"""``admmq import``: an LSTM LM trained with PyTorch's ``word_language_model`` example as an admmq checkpoint.

The example's ``RNNModel`` (which Kaldi's ``steps/pytorchnn`` uses too) is
``encoder`` (``nn.Embedding``, (V, E)) -> dropout -> ``rnn`` (``nn.LSTM``, L
layers of H units, PyTorch's gate order) -> dropout -> ``decoder``
(``nn.Linear``, (V, H) and (V,)), with ``decoder.weight`` the same tensor as
``encoder.weight`` under ``--tied``.  Its state dict (``torch.save(
model.state_dict(), f)``) is read with ``torch.load(weights_only=True)``:
importing never unpickles code, so a whole pickled model (``torch.save(model,
f)``, what the example's ``main.py`` writes) is refused with a line saying to
save its ``state_dict()``.

Vocabulary file: the model's row order, either one word a line (the example's
``Dictionary.idx2word``) or ``word index`` a line (Kaldi's ``words.txt``-like
file of ``steps/pytorchnn``; indices 0..V-1).

Sentence boundaries (``--sent-boundary``, Kaldi's name: ``SYM`` for both ends
or ``START,END``; stored in the checkpoint), mapped onto
:class:`rescorer.lm.vocab.Vocab` (``</s>`` = 0, unknown word = 1, ``<s>`` =
last, an input only).  The default comes from the vocabulary file:

* ``word index`` lines holding ``<s>`` (Kaldi's ``words.txt``, what
  ``steps/pytorchnn`` trains with): ``<s>`` for both ends, as Kaldi's
  ``--sent-boundary`` default — its ``data.py`` appends ``<s>`` to every line;
* else ``<eos>`` when present (the example appends ``<eos>`` to every line);
* else ``</s>`` as the end and ``<s>`` (when present) as the start.

One symbol for both ends: admmq's ``</s>`` output is its row, and admmq's
``<s>`` input is its embedding (a copy of the row); the vocabulary records
the symbol (``Vocab.sent_boundary``: a carried-over state reads it once
between sentences, :mod:`rescorer.lm.carry_over`).  Two symbols map one to
one; admmq's ``<s>`` is an input only, so the model's start symbol's *output*
row is kept as a word of its own, ``<s>@output`` (:data:`START_OUTPUT`,
never in a text).  Likewise ``<s>``/``</s>`` rows the model does not use as
its boundaries (Kaldi's ``</s>`` under ``<s>``) stay as the words
``<s>@output``/``</s>@output``: the softmax keeps every row and every
probability stays the original's exactly (dropping a row would renormalise
them, by up to 1.5 nats a sentence on a briefly trained model).  Other
symbols of a Kaldi ``words.txt`` (``<eps>``, ``#0``, ``!SIL``) are words like
any other.  The unknown word is ``<unk>`` (or ``<UNK>``, or ``unk=``), a word
of the file.

Scores are then those of the original model run on each sentence from a zero
state, the start symbol first — how admmq and Kaldi's n-best rescoring score
sentences.  The example's own ``evaluate()`` runs the whole text as one
stream, carrying the state across sentences, so its perplexity differs from a
per-sentence one by that context, not by the import.

The checkpoint holds the weights in full precision (method ``fp``), its
vocabulary and model shape; ``eval``, ``rescore``, ``export`` and ``train
--init-from`` (e.g. to quantize it with ADMM) take it.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from rescorer.pack.checkpoint import save_checkpoint
from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.fileio import iter_lines
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.quant import MethodConfig
from rescorer.lm.vocab import BOS, EOS, Vocab

UNK_CANDIDATES = ("<unk>", "<UNK>", "<Unk>")
START_OUTPUT = "<s>@output"  # the original's <s> output row (admmq's <s> is an input only)


def output_name(symbol: str) -> str:
    """The admmq word that keeps a boundary symbol's row (``<s>`` -> ``<s>@output``, :data:`START_OUTPUT`)."""
    return f"{symbol}@output"
_LSTM_KEY = re.compile(r"rnn\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


@dataclass
class ImportResult:
    out: str
    vocab_size: int  # admmq symbols (with <s>)
    original_size: int  # rows of the original model
    embed_dim: int
    hidden_dim: int
    layers: int
    tied: bool
    end: str  # the original's sentence-end symbol (admmq </s>)
    start: str  # the original's symbol fed before each sentence (admmq <s>)
    unk: str
    start_output: Optional[str]  # the word holding the original's <s> output row (a separate <s> only)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        shape = (f"{self.layers}x{self.hidden_dim} LSTM, embedding {self.embed_dim}"
                 + (", tied" if self.tied else ""))
        drop = f"; its {self.start} output kept as the word {self.start_output}" if self.start_output else ""
        bound = (f"sentence boundary {self.end} (both ends)" if self.start == self.end
                 else f"</s> = {self.end}, <s> = {self.start}")
        return (f"{self.out}: {shape}; {self.original_size} words -> {self.vocab_size} symbols "
                f"({bound}, unknown word {self.unk}){drop}")


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``, read with ``weights_only=True`` (a ``module.`` prefix is dropped)."""
    p = Path(path)
    if not p.is_file():
        raise AdmmqError("no such file", p)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FormatError("cannot be read with torch.load(weights_only=True): it holds pickled code (a whole "
                          "model saved with torch.save(model, f)?); save model.state_dict() instead", p) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, OSError, AttributeError,
            TypeError, IndexError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"not a readable PyTorch state dict: {msg[:200]}", p) from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise FormatError("not a state dict (expected a dict of tensors, as model.state_dict() gives)", p)
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in data.items()}


def read_word_list(path: PathLike) -> Tuple[List[str], bool]:
    """The words in model row order: ``word`` a line, or ``word index`` a line (indices 0..V-1);
    and whether the file had indices (Kaldi's ``words.txt`` form)."""
    entries = []
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2 or (len(fields) == 2 and not fields[1].lstrip("-").isdigit()):
            raise FormatError(f"expected 'word' or 'word index', got {line!r}", path, lineno)
        entries.append((fields[0], int(fields[1]) if len(fields) == 2 else None, lineno))
    if not entries:
        raise FormatError("vocabulary file is empty", path)
    indexed = [e[1] is not None for e in entries]
    if any(indexed) and not all(indexed):
        lineno = entries[indexed.index(not indexed[0])][2]
        raise FormatError("mixes 'word' and 'word index' lines", path, lineno)
    if all(indexed):
        by_index = sorted(entries, key=lambda e: e[1])
        if [e[1] for e in by_index] != list(range(len(entries))):
            raise FormatError(f"indices must be 0..{len(entries) - 1}, each once", path)
        entries = by_index
    seen: Dict[str, int] = {}
    for word, _, lineno in entries:
        if word in seen:
            raise FormatError(f"word {word!r} already on line {seen[word]}", path, lineno)
        seen[word] = lineno
    return [e[0] for e in entries], all(indexed)


def _shape_of(sd: Dict[str, torch.Tensor], source: Path) -> ModelConfig:
    """The RNNModel's shape from its state dict; a one-line error for anything else."""
    need = ("encoder.weight", "decoder.weight", "decoder.bias")
    missing = [k for k in need if k not in sd]
    layers = sorted({int(m.group(2)) for m in map(_LSTM_KEY.match, sd) if m})
    if missing or not layers:
        raise MismatchError(f"not an RNNModel state dict: missing {missing or ['rnn.weight_ih_l0']} "
                            f"(has {sorted(sd)[:6]}{' ...' if len(sd) > 6 else ''})", source)
    expected = set(need) | {f"rnn.{w}_l{k}" for k in range(len(layers)) for w in
                            ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    if layers != list(range(len(layers))) or set(sd) != expected:
        raise MismatchError(f"not an LSTM RNNModel state dict: missing {sorted(expected - set(sd))}, unexpected "
                            f"{sorted(set(sd) - expected)}", source)
    V, E = sd["encoder.weight"].shape
    H = sd["rnn.weight_hh_l0"].shape[1]
    if sd["rnn.weight_hh_l0"].shape[0] != 4 * H:
        kind = {3 * H: "GRU", H: "RNN_TANH/RNN_RELU"}.get(sd["rnn.weight_hh_l0"].shape[0], "not an LSTM")
        raise MismatchError(f"rnn is {kind} (weight_hh_l0 {tuple(sd['rnn.weight_hh_l0'].shape)}); only LSTM "
                            f"models can be imported", source)
    want = {"decoder.weight": (V, H), "decoder.bias": (V,)}
    for k in range(len(layers)):
        want.update({f"rnn.weight_ih_l{k}": (4 * H, E if k == 0 else H), f"rnn.weight_hh_l{k}": (4 * H, H),
                     f"rnn.bias_ih_l{k}": (4 * H,), f"rnn.bias_hh_l{k}": (4 * H,)})
    for name, shape in want.items():
        if tuple(sd[name].shape) != shape:
            raise MismatchError(f"{name} has shape {tuple(sd[name].shape)}, expected {shape} for an encoder of "
                                f"{V} x {E} and {H} LSTM units", source)
    tied = E == H and torch.equal(sd["encoder.weight"], sd["decoder.weight"])
    return ModelConfig(vocab_size=V, embed_dim=E, hidden_dim=H, layers=len(layers), tie_embeddings=tied)


def sentence_boundaries(words: List[str], indexed: bool, spec: Optional[str], source: Path) -> Tuple[str, str]:
    """(start, end) symbols of the original model: ``--sent-boundary`` given (``SYM`` for both ends, as
    Kaldi's option, or ``START,END``) or from the vocabulary (module docstring)."""
    have = set(words)
    if spec is None:
        if indexed and BOS in have:  # Kaldi's words.txt: steps/pytorchnn trains '... w_n <s> w_1 ...'
            start = end = BOS
        elif "<eos>" in have:
            start = end = "<eos>"
        elif EOS in have:
            start, end = (BOS if BOS in have else EOS), EOS
        else:
            raise MismatchError("vocabulary has no sentence boundary symbol (<s> in a 'word index' vocabulary, "
                                "<eos> or </s>); name it with --sent-boundary", source)
    else:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) not in (1, 2) or not all(parts):
            raise AdmmqError(f"--sent-boundary {spec!r}: expected SYMBOL (both ends) or START,END")
        start, end = parts[0], parts[-1]
        for sym in parts:
            if sym not in have:
                raise MismatchError(f"--sent-boundary symbol {sym!r} is not in the vocabulary", source)
    return start, end


def _unk_symbol(words: List[str], unk: Optional[str], start: str, end: str, source: Path) -> str:
    have = set(words)
    unk = unk or next((u for u in UNK_CANDIDATES if u in have), None)
    if unk is None or unk not in have:
        raise MismatchError(f"vocabulary has no unknown-word symbol {unk or '(<unk>, <UNK>)'}; name it with "
                            f"--unk-symbol", source)
    if unk in (end, start):
        raise MismatchError(f"unknown-word symbol {unk!r} is a sentence boundary", source)
    return unk


def import_rnnmodel(weights: PathLike, vocab: PathLike, out: PathLike, unk: Optional[str] = None,
                    dropout: float = 0.0, sent_boundary: Optional[str] = None) -> ImportResult:
    """Write ``out``, an admmq checkpoint of the RNNModel state dict ``weights`` with vocabulary ``vocab``.

    ``unk``: the unknown-word symbol (default ``<unk>`` or ``<UNK>``); ``dropout``: stored in the model
    config for a later ``train --init-from`` (scoring does not use it); ``sent_boundary``: ``SYM`` or
    ``START,END`` (default: from the vocabulary).  See the module docstring.
    """
    sd = read_state_dict(weights)
    shape = _shape_of(sd, Path(weights))
    words, indexed = read_word_list(vocab)
    if len(words) != shape.vocab_size:
        raise MismatchError(f"vocabulary has {len(words)} words but the model has {shape.vocab_size} rows "
                            f"(encoder.weight {tuple(sd['encoder.weight'].shape)})", vocab)
    start, end = sentence_boundaries(words, indexed, sent_boundary, Path(vocab))
    unk = _unk_symbol(words, unk, start, end, Path(vocab))
    row = {w: i for i, w in enumerate(words)}
    # rows kept as words under a new name: the start symbol's output row (start != end), and admmq's
    # reserved <s>/</s> when the model does not use them as its boundaries (Kaldi's </s> under <s>)
    renamed = {w: output_name(w) for w in words if w in (BOS, EOS) and w not in (start, end)}
    start_output = output_name(start) if start != end else None
    for name in list(renamed.values()) + ([start_output] if start_output else []):
        if name in row:
            raise MismatchError(f"vocabulary already holds {name!r}, the name admmq gives a boundary's row", vocab)
    row.update({new: row[old] for old, new in renamed.items()})
    if start_output:
        row[start_output] = row[start]
    admmq_vocab = Vocab([renamed.get(w, w) for w in words if w not in (end, start, unk)]
                        + ([start_output] if start_output else []), unk=unk,
                        sent_boundary=start if start == end else None)
    # original row of each admmq symbol: </s>, unk, words in the file's order, <s>
    rows = [row[end], row[unk]] + [row[w] for w in admmq_vocab.symbols[2:-1]] + [row[start]]
    index = torch.tensor(rows, dtype=torch.long)
    cfg = ModelConfig(vocab_size=len(rows), embed_dim=shape.embed_dim, hidden_dim=shape.hidden_dim,
                      layers=shape.layers, dropout=float(dropout), tie_embeddings=shape.tie_embeddings)
    state = {"embedding.weight": sd["encoder.weight"].index_select(0, index).float(),
             "decoder.bias": sd["decoder.bias"].index_select(0, index[:-1]).float()}
    if not cfg.tie_embeddings:  # tied: the outputs are the embedding's rows 0..V-2, the same rows
        state["decoder.weight"] = sd["decoder.weight"].index_select(0, index[:-1]).float()
    for k in range(cfg.layers):
        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"lstm.{w}_l{k}"] = sd[f"rnn.{w}_l{k}"].float().clone()
    LSTMLM(cfg).load_weights(state, str(weights))  # every name and shape fits the model
    save_checkpoint(out, {
        "model_config": cfg.to_dict(), "method_config": MethodConfig().to_dict(), "train_config": {},
        "units": admmq_vocab.to_state(), "model": state, "quantized": {}, "method_state": {}, "log": [],
        "imported": {"from": "word_language_model RNNModel", "weights": str(weights), "vocab": str(vocab),
                     "end": end, "start": start, "unk": unk, "start_output": start_output,
                     "renamed": renamed},
    })
    return ImportResult(str(out), len(rows), shape.vocab_size, cfg.embed_dim, cfg.hidden_dim, cfg.layers,
                        cfg.tie_embeddings, end, start, unk, start_output)
