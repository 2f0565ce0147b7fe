"""Writer of small Gatan K2 IS acquisitions (eight sector files and a ``.gtg``), for tests.

The layout follows the description in :mod:`libertem.io.dataset.k2is_sectors`, written
independently of the reader with plain numpy: 40-byte big-endian block headers, 930 x 16
pixel blocks of 12-bit little-endian packed values, 32 blocks per frame and sector.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from writers_dm_ser_seq import DMWriter, Group, Simple

FRAME_SHAPE = (1860, 2048)
BLOCK_BYTES = 22360

_HEADER = np.dtype(
    [
        ("sync", ">u4"),
        ("pad1", "V4"),
        ("version", "u1"),
        ("flags", "u1"),
        ("pad2", "V6"),
        ("block_count", ">u4"),
        ("width", ">u2"),
        ("height", ">u2"),
        ("frame_id", ">u4"),
        ("x0", ">u2"),
        ("y0", ">u2"),
        ("x1", ">u2"),
        ("y1", ">u2"),
        ("block_size", ">u4"),
    ]
)


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random 12-bit frames ``(n, 1860, 2048)`` of ``uint16``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4096, size=(n, *FRAME_SHAPE), dtype=np.uint16)


def pack12(values: np.ndarray) -> np.ndarray:
    """Pack pairs of 12-bit values (last axis, even length) into 3 bytes each, little-endian."""
    v = values.astype(np.uint32).reshape(*values.shape[:-1], -1, 2)
    lo, hi = v[..., 0], v[..., 1]
    out = np.stack([lo & 0xFF, (lo >> 8) | ((hi & 0xF) << 4), hi >> 4], axis=-1)
    return out.astype(np.uint8).reshape(*values.shape[:-1], -1)


def sector_blocks(frames: np.ndarray, sector: int, frame_ids, flags) -> np.ndarray:
    """The blocks of ``sector`` for ``frames``: ``uint8`` of shape ``(n, 32, 22360)``."""
    n = frames.shape[0]
    stripe = frames[:, :, 256 * sector : 256 * (sector + 1)]
    # (n, by, row, bx, col) -> (n, by, bx, row, col): blocks in frame order
    blocks = stripe.reshape(n, 2, 930, 16, 16).transpose(0, 1, 3, 2, 4).reshape(n, 32, -1)
    headers = np.zeros((n, 32), dtype=_HEADER)
    idx = np.arange(32)
    headers["sync"] = 0xFFFF0055
    headers["version"] = 1
    headers["flags"] = np.asarray(flags, dtype=np.uint8)[:, None]
    headers["block_count"] = np.arange(n * 32).reshape(n, 32)
    headers["width"] = 16
    headers["height"] = 930
    headers["frame_id"] = np.asarray(frame_ids, dtype=np.uint32)[:, None]
    headers["x0"] = (idx % 16) * 16
    headers["y0"] = (idx // 16) * 930
    headers["x1"] = headers["x0"] + 15
    headers["y1"] = headers["y0"] + 929
    headers["block_size"] = BLOCK_BYTES
    raw = headers.view(np.uint8).reshape(n, 32, 40)
    return np.concatenate([raw, pack12(blocks)], axis=2)


def write_gtg(path, nav_shape) -> str:
    """A DM4 tag file with the scan size under ``SI Dimensions``."""
    ny, nx = nav_shape
    root = Group(
        [
            (
                "SI Dimensions",
                Group([("Size X", Simple(3, int(nx))), ("Size Y", Simple(3, int(ny)))]),
            ),
        ]
    )
    body = DMWriter(4, "<").group(root)
    with open(path, "wb") as f:
        f.write(struct.pack(">IQ", 4, len(body) + 4) + struct.pack(">I", 1) + body + b"\0" * 8)
    return path


def write_k2is(
    folder,
    frames: np.ndarray,
    prefix: str = "Capture_",
    blank: int = 2,
    first_id: int = 1000,
    skew=None,
    drop_start_blocks: int = 0,
    trailing_blocks: int = 0,
    nav_shape=None,
) -> list[str]:
    """Write ``frames`` ``(n, 1860, 2048)`` as a K2 IS acquisition in ``folder``.

    Parameters
    ----------
    blank
        Frames without the shutter-active flag (zeros) before the data, in every sector.
    first_id
        Frame id of the first data frame.
    skew
        ``{sector: k}``: that sector starts ``k`` frames earlier (more blank frames), so
        the sectors do not start at the same frame id.
    drop_start_blocks
        Blocks missing at the start of every file (recording started mid-frame).
    trailing_blocks
        Blocks of an incomplete frame after the data.
    nav_shape
        If given, also write ``<prefix>.gtg`` with this scan size.

    Returns
    -------
    list of str
        The sector files.
    """
    skew = skew or {}
    n = frames.shape[0]
    paths = []
    for s in range(8):
        n_blank = blank + skew.get(s, 0)
        total = n_blank + n + (1 if trailing_blocks else 0)
        data = np.zeros((total, *FRAME_SHAPE), dtype=np.uint16)
        data[n_blank : n_blank + n] = frames
        ids = first_id - n_blank + np.arange(total)
        flags = np.r_[np.zeros(n_blank), np.ones(total - n_blank)]
        raw = sector_blocks(data, s, ids, flags).reshape(-1)
        end = (n_blank + n) * 32 * BLOCK_BYTES + trailing_blocks * BLOCK_BYTES
        path = os.path.join(folder, f"{prefix}{s + 1}.bin")
        with open(path, "wb") as f:
            f.write(raw[drop_start_blocks * BLOCK_BYTES : end].tobytes())
        paths.append(path)
    if nav_shape is not None:
        write_gtg(os.path.join(folder, f"{prefix}.gtg"), nav_shape)
    return paths
