"""Gatan K2 IS data blocks: their layout, and decoding their 12-bit pixels.

The layout of sector files and blocks is described in
:mod:`~libertem.io.dataset.k2is_sectors`.
"""

from __future__ import annotations

import numba
import numpy as np

HEADER_SIZE = 40
DATA_SIZE = 22320
BLOCK_SIZE = HEADER_SIZE + DATA_SIZE
BLOCK_SHAPE = (930, 16)
SECTOR_SIZE = (1860, 256)
NUM_SECTORS = 8
BLOCKS_PER_SECTOR_PER_FRAME = 32
FRAME_SHAPE = (SECTOR_SIZE[0], SECTOR_SIZE[1] * NUM_SECTORS)
#: blocks side by side in a sector
BLOCKS_X = SECTOR_SIZE[1] // BLOCK_SHAPE[1]


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
            y0 = (blk // BLOCKS_X) * rows
            x0 = x_offset + (blk % BLOCKS_X) * cols
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


__all__ = [
    "BLOCKS_PER_SECTOR_PER_FRAME",
    "BLOCKS_X",
    "BLOCK_SHAPE",
    "BLOCK_SIZE",
    "DATA_SIZE",
    "FRAME_SHAPE",
    "HEADER_SIZE",
    "NUM_SECTORS",
    "SECTOR_SIZE",
    "decode_sector_frames",
    "decode_uint12_le",
]
