"""The fused log-normaliser: the compiled kernel and the PyTorch chunks against the textbook logsumexp."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rescorer.lm import native_kernel
from rescorer.lm.log_normalizer import LogNormalizer, reference_log_z

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _cpu_flags() -> set:
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


CAN_BUILD = shutil.which("cc") is not None and {"avx2", "fma"} <= _cpu_flags()


@pytest.fixture
def fresh_kernel(monkeypatch, tmp_path):
    """The kernel built anew into a temporary directory (not the user's cache)."""
    monkeypatch.setenv("ADMMQ_KERNEL_DIR", str(tmp_path / "kernels"))
    native_kernel.reset()
    yield
    native_kernel.reset()


def weights(V: int, K: int, scale: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(V, K, generator=g) - 0.5) * 2 * scale, torch.randn(V, generator=g)


@pytest.mark.skipif(not CAN_BUILD, reason="needs a C compiler and an AVX2/FMA CPU")
def test_the_kernel_builds_and_loads_on_this_machine(fresh_kernel, tmp_path):
    lib = native_kernel.load()
    assert lib is not None, native_kernel.unavailable_reason()
    assert list((tmp_path / "kernels").glob("lse_kernel-*.so"))
    assert LogNormalizer(*weights(20, 8)).lib is not None


def test_without_the_kernel_it_says_why(fresh_kernel, monkeypatch):
    monkeypatch.setenv("ADMMQ_NATIVE", "0")
    assert native_kernel.load() is None and "ADMMQ_NATIVE=0" in native_kernel.unavailable_reason()
    native_kernel.reset()
    monkeypatch.delenv("ADMMQ_NATIVE")
    monkeypatch.setenv("CC", "no-such-compiler-here")
    if CAN_BUILD:
        assert native_kernel.load() is None and "no C compiler" in native_kernel.unavailable_reason()
    ln = LogNormalizer(*weights(30, 5))
    assert ln.lib is None and "chunked" in ln.describe()


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("V,K,n", [(37, 13, 1), (1000, 32, 7), (10003, 24, 50), (2049, 200, 13)])
def test_log_z_is_the_logsumexp_of_the_logits(native, V, K, n):
    if native and not CAN_BUILD:
        pytest.skip("needs a C compiler and an AVX2/FMA CPU")
    W, b = weights(V, K)
    h = torch.rand(n, K) * 2 - 1
    ln = LogNormalizer(W, b, chunk=512, native=native)
    assert (ln.lib is not None) == native
    got = ln(h)
    ref = reference_log_z(W, b, h)
    assert got.dtype == np.float64 and got.shape == (n,)
    assert np.abs(got - ref).max() <= 1e-5 * (1 + np.abs(ref).max()), np.abs(got - ref).max()
    assert ln.retried == 0
    rows = np.array([0, n - 1, n // 2])
    targets = np.array([0, V - 1, V // 3])
    logits = (h.double() @ W.double().t() + b.double()).numpy()[rows, targets]
    assert np.allclose(ln.target_logits(h.numpy()[rows], targets), logits, atol=1e-9)


@pytest.mark.parametrize("native", [True, False])
def test_rows_that_would_overflow_or_underflow_are_recomputed_exactly(native):
    if native and not CAN_BUILD:
        pytest.skip("needs a C compiler and an AVX2/FMA CPU")
    W, b = weights(300, 16, scale=1.0)
    h = torch.rand(9, 16) * 2 - 1
    h[3] *= 400.0  # logits of hundreds: exp would overflow with the common shift
    h[5] = 0.0
    b = b - 200.0  # log Z near -200 for the quiet rows: exp(logit - shift) would underflow without the retry
    ln = LogNormalizer(W, b, native=native, shift=0.0)  # a shift far from every row
    got = ln(h)
    ref = reference_log_z(W, b, h)
    assert ln.retried == 9
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max(), np.abs(got - ref).max()
    assert np.isfinite(got).all()


@pytest.mark.skipif(not CAN_BUILD, reason="needs a C compiler and an AVX2/FMA CPU")
def test_a_row_does_not_depend_on_its_batch():
    W, b = weights(5000, 40)
    h = torch.rand(100, 40) * 2 - 1
    ln = LogNormalizer(W, b, native=True)
    whole = ln(h)
    for a, z in ((0, 1), (3, 10), (50, 100)):
        assert np.array_equal(ln(h[a:z]), whole[a:z])
