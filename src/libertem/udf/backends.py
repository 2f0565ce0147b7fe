"""Array backends: which one each UDF gets, which resources that needs, converting tiles.

Backend names are those of :mod:`sparseconverter` (``'numpy'``, ``'cupy'``,
``'cuda'``, ``'sparse.COO'``, ``'scipy.sparse.csr_matrix'``, ...). A dataset
offers some of them (``DataSet.array_backends``); a UDF accepts some
(``UDF.get_backends()``); the worker is a CPU or a CUDA worker. Per UDF we pick
the accepted backend that the worker can run and that is cheapest to reach from
what the dataset offers; the partition is read once, and each tile is converted
once per backend that some UDF needs.

sparseconverter (which imports scipy.sparse, pydata.sparse and numba) is imported
only where something else than NumPy arrays is chosen or converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from libertem.common.exceptions import UDFException
from libertem.common.udf import BACKEND_NAMES as BACKENDS
from libertem.common.udf import CPU_BACKEND_NAMES as CPU_BACKENDS
from libertem.common.udf import CUDA, CUPY, NUMPY
from libertem.common.udf import CUDA_BACKEND_NAMES as CUDA_BACKENDS
from libertem.common.udf import CUPY_BACKEND_NAMES as CUPY_BACKENDS
from libertem.common.udf import D2_BACKEND_NAMES as D2_BACKENDS

ResourceDef = dict[str, int]


def as_backend_set(backends, what: str = "backends") -> frozenset[str]:
    """``backends`` (one name or an iterable of names) as a set, validated.

    Raises
    ------
    UDFException
        For a name that is not an array backend.
    """
    if isinstance(backends, str):
        backends = (backends,)
    result = frozenset(backends)
    unknown = sorted(result - BACKENDS)
    if unknown:
        raise UDFException(
            f"{what}: unknown array backend(s) {unknown}; known are {sorted(BACKENDS)}"
        )
    return result


def _restrict(udf_backends, user_backends) -> frozenset[str]:
    supported = as_backend_set(udf_backends, "get_backends()")
    if user_backends is not None:
        supported &= as_backend_set(user_backends, "backends")
    return supported


def get_resources_for_backends(udf_backends: list, user_backends) -> ResourceDef:
    """Worker resources a task needs to run UDFs supporting ``udf_backends``.

    Parameters
    ----------
    udf_backends
        Per UDF, what its ``get_backends()`` returns.
    user_backends
        The ``backends`` restriction of the run, or ``None``.

    Returns
    -------
    dict
        ``{'compute': 1}`` if CPU and CUDA workers both qualify,
        ``{'CPU': 1, 'compute': 1}`` for CPU workers, ``{'CUDA': 1, 'compute': 1}``
        for CUDA workers (with ``'ndarray': 1`` when CuPy is needed there).

    Raises
    ------
    UDFException
        If a UDF supports none of the allowed backends, or no kind of worker can
        run all UDFs together.
    """
    cpu_ok = cuda_ok = True
    needs_cupy = False
    for backends in udf_backends:
        supported = _restrict(backends, user_backends)
        if not supported:
            raise UDFException(
                f"a UDF supports {sorted(as_backend_set(backends))}, none of the "
                f"requested backends {sorted(as_backend_set(user_backends))}"
            )
        cpu_ok &= bool(supported & CPU_BACKENDS)
        on_cuda = supported & CUDA_BACKENDS
        cuda_ok &= bool(on_cuda)
        needs_cupy |= bool(on_cuda) and on_cuda <= CUPY_BACKENDS
    if not cpu_ok and not cuda_ok:
        raise UDFException("no single kind of worker (CPU or CUDA) can run all UDFs together")
    if cpu_ok and cuda_ok:
        return {"compute": 1}
    if cpu_ok:
        return {"CPU": 1, "compute": 1}
    resources = {"CUDA": 1, "compute": 1}
    if needs_cupy:
        resources["ndarray"] = 1
    return resources


def host_sources(dataset_backends: Iterable[str] | None) -> frozenset[str]:
    """The backends a dataset offers that can be read on the host (default: numpy)."""
    sources = frozenset(dataset_backends or ()) & CPU_BACKENDS
    return sources or frozenset((NUMPY,))


def choose_backend(
    udf_backends, user_backends, device_class: str, sources: frozenset[str]
) -> tuple[str, str, str]:
    """The ``(device_class, array_backend, source_backend)`` of one UDF on this worker.

    On a CUDA worker CuPy backends come first, then ``'cuda'``; a UDF that can run
    on neither runs on the CPU. Among the candidates, the one that is cheapest to
    reach from one of ``sources`` wins (no conversion at all where possible).
    """
    supported = _restrict(udf_backends, user_backends)
    if not supported:
        allowed = sorted(as_backend_set(udf_backends))
        raise UDFException(f"no allowed array backend among {allowed}")
    candidates = frozenset()
    if device_class == "cuda":
        on_cuda = supported & CUDA_BACKENDS
        candidates = (on_cuda & CUPY_BACKENDS) or on_cuda
    if candidates:
        device_class = "cuda"
    else:
        device_class = "cpu"
        candidates = supported & CPU_BACKENDS
        if not candidates:
            raise UDFException(
                f"a UDF supporting only {sorted(supported)} cannot run on a CPU worker"
            )
    if sources & candidates:
        candidates = sources & candidates
    if candidates == {NUMPY} and NUMPY in sources:
        return device_class, NUMPY, NUMPY
    import sparseconverter

    source, target = sparseconverter.cheapest_pair(sources, candidates)
    return device_class, target, source


def choose_read_backend(sources: frozenset[str], targets: Sequence[str]) -> str:
    """The backend to read tiles in: cheapest in total to convert to every target."""
    if len(sources) == 1:
        return next(iter(sources))
    import sparseconverter

    def cost(source: str) -> float:
        total = 0.0
        for target in targets:
            reached = NUMPY if target == CUDA else target
            if reached not in CPU_BACKENDS:
                reached = NUMPY
            total += sparseconverter.conversion_cost(source, reached)
        return total

    return min(sorted(sources), key=cost)


def is_numpy_like(backend: str) -> bool:
    """Whether data of ``backend`` is handed out as a plain NumPy array."""
    return backend in (NUMPY, CUDA)


def convert_tile(data, target: str, xp, tile_shape: tuple[int, ...]):
    """``data`` (a tile of any host backend) as ``target``.

    ``xp`` is the UDF's array module (for CuPy targets); ``tile_shape`` is the
    tile's full shape ``(frames, *signal region)``: 2D backends get the signal
    axes flattened, n-dimensional ones the full shape.
    """
    if type(data) is not np.ndarray or not is_numpy_like(target):
        import sparseconverter
    if is_numpy_like(target):
        if type(data) is not np.ndarray:
            data = sparseconverter.for_backend(data, NUMPY)
        return data.reshape(tile_shape) if data.shape != tile_shape else data
    if target == CUPY:
        if type(data) is not np.ndarray:
            data = sparseconverter.for_backend(data, NUMPY)
        return xp.asarray(data.reshape(tile_shape))
    converted = sparseconverter.for_backend(data, target)
    if target not in D2_BACKENDS and converted.shape != tile_shape:
        converted = converted.reshape(tile_shape)
    return converted


def backend_of(arr) -> str | None:
    """The backend name of ``arr`` (``None`` if unknown)."""
    if type(arr) is np.ndarray:
        return NUMPY
    import sparseconverter

    try:
        return sparseconverter.get_backend(arr)
    except Exception:  # unknown types
        return None


def convert_like(arr, target) -> Any:
    """``arr`` converted to the backend (and, where sizes agree, the shape) of ``target``."""
    target_backend = backend_of(target)
    if target_backend is None or backend_of(arr) == target_backend:
        result = arr
    elif target_backend == CUPY:
        import cupy
        import sparseconverter

        result = cupy.asarray(sparseconverter.for_backend(arr, NUMPY))
    else:
        import sparseconverter

        result = sparseconverter.for_backend(arr, target_backend)
    shape = getattr(target, "shape", None)
    if (
        shape is not None
        and result.shape != shape
        and int(np.prod(result.shape)) == int(np.prod(shape))
    ):
        result = result.reshape(shape)
    return result


__all__ = [
    "as_backend_set",
    "choose_backend",
    "choose_read_backend",
    "convert_like",
    "convert_tile",
    "get_resources_for_backends",
    "host_sources",
    "is_numpy_like",
]
