"""Gatan K2 IS sector files: data blocks, 12-bit decoding, and syncing the sectors.

A K2 IS acquisition is written as eight *sector* files ``<prefix>N.bin`` (``N`` = 1..8),
one per vertical stripe of ``SECTOR_SIZE`` = 1860 x 256 pixels; the stripes side by side
form the 1860 x 2048 frame (sector ``N`` at columns ``256 * (N - 1)``). A sector file is
a stream of fixed-size *data blocks* of ``BLOCK_SIZE`` bytes:

- a ``HEADER_SIZE`` = 40 byte header, big-endian fields: sync word ``0xFFFF0055``,
  4 bytes padding, version (1 byte), flags (1 byte; bit 0: shutter active), 6 bytes
  padding, block counter (4), block width (2, = 16) and height (2, = 930), frame id (4),
  the block's first and last pixel column and row within the sector (2 bytes each:
  x start, y start, x end, y end; the ends inclusive) and the block size (4, = 22360);
- ``DATA_SIZE`` = 22320 bytes of pixel data: ``BLOCK_SHAPE`` = 930 x 16 pixels, row by
  row, packed as 12-bit little-endian values (3 bytes hold two pixels).

Each frame takes ``BLOCKS_PER_SECTOR_PER_FRAME`` = 32 consecutive blocks of every
sector: the top half (16 blocks, left to right), then the bottom half. Recording starts
before the exposure; the first frame of the data is the first whole frame whose blocks
carry the *shutter active* flag, at the same frame id in all sectors
(:class:`K2Syncer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numba
import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.files import check_file

HEADER_SIZE = 40
DATA_SIZE = 22320
BLOCK_SIZE = HEADER_SIZE + DATA_SIZE
BLOCK_SHAPE = (930, 16)
SECTOR_SIZE = (1860, 256)
NUM_SECTORS = 8
BLOCKS_PER_SECTOR_PER_FRAME = 32
SHUTTER_ACTIVE_MASK = 1
#: frames searched, at most, for the common first frame of all sectors
FIRST_FRAME_SCAN_SIZE = 400
SYNC_WORD = 0xFFFF0055
FRAME_SHAPE = (SECTOR_SIZE[0], SECTOR_SIZE[1] * NUM_SECTORS)
_BLOCKS_X = SECTOR_SIZE[1] // BLOCK_SHAPE[1]

HEADER_DTYPE = np.dtype(
    [
        ("sync", ">u4"),
        ("padding1", "V4"),
        ("version", "u1"),
        ("flags", "u1"),
        ("padding2", "V6"),
        ("block_count", ">u4"),
        ("width", ">u2"),
        ("height", ">u2"),
        ("frame_id", ">u4"),
        ("pixel_x_start", ">u2"),
        ("pixel_y_start", ">u2"),
        ("pixel_x_end", ">u2"),
        ("pixel_y_end", ">u2"),
        ("block_size", ">u4"),
    ]
)
assert HEADER_DTYPE.itemsize == HEADER_SIZE


def block_position(index: int) -> tuple[int, int]:
    """Row and column (within the sector) of the first pixel of block ``index`` of a frame."""
    return (index // _BLOCKS_X) * BLOCK_SHAPE[0], (index % _BLOCKS_X) * BLOCK_SHAPE[1]


# --- decoding ------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def decode_uint12_le(inp, out):
    """Unpack 12-bit little-endian values: bytes ``b0 b1 b2`` hold two pixels,
    ``b0 | (b1 & 0xF) << 8`` and ``b1 >> 4 | b2 << 4``.

    Parameters
    ----------
    inp : numpy.ndarray
        ``uint8`` array of packed bytes (a multiple of 3 is used).
    out : numpy.ndarray
        1D array of any numeric dtype, ``2 * (inp.size // 3)`` values or fewer.
    """
    n = min(inp.shape[0] // 3, out.shape[0] // 2)
    for i in range(n):
        b0 = np.uint16(inp[3 * i])
        b1 = np.uint16(inp[3 * i + 1])
        b2 = np.uint16(inp[3 * i + 2])
        out[2 * i] = b0 | ((b1 & np.uint16(0xF)) << np.uint16(8))
        out[2 * i + 1] = (b1 >> np.uint16(4)) | (b2 << np.uint16(4))


@numba.njit(nogil=True, cache=True)
def decode_sector_frames(raw, out, x_offset):
    """Decode whole frames of one sector into their stripe of ``out``.

    Parameters
    ----------
    raw : numpy.ndarray
        ``uint8`` bytes of ``n * 32`` consecutive blocks (headers included), starting
        with the first block of a frame.
    out : numpy.ndarray
        ``(n, 1860, 2048)``, any numeric dtype.
    x_offset : int
        First column of the sector in the frame.
    """
    n = out.shape[0]
    rows, cols = BLOCK_SHAPE
    row_bytes = cols * 3 // 2
    for k in range(n):
        for blk in range(BLOCKS_PER_SECTOR_PER_FRAME):
            base = (k * BLOCKS_PER_SECTOR_PER_FRAME + blk) * BLOCK_SIZE + HEADER_SIZE
            y0 = (blk // _BLOCKS_X) * rows
            x0 = x_offset + (blk % _BLOCKS_X) * cols
            for r in range(rows):
                pos = base + r * row_bytes
                dest = out[k, y0 + r, x0 : x0 + cols]
                src = raw[pos : pos + row_bytes]
                for j in range(cols // 2):
                    b0 = np.uint16(src[3 * j])
                    b1 = np.uint16(src[3 * j + 1])
                    b2 = np.uint16(src[3 * j + 2])
                    dest[2 * j] = b0 | ((b1 & np.uint16(0xF)) << np.uint16(8))
                    dest[2 * j + 1] = (b1 >> np.uint16(4)) | (b2 << np.uint16(4))


# --- blocks and sectors ----------------------------------------------------------------------


def parse_block_header(raw: bytes) -> dict[str, int]:
    """The fields of a 40-byte block header as Python integers (padding left out)."""
    if len(raw) < HEADER_SIZE:
        raise ValueError(f"a block header needs {HEADER_SIZE} bytes, got {len(raw)}")
    rec = np.frombuffer(raw[:HEADER_SIZE], dtype=HEADER_DTYPE)[0]
    return {name: int(rec[name]) for name in HEADER_DTYPE.names if not name.startswith("padding")}


class DataBlock:
    """One data block of a sector file.

    Parameters
    ----------
    offset
        Byte offset of the block (of its header) in the file.
    sector
        The :class:`Sector` it belongs to.
    """

    def __init__(self, offset, sector):
        self.offset = int(offset)
        self.sector = sector
        self._header = None

    @property
    def header(self) -> dict[str, int]:
        """The header fields (``sync``, ``flags``, ``frame_id``, ``pixel_x_start``, ...)."""
        if self._header is None:
            self._header = parse_block_header(self.sector.pread(self.offset, HEADER_SIZE))
        return self._header

    @property
    def is_valid(self) -> bool:
        """Whether the header has the sync word, the block geometry and a position inside
        the sector matching the block size."""
        h = self.header
        x, y = h["pixel_x_start"], h["pixel_y_start"]
        return (
            h["sync"] == SYNC_WORD
            and (h["height"], h["width"]) == BLOCK_SHAPE
            and h["block_size"] == BLOCK_SIZE
            and x % BLOCK_SHAPE[1] == 0
            and y % BLOCK_SHAPE[0] == 0
            and x + BLOCK_SHAPE[1] <= SECTOR_SIZE[1]
            and y + BLOCK_SHAPE[0] <= SECTOR_SIZE[0]
            and h["pixel_x_end"] == x + BLOCK_SHAPE[1] - 1
            and h["pixel_y_end"] == y + BLOCK_SHAPE[0] - 1
        )

    @property
    def shutter_active(self) -> bool:
        """Whether the shutter-active flag is set."""
        return bool(self.header["flags"] & SHUTTER_ACTIVE_MASK)

    @property
    def frame_id(self) -> int:
        """The frame id of the header."""
        return self.header["frame_id"]

    @property
    def index_in_frame(self) -> int:
        """Position of the block among the 32 blocks of its frame (from its pixel position)."""
        h = self.header
        return (h["pixel_y_start"] // BLOCK_SHAPE[0]) * _BLOCKS_X + (
            h["pixel_x_start"] // BLOCK_SHAPE[1]
        )

    @property
    def pixel_data_raw(self) -> np.ndarray:
        """The packed pixel bytes, ``uint8`` of ``DATA_SIZE``."""
        raw = self.sector.pread(self.offset + HEADER_SIZE, DATA_SIZE)
        return np.frombuffer(raw, dtype=np.uint8)

    @property
    def pixel_data(self) -> np.ndarray:
        """The decoded pixels, ``uint16`` of ``BLOCK_SHAPE``."""
        out = np.empty(BLOCK_SHAPE[0] * BLOCK_SHAPE[1], dtype=np.uint16)
        decode_uint12_le(self.pixel_data_raw, out)
        return out.reshape(BLOCK_SHAPE)

    def readinto(self, out) -> int:
        """Read the whole block (header and data) into the writable buffer ``out``.

        Returns
        -------
        int
            Bytes read (``BLOCK_SIZE``).
        """
        view = memoryview(out).cast("B")
        if view.nbytes < BLOCK_SIZE:
            raise ValueError(f"buffer of {view.nbytes} bytes cannot hold a block ({BLOCK_SIZE})")
        view[:BLOCK_SIZE] = self.sector.pread(self.offset, BLOCK_SIZE)
        return BLOCK_SIZE

    def copy_to_frame(self, frame: np.ndarray) -> None:
        """Write the decoded pixels into a whole frame ``(1860, 2048)`` where the header
        places them (its sector's stripe)."""
        h = self.header
        x = self.sector.idx * SECTOR_SIZE[1] + h["pixel_x_start"]
        y = h["pixel_y_start"]
        frame[y : y + BLOCK_SHAPE[0], x : x + BLOCK_SHAPE[1]] = self.pixel_data

    def __repr__(self) -> str:
        return f"<DataBlock sector {self.sector.idx} @ {self.offset}>"


def _always(block) -> bool:
    return True


class Sector:
    """One sector file: a stream of data blocks between a first and a last block.

    Parameters
    ----------
    fname
        The sector file.
    idx
        Index of the sector, 0..7 (its stripe of the frame).
    initial_offset
        Byte offset of the first block of the data.
    end_offset
        Byte offset of the last block of the data; by default the last whole block
        of the file.
    """

    def __init__(self, fname, idx, initial_offset=0, end_offset=None):
        self._fd = None
        self._pos = 0
        self.fname = os.fspath(fname)
        self.idx = int(idx)
        self.filesize = check_file(self.fname)
        self.first_block_offset = 0
        self.last_block_offset = 0
        self.set_first_block_offset(initial_offset)
        if end_offset is None:
            end_offset = self._last_whole_block()
        self.set_last_block_offset(end_offset)

    def _last_whole_block(self) -> int:
        n = (self.filesize - self.first_block_offset) // BLOCK_SIZE
        if n < 1:
            raise DataSetException(
                f"{self.fname}: no whole data block of {BLOCK_SIZE} bytes after byte "
                f"{self.first_block_offset} (file of {self.filesize} bytes)"
            )
        return self.first_block_offset + (n - 1) * BLOCK_SIZE

    # file access ---------------------------------------------------------------------
    def open(self) -> Sector:
        """Open the file read-only (done on first use)."""
        if self._fd is None:
            self._fd = os.open(self.fname, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return self

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def pread(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset``; fewer raise :class:`DataSetException`."""
        self.open()
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise DataSetException(
                f"{self.fname}: file truncated: {size} bytes at offset {offset} not available"
            )
        return data

    def seek(self, pos: int) -> None:
        """Set the position for :meth:`read`."""
        self._pos = int(pos)

    def read(self, size: int) -> bytes:
        """``size`` bytes from the current position, which advances."""
        data = self.pread(self._pos, size)
        self._pos += size
        return data

    # blocks ----------------------------------------------------------------------------
    def set_first_block_offset(self, offset) -> None:
        """Start the data at the block at byte ``offset``."""
        offset = int(offset)
        if not 0 <= offset <= self.filesize - BLOCK_SIZE:
            raise DataSetException(
                f"{self.fname}: first block offset {offset} outside the file "
                f"({self.filesize} bytes)"
            )
        self.first_block_offset = offset

    def set_last_block_offset(self, offset) -> None:
        """End the data with the block at byte ``offset``."""
        offset = int(offset)
        if not (
            self.first_block_offset <= offset <= self.filesize - BLOCK_SIZE
            and (offset - self.first_block_offset) % BLOCK_SIZE == 0
        ):
            raise DataSetException(
                f"{self.fname}: last block offset {offset} is not a whole block between the "
                f"first block ({self.first_block_offset}) and the end of the file "
                f"({self.filesize} bytes)"
            )
        self.last_block_offset = offset

    @property
    def num_blocks(self) -> int:
        """Blocks from the first to the last one."""
        return (self.last_block_offset - self.first_block_offset) // BLOCK_SIZE + 1

    def get_block_by_offset(self, offset) -> DataBlock:
        """The block at byte ``offset``."""
        return DataBlock(offset=offset, sector=self)

    def get_block_by_index(self, idx) -> DataBlock:
        """Block number ``idx`` counted from the first block."""
        return self.get_block_by_offset(self.first_block_offset + int(idx) * BLOCK_SIZE)

    def first_block(self) -> DataBlock:
        """The first block of the data."""
        return self.get_block_by_offset(self.first_block_offset)

    def last_block(self) -> DataBlock:
        """The last block of the data."""
        return self.get_block_by_offset(self.last_block_offset)

    def get_blocks_from_offset(self, offset) -> Iterator[DataBlock]:
        """The blocks from byte ``offset`` to the last block."""
        for pos in range(int(offset), self.last_block_offset + 1, BLOCK_SIZE):
            yield self.get_block_by_offset(pos)

    def get_blocks(self) -> Iterator[DataBlock]:
        """The blocks from the first to the last."""
        return self.get_blocks_from_offset(self.first_block_offset)

    def get_blocks_from_end(self) -> Iterator[DataBlock]:
        """The blocks from the last back to the first."""
        for pos in range(self.last_block_offset, self.first_block_offset - 1, -BLOCK_SIZE):
            yield self.get_block_by_offset(pos)

    def first_block_with(self, predicate: Callable[[DataBlock], bool] = _always):
        """The first block for which ``predicate`` holds, or ``None``."""
        return next((b for b in self.get_blocks() if predicate(b)), None)

    def first_block_from_end_with(self, predicate: Callable[[DataBlock], bool] = _always):
        """The last block for which ``predicate`` holds, or ``None``."""
        return next((b for b in self.get_blocks_from_end() if predicate(b)), None)

    def first_block_with_search(
        self, predicate: Callable[[DataBlock], bool] = _always, step=12800
    ):
        """Like :meth:`first_block_with` for a ``predicate`` that, once true, stays true
        (such as the shutter flag): probe every ``step``-th block, then scan block by
        block after the last probe that failed."""
        step = max(1, int(step)) * BLOCK_SIZE
        start = self.first_block_offset
        for pos in range(self.first_block_offset, self.last_block_offset + 1, step):
            if predicate(self.get_block_by_offset(pos)):
                break
            start = pos
        return next(
            (b for b in self.get_blocks_from_offset(start) if predicate(b)),
            None,
        )

    def __repr__(self) -> str:
        return f"<Sector {self.idx} {self.fname}>"

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            self.close()


# --- syncing ---------------------------------------------------------------------------------


def _is_frame_start(block: DataBlock) -> bool:
    return block.is_valid and block.index_in_frame == 0


class K2Syncer:
    """Find the common first and last whole frame of the eight sectors.

    Parameters
    ----------
    paths
        The sector files, in sector order.
    start_offsets, last_offsets
        Known byte offsets of each sector's first and last block (e.g. from an earlier
        sync); by default the whole files.
    """

    def __init__(self, paths, start_offsets=None, last_offsets=None):
        self.paths = [os.fspath(p) for p in paths]
        starts = [0] * len(self.paths) if start_offsets is None else list(start_offsets)
        ends = [None] * len(self.paths) if last_offsets is None else list(last_offsets)
        self.sectors = [
            Sector(p, idx, initial_offset=s, end_offset=e)
            for idx, (p, s, e) in enumerate(zip(self.paths, starts, ends))
        ]

    def first_blocks(self) -> list[DataBlock]:
        """The first block of each sector."""
        return [s.first_block() for s in self.sectors]

    def last_blocks(self) -> list[DataBlock]:
        """The last block of each sector."""
        return [s.last_block() for s in self.sectors]

    def _advance_to_frame(self, sector: Sector, frame_id: int) -> None:
        """Move ``sector``'s first block to the first block of frame ``frame_id`` or later."""
        first = sector.first_block()
        if _is_frame_start(first) and first.frame_id < frame_id:
            # jump directly when no blocks are missing in between
            guess = sector.first_block_offset + (frame_id - first.frame_id) * (
                BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
            )
            if guess <= sector.last_block_offset:
                b = sector.get_block_by_offset(guess)
                if _is_frame_start(b) and b.frame_id == frame_id:
                    sector.set_first_block_offset(guess)
                    return
        limit = sector.first_block_offset + FIRST_FRAME_SCAN_SIZE * (
            BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
        )
        for b in sector.get_blocks():
            if b.offset > limit:
                break
            if _is_frame_start(b) and b.frame_id >= frame_id:
                sector.set_first_block_offset(b.offset)
                return
        raise DataSetException(
            f"{sector.fname}: no frame {frame_id} or later found within "
            f"{FIRST_FRAME_SCAN_SIZE} frames; cannot sync the sectors"
        )

    def sync_to_first_frame(self) -> None:
        """Start every sector at the first whole frame with the shutter active."""
        for sector in self.sectors:
            first = sector.first_block_with_search(lambda b: b.is_valid and b.shutter_active)
            if first is None:
                raise DataSetException(
                    f"{sector.fname}: no valid data block with the shutter-active flag"
                )
            sector.set_first_block_offset(first.offset)
            if not _is_frame_start(first):
                self._advance_to_frame(sector, first.frame_id + 1)

    def sync_sectors(self) -> None:
        """Start all sectors at the same frame id (the latest of their first frames)."""
        for _ in range(4):
            ids = [b.frame_id for b in self.first_blocks()]
            target = max(ids)
            if min(ids) == target:
                return
            for sector, frame_id in zip(self.sectors, ids):
                if frame_id < target:
                    self._advance_to_frame(sector, target)
        raise DataSetException(f"{self.paths[0]}: cannot sync the sectors to a common frame")

    def _set_last_blocks(self) -> int:
        """End all sectors after the same number of whole frames; return that number."""
        per_frame = BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
        n_frames = min((s.filesize - s.first_block_offset) // per_frame for s in self.sectors)
        if n_frames < 1:
            raise DataSetException(
                f"{self.paths[0]}: the sectors hold no whole frame after the first "
                "shutter-active one"
            )
        for s in self.sectors:
            s.set_last_block_offset(s.first_block_offset + n_frames * per_frame - BLOCK_SIZE)
        return n_frames

    def validate_sync(self) -> None:
        """Check that all sectors start at the same frame start and end at the same frame end,
        with no block missing in between.

        Raises
        ------
        DataSetException
            Naming the sector that does not fit.
        """
        first_ids = set()
        last_ids = set()
        for s in self.sectors:
            first, last = s.first_block(), s.last_block()
            if not _is_frame_start(first):
                raise DataSetException(f"{s.fname}: first block is not the start of a frame")
            if not (last.is_valid and last.index_in_frame == BLOCKS_PER_SECTOR_PER_FRAME - 1):
                raise DataSetException(
                    f"{s.fname}: last block is not the end of a frame: blocks missing or "
                    "out of order"
                )
            n_frames = s.num_blocks // BLOCKS_PER_SECTOR_PER_FRAME
            if last.frame_id - first.frame_id != n_frames - 1:
                raise DataSetException(
                    f"{s.fname}: frames {first.frame_id}..{last.frame_id} in {n_frames} "
                    "frames of blocks: blocks missing or out of order"
                )
            first_ids.add(first.frame_id)
            last_ids.add(last.frame_id)
        if len(first_ids) != 1 or len(last_ids) != 1:
            raise DataSetException(
                f"{self.paths[0]}: sectors out of sync: first frames {sorted(first_ids)}, "
                f"last frames {sorted(last_ids)}"
            )

    def check_block_order(self) -> None:
        """Check that the blocks of the first frame lie where the layout expects them."""
        for s in self.sectors:
            for i in range(BLOCKS_PER_SECTOR_PER_FRAME):
                b = s.get_block_by_index(i)
                h = b.header
                if not b.is_valid or (h["pixel_y_start"], h["pixel_x_start"]) != block_position(i):
                    raise DataSetException(
                        f"{s.fname}: block {i} of the first frame is corrupt or out of place "
                        f"(at byte {b.offset})"
                    )

    def sync(self) -> int:
        """Sync the sectors (first shutter-active frame, common frame ids, whole frames)
        and validate the result.

        Returns
        -------
        int
            The number of whole frames.
        """
        self.sync_to_first_frame()
        self.sync_sectors()
        n_frames = self._set_last_blocks()
        self.validate_sync()
        self.check_block_order()
        return n_frames

    def close(self) -> None:
        """Close the sector files."""
        for s in self.sectors:
            s.close()
