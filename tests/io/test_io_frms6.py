"""PNDetector FRMS6 datasets: unfolding, binning, dark frame and gain map corrections,
read ranges and decoders, errors."""

import csv
import os

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.tiling import TilingScheme
from libertem.io.dataset.frms6 import (
    FRMS6DataSet,
    FRMS6Decoder,
    GainMapCSVDialect,
    decode_frms6_b1,
    decode_frms6_b2,
    decode_frms6_b4,
    get_filenames,
)
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi
from writers_dm_ser_seq import check_dataset, shifted
from writers_frms6 import random_stored, unfold, write_file, write_frms6, write_gain_csv, write_hdr


def _acq(folder, binning=1, height=6, width=20, **kwargs):
    dark = random_stored(5, height, width, seed=1, hi=50)
    signal = [random_stored(4, height, width, seed=2), random_stored(2, height, width, seed=3)]
    hdr = write_frms6(folder, dark, signal, binning=binning, scan=(2, 3), **kwargs)
    frames = unfold(np.concatenate(signal), binning)
    dark_mean = (unfold(dark, binning).astype(np.float64).sum(axis=0) / 5).astype(np.float32)
    return hdr, frames, dark_mean


@pytest.fixture(scope="module", params=[1, 2, 4])
def acq(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"frms6_b{request.param}")
    return (request.param, *_acq(folder, request.param))


def _check_float(ctx, ds, ref, roi=None):
    """Pick, Sum and SumSig of ``ds`` against the float reference ``ref`` (dataset shape)."""
    nav = tuple(ds.shape.nav)
    full = np.ones(nav, dtype=bool)
    picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=full if roi is None else roi)
    sel = ref.reshape((-1, *ds.shape.sig)) if roi is None else ref[roi]
    assert picked["intensity"].raw_data.dtype == ds.dtype
    np.testing.assert_allclose(picked["intensity"].raw_data, sel, rtol=1e-6, atol=1e-4)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
    np.testing.assert_allclose(res[0]["intensity"].data, sel.sum(axis=0), rtol=1e-5, atol=1e-3)
    sums = ref.astype(np.float64).sum(axis=(-1, -2))
    got = res[1]["intensity"].data
    mask = np.ones(nav, bool) if roi is None else roi
    np.testing.assert_allclose(got[mask], sums[mask], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("io_backend", ["mmap", "buffered"])
@pytest.mark.parametrize("with_roi", [False, True])
def test_frms6_dark_corrected(ctx, acq, io_backend, with_roi):
    binning, hdr, frames, dark = acq
    ds = ctx.load("frms6", path=hdr, io_backend=io_backend)
    assert tuple(ds.shape) == (2, 3, 12 * binning, 10)
    assert ds.dtype == np.float32
    ref = (frames.astype(np.float32) - dark).reshape(2, 3, 12 * binning, 10)
    _check_float(ctx, ds, ref, make_roi((2, 3), seed=2) if with_roi else None)


@pytest.mark.parametrize("with_roi", [False, True])
def test_frms6_raw_values(ctx, acq, with_roi):
    binning, hdr, frames, dark = acq
    ds = ctx.load("frms6", path=hdr, enable_offset_correction=False)
    assert ds.dtype == np.uint16
    assert not ds.get_correction_data().have_corrections()
    roi = make_roi((2, 3), seed=3) if with_roi else None
    check_dataset(ctx, ds, frames.reshape(2, 3, 12 * binning, 10), roi=roi)


def test_frms6_gain_map(ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    gain = np.random.default_rng(9).uniform(0.5, 2, size=(12, 10)).astype(np.float32)
    gain_path = write_gain_csv(tmp_path / "gain.csv", gain)
    ds = ctx.load("frms6", path=hdr, gain_map_path=gain_path)
    corr = ds.get_correction_data()
    np.testing.assert_allclose(corr.get_dark_frame(), dark)
    np.testing.assert_allclose(corr.get_gain_map(), gain)
    ref = ((frames.astype(np.float32) - dark) * gain).reshape(2, 3, 12, 10)
    _check_float(ctx, ds, ref, make_roi((2, 3), seed=5))
    # gain only
    ds = ctx.load("frms6", path=hdr, gain_map_path=gain_path, enable_offset_correction=False)
    assert ds.dtype == np.float32
    _check_float(ctx, ds, (frames * gain).reshape(2, 3, 12, 10))


def test_frms6_detector_geometry(inline_ctx, tmp_path):
    """The pnCCD's 264 x 264 frames from 132 x 528 stored frames."""
    dark = random_stored(2, 132, 528, seed=4, hi=20)
    signal = [random_stored(3, 132, 528, seed=5)]
    hdr = write_frms6(tmp_path, dark, signal)
    ds = inline_ctx.load("frms6", path=hdr, nav_shape=(3,), dest_dtype=np.float64)
    assert tuple(ds.shape) == (3, 264, 264)
    assert ds.dtype == np.float64
    ref = unfold(signal[0]) - unfold(dark).mean(axis=0, dtype=np.float64).astype(np.float32)
    _check_float(inline_ctx, ds, ref)
    # the bottom half is the stored right half rotated by 180 degrees
    np.testing.assert_array_equal(unfold(signal[0])[:, 263, 263], signal[0][:, 0, 264])


def test_frms6_shapes_and_sync_offset(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    ds = inline_ctx.load(
        "frms6", path=hdr, enable_offset_correction=False, nav_shape=(3, 2), sig_shape=(120,)
    )
    assert tuple(ds.shape) == (3, 2, 120)
    check_dataset(inline_ctx, ds, frames.reshape(3, 2, 120))
    for offset in (2, -1):
        ds = inline_ctx.load("frms6", path=hdr, enable_offset_correction=False, sync_offset=offset)
        ref = shifted(frames, offset, 6).reshape(2, 3, 12, 10)
        check_dataset(inline_ctx, ds, ref, roi=make_roi((2, 3), seed=7))


def test_frms6_auto_and_paths(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    files = get_filenames(hdr)
    assert [os.path.basename(f) for f in files] == [f"acq_{i:03d}.frms6" for i in range(3)]
    assert get_filenames(files[1]) == files
    for path in (hdr, files[2]):
        ds = inline_ctx.load("auto", path=path)
        assert isinstance(ds, FRMS6DataSet)
        assert tuple(ds.shape) == (2, 3, 12, 10)
    assert FRMS6DataSet.detect_params(hdr)["parameters"] == {"path": hdr}
    other = tmp_path / "other.hdr"
    other.write_text("HDR,\t\nsomething\n")
    assert FRMS6DataSet.detect_params(str(other)) is False
    # positional arguments in LiberTEM's order
    ds = inline_ctx.load("frms6", hdr, False, None, None, (6,))
    assert tuple(ds.shape) == (6, 12, 10) and ds.dtype == np.uint16


def test_frms6_facts(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path, binning=2)
    ds = inline_ctx.load("frms6", path=hdr)
    assert ds.check_valid()
    assert ds.get_supported_extensions() == {"frms6", "hdr"}
    assert "direct" in ds.get_supported_io_backends()
    diag = {d["name"]: d["value"] for d in ds.get_diagnostics()}
    assert diag["Binning"] == "2" and diag["Dark frames"] == "5" and diag["Signal frames"] == "6"
    assert (
        ds.get_cache_key()
        != inline_ctx.load("frms6", path=hdr, enable_offset_correction=False).get_cache_key()
    )
    assert ds.meta.image_count == 6
    assert ds.get_decoder().binning == 2
    with pytest.raises(ValueError):
        FRMS6Decoder(3)


@pytest.mark.parametrize("binning", [1, 2, 4])
def test_frms6_read_ranges_and_decoders(inline_ctx, tmp_path, binning):
    hdr, frames, dark = _acq(tmp_path, binning)
    ds = inline_ctx.load("frms6", path=hdr, enable_offset_correction=False)
    fileset = ds._fileset
    scheme = TilingScheme.make_for_shape((4, 5, 4), ds.shape)
    tile_slices, ranges, scheme_idx = fileset.get_read_ranges(0, 6, np.uint16, scheme)
    decode = ds.get_decoder().get_decode(np.uint16, np.float32)
    assert decode is {1: decode_frms6_b1, 2: decode_frms6_b2, 4: decode_frms6_b4}[binning]
    paths = [f.path for f in fileset]
    mms = [np.memmap(p, dtype=np.uint8, mode="r") for p in paths]
    ds_shape = np.array(tuple(ds.shape.flatten_nav()), dtype=np.int64)
    for t in range(len(tile_slices)):
        origin, shape = tile_slices[t]
        out = np.zeros((4, int(np.prod(shape[1:]))), dtype=np.float32)
        for k, (fi, start, stop) in enumerate(ranges[t]):
            if fi >= 0:
                decode(
                    mms[fi][start:stop], out, k, np.uint16, ranges[t, k], origin, shape, ds_shape
                )
        n, (y, x), (h, w) = shape[0], origin[1:], shape[1:]
        ref = frames[origin[0] : origin[0] + n, y : y + h, x : x + w]
        np.testing.assert_array_equal(out[:n].reshape(n, h, w), ref)
        assert scheme_idx[t] == t % len(scheme)


def test_frms6_header_num_frames_zero(inline_ctx, tmp_path):
    """A header frame count of 0: the count comes from the file size."""
    hdr, frames, dark = _acq(tmp_path)
    write_file(tmp_path / "acq_002.frms6", random_stored(2, seed=3), num_frames=0)
    ds = inline_ctx.load("frms6", path=hdr, enable_offset_correction=False)
    check_dataset(inline_ctx, ds, frames.reshape(2, 3, 12, 10))


def test_gain_map_dialect(tmp_path):
    path = tmp_path / "g.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f, dialect=GainMapCSVDialect).writerows([[1.5, 2.0], [3.0, 4.25]])
    assert path.read_text() == "1.5;2.0\n3.0;4.25\n"


# --- errors -----------------------------------------------------------------------------------


def test_frms6_missing_files(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    os.unlink(tmp_path / "acq.hdr")
    with pytest.raises(DataSetException, match="acq.hdr"):
        inline_ctx.load("frms6", path=str(tmp_path / "acq_001.frms6"))
    write_hdr(tmp_path / "acq.hdr")
    for name in ("acq_001.frms6", "acq_002.frms6"):
        os.unlink(tmp_path / name)
    with pytest.raises(DataSetException, match="no signal frames"):
        inline_ctx.load("frms6", path=hdr)
    os.unlink(tmp_path / "acq_000.frms6")
    with pytest.raises(DataSetException, match="frms6"):
        inline_ctx.load("frms6", path=hdr)


def test_frms6_truncated(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    write_file(tmp_path / "acq_001.frms6", random_stored(4, seed=2), cut=10)
    with pytest.raises(DataSetException, match="truncated"):
        inline_ctx.load("frms6", path=hdr)


def test_frms6_bad_headers(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    write_file(tmp_path / "acq_002.frms6", random_stored(2, 6, 22))
    with pytest.raises(DataSetException, match="differ"):
        inline_ctx.load("frms6", path=hdr)
    write_file(tmp_path / "acq_002.frms6", random_stored(2, 6, 21))
    with pytest.raises(DataSetException, match="even"):
        inline_ctx.load("frms6", path=hdr)
    write_file(tmp_path / "acq_002.frms6", random_stored(2), header_size=512)
    with pytest.raises(DataSetException, match="header size"):
        inline_ctx.load("frms6", path=hdr)
    write_file(tmp_path / "acq_002.frms6", random_stored(2))
    write_hdr(hdr, binning=3)
    with pytest.raises(DataSetException, match="binning"):
        inline_ctx.load("frms6", path=hdr)
    with open(hdr, "w") as f:
        f.write("[readoutmode]\nbin=x\n")
    with pytest.raises(DataSetException, match="bin"):
        inline_ctx.load("frms6", path=hdr)


def test_frms6_bad_parameters(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    with pytest.raises(DataSetException, match="dest_dtype"):
        inline_ctx.load("frms6", path=hdr, dest_dtype=np.uint16)
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("frms6", path=hdr, nav_shape=(5, 5)).shape.nav) == (5, 5)
    with pytest.raises(DataSetException, match="sig_shape"):
        inline_ctx.load("frms6", path=hdr, sig_shape=(7, 7))
    bad = write_gain_csv(tmp_path / "bad.csv", np.ones((10, 12)))
    with pytest.raises(DataSetException, match="gain map"):
        inline_ctx.load("frms6", path=hdr, gain_map_path=bad)
    (tmp_path / "text.csv").write_text("1;2;x\n")
    with pytest.raises(DataSetException, match="gain map"):
        inline_ctx.load("frms6", path=hdr, gain_map_path=str(tmp_path / "text.csv"))
    with pytest.raises(DataSetException, match="no such file"):
        inline_ctx.load("frms6", path=hdr, gain_map_path=str(tmp_path / "missing.csv"))


def test_frms6_files_not_modified(inline_ctx, tmp_path):
    hdr, frames, dark = _acq(tmp_path)
    files = [hdr, *get_filenames(hdr)]
    for f in files:
        os.chmod(f, 0o444)
    before = [(os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in files]
    ds = inline_ctx.load("frms6", path=hdr, io_backend="buffered")
    inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert [(os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in files] == before


def test_frms6_direct_io(inline_ctx, tmp_path):
    """O_DIRECT reads give the same data, or a clear error where the file system refuses."""
    hdr, frames, dark = _acq(tmp_path)
    ds = inline_ctx.load("frms6", path=hdr, io_backend="direct")
    assert ds.get_io_backend().id_ == "direct"
    try:
        _check_float(inline_ctx, ds, (frames.astype(np.float32) - dark).reshape(2, 3, 12, 10))
    except DataSetException as e:
        assert "direct I/O" in str(e)
