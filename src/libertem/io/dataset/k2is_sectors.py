"""Gatan K2 IS sector files: the data blocks and the sectors they form.

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
(:class:`~libertem.io.dataset.k2is_sync.K2Syncer`). The 12-bit decoding is in
:mod:`~libertem.io.dataset.k2is_decode`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.k2is_decode import (
    BLOCK_SHAPE,
    BLOCK_SIZE,
    BLOCKS_X,
    DATA_SIZE,
    HEADER_SIZE,
    SECTOR_SIZE,
    decode_uint12_le,
)

SHUTTER_ACTIVE_MASK = 1
SYNC_WORD = 0xFFFF0055

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
    return (index // BLOCKS_X) * BLOCK_SHAPE[0], (index % BLOCKS_X) * BLOCK_SHAPE[1]


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
        return (h["pixel_y_start"] // BLOCK_SHAPE[0]) * BLOCKS_X + (
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


__all__ = [
    "HEADER_DTYPE",
    "SHUTTER_ACTIVE_MASK",
    "SYNC_WORD",
    "DataBlock",
    "Sector",
    "block_position",
    "parse_block_header",
]
