"""Read ranges: which bytes of which file make up each tile of a partition.

Formats whose frames are fixed-size records describe them with a
:class:`~libertem.io.dataset.base.fileset.FileSet`; its ``get_read_ranges`` computes,
once per partition, for every tile and every frame of the tile, one byte range
``(file index, start, stop)``. A decode function (see
:class:`~libertem.io.dataset.base.decoders.Decoder`) turns the bytes of one range
into one frame's part of the tile.

The computation is compiled with numba and made of two pluggable parts, so that a
format with an unusual layout replaces only what differs
(:func:`make_get_read_ranges`):

``px_to_bytes(bpp, frame_in_file, slice_origin, slice_shape, sig_shape, file_header,
frame_header, frame_footer, extra) -> (start, stop)``
    Byte range of one signal slice of one frame in its file; ``bpp`` is the number
    of bits per stored pixel.
``read_ranges_tile_block(file_frames, slices_arr, fileset_arr, sig_shape, bpp,
frame_header, frame_footer, extra, px_to_bytes, out)``
    Fills ``out[slice, k]`` with the range of each slice of file frame
    ``file_frames[k]`` (``-1``: a frame outside the files, read as zeros).
"""

from __future__ import annotations

import sys

import numpy as np

from libertem.common.lazyjit import lazy_njit

_this = sys.modules[__name__]


@lazy_njit(nogil=True, cache=True)
def _default_px_to_bytes(
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
    stride = frame_header + frame_bytes + frame_footer
    start_px = 0
    step = 1
    n_px = 1
    for i in range(len(sig_shape) - 1, -1, -1):
        start_px += slice_origin[i] * step
        step *= sig_shape[i]
        n_px *= slice_shape[i]
    base = file_header + frame_in_file * stride + frame_header
    return base + start_px * bpp // 8, base + (start_px + n_px) * bpp // 8


@lazy_njit(nogil=True, cache=True)
def _find_file(fileset_arr, frame):
    lo = 0
    hi = fileset_arr.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if frame < fileset_arr[mid, 0]:
            hi = mid
        elif frame >= fileset_arr[mid, 1]:
            lo = mid + 1
        else:
            return mid
    return -1


@lazy_njit(nogil=True, cache=True)
def _file_of(fileset_arr, f, frame_header, frame_footer):
    """Index, frame header and footer bytes of the file holding file frame ``f`` (-1: none)."""
    fi = -1 if f < 0 else _find_file(fileset_arr, f)
    if fi < 0:
        return -1, 0, 0
    header = frame_header if frame_header > 0 else fileset_arr[fi, 3]
    footer = frame_footer if frame_footer > 0 else fileset_arr[fi, 4]
    return fi, header, footer


@lazy_njit(nogil=True, cache=True)
def _store(out, s, k, fi, start, stop):
    out[s, k, 0] = fi
    out[s, k, 1] = start if fi >= 0 else 0
    out[s, k, 2] = stop if fi >= 0 else 0


@lazy_njit(nogil=True, cache=True)
def _default_read_ranges_tile_block(
    file_frames,
    slices_arr,
    fileset_arr,
    sig_shape,
    bpp,
    frame_header,
    frame_footer,
    extra,
    px_to_bytes,
    out,
):
    for k in range(file_frames.shape[0]):
        f = file_frames[k]
        fi, header, footer = _file_of(fileset_arr, f, frame_header, frame_footer)
        for s in range(slices_arr.shape[0]):
            start, stop = 0, 0
            if fi >= 0:
                start, stop = px_to_bytes(
                    bpp,
                    f - fileset_arr[fi, 0],
                    slices_arr[s, 0],
                    slices_arr[s, 1],
                    sig_shape,
                    fileset_arr[fi, 2],
                    header,
                    footer,
                    extra,
                )
            _store(out, s, k, fi, start, stop)


@lazy_njit(nogil=True, cache=True)
def _alloc(n, depth, slices_arr):
    """The results for ``n`` frames in tiles of ``depth``, and the per-block work arrays."""
    n_blocks = (n + depth - 1) // depth
    n_tiles = n_blocks * slices_arr.shape[0]
    sig_dims = slices_arr.shape[2]
    tile_slices = np.zeros((n_tiles, 2, 1 + sig_dims), dtype=np.int64)
    ranges = np.full((n_tiles, depth, 3), -1, dtype=np.int64)
    scheme_indices = np.zeros(n_tiles, dtype=np.int64)
    block = np.empty((slices_arr.shape[0], depth, 3), dtype=np.int64)
    file_frames = np.empty(depth, dtype=np.int64)
    return n_blocks, tile_slices, ranges, scheme_indices, block, file_frames


@lazy_njit(nogil=True, cache=True)
def _block_frames(frames, b, depth, sync_offset, file_frames):
    lo = b * depth
    m = min(frames.shape[0], lo + depth) - lo
    for k in range(m):
        file_frames[k] = frames[lo + k] + sync_offset
    return lo, m


@lazy_njit(nogil=True, cache=True)
def _store_block(b, lo, m, block, start_at_frame, slices_arr, tile_slices, ranges, indices):
    n_slices = slices_arr.shape[0]
    for s in range(n_slices):
        t = b * n_slices + s
        tile_slices[t, 0, 0] = start_at_frame + lo
        tile_slices[t, 1, 0] = m
        for d in range(slices_arr.shape[2]):
            tile_slices[t, 0, 1 + d] = slices_arr[s, 0, d]
            tile_slices[t, 1, 1 + d] = slices_arr[s, 1, d]
        ranges[t, :m] = block[s, :m]
        indices[t] = s


@lazy_njit(nogil=True)
def _get_read_ranges_impl(
    px_to_bytes,
    read_ranges_tile_block,
    frames,
    start_at_frame,
    depth,
    slices_arr,
    fileset_arr,
    sig_shape,
    bpp,
    sync_offset,
    extra,
    frame_header_bytes,
    frame_footer_bytes,
):
    n_blocks, tile_slices, ranges, indices, block, file_frames = _alloc(
        frames.shape[0], depth, slices_arr
    )
    for b in range(n_blocks):
        lo, m = _block_frames(frames, b, depth, sync_offset, file_frames)
        read_ranges_tile_block(
            file_frames[:m],
            slices_arr,
            fileset_arr,
            sig_shape,
            bpp,
            frame_header_bytes,
            frame_footer_bytes,
            extra,
            px_to_bytes,
            block,
        )
        _store_block(b, lo, m, block, start_at_frame, slices_arr, tile_slices, ranges, indices)
    return tile_slices, ranges, indices


@lazy_njit(nogil=True, cache=True)
def _default_impl(
    frames,
    start_at_frame,
    depth,
    slices_arr,
    fileset_arr,
    sig_shape,
    bpp,
    sync_offset,
    extra,
    frame_header_bytes,
    frame_footer_bytes,
):
    """:func:`_get_read_ranges_impl` with the default parts, compiled once and cached.

    The parts are named through the module (``_this``): numba does not cache code that
    passes on compiled functions it found as plain globals.
    """
    return _get_read_ranges_impl(
        _this._default_px_to_bytes,
        _this._default_read_ranges_tile_block,
        frames,
        start_at_frame,
        depth,
        slices_arr,
        fileset_arr,
        sig_shape,
        bpp,
        sync_offset,
        extra,
        frame_header_bytes,
        frame_footer_bytes,
    )


def make_get_read_ranges(
    px_to_bytes=_default_px_to_bytes, read_ranges_tile_block=_default_read_ranges_tile_block
):
    """A read range function built from the two compiled parts (see the module docs).

    The function returned has the signature of :func:`default_get_read_ranges`.
    """

    if (px_to_bytes, read_ranges_tile_block) == (
        _default_px_to_bytes,
        _default_read_ranges_tile_block,
    ):
        impl = _default_impl
    else:

        def impl(*args):
            return _get_read_ranges_impl(px_to_bytes, read_ranges_tile_block, *args)

    def get_read_ranges(
        start_at_frame,
        stop_before_frame,
        roi_nonzero,
        depth,
        slices_arr,
        fileset_arr,
        sig_shape,
        bpp,
        sync_offset=0,
        extra=None,
        frame_header_bytes=0,
        frame_footer_bytes=0,
    ):
        if roi_nonzero is None:
            frames = np.arange(int(start_at_frame), int(stop_before_frame), dtype=np.int64)
        else:
            frames = np.asarray(roi_nonzero, dtype=np.int64)
        return impl(
            frames,
            int(start_at_frame),
            max(1, int(depth)),
            np.asarray(slices_arr, dtype=np.int64),
            np.asarray(fileset_arr, dtype=np.int64),
            tuple(int(s) for s in sig_shape),
            int(bpp),
            int(sync_offset),
            extra,
            int(frame_header_bytes),
            int(frame_footer_bytes),
        )

    get_read_ranges.__doc__ = _READ_RANGES_DOC
    return get_read_ranges


_READ_RANGES_DOC = """Read ranges of the tiles of frames stored as fixed-size records.

Parameters
----------
start_at_frame, stop_before_frame
    Dataset frames of the partition.
roi_nonzero
    Sorted selected dataset frames in that range, or ``None`` for all.
depth
    Frames per tile.
slices_arr
    The tiling scheme's ``slices_array``.
fileset_arr
    ``FileSet.get_as_arr()``.
sig_shape
    Shape of a frame.
bpp
    Bits per stored pixel.
sync_offset
    Dataset frame ``i`` is file frame ``i + sync_offset``.
extra
    Format-specific, passed to ``px_to_bytes``.
frame_header_bytes, frame_footer_bytes
    Set-wide overrides of the files' per-frame header and footer sizes (0: per file).

Returns
-------
tile_slices, ranges, scheme_indices
    Per tile: its slice as ``[origin, shape]`` rows (frame axis first, counted from
    ``start_at_frame`` among the selected frames); ``depth`` rows of
    ``(file index, start byte, stop byte)``, one per frame (file index ``-1``: a frame
    outside the files, read as zeros, or no frame); and its index in the tiling scheme.
"""

default_get_read_ranges = make_get_read_ranges()


def check_contiguous_slices(slices_arr: np.ndarray, sig_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless every signal slice is one run of bytes in a frame."""
    for origin, shape in slices_arr:
        partial = False
        for axis in range(len(sig_shape) - 1, -1, -1):
            if partial and shape[axis] > 1:
                raise ValueError(
                    f"tile slice at {tuple(origin)} of shape {tuple(shape)} is not contiguous "
                    f"in frames of {sig_shape}: tiles must hold whole rows"
                )
            if shape[axis] != sig_shape[axis]:
                partial = True


def compute_read_ranges(
    fileset,
    start_at_frame: int,
    stop_before_frame: int,
    bpp: int,
    tiling_scheme,
    sync_offset: int,
    roi,
    fn,
    extra=None,
):
    """Call a read range function ``fn`` with the arrays of ``fileset`` and ``tiling_scheme``.

    ``roi`` is a flat mask of the whole dataset (or of just these frames), or ``None``.
    """
    sig_shape = tuple(int(s) for s in tiling_scheme.dataset_shape.sig)
    slices_arr = tiling_scheme.slices_array
    if fn is default_get_read_ranges:
        check_contiguous_slices(slices_arr, sig_shape)
    roi_nonzero = None
    if roi is not None:
        roi = np.asarray(roi, dtype=bool).reshape(-1)
        if roi.size == stop_before_frame - start_at_frame:
            roi_nonzero = np.flatnonzero(roi).astype(np.int64) + start_at_frame
        else:
            roi_nonzero = np.flatnonzero(roi[start_at_frame:stop_before_frame]).astype(np.int64)
            roi_nonzero += start_at_frame
    depth = max(1, min(int(tiling_scheme.depth), max(1, stop_before_frame - start_at_frame)))
    return fn(
        int(start_at_frame),
        int(stop_before_frame),
        roi_nonzero,
        depth,
        slices_arr,
        fileset.get_as_arr(),
        sig_shape,
        int(bpp),
        int(sync_offset),
        extra,
        int(fileset.frame_header_bytes),
        int(fileset.frame_footer_bytes),
    )


__all__ = [
    "check_contiguous_slices",
    "compute_read_ranges",
    "default_get_read_ranges",
    "make_get_read_ranges",
]
