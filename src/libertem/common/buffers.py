"""Result and auxiliary buffers of UDFs, and the views the engine hands to them.

:class:`BufferWrapper` itself lives in :mod:`libertem.common.buffer_wrapper`; this
module adds auxiliary data, placeholders and wrappers of existing arrays, and is
the documented home of the memory helpers used with buffers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from libertem.common.alloc import (
    BufferPool,
    ManagedBuffer,
    batched,
    bytes_aligned,
    empty_aligned,
    reshaped_view,
    zeros_aligned,
)
from libertem.common.backend import get_use_cuda
from libertem.common.bbox import (
    disjoint,
    get_bbox,
    get_bbox_2d,
    get_bbox_slice,
    get_inner_slice,
)
from libertem.common.buffer_helpers import flat_roi, partition_range, to_numpy
from libertem.common.buffer_wrapper import (
    BufferKind,
    BufferWrapper,
)
from libertem.common.math import count_nonzero, flat_nonzero, prod
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.valid_mask import InvalidMaskError

if TYPE_CHECKING:
    from numpy import typing as nt

T = TypeVar("T")


class ArrayWithMask(Generic[T]):
    """A result array together with the mask of its valid entries.

    Returned from ``get_results`` via :meth:`libertem.udf.UDF.with_mask`. The mask
    is checked right away and stored broadcast to the shape of ``arr``.

    Parameters
    ----------
    arr
        The result.
    mask
        Boolean array broadcastable to ``arr`` (``True``: valid), or one bool for all.

    Raises
    ------
    InvalidMaskError
        If ``mask`` cannot be broadcast to the shape of ``arr``, or is not boolean.
    """

    def __init__(self, arr: T, mask: np.ndarray | bool):
        shape = tuple(getattr(arr, "shape", np.shape(arr)))
        mask_arr = to_numpy(mask)
        try:
            mask_arr = np.broadcast_to(mask_arr, shape)
        except ValueError:
            raise InvalidMaskError(
                f"`arr` and `mask` must have compatible shapes "
                f"(arr.shape={shape} vs mask.shape={mask_arr.shape})"
            ) from None
        if mask_arr.dtype != np.bool_:
            raise InvalidMaskError(f"`mask` should have `dtype=bool` (have {mask_arr.dtype})")
        self._arr = arr
        self._mask = mask_arr

    @property
    def arr(self) -> T:
        """The result array."""
        return self._arr

    @property
    def mask(self) -> np.ndarray:
        """The valid-mask, broadcast to the shape of :attr:`arr`."""
        return self._mask


class AuxBufferWrapper(BufferWrapper):
    """Auxiliary input data of a UDF, created by :meth:`libertem.udf.UDF.aux_data`.

    Inside ``process_*``, the parameter reads as the part of the data for the
    frames (``kind='nav'``) or pixels (``kind='sig'``) now processed.
    """

    def set_buffer(self, buf, is_global: bool = True) -> None:
        """Use ``buf`` as the data.

        Parameters
        ----------
        buf
            For ``kind='nav'``: ``prod(extra_shape)`` values per frame, in any shape of
            that total size (nav-shaped plus ``extra_shape``, or flat: C order, frame
            after frame); for ``kind='sig'``: signal-shaped plus ``extra_shape``. Its
            dtype must be the buffer's dtype (no cast).
        is_global
            ``True`` if ``buf`` covers the whole dataset, ``False`` if it already is
            the part for one partition.

        Raises
        ------
        AssertionError
            If the dtype differs (as in LiberTEM).
        ValueError
            If ``kind='nav'`` and the size is not a multiple of ``prod(extra_shape)``.
        """
        source = np.asarray(buf)
        # as in LiberTEM: no cast, the data must already have the declared dtype
        assert source.dtype == self.dtype
        if self.kind == "nav":
            # any array of the right total size: nav-shaped, flat, ...
            source = source.reshape((-1, *self.extra_shape))
        if is_global or self._aux_source is None:
            self._aux_source = source
        self.set_storage(source)

    def _frames(self, start: int, stop: int, roi_flat: np.ndarray | None) -> np.ndarray:
        """The data of frames ``[start, stop)`` that ``roi_flat`` selects (``nav``), or
        all data (``sig``, ``single``)."""
        source = self._aux_source
        if self.kind != "nav":
            return source
        part = source[start:stop]
        if roi_flat is not None:
            part = part[roi_flat[start:stop]]
        return part

    def new_for_partition(self, partition, roi) -> AuxBufferWrapper:
        """A copy holding only the data of ``partition``'s frames that ``roi`` selects."""
        new = AuxBufferWrapper(self.kind, self.extra_shape, self.dtype)
        if self.kind == "nav":
            part = self._frames(*partition_range(partition), flat_roi(roi))
        else:
            part = self._aux_source
        new._aux_source = part
        new.set_storage(part)
        return new

    def bind_aux(self, nav_start: int, nav_stop: int, roi_flat: np.ndarray | None) -> None:
        """Make the view the data of frames ``[nav_start, nav_stop)`` that the ROI keeps."""
        self.set_storage(self._frames(nav_start, nav_stop, roi_flat))

    def get_view_for_dataset(self, dataset) -> np.ndarray:
        """All data of the frames that the current ROI selects (for the main node)."""
        source = self._aux_source
        if self.kind == "nav" and self._roi is not None:
            return source[self._roi]
        return source


class PlaceholderBufferWrapper(BufferWrapper):
    """Stands in for a ``use='result_only'`` buffer, which never holds data of its own.

    While partitions are processed (``process_*``), reading it gives ``None``;
    anywhere else (``postprocess``, ``get_results``) reading it raises
    ``ValueError``: only the value ``get_results`` returns becomes the result.
    """

    _processing = False

    def _refuse(self):
        raise ValueError("this BufferWrapper doesn't have a value associated with it")

    def set_processing(self, processing: bool) -> None:
        """Whether partitions are being processed now (reading gives ``None`` then)."""
        self._processing = bool(processing)

    def allocate(self, lib=None) -> None:
        """Nothing to allocate."""

    @property
    def data(self):
        """Refused: see the class description."""
        self._refuse()

    @property
    def raw_data(self):
        """Refused: see the class description."""
        self._refuse()

    @property
    def view(self):
        """``None`` while partitions are processed, refused otherwise."""
        if self._processing:
            return None
        self._refuse()

    def export(self) -> None:
        """Nothing to export."""

    def has_data(self) -> bool:
        """Always ``False``."""
        return False

    def reset_view(self) -> None:
        """No view to reset."""

    def flush(self, debug: bool = False) -> None:
        """Nothing to write back."""

    def get_view_for_partition(self, partition):
        """No view: ``None``."""
        return None

    def get_view_for_tile(self, partition, tile):
        """No view: ``None``."""
        return None

    def get_contiguous_view_for_tile(self, partition, tile):
        """No view: ``None``."""
        return None

    def get_view_for_frame(self, partition, tile, frame_idx):
        """No view: ``None``."""
        return None


class PreallocBufferWrapper(BufferWrapper):
    """A buffer around an array that already exists.

    Parameters
    ----------
    data
        The storage.
    *args, **kwargs
        As for :class:`BufferWrapper`; ``dtype`` defaults to that of ``data``.
    """

    def __init__(self, data: nt.ArrayLike, *args, **kwargs):
        if len(args) < 3 and "dtype" not in kwargs:
            kwargs["dtype"] = np.asarray(data).dtype if not hasattr(data, "dtype") else data.dtype
        super().__init__(*args, **kwargs)
        self.set_storage(data)

    def allocate(self, lib=None) -> None:
        """Keep the given array (nothing to allocate)."""


__all__ = [
    "ArrayWithMask",
    "AuxBufferWrapper",
    "BufferKind",
    "BufferPool",
    "BufferWrapper",
    "InvalidMaskError",
    "ManagedBuffer",
    "PlaceholderBufferWrapper",
    "PreallocBufferWrapper",
    "Shape",
    "Slice",
    "batched",
    "bytes_aligned",
    "count_nonzero",
    "disjoint",
    "empty_aligned",
    "flat_nonzero",
    "get_bbox",
    "get_bbox_2d",
    "get_bbox_slice",
    "get_inner_slice",
    "get_use_cuda",
    "prod",
    "reshaped_view",
    "to_numpy",
    "zeros_aligned",
]
