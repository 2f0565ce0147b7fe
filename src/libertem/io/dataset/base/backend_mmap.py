"""LiberTEM's module path of the memory-map I/O backend.

The backend is :class:`~libertem.io.dataset.base.backend.MMapBackend`; its
reading side and mapped files are in :mod:`~libertem.io.dataset.base.backend_impl`.
This module re-exports them, and the other names LiberTEM has here, on access.
"""

from libertem.common.lazy import lazy_names

_BASE = "libertem.io.dataset.base"

_WHERE = {
    "BufferPool": "libertem.common.alloc",
    "CUDA": "libertem.common.udf",
    "NUMPY": "libertem.common.udf",
    "DataTile": f"{_BASE}.tiles",
    "DtypeConversionDecoder": f"{_BASE}.decoders",
    "FileSet": f"{_BASE}.fileset",
    "IOBackend": f"{_BASE}.backend",
    "IOBackendImpl": f"{_BASE}.backend_impl",
    "MMapBackend": f"{_BASE}.backend",
    "MMapBackendImpl": f"{_BASE}.backend_impl",
    "MMapFile": f"{_BASE}.backend_impl",
    "MMapFileBase": f"{_BASE}.backend_impl",
    "Shape": "libertem.common.shape",
    "Slice": "libertem.common.slice",
    "cached_njit": "libertem.common.numba",
    "prod": "libertem.common.math",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = list(_WHERE)
