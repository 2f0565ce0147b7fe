"""Chunk grids seen along the flattened navigation axes, and flat ranges as hyperslabs.

LiberTEM numbers frames by their flat (C-order) navigation index. A Zarr array
stores its data in rectangular chunks. :class:`FlatChunkGrid` tells which flat
frame indices are *chunk boundaries*: positions where a contiguous range of
frames may start or stop without cutting through a chunk. :func:`flat_slabs`
turns a flat range into the rectangular selections that read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import prod


class FlatChunkGrid:
    """Chunk boundaries of an array along its flattened navigation axes.

    Going from the slowest navigation axis inwards, axes chunked by 1 let a range
    stop at any index; the first axis ``j`` with larger chunks allows stops only
    at multiples of its chunk extent (and at the end of each row of that axis);
    all faster axes must then be taken whole. So the boundaries repeat every
    :attr:`row` frames, spaced :attr:`unit` frames apart within a row.

    Parameters
    ----------
    nav_shape
        Shape of the navigation axes of the stored array.
    nav_chunks
        Chunk (or shard) extents along those axes.
    """

    def __init__(self, nav_shape: Sequence[int], nav_chunks: Sequence[int]):
        nav = tuple(int(n) for n in nav_shape)
        chunks = tuple(max(1, min(int(c), n)) for c, n in zip(nav_chunks, nav))
        if len(chunks) != len(nav) or not nav:
            raise ValueError(f"chunks {tuple(nav_chunks)} do not fit navigation shape {nav}")
        axis = next((i for i, c in enumerate(chunks) if c > 1), len(nav) - 1)
        inner = prod(nav[axis + 1 :])
        self.nav_shape = nav
        self.nav_chunks = chunks
        #: frames between repetitions of the boundary pattern
        self.row = nav[axis] * inner
        #: frames of one chunk row: the spacing of boundaries within a row
        self.unit = chunks[axis] * inner
        #: number of frames
        self.n_frames = prod(nav)

    def floor(self, frame: int) -> int:
        """The last chunk boundary at or before ``frame`` (clamped to ``[0, n_frames]``)."""
        frame = min(max(int(frame), 0), self.n_frames)
        row, rem = divmod(frame, self.row)
        return min(row * self.row + rem // self.unit * self.unit, self.n_frames)

    def ceil(self, frame: int) -> int:
        """The first chunk boundary at or after ``frame`` (clamped to ``[0, n_frames]``)."""
        frame = min(max(int(frame), 0), self.n_frames)
        row, rem = divmod(frame, self.row)
        up = min(-(-rem // self.unit) * self.unit, self.row)
        return min(row * self.row + up, self.n_frames)

    def snap(self, frame: int) -> int:
        """The chunk boundary nearest to ``frame`` (the earlier one on a tie)."""
        lo, hi = self.floor(frame), self.ceil(frame)
        return lo if frame - lo <= hi - frame else hi

    def chunk_range(self, frame: int) -> tuple[int, int]:
        """The flat range ``[start, stop)`` of the chunk row that holds ``frame``."""
        return self.floor(frame), self.ceil(int(frame) + 1)

    def __repr__(self) -> str:
        return f"<FlatChunkGrid nav={self.nav_shape} chunks={self.nav_chunks}>"


def flat_slabs(start: int, stop: int, shape: Sequence[int]) -> Iterator[tuple[int, tuple]]:
    """Rectangular selections that together cover flat indices ``[start, stop)`` of ``shape``.

    Yields
    ------
    offset, selection
        The flat index of the selection's first element and a tuple of slices,
        one per axis of ``shape``; in flat order, without gaps.
    """
    shape = tuple(int(s) for s in shape)
    if start >= stop:
        return
    if len(shape) == 1:
        yield start, (slice(start, stop),)
        return
    inner = prod(shape[1:])
    first, head = divmod(start, inner)
    last, tail = divmod(stop, inner)
    if head:
        end = stop if last == first else (first + 1) * inner
        for offset, sel in flat_slabs(head, end - first * inner, shape[1:]):
            yield first * inner + offset, (slice(first, first + 1), *sel)
        if last == first:
            return
        first += 1
    if last > first:
        yield first * inner, (slice(first, last), *(slice(0, s) for s in shape[1:]))
    if tail:
        for offset, sel in flat_slabs(0, tail, shape[1:]):
            yield last * inner + offset, (slice(last, last + 1), *sel)
