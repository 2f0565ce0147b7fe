"""Compiled kernels of the streaming sums, each with its NumPy twin (same values, bit
for bit; see :class:`~libertem.common.lazyjit.KernelWithTwin`).

:data:`add_frame_sums_f32`, :data:`add_frame_sums_f64`
    ``out += tile.sum(axis=0)`` for :class:`~libertem.udf.sum.SumUDF`: per pixel, the
    tile's frames are added up one after the other in ``out``'s dtype, then added to
    ``out``. The kernel reads the tile once, in blocks of :data:`SUM_BLOCK` pixels
    whose partial sums stay in the L1 cache; NumPy's reduction converts the integer
    frames through a buffer and moves the accumulator through the caches for each
    frame.
:data:`add_exact_frame_sums_f32`, :data:`add_exact_frame_sums_f64`
    The same for integer tiles whose sums the output dtype holds exactly
    (:data:`add_swapped_frame_sums_f32` and ``_f64`` for big-endian uint16, whose
    bytes they swap as they read them): the frames
    are added up in groups of :func:`exact_group` frames in an integer accumulator
    (exact, so in any order: four frames at a time, each frame read once), and each
    group's sum is added to ``out``. Where a tile has no more frames than a group,
    this is bit for bit what the frame-by-frame float sums give (all partial sums are
    exact); the integer adds vectorize twice as wide and convert once per group.
:data:`add_row_sums`
    ``out += tile.sum(axis=1)`` for :class:`~libertem.udf.sumsigudf.SumSigUDF` on
    integer tiles of up to 32 bits, added up exactly in int64 (in any order).
"""

from __future__ import annotations

import threading

import numpy as np

from libertem.common.lazyjit import KernelWithTwin, lazy_njit

#: pixels per block of the frame sums: 1024 partial sums (4 or 8 KiB)
SUM_BLOCK = 1024

#: tile dtypes the kernels take: native-order integers and floats
FRAME_SUM_TILE_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
    )
)
#: dtypes of the sums that the frame sums add up in
FRAME_SUM_OUT_DTYPES = frozenset(np.dtype(t) for t in ("float32", "float64"))
#: tile dtypes whose values float32 holds exactly (NumPy adds them to float32 in float32)
FLOAT32_EXACT_DTYPES = frozenset(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "float32")
)
#: integer tiles that :data:`add_row_sums` adds up exactly in int64
ROW_SUM_TILE_DTYPES = frozenset(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32")
)


def _make_frame_sums(cast):
    """The kernel of :data:`add_frame_sums` for sums of the type ``cast`` (adding in
    that type: NumPy would add uint16 to float32 in float32, numba in float64)."""

    @lazy_njit(nogil=True, cache=True)
    def add_frame_sums(flat, out, acc):
        n_pixels = flat.shape[1]
        block = acc.shape[0]
        for start in range(0, n_pixels, block):
            out_block = out[start : start + block]
            m = out_block.shape[0]
            first = flat[0, start : start + block]
            for p in range(m):
                acc[p] = cast(first[p])
            for i in range(1, flat.shape[0]):
                row = flat[i, start : start + block]
                for p in range(m):
                    acc[p] += cast(row[p])
            for p in range(m):
                out_block[p] += acc[p]

    return add_frame_sums


_add_frame_sums_f32 = _make_frame_sums(np.float32)
_add_frame_sums_f64 = _make_frame_sums(np.float64)


def _add_frame_sums_twin(flat, out, acc):
    """``out += flat.sum(axis=0)``: the frames added up one after the other in the dtype
    of ``out``, then added to ``out``.

    Parameters
    ----------
    flat
        The tile as ``(frames, pixels)``, at least one frame.
    out
        Contiguous ``(pixels,)`` sums, float32 or float64.
    acc
        Scratch space of ``out``'s dtype (its length is the kernel's block size).
    """
    total = flat[0].astype(out.dtype)
    for i in range(1, flat.shape[0]):
        np.add(total, flat[i], out=total, casting="unsafe")
    out += total


#: ``out += tile.sum(axis=0)`` into float32 sums, for tiles that float32 holds exactly
add_frame_sums_f32 = KernelWithTwin(_add_frame_sums_f32, _add_frame_sums_twin)
#: ``out += tile.sum(axis=0)`` into float64 sums
add_frame_sums_f64 = KernelWithTwin(_add_frame_sums_f64, _add_frame_sums_twin)


#: integer tiles with exact frame sums in groups (:func:`exact_group`)
EXACT_SUM_TILE_DTYPES = frozenset(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32")
)
#: pixels per block of the exact frame sums: the accumulator (at most 256 KiB) stays
#: in the L2 cache while whole rows of frames stream past it
EXACT_SUM_BLOCK = 64 * 1024


def exact_group(tile_dtype, out_dtype) -> int:
    """Frames per group of the exact frame sums: no sum of that many frames of
    ``tile_dtype`` exceeds what ``out_dtype`` holds exactly (2**24 in float32, 2**53 in
    float64), nor the accumulator's range (int32 for float32 sums, int64 else)."""
    info = np.iinfo(tile_dtype)
    largest = max(-int(info.min), int(info.max))
    limit = 2**24 if np.dtype(out_dtype) == np.float32 else 2**53
    return max(1, limit // largest)


def exact_accumulator_dtype(out_dtype) -> np.dtype:
    """The accumulator of the exact frame sums into ``out_dtype``."""
    return np.dtype(np.int32 if np.dtype(out_dtype) == np.float32 else np.int64)


@lazy_njit(nogil=True, cache=True, inline="always")
def _as_stored(value):
    return value


@lazy_njit(nogil=True, cache=True, inline="always")
def _byte_swapped16(value):
    return (value >> 8) | ((value & 0xFF) << 8)


def _make_exact_frame_sums(cast, read=_as_stored):
    """The kernel of :data:`add_exact_frame_sums` for sums of the type ``cast``, each
    value of the tile passed through ``read`` (as stored, or byte-swapped)."""

    @lazy_njit(nogil=True, cache=True)
    def add_exact_frame_sums(data, n, stride, out, acc, group):
        n_pixels = out.shape[0]
        block = acc.shape[0]
        for start in range(0, n_pixels, block):
            m = min(block, n_pixels - start)
            stop_px = start + m
            g = 0
            while g < n:
                stop = min(n, g + group)
                for p in range(m):
                    acc[p] = 0
                f = g
                while f + 4 <= stop:
                    r0 = data[f * stride + start : f * stride + stop_px]
                    r1 = data[(f + 1) * stride + start : (f + 1) * stride + stop_px]
                    r2 = data[(f + 2) * stride + start : (f + 2) * stride + stop_px]
                    r3 = data[(f + 3) * stride + start : (f + 3) * stride + stop_px]
                    for p in range(m):
                        acc[p] += (read(r0[p]) + read(r1[p])) + (read(r2[p]) + read(r3[p]))
                    f += 4
                while f < stop:
                    r0 = data[f * stride + start : f * stride + stop_px]
                    for p in range(m):
                        acc[p] += read(r0[p])
                    f += 1
                for p in range(m):
                    out[start + p] += cast(acc[p])
                g = stop

    return add_exact_frame_sums


def frame_rows(tile: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """The tile as the kernels of the exact sums take it: ``(data, n, stride)``, a
    one-dimensional view from the first pixel of the first frame to the last pixel of
    the last, in which frame ``i`` starts at ``i * stride``; ``None`` where the frames
    are not evenly spaced in whole elements. A contiguous view lets the compiled loops
    use vector loads also where frames are apart (Merlin's headers between frames)."""
    flat = tile.reshape((tile.shape[0], -1))
    n, n_pixels = flat.shape
    item = flat.itemsize
    if n_pixels > 1 and flat.strides[1] != item:
        return None
    stride = flat.strides[0] if n > 1 else n_pixels * item
    if stride < n_pixels * item or stride % item:
        return None
    stride //= item
    length = (n - 1) * stride + n_pixels
    data = np.lib.stride_tricks.as_strided(flat, (length,), (item,), writeable=False)
    return data, n, stride


def _rows_as_frames(data, n, stride, n_pixels) -> np.ndarray:
    """The ``(n, n_pixels)`` frames of :func:`frame_rows`' ``data``."""
    item = data.itemsize
    return np.lib.stride_tricks.as_strided(
        data, (n, n_pixels), (stride * item, item), writeable=False
    )


def _add_exact_frame_sums_twin(data, n, stride, out, acc, group):
    """:func:`_add_exact_frame_sums_frames` of the frames in ``data`` (see
    :func:`frame_rows`)."""
    _add_exact_frame_sums_frames(_rows_as_frames(data, n, stride, out.shape[0]), out, acc, group)


def _add_exact_frame_sums_frames(flat, out, acc, group):
    """``out += flat.sum(axis=0)``: the frames added up exactly in groups of ``group``
    (in ``acc``'s integer dtype), each group's sum converted to ``out``'s dtype (exactly)
    and added to ``out``, group after group.

    Parameters
    ----------
    flat
        The integer tile as ``(frames, pixels)``.
    out
        Contiguous ``(pixels,)`` sums, float32 or float64.
    acc
        Scratch space; its dtype is the accumulator's (see
        :func:`exact_accumulator_dtype`), its length the kernel's block size.
    group
        Frames per group (see :func:`exact_group`).
    """
    for g in range(0, flat.shape[0], group):
        out += flat[g : g + group].sum(axis=0, dtype=acc.dtype).astype(out.dtype)


#: ``out += tile.sum(axis=0)`` of integer tiles into float32 sums, exact per group
add_exact_frame_sums_f32 = KernelWithTwin(
    _make_exact_frame_sums(np.float32), _add_exact_frame_sums_twin
)
#: ``out += tile.sum(axis=0)`` of integer tiles into float64 sums, exact per group
add_exact_frame_sums_f64 = KernelWithTwin(
    _make_exact_frame_sums(np.float64), _add_exact_frame_sums_twin
)

#: uint16 in the other byte order (Merlin's big-endian frames): summed exactly, the bytes
#: swapped in the kernel as it reads them (no swap pass over the tile)
SWAPPED_UINT16 = np.dtype(np.uint16).newbyteorder("S")


def _add_swapped_frame_sums_twin(data, n, stride, out, acc, group):
    """:func:`_add_exact_frame_sums_twin` of the byte-swapped values of the native
    uint16 ``data`` (the bytes of a tile of :data:`SWAPPED_UINT16`)."""
    frames = _rows_as_frames(data, n, stride, out.shape[0])
    _add_exact_frame_sums_frames(frames.view(SWAPPED_UINT16), out, acc, group)


#: ``out += tile.sum(axis=0)`` of byte-swapped uint16 tiles into float32 sums
add_swapped_frame_sums_f32 = KernelWithTwin(
    _make_exact_frame_sums(np.float32, _byte_swapped16), _add_swapped_frame_sums_twin
)
#: ``out += tile.sum(axis=0)`` of byte-swapped uint16 tiles into float64 sums
add_swapped_frame_sums_f64 = KernelWithTwin(
    _make_exact_frame_sums(np.float64, _byte_swapped16), _add_swapped_frame_sums_twin
)

_scratch = threading.local()


def _accumulator(dtype: np.dtype, n_pixels: int) -> np.ndarray:
    """This thread's scratch accumulator (reused: a fresh 256 KiB array per tile would
    cost page faults)."""
    size = min(n_pixels, EXACT_SUM_BLOCK)
    key = (dtype, size)
    cache = getattr(_scratch, "arrays", None)
    if cache is None:
        cache = _scratch.arrays = {}
    acc = cache.get(key)
    if acc is None:
        acc = cache[key] = np.empty(size, dtype=dtype)
    return acc


@lazy_njit(nogil=True, fastmath=True, cache=True)
def _add_row_sums(flat, out):
    for i in range(flat.shape[0]):
        acc = np.int64(0)
        row = flat[i]
        for j in range(row.shape[0]):
            acc += row[j]
        out[i] += acc


def _add_row_sums_twin(flat, out):
    """``out[i] += sum(flat[i])``, the sums taken exactly in int64 (integer tiles of up
    to 32 bits: 2**31 pixels of 2**32 cannot overflow) and then added to ``out``."""
    out += flat.sum(axis=1, dtype=np.int64)


add_row_sums = KernelWithTwin(_add_row_sums, _add_row_sums_twin)


def _plain(a) -> bool:
    """A NumPy array (memory maps too), not a ``numpy.matrix``."""
    return isinstance(a, np.ndarray) and not isinstance(a, np.matrix)


def frames_contiguous(tile: np.ndarray) -> bool:
    """Whether each frame of ``tile`` (``(frames, *signal)``) is contiguous in memory."""
    if tile.flags.c_contiguous:
        return True
    expected = tile.itemsize
    for size, stride in zip(reversed(tile.shape[1:]), reversed(tile.strides[1:])):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def frame_sums_apply(tile, out) -> bool:
    """Whether :func:`add_tile_frame_sums` takes ``tile`` and ``out``: NumPy arrays of
    the dtypes above, ``out`` contiguous, at least one frame, each frame contiguous."""
    if not (_plain(tile) and _plain(out)):
        return False
    if out.dtype == np.float32:
        dtypes = FLOAT32_EXACT_DTYPES
    elif out.dtype == np.float64:
        dtypes = FRAME_SUM_TILE_DTYPES
    else:
        return False
    return (
        (tile.dtype in dtypes or tile.dtype == SWAPPED_UINT16)
        and out.flags.c_contiguous
        and tile.ndim >= 2
        and tile.shape[0] > 0
        and frames_contiguous(tile)
    )


def add_tile_frame_sums(tile: np.ndarray, out: np.ndarray) -> None:
    """``out += tile.sum(axis=0)`` with :data:`add_exact_frame_sums_f32` (and ``_f64``)
    for integer tiles, else :data:`add_frame_sums_f32` (and ``_f64``); see
    :func:`frame_sums_apply`."""
    flat = tile.reshape((tile.shape[0], -1))
    f32 = out.dtype == np.float32
    swapped = tile.dtype == SWAPPED_UINT16
    rows = frame_rows(tile) if swapped or tile.dtype in EXACT_SUM_TILE_DTYPES else None
    if rows is not None:
        data, n, stride = rows
        acc = _accumulator(exact_accumulator_dtype(out.dtype), flat.shape[1])
        if swapped:
            group = exact_group(np.uint16, out.dtype)
            kernel = add_swapped_frame_sums_f32 if f32 else add_swapped_frame_sums_f64
            data = data.view(np.uint16)
        else:
            group = exact_group(tile.dtype, out.dtype)
            kernel = add_exact_frame_sums_f32 if f32 else add_exact_frame_sums_f64
        kernel(data, n, stride, out.reshape(-1), acc, group)
        return
    if swapped:  # frames not evenly spaced in whole elements
        flat = flat.astype(np.uint16)
    acc = np.empty(SUM_BLOCK, dtype=out.dtype)
    kernel = add_frame_sums_f32 if out.dtype == np.float32 else add_frame_sums_f64
    kernel(flat, out.reshape(-1), acc)


__all__ = [
    "EXACT_SUM_BLOCK",
    "EXACT_SUM_TILE_DTYPES",
    "FRAME_SUM_OUT_DTYPES",
    "SWAPPED_UINT16",
    "FRAME_SUM_TILE_DTYPES",
    "ROW_SUM_TILE_DTYPES",
    "SUM_BLOCK",
    "add_exact_frame_sums_f32",
    "add_exact_frame_sums_f64",
    "add_frame_sums_f32",
    "add_frame_sums_f64",
    "add_swapped_frame_sums_f32",
    "add_swapped_frame_sums_f64",
    "add_row_sums",
    "add_tile_frame_sums",
    "exact_accumulator_dtype",
    "exact_group",
    "frame_rows",
    "frame_sums_apply",
    "frames_contiguous",
]
