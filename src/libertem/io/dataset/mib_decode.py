"""Merlin raw (``R64``) frames: decode functions per read range, encoders, read ranges.

The block decoders that datasets use live in :mod:`libertem.io.dataset.base.decode`
(``decode_r64_flat``, ``decode_r64_quad``); the functions here follow the per-range
decode protocol of :mod:`libertem.io.dataset.base.decoders` on top of them, and the
encoders write frames in the raw layout (the inverse), e.g. for test files.

Raw layout: big-endian 64-bit words; pixel ``j`` of a word holds bits
``[j * bits, (j + 1) * bits)`` of the word's value, ``bits`` = 1, 8, 16 for counter
depth 1, 6, 12. Depth 24 stores two 12-bit frames (high bits first) one after the
other. 2x2 quads stream rows of ``4 x 256`` pixels, one row of each chip.
"""

from __future__ import annotations

import numpy as np

from libertem.common.lazyjit import lazy_njit
from libertem.io.dataset.base.decode import decode_r64_flat, decode_r64_quad
from libertem.io.dataset.base.readranges import make_get_read_ranges

# decode functions (protocol of base/decoders.py) ------------------------------------


@lazy_njit(nogil=True, cache=True)
def _start_px(origin, ds_shape):
    """Flat index in the frame of a tile's signal origin."""
    sig_dims = origin.shape[0] - 1
    start, step = 0, 1
    for i in range(sig_dims - 1, -1, -1):
        start += origin[1 + i] * step
        step *= ds_shape[ds_shape.shape[0] - sig_dims + i]
    return start


@lazy_njit(nogil=True, cache=True)
def _frame_px(ds_shape, sig_dims):
    n = 1
    for i in range(sig_dims):
        n *= ds_shape[ds_shape.shape[0] - sig_dims + i]
    return n


@lazy_njit(nogil=True, cache=True)
def decode_r1_swap(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode the raw 1-bit words of a tile's rows (``inp``) into ``out[idx]``."""
    decode_r64_flat(inp.reshape((1, inp.size)), out[idx : idx + 1], 1, 1, 0)


@lazy_njit(nogil=True, cache=True)
def decode_r6_swap(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode the raw 6-bit (8-bit words) data of a tile's rows into ``out[idx]``."""
    decode_r64_flat(inp.reshape((1, inp.size)), out[idx : idx + 1], 8, 0x3F, 0)


@lazy_njit(nogil=True, cache=True)
def decode_r12_swap(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode the raw 12-bit (16-bit words) data of a tile's rows into ``out[idx]``."""
    decode_r64_flat(inp.reshape((1, inp.size)), out[idx : idx + 1], 16, 0xFFF, 0)


@lazy_njit(nogil=True, cache=True)
def decode_r24_swap(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode a whole raw 24-bit frame (``inp``) and put the tile's pixels in ``out[idx]``."""
    npix = _frame_px(ds_shape, origin.shape[0] - 1)
    tmp = np.empty((1, npix), dtype=np.uint32)
    decode_r64_flat(inp.reshape((1, inp.size)), tmp, 16, 0xFFFF, inp.size // 2)
    start = _start_px(origin, ds_shape)
    for i in range(out.shape[1]):
        out[idx, i] = tmp[0, start + i]


@lazy_njit(nogil=True, cache=True)
def _quad_region(inp, out, idx, origin, shape, bits, mask):
    tmp = np.empty((1, 512, 512), dtype=np.uint16)
    decode_r64_quad(inp.reshape((1, inp.size)), tmp, bits, mask, 0)
    h, w = shape[1], shape[2]
    for r in range(h):
        for c in range(w):
            out[idx, r * w + c] = tmp[0, origin[1] + r, origin[2] + c]


@lazy_njit(nogil=True, cache=True)
def decode_r1_swap_2x2(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode a whole raw 1-bit 2x2 quad frame; put the tile's region in ``out[idx]``."""
    _quad_region(inp, out, idx, origin, shape, 1, 1)


@lazy_njit(nogil=True, cache=True)
def decode_r6_swap_2x2(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode a whole raw 6-bit 2x2 quad frame; put the tile's region in ``out[idx]``."""
    _quad_region(inp, out, idx, origin, shape, 8, 0x3F)


@lazy_njit(nogil=True, cache=True)
def decode_r12_swap_2x2(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode a whole raw 12-bit 2x2 quad frame; put the tile's region in ``out[idx]``."""
    _quad_region(inp, out, idx, origin, shape, 16, 0xFFF)


RAW_DECODERS = {1: decode_r1_swap, 6: decode_r6_swap, 12: decode_r12_swap, 24: decode_r24_swap}
QUAD_DECODERS = {1: decode_r1_swap_2x2, 6: decode_r6_swap_2x2, 12: decode_r12_swap_2x2}

# encoders ---------------------------------------------------------------------------


@lazy_njit(nogil=True, cache=True)
def _encode_words(inp, out, bits):
    n, npix = inp.shape
    per_word = 64 // bits
    for k in range(n):
        for b in range(out.shape[1]):
            out[k, b] = 0
        for p in range(npix):
            base = 8 * (p // per_word)
            j = p % per_word
            v = inp[k, p]
            if bits == 16:
                out[k, base + 6 - 2 * j] = (v >> 8) & 0xFF
                out[k, base + 7 - 2 * j] = v & 0xFF
            elif bits == 8:
                out[k, base + 7 - j] = v & 0xFF
            else:
                out[k, base + 7 - j // 8] |= (v & 1) << (j % 8)


@lazy_njit(nogil=True, cache=True)
def _encode_be(inp, out, itemsize):
    n, npix = inp.shape
    for k in range(n):
        for p in range(npix):
            v = inp[k, p]
            for b in range(itemsize):
                out[k, p * itemsize + itemsize - 1 - b] = (v >> (8 * b)) & 0xFF


def _frames2d(inp, out, bytes_per_px: float):
    inp = np.asarray(inp)
    n = inp.shape[0] if inp.ndim > 1 else 1
    flat = np.ascontiguousarray(inp.reshape((n, -1)))
    out2d = out.reshape((n, -1))
    if out2d.shape[1] != int(flat.shape[1] * bytes_per_px):
        raise ValueError(
            f"out holds {out2d.shape[1]} bytes per frame, {int(flat.shape[1] * bytes_per_px)} "
            "are needed"
        )
    return flat, out2d


def encode_r1(inp, out) -> None:
    """Write frames ``inp`` (``(n, ...)`` of 0/1) as raw 1-bit data into ``out`` (``uint8``,
    ``n`` x pixels / 8 bytes)."""
    flat, out2d = _frames2d(inp, out, 1 / 8)
    _encode_words(flat.astype(np.uint8), out2d, 1)


def encode_r6(inp, out) -> None:
    """Write frames as raw 6-bit data (one byte per pixel, in 64-bit word order)."""
    flat, out2d = _frames2d(inp, out, 1)
    _encode_words(flat.astype(np.uint8), out2d, 8)


def encode_r12(inp, out) -> None:
    """Write frames as raw 12-bit data (two bytes per pixel, in 64-bit word order)."""
    flat, out2d = _frames2d(inp, out, 2)
    _encode_words(flat.astype(np.uint16), out2d, 16)


def encode_u1(inp, out) -> None:
    """Write frames as processed ``U08`` data (one byte per pixel)."""
    flat, out2d = _frames2d(inp, out, 1)
    _encode_be(flat.astype(np.uint8), out2d, 1)


def encode_u2(inp, out) -> None:
    """Write frames as processed ``U16`` data (big-endian)."""
    flat, out2d = _frames2d(inp, out, 2)
    _encode_be(flat.astype(np.uint16), out2d, 2)


# read ranges --------------------------------------------------------------------------


@lazy_njit(nogil=True, cache=True)
def _whole_frame_px_to_bytes(
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
    sig_size = 1
    for s in sig_shape:
        sig_size *= s
    frame_bytes = sig_size * bpp // 8
    start = file_header + frame_in_file * (frame_header + frame_bytes + frame_footer)
    start += frame_header
    return start, start + frame_bytes


#: Read ranges of whole 2x2 quad frames (their stream order differs from the frame order).
mib_2x2_get_read_ranges = make_get_read_ranges(px_to_bytes=_whole_frame_px_to_bytes)

#: Read ranges of whole 24-bit raw frames (the two 12-bit halves are far apart).
mib_r24_get_read_ranges = make_get_read_ranges(px_to_bytes=_whole_frame_px_to_bytes)
