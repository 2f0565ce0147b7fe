"""Buffers whose storage is a Dask array: lazy results and lazy merges."""

from __future__ import annotations

import types

import dask.array as da
import numpy as np

from libertem.common.buffer_helpers import fill_value, partition_range
from libertem.common.buffers import BufferWrapper
from libertem.common.math import prod
from libertem.common.slice import Slice
from libertem.executor.utils.dask_inplace import DaskInplaceWrapper


def _expand_roi(raw: np.ndarray, roi: np.ndarray, nav_shape: tuple, extra_shape: tuple):
    full = np.empty((roi.size, *extra_shape), dtype=raw.dtype)
    full[...] = fill_value(raw.dtype)
    full[roi] = raw
    return full.reshape(nav_shape + extra_shape)


def dataset_shaped(array: da.Array, buf: BufferWrapper) -> da.Array:
    """``array`` (raw storage of ``buf``) shaped like :attr:`BufferWrapper.data`, lazily."""
    if buf.kind != "nav" or buf._dataset_shape is None:
        return array
    nav_shape = tuple(buf._dataset_shape.nav)
    extra = buf.extra_shape
    if buf._roi is None:
        return array.reshape(nav_shape + extra)
    ndim = len(nav_shape) + len(extra)
    return da.map_blocks(
        _expand_roi,
        array.rechunk(-1),
        buf._roi,
        nav_shape,
        extra,
        chunks=nav_shape + extra,
        drop_axis=list(range(array.ndim)),
        new_axis=list(range(ndim)),
        dtype=array.dtype,
        meta=np.empty((0,) * ndim, dtype=array.dtype),
    )


def _canonical_slice(s: slice, length: int) -> slice:
    """``s`` with tight, in-range bounds: Dask mis-handles some others (negative or loose)."""
    selected = range(*s.indices(length))
    if len(selected) == 0:
        return slice(0, 0)
    stop = selected[-1] + (1 if selected.step > 0 else -1)
    return slice(selected.start, None if stop < 0 else stop, selected.step)


def canonical_key(key, shape: tuple[int, ...]):
    """``key`` with its leading slices made explicit for ``shape``, as numpy reads them."""
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for axis, part in enumerate(parts):
        if axis >= len(shape) or not isinstance(part, (slice, int, np.integer)):
            out.extend(parts[axis:])
            break
        out.append(_canonical_slice(part, shape[axis]) if isinstance(part, slice) else part)
    return tuple(out)


class DaskBufferWrapper(BufferWrapper):
    """A :class:`BufferWrapper` whose storage is a Dask array.

    Views (``get_view_for_*``, ``set_view_*``) are :class:`DaskInplaceWrapper`
    objects: merges written for numpy (``dest.x[:] += src.x``) build Dask graphs.
    """

    def allocate(self, lib=None) -> None:
        """Zeroed lazy storage for the shape set by a ``set_shape_*`` method."""
        if self._context is None:
            raise RuntimeError(
                "set the buffer's shape first (set_shape_partition or set_shape_ds)"
            )
        self.set_storage(da.zeros(self.storage_shape(*self._context), dtype=self.dtype))

    def set_storage(self, storage) -> None:
        """Use ``storage`` (converted to a Dask array) as the backing array."""
        if not isinstance(storage, da.Array):
            storage = da.from_array(np.asarray(storage))
        self._storage = storage
        self._inplace = DaskInplaceWrapper(storage)
        self._view = self._inplace

    @property
    def raw_data(self) -> da.Array:
        """The storage, a Dask array (with all assignments made so far)."""
        if self._storage is None:
            raise RuntimeError("buffer has no storage yet")
        return self._inplace.data

    @property
    def data(self) -> da.Array:
        """The storage shaped like the dataset (nav axes restored), lazily."""
        return dataset_shaped(self.raw_data, self)

    def export(self) -> None:
        """Nothing to move: the storage stays a lazy Dask array."""
        return None

    def set_view_nav_range(self, start: int, stop: int, sig_index: tuple | None = None) -> None:
        """View frames ``[start, stop)`` (nav buffers) or ``sig_index`` (sig buffers)."""
        if self.kind == "nav":
            self._view = _SharedView(self._inplace, (slice(start, stop),))
        elif self.kind == "sig" and sig_index is not None:
            self._view = _SharedView(self._inplace, tuple(sig_index))
        else:
            self._view = self._inplace

    def set_view_frame(self, index: int) -> None:
        """View one frame (nav buffers)."""
        if self.kind == "nav":
            key = (index,) if self.extra_shape else (slice(index, index + 1),)
            self._view = _SharedView(self._inplace, key)
        else:
            self._view = self._inplace

    def reset_view(self) -> None:
        """View the whole storage."""
        self._view = self._inplace

    def get_view_for_partition(self, partition):
        """The view for a whole partition (its frames for dataset-sized nav buffers)."""
        view = super().get_view_for_partition(partition)
        if view is self._storage:
            return self._inplace
        start, stop = _nav_bounds(self, partition)
        return _SharedView(self._inplace, (slice(start, stop),))

    def get_view_for_tile(self, partition, tile):
        """The view for ``tile`` of ``partition``."""
        sl = self._tile_slice(tile, partition)
        if self.kind == "nav":
            start = sl.origin[0]
            return _SharedView(self._inplace, (slice(start, start + sl.shape[0]),))
        if self.kind == "sig":
            return _SharedView(self._inplace, tuple(sl.get(sig_only=True)))
        return self._inplace

    def get_contiguous_view_for_tile(self, partition, tile):
        """Same as :meth:`get_view_for_tile` (Dask regions need no copies)."""
        return self.get_view_for_tile(partition, tile)

    def get_view_for_frame(self, partition, tile, frame_idx: int):
        """The view for frame ``frame_idx`` of ``tile``."""
        sl = self._tile_slice(tile, partition)
        if self.kind == "nav":
            index = sl.origin[0] + frame_idx
            key = (index,) if self.extra_shape else (slice(index, index + 1),)
            return _SharedView(self._inplace, key)
        if self.kind == "sig":
            return _SharedView(self._inplace, tuple(sl.get(sig_only=True)))
        return self._inplace

    def flush(self, debug: bool = False) -> None:
        """Nothing to write back."""
        return None

    @classmethod
    def from_buffer(cls, buffer: BufferWrapper) -> DaskBufferWrapper:
        """A Dask buffer with the declaration, shape and content (if any) of ``buffer``."""
        result = cls(buffer.kind, buffer.extra_shape, buffer.dtype, buffer.where, buffer.use)
        for attr in ("_context", "_dataset_shape", "_roi", "_partition_start", "_partitions"):
            setattr(result, attr, getattr(buffer, attr))
        if buffer.has_data():
            storage = buffer._storage
            result.set_storage(
                storage.data if isinstance(storage, (DaskInplaceWrapper, _SharedView)) else storage
            )
        return result

    def new_as_prealloc(self, *args, **kwargs) -> DaskPreallocBufferWrapper:
        """A :class:`DaskPreallocBufferWrapper` around ``data`` with this declaration."""
        kwargs.setdefault("kind", self.kind)
        kwargs.setdefault("extra_shape", self.extra_shape)
        kwargs.setdefault("dtype", self.dtype)
        kwargs.setdefault("where", self.where)
        kwargs.setdefault("use", self.use)
        return DaskPreallocBufferWrapper(*args, **kwargs)

    def result_buffer_type(self) -> type[BufferWrapper]:
        """Final results of Dask buffers are :class:`DaskResultBufferWrapper` objects."""
        return DaskResultBufferWrapper


class _SharedView:
    """A region of a buffer's :class:`DaskInplaceWrapper`, used like a numpy view.

    Unlike the wrapper itself, :attr:`shape`, :attr:`ndim` and :attr:`size` describe
    the region, as they would for a view of a numpy buffer; assignments go to the
    shared array.
    """

    def __init__(self, base: DaskInplaceWrapper, index: tuple):
        base.check_valid_slices(index)
        self._base = base
        self._slice = canonical_key(index, base.shape)

    @property
    def data(self) -> da.Array:
        """The whole (current) Dask array of the buffer."""
        return self._base.data

    def unwrap_sliced(self) -> da.Array:
        """The region as a Dask array."""
        return self._base.data[self._slice]

    def __getitem__(self, key):
        region = self.unwrap_sliced()
        return region[canonical_key(key, region.shape)]

    def __setitem__(self, key, value) -> None:
        if isinstance(value, (DaskInplaceWrapper, _SharedView)):
            value = value.unwrap_sliced()
        array = self._base.data
        region = array[self._slice]
        region[canonical_key(key, region.shape)] = value
        array[self._slice] = region

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the region."""
        return tuple(self.unwrap_sliced().shape)

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the array."""
        return self._base.dtype

    @property
    def ndim(self) -> int:
        """Number of axes of the region."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements of the region."""
        return prod(self.shape)

    @property
    def flags(self) -> types.SimpleNamespace:
        """numpy-like flags: the region can be written to, it is treated as contiguous."""
        return types.SimpleNamespace(
            c_contiguous=True, f_contiguous=self.ndim <= 1, writeable=True
        )

    def __array__(self, dtype=None, copy=None):
        result = np.asarray(self.unwrap_sliced().compute())
        return result if dtype is None else result.astype(dtype)

    def __repr__(self) -> str:
        return f"<buffer view {self._slice} of {self._base.data!r}>"


def _nav_bounds(buf: BufferWrapper, partition) -> tuple[int, int]:
    """The range of ``buf``'s (ROI-compressed) entries of the frames of ``partition``."""
    start, stop = partition_range(partition)
    roi = buf._roi
    if roi is None:
        return start, stop
    begin = int(np.count_nonzero(roi[:start]))
    return begin, begin + int(np.count_nonzero(roi[start:stop]))


class DaskPreallocBufferWrapper(DaskBufferWrapper):
    """A :class:`DaskBufferWrapper` around a (Dask) array that already exists.

    Parameters
    ----------
    data
        The storage (converted to a Dask array).
    *args, **kwargs
        As for :class:`BufferWrapper`; ``dtype`` defaults to that of ``data``.
    """

    def __init__(self, data, *args, **kwargs):
        if len(args) < 3 and "dtype" not in kwargs:
            dtype = getattr(data, "dtype", None)
            kwargs["dtype"] = np.asarray(data).dtype if dtype is None else dtype
        super().__init__(*args, **kwargs)
        self.set_storage(data)

    def allocate(self, lib=None) -> None:
        """Keep the given array (nothing to allocate)."""
        return None


class DaskResultBufferWrapper(DaskPreallocBufferWrapper):
    """A final result backed by a Dask array: lazy as :attr:`delayed_data`, computed as
    :attr:`data`.

    Parameters
    ----------
    data
        The raw result (flat and ROI-compressed for ``nav`` buffers), a Dask array.
    *args, **kwargs
        As for :class:`BufferWrapper`.
    """

    def __init__(self, data, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self._computed: np.ndarray | None = None

    @classmethod
    def from_buffer_wrapper(cls, buffer: BufferWrapper) -> DaskResultBufferWrapper:
        """The final result held by ``buffer`` (a Dask buffer or one with numpy storage)."""
        storage = buffer.raw_data
        result = cls(storage, buffer.kind, buffer.extra_shape, storage.dtype, buffer.where)
        result.set_result_context(buffer._dataset_shape, buffer._roi)
        return result

    @classmethod
    def from_dask(cls, decl: BufferWrapper, array: da.Array, dataset_shape, roi):
        """Wrap ``array`` (the raw result) with the declaration ``decl``."""
        result = cls(array, decl.kind, decl.extra_shape, array.dtype, decl.where, decl.use)
        result.set_result_context(dataset_shape, roi)
        return result

    @property
    def delayed_raw_data(self) -> da.Array:
        """The raw result as a Dask array (flat and ROI-compressed for ``nav`` buffers)."""
        return self._inplace.data

    @property
    def delayed_data(self) -> da.Array:
        """The result shaped like the dataset, as a Dask array."""
        return dataset_shaped(self.delayed_raw_data, self)

    @property
    def raw_data(self) -> np.ndarray:
        """The raw result, computed (once)."""
        if self._computed is None:
            self._computed = np.asarray(self.delayed_raw_data.compute())
        return self._computed

    @property
    def data(self) -> np.ndarray:
        """The result shaped like the dataset, computed."""
        return BufferWrapper.data.fget(self)


__all__ = [
    "BufferWrapper",
    "DaskBufferWrapper",
    "DaskInplaceWrapper",
    "DaskPreallocBufferWrapper",
    "DaskResultBufferWrapper",
    "Slice",
    "prod",
]
