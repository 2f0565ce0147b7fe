"""Writer of small PNDetector FRMS6 acquisitions (``.hdr``, ``_NNN.frms6``, gain maps),
for tests, following the layout described in :mod:`libertem.io.dataset.frms6_header`;
written with plain numpy and ``struct``, independent of the reader.
"""

from __future__ import annotations

import os
import struct

import numpy as np


def unfold(stored: np.ndarray, binning: int = 1) -> np.ndarray:
    """Decoded frames ``(n, 2 * h * binning, w / 2)`` of stored frames ``(n, h, w)``."""
    half = stored.shape[2] // 2
    top = np.repeat(stored[:, :, :half], binning, axis=1)
    bottom = np.repeat(stored[:, :, half:], binning, axis=1)[:, ::-1, ::-1]
    return np.concatenate([top, bottom], axis=1)


def random_stored(n: int, height: int = 6, width: int = 20, seed: int = 0, hi: int = 4000):
    """``n`` random stored frames ``(n, height, width)`` of ``uint16``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, hi, size=(n, height, width), dtype=np.uint16)


def file_header(width, height, num_frames, header_size=1024, frame_header=64, version=6):
    """A ``.frms6`` file header of ``header_size`` bytes."""
    head = struct.pack(
        "<HH3xB80xHH928xI", header_size, frame_header, version, width, height, num_frames
    )
    assert len(head) == 1024
    return head + b"\0" * (header_size - 1024)


def write_file(
    path, stored: np.ndarray, header_size=1024, frame_header=64, num_frames=None, cut=0
):
    """One ``.frms6`` file of ``stored`` frames ``(n, h, w)``; ``num_frames``: the header's
    value (default ``n``); ``cut``: bytes left off the end."""
    n, h, w = stored.shape
    out = bytearray(
        file_header(w, h, n if num_frames is None else num_frames, header_size, frame_header)
    )
    for k in range(n):
        out += (
            struct.pack("<I", k) + b"\x5a" * (frame_header - 4)
            if frame_header >= 4
            else (b"\x5a" * frame_header)
        )
        out += stored[k].astype("<u2").tobytes()
    with open(path, "wb") as f:
        f.write(bytes(out[: len(out) - cut]))
    return path


def write_hdr(path, binning=1, scan=None, extra=""):
    """The ``.hdr`` text file."""
    lines = ["; pnCCD acquisition", "[measurementInfo]", "darkframes=0"]
    if scan is not None:
        lines += [f"stemimagesizey={scan[0]}", f"stemimagesizex={scan[1]}"]
    lines += ["[readoutmode]", f"bin={binning}", "mode=full"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    return path


def write_frms6(
    folder, dark: np.ndarray, signal: list, stem="acq", binning=1, scan=None, **file_kwargs
):
    """An acquisition: ``<stem>.hdr``, ``<stem>_000.frms6`` with the ``dark`` frames and one
    file per array in ``signal``. Returns the path of the ``.hdr``."""
    hdr = write_hdr(os.path.join(folder, f"{stem}.hdr"), binning, scan)
    for i, frames in enumerate([dark, *signal]):
        write_file(os.path.join(folder, f"{stem}_{i:03d}.frms6"), frames, **file_kwargs)
    return hdr


def write_gain_csv(path, gain: np.ndarray):
    """A gain map: one frame row per line, values separated by ';'."""
    with open(path, "w") as f:
        for row in gain:
            f.write(";".join(repr(float(v)) for v in row) + "\n")
    return path
