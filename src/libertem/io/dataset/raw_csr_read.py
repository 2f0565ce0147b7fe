"""Reading sparse CSR data: descriptor files, the on-disk arrays, and tiles of rows.

A *raw CSR* dataset stores a 2D CSR matrix of shape ``(frames, sig pixels)`` as
three headerless binary files: ``indptr`` (``frames + 1`` offsets), ``indices``
(the flat signal position of each stored value) and ``data`` (the values). A
TOML descriptor names the files (relative to its own directory), their dtypes
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

Tiles are ``scipy.sparse.csr_matrix`` of shape ``(frames, sig pixels)``, one row per
frame, always holding whole frames. Without a ROI they are zero-copy views of the
memory-mapped files (only ``indptr`` is rebased); with a ROI, the selected rows are
gathered by a numba kernel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base.files import check_file, open_memmap
from libertem.io.dataset.base.tiles import DataTile

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TOMLError = tomllib.TOMLDecodeError

#: dtypes the numba gather kernel is compiled for (native byte order only)
_NUMBA_KINDS = "biuf"


class CSRDescriptor(NamedTuple):
    """Where the three arrays of a CSR dataset are stored, and their dtypes.

    Attributes
    ----------
    indptr_file, indices_file, data_file
        Paths of the raw files (absolute, or relative to the working directory).
    indptr_dtype, indices_dtype, data_dtype
        Dtypes of the stored values, byte order included.
    """

    indptr_file: str
    indptr_dtype: np.dtype
    indices_file: str
    indices_dtype: np.dtype
    data_file: str
    data_dtype: np.dtype


class CSRTriple(NamedTuple):
    """The three arrays of a CSR matrix (usually read-only memory maps).

    Attributes
    ----------
    indptr
        Row ``i`` holds the values ``data[indptr[i]:indptr[i + 1]]``.
    indices
        Flat signal position of each stored value.
    data
        The stored values.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def load_toml(path: str) -> dict:
    """The content of the TOML file ``path`` as a dict.

    Raises
    ------
    DataSetException
        If the file is missing, unreadable or not valid TOML.
    """
    path = os.fspath(path)
    check_file(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except TOMLError as e:
        raise DataSetException(f"{path}: not a valid TOML file: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e


def _dtype(value, path: str, key: str, kinds: str) -> np.dtype:
    try:
        dtype = np.dtype(value)
    except TypeError as e:
        raise DataSetException(f"{path}: [raw_csr] {key} = {value!r} is not a dtype") from e
    if dtype.kind not in kinds or dtype.itemsize == 0:
        raise DataSetException(f"{path}: [raw_csr] {key} = {value!r}: unsupported dtype {dtype}")
    return dtype


def get_descriptor(path: str) -> CSRDescriptor:
    """The :class:`CSRDescriptor` of the TOML descriptor file ``path``.

    File names in the descriptor are taken relative to the descriptor's directory.

    Raises
    ------
    DataSetException
        If the file is not a descriptor of a raw CSR dataset.
    """
    path = os.fspath(path)
    conf = load_toml(path)
    section = conf.get("raw_csr")
    if not isinstance(section, dict):
        raise DataSetException(f"{path}: no [raw_csr] section")
    base = os.path.dirname(os.path.abspath(path))
    files = {}
    for name in ("indptr", "indices", "data"):
        value = section.get(f"{name}_file")
        if not isinstance(value, str) or not value:
            raise DataSetException(f"{path}: [raw_csr] {name}_file must name a file")
        files[name] = os.path.join(base, value)
        if f"{name}_dtype" not in section:
            raise DataSetException(f"{path}: [raw_csr] {name}_dtype is missing")
    return CSRDescriptor(
        indptr_file=files["indptr"],
        indptr_dtype=_dtype(section["indptr_dtype"], path, "indptr_dtype", "iu"),
        indices_file=files["indices"],
        indices_dtype=_dtype(section["indices_dtype"], path, "indices_dtype", "iu"),
        data_file=files["data"],
        data_dtype=_dtype(section["data_dtype"], path, "data_dtype", "biufc"),
    )


def _read_only_array(path: str, dtype: np.dtype) -> np.ndarray:
    size = check_file(path)
    if size % dtype.itemsize:
        raise DataSetException(
            f"{path}: {size} bytes is not a whole number of {dtype} values "
            f"({dtype.itemsize} bytes each)"
        )
    n = size // dtype.itemsize
    if n == 0:  # an empty file cannot be memory-mapped
        empty = np.zeros(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return open_memmap(path, dtype, 0, (n,))


def get_triple(descriptor: CSRDescriptor) -> CSRTriple:
    """The arrays of ``descriptor`` as read-only memory maps."""
    return CSRTriple(
        indptr=_read_only_array(descriptor.indptr_file, np.dtype(descriptor.indptr_dtype)),
        indices=_read_only_array(descriptor.indices_file, np.dtype(descriptor.indices_dtype)),
        data=_read_only_array(descriptor.data_file, np.dtype(descriptor.data_dtype)),
    )


def get_nav_size(descriptor: CSRDescriptor) -> int:
    """Number of rows (frames) stored: one less than the number of ``indptr`` entries."""
    size = check_file(descriptor.indptr_file)
    return max(0, size // np.dtype(descriptor.indptr_dtype).itemsize - 1)


def check(descriptor: CSRDescriptor, nav_shape, sig_shape, debug: bool = False) -> None:
    """Check that the stored arrays form a valid CSR matrix for these shapes.

    Always checked (cheap): file sizes, that ``indices`` and ``data`` are equally
    long, that ``indptr`` starts at 0 and ends at their length, and (if
    ``nav_shape`` is given) that there are at least as many rows as frames. With
    ``debug``, also the whole content: ``indptr`` non-decreasing, every index
    within the frame of ``sig_shape``.

    Raises
    ------
    DataSetException
        Naming the file and what does not fit.
    """
    triple = get_triple(descriptor)
    n_rows = triple.indptr.shape[0] - 1
    if n_rows < 1:
        raise DataSetException(f"{descriptor.indptr_file}: needs at least 2 entries")
    nnz = triple.indices.shape[0]
    if triple.data.shape[0] != nnz:
        raise DataSetException(
            f"{descriptor.data_file}: holds {triple.data.shape[0]} values, but "
            f"{descriptor.indices_file} holds {nnz} indices"
        )
    first, last = int(triple.indptr[0]), int(triple.indptr[-1])
    if first != 0 or last != nnz:
        raise DataSetException(
            f"{descriptor.indptr_file}: runs from {first} to {last}, expected 0 to {nnz} "
            "(the number of stored values)"
        )
    if nav_shape is not None and math.prod(nav_shape) > n_rows:
        raise DataSetException(
            f"{descriptor.indptr_file}: holds {n_rows} frames, nav_shape {tuple(nav_shape)} "
            f"needs {math.prod(nav_shape)}"
        )
    if debug:
        if np.any(np.diff(triple.indptr.astype(np.int64)) < 0):
            raise DataSetException(f"{descriptor.indptr_file}: offsets decrease")
        try:
            _check_indices(triple.indices, math.prod(sig_shape))
        except DataSetException as e:
            raise DataSetException(f"{descriptor.indices_file}: {e}") from None


def can_use_numba(triple: CSRTriple) -> bool:
    """Whether the numba gather kernel supports the dtypes of ``triple``."""
    return all(
        a.dtype.kind in _NUMBA_KINDS and a.dtype.isnative
        for a in (triple.indptr, triple.indices, triple.data)
    )


def sliced_indptr(triple: CSRTriple, partition_slice: Slice, sync_offset: int) -> np.ndarray:
    """The ``indptr`` entries of the frames of ``partition_slice`` (one more than frames).

    Dataset frame ``i`` is stored row ``i + sync_offset``; frames outside the stored
    rows are empty (their start and stop repeat the nearest valid offset).
    """
    start = int(partition_slice.origin[0]) + int(sync_offset)
    stop = start + int(partition_slice.shape[0])
    indptr = triple.indptr
    n_rows = indptr.shape[0] - 1
    lo, hi = max(start, 0), min(stop, n_rows)
    if lo == start and hi == stop:
        return indptr[start : stop + 1]
    if lo >= hi:
        value = indptr[0] if stop <= 0 else indptr[n_rows]
        return np.full(stop - start + 1, value, dtype=indptr.dtype)
    return np.pad(np.asarray(indptr[lo : hi + 1]), (lo - start, stop - hi), mode="edge")


def populate_tile(
    indptr_tile_start: np.ndarray,
    indptr_tile_stop: np.ndarray,
    orig_data: np.ndarray,
    orig_indices: np.ndarray,
    data_out: np.ndarray,
    indices_out: np.ndarray,
    indptr_out: np.ndarray,
) -> None:
    """Gather rows of a CSR matrix into a new one (numpy version).

    Row ``r`` of the output holds ``orig_data[indptr_tile_start[r]:indptr_tile_stop[r]]``
    (and the matching indices); ``indptr_out`` (one longer than the rows) is filled
    with the output offsets, starting at 0. ``data_out`` and ``indices_out`` must hold
    at least the sum of the row lengths; values are converted to their dtypes.
    """
    lengths = np.asarray(indptr_tile_stop, dtype=np.int64) - indptr_tile_start
    indptr_out[0] = 0
    np.cumsum(lengths, out=indptr_out[1:])
    for r in range(lengths.shape[0]):
        a, b = int(indptr_tile_start[r]), int(indptr_tile_stop[r])
        o = int(indptr_out[r])
        data_out[o : o + b - a] = orig_data[a:b]
        indices_out[o : o + b - a] = orig_indices[a:b]


@numba.njit(nogil=True, cache=True)
def populate_tile_numba(
    indptr_tile_start,
    indptr_tile_stop,
    orig_data,
    orig_indices,
    data_out,
    indices_out,
    indptr_out,
):
    """Numba version of :func:`populate_tile` (native byte order arrays only)."""
    pos = 0
    indptr_out[0] = 0
    for r in range(indptr_tile_start.shape[0]):
        a = indptr_tile_start[r]
        b = indptr_tile_stop[r]
        for k in range(a, b):
            data_out[pos] = orig_data[k]
            indices_out[pos] = orig_indices[k]
            pos += 1
        indptr_out[r + 1] = pos


@numba.njit(nogil=True, cache=True)
def _indices_in_range(indices, sig_size) -> bool:
    for k in range(indices.shape[0]):
        if indices[k] < 0 or indices[k] >= sig_size:
            return False
    return True


def _check_rows(starts: np.ndarray, stops: np.ndarray, nnz: int) -> None:
    """Refuse corrupt row offsets before they size an allocation or a slice."""
    if starts.shape[0] and (
        int(starts.min()) < 0 or int(stops.max()) > nnz or bool(np.any(stops < starts))
    ):
        raise DataSetException(f"corrupt CSR data: row offsets outside [0, {nnz}] or decreasing")


def _check_indices(indices: np.ndarray, sig_size: int) -> None:
    """Refuse indices outside the frame: scipy does not check them before reading."""
    if indices.shape[0] == 0:
        return
    if indices.dtype.isnative:
        ok = _indices_in_range(indices, sig_size)
    else:
        ok = int(indices.min()) >= 0 and int(indices.max()) < sig_size
    if not ok:
        raise DataSetException(f"corrupt CSR data: indices outside the frame of {sig_size}")


def _index_dtype(triple: CSRTriple) -> np.dtype:
    """The index dtype scipy keeps without copying: int32 when values fit, else int64."""
    if triple.indices.dtype == np.int32 and triple.indptr.dtype == np.int32:
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def _csr(data, indices, indptr, n_rows: int, sig_size: int) -> scipy.sparse.csr_matrix:
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(n_rows, sig_size), copy=False)


def _tile(matrix, first: int, sig_shape: tuple[int, ...], partition_start: int) -> DataTile:
    """A tile of whole frames, ``first`` counted within the partition."""
    sig_dims = len(sig_shape)
    n = matrix.shape[0]
    local = Slice((first, *([0] * sig_dims)), Shape((n, *sig_shape), sig_dims=sig_dims))
    return DataTile(matrix, local, 0, partition_start)


def _as_dtype(values: np.ndarray, dest_dtype: np.dtype) -> np.ndarray:
    if values.dtype == dest_dtype:
        return values
    return values.astype(dest_dtype)


def read_tiles_straight(
    triple: CSRTriple,
    partition_slice: Slice,
    sync_offset: int,
    tiling_scheme,
    dest_dtype: np.dtype,
) -> Iterator[DataTile]:
    """Tiles of all frames of ``partition_slice``: CSR matrices of ``tiling_scheme.depth`` rows.

    ``partition_slice`` is in flat navigation coordinates; each tile's ``tile_slice``
    is too, its ``slice`` counts from the partition's first frame. Values are
    converted to ``dest_dtype``; indices and values are views of ``triple`` where no
    conversion is needed.

    Raises
    ------
    DataSetException
        For row offsets or indices that do not fit the stored arrays and the frame.
    """
    dest_dtype = np.dtype(dest_dtype)
    sig_shape = tuple(partition_slice.shape.sig)
    sig_size = math.prod(sig_shape)
    indptr = sliced_indptr(triple, partition_slice, sync_offset)
    n_frames = int(partition_slice.shape[0])
    origin = int(partition_slice.origin[0])
    depth = int(tiling_scheme.depth)
    index_dtype = _index_dtype(triple)
    nnz = triple.indices.shape[0]
    for first in range(0, n_frames, depth):
        n = min(depth, n_frames - first)
        rows = np.asarray(indptr[first : first + n + 1])
        _check_rows(rows[:-1], rows[1:], nnz)
        a, b = int(rows[0]), int(rows[-1])
        tile_indptr = np.subtract(rows, a, dtype=index_dtype)
        indices = triple.indices[a:b]
        _check_indices(indices, sig_size)
        if indices.dtype != index_dtype:
            indices = indices.astype(index_dtype)
        data = _as_dtype(triple.data[a:b], dest_dtype)
        matrix = _csr(data, indices, tile_indptr, n, sig_size)
        yield _tile(matrix, first, sig_shape, origin)


def read_tiles_with_roi(
    triple: CSRTriple,
    partition_slice: Slice,
    sync_offset: int,
    tiling_scheme,
    roi: np.ndarray,
    dest_dtype: np.dtype,
) -> Iterator[DataTile]:
    """Tiles of the frames of ``partition_slice`` selected by ``roi``.

    ``roi`` is the boolean mask of the partition's frames, or of all frames of the
    dataset (then the partition's part is used). Tiles hold ``tiling_scheme.depth``
    selected frames; each tile's ``slice`` counts selected frames from the
    partition's first one, its ``tile_slice`` adds the partition's first frame.
    Selected rows are gathered into new arrays of ``dest_dtype``.

    Raises
    ------
    DataSetException
        For row offsets or indices that do not fit the stored arrays and the frame.
    ValueError
        If ``roi`` fits neither the partition nor a dataset containing it.
    """
    dest_dtype = np.dtype(dest_dtype)
    roi = np.asarray(roi, dtype=bool).reshape(-1)
    origin = int(partition_slice.origin[0])
    n_frames = int(partition_slice.shape[0])
    if roi.shape[0] != n_frames:
        if roi.shape[0] < origin + n_frames:
            raise ValueError(
                f"roi of {roi.shape[0]} frames does not cover the partition [{origin}, "
                f"{origin + n_frames})"
            )
        roi = roi[origin : origin + n_frames]
    sig_shape = tuple(partition_slice.shape.sig)
    sig_size = math.prod(sig_shape)
    indptr = sliced_indptr(triple, partition_slice, sync_offset)
    selected = np.flatnonzero(roi)
    depth = int(tiling_scheme.depth)
    index_dtype = _index_dtype(triple)
    use_numba = can_use_numba(triple) and dest_dtype.isnative and dest_dtype.kind in _NUMBA_KINDS
    populate = populate_tile_numba if use_numba else populate_tile
    nnz = triple.indices.shape[0]
    for first in range(0, selected.shape[0], depth):
        rows = selected[first : first + depth]
        n = rows.shape[0]
        starts = np.asarray(indptr[rows], dtype=np.int64)
        stops = np.asarray(indptr[rows + 1], dtype=np.int64)
        _check_rows(starts, stops, nnz)
        size = int((stops - starts).sum())
        data = np.empty(size, dtype=dest_dtype)
        indices = np.empty(size, dtype=index_dtype)
        tile_indptr = np.empty(n + 1, dtype=index_dtype)
        populate(starts, stops, triple.data, triple.indices, data, indices, tile_indptr)
        _check_indices(indices, sig_size)
        matrix = _csr(data, indices, tile_indptr, n, sig_size)
        yield _tile(matrix, first, sig_shape, origin)
