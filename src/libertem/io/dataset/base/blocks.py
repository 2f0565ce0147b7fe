"""Which frames of a partition go into which tile: the blocks of frames.

Dataset frame ``i`` shows stored frame ``i + sync_offset``. Dataset frames whose
stored frame does not exist (before the data through a negative ``sync_offset``,
after it through a positive one or a ``nav_shape`` larger than the data) are
*missing*: no tile ever holds them, so UDFs never see them and their results keep
the buffers' initial values. The frames with data of a partition are one
contiguous range (:func:`stored_range`); tiles start at its first frame, advance
by the tiling scheme's depth and are clipped at its end (:func:`frame_blocks`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from libertem.common.shape import Shape
from libertem.common.slice import Slice


def stored_range(start: int, stop: int, sync_offset: int, n_stored: int) -> tuple[int, int]:
    """The dataset frames ``[lo, hi)`` of ``[start, stop)`` that have stored data.

    Parameters
    ----------
    start, stop
        The partition's dataset frames.
    sync_offset
        Dataset frame ``i`` is stored frame ``i + sync_offset``.
    n_stored
        Number of stored frames.

    Returns
    -------
    (lo, hi)
        ``lo == hi`` when no frame of the range has data.
    """
    lo = max(int(start), -int(sync_offset))
    hi = min(int(stop), int(n_stored) - int(sync_offset))
    return (lo, hi) if hi > lo else (lo, lo)


def runs_of(indices: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs in sorted ``indices`` as ``(output offset, start, stop)``."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [indices.size]))
    return [(int(s), int(indices[s]), int(indices[e - 1]) + 1) for s, e in zip(starts, stops)]


def frame_blocks(
    start: int,
    stop: int,
    stored: tuple[int, int],
    depth: int,
    roi_part: np.ndarray | None = None,
    row: int | None = None,
    row_offset: int = 0,
) -> Iterator[tuple[int, int, list[tuple[int, int, int]]]]:
    """The blocks of frames the tiles of dataset frames ``[start, stop)`` hold.

    Parameters
    ----------
    start, stop
        The partition's dataset frames.
    stored
        ``(lo, hi)``: the frames with stored data (:func:`stored_range`); others are
        never part of a block.
    depth
        Most frames per block.
    roi_part
        Flat boolean selection of the partition's frames, or ``None`` (all).
    row
        If given, no block holds frames of two rows of ``row`` stored frames
        (stored frame ``i + row_offset`` is in row ``(i + row_offset) // row``).
    row_offset
        See ``row``.

    Yields
    ------
    (k, n, runs)
        ``k``: index of the block's first frame among the partition's (selected)
        frames; ``n``: its number of frames; ``runs``: the block's frames as
        contiguous runs ``(offset in block, first dataset frame, stop)``.
    """
    lo, hi = stored
    depth = max(1, int(depth))
    if roi_part is None:
        pos = lo
        while pos < hi:
            end = min(pos + depth, hi)
            if row:
                end = min(end, ((pos + row_offset) // row + 1) * row - row_offset)
            yield pos - start, end - pos, [(0, pos, end)]
            pos = end
        return
    selected = np.flatnonzero(roi_part) + start
    k = int(np.searchsorted(selected, lo))
    k_end = int(np.searchsorted(selected, hi))
    rows = None if not row else (selected + row_offset) // row
    while k < k_end:
        end = min(k + depth, k_end)
        if rows is not None:
            end = min(end, int(np.searchsorted(rows, rows[k], side="right")))
        yield k, end - k, runs_of(selected[k:end])
        k = end


def selected_range(
    start: int, stored: tuple[int, int], roi_part: np.ndarray | None
) -> tuple[int, int]:
    """``(k0, k1)``: the positions among the partition's (selected) frames that have
    stored data (see :func:`stored_range`)."""
    lo, hi = stored
    if roi_part is None:
        return lo - start, hi - start
    before = np.count_nonzero(roi_part[: max(0, lo - start)])
    within = np.count_nonzero(roi_part[max(0, lo - start) : max(0, hi - start)])
    return int(before), int(before + within)


def clip_tiles(tiles, k0: int, k1: int):
    """``tiles`` restricted to the positions ``[k0, k1)`` among the partition's
    (selected) frames: tiles outside are dropped, tiles across an edge are cut (for
    readers that cannot skip missing frames themselves).

    ``tile.slice`` counts these positions; the data's first axis is its frames.
    """
    from libertem.io.dataset.base.tiles import DataTile

    for tile in tiles:
        sl = tile.slice
        o, n = int(sl.origin[0]), int(sl.shape[0])
        a, b = max(o, k0), min(o + n, k1)
        if b <= a:
            continue
        if a == o and b == o + n:
            yield tile
            continue
        shape = Shape((b - a, *tuple(sl.shape)[1:]), sl.shape.sig_dims)
        cut = Slice((a, *sl.origin[1:]), shape)
        yield DataTile(tile.data[a - o : b - o], cut, tile.scheme_idx, tile._offset)


__all__ = ["clip_tiles", "frame_blocks", "runs_of", "selected_range", "stored_range"]
