"""The UDF interface as a protocol: array backends, tiling preferences, processing methods.

The backend names are those of :mod:`sparseconverter`, the library that converts
tiles between them.
"""

from __future__ import annotations

import enum
from typing import Literal, Protocol, TypedDict, runtime_checkable

import sparseconverter

NUMPY = sparseconverter.NUMPY
CUPY = sparseconverter.CUPY
CUDA = sparseconverter.CUDA
SPARSE_COO = sparseconverter.SPARSE_COO
SPARSE_GCXS = sparseconverter.SPARSE_GCXS
SPARSE_DOK = sparseconverter.SPARSE_DOK
SCIPY_COO = sparseconverter.SCIPY_COO
SCIPY_CSR = sparseconverter.SCIPY_CSR
SCIPY_CSC = sparseconverter.SCIPY_CSC
SCIPY_COO_ARRAY = sparseconverter.SCIPY_COO_ARRAY
SCIPY_CSR_ARRAY = sparseconverter.SCIPY_CSR_ARRAY
SCIPY_CSC_ARRAY = sparseconverter.SCIPY_CSC_ARRAY
CUPY_SCIPY_COO = sparseconverter.CUPY_SCIPY_COO
CUPY_SCIPY_CSR = sparseconverter.CUPY_SCIPY_CSR
CUPY_SCIPY_CSC = sparseconverter.CUPY_SCIPY_CSC


class TileSizeEnum(enum.Enum):
    """Symbolic tile sizes for ``get_tiling_preferences()['total_size']``."""

    #: about 1 MiB of input data per tile: fits the CPU caches
    BEST_FIT = "best_fit"


class TileDepthEnum(enum.Enum):
    """Symbolic tile depths for ``get_tiling_preferences()['depth']``."""

    #: let the dataset and the tile size decide
    DEFAULT = "default"


class UDFMethod(enum.Enum):
    """The processing method a UDF implements; see :meth:`UDFProtocol.get_method`."""

    TILE = "tile"
    FRAME = "frame"
    PARTITION = "partition"


class TilingPreferences(TypedDict):
    """What ``UDF.get_tiling_preferences()`` returns.

    ``depth``: frames per tile (an int, ``TILE_DEPTH_DEFAULT`` or ``TILE_DEPTH_MAX``);
    ``total_size``: bytes per tile (a number, ``TILE_SIZE_BEST_FIT`` or ``TILE_SIZE_MAX``).
    """

    depth: int | float | TileDepthEnum
    total_size: int | float | TileSizeEnum


@runtime_checkable
class UDFProtocol(Protocol):
    """What the engine needs of a UDF besides its processing method.

    Holds the array-backend names that :meth:`get_backends` may return, and the
    sets of them (all, CPU, CUDA, CuPy, sparse, dense).
    """

    TILE_SIZE_BEST_FIT = TileSizeEnum.BEST_FIT
    TILE_SIZE_MAX = float("inf")
    TILE_DEPTH_DEFAULT = TileDepthEnum.DEFAULT
    TILE_DEPTH_MAX = float("inf")

    BACKEND_NUMPY = NUMPY
    BACKEND_CUPY = CUPY
    BACKEND_CUDA = CUDA
    BACKEND_SPARSE_COO = SPARSE_COO
    BACKEND_SPARSE_GCXS = SPARSE_GCXS
    BACKEND_SPARSE_DOK = SPARSE_DOK
    BACKEND_SCIPY_COO = SCIPY_COO
    BACKEND_SCIPY_CSR = SCIPY_CSR
    BACKEND_SCIPY_CSC = SCIPY_CSC
    BACKEND_SCIPY_COO_ARRAY = SCIPY_COO_ARRAY
    BACKEND_SCIPY_CSR_ARRAY = SCIPY_CSR_ARRAY
    BACKEND_SCIPY_CSC_ARRAY = SCIPY_CSC_ARRAY
    BACKEND_CUPY_SCIPY_COO = CUPY_SCIPY_COO
    BACKEND_CUPY_SCIPY_CSR = CUPY_SCIPY_CSR
    BACKEND_CUPY_SCIPY_CSC = CUPY_SCIPY_CSC

    BACKEND_ALL = sparseconverter.BACKENDS
    CPU_BACKENDS = sparseconverter.CPU_BACKENDS
    CUDA_BACKENDS = sparseconverter.CUDA_BACKENDS
    CUPY_BACKENDS = sparseconverter.CUPY_BACKENDS
    SPARSE_BACKENDS = sparseconverter.SPARSE_BACKENDS
    DENSE_BACKENDS = sparseconverter.DENSE_BACKENDS
    D2_BACKENDS = sparseconverter.D2_BACKENDS
    ND_BACKENDS = sparseconverter.ND_BACKENDS

    def get_method(self) -> UDFMethod:
        """Which of ``process_tile``, ``process_frame``, ``process_partition`` runs."""
        ...

    def get_tiling_preferences(self) -> TilingPreferences:
        """Preferred tile depth and size."""
        ...


ArrayBackendName = Literal[
    "numpy",
    "numpy.matrix",
    "cuda",
    "cupy",
    "sparse.COO",
    "sparse.GCXS",
    "sparse.DOK",
    "scipy.sparse.coo_matrix",
    "scipy.sparse.csr_matrix",
    "scipy.sparse.csc_matrix",
    "scipy.sparse.coo_array",
    "scipy.sparse.csr_array",
    "scipy.sparse.csc_array",
    "cupyx.scipy.sparse.coo_matrix",
    "cupyx.scipy.sparse.csr_matrix",
    "cupyx.scipy.sparse.csc_matrix",
]

__all__ = [
    "NUMPY",
    "CUPY",
    "CUDA",
    "SPARSE_COO",
    "SPARSE_GCXS",
    "SPARSE_DOK",
    "SCIPY_COO",
    "SCIPY_CSR",
    "SCIPY_CSC",
    "SCIPY_COO_ARRAY",
    "SCIPY_CSR_ARRAY",
    "SCIPY_CSC_ARRAY",
    "CUPY_SCIPY_COO",
    "CUPY_SCIPY_CSR",
    "CUPY_SCIPY_CSC",
    "TileSizeEnum",
    "TileDepthEnum",
    "UDFMethod",
    "TilingPreferences",
    "UDFProtocol",
]
