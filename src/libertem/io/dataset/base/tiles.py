"""Reading tiles from array-like frame sources: views where possible, reused buffers else."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base.tiling import TilingScheme


class DataTile:
    """A block of data with its position.

    Attributes
    ----------
    data : numpy.ndarray
        Shape ``(frames, *signal region)``.
    slice : Slice
        Position within the partition, frames counted among the selected ones.
    """

    __slots__ = ("data", "slice")

    def __init__(self, data: np.ndarray, slice: Slice):
        self.data = data
        self.slice = slice

    @property
    def tile_slice(self) -> Slice:
        """Alias of :attr:`slice`."""
        return self.slice


class FrameSource:
    """Frames ``[0, n)`` of a dataset backed by an array of file frames.

    Dataset frame ``i`` is array frame ``i + sync_offset``; frames outside the
    array read as zeros.

    Parameters
    ----------
    frames
        Array (or memory map) of shape ``(n_file_frames, *sig_shape)``.
    sync_offset
        Shift between dataset and array frames.
    """

    def __init__(self, frames: np.ndarray, sync_offset: int = 0):
        self.frames = frames
        self.sync_offset = int(sync_offset)

    @property
    def dtype(self) -> np.dtype:
        """Native dtype of the frames."""
        return self.frames.dtype

    def get(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)``: a view when they all exist, else zero-padded copy."""
        a, b = start + self.sync_offset, stop + self.sync_offset
        n_file = self.frames.shape[0]
        if 0 <= a and b <= n_file:
            return self.frames[a:b]
        out = np.zeros((stop - start, *self.frames.shape[1:]), dtype=self.frames.dtype)
        lo, hi = max(a, 0), min(b, n_file)
        if lo < hi:
            out[lo - a : hi - a] = self.frames[lo:hi]
        return out


def _runs(indices: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs in sorted ``indices`` as (output offset, start, stop)."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [indices.size]))
    return [(int(s), int(indices[s]), int(indices[e - 1]) + 1) for s, e in zip(starts, stops)]


def iter_tiles(
    source: FrameSource,
    start: int,
    stop: int,
    scheme: TilingScheme,
    dest_dtype: np.dtype,
    roi_part: np.ndarray | None = None,
) -> Iterator[DataTile]:
    """Tiles of dataset frames ``[start, stop)`` following ``scheme``.

    Frames are taken in blocks of ``scheme.depth`` (selected frames only, when
    ``roi_part`` is given); each block is cut into the scheme's signal regions.
    When the block is contiguous and needs no conversion, tiles are views of the
    source; otherwise they are written into one reused buffer of ``dest_dtype``.
    """
    dest_dtype = np.dtype(dest_dtype)
    convert = dest_dtype != source.dtype
    if roi_part is None:
        selected = None
        n_selected = stop - start
    else:
        selected = np.flatnonzero(roi_part) + start
        n_selected = selected.size
    sig_dims = len(scheme.sig_shape)
    depth = scheme.depth
    buffer = None
    for block_start in range(0, n_selected, depth):
        n = min(depth, n_selected - block_start)
        if selected is None:
            runs = [(0, start + block_start, start + block_start + n)]
        else:
            runs = _runs(selected[block_start : block_start + n])
        contiguous = len(runs) == 1
        block = source.get(runs[0][1], runs[0][2]) if contiguous else None
        for sig in scheme.slices:
            sig_index = sig.get()
            tile_slice = Slice((block_start, *sig.origin), Shape((n, *sig.shape), sig_dims))
            if contiguous and not convert:
                yield DataTile(block[(slice(None), *sig_index)], tile_slice)
                continue
            if buffer is None:
                buffer = np.empty((depth, *scheme.sig_tile_shape), dtype=dest_dtype)
            out = buffer[(slice(0, n), *(slice(0, s) for s in sig.shape))]
            if contiguous:
                np.copyto(out, block[(slice(None), *sig_index)], casting="unsafe")
            else:
                for offset, a, b in runs:
                    part = source.get(a, b)[(slice(None), *sig_index)]
                    np.copyto(out[offset : offset + b - a], part, casting="unsafe")
            yield DataTile(out, tile_slice)
