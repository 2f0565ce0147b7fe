"""Reading K2 IS frames: our frame source, and LiberTEM's file, read-range and decoder
interfaces for the sector files.

:class:`K2ISFrameSource` decodes whole frames from the eight sectors straight into the
tile buffer (memory maps or buffered reads). The read ranges of
:class:`K2FileSet` describe block-sized tiles (one block per tile and frame), which
:func:`decode_k2is` decodes.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from libertem.common.buffers import zeros_aligned
from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.decoders import Decoder
from libertem.io.dataset.base.file import File, OffsetsSizes
from libertem.io.dataset.base.files import open_file_map
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.readahead import pread_full
from libertem.io.dataset.base.readranges import make_get_read_ranges
from libertem.io.dataset.base.tiles import FrameSource
from libertem.io.dataset.k2is_decode import (
    BLOCK_SHAPE,
    BLOCK_SIZE,
    BLOCKS_PER_SECTOR_PER_FRAME,
    DATA_SIZE,
    FRAME_SHAPE,
    HEADER_SIZE,
    NUM_SECTORS,
    SECTOR_SIZE,
    decode_sector_frames,
    decode_uint12_le,
)

FRAME_BYTES_PER_SECTOR = BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE

# --- reading ---------------------------------------------------------------------------------


class K2ISFrameSource(FrameSource):
    """Whole frames decoded from the eight sectors into the caller's buffer.

    Parameters
    ----------
    paths
        The sector files, in sector order.
    offsets
        Byte offset of the first block of the first frame in each file.
    n_frames
        Whole frames of the data.
    sig_shape
        Shape of a frame as the dataset presents it (1860 * 2048 pixels).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        ``'mmap'`` or ``'buffered'``.
    """

    viewable = False

    def __init__(self, paths, offsets, n_frames, sig_shape, sync_offset=0, io_backend="mmap"):
        super().__init__(None, sync_offset)
        self.paths = list(paths)
        self.offsets = [int(o) for o in offsets]
        self._n = int(n_frames)
        self._sig = tuple(sig_shape)
        self.io_backend = io_backend
        self._fds: dict[int, int] = {}
        self._raw = None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16)

    @property
    def n_file_frames(self) -> int:
        return self._n

    @property
    def sig_shape(self) -> tuple[int, ...]:
        return self._sig

    def _sector_bytes(self, s: int, a: int, b: int) -> np.ndarray:
        start = self.offsets[s] + a * FRAME_BYTES_PER_SECTOR
        nbytes = (b - a) * FRAME_BYTES_PER_SECTOR
        path = self.paths[s]
        if self.io_backend == "mmap":
            mm = open_file_map(path)
            if mm.size < start + nbytes:
                raise DataSetException(f"{path}: file truncated")
            return mm[start : start + nbytes]
        if self._raw is None or self._raw.size < nbytes:
            # page-aligned, so that reads go straight into it
            self._raw = zeros_aligned(nbytes, np.uint8)
        fd = self._fds.get(s)
        if fd is None:
            fd = self._fds[s] = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        pread_full(fd, memoryview(self._raw[:nbytes]), start, path)
        return self._raw[:nbytes]

    def read_into(self, a, b, out):
        n = b - a
        direct = out.flags.c_contiguous
        frames = (
            out.reshape((n, *FRAME_SHAPE)) if direct else np.empty((n, *FRAME_SHAPE), out.dtype)
        )
        for s in range(NUM_SECTORS):
            decode_sector_frames(self._sector_bytes(s, a, b), frames, s * SECTOR_SIZE[1])
        if not direct:
            out[...] = frames.reshape(out.shape)

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self):
        self.close()


# --- LiberTEM's file, read range and decoder interfaces ---------------------------------------


class K2ISFile(File):
    """One sector file: frames ``[start_idx, end_idx)``, 32 blocks each, from byte
    ``file_header`` (the first block of the first frame) on."""

    def get_offsets_sizes(self, size: int) -> OffsetsSizes:
        used = self.file_header_bytes + self.num_frames * FRAME_BYTES_PER_SECTOR
        return OffsetsSizes(
            file_offset=self.file_header_bytes,
            skip_end=max(0, int(size) - used),
            frame_offset=0,
            frame_size=FRAME_BYTES_PER_SECTOR,
        )

    def get_array_from_memview(self, mem: memoryview, slicing: OffsetsSizes) -> np.ndarray:
        """The raw blocks in ``mem`` (the whole file) as ``uint8`` ``(frames, 32, BLOCK_SIZE)``."""
        buf = np.frombuffer(mem, dtype=np.uint8)
        n = self.num_frames
        end = slicing.file_offset + n * FRAME_BYTES_PER_SECTOR
        if end > buf.size:
            raise DataSetException(
                f"{self.path}: file truncated: {buf.size} bytes do not hold {n} frames"
            )
        return buf[slicing.file_offset : end].reshape(n, BLOCKS_PER_SECTOR_PER_FRAME, BLOCK_SIZE)


@numba.njit(nogil=True, cache=True)
def _k2is_px_to_bytes(
    bpp,
    frame_in_file,
    slice_origin,
    slice_shape,
    sig_shape,
    file_header,
    frame_header,
    frame_footer,
    extra,
):
    y = slice_origin[0]
    x = slice_origin[1] % SECTOR_SIZE[1]
    blk = (y // BLOCK_SHAPE[0]) * (SECTOR_SIZE[1] // BLOCK_SHAPE[1]) + x // BLOCK_SHAPE[1]
    start = (
        file_header
        + (frame_in_file * BLOCKS_PER_SECTOR_PER_FRAME + blk) * BLOCK_SIZE
        + HEADER_SIZE
    )
    return start, start + DATA_SIZE


@numba.njit(nogil=True, cache=True)
def _k2is_read_ranges_tile_block(
    file_frames,
    slices_arr,
    fileset_arr,
    sig_shape,
    bpp,
    frame_header,
    frame_footer,
    extra,
    px_to_bytes,
    out,
):
    for k in range(file_frames.shape[0]):
        f = file_frames[k]
        for s in range(slices_arr.shape[0]):
            sector = slices_arr[s, 0, 1] // SECTOR_SIZE[1]
            if f < fileset_arr[sector, 0] or f >= fileset_arr[sector, 1]:
                out[s, k, 0] = -1
                out[s, k, 1] = 0
                out[s, k, 2] = 0
                continue
            start, stop = px_to_bytes(
                bpp,
                f - fileset_arr[sector, 0],
                slices_arr[s, 0],
                slices_arr[s, 1],
                sig_shape,
                fileset_arr[sector, 2],
                0,
                0,
                extra,
            )
            out[s, k, 0] = sector
            out[s, k, 1] = start
            out[s, k, 2] = stop


#: Read ranges of K2 IS tiles: one block (``DATA_SIZE`` bytes of pixels) per tile and
#: frame, in the sector file of the tile (file index = sector). Signature as
#: :func:`~libertem.io.dataset.base.readranges.default_get_read_ranges`.
k2is_get_read_ranges = make_get_read_ranges(
    px_to_bytes=_k2is_px_to_bytes, read_ranges_tile_block=_k2is_read_ranges_tile_block
)


def validate_k2is_scheme(tiling_scheme, sig_shape) -> None:
    """Raise ``ValueError`` unless every slice of the scheme is exactly one block."""
    if tuple(sig_shape) != FRAME_SHAPE:
        raise ValueError(f"K2 IS read ranges need frames of {FRAME_SHAPE}, not {tuple(sig_shape)}")
    for origin, shape in tiling_scheme.slices_array:
        if tuple(shape) != BLOCK_SHAPE or origin[0] % BLOCK_SHAPE[0] or origin[1] % BLOCK_SHAPE[1]:
            raise ValueError(
                f"invalid tiling scheme: slice at {tuple(origin)} of shape {tuple(shape)} is not "
                f"one {BLOCK_SHAPE} block of the K2 IS layout"
            )


class K2FileSet(FileSet):
    """The eight sector files, in sector order; every one holds a stripe of every frame
    (so their frame ranges coincide, unlike the files of other formats)."""

    def __init__(self, files, frame_header_bytes: int = 0, frame_footer_bytes: int = 0):
        super().__init__([], frame_header_bytes, frame_footer_bytes)
        self._files = list(files)

    def get_for_range(self, start, stop):
        """All sector files: every frame has blocks in each of them."""
        return self._clone(list(self._files))

    def get_read_ranges(
        self,
        start_at_frame: int,
        stop_before_frame: int,
        dtype,
        tiling_scheme,
        sync_offset: int = 0,
        roi=None,
    ):
        """Read ranges of block-sized tiles (see :data:`k2is_get_read_ranges`).

        Raises
        ------
        ValueError
            If a slice of ``tiling_scheme`` is not exactly one block.
        """
        validate_k2is_scheme(tiling_scheme, tiling_scheme.dataset_shape.sig)
        return super().get_read_ranges(
            start_at_frame, stop_before_frame, dtype, tiling_scheme, sync_offset, roi
        )

    def _bits_per_pixel(self, dtype) -> int:
        return 12

    def _get_read_ranges_fn(self):
        return k2is_get_read_ranges


@numba.njit(nogil=True, cache=True)
def decode_k2is(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode one block's packed pixels ``inp`` into ``out[idx]`` (the 14880 pixels of a
    block-sized tile, row by row)."""
    decode_uint12_le(inp, out[idx])


class K2ISDecoder(Decoder):
    """Decoder of the 12-bit packed blocks."""

    def get_decode(self, native_dtype, read_dtype):
        return decode_k2is

    def get_native_dtype(self, inp_native_dtype, read_dtype):
        return np.dtype(np.uint8)
