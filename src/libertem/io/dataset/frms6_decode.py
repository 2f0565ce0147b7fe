"""Decoding pnCCD ``.frms6`` frames: the two halves unfolded, binned rows repeated (the
layout is described in :mod:`~libertem.io.dataset.frms6_header`)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, inline="always")
def _stored_pos(y, x, rows_half, half_w, binning):
    """Stored row and column of decoded pixel ``(y, x)``."""
    if y < rows_half:
        return y // binning, x
    return (2 * rows_half - 1 - y) // binning, 2 * half_w - 1 - x


@numba.njit(nogil=True, cache=True)
def decode_frms6_frames(raw, out, binning, width):
    """Decode stored frames into whole frames.

    Parameters
    ----------
    raw : numpy.ndarray
        ``uint8`` ``(n, height * width * 2)``: the frames' data (may skip headers).
    out : numpy.ndarray
        ``(n, 2 * height * binning, width // 2)``, any numeric dtype.
    """
    n, rows, cols = out.shape
    half_w = width // 2
    rows_half = rows // 2
    height = rows_half // binning
    for k in range(n):
        for r in range(height):
            base = 2 * r * width
            for rep in range(binning):
                top = out[k, r * binning + rep]
                bottom = out[k, rows - 1 - (r * binning + rep)]
                for c in range(half_w):
                    p = base + 2 * c
                    top[c] = np.uint16(raw[k, p]) | (np.uint16(raw[k, p + 1]) << np.uint16(8))
                for c in range(half_w):
                    p = base + 2 * (half_w + c)
                    bottom[cols - 1 - c] = np.uint16(raw[k, p]) | (
                        np.uint16(raw[k, p + 1]) << np.uint16(8)
                    )


@numba.njit(nogil=True, cache=True)
def _decode_region(inp, out, idx, origin, shape, ds_shape, binning):
    rows_half = ds_shape[-2] // 2
    half_w = ds_shape[-1]
    width = 2 * half_w
    th = shape[1]
    tw = shape[2]
    for i in range(th):
        y = origin[1] + i
        for j in range(tw):
            r, c = _stored_pos(y, origin[2] + j, rows_half, half_w, binning)
            p = 2 * (r * width + c)
            out[idx, i * tw + j] = np.uint16(inp[p]) | (np.uint16(inp[p + 1]) << np.uint16(8))


@numba.njit(nogil=True, cache=True)
def decode_frms6_b1(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode the tile region ``origin``/``shape`` of one unbinned stored frame ``inp``
    into ``out[idx]`` (the tile's pixels, row by row)."""
    _decode_region(inp, out, idx, origin, shape, ds_shape, 1)


@numba.njit(nogil=True, cache=True)
def decode_frms6_b2(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """As :func:`decode_frms6_b1`, for frames binned by 2 (rows repeated twice)."""
    _decode_region(inp, out, idx, origin, shape, ds_shape, 2)


@numba.njit(nogil=True, cache=True)
def decode_frms6_b4(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """As :func:`decode_frms6_b1`, for frames binned by 4 (rows repeated four times)."""
    _decode_region(inp, out, idx, origin, shape, ds_shape, 4)


DECODERS = {1: decode_frms6_b1, 2: decode_frms6_b2, 4: decode_frms6_b4}


def frames_decoder(binning, height, width):
    """The frame source decoder ``(raw, out) -> None`` of frames of this geometry (named
    ``'libertem.io.dataset.frms6_decode:frames_decoder'`` in frame layouts)."""
    binning, height, width = int(binning), int(height), int(width)
    native = (2 * height * binning, width // 2)

    def run(raw, out):
        n = out.shape[0]
        if out.flags.c_contiguous:
            decode_frms6_frames(raw, out.reshape((n, *native)), binning, width)
        else:
            tmp = np.empty((n, *native), dtype=out.dtype)
            decode_frms6_frames(raw, tmp, binning, width)
            out[...] = tmp.reshape(out.shape)

    return run
