"""The buffer of a UDF result: declaration, storage and the result it holds (its views
are in :mod:`~libertem.common.buffer_views`, its valid-masks in
:mod:`~libertem.common.valid_mask`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from libertem.common.buffer_helpers import fill_value, flat_roi, partition_range, to_numpy
from libertem.common.buffer_views import BufferViewsMixin
from libertem.common.math import count_nonzero
from libertem.common.shape import Shape
from libertem.common.valid_mask import ValidMaskMixin

if TYPE_CHECKING:
    from numpy import typing as nt

    from libertem.common.buffers import AuxBufferWrapper

BufferKind = Literal["nav", "sig", "single"]
BufferLocation = Literal["device"] | None
BufferUse = Literal["private", "result_only"]
_KINDS = ("nav", "sig", "single")
_USES = (None, "private", "result_only")
_WHERES = (None, "device")


class BufferWrapper(ValidMaskMixin, BufferViewsMixin):
    """A buffer declared by a UDF, plus its storage and current view.

    Buffers are declared with :meth:`libertem.udf.UDF.buffer` and come back from
    :meth:`libertem.api.Context.run_udf` as instances of this class.

    Parameters
    ----------
    kind
        ``'nav'``: one entry per frame; ``'sig'``: one entry per detector pixel;
        ``'single'``: shaped by ``extra_shape`` alone.
    extra_shape
        Axes appended after the nav or sig axes.
    dtype
        Any numpy dtype, including ``object``.
    where
        ``None`` (host memory) or ``'device'`` (kept on the GPU when a CUDA
        backend runs the UDF).
    use
        ``None``, ``'private'`` (merged, but not returned) or ``'result_only'``
        (exists only on the main node and is filled by ``get_results``).

    Notes
    -----
    For ``kind='nav'`` the storage is flat and compressed by the ROI:
    :attr:`raw_data` has one entry per *selected* frame, while :attr:`data`
    is shaped like the navigation axes with a fill value (NaN for floats)
    outside the ROI. :attr:`valid_mask` tells which entries hold results.
    """

    def __init__(
        self,
        kind: BufferKind,
        extra_shape: tuple[int, ...] = (),
        dtype="float32",
        where: Literal["device"] | None = None,
        use: Literal["private", "result_only"] | None = None,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"buffer kind must be one of {_KINDS}, got {kind!r}")
        if use not in _USES:
            raise ValueError(f"buffer use must be one of {_USES}, got {use!r}")
        if where not in _WHERES:
            raise ValueError(f"buffer where must be one of {_WHERES}, got {where!r}")
        if isinstance(extra_shape, (int, np.integer)):
            extra_shape = (int(extra_shape),)
        self._kind = kind
        self._extra_shape = tuple(int(s) for s in extra_shape)
        self._dtype = np.dtype(dtype)
        self._where = where
        self._use = use
        self._storage: np.ndarray | None = None
        self._dataset_shape: Shape | None = None
        self._roi: np.ndarray | None = None
        self._view: np.ndarray | None = None
        self._aux_source: np.ndarray | None = None
        self._context: tuple[int, tuple[int, ...]] | None = None
        self._partition_start: int | None = None
        self._valid_mask: np.ndarray | None = None
        self._valid_nav: np.ndarray | None = None
        self._full_nav = False
        self._pending_flush: tuple[tuple, np.ndarray] | None = None
        self._partitions: list | None = None

    # declaration ------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``'nav'``, ``'sig'`` or ``'single'``."""
        return self._kind

    @property
    def extra_shape(self) -> tuple[int, ...]:
        """Axes appended to the nav or sig axes."""
        return self._extra_shape

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the buffer."""
        return self._dtype

    @property
    def where(self) -> str | None:
        """``'device'`` for device buffers, else ``None``."""
        return self._where

    @property
    def use(self) -> str | None:
        """``None``, ``'private'`` or ``'result_only'``."""
        return self._use

    @property
    def is_aux(self) -> bool:
        """Whether this is auxiliary input data created by ``UDF.aux_data``."""
        return self._aux_source is not None

    # shapes and allocation ------------------------------------------------------
    def storage_shape(self, nav_frames: int, sig_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the storage for ``nav_frames`` frames of signal shape ``sig_shape``."""
        if self._kind == "nav":
            return (nav_frames, *self._extra_shape)
        if self._kind == "sig":
            return (*tuple(sig_shape), *self._extra_shape)
        return self._extra_shape or (1,)

    def set_shape(self, nav_frames: int, sig_shape: Sequence[int]) -> None:
        """Size the buffer for ``nav_frames`` (selected) frames of shape ``sig_shape``."""
        self._context = (int(nav_frames), tuple(int(s) for s in sig_shape))

    def set_roi(self, roi) -> None:
        """Remember the ROI (boolean, nav-shaped or flat) used by the ``set_shape_*`` methods."""
        self._roi = flat_roi(roi)

    def set_shape_partition(self, partition, roi=None) -> None:
        """Size the buffer for the (selected) frames of ``partition``.

        ``roi`` is the ROI of the whole dataset (nav-shaped or flat), or ``None``.
        """
        roi = flat_roi(roi) if roi is not None else self._roi
        start, stop = partition_range(partition)
        n = stop - start if roi is None else count_nonzero(roi[start:stop])
        sig = tuple(partition.shape.sig) if hasattr(partition, "shape") else ()
        self._partition_start = start
        self.set_shape(n, sig)

    def set_shape_ds(self, dataset_shape: Shape, roi=None) -> None:
        """Size the buffer for the (selected) frames of a whole dataset of ``dataset_shape``."""
        roi = flat_roi(roi) if roi is not None else self._roi
        n = dataset_shape.nav.size if roi is None else count_nonzero(roi)
        self._partition_start = None
        self.set_shape(n, tuple(dataset_shape.sig))
        self.set_result_context(dataset_shape, roi)

    def add_partitions(self, partitions) -> None:
        """Tell a dataset-sized buffer how the dataset is partitioned.

        :meth:`get_view_for_partition` then returns the part of the buffer that
        belongs to a given partition.
        """
        self._partitions = list(partitions)

    @property
    def roi_is_zero(self) -> bool:
        """Whether the ROI selects no frame for this buffer."""
        return self._context is not None and self._context[0] == 0

    def allocate(self, lib=None) -> None:
        """Allocate zeroed storage for the shape set by a ``set_shape_*`` method.

        ``lib`` is the array module (``numpy`` or ``cupy``) for ``where='device'``
        buffers; all other buffers live in host memory. Object buffers hold ``None``.
        """
        if self._context is None:
            raise RuntimeError(
                "set the buffer's shape first (set_shape_partition or set_shape_ds)"
            )
        shape = self.storage_shape(*self._context)
        if self._dtype.kind == "O":
            storage = np.empty(shape, dtype=self._dtype)
        elif self._where == "device" and lib is not None:
            storage = lib.zeros(shape, dtype=self._dtype)
        else:
            storage = np.zeros(shape, dtype=self._dtype)
        self.set_storage(storage)

    def has_data(self) -> bool:
        """Whether storage is allocated."""
        return self._storage is not None

    def set_storage(self, storage: np.ndarray) -> None:
        """Use ``storage`` as the backing array (also the current view)."""
        self._storage = storage
        self._view = storage

    def replace_array(self, data: nt.ArrayLike) -> None:
        """Use ``data`` as the storage; it must have the storage's shape if one is known."""
        if self._context is not None:
            expected = self.storage_shape(*self._context)
            if tuple(np.shape(data)) != expected:
                raise ValueError(
                    f"replace_array: shape {np.shape(data)} != buffer shape {expected}"
                )
        self.set_storage(data)

    def export(self) -> None:
        """Move device storage to host memory (before results travel or are merged)."""
        if self._storage is not None:
            self.set_storage(to_numpy(self._storage))

    def set_result_context(self, dataset_shape: Shape, roi_flat: np.ndarray | None) -> None:
        """Remember the dataset shape and ROI so that :attr:`data` can expand nav results."""
        self._dataset_shape = dataset_shape
        self._roi = flat_roi(roi_flat)

    def set_result(self, value, dataset_shape: Shape, roi_flat: np.ndarray | None) -> None:
        """Hold the final result ``value`` (as ``get_results`` returned it).

        A ``kind='nav'`` value may have one entry per selected frame (flat or
        nav-shaped without ROI) or, with a ROI, one entry per frame of the whole
        navigation space; :attr:`data` then shows it as given, without fill values.
        """
        self.set_result_context(dataset_shape, roi_flat)
        arr = value
        if self._kind == "nav":
            nav_size = dataset_shape.nav.size
            n = nav_size if self._roi is None else count_nonzero(self._roi)
            per_frame = math.prod(self._extra_shape)
            self._full_nav = n != nav_size and np.size(arr) == nav_size * per_frame
            arr = arr.reshape((nav_size if self._full_nav else n, *self._extra_shape))
        self.set_storage(arr)

    def result_buffer_type(self) -> type[BufferWrapper]:
        """The class of the buffers that carry this buffer's final results."""
        return BufferWrapper

    # results --------------------------------------------------------------------
    @property
    def raw_data(self) -> np.ndarray:
        """The storage: for ``nav`` buffers flat and compressed to the selected frames."""
        if self._storage is None:
            raise ValueError("this BufferWrapper doesn't have a value associated with it")
        return self._storage

    def _nav_data_shape(self) -> tuple[int, ...] | None:
        if self._kind != "nav" or self._dataset_shape is None:
            return None
        return tuple(self._dataset_shape.nav) + self._extra_shape

    @property
    def data(self) -> np.ndarray:
        """The result shaped like the dataset: nav axes restored, fill value outside the ROI."""
        storage = self.raw_data
        shape = self._nav_data_shape()
        if shape is None:
            return storage
        if self._roi is None or self._full_nav:
            return storage.reshape(shape)
        full = np.empty((self._roi.size, *self._extra_shape), dtype=storage.dtype)
        full[...] = fill_value(storage.dtype)
        full[self._roi] = to_numpy(storage)
        return full.reshape(shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        shape = self._nav_data_shape()
        if shape is not None:
            return shape
        if self._storage is not None:
            return tuple(self._storage.shape)
        if self._context is not None:
            return self.storage_shape(*self._context)
        raise RuntimeError("buffer has no shape yet")

    def __array__(self, dtype=None, copy=None):
        data = to_numpy(self.data)
        if dtype is not None:
            return data.astype(dtype, copy=bool(copy))
        return data.copy() if copy else data

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} kind={self._kind} extra_shape={self._extra_shape} "
            f"dtype={self._dtype} use={self._use}>"
        )

    # valid masks (see ValidMaskMixin) -------------------------------------------
    @property
    def masked_data(self) -> np.ma.MaskedArray:
        """:attr:`data` as a masked array that hides the invalid entries."""
        return np.ma.array(to_numpy(self.data), mask=~self.valid_mask)

    @property
    def raw_masked_data(self) -> np.ma.MaskedArray:
        """:attr:`raw_data` as a masked array that hides the invalid entries."""
        raw = to_numpy(self.raw_data)
        return np.ma.array(raw, mask=~self._raw_valid_mask().reshape(raw.shape))

    # auxiliary data ----------------------------------------------------------------
    @classmethod
    def make_aux(cls, data, kind: BufferKind, extra_shape=(), dtype="float32") -> AuxBufferWrapper:
        """Wrap per-frame (``nav``) or per-pixel (``sig``) input data; see ``UDF.aux_data``."""
        from libertem.common.buffers import AuxBufferWrapper

        buf = AuxBufferWrapper(kind=kind, extra_shape=extra_shape, dtype=dtype)
        buf.set_buffer(data, is_global=True)
        return buf

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_view"] = None
        state["_pending_flush"] = None
        if self._aux_source is not None:
            state["_storage"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._aux_source is not None:
            self.set_storage(self._aux_source)
        else:
            self._view = self._storage
