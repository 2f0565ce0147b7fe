"""Lazily compiled numba functions and kernels with NumPy twins (libertem.common.lazyjit)."""

import inspect
import pickle
import subprocess
import sys
import textwrap

import cloudpickle
import numba
import numpy as np
import pytest

from libertem.common import lazyjit
from libertem.common.lazyjit import KernelWithTwin, LazyDispatcher, lazy_njit


@lazy_njit(nogil=True)
def _add_one(x):
    return x + 1


def _make_adder(k):
    @lazy_njit
    def add_k(x):
        return _add_one(x) + k

    return add_k


_add_five = _make_adder(5)


@lazy_njit
def _apply(f, x):
    return f(x)


@numba.njit
def _plain_caller(x):
    return _add_five(x) * 2


def test_lazy_dispatcher_is_a_numba_function_on_first_use():
    assert isinstance(_add_one, LazyDispatcher)
    assert str(inspect.signature(_add_one)) == "(x)"
    assert _add_one.__name__ == "_add_one"
    assert _add_one(1) == 2
    assert _add_one.py_func(1) == 2  # attributes of the dispatcher
    assert len(_add_one.signatures) == 1
    assert "compiled" in repr(_add_one)
    # numba code that refers to lazy functions: as a global, in a closure, as an argument
    assert _plain_caller(1) == 14
    assert _apply(_add_one, 3) == 4


def test_lazy_dispatcher_pickles():
    assert pickle.loads(pickle.dumps(_add_one)) is _add_one
    assert cloudpickle.loads(cloudpickle.dumps(_add_five))(1) == 7


def test_lazy_njit_refuses_positional_options():
    with pytest.raises(TypeError):
        lazy_njit(1, 2)


def _double_twin(x, out):
    """``out[:] = 2 * x``."""
    np.multiply(x, 2, out=out)


@lazy_njit(nogil=True)
def _double_kernel(x, out):
    for i in range(x.shape[0]):
        out[i] = 2 * x[i]


def _fresh_double():
    return KernelWithTwin(_double_kernel, _double_twin)


def _args(dtype="float64"):
    x = np.arange(5, dtype=dtype)
    return x, np.zeros(5, dtype=dtype)


def test_twin_runs_until_the_kernel_is_compiled(monkeypatch):
    monkeypatch.setenv("LIBERTEM_KERNEL_IDLE_S", "1000")
    lazyjit.wait_for_compilations()  # nothing of other tests left to compile
    kernel = _fresh_double()
    x, out = _args()
    with lazyjit.working():
        kernel(x, out)
        np.testing.assert_array_equal(out, 2 * x)
        assert not kernel.compiled_for(x, out)  # asked for, not compiled while busy
    assert str(inspect.signature(kernel)) == "(x, out)"
    lazyjit.wait_for_compilations()  # starts what was asked for, and waits
    assert kernel.compiled_for(x, out)
    kernel(x, out)
    # other argument types: asked for separately
    xi, outi = _args("int32")
    with lazyjit.working():
        kernel(xi, outi)
        np.testing.assert_array_equal(outi, 2 * xi)
        assert not kernel.compiled_for(xi, outi)
    lazyjit.wait_for_compilations()
    assert kernel.compiled_for(xi, outi)


def test_kernel_modes(monkeypatch):
    x, out = _args()
    monkeypatch.setenv("LIBERTEM_KERNELS", "twin")
    kernel = _fresh_double()
    kernel(x, out)
    lazyjit.wait_for_compilations()
    assert not kernel.compiled_for(x, out)
    monkeypatch.setenv("LIBERTEM_KERNELS", "wait")
    kernel(x, out)
    assert kernel.compiled_for(x, out)
    monkeypatch.setenv("LIBERTEM_KERNELS", "no-such-mode")
    assert lazyjit.kernel_mode() == "background"


def test_long_runs_compile_without_waiting_for_idle(monkeypatch):
    monkeypatch.setenv("LIBERTEM_KERNEL_IDLE_S", "1000")
    monkeypatch.setattr(lazyjit, "TWIN_SECONDS_BEFORE_COMPILE", 0.0)
    kernel = _fresh_double()
    x, out = _args("float32")
    with lazyjit.working():
        kernel(x, out)  # the twin's time is past the threshold: compiled in the background
        lazyjit.wait_for_compilations(start=False)
        assert kernel.compiled_for(x, out)


def test_a_kernel_that_cannot_compile_runs_its_twin():
    @lazy_njit
    def broken(x, out):
        out[0] = object()  # numba cannot compile this

    kernel = KernelWithTwin(broken, _double_twin)
    x, out = _args()
    assert not kernel.compile_now(x, out)
    kernel(x, out)
    np.testing.assert_array_equal(out, 2 * x)


def test_numba_code_can_call_a_kernel_with_twin():
    kernel = _fresh_double()

    @numba.njit
    def caller(x, out):
        kernel(x, out)

    x, out = _args()
    caller(x, out)
    np.testing.assert_array_equal(out, 2 * x)


def test_defining_lazy_kernels_imports_no_numba():
    code = textwrap.dedent(
        """
        import sys
        import libertem.io.dataset.base.decode, libertem.io.dataset.base.decoders
        import libertem.io.dataset.base.readranges, libertem.udf.stddev
        import libertem.udf.sum_kernels, libertem.udf.com_kernels, libertem.masks
        import libertem.udf.masks, libertem.io.corrections
        assert "numba" not in sys.modules, "numba imported"
        assert "sparse" not in sys.modules, "pydata.sparse imported"
        from libertem.udf.stddev import process_tile
        print(process_tile.__name__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "_process_tile_twin"
