"""MRC files: written with ``mrcfile``, read back by libertem and checked against ``mrcfile``."""

import hashlib
import os
import struct

import mrcfile
import numpy as np
import pytest

from libertem.exceptions import DataSetException
from libertem.io.dataset.mrc import MRCDataSet, parse_mrc_header
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_data, make_roi

NAV = (3, 5)
SIG = (16, 12)
N = NAV[0] * NAV[1]


def write_mrc(path, data, ext_bytes=0, stack=True):
    """Write ``data`` (z, y, x) with mrcfile; return the frames as mrcfile reads them."""
    with mrcfile.new(str(path), overwrite=True) as m:
        if ext_bytes:
            m.set_extended_header(np.zeros(ext_bytes, dtype="u1"))
        m.set_data(data)
        if stack:
            m.set_image_stack()
    with mrcfile.open(str(path), permissive=False) as m:
        return np.array(m.data)


def expected_frames(ref, nav_size, sync_offset):
    """Dataset frames from file frames ``ref``: shifted by ``sync_offset``, zeros outside."""
    out = np.zeros((nav_size, *ref.shape[1:]), dtype=ref.dtype)
    for i in range(nav_size):
        j = i + sync_offset
        if 0 <= j < ref.shape[0]:
            out[i] = ref[j]
    return out


def check_dataset(ctx, ds, ref, nav_shape, sync_offset=0, roi=None):
    """Every frame of ``ds`` (PickUDF, SumUDF, SumSigUDF) equals the reference frames."""
    nav_size = int(np.prod(nav_shape))
    exp = expected_frames(ref.reshape((ref.shape[0], *tuple(ds.shape.sig))), nav_size, sync_offset)
    sel = np.ones(nav_shape, bool) if roi is None else roi
    flat_sel = sel.reshape(-1)
    res = ctx.run_udf(dataset=ds, udf=[PickUDF(), SumUDF(), SumSigUDF()], roi=roi)
    np.testing.assert_array_equal(res[0]["intensity"].raw_data, exp[flat_sel])
    wide = exp[flat_sel].astype(np.complex128 if exp.dtype.kind == "c" else np.float64)
    tol = {"rtol": 1e-4, "atol": 1e-2}
    np.testing.assert_allclose(res[1]["intensity"].data, wide.sum(axis=0), **tol)
    np.testing.assert_allclose(res[2]["intensity"].raw_data, wide.sum(axis=(1, 2)), **tol)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def sample(tmp_path):
    data = make_data((N, *SIG), "float32", seed=11)
    path = tmp_path / "sample.mrc"
    ref = write_mrc(path, data, ext_bytes=40)
    np.testing.assert_array_equal(ref, data)
    return path, ref


# --- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant", ["plain", "roi", "sync+", "sync-", "reshape", "buffered"], ids=lambda v: v
)
def test_mrc_read(ctx, sample, variant):
    path, ref = sample
    kwargs, nav, sync, roi = {}, (N,), 0, None
    if variant == "roi":
        kwargs, nav = {"nav_shape": NAV}, NAV
        roi = make_roi(NAV, seed=3)
    elif variant == "sync+":
        kwargs, nav, sync = {"nav_shape": NAV, "sync_offset": 4}, NAV, 4
        roi = make_roi(NAV, seed=4)
    elif variant == "sync-":
        kwargs, nav, sync = {"nav_shape": NAV, "sync_offset": -3}, NAV, -3
    elif variant == "reshape":
        kwargs, nav = {"nav_shape": (2, 4), "sig_shape": (12, 16)}, (2, 4)
    elif variant == "buffered":
        kwargs, nav, sync = (
            {"nav_shape": NAV, "sync_offset": -2, "io_backend": "buffered"},
            NAV,
            -2,
        )
        roi = make_roi(NAV, seed=5)
    before = digest(path)
    ds = ctx.load("mrc", path=str(path), num_partitions=3, **kwargs)
    assert tuple(ds.shape.nav) == nav
    check_dataset(ctx, ds, ref, nav, sync, roi)
    assert digest(path) == before


@pytest.mark.parametrize("dtype", ["int8", "int16", "float32", "uint16", "float16", "complex64"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_mrc_modes(inline_ctx, tmp_path, dtype, order):
    data = make_data((6, 8, 10), dtype, seed=12)
    if dtype == "int8":
        data = np.random.default_rng(1).integers(-128, 128, (6, 8, 10)).astype("i1")
    data = data.astype(np.dtype(dtype).newbyteorder(order))
    path = tmp_path / f"m_{dtype}.mrc"
    ref = write_mrc(path, data, stack=dtype != "int16")
    assert ref.dtype == data.dtype
    ds = inline_ctx.load("auto", path=str(path), nav_shape=(2, 3), sync_offset=1)
    assert isinstance(ds, MRCDataSet)
    assert ds.dtype == np.dtype(dtype).newbyteorder(order)
    check_dataset(inline_ctx, ds, ref, (2, 3), 1, make_roi((2, 3), seed=5))


def test_mrc_single_image(inline_ctx, tmp_path):
    data = make_data((8, 10), "float32", seed=13)
    path = tmp_path / "one.mrc"
    ref = write_mrc(path, data, stack=False)
    ds = inline_ctx.load("mrc", path=str(path))
    assert tuple(ds.shape) == (1, 8, 10)
    check_dataset(inline_ctx, ds, ref.reshape(1, 8, 10), (1,))


def test_mrc_memory_mapped_view(sample):
    path, ref = sample
    ds = MRCDataSet(str(path)).initialize(None)
    frames = list(ds.get_partitions())[0].open_source().view(0, N)
    assert isinstance(frames, np.ndarray) and not frames.flags.owndata
    assert not frames.flags.writeable
    base = frames
    while not isinstance(base, np.memmap) and base.base is not None:
        base = base.base
    assert isinstance(base, np.memmap)
    np.testing.assert_array_equal(frames, ref)


def test_mrc_parse_header_fields(sample):
    path, ref = sample
    h = parse_mrc_header(open(path, "rb").read(1024), str(path))
    assert (h.nz, h.ny, h.nx, h.mode, h.data_offset) == (N, *SIG, 2, 1064)


# --- errors --------------------------------------------------------------------------------------


def _err(ctx, path, **kwargs):
    with pytest.raises(DataSetException) as e:
        ctx.load(kwargs.pop("filetype", "mrc"), path=str(path), **kwargs)
    assert str(path) in str(e.value)
    return str(e.value)


def test_mrc_missing(inline_ctx, tmp_path):
    assert "no such file" in _err(inline_ctx, tmp_path / "nope.mrc")


def test_mrc_not_mrc_auto(inline_ctx, tmp_path):
    path = tmp_path / "fake.mrc"
    path.write_bytes(b"\x01" * 2048)
    assert "could not determine" in _err(inline_ctx, path, filetype="auto")
    assert "MAP" in _err(inline_ctx, path)


def test_mrc_truncated(inline_ctx, sample):
    path, _ = sample
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    assert "truncated" in _err(inline_ctx, path)
    path.write_bytes(data[:500])
    assert "too short" in _err(inline_ctx, path)


def test_mrc_header_contradicts_size(inline_ctx, sample):
    path, _ = sample
    path.write_bytes(path.read_bytes() + b"\0" * 100)
    assert "larger than the header" in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "offset,value,msg",
    [
        (12, 3, "unsupported MRC mode 3"),
        (0, 0, "dimensions"),
        (8, -2, "dimensions"),
        (92, -5, "extended header"),
    ],
)
def test_mrc_corrupt_header(inline_ctx, sample, offset, value, msg):
    path, _ = sample
    buf = bytearray(path.read_bytes())
    buf[offset : offset + 4] = struct.pack("<i", value)
    path.write_bytes(bytes(buf))
    assert msg in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"sig_shape": (16, 16)}, "sig_shape"),
        ({"nav_shape": (0, 3)}, "positive"),
        ({"nav_shape": "ab"}, "nav_shape"),
    ],
)
def test_mrc_bad_shapes(inline_ctx, sample, kwargs, msg):
    path, _ = sample
    assert msg in _err(inline_ctx, path, **kwargs)


def test_mrc_nav_shape_and_sync_offset_rules(inline_ctx, sample):
    # LiberTEM: nav_shape may ask for more frames than stored (they are never read);
    # only sync_offset is range-checked, with LiberTEM's text
    path, _ = sample
    ds = inline_ctx.load("mrc", path=str(path), nav_shape=(4, 5))
    assert tuple(ds.shape.nav) == (4, 5)
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        inline_ctx.load("mrc", path=str(path), sync_offset=15)


def test_mrc_more_nav_with_sync_offset(inline_ctx, sample):
    path, ref = sample
    ds = inline_ctx.load("mrc", path=str(path), nav_shape=(4, 5), sync_offset=-5)
    check_dataset(inline_ctx, ds, ref, (4, 5), -5)


def test_mrc_file_unchanged_and_readonly(inline_ctx, sample):
    path, _ = sample
    os.chmod(path, 0o444)
    before = digest(path)
    ds = inline_ctx.load("mrc", path=str(path))
    inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert digest(path) == before
