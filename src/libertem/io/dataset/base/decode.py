"""Numba kernels that decode stored frames straight into tile buffers.

Every decoder takes ``raw``, a ``uint8`` array ``(n_frames, frame_bytes)`` (may be
a strided view skipping per-frame headers), and ``out``, an array
``(n_frames, *sig_shape)`` of any numeric dtype, and writes the decoded values
into ``out`` without temporaries (when ``out`` is C-contiguous). Kernels release
the GIL, so that threads decode in parallel.

Decoders are named, so that partitions carry them cheaply: see :func:`get_decoder`.

Merlin raw (``R64``) frames, as the published format description lays them out:
the frame is a stream of big-endian 64-bit words; pixel ``j`` of a word holds
bits ``[j * bits, (j + 1) * bits)`` of the word's value, least significant
first, with ``bits`` = 1, 8, 16 for counter depth 1, 6, 12. Counter depth 24
stores two such 12-bit frames, the high 12 bits first. A single chip streams
its pixels row by row; a 2x2 quad streams rows of ``4 x 256`` pixels, one row of
each chip; chips 0 and 1 form the top half, chips 2 and 3 the bottom half,
rotated by 180 degrees.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.lazy import lazy_names
from libertem.common.lazyjit import lazy_njit


@lazy_njit(nogil=True, cache=True)
def _quad_pos(p):
    """Row, column and column step of quad stream pixel ``p`` (start of a word)."""
    r = p // 1024
    rem = p % 1024
    chip = rem // 256
    x = rem % 256
    if chip == 0:
        return r, x, 1
    if chip == 1:
        return r, 256 + x, 1
    if chip == 2:
        return 511 - r, 255 - x, -1
    return 511 - r, 511 - x, -1


@lazy_njit(nogil=True, cache=True)
def decode_r64_flat(raw, out, bits, mask, half):
    """Single-chip raw frames into ``out`` ``(n, npix)``; ``half`` > 0: 24-bit (two halves)."""
    n = raw.shape[0]
    npix = out.shape[1]
    per_word = 64 // bits
    for k in range(n):
        for w in range(npix // per_word):
            base = 8 * w
            p = w * per_word
            if half > 0:
                for j in range(4):
                    b = base + 6 - 2 * j
                    hi = (np.uint32(raw[k, b]) << 8) | raw[k, b + 1]
                    lo = (np.uint32(raw[k, half + b]) << 8) | raw[k, half + b + 1]
                    out[k, p + j] = ((hi & 0xFFF) << 12) | (lo & 0xFFF)
            elif bits == 16:
                for j in range(4):
                    b = base + 6 - 2 * j
                    out[k, p + j] = ((np.uint32(raw[k, b]) << 8) | raw[k, b + 1]) & mask
            elif bits == 8:
                for j in range(8):
                    out[k, p + j] = raw[k, base + 7 - j] & mask
            else:
                for byte in range(8):
                    v = raw[k, base + 7 - byte]
                    for i in range(8):
                        out[k, p + 8 * byte + i] = (v >> i) & 1


@lazy_njit(nogil=True, cache=True)
def decode_r64_quad(raw, out, bits, mask, half):
    """2x2 quad raw frames into ``out`` ``(n, 512, 512)``; ``half`` > 0: 24-bit."""
    n = raw.shape[0]
    per_word = 64 // bits
    for k in range(n):
        for w in range(512 * 512 // per_word):
            base = 8 * w
            row, col, step = _quad_pos(w * per_word)
            if half > 0:
                for j in range(4):
                    b = base + 6 - 2 * j
                    hi = (np.uint32(raw[k, b]) << 8) | raw[k, b + 1]
                    lo = (np.uint32(raw[k, half + b]) << 8) | raw[k, half + b + 1]
                    out[k, row, col + step * j] = ((hi & 0xFFF) << 12) | (lo & 0xFFF)
            elif bits == 16:
                for j in range(4):
                    b = base + 6 - 2 * j
                    v = ((np.uint32(raw[k, b]) << 8) | raw[k, b + 1]) & mask
                    out[k, row, col + step * j] = v
            elif bits == 8:
                for j in range(8):
                    out[k, row, col + step * j] = raw[k, base + 7 - j] & mask
            else:
                for byte in range(8):
                    v = raw[k, base + 7 - byte]
                    for i in range(8):
                        out[k, row, col + step * (8 * byte + i)] = (v >> i) & 1


@lazy_njit(nogil=True, cache=True)
def decode_r12_words(words, out):
    """Single-chip 12-bit raw frames given as native ``uint16`` words ``(n, npix)``."""
    n, npix = out.shape
    for k in range(n):
        for g in range(0, npix, 4):
            for j in range(4):
                v = np.uint32(words[k, g + 3 - j])
                out[k, g + j] = ((v & np.uint32(0xF)) << np.uint32(8)) | (v >> np.uint32(8))


@lazy_njit(nogil=True, cache=True)
def decode_swap16(words, out, group):
    """Byte-swapped ``uint16`` words into ``out`` ``(n, npix)``, reversed in groups.

    ``words`` is ``(n, npix)`` ``uint16`` (native order view of the stored bytes);
    ``group`` 1: plain big-endian values; 4: raw 12-bit words (4 pixels per 64 bits).
    """
    n = words.shape[0]
    npix = out.shape[1]
    last = group - 1
    for k in range(n):
        row = words[k]
        dest = out[k]
        for g in range(0, npix, group):
            for j in range(group):
                v = row[g + last - j]
                dest[g + j] = ((v >> 8) | (v << 8)) & 0xFFFF


@lazy_njit(nogil=True, cache=True)
def decode_swap32(words, out):
    """Big-endian ``uint32`` values (given as native ``uint32`` words) into ``out``."""
    n = words.shape[0]
    npix = out.shape[1]
    for k in range(n):
        row = words[k]
        dest = out[k]
        for p in range(npix):
            v = row[p]
            dest[p] = (
                ((v >> 24) & 0xFF) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24)
            ) & 0xFFFFFFFF


@lazy_njit(nogil=True, cache=True)
def _swap16_frames(words, starts, out):
    """``out[i] = byteswap(words[starts[i]:starts[i] + npix])`` for every frame ``i``.

    ``words`` is one contiguous run of ``uint16`` covering all frames (headers between
    them included), so the inner loop runs over contiguous memory and vectorizes.
    """
    npix = out.shape[1]
    for i in range(out.shape[0]):
        src = words[starts[i] : starts[i] + npix]
        dest = out[i]
        for j in range(npix):
            v = src[j]
            dest[j] = ((v >> 8) | (v << 8)) & 0xFFFF


def _frames_contiguous(a: np.ndarray) -> bool:
    """Whether each ``a[i]`` is C-contiguous (frames may be strided apart)."""
    expected = a.itemsize
    for size, stride in zip(reversed(a.shape[1:]), reversed(a.strides[1:])):
        if size > 1 and stride != expected:
            return False
        expected *= size
    return True


def convert_into(out: np.ndarray, src: np.ndarray) -> None:
    """Convert ``src`` into ``out`` (same shape) in one pass, byte-swapping if needed.

    Byte-swapped ``uint16`` frames (e.g. big-endian detector data, possibly with
    headers between frames) go through one compiled kernel call, about twice as
    fast as numpy's casting copy; everything else uses ``numpy.copyto``.
    """
    dtype = src.dtype
    if (
        dtype.kind == "u"
        and dtype.itemsize == 2
        and not dtype.isnative
        and out.dtype.isnative
        and out.dtype.kind in "uif"
        and src.ndim >= 2
        and src.shape[0] > 0
        and out.flags.c_contiguous
        and _frames_contiguous(src)
        and src.strides[0] > 0
        and src.strides[0] % 2 == 0
    ):
        n = src.shape[0]
        npix = out.size // n
        frame_words = src.strides[0] // 2
        span = (n - 1) * frame_words + npix
        words = np.lib.stride_tricks.as_strided(src.view(np.uint16), shape=(span,), strides=(2,))
        starts = np.arange(n, dtype=np.int64) * frame_words
        _swap16_frames(words, starts, out.reshape(n, npix))
        return
    np.copyto(out, src, casting="unsafe")


def _flat_call(kernel, raw, out, *args):
    """Run a kernel writing ``(n, npix)`` on ``out`` ``(n, *sig)``; via a temporary if strided."""
    if out.flags.c_contiguous:
        kernel(raw, out.reshape(out.shape[0], -1), *args)
    else:
        tmp = np.empty(out.shape, dtype=out.dtype)
        kernel(raw, tmp.reshape(out.shape[0], -1), *args)
        out[...] = tmp


def _words(raw: np.ndarray, dtype) -> np.ndarray:
    """``raw`` bytes ``(n, nbytes)`` as native words; a copy only if misaligned."""
    if raw.strides[1] != 1 or raw.ctypes.data % np.dtype(dtype).itemsize:
        raw = np.ascontiguousarray(raw)
    return raw.view(dtype)


R64_BITS = {1: 1, 6: 8, 12: 16, 24: 16}


def get_decoder(name: str, args: tuple = ()) -> Callable[[np.ndarray, np.ndarray], None]:
    """The decoder called ``name``: a function ``(raw, out) -> None``.

    Names: ``'r64'`` (args: counter depth 1, 6, 12 or 24, and whether the frame
    is a 2x2 quad), ``'be-u16'``, ``'be-u32'`` (big-endian values); a name
    ``'package.module:factory'`` is a format's own decoder, ``factory(*args)``.
    """
    if ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)(*args)
    if name == "r64":
        depth, quad = int(args[0]), bool(args[1])
        if depth not in R64_BITS:
            raise DataSetException(f"unsupported counter depth {depth} for raw frames")
        bits = R64_BITS[depth]
        mask = (1 << min(depth, 16)) - 1

        def run(raw, out):
            if depth == 12 and not quad and raw.strides[1] == 1 and raw.ctypes.data % 2 == 0:
                return _flat_call(decode_r12_words, raw.view(np.uint16), out)
            # 24-bit: second 12-bit frame starts half-way in the frame data
            half = raw.shape[1] // 2 if depth == 24 else 0
            if quad:
                decode_r64_quad(raw, out, bits, mask, half)
            else:
                _flat_call(decode_r64_flat, raw, out, bits, mask, half)

        return run
    if name == "be-u16":
        return lambda raw, out: _flat_call(decode_swap16, _words(raw, np.uint16), out, 1)
    if name == "be-u32":
        return lambda raw, out: _flat_call(decode_swap32, _words(raw, np.uint32), out)
    raise DataSetException(f"unknown decoder {name!r}")


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "Decoder": "libertem.io.dataset.base.decoders",
        "DtypeConversionDecoder": "libertem.io.dataset.base.decoders",
        "byteswap_2_decode": "libertem.io.dataset.base.decoders",
        "byteswap_2_straight": "libertem.io.dataset.base.decoders",
        "byteswap_4_decode": "libertem.io.dataset.base.decoders",
        "byteswap_4_straight": "libertem.io.dataset.base.decoders",
        "byteswap_8_decode": "libertem.io.dataset.base.decoders",
        "byteswap_8_straight": "libertem.io.dataset.base.decoders",
        "decode_swap_2": "libertem.io.dataset.base.decoders",
        "decode_swap_4": "libertem.io.dataset.base.decoders",
        "decode_swap_8": "libertem.io.dataset.base.decoders",
        "decode_swap_only_2": "libertem.io.dataset.base.decoders",
        "decode_swap_only_4": "libertem.io.dataset.base.decoders",
        "decode_swap_only_8": "libertem.io.dataset.base.decoders",
        "default_decode": "libertem.io.dataset.base.decoders",
    },
)
