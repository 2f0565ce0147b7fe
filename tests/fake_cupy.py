"""A stand-in for CuPy on machines without a GPU: numpy underneath, arrays marked as "device".

Install it with :func:`install` (tests in one process) or as a Dask worker preload
(``options={'preload': [path_of_this_file]}``), which runs :func:`dask_setup`.
"""

from __future__ import annotations

import sys
import types

import numpy as np


class DeviceArray(np.ndarray):
    """An array "on the device"; ``get()`` copies it to the host like CuPy's."""

    def get(self):
        return np.asarray(self).view(np.ndarray).copy()


def _device(array):
    return np.asarray(array).view(DeviceArray)


def build() -> types.ModuleType:
    """A module with the part of CuPy's API the engine and the built-in UDFs use."""
    module = types.ModuleType("cupy")
    module.__is_fake__ = True
    module.ndarray = DeviceArray

    def asarray(a, dtype=None):
        return _device(np.asarray(a, dtype=dtype))

    def asnumpy(a):
        return np.asarray(a).view(np.ndarray).copy()

    def zeros(shape, dtype=float):
        return _device(np.zeros(shape, dtype=dtype))

    module.asarray = asarray
    module.asnumpy = asnumpy
    module.zeros = zeros
    for name in ("sum", "abs", "where", "sqrt", "stack", "dot", "float32", "float64", "int64"):
        setattr(module, name, getattr(np, name))
    return module


def install() -> types.ModuleType:
    """Make ``import cupy`` return the stand-in in this process."""
    module = build()
    sys.modules["cupy"] = module
    return module


def dask_setup(worker=None) -> None:
    """Dask preload hook: install the stand-in in the worker process."""
    install()
