"""Which compute device this process uses: a CPU or one CUDA device.

Worker processes are told at start (environment variable ``LIBERTEM_USE_CUDA``
or :func:`set_use_cuda`); UDFs read it with :func:`get_use_cuda`.
"""

from __future__ import annotations

import os

_state: dict[str, int | None] = {"cuda": None, "cpu": None}


def _from_environment() -> None:
    value = os.environ.get("LIBERTEM_USE_CUDA")
    if value not in (None, ""):
        _state["cuda"] = int(value)


_from_environment()


def set_use_cpu(cpu: int) -> None:
    """Use CPU ``cpu`` (and no CUDA device) in this process."""
    _state["cpu"] = int(cpu)
    _state["cuda"] = None


def set_use_cuda(cuda_device: int) -> None:
    """Use CUDA device ``cuda_device`` in this process."""
    _state["cuda"] = int(cuda_device)
    _state["cpu"] = None


def get_use_cuda() -> int | None:
    """The CUDA device id this process uses, or ``None`` on a CPU worker."""
    return _state["cuda"]


def get_use_cpu() -> int | None:
    """The CPU id this process was assigned, or ``None``."""
    return _state["cpu"]


def get_device_class() -> str:
    """``'cuda'`` if this process uses a CUDA device, else ``'cpu'``."""
    return "cpu" if _state["cuda"] is None else "cuda"


def device_choice() -> dict[str, int | None]:
    """A copy of this process's device choice, for :func:`restore_device_choice`."""
    return dict(_state)


def restore_device_choice(choice: dict[str, int | None]) -> None:
    """Go back to a device choice taken with :func:`device_choice`."""
    _state.update(choice)


def is_cupy_backend(backend: str | None) -> bool:
    """Whether data of array backend ``backend`` lives in CuPy arrays (``'cupy'``,
    ``'cupyx.scipy.sparse...'``); ``'cuda'`` is NumPy data on a CUDA worker."""
    return backend is not None and (backend == "cupy" or backend.startswith("cupyx."))


def get_array_module(backend: str):
    """The array module of an array backend: ``cupy`` for CuPy's backends, else ``numpy``."""
    if is_cupy_backend(backend):
        import cupy

        return cupy
    import numpy

    return numpy


def set_file_limit() -> None:
    """Raise this process's limit of open files to the hard limit (where the OS has one).

    Datasets of many files keep many of them open; the default soft limit is often
    low. Does nothing where the ``resource`` module is not available.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # pragma: no cover - a restricted environment
            pass
