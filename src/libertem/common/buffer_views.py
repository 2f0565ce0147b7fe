"""The views of a result buffer: the part of its storage that the data now processed
(a partition, a tile, a frame) writes to."""

from __future__ import annotations

import numpy as np

from libertem.common.buffer_helpers import partition_range
from libertem.common.math import count_nonzero
from libertem.common.slice import Slice


class BufferViewsMixin:
    """The views of :class:`~libertem.common.buffers.BufferWrapper`.

    Works on the buffer's storage (``_storage``), kind, extra shape, ROI and the
    start of its partition, which the buffer keeps.
    """

    # views (the engine's fast interface) ------------------------------------------
    @property
    def view(self) -> np.ndarray:
        """The view for the data portion now processed (the whole storage otherwise)."""
        return self._view

    def set_view_nav_range(self, start: int, stop: int, sig_index: tuple | None = None) -> None:
        """Point the view at storage frames ``[start, stop)`` (nav) or at ``sig_index`` (sig)."""
        storage = self._storage
        if self._kind == "nav":
            self._view = storage[start:stop]
        elif self._kind == "sig" and sig_index is not None:
            self._view = storage[sig_index]
        else:
            self._view = storage

    def set_view_frame(self, index: int) -> None:
        """Point the view at one frame: an array of ``extra_shape`` (or shape ``(1,)``)."""
        if self._kind == "nav":
            if self._extra_shape:
                self._view = self._storage[index]
            else:
                self._view = self._storage[index : index + 1]
        else:
            self._view = self._storage

    def frame_views(self, start: int, n: int) -> np.ndarray:
        """An array whose iteration yields the views :meth:`set_view_frame` would set
        for frames ``start, start + 1, ..., start + n - 1`` (``nav`` buffers only)."""
        frames = self._storage[start : start + n]
        return frames if self._extra_shape else frames.reshape((frames.shape[0], 1))

    def reset_view(self) -> None:
        """Point the view at the whole storage."""
        self._view = self._storage

    def set_view(self, view) -> None:
        """Use ``view`` (an array into the storage) as the current view."""
        self._view = view

    # views (LiberTEM's interface) ----------------------------------------------------
    def get_view_for_dataset(self, dataset) -> np.ndarray:
        """The view for the whole dataset (on the main node): the whole storage."""
        return self._storage

    def get_view_for_partition(self, partition) -> np.ndarray:
        """The view for a whole partition.

        For a dataset-sized ``nav`` buffer, the part of the partition's selected
        frames; otherwise the whole storage.
        """
        if self._kind != "nav" or self._partition_start is not None:
            return self._storage
        start, stop = partition_range(partition)
        roi = self._roi
        if roi is None:
            return self._storage[start:stop]
        begin = count_nonzero(roi[:start])
        return self._storage[begin : begin + count_nonzero(roi[start:stop])]

    @staticmethod
    def _tile_slice(tile, partition=None) -> Slice:
        """The tile's slice with frames counted among the partition's selected frames."""
        local = getattr(tile, "slice", None)
        if isinstance(local, Slice):
            return local
        sl = tile.tile_slice
        if partition is None:
            return sl
        start, _ = partition_range(partition)
        return sl.shift_by((-start,) + (0,) * (len(sl.origin) - 1))

    def get_view_for_tile(self, partition, tile) -> np.ndarray:
        """The view for ``tile`` of ``partition``.

        The tile's slice counts frames among the partition's selected frames (as
        ``Partition.get_tiles`` hands them out).
        """
        sl = self._tile_slice(tile, partition)
        if self._kind == "nav":
            start = sl.origin[0]
            return self._storage[start : start + sl.shape[0]]
        if self._kind == "sig":
            return self._storage[sl.get(sig_only=True)]
        return self._storage

    def get_contiguous_view_for_tile(self, partition, tile) -> np.ndarray:
        """Like :meth:`get_view_for_tile`, always C-contiguous.

        A ``sig`` view that is not contiguous is handed out as a copy, written
        back by :meth:`flush`.
        """
        view = self.get_view_for_tile(partition, tile)
        if self._kind != "sig" or view.flags.c_contiguous:
            return view
        self.flush()
        copy = np.ascontiguousarray(view)
        self._pending_flush = (self._tile_slice(tile, partition).get(sig_only=True), copy)
        return copy

    def get_view_for_frame(self, partition, tile, frame_idx: int) -> np.ndarray:
        """The view for frame ``frame_idx`` of ``tile``: ``extra_shape`` (or ``(1,)``) for nav."""
        sl = self._tile_slice(tile, partition)
        if self._kind == "nav":
            index = sl.origin[0] + frame_idx
            if self._extra_shape:
                return self._storage[index]
            return self._storage[index : index + 1]
        if self._kind == "sig":
            return self._storage[sl.get(sig_only=True)]
        return self._storage

    def flush(self, debug: bool = False) -> None:
        """Write back a contiguous copy handed out by :meth:`get_contiguous_view_for_tile`."""
        if self._pending_flush is None:
            return
        index, copy = self._pending_flush
        self._pending_flush = None
        target = self._storage[index]
        if debug and target.shape != copy.shape:
            raise RuntimeError(f"flush: view of shape {copy.shape} for a region of {target.shape}")
        target[...] = copy


__all__ = ["BufferViewsMixin"]
