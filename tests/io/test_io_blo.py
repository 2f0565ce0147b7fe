"""Blockfiles: written with rsciio.blockfile, read back and checked against rsciio.blockfile."""

import contextlib
import hashlib
import importlib.util
import struct
import sys
import types
import warnings

import numpy as np
import pytest

from libertem.exceptions import DataSetException
from libertem.io.dataset.base import DirectBackend
from libertem.io.dataset.blo import BloDataSet, parse_blo_header
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

NAV = (3, 5)
SIG = (16, 16)
N = NAV[0] * NAV[1]


def blockfile_api():
    """rsciio.blockfile; it imports scikit-image at module level but needs it only for
    intensity scaling, which these tests do not use: stub it if it is not installed."""
    if importlib.util.find_spec("skimage") is not None:
        import rsciio.blockfile._api as api

        return api
    stub = types.ModuleType("skimage")
    sys.modules["skimage"] = stub
    try:
        import rsciio.blockfile._api as api
    finally:
        if sys.modules.get("skimage") is stub:
            del sys.modules["skimage"]
    return api


def signal_dict(data):
    nav_dims = data.ndim - 2
    axes = [
        {
            "size": s,
            "index_in_array": i,
            "name": f"ax{i}",
            "scale": 1.0,
            "offset": 0.0,
            "units": "nm" if i < nav_dims else "cm",
            "navigate": i < nav_dims,
        }
        for i, s in enumerate(data.shape)
    ]
    return {
        "data": data,
        "axes": axes,
        "metadata": {},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }


def write_blo(path, data):
    """Write with rsciio; return the frames as rsciio reads them back."""
    api = blockfile_api()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api.file_writer(str(path), signal_dict(data))
        ref = np.asarray(api.file_reader(str(path))[0]["data"])
    return ref.reshape((-1, *data.shape[-2:]))


def write_blo_big_endian(path, data):
    """A blockfile with a big-endian header, written from the format description."""
    ny, nx, dp, _ = data.shape
    header = bytearray(240)
    header[:6] = b"IMGBLO"
    offset2 = 4096 + nx * ny + 16
    struct.pack_into(">HIII", header, 6, 0x0102, 4096, offset2, 0)
    struct.pack_into(">HHHH", header, 20, dp, 0, nx, ny)
    body = bytearray(header + bytes(offset2 - 240))
    for i, frame in enumerate(data.reshape(-1, dp, dp)):
        body += struct.pack(">HI", 0x55AA, i) + frame.tobytes()
    path.write_bytes(bytes(body))


def expected_frames(ref, nav_size, sync_offset):
    out = np.zeros((nav_size, *ref.shape[1:]), dtype=ref.dtype)
    for i in range(nav_size):
        if 0 <= i + sync_offset < ref.shape[0]:
            out[i] = ref[i + sync_offset]
    return out


def check_dataset(ctx, ds, ref, nav_shape, sync_offset=0, roi=None):
    sig = tuple(ds.shape.sig)
    exp = expected_frames(ref.reshape((ref.shape[0], *sig)), int(np.prod(nav_shape)), sync_offset)
    sel = (np.ones(nav_shape, bool) if roi is None else roi).reshape(-1)
    res = ctx.run_udf(dataset=ds, udf=[PickUDF(), SumUDF(), SumSigUDF()], roi=roi)
    np.testing.assert_array_equal(res[0]["intensity"].raw_data, exp[sel])
    wide = exp[sel].astype(np.float64)
    np.testing.assert_allclose(res[1]["intensity"].data, wide.sum(axis=0))
    np.testing.assert_allclose(res[2]["intensity"].raw_data, wide.reshape(len(wide), -1).sum(1))


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def sample(tmp_path):
    data = np.random.default_rng(21).integers(0, 256, (*NAV, *SIG)).astype("u1")
    path = tmp_path / "sample.blo"
    ref = write_blo(path, data)
    np.testing.assert_array_equal(ref, data.reshape(-1, *SIG))
    return path, ref


@pytest.mark.parametrize(
    "variant", ["plain", "roi", "sync+", "sync-", "reshape", "buffered", "direct", "tileshape"]
)
def test_blo_read(ctx, sample, variant):
    path, ref = sample
    kwargs, nav, sync, roi = {}, NAV, 0, None
    if variant == "roi":
        roi = make_roi(NAV, seed=3)
    elif variant == "sync+":
        kwargs, sync, roi = {"sync_offset": 3}, 3, make_roi(NAV, seed=4)
    elif variant == "sync-":
        kwargs, nav, sync = {"nav_shape": (5, 3), "sync_offset": -2}, (5, 3), -2
    elif variant == "reshape":
        kwargs, nav = {"nav_shape": (2, 7), "sig_shape": (8, 32)}, (2, 7)
    elif variant == "buffered":
        kwargs, sync = {"sync_offset": -4, "io_backend": "buffered"}, -4
        roi = make_roi(NAV, seed=6)
    elif variant == "direct":
        kwargs, roi = {"io_backend": DirectBackend(max_buffer_size=4096)}, make_roi(NAV, seed=7)
    elif variant == "tileshape":
        kwargs, roi = {"tileshape": (2, 4, 16)}, make_roi(NAV, seed=5)
    before = digest(path)
    ignored = pytest.warns(FutureWarning, match="tileshape is ignored")
    with ignored if variant == "tileshape" else contextlib.nullcontext():
        ds = ctx.load("blo", path=str(path), num_partitions=2, **kwargs)
    assert tuple(ds.shape.nav) == nav and ds.dtype == np.uint8
    check_dataset(ctx, ds, ref, nav, sync, roi)
    assert digest(path) == before


def test_blo_auto_and_header(inline_ctx, sample):
    path, ref = sample
    ds = inline_ctx.load("auto", path=str(path))
    assert isinstance(ds, BloDataSet) and tuple(ds.shape) == (*NAV, *SIG)
    h = parse_blo_header(path.read_bytes()[:240], "<", str(path))
    assert (h.ny, h.nx, h.dp_size) == (*NAV, 16)


def test_blo_big_endian(inline_ctx, tmp_path):
    data = np.random.default_rng(22).integers(0, 256, (2, 3, 8, 8)).astype("u1")
    path = tmp_path / "big.blo"
    write_blo_big_endian(path, data)
    ds = inline_ctx.load("blo", path=str(path), endianess=">")
    assert tuple(ds.shape) == (2, 3, 8, 8)
    check_dataset(inline_ctx, ds, data.reshape(-1, 8, 8), (2, 3), 0, make_roi((2, 3), seed=8))
    with pytest.raises(DataSetException):  # little-endian reading of this header
        inline_ctx.load("blo", path=str(path))


def test_blo_view_in_place(sample):
    path, ref = sample
    ds = BloDataSet(str(path)).initialize(None)
    frames = list(ds.get_partitions())[0].open_source().view(0, N)
    assert not frames.flags.owndata and not frames.flags.writeable
    assert frames.strides[0] == 6 + 16 * 16
    np.testing.assert_array_equal(frames, ref)


# --- errors --------------------------------------------------------------------------------------


def _err(ctx, path, **kwargs):
    with pytest.raises(DataSetException) as e:
        ctx.load(kwargs.pop("filetype", "blo"), path=str(path), **kwargs)
    assert str(path) in str(e.value)
    return str(e.value)


def test_blo_missing(inline_ctx, tmp_path):
    assert "no such file" in _err(inline_ctx, tmp_path / "nope.blo")


def test_blo_not_blo_auto(inline_ctx, tmp_path):
    path = tmp_path / "x.blo"
    path.write_bytes(b"NOTBLO" + bytes(1000))
    assert "could not determine" in _err(inline_ctx, path, filetype="auto")
    assert "IMGBLO" in _err(inline_ctx, path)


def test_blo_truncated(inline_ctx, sample):
    path, _ = sample
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    assert "truncated" in _err(inline_ctx, path)
    path.write_bytes(data[:100])
    assert "too short" in _err(inline_ctx, path)


def test_blo_header_contradicts_size(inline_ctx, sample):
    path, _ = sample
    path.write_bytes(path.read_bytes() + bytes(262))
    assert "larger than the header" in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "offset,fmt,value,msg",
    [
        (20, "<H", 0, "pattern size 0"),
        (24, "<H", 0, "scan 0"),
        (12, "<I", 10, "inside the header"),
        (12, "<I", 4127, "truncated"),
    ],
)
def test_blo_corrupt_header(inline_ctx, sample, offset, fmt, value, msg):
    path, _ = sample
    buf = bytearray(path.read_bytes())
    struct.pack_into(fmt, buf, offset, value)
    path.write_bytes(bytes(buf))
    assert msg in _err(inline_ctx, path)


def test_blo_wrong_data_offset(inline_ctx, sample):
    path, _ = sample
    buf = bytearray(path.read_bytes())
    (offset,) = struct.unpack_from("<I", buf, 12)
    struct.pack_into("<I", buf, 12, offset - 2)  # data shifted: no frame marker there
    path.write_bytes(bytes(buf[:-2]))
    assert "frame marker" in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"sig_shape": (15, 16)}, "sig_shape"),
        ({"endianess": "big"}, "endianess"),
    ],
)
def test_blo_bad_params(inline_ctx, sample, kwargs, msg):
    path, _ = sample
    assert msg in _err(inline_ctx, path, **kwargs)


def test_blo_sync_offset_range(inline_ctx, sample):
    path, _ = sample
    with pytest.raises(DataSetException, match=r"sync_offset should be in \(-15, 15\)"):
        inline_ctx.load("blo", path=str(path), sync_offset=20)


def test_blo_nav_shape_beyond_data(inline_ctx, sample):
    # LiberTEM: nav_shape may ask for more frames than stored; they are never read
    path, _ = sample
    ds = inline_ctx.load("blo", path=path, nav_shape=(4, 4))
    assert tuple(ds.shape.nav) == (4, 4)
