"""Reading a checkpoint that ``torch.save`` wrote, into numpy arrays, without PyTorch.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the object, each tensor a
reference to a storage), ``<name>/data/<key>`` (each storage's raw little-endian bytes) and
``<name>/byteorder``.  The unpickler here rebuilds only what admmq checkpoints hold — dicts, lists,
tuples, strings, numbers, ``collections.OrderedDict`` and tensors (``torch._utils._rebuild_tensor_v2``
over ``torch.<Type>Storage``) — as numpy arrays; any other class is refused, like
``torch.load(weights_only=True)`` refuses it.  Used where scoring runs on the compiled CPU kernels
(:mod:`rescorer.pack.numpy_lm`) and importing PyTorch would be most of the start-up time.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np

from rescorer.errors import FormatError, PathLike

STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
                  "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
                  "BoolStorage": "?"}


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, requires_grad=False, hooks=None,
                    metadata=None) -> np.ndarray:
    """The tensor ``storage[offset:]`` viewed with ``size`` and ``stride`` (in elements), as an owned array."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s < 0 for s in size + stride) or offset < 0:
        raise ValueError(f"negative size, stride or offset: {size} {stride} {offset}")
    extent = offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1 if all(size) else offset
    if extent > storage.size:
        raise ValueError(f"tensor of size {size} at offset {offset} overruns its storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(st * storage.itemsize for st in stride))
    return np.array(view, dtype=storage.dtype.newbyteorder("="), copy=True)


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, archive: zipfile.ZipFile, prefix: str):
        super().__init__(fh)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of an admmq checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGE_DTYPES):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        raw = self.archive.read(f"{self.prefix}/data/{key}")
        arr = np.frombuffer(raw, dtype=STORAGE_DTYPES[kind])
        if arr.size < int(numel):
            raise pickle.UnpicklingError(f"storage {key} holds {arr.size} elements, {numel} expected")
        return arr


def load_torch_zip(path: PathLike) -> Dict[str, Any]:
    """The object ``torch.save`` wrote to ``path``, tensors as numpy arrays; :class:`FormatError` otherwise."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as archive:
            pkls = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pkls) != 1:
                raise FormatError("not a torch.save archive (no single data.pkl)", p)
            prefix = pkls[0][: -len("/data.pkl")]
            order = f"{prefix}/byteorder"
            if order in archive.namelist() and archive.read(order).strip() not in (b"little", b""):
                raise FormatError("big-endian checkpoints are not supported", p)
            with archive.open(pkls[0]) as fh:
                return _Unpickler(fh, archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError,
            AttributeError, IndexError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"not a readable admmq checkpoint (corrupt or truncated?): {msg[:200]}", p) from None
