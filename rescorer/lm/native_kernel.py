"""The compiled scoring kernels (``lse_kernel.c``): built once with the system C compiler, loaded by ctypes.

The kernels (AVX2 + FMA) compute ``log sum_v exp(h . w_v + b_v)`` per row
without writing the logits (:mod:`rescorer.lm.log_normalizer`) and the LSTM
step (:mod:`rescorer.lm.step_lm`: gate products and the cell).  It is
compiled by ``bin/setup-env`` (``python -m rescorer.lm.native_kernel``) or else on first use, saying so
in one line on stderr (about a second)
with ``$CC`` (default ``cc``) ``-O3 -mavx2 -mfma`` into
``${XDG_CACHE_HOME:-~/.cache}/admmq/kernels/`` (``$ADMMQ_KERNEL_DIR`` overrides),
keyed by the source's hash, written atomically.  Where it cannot be used — no
compiler, a CPU without AVX2/FMA, not x86-64, or ``ADMMQ_NATIVE=0`` — :func:`load`
returns None and says why in :func:`unavailable_reason` (and once on stderr, unless disabled);
scoring then takes the numpy/PyTorch path (the same scores within rounding, slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

SOURCE = Path(__file__).with_name("lse_kernel.c")
ABI_VERSION = 2
FLAGS = ("-O3", "-mavx2", "-mfma", "-fPIC", "-shared")

_lib: Optional[ctypes.CDLL] = None
_reason: Optional[str] = None
_tried = False


def kernel_dir() -> Path:
    if os.environ.get("ADMMQ_KERNEL_DIR"):
        return Path(os.environ["ADMMQ_KERNEL_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "admmq" / "kernels"


def _cpu_has_avx2_fma() -> bool:
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return False
    have = set(flags.split(":", 1)[-1].split())
    return {"avx2", "fma"} <= have


def library_path() -> Path:
    cc = os.environ.get("CC", "cc")
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join((cc,) + FLAGS).encode()).hexdigest()[:16]
    return kernel_dir() / f"lse_kernel-{key}.so"


def build(path: Path) -> Optional[str]:
    """Compile the kernel into ``path`` (atomically); None on success, else why it failed (one line)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} not found)"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        res = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["?"])[-1]
            return f"{cc} failed on {SOURCE.name}: {last[:200]}"
        os.replace(tmp, path)
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.lse_abi_version.restype = ctypes.c_int
    lib.lse_pack.argtypes = [p, i64, i64, p]
    lib.lse_pack.restype = None
    lib.lse_rows.argtypes = [p, i64, i64, p, i64, p, p, ctypes.c_int, p]
    lib.lse_rows.restype = ctypes.c_int
    lib.affine_rows.argtypes = [p, i64, i64, p, i64, p, p, p]
    lib.affine_rows.restype = ctypes.c_int
    lib.lstm_pointwise.argtypes = [p, i64, i64, i64, p, p, p]
    lib.lstm_pointwise.restype = None


def load() -> Optional[ctypes.CDLL]:
    """The kernel library, built if needed; None where it cannot be used (see :func:`unavailable_reason`)."""
    global _lib, _reason, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("ADMMQ_NATIVE", "1") == "0":
        _reason = "disabled (ADMMQ_NATIVE=0)"
    elif platform.machine().lower() not in ("x86_64", "amd64"):
        _reason = f"not an x86-64 machine ({platform.machine()})"
    elif not _cpu_has_avx2_fma():
        _reason = "the CPU lacks AVX2/FMA"
    else:
        path = library_path()
        if not path.is_file():
            print(f"admmq: compiling the CPU scoring kernels once into {path.parent}", file=sys.stderr, flush=True)
            try:
                _reason = build(path)
            except OSError as exc:
                _reason = f"cannot build into {path.parent} ({exc.strerror or exc})"
        if _reason is None:
            try:
                lib = ctypes.CDLL(str(path))
                _declare(lib)
                if lib.lse_abi_version() != ABI_VERSION:
                    _reason = f"{path} has another interface version"
                else:
                    _lib = lib
            except OSError as exc:
                _reason = f"cannot load {path} ({exc})"
    if _lib is None and not (_reason or "").startswith("disabled"):
        print(f"admmq: note: no compiled CPU scoring kernels ({_reason}); scoring without them (slower)",
              file=sys.stderr, flush=True)
    return _lib


def unavailable_reason() -> Optional[str]:
    """Why :func:`load` returned None (None when the kernel is in use or not tried yet)."""
    return _reason


def reset() -> None:
    """Forget the loaded library (tests switch ``ADMMQ_NATIVE`` between runs)."""
    global _lib, _reason, _tried
    _lib, _reason, _tried = None, None, False


def main() -> int:
    """``python -m rescorer.lm.native_kernel``: build (if needed) and load the kernels; one line saying which."""
    lib = load()
    print(f"scoring kernels: {library_path()}" if lib is not None else
          f"scoring kernels unavailable: {unavailable_reason()}")
    return 0  # scoring works either way


if __name__ == "__main__":
    sys.exit(main())
