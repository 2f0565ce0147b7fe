"""Merlin MIB files: every frame against independent readers (rsciio, numpy)."""

import os

import numpy as np
import pytest
from rsciio.quantumdetector import load_mib_data

from libertem.exceptions import DataSetException
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from libertem.utils.sample_data import write_mib_acquisition

NAV, SIG = (3, 5), (16, 16)


def ref_r64(path, header_size, frame_bytes, n, depth, quad, shape):
    """Independent numpy decoding of raw frames (reshape, unpack bits, flip words)."""
    stride = header_size + frame_bytes
    raw = np.fromfile(path, dtype=np.uint8).reshape(n, stride)[:, header_size:]
    npix = shape[0] * shape[1]

    def words(b, cols, dtype):
        vals = b.view(dtype) if dtype != "bits" else np.unpackbits(b, axis=1)
        return vals.reshape(n, -1, cols)[..., ::-1].reshape(n, -1).astype(np.uint32)

    if depth == 1:
        stream = words(raw, 64, "bits")
    elif depth == 6:
        stream = words(raw, 8, ">u1")
    elif depth == 12:
        stream = words(raw, 4, ">u2")
    else:
        half = frame_bytes // 2
        hi = words(np.ascontiguousarray(raw[:, :half]), 4, ">u2")
        lo = words(np.ascontiguousarray(raw[:, half:]), 4, ">u2")
        stream = (hi << 12) | lo
    assert stream.shape[1] == npix
    if not quad:
        return stream.reshape(n, *shape)
    rows = stream.reshape(n, 256, 1024)
    chips = [rows[:, :, i * 256 : (i + 1) * 256] for i in range(4)]
    top = np.concatenate([chips[0], chips[1]], axis=2)
    bottom = np.concatenate([chips[2][:, ::-1, ::-1], chips[3][:, ::-1, ::-1]], axis=2)
    return np.concatenate([top, bottom], axis=1)


def shifted(flat, offset):
    out = np.zeros_like(flat)
    idx = np.arange(flat.shape[0]) + offset
    ok = (idx >= 0) & (idx < flat.shape[0])
    out[ok] = flat[idx[ok]]
    return out


def pick_all(ctx, ds, roi=None):
    if roi is None:
        roi = np.ones(tuple(ds.shape.nav), dtype=bool)
    return ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data


@pytest.mark.parametrize("pixel_depth", ["U08", "U16", "U32"])
def test_processed_vs_rsciio(tmp_path, ctx, pixel_depth):
    rng = np.random.default_rng(1)
    hi = {"U08": 255, "U16": 4095, "U32": 1 << 20}[pixel_depth]
    data = rng.integers(0, hi, size=(*NAV, *SIG))
    hdr = write_mib_acquisition(tmp_path / "acq", data, pixel_depth=pixel_depth)
    ref = np.asarray(load_mib_data(hdr.replace(".hdr", ".mib"))).reshape(-1, *SIG)
    np.testing.assert_array_equal(ref, data.reshape(-1, *SIG))
    ds = ctx.load("mib", path=hdr)
    assert tuple(ds.shape) == (*NAV, *SIG)
    np.testing.assert_array_equal(pick_all(ctx, ds), ref)
    roi = rng.random(NAV) > 0.5
    np.testing.assert_array_equal(pick_all(ctx, ds, roi), ref[roi.ravel()])
    sums = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(sums[0]["intensity"].raw_data, ref.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        sums[1]["intensity"].data, ref.sum(axis=(1, 2)).reshape(NAV), rtol=1e-5
    )


@pytest.mark.parametrize(
    "depth, sig", [(1, SIG), (6, SIG), (12, SIG), (24, SIG), (12, (512, 512)), (1, (512, 512))]
)
def test_raw_r64_vs_numpy(tmp_path, ctx, depth, sig):
    rng = np.random.default_rng(depth)
    nav = (2, 3) if sig == (512, 512) else NAV
    data = rng.integers(0, 1 << depth, size=(*nav, *sig))
    hdr = write_mib_acquisition(tmp_path / "raw", data, pixel_depth="R64", counter_depth=depth)
    quad = sig == (512, 512)
    fb = {1: 1, 6: 8, 12: 16, 24: 32}[depth] * sig[0] * sig[1] // 8
    n = int(np.prod(nav))
    ref = ref_r64(hdr.replace(".hdr", ".mib"), 768 if quad else 384, fb, n, depth, quad, sig)
    np.testing.assert_array_equal(ref, data.reshape(-1, *sig))
    ds = ctx.load("mib", path=hdr)
    assert ds.dtype == np.dtype({1: "u1", 6: "u1", 12: "u2", 24: "u4"}[depth])
    np.testing.assert_array_equal(pick_all(ctx, ds), ref)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].raw_data
    np.testing.assert_allclose(res, ref.sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("offset", [0, 4, -6])
@pytest.mark.parametrize("pixel_depth", ["U16", "R64"])
def test_multi_file_sync_offset_reshape(tmp_path, threads_ctx, offset, pixel_depth):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4096, size=(*NAV, *SIG))
    hdr = write_mib_acquisition(tmp_path / "m", data, pixel_depth=pixel_depth, n_files=4)
    flat = shifted(data.reshape(-1, *SIG), offset)
    for path in (hdr, str(tmp_path / "m3.mib")):
        ds = threads_ctx.load("mib", path=path, sync_offset=offset, num_partitions=3)
        roi = rng.random(NAV) > 0.3
        np.testing.assert_array_equal(pick_all(threads_ctx, ds, roi), flat[roi.ravel()])
    ds = threads_ctx.load("mib", path=hdr, nav_shape=(2, 6), sync_offset=offset)
    np.testing.assert_array_equal(pick_all(threads_ctx, ds), flat[:12])
    ds = threads_ctx.load("mib", path=hdr, nav_shape=(15,), sig_shape=(8, 32))
    np.testing.assert_array_equal(pick_all(threads_ctx, ds), data.reshape(15, 8, 32))


def test_auto_and_nav_from_hdr(tmp_path, inline_ctx):
    data = np.arange(2 * 4 * 16 * 16).reshape(2, 4, 16, 16) % 4000
    hdr = write_mib_acquisition(tmp_path / "a", data)
    ds = inline_ctx.load("auto", path=hdr)
    assert type(ds).__name__ == "MIBDataSet" and tuple(ds.shape.nav) == (2, 4)
    ds = inline_ctx.load("auto", path=str(tmp_path / "a.mib"))
    assert tuple(ds.shape.nav) == (2, 4)
    single = write_mib_acquisition(tmp_path / "b", data, with_hdr=False)
    ds = inline_ctx.load("mib", path=single)
    assert tuple(ds.shape.nav) == (8,)


def _write(tmp_path, **kw):
    data = np.ones((*NAV, *SIG), dtype=int)
    return write_mib_acquisition(tmp_path / "e", data, **kw)


def test_errors(tmp_path, inline_ctx):
    def fails(match, **kw):
        with pytest.raises(DataSetException, match=match) as e:
            inline_ctx.load("mib", **kw)
        return e

    e = fails("no such file", path=str(tmp_path / "missing.mib"))
    assert "missing.mib" in str(e.value)
    hdr = _write(tmp_path)
    mib = hdr.replace(".hdr", ".mib")
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("mib", path=hdr, nav_shape=(4, 5)).shape.nav) == (4, 5)
    fails("sig_shape", path=hdr, sig_shape=(3, 3))
    fails("sync_offset", path=hdr, sync_offset=99)
    with pytest.raises(DataSetException, match="io_backend"):
        inline_ctx.load("mib", path=hdr, io_backend="magic")
    size = os.path.getsize(mib)
    with open(mib, "r+b") as f:
        f.truncate(size - 10)
    fails("truncated", path=mib)
    with open(mib, "r+b") as f:
        f.truncate(size - (384 + 512))  # whole frames, but fewer than the .hdr says
    fails("header says 15 frames", path=hdr)
    other = tmp_path / "x.mib"
    other.write_bytes(b"MQ1,000001,00384,01,0016,0016,U16,   1x1" + b" " * 400)
    fails("contradicts the file size", path=str(other))
    bad = tmp_path / "bad.mib"
    bad.write_bytes(b"MQ1,000001,00384,01,00x6,0016,U16," + b" " * 500)
    fails("corrupt MIB header", path=str(bad))
    bad.write_bytes(b"MQ1,000001,00384,01,0016,0016,F99," + b" " * 500)
    fails("pixel depth", path=str(bad))
    notmib = tmp_path / "n.mib"
    notmib.write_bytes(b"hello world" * 100)
    fails("not a MIB file", path=str(notmib))
    with pytest.raises(DataSetException, match="could not determine"):
        inline_ctx.load("auto", path=str(notmib))
