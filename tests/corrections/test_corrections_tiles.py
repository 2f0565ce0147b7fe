"""Corrections applied on the fly in the tile path, for viewable and decoded sources."""

import h5py
import numpy as np
import pytest

from corrections_ref import ref_correct
from libertem.common.shape import Shape
from libertem.corrections import CorrectionSet
from libertem.io.corrections.detector import CorrectError
from libertem.io.dataset.base import TilingRequest, TilingScheme, make_tiling_scheme
from libertem.io.dataset.memory import MemoryDataSet
from libertem.utils.sample_data import write_mib_acquisition

NAV, SIG = (3, 5), (16, 16)
DS_SHAPE = Shape((*NAV, *SIG), sig_dims=2)


def scheme_of(depth, sig_tile):
    return TilingScheme.make_for_shape((depth, *sig_tile), DS_SHAPE)


def frames_and_corrections(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 4000, size=(*NAV, *SIG)).astype(np.uint16)
    dark = (rng.random(SIG) * 50).astype(np.float32)
    gain = (rng.random(SIG) + 0.5).astype(np.float32)
    excluded = np.zeros(SIG, dtype=bool)
    # corners, edges, a pair, and pixels next to the borders of 4x8 tiles
    for pos in [(0, 0), (15, 15), (0, 9), (12, 0), (3, 7), (4, 8), (7, 7), (7, 8), (11, 15)]:
        excluded[pos] = True
    return (
        data,
        CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded),
        (dark, gain, excluded),
    )


def read_all(ds, corrections, scheme, roi=None, dtype=np.float32):
    """All selected frames of ``ds`` from corrected tiles, assembled in flat order."""
    roi_flat = None if roi is None else roi.reshape(-1)
    n = ds.shape.nav.size if roi_flat is None else int(roi_flat.sum())
    out = np.full((n, *SIG), np.nan, dtype=dtype)
    start = 0
    for part in ds.get_partitions():
        part.set_corrections(corrections)
        roi_part = None if roi_flat is None else roi_flat[part.start : part.stop]
        for tile in part.get_tiles(scheme, dtype, roi_part):
            assert tile.data.dtype == dtype and tile.data.flags.writeable
            index = tile.slice.get()
            index = (slice(start + index[0].start, start + index[0].stop), *index[1:])
            out[index] = tile.data
        start += part.stop - part.start if roi_part is None else int(roi_part.sum())
    return out


def make_memory(tmp_path, data):
    return MemoryDataSet(data=data, num_partitions=2)


def make_raw(backend):
    def make(tmp_path, data, inline_ctx):
        path = tmp_path / "d.raw"
        data.tofile(path)
        return inline_ctx.load(
            "raw",
            path=str(path),
            nav_shape=NAV,
            sig_shape=SIG,
            dtype=data.dtype,
            io_backend=backend,
            num_partitions=2,
        )

    return make


def make_hdf5(tmp_path, data, inline_ctx):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data, chunks=(1, 2, 8, 16), compression="gzip")
    return inline_ctx.load("hdf5", path=str(path), ds_path="data", num_partitions=2)


def make_mib(depth):
    def make(tmp_path, data, inline_ctx):
        values = data % 4096 if depth == "R64" else data
        hdr = write_mib_acquisition(tmp_path / "d", values, pixel_depth=depth)
        return inline_ctx.load("mib", path=hdr, num_partitions=2)

    return make


SOURCES = {
    "memory": lambda tmp_path, data, ctx: make_memory(tmp_path, data),
    "raw-mmap": make_raw("mmap"),
    "raw-buffered": make_raw("buffered"),
    "hdf5-gzip": make_hdf5,
    "mib-U16": make_mib("U16"),
    "mib-R64": make_mib("R64"),
}


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("with_roi", [False, True])
def test_corrected_tiles(tmp_path, inline_ctx, source, with_roi):
    data, cs, (dark, gain, excluded) = frames_and_corrections()
    if source == "mib-R64":
        data = data % 4096
    ds = SOURCES[source](tmp_path, data, inline_ctx)
    tile = cs.adjust_tileshape((4, 8), SIG, (1, 1))
    scheme = scheme_of(3, tile)
    roi = None
    flat = data.reshape((-1, *SIG))
    if with_roi:
        roi = np.random.default_rng(4).random(NAV) > 0.4
        flat = flat[roi.reshape(-1)]
    got = read_all(ds, cs, scheme, roi)
    ref = ref_correct(flat, dark, gain, excluded)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-2)
    # the data itself is unchanged: a second read without corrections is raw
    raw = read_all(ds, None, scheme, roi)
    np.testing.assert_array_equal(raw, flat.astype(np.float32))


def test_memory_views_stay_untouched(inline_ctx):
    data, cs, _ = frames_and_corrections()
    frames = data.astype(np.float32)
    ds = MemoryDataSet(data=frames.copy(), num_partitions=1)
    scheme = scheme_of(15, SIG)
    part = list(ds.get_partitions())[0]
    plain = next(iter(part.get_tiles(scheme, np.float32)))
    assert np.shares_memory(plain.data, part.open_frames())  # no corrections: views
    read_all(ds, cs, scheme)
    np.testing.assert_array_equal(part.open_frames(), frames.reshape((-1, *SIG)))


def test_make_tiling_scheme_adjusts_and_checks():
    _, cs, _ = frames_and_corrections()
    request = TilingRequest(total_size=4 * 8 * 4 * 2)
    plain = make_tiling_scheme(request, SIG, (1, 1), 4, 100)
    adjusted = make_tiling_scheme(request, SIG, (1, 1), 4, 100, corrections=cs)
    assert adjusted.sig_tile_shape == cs.adjust_tileshape(plain.sig_tile_shape, SIG, (1, 1))
    assert adjusted.sig_tile_shape != plain.sig_tile_shape
    with pytest.raises(CorrectError, match="signal shape is"):
        make_tiling_scheme(request, (8, 8), (1, 1), 4, 100, corrections=cs)
    whole = TilingRequest(whole_partition=True)
    with pytest.raises(CorrectError, match="signal shape is"):
        make_tiling_scheme(whole, (8, 8), (1, 1), 4, 100, corrections=cs)


def test_integer_tiles_refused(inline_ctx):
    data, cs, _ = frames_and_corrections()
    part = list(MemoryDataSet(data=data, num_partitions=1).get_partitions())[0]
    part.set_corrections(cs)
    with pytest.raises(TypeError, match="float dest_dtype"):
        next(iter(part.get_tiles(scheme_of(2, SIG), np.uint16)))
    part.set_corrections(CorrectionSet())  # empty: nothing to do, native dtype is fine
    tile = next(iter(part.get_tiles(scheme_of(2, SIG), np.uint16)))
    np.testing.assert_array_equal(tile.data, data.reshape((-1, *SIG))[:2])
