"""Writers of sample files for tests, benchmarks and demos.

:func:`write_mib_acquisition` writes Quantum Detectors Merlin acquisitions
(``.mib`` files with per-frame ASCII headers, plus the ``.hdr`` file) following
the published format description: processed ``U08``/``U16``/``U32`` frames
(big-endian) and raw ``R64`` frames of counter depth 1, 6, 12 and 24, single
chip or 2x2 quad.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_DEFAULT_DEPTH = {"U08": 6, "U16": 12, "U32": 24, "R64": 12}
_U_DTYPES = {"U08": ">u1", "U16": ">u2", "U32": ">u4"}
_R64_BITS = {1: 1, 6: 8, 12: 16, 24: 32}


def mib_header(
    seq: int,
    width: int,
    height: int,
    pixel_depth: str,
    counter_depth: int,
    quad: bool = False,
    exposure_ns: int = 1_000_000,
) -> bytes:
    """The ASCII header of one Merlin frame (384 bytes, 768 for a quad)."""
    header_size = 768 if quad else 384
    layout = "2x2" if quad else "1x1"
    fields = [
        "MQ1",
        f"{seq:06d}",
        f"{header_size:05d}",
        f"{4 if quad else 1:02d}",
        f"{width:04d}",
        f"{height:04d}",
        pixel_depth,
        f"{layout:>6}",
        "0F" if quad else "01",
        "2024-01-01 12:00:00.000000",
        f"{exposure_ns / 1e9:.6f}",
        "0",
        "0",
        "0",
        *(["0.000000E+0"] * 8),
        "3RX",
        *(["000"] * 33),
        "MQ1A",
        "2024-01-01T12:00:00.000000000Z",
        f"{int(exposure_ns)}ns",
        str(int(counter_depth)),
        "",
    ]
    text = ",".join(fields).encode("ascii")
    if len(text) > header_size:
        raise ValueError("header fields too long")
    return text.ljust(header_size, b" ")


def _quad_stream(frames: np.ndarray) -> np.ndarray:
    """Assembled 512x512 quad frames in raw stream order (rows of one row per chip)."""
    n = frames.shape[0]
    raw = np.empty((n, 256, 1024), dtype=frames.dtype)
    raw[:, :, 0:256] = frames[:, :256, :256]
    raw[:, :, 256:512] = frames[:, :256, 256:]
    raw[:, :, 512:768] = frames[:, 256:, :256][:, ::-1, ::-1]
    raw[:, :, 768:] = frames[:, 256:, 256:][:, ::-1, ::-1]
    return raw.reshape(n, -1)


def _encode_words(stream: np.ndarray, bits: int) -> np.ndarray:
    """Pixels (n, npix) as big-endian 64-bit words, pixel j at bits [j*bits, (j+1)*bits)."""
    n = stream.shape[0]
    per_word = 64 // bits
    words = stream.reshape(n, -1, per_word)[..., ::-1]
    if bits == 16:
        return words.astype(">u2").view(np.uint8).reshape(n, -1)
    if bits == 8:
        return words.astype(np.uint8).reshape(n, -1)
    return np.packbits(words.astype(np.uint8), axis=-1).reshape(n, -1)


def encode_mib_frames(
    frames: np.ndarray, pixel_depth: str, counter_depth: int, quad: bool = False
) -> np.ndarray:
    """Frame data bytes ``(n, frame_bytes)`` of ``frames`` ``(n, height, width)``."""
    n = frames.shape[0]
    if pixel_depth in _U_DTYPES:
        return (
            np.ascontiguousarray(frames.astype(_U_DTYPES[pixel_depth]))
            .view(np.uint8)
            .reshape(n, -1)
        )
    stream = _quad_stream(frames) if quad else frames.reshape(n, -1)
    if counter_depth == 24:
        stream = stream.astype(np.uint32)
        hi = _encode_words(stream >> 12, 16)
        lo = _encode_words(stream & 0xFFF, 16)
        return np.concatenate([hi, lo], axis=1)
    return _encode_words(stream, _R64_BITS[counter_depth])


def write_hdr(path, n_frames: int, frames_per_trigger: int, counter_depth: int, quad: bool):
    """Write a Merlin ``.hdr`` acquisition header."""
    lines = [
        "HDR,\t",
        "Time and Date Created:\t01/01/2024 12:00:00",
        "Chip ID:\tW000_A0,-,-,-",
        "Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX):\tMedipix 3RX",
        f"Assembly Size (NX1, 2X2):\t   {'2x2' if quad else '1x1'}",
        "Chip Mode  (SPM, CSM, CM, CSCM):\tSPM",
        f"Counter Depth (number):\t{counter_depth}",
        "Gain:\tSLGM",
        "Active Counters:\tAlternating",
        "Acquisition Type (Normal, Th_scan, Config):\tNormal",
        f"Frames in Acquisition (Number):\t{n_frames}",
        f"Frames per Trigger (Number):\t{frames_per_trigger}",
        "Trigger Start (Positive, Negative, Internal):\tRising Edge",
        "Trigger Stop (Positive, Negative, Internal):\tRising Edge",
        "Readout System:\tMerlin Quad",
        "End\t",
    ]
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")


def write_mib_acquisition(
    prefix_or_path: str | os.PathLike,
    data: np.ndarray,
    pixel_depth: str = "U16",
    counter_depth: int | None = None,
    n_files: int = 1,
    with_hdr: bool = True,
    first_seq: int = 1,
    block_frames: int = 256,
) -> str:
    """Write ``data`` as a Merlin acquisition; return the ``.hdr`` (or first ``.mib``) path.

    Parameters
    ----------
    prefix_or_path
        ``'dir/name'`` or ``'dir/name.mib'``/``'.hdr'``. One file is written as
        ``name.mib``, several as ``name1.mib``, ``name2.mib``, ...; the header
        as ``name.hdr``.
    data
        ``(..., height, width)`` non-negative integers; the navigation shape
        goes into the ``.hdr`` (frames per trigger = last navigation axis).
        ``(512, 512)`` frames are written as a 2x2 quad.
    pixel_depth
        ``'U08'``, ``'U16'``, ``'U32'`` (processed, big-endian) or ``'R64'`` (raw).
    counter_depth
        1, 6, 12 or 24; by default 6, 12, 24 for U08, U16, U32 and 12 for R64.
    n_files
        Number of ``.mib`` files to spread the frames over.
    with_hdr
        Write the ``.hdr`` file.
    first_seq
        Sequence number of the first frame.
    block_frames
        Frames encoded and written at a time.
    """
    pixel_depth = pixel_depth.upper()
    if pixel_depth not in _DEFAULT_DEPTH:
        raise ValueError(f"unknown pixel_depth {pixel_depth!r}")
    depth = _DEFAULT_DEPTH[pixel_depth] if counter_depth is None else int(counter_depth)
    if depth not in _R64_BITS:
        raise ValueError(f"counter_depth must be 1, 6, 12 or 24, got {depth}")
    data = np.asarray(data)
    if data.ndim < 2:
        raise ValueError("data needs at least 2 dimensions")
    height, width = data.shape[-2:]
    nav = data.shape[:-2] or (1,)
    frames = data.reshape(-1, height, width)
    quad = (height, width) == (512, 512)
    if pixel_depth == "R64" and frames.shape[1] * frames.shape[2] % (64 // _R64_BITS[depth] or 1):
        raise ValueError("frame does not fill whole 64-bit words")
    n_frames = frames.shape[0]
    limit = 1 << (depth if pixel_depth == "R64" else 8 * np.dtype(_U_DTYPES[pixel_depth]).itemsize)
    if n_frames and (frames.min() < 0 or frames.max() >= limit):
        raise ValueError(f"values must be in [0, {limit}) for {pixel_depth} / depth {depth}")
    base = os.fspath(prefix_or_path)
    if base.lower().endswith((".mib", ".hdr")):
        base = base[:-4]
    if n_files == 1:
        paths = [base + ".mib"]
    else:
        paths = [f"{base}{i + 1}.mib" for i in range(n_files)]
    bounds = np.linspace(0, n_frames, n_files + 1).astype(int)
    header_size = 768 if quad else 384
    for path, f0, f1 in zip(paths, bounds[:-1], bounds[1:]):
        with open(path, "wb") as f:
            for b0 in range(f0, f1, block_frames):
                b1 = min(f1, b0 + block_frames)
                payload = encode_mib_frames(frames[b0:b1], pixel_depth, depth, quad)
                rec = np.empty(
                    b1 - b0, dtype=[("h", f"S{header_size}"), ("d", np.uint8, payload.shape[1])]
                )
                rec["h"] = [
                    mib_header(first_seq + k, width, height, pixel_depth, depth, quad)
                    for k in range(b0, b1)
                ]
                rec["d"] = payload
                rec.tofile(f)
    if with_hdr:
        write_hdr(base + ".hdr", n_frames, nav[-1] if len(nav) > 1 else 1, depth, quad)
        return base + ".hdr"
    return paths[0]
