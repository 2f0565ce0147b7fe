"""Arrays stored in chunks (HDF5, Zarr), read along the flattened navigation axes.

LiberTEM numbers frames by their flat (C-order) navigation index; such arrays store
their data in rectangular chunks. :class:`FlatChunkGrid` tells which flat frame
indices are *chunk boundaries*: positions where a contiguous range of frames may
start or stop without cutting through a chunk. :func:`flat_slabs` turns a flat
range into the rectangular selections that read it, and :class:`BlockFrameSource`
reads frames in blocks of whole chunks into one reused buffer (tiles are views of
the current block).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import prod

import numpy as np

from libertem.io.dataset.base.decode import convert_into
from libertem.io.dataset.base.tiles import FrameSource


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


class BlockFrameSource(FrameSource):
    """Frames of a chunked array, read in blocks into a reused buffer.

    Subclasses say which block of file frames to read for frames ``[a, b)``
    (:meth:`block_range`) and how to read one rectangular selection
    (:meth:`read_selection`); tiles are views of the current block.

    Parameters
    ----------
    nav_native
        Navigation shape of the stored array.
    sig_shape
        The dataset's frame shape.
    dtype
        Dtype the array's values are read in.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    """

    viewable = True

    def __init__(self, nav_native, sig_shape, dtype, sync_offset: int):
        super().__init__(None, sync_offset)
        self.nav_native = tuple(int(n) for n in nav_native)
        self._sig = tuple(int(s) for s in sig_shape)
        self._dtype = np.dtype(dtype)
        self._buf = None
        self._block = None
        self._range = (0, 0)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def n_file_frames(self) -> int:
        return prod(self.nav_native)

    @property
    def sig_shape(self) -> tuple[int, ...]:
        return self._sig

    def block_range(self, a: int, b: int) -> tuple[int, int]:
        """File frames ``[start, stop)`` to read so that ``[a, b)`` is covered."""
        raise NotImplementedError

    def stored_sig_shape(self) -> tuple[int, ...]:
        """The signal axes of the stored array."""
        raise NotImplementedError

    def read_selection(self, selection: tuple, dest: np.ndarray) -> None:
        """Read ``array[selection]`` (slices of the stored axes) into ``dest``."""
        raise NotImplementedError

    def read(self, start: int, stop: int, out: np.ndarray) -> None:
        """Read file frames ``[start, stop)`` into ``out`` (``(stop - start, *sig)``)."""
        sig = self.stored_sig_shape()
        for offset, sel in flat_slabs(start, stop, self.nav_native):
            slab_nav = tuple(s.stop - s.start for s in sel)
            n = prod(slab_nav)
            dest = out[offset - start : offset - start + n].reshape(slab_nav + sig)
            self.read_selection(sel + tuple(slice(0, s) for s in sig), dest)

    def view(self, a, b):
        lo, hi = self._range
        if lo <= a and b <= hi:
            return self._block[a - lo : b - lo]
        start, stop = self.block_range(a, b)
        n = stop - start
        if self._buf is None or self._buf.shape[0] < n:
            self._buf = np.empty((n, *self._sig), dtype=self._dtype)
        self._block = self._buf[:n]
        self._range = (start, stop)
        self.read(start, stop, self._block)
        return self._block[a - start : b - start]

    def read_into(self, a, b, out):
        convert_into(out, self.view(a, b))

    def close(self) -> None:
        self._buf = self._block = None
        self._range = (0, 0)
