"""Reading tiles from frame sources: views where possible, reused buffers else.

A :class:`FrameSource` describes where the frames of a dataset come from. It
numbers *file frames* ``0 .. n_file_frames - 1``; dataset frame ``i`` is file
frame ``i + sync_offset``. Dataset frames outside the file are never part of a
tile (see :mod:`~libertem.io.dataset.base.blocks`).
A format plugs in by implementing a small interface:

- :attr:`FrameSource.viewable` ``True``: :meth:`FrameSource.view` hands out
  (mostly) zero-copy arrays of stored frames, e.g. strided views of a memory
  map; tiles are views of them when no conversion is needed, else
  :func:`iter_tiles` converts with one ``np.copyto`` per tile into a reused buffer.
- :attr:`FrameSource.viewable` ``False``: :meth:`FrameSource.read_into` decodes
  frames straight into a reused block buffer of the consumers' dtype (packed
  bits, compressed data, buffered reads); tiles are views of that block.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base.blocks import frame_blocks, stored_range
from libertem.io.dataset.base.decode import convert_into
from libertem.io.dataset.base.tiling import TilingScheme


class DataTile(NDArrayOperatorsMixin):
    """A block of data with its position: behaves as its array, and carries
    :attr:`tile_slice` and :attr:`scheme_idx`.

    Numpy functions and operators apply to the data (``np.sum(tile)``,
    ``tile * 2``, ``tile[0]``, ``np.asarray(tile)``); the results are plain arrays.

    Parameters
    ----------
    data
        The data, shape ``(frames, *signal region)``; a numpy array or any array of
        an array backend (e.g. a sparse matrix of a sparse dataset).
    tile_slice
        Position of the data: frames counted among the selected frames of the
        partition (see :attr:`tile_slice`), signal coordinates within the frame.
        Without ``offset`` (LiberTEM's three-argument form, as partitions of other
        packages make them), frames are counted over the dataset's selected frames.
    scheme_idx
        Index of the tile's signal region in the tiling scheme.
    offset
        Selected frames of the dataset before the partition: ``tile_slice`` is
        partition-local. ``None``: ``tile_slice`` counts from the dataset's start.
    """

    __slots__ = ("data", "slice", "scheme_idx", "_offset")

    def __init__(self, data, tile_slice: Slice, scheme_idx: int = 0, offset: int | None = None):
        self.data = data
        self.slice = tile_slice
        self.scheme_idx = scheme_idx
        self._offset = offset

    @property
    def tile_slice(self) -> Slice:
        """The tile's slice with the frame axis counted over the whole dataset: without
        ROI the flat frame index, with one the number of selected frames before it.

        Assigning moves the tile (e.g. in a wrapper of ``Partition.get_tiles``); a UDF
        run refuses tiles that lie outside their partition.
        """
        if not self._offset:
            return self.slice
        sl = self.slice
        return Slice((sl.origin[0] + self._offset, *sl.origin[1:]), sl.shape)

    @tile_slice.setter
    def tile_slice(self, value: Slice) -> None:
        if not self._offset:
            self.slice = value
            return
        self.slice = Slice((value.origin[0] - self._offset, *value.origin[1:]), value.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the data."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.data.shape))

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.data.shape)

    @property
    def c_contiguous(self) -> bool:
        """Whether the data is a C-contiguous array."""
        flags = getattr(self.data, "flags", None)
        return bool(flags is not None and flags.c_contiguous)

    @property
    def flat_data(self):
        """The data as ``(frames, pixels)``: the signal axes flattened."""
        return self.data.reshape((self.data.shape[0], -1))

    def __array__(self, dtype=None, copy=None):
        data = np.asarray(self.data)
        if dtype is not None:
            data = data.astype(dtype, copy=bool(copy))
        elif copy:
            data = data.copy()
        return data

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(i.data if isinstance(i, DataTile) else i for i in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(o.data if isinstance(o, DataTile) else o for o in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        def unwrap(x):
            if isinstance(x, DataTile):
                return x.data
            if isinstance(x, (list, tuple)):
                return type(x)(unwrap(i) for i in x)
            return x

        return func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})

    def __getitem__(self, key):
        return self.data[key]

    def __len__(self) -> int:
        return self.data.shape[0]

    def __iter__(self):
        return iter(self.data)

    def reshape(self, *shape):
        """The data reshaped (see ``numpy.ndarray.reshape``)."""
        return self.data.reshape(*shape)

    def astype(self, dtype, **kwargs):
        """The data converted to ``dtype``."""
        return self.data.astype(dtype, **kwargs)

    def __repr__(self) -> str:
        return f"<DataTile {self.tile_slice} scheme_idx={self.scheme_idx}>"


class FrameSource:
    """Frames of a dataset, backed by an array of file frames (the default implementation).

    Subclasses that do not hold an array override :attr:`dtype`,
    :attr:`n_file_frames`, :attr:`sig_shape`, :meth:`view` and/or
    :meth:`read_into`, and set :attr:`viewable`.

    Parameters
    ----------
    frames
        Array (or memory map) of shape ``(n_file_frames, *sig_shape)``; may be a
        strided view and have a non-native dtype such as ``'>u2'``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    """

    #: whether :meth:`view` hands out arrays of stored frames without decoding
    viewable: bool = True
    #: if set, no tile holds frames of two rows of this many stored frames (HDF5 reads
    #: hyperslabs within one row of the stored array's last navigation axis)
    row_frames: int | None = None

    def __init__(self, frames: np.ndarray | None = None, sync_offset: int = 0):
        self.frames = frames
        self.sync_offset = int(sync_offset)

    # the interface -------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored frames (of the arrays :meth:`view` returns)."""
        return self.frames.dtype

    @property
    def n_file_frames(self) -> int:
        """Number of frames in the file(s)."""
        return self.frames.shape[0]

    @property
    def sig_shape(self) -> tuple[int, ...]:
        """Shape of a frame."""
        return tuple(self.frames.shape[1:])

    def view(self, a: int, b: int) -> np.ndarray | None:
        """File frames ``[a, b)`` as an array of :attr:`dtype` (a view where possible).

        ``0 <= a < b <= n_file_frames``. May return ``None`` when the frames
        cannot be handed out as one array (e.g. they span two files); callers
        then use :meth:`read_into`.
        """
        return self.frames[a:b]

    def read_into(self, a: int, b: int, out: np.ndarray) -> None:
        """Write file frames ``[a, b)`` into ``out`` (shape ``(b - a, *sig_shape)``, any dtype)."""
        convert_into(out, self.frames[a:b])

    def close(self) -> None:
        """Release files held by the source."""

    # built on the interface -------------------------------------------------------
    def _clip(self, start: int, stop: int) -> tuple[int, int, int, int]:
        a, b = start + self.sync_offset, stop + self.sync_offset
        return a, b, max(a, 0), min(b, self.n_file_frames)

    def get(self, start: int, stop: int) -> np.ndarray:
        """Dataset frames ``[start, stop)``: a view when possible, else a zero-padded copy."""
        a, b, lo, hi = self._clip(start, stop)
        if a == lo and b == hi and self.viewable:
            frames = self.view(a, b)
            if frames is not None:
                return frames
        out = np.zeros((stop - start, *self.sig_shape), dtype=self.dtype)
        if lo < hi:
            self.read_into(lo, hi, out[lo - a : hi - a])
        return out

    def fill(self, start: int, stop: int, out: np.ndarray) -> None:
        """Write dataset frames ``[start, stop)`` into ``out``; frames outside the file: zeros."""
        a, b, lo, hi = self._clip(start, stop)
        if lo >= hi:
            out[...] = 0
            return
        if lo > a:
            out[: lo - a] = 0
        if hi < b:
            out[hi - a :] = 0
        self.read_into(lo, hi, out[lo - a : hi - a])


def iter_tiles(
    source: FrameSource,
    start: int,
    stop: int,
    scheme: TilingScheme,
    dest_dtype: np.dtype,
    roi_part: np.ndarray | None = None,
    corrections=None,
) -> Iterator[DataTile]:
    """Tiles of dataset frames ``[start, stop)`` following ``scheme``.

    Frames are taken in blocks of ``scheme.depth`` (selected frames only, when
    ``roi_part`` is given, and only frames with stored data, see
    :func:`~libertem.io.dataset.base.blocks.frame_blocks`; blocks do not cross rows
    of ``source.row_frames``); each block is cut into the scheme's signal regions.
    For viewable sources, tiles are views of the source when the block is
    contiguous and needs no conversion, else they are written into one reused
    buffer of ``dest_dtype``. Other sources decode each block once into a
    reused full-frame buffer of ``dest_dtype``, and tiles are views of it.

    With ``corrections`` (a ``CorrectionSet`` that has corrections), tiles are
    always written into the reused buffer (of a float ``dest_dtype``) and
    corrected in place before they are handed out: each tile for viewable
    sources, each decoded block of full frames for the others.
    """
    dest_dtype = np.dtype(dest_dtype)
    if corrections is not None and not corrections.have_corrections():
        corrections = None
    if corrections is not None and not np.issubdtype(dest_dtype, np.floating):
        raise TypeError(f"corrections need a float dest_dtype for the tiles, got {dest_dtype}")
    try:
        yield from _iter_tiles(source, start, stop, scheme, dest_dtype, roi_part, corrections)
    finally:
        source.close()


def _iter_tiles(source, start, stop, scheme, dest_dtype, roi_part, corrections=None):
    convert = dest_dtype != source.dtype or corrections is not None
    sig_dims = len(scheme.sig_shape)
    depth = scheme.depth
    viewable = source.viewable
    buffer = None
    stored = stored_range(start, stop, source.sync_offset, source.n_file_frames)
    blocks = frame_blocks(
        start, stop, stored, depth, roi_part, source.row_frames, source.sync_offset
    )
    for block_start, n, runs in blocks:
        contiguous = len(runs) == 1
        if not viewable:
            if buffer is None:
                buffer = np.empty((depth, *scheme.sig_shape), dtype=dest_dtype)
            for offset, a, b in runs:
                source.fill(a, b, buffer[offset : offset + b - a])
            block = buffer[:n]
            if corrections is not None:
                frames = Shape((n, *scheme.sig_shape), sig_dims)
                corrections.apply(block, Slice((block_start, *([0] * sig_dims)), frames))
            for idx, sig in enumerate(scheme.slices):
                tile_slice = Slice((block_start, *sig.origin), Shape((n, *sig.shape), sig_dims))
                yield DataTile(block[(slice(None), *sig.get())], tile_slice, idx, start)
            continue
        block = source.get(runs[0][1], runs[0][2]) if contiguous else None
        for idx, sig in enumerate(scheme.slices):
            sig_index = sig.get()
            tile_slice = Slice((block_start, *sig.origin), Shape((n, *sig.shape), sig_dims))
            if contiguous and not convert:
                yield DataTile(block[(slice(None), *sig_index)], tile_slice, idx, start)
                continue
            if buffer is None:
                buffer = np.empty((depth, *scheme.sig_tile_shape), dtype=dest_dtype)
            out = buffer[(slice(0, n), *(slice(0, s) for s in sig.shape))]
            if contiguous:
                convert_into(out, block[(slice(None), *sig_index)])
            else:
                for offset, a, b in runs:
                    part = source.get(a, b)[(slice(None), *sig_index)]
                    convert_into(out[offset : offset + b - a], part)
            if corrections is not None:
                corrections.apply(out, tile_slice)
            yield DataTile(out, tile_slice, idx, start)
