"""Find the CPUs and CUDA devices this machine offers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from typing import TypedDict


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
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cuda_devices() -> list[int]:
    """Ids of visible CUDA devices; empty without a GPU or a CUDA driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            return list(range(cupy.cuda.runtime.getDeviceCount()))
        except Exception:
            return []
    try:
        from numba import cuda

        if cuda.is_available():
            return [gpu.id for gpu in cuda.gpus]
    except Exception:
        pass
    return []


def has_cupy() -> bool:
    """Whether CuPy can be imported."""
    return importlib.util.find_spec("cupy") is not None


def detect() -> DetectResult:
    """The devices to start workers for.

    Returns
    -------
    dict
        ``{'cpus': range(n_cores), 'cudas': [device ids], 'has_cupy': bool}``, ready to
        pass as keyword arguments to :func:`libertem.executor.dask.cluster_spec`.
    """
    cudas = _cuda_devices()
    return DetectResult(cpus=range(_cpu_count()), cudas=cudas, has_cupy=bool(cudas) and has_cupy())
