"""The UDF interface as a protocol: array backends, tiling preferences, processing methods.

The backend names are those of :mod:`sparseconverter`, the library that converts
tiles between them. They are spelled out here, so that defining a UDF does not
import sparseconverter (and with it scipy.sparse and pydata.sparse); the sets of
names are taken from sparseconverter on first access.
"""

from __future__ import annotations

import enum
from typing import Literal, Protocol, TypedDict, runtime_checkable

NUMPY = "numpy"
CUPY = "cupy"
CUDA = "cuda"
SPARSE_COO = "sparse.COO"
SPARSE_GCXS = "sparse.GCXS"
SPARSE_DOK = "sparse.DOK"
SCIPY_COO = "scipy.sparse.coo_matrix"
SCIPY_CSR = "scipy.sparse.csr_matrix"
SCIPY_CSC = "scipy.sparse.csc_matrix"
SCIPY_COO_ARRAY = "scipy.sparse.coo_array"
SCIPY_CSR_ARRAY = "scipy.sparse.csr_array"
SCIPY_CSC_ARRAY = "scipy.sparse.csc_array"
CUPY_SCIPY_COO = "cupyx.scipy.sparse.coo_matrix"
CUPY_SCIPY_CSR = "cupyx.scipy.sparse.csr_matrix"
CUPY_SCIPY_CSC = "cupyx.scipy.sparse.csc_matrix"
NUMPY_MATRIX = "numpy.matrix"

#: every backend name of sparseconverter (its ``BACKENDS``), without importing it
BACKEND_NAMES = frozenset(
    (
        NUMPY,
        NUMPY_MATRIX,
        CUDA,
        CUPY,
        SPARSE_COO,
        SPARSE_GCXS,
        SPARSE_DOK,
        SCIPY_COO,
        SCIPY_CSR,
        SCIPY_CSC,
        SCIPY_COO_ARRAY,
        SCIPY_CSR_ARRAY,
        SCIPY_CSC_ARRAY,
        CUPY_SCIPY_COO,
        CUPY_SCIPY_CSR,
        CUPY_SCIPY_CSC,
    )
)
#: the backends of CUDA devices (sparseconverter's ``CUDA_BACKENDS``), CuPy's among them
CUPY_BACKEND_NAMES = frozenset((CUPY, CUPY_SCIPY_COO, CUPY_SCIPY_CSR, CUPY_SCIPY_CSC))
CUDA_BACKEND_NAMES = CUPY_BACKEND_NAMES | {CUDA}
#: the backends of the host (sparseconverter's ``CPU_BACKENDS``)
CPU_BACKEND_NAMES = BACKEND_NAMES - CUDA_BACKEND_NAMES
#: the two-dimensional backends (sparseconverter's ``D2_BACKENDS``)
D2_BACKEND_NAMES = frozenset(
    (
        NUMPY_MATRIX,
        SCIPY_COO,
        SCIPY_CSR,
        SCIPY_CSC,
        SCIPY_COO_ARRAY,
        SCIPY_CSR_ARRAY,
        SCIPY_CSC_ARRAY,
        CUPY_SCIPY_COO,
        CUPY_SCIPY_CSR,
        CUPY_SCIPY_CSC,
    )
)


class _BackendSet:
    """A set of backend names of :mod:`sparseconverter` (``BACKENDS``, ``CPU_BACKENDS``, ...),
    read from it on first access."""

    def __init__(self, name: str):
        self._name = name

    def __get__(self, obj, owner=None) -> frozenset[str]:
        import sparseconverter

        return getattr(sparseconverter, self._name)


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

    #: every backend a UDF may name, except ``cuda``, ``numpy.matrix`` and ``sparse.DOK``
    BACKEND_ALL = frozenset(
        (
            NUMPY,
            CUPY,
            SPARSE_COO,
            SPARSE_GCXS,
            SCIPY_COO,
            SCIPY_CSR,
            SCIPY_CSC,
            SCIPY_COO_ARRAY,
            SCIPY_CSR_ARRAY,
            SCIPY_CSC_ARRAY,
            CUPY_SCIPY_COO,
            CUPY_SCIPY_CSR,
            CUPY_SCIPY_CSC,
        )
    )
    CPU_BACKENDS = _BackendSet("CPU_BACKENDS")
    CUDA_BACKENDS = _BackendSet("CUDA_BACKENDS")
    CUPY_BACKENDS = _BackendSet("CUPY_BACKENDS")
    SPARSE_BACKENDS = _BackendSet("SPARSE_BACKENDS")
    DENSE_BACKENDS = _BackendSet("DENSE_BACKENDS")
    D2_BACKENDS = _BackendSet("D2_BACKENDS")
    ND_BACKENDS = _BackendSet("ND_BACKENDS")

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
