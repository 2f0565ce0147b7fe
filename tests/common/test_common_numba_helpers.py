"""libertem.common.numba: jitted index arithmetic, dense @ sparse, a callee-aware numba cache."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
import scipy.sparse

from libertem.common.numba import (
    cached_njit,
    numba_ravel_multi_index_multi,
    numba_ravel_multi_index_single,
    numba_unravel_index_multi,
    numba_unravel_index_single,
    rmatmul,
)
from libertem.common.numba.cache import MyCPUDispatcher, hasher

SHAPE = (4, 5, 6)


def test_ravel_and_unravel_match_numpy():
    rng = np.random.default_rng(1)
    flat = rng.integers(0, np.prod(SHAPE), size=20)
    multi = np.array(np.unravel_index(flat, SHAPE))
    np.testing.assert_array_equal(numba_unravel_index_multi(flat, SHAPE), multi)
    np.testing.assert_array_equal(numba_ravel_multi_index_multi(multi, SHAPE), flat)
    for k in range(5):
        idx = tuple(int(i) for i in multi[:, k])
        assert numba_ravel_multi_index_single(idx, SHAPE) == np.ravel_multi_index(idx, SHAPE)
        np.testing.assert_array_equal(
            numba_unravel_index_single(flat[k], SHAPE), np.unravel_index(flat[k], SHAPE)
        )


def test_index_helpers_are_callable_from_jitted_code():
    @numba.njit
    def roundtrip(i, shape):
        return numba_ravel_multi_index_single(numba_unravel_index_single(i, shape), shape)

    assert roundtrip(77, SHAPE) == 77


@pytest.mark.parametrize(
    "make", [scipy.sparse.csr_matrix, scipy.sparse.csc_matrix, scipy.sparse.csr_array]
)
def test_rmatmul_matches_dense_product(make):
    rng = np.random.default_rng(2)
    left = rng.normal(size=(3, 7)).astype(np.float32)
    right_dense = rng.normal(size=(7, 5)) * (rng.random((7, 5)) < 0.4)
    result = rmatmul(left, make(right_dense))
    np.testing.assert_allclose(result, left @ right_dense, rtol=1e-6)
    assert result.dtype == np.float64


def test_rmatmul_rejects_bad_operands():
    with pytest.raises(ValueError, match="do not match"):
        rmatmul(np.ones((2, 3)), scipy.sparse.csr_matrix(np.ones((4, 2))))
    with pytest.raises(ValueError, match="CSR or CSC"):
        rmatmul(np.ones((2, 3)), scipy.sparse.coo_matrix(np.ones((3, 2))))


def test_cached_njit_compiles_with_the_callee_aware_dispatcher():
    @cached_njit(cache=False)
    def double(x):
        return 2 * x

    assert isinstance(double, MyCPUDispatcher)
    assert double(21) == 42
    assert hasher(b"abc") == hasher(bytearray(b"abc")) != hasher(b"abd")


_HELPERS = """
from libertem.common.numba import cached_njit

@cached_njit
def helper(x):
    return x * {factor}
"""

_CALLER = """
import numpy as np
from libertem.common.numba import cached_njit
from helpers_mod import helper

@cached_njit
def caller(a):
    s = 0
    for v in a:
        s += helper(v)
    return s

print(caller(np.arange(4)))
"""


def test_cached_caller_is_recompiled_when_its_callee_changes(tmp_path):
    """The helper lives in another file: numba's own cache (keyed by the caller's file
    and code) would keep running the old helper compiled into the cached caller."""
    (tmp_path / "caller_mod.py").write_text(_CALLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}

    def run(factor):
        (tmp_path / "helpers_mod.py").write_text(textwrap.dedent(_HELPERS.format(factor=factor)))
        out = subprocess.run(
            [sys.executable, str(tmp_path / "caller_mod.py")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return int(out.stdout.strip())

    assert run(2) == 12
    assert any(
        p.name.startswith("caller_mod.caller") for p in (tmp_path / "__pycache__").iterdir()
    )
    assert run(3) == 18
