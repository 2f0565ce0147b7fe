"""Sparse data stored as a CSR matrix in three raw files, described by a TOML file.

The reading machinery (descriptor, arrays, tiles) is in
:mod:`libertem.io.dataset.raw_csr_read`; this module holds the dataset and its
partitions. Tiles are ``scipy.sparse.csr_matrix`` of shape ``(frames, sig pixels)``
(the native backend :data:`SCIPY_CSR`); UDFs asking for another array backend get
their tiles converted with :mod:`sparseconverter` (dense backends: reshaped to
``(frames, *sig_shape)``).
"""

from __future__ import annotations

import os
from math import ceil

import numpy as np
from sparseconverter import ND_BACKENDS, NUMPY, SCIPY_CSR, for_backend

from libertem.common.exceptions import DataSetException
from libertem.common.math import count_nonzero, prod
from libertem.common.messageconverter import (
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
    shape_schema,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.corrections.corrset import CorrectionSet
from libertem.io.dataset.base import (
    DataSet,
    DataSetMeta,
    DataTile,
    Partition,
    TilingScheme,
    dataset_shape,
)
from libertem.io.dataset.base.blocks import selected_range, stored_range
from libertem.io.dataset.base.dataset import PARTITION_TARGET_BYTES, files_cache_key
from libertem.io.dataset.base.mapguard import guarded
from libertem.io.dataset.base.partition import frames_slice, with_offset
from libertem.io.dataset.raw_csr_read import (
    CSRDescriptor,
    CSRTriple,
    TOMLError,
    can_use_numba,
    check,
    get_descriptor,
    get_nav_size,
    get_triple,
    load_toml,
    populate_tile,
    populate_tile_numba,
    read_tiles_straight,
    read_tiles_with_roi,
    sliced_indptr,
)

__all__ = [
    "can_use_numba",
    "check",
    "CorrectionSet",
    "count_nonzero",
    "CSRDescriptor",
    "CSRTriple",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DataTile",
    "get_descriptor",
    "get_nav_size",
    "get_triple",
    "load_toml",
    "MessageConverter",
    "NUMPY",
    "Partition",
    "populate_tile",
    "populate_tile_numba",
    "prod",
    "RawCSRDataSet",
    "RawCSRDatasetParams",
    "RawCSRPartition",
    "read_tiles_straight",
    "read_tiles_with_roi",
    "SCIPY_CSR",
    "Shape",
    "Slice",
    "sliced_indptr",
    "TilingScheme",
    "TOMLError",
]


#: largest frame (in pixels) accepted: indices of larger frames do not fit int32
MAX_SIG_SIZE = 2**31 - 1


def _shape_param(value, name: str, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(value)
    except TypeError:
        raise DataSetException(f"{where}: {name} {value!r} is not a list of integers") from None
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape):
        raise DataSetException(f"{where}: {name} {value!r} is not a list of integers")
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise DataSetException(f"{where}: {name} {shape} must be non-empty and positive")
    return shape


class RawCSRDatasetParams(DatasetParamsConverter):
    """JSON parameters of a raw CSR dataset: ``path`` of the TOML file, shapes, ``sync_offset``."""

    SCHEMA = dataset_schema(
        "RawCSRDatasetParams",
        "RAW_CSR",
        {
            "path": {"type": "string"},
            "nav_shape": shape_schema(),
            "sig_shape": shape_schema(),
            "sync_offset": {"type": "integer"},
        },
    )


def _is_csr_descriptor(path: str) -> bool:
    try:
        conf = load_toml(path)
    except DataSetException:
        return False
    params = conf.get("params")
    return isinstance(params, dict) and str(params.get("filetype", "")).lower() == "raw_csr"


class RawCSRDataSet(DataSet):
    """Sparse data as a CSR matrix (one row per frame) in raw files named by a TOML file.

    The descriptor names the files (relative to its own directory), their dtypes,
    and the shapes::

        [params]
        filetype = "raw_csr"
        nav_shape = [16, 16]
        sig_shape = [128, 128]

        [raw_csr]
        indptr_file = "rowind.dat"
        indptr_dtype = "<i8"
        indices_file = "coords.dat"
        indices_dtype = "<i4"
        data_file = "values.dat"
        data_dtype = "<u2"

    ``indptr`` holds ``frames + 1`` offsets into ``indices`` (flat position in the
    frame of each stored value) and ``data`` (the values).

    Parameters
    ----------
    path
        The TOML descriptor.
    nav_shape
        Navigation shape; by default the descriptor's, else the number of rows.
    sig_shape
        Frame shape; by default the descriptor's (same number of pixels).
    sync_offset
        Dataset frame ``i`` is stored row ``i + sync_offset``; frames outside are empty.
    io_backend
        Only memory mapping is supported: ``None`` or ``'mmap'``.
    num_partitions
        Number of partitions; by default derived from the stored bytes and workers.
    """

    def __init__(
        self,
        path: str,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int = 0,
        io_backend=None,
        num_partitions: int | None = None,
    ):
        self._path = os.fspath(path)
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._nav_shape = _shape_param(nav_shape, "nav_shape", self._path)
        self._sig_shape = _shape_param(sig_shape, "sig_shape", self._path)
        self._descriptor: CSRDescriptor | None = None
        self._shape: Shape | None = None
        self._nnz = 0

    # format facts ---------------------------------------------------------------
    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        """File name extensions of the descriptor: ``{'toml'}``."""
        return {"toml"}

    @classmethod
    def get_supported_io_backends(cls) -> list[str]:
        """The files are always memory-mapped: ``['mmap']``."""
        return ["mmap"]

    @classmethod
    def get_msg_converter(cls) -> type[MessageConverter]:
        """The converter of this format's JSON parameters."""
        return RawCSRDatasetParams

    @classmethod
    def detect_params(cls, path: str, executor=None):
        """Parameters for a TOML file whose ``[params]`` say ``filetype = "raw_csr"``."""
        path = os.fspath(path)
        if not path.lower().endswith(".toml") or not _is_csr_descriptor(path):
            return False
        params = load_toml(path)["params"]
        parameters = {"path": path}
        for key in ("nav_shape", "sig_shape"):
            if key in params:
                parameters[key] = params[key]
        if isinstance(params.get("sync_offset"), int):
            parameters["sync_offset"] = params["sync_offset"]
        return {"parameters": parameters}

    @property
    def array_backends(self) -> tuple[str, ...]:
        """Tiles are ``scipy.sparse.csr_matrix``: ``(SCIPY_CSR,)``; the engine converts them
        for UDFs that want another backend."""
        return (SCIPY_CSR,)

    # opening --------------------------------------------------------------------
    def initialize(self, executor) -> RawCSRDataSet:
        """Read the descriptor, check the arrays and determine the shape."""
        conf = load_toml(self._path)
        params = conf.get("params", {})
        if not isinstance(params, dict):
            raise DataSetException(f"{self._path}: [params] must be a table")
        filetype = str(params.get("filetype", "raw_csr")).lower()
        if filetype != "raw_csr":
            raise DataSetException(f"{self._path}: filetype {filetype!r} is not 'raw_csr'")
        descriptor = get_descriptor(self._path)
        file_sig = _shape_param(params.get("sig_shape"), "sig_shape", self._path)
        file_nav = _shape_param(params.get("nav_shape"), "nav_shape", self._path)
        sig = self._sig_shape or file_sig
        if sig is None:
            raise DataSetException(f"{self._path}: no sig_shape given or in [params]")
        if prod(sig) > MAX_SIG_SIZE:
            raise DataSetException(
                f"{self._path}: sig_shape {sig} holds more than {MAX_SIG_SIZE} pixels"
            )
        if file_sig is not None and prod(sig) != prod(file_sig):
            raise DataSetException(
                f"{self._path}: sig_shape {sig} does not fit the stored frames of "
                f"{prod(file_sig)} pixels ({file_sig})"
            )
        check(descriptor, None, sig)
        n_rows = get_nav_size(descriptor)
        nav = self._nav_shape or file_nav
        self._shape = dataset_shape(
            nav, sig, (n_rows, *sig), len(sig), n_rows, self.sync_offset, self._path
        )
        self._descriptor = descriptor
        self._nnz = int(get_triple(descriptor).indices.shape[0])
        self._image_count = n_rows
        return self

    def check_valid(self) -> bool:
        """Check that the arrays can be opened; raise ``DataSetException`` otherwise."""
        get_triple(self._need_descriptor())
        return True

    def _need_descriptor(self) -> CSRDescriptor:
        if self._descriptor is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        return self._descriptor

    @property
    def shape(self) -> Shape:
        """Shape of the dataset, navigation axes first."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored values."""
        return None if self._descriptor is None else np.dtype(self._descriptor.data_dtype)

    @property
    def descriptor(self) -> CSRDescriptor:
        """Where the arrays are stored."""
        return self._need_descriptor()

    # tiling -----------------------------------------------------------------------
    def get_base_shape(self, roi=None) -> tuple[int, ...]:
        """Tiles always hold whole frames: the full signal shape."""
        return tuple(self.shape.sig)

    def adjust_tileshape(
        self, tileshape: tuple[int, ...], roi: np.ndarray | None
    ) -> tuple[int, ...]:
        """``tileshape`` with the signal part widened to whole frames."""
        return (int(tileshape[0]), *self.shape.sig)

    def need_decode(self, read_dtype, roi, corrections) -> bool:
        """Always ``True``: tiles are built from the stored arrays, never handed out as views."""
        return True

    def get_max_io_size(self) -> int | None:
        """No limit: a tile's rows are read as one contiguous range of each array."""
        return None

    def get_num_partitions(self) -> int:
        """Partitions by stored bytes (~256 MiB each), at least one per worker."""
        nav_size = self.shape.nav.size
        if self._num_partitions is not None:
            return max(1, min(self._num_partitions, nav_size))
        d = self._need_descriptor()
        stored = self._nnz * (np.dtype(d.data_dtype).itemsize + np.dtype(d.indices_dtype).itemsize)
        n = max(self._cores, ceil(stored / PARTITION_TARGET_BYTES))
        return max(1, min(n, nav_size))

    def get_cache_key(self) -> str:
        """A key identifying the data read: the descriptor and its files, shape and sync
        offset."""
        d = self._need_descriptor()
        return files_cache_key(self, [self._path, d.indptr_file, d.indices_file, d.data_file])

    def get_diagnostics(self) -> list[dict]:
        """Facts about the stored data, as ``{'name': ..., 'value': ...}`` entries."""
        d = self._need_descriptor()
        n_values = self.shape.size
        density = self._nnz / n_values if n_values else 0.0
        empty = self._image_count - count_nonzero(np.diff(get_triple(d).indptr))
        return [
            {"name": "stored values (nnz)", "value": str(self._nnz)},
            {"name": "stored frames without values", "value": str(empty)},
            {"name": "density", "value": f"{density:.3g}"},
            {"name": "data dtype", "value": str(np.dtype(d.data_dtype))},
            {"name": "indices dtype", "value": str(np.dtype(d.indices_dtype))},
            {"name": "indptr dtype", "value": str(np.dtype(d.indptr_dtype))},
        ]

    def supports_correction(self) -> bool:
        """Corrections are not applied to sparse data: ``False``."""
        return False

    def make_partition(self, start: int, stop: int) -> RawCSRPartition:
        meta = self.meta
        part_slice = frames_slice(start, stop, self.shape.sig)
        return RawCSRPartition(self._need_descriptor(), start, stop - start, meta, part_slice)


class RawCSRPartition(Partition):
    """Frames ``[start_frame, start_frame + num_frames)`` of a raw CSR dataset.

    Parameters
    ----------
    descriptor
        Where the arrays are stored.
    start_frame, num_frames
        The partition's frames (flat navigation index).
    *args, **kwargs
        Those of :class:`~libertem.io.dataset.base.partition.Partition`: ``meta``
        (its ``sync_offset`` applies), ``partition_slice``, ``io_backend``, ``decoder``.
    """

    def __init__(
        self, descriptor: CSRDescriptor, start_frame: int, num_frames: int, *args, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.descriptor = descriptor
        self.start_frame = int(start_frame)
        self.num_frames = int(num_frames)

    def get_locations(self):
        """``None``: any worker can read the partition."""
        return None

    def set_corrections(self, corrections) -> None:
        """Refuse corrections: sparse data is read as stored.

        Raises
        ------
        NotImplementedError
            If ``corrections`` would change the data.
        """
        if corrections is not None and corrections.have_corrections():
            raise NotImplementedError("corrections are not supported for raw_csr data")
        super().set_corrections(corrections)

    def validate_tiling_scheme(self, tiling_scheme) -> None:
        """Check that ``tiling_scheme`` cuts whole frames.

        Raises
        ------
        ValueError
            If a tile would hold only part of a frame.
        """
        super().validate_tiling_scheme(tiling_scheme)
        sig = tuple(self.dataset_shape.sig)
        slices = list(tiling_scheme.slices)
        if len(slices) != 1 or tuple(slices[0].shape) != sig:
            raise ValueError(
                f"raw_csr tiles must hold whole frames of shape {sig}, the tiling scheme "
                f"cuts them into {len(slices)} parts"
            )

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        """Tiles of the partition's frames that have stored data (only those are read)."""
        triple = get_triple(self.descriptor)
        sync_offset = self.meta.sync_offset
        lo, hi = stored_range(self.start, self.stop, sync_offset, self.meta.image_count)
        k0, _ = selected_range(self.start, (lo, hi), roi_part)
        sl = self.slice
        stored = Slice((lo, *sl.origin[1:]), Shape((hi - lo, *sl.shape.sig), sl.shape.sig_dims))
        if roi_part is None:
            tiles = read_tiles_straight(triple, stored, sync_offset, scheme, dest_dtype)
        else:
            roi_stored = roi_part[lo - self.start : hi - self.start]
            tiles = read_tiles_with_roi(
                triple, stored, sync_offset, scheme, roi_stored, dest_dtype
            )
        for tile in tiles:
            local = tile.slice
            tile.slice = Slice((local.origin[0] + k0, *local.origin[1:]), local.shape)
            tile._offset = self.start
            yield tile

    def get_tiles(self, tiling_scheme, dest_dtype="float32", roi=None, array_backend=None):
        """Tiles of the partition: CSR matrices, or converted to ``array_backend``.

        Parameters
        ----------
        tiling_scheme
            Tiles of ``tiling_scheme.depth`` whole frames.
        dest_dtype
            Dtype of the values handed out.
        roi
            Boolean mask of the partition's frames or of all frames, or ``None``.
        array_backend
            ``None`` or :data:`SCIPY_CSR`: CSR matrices ``(frames, sig pixels)``; any
            other backend of :mod:`sparseconverter`: converted, with the n-dimensional
            ones (numpy, ``sparse.COO``, ...) reshaped to ``(frames, *sig_shape)``.

        Raises
        ------
        DataSetException
            When the stored offsets or indices are corrupt (naming the files).
        """
        self.validate_tiling_scheme(tiling_scheme)
        roi_part = self._roi_part(roi)
        tiles = self._read_tiles(tiling_scheme, np.dtype(dest_dtype), roi_part)
        tiles = _naming_files(tiles, self.descriptor)
        if array_backend is not None and array_backend != SCIPY_CSR:
            tiles = _converted(tiles, array_backend, self.start)
        if roi_part is not None:
            tiles = with_offset(tiles, self._roi_offset(roi))
        return guarded(tiles)


def _naming_files(tiles, descriptor: CSRDescriptor):
    try:
        yield from tiles
    except DataSetException as e:
        raise DataSetException(
            f"{descriptor.indptr_file}, {descriptor.indices_file}: {e}"
        ) from None


def _converted(tiles, array_backend: str, partition_start: int):
    nd = array_backend in ND_BACKENDS
    for tile in tiles:
        data = for_backend(tile.data, array_backend)
        if nd:
            data = data.reshape(tuple(tile.slice.shape))
        yield DataTile(data, tile.slice, tile.scheme_idx, partition_start)
