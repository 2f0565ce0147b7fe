"""Find the CPUs and CUDA devices this machine offers."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Iterable
from typing import TypedDict


def _try_import_cupy():
    """CuPy, or ``None``: silently if it is not installed, with a warning if it is broken."""
    try:
        return importlib.import_module("cupy")
    except ModuleNotFoundError:
        return None
    except ImportError as e:
        warnings.warn(repr(e), RuntimeWarning, stacklevel=3)
        return None


#: CuPy as imported with this module (an installed but broken CuPy is reported then)
_IMPORTED_CUPY = _try_import_cupy()


class DetectResult(TypedDict):
    """What :func:`detect` finds: the keyword arguments of ``cluster_spec``.

    Attributes
    ----------
    cpus
        CPU ids (one worker each).
    cudas
        CUDA device ids.
    has_cupy
        Whether CuPy is usable with them.
    """

    cpus: Iterable[int]
    cudas: list[int]
    has_cupy: bool


def _cpu_count() -> int:
    """Physical CPU cores (at most the CPUs this process may run on)."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    if hasattr(os, "sched_getaffinity"):
        allowed = len(os.sched_getaffinity(0))
    else:
        allowed = os.cpu_count() or 1
    return max(1, min(physical or allowed, allowed))


#: file names of the CUDA driver library
_CUDA_DRIVERS = {"win32": ("nvcuda.dll",), "darwin": ()}


def _cuda_driver_present() -> bool:
    """Whether the CUDA driver library can be loaded (no CUDA device without it)."""
    import ctypes

    for name in _CUDA_DRIVERS.get(sys.platform, ("libcuda.so.1", "libcuda.so")):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _cuda_devices() -> list[int]:
    """Ids of visible CUDA devices; empty without a GPU or a CUDA driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    cupy = sys.modules.get("cupy")
    if cupy is not None and not getattr(cupy, "__is_fake__", False):
        try:
            return list(range(cupy.cuda.runtime.getDeviceCount()))
        except Exception:
            return []
    if not _cuda_driver_present():
        return []  # numba.cuda would find none either; it takes a quarter second to import
    try:
        from numba import cuda

        if cuda.is_available():
            return [gpu.id for gpu in cuda.gpus]
    except Exception:
        pass
    return []


#: id of the ``cupy`` module checked last, and the outcome
_CUPY_CHECKED: dict[str, tuple[int, bool]] = {}


def has_cupy() -> bool:
    """Whether CuPy is installed and works (cached).

    CuPy works if ``cupy.cuda`` is there and a small array can be created on the
    device; otherwise a ``RuntimeWarning`` with the error is emitted (once) and the
    answer is ``False``. The answer is checked again only if another ``cupy``
    module is installed in ``sys.modules`` later.
    """
    module = sys.modules.get("cupy", _IMPORTED_CUPY)
    if module is None:
        return False
    cached = _CUPY_CHECKED.get("cupy")
    if cached is not None and cached[0] == id(module):
        return cached[1]
    try:
        module.cuda  # noqa: B018 - raises on a CuPy without CUDA support
        module.zeros((1,), dtype="float32")
        works = True
    except Exception as e:
        warnings.warn(repr(e), RuntimeWarning, stacklevel=2)
        works = False
    _CUPY_CHECKED["cupy"] = (id(module), works)
    return works


def detect() -> DetectResult:
    """The devices to start workers for.

    Returns
    -------
    dict
        ``{'cpus': list(range(n_cores)), 'cudas': [device ids], 'has_cupy': bool}``
        (``n_cores``: physical cores), ready to pass as keyword arguments to
        :func:`libertem.executor.dask.cluster_spec`.
    """
    cudas = _cuda_devices()
    return DetectResult(
        cpus=list(range(_cpu_count())), cudas=cudas, has_cupy=bool(cudas) and has_cupy()
    )
