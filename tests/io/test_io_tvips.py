"""TVIPS recordings: written with rsciio.tvips (and from the description for version 1),
read back and checked against rsciio.tvips."""

import hashlib
import struct
import warnings

import numpy as np
import pytest
from rsciio.tvips import file_reader, file_writer

from libertem.exceptions import DataSetException
from libertem.io.dataset.tvips import TVIPSDataSet, parse_tvips_header
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

SIG = (16, 12)
N = 15


def signal_dict(data):
    axes = [
        {
            "size": data.shape[0],
            "index_in_array": 0,
            "name": "t",
            "scale": 1.0,
            "offset": 0.0,
            "units": "ms",
            "navigate": True,
        },
    ] + [
        {
            "size": s,
            "index_in_array": i + 1,
            "name": f"k{i}",
            "scale": 1.0,
            "offset": 0.0,
            "units": "1/nm",
            "navigate": False,
        }
        for i, s in enumerate(data.shape[1:])
    ]
    return {
        "data": data,
        "axes": axes,
        "metadata": {},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }


def write_tvips(folder, data, max_file_size=None, extra=0, name="rec.tvips"):
    """Write with rsciio; return the first file and the frames as rsciio reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        file_writer(
            str(folder / name),
            signal_dict(data),
            max_file_size=max_file_size,
            frame_header_extra_bytes=extra,
        )
    first = folder / name.replace(".tvips", "_000.tvips")
    ref = np.asarray(file_reader(str(first))[0]["data"])
    return first, ref


def write_tvips_v1(path, data):
    """A version-1 recording (12-byte frame headers), written from the format description."""
    header = struct.pack(
        "<13I",
        256,
        1,
        data.shape[2],
        data.shape[1],
        data.dtype.itemsize * 8,
        0,
        0,
        1,
        1,
        1,
        200,
        100,
        0,
    )
    body = bytearray(header + b"TVIPS" * 40 + b"TVIP")
    for i, frame in enumerate(data):
        body += struct.pack("<3I", i, 0, 0) + frame.astype("<" + data.dtype.str[1:]).tobytes()
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
    np.testing.assert_allclose(res[1]["intensity"].data, wide.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        res[2]["intensity"].raw_data, wide.reshape(len(wide), -1).sum(1), rtol=1e-6
    )


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def make_frames(dtype, seed=31, n=N):
    hi = 256 if dtype == "u1" else 65536
    return np.random.default_rng(seed).integers(0, hi, (n, *SIG)).astype(dtype)


@pytest.fixture(params=["u1", "u2"])
def sample(request, tmp_path):
    """A recording split over three files (5 + 5 + 5 frames... or as rsciio splits)."""
    data = make_frames(request.param)
    record = 60 + 8 + data[0].nbytes
    first, ref = write_tvips(tmp_path, data, max_file_size=256 + 6 * record, extra=8)
    assert (tmp_path / "rec_002.tvips").exists()
    np.testing.assert_array_equal(ref, data)
    return first, ref


@pytest.mark.parametrize("variant", ["plain", "roi", "sync+", "sync-", "reshape", "buffered"])
def test_tvips_read(ctx, sample, variant):
    path, ref = sample
    kwargs, nav, sync, roi = {}, (N,), 0, None
    if variant == "roi":
        kwargs, nav, roi = {"nav_shape": (3, 5)}, (3, 5), make_roi((3, 5), seed=3)
    elif variant == "sync+":
        kwargs, nav, sync = {"nav_shape": (3, 5), "sync_offset": 5}, (3, 5), 5
        roi = make_roi((3, 5), seed=4)
    elif variant == "sync-":
        kwargs, nav, sync = {"nav_shape": (3, 5), "sync_offset": -7}, (3, 5), -7
    elif variant == "reshape":
        kwargs, nav = {"nav_shape": (2, 6), "sig_shape": (12, 16)}, (2, 6)
    elif variant == "buffered":
        kwargs, nav, sync = (
            {"nav_shape": (3, 5), "sync_offset": 2, "io_backend": "buffered"},
            (3, 5),
            2,
        )
        roi = make_roi((3, 5), seed=6)
    before = digests(path.parent)
    ds = ctx.load("tvips", path=str(path), num_partitions=4, **kwargs)
    assert tuple(ds.shape.nav) == nav
    check_dataset(ctx, ds, ref, nav, sync, roi)
    assert digests(path.parent) == before


def test_tvips_single_file_auto(inline_ctx, tmp_path):
    data = make_frames("u2", seed=32, n=6)
    path, ref = write_tvips(tmp_path, data)
    assert not (tmp_path / "rec_001.tvips").exists()
    ds = inline_ctx.load("auto", path=str(path))
    assert isinstance(ds, TVIPSDataSet) and ds.dtype == np.uint16
    check_dataset(inline_ctx, ds, ref, (6,), 0, make_roi((6,), seed=9))


def test_tvips_plain_name(inline_ctx, tmp_path):
    data = make_frames("u1", seed=33, n=4)
    path, ref = write_tvips(tmp_path, data)
    plain = tmp_path / "plain.tvips"
    plain.write_bytes(path.read_bytes())
    check_dataset(inline_ctx, inline_ctx.load("tvips", path=str(plain)), ref, (4,))


def test_tvips_version1(inline_ctx, tmp_path):
    data = make_frames("u2", seed=34, n=6)
    path = tmp_path / "v1_000.tvips"
    write_tvips_v1(path, data)
    ds = inline_ctx.load("auto", path=str(path), nav_shape=(2, 3), sync_offset=1)
    check_dataset(inline_ctx, ds, data, (2, 3), 1, make_roi((2, 3), seed=10))


def test_tvips_views(sample):
    path, ref = sample
    ds = TVIPSDataSet(str(path)).initialize(None)
    source = list(ds.get_partitions())[0].open_source()
    spans = source.layout.files
    assert len(spans) == 3 and [s.n_frames for s in spans] == [6, 6, 3]
    view = source.view(1, 5)  # within the first file: a read-only view
    assert not view.flags.owndata and not view.flags.writeable
    np.testing.assert_array_equal(view, ref[1:5])
    assert source.view(4, 8) is None  # across files: no single view
    out = np.zeros((N, *SIG), np.float32)
    source.read_into(0, N, out)
    np.testing.assert_array_equal(out, ref)


def test_tvips_parse_header(sample):
    path, ref = sample
    h = parse_tvips_header(path.read_bytes()[:256], str(path))
    assert (h.version, h.dimy, h.dimx, h.frame_header_bytes) == (2, *SIG, 68)


# --- errors --------------------------------------------------------------------------------------


def _err(ctx, path, **kwargs):
    with pytest.raises(DataSetException) as e:
        ctx.load(kwargs.pop("filetype", "tvips"), path=str(path), **kwargs)
    return str(e.value)


def test_tvips_missing(inline_ctx, tmp_path):
    path = tmp_path / "nope_000.tvips"
    msg = _err(inline_ctx, path)
    assert str(path) in msg and "no such file" in msg


def test_tvips_not_tvips_auto(inline_ctx, tmp_path):
    path = tmp_path / "x_000.tvips"
    path.write_bytes(bytes(range(256)) * 4)
    assert "could not determine" in _err(inline_ctx, path, filetype="auto")
    msg = _err(inline_ctx, path)
    assert str(path) in msg and "unsupported TVIPS version" in msg


def test_tvips_not_first_part(inline_ctx, sample):
    path, _ = sample
    second = path.parent / "rec_001.tvips"
    msg = _err(inline_ctx, second)
    assert str(second) in msg and "_000" in msg


@pytest.mark.parametrize("which", ["rec_000.tvips", "rec_002.tvips"])
def test_tvips_truncated(inline_ctx, sample, which):
    path, _ = sample
    part = path.parent / which
    part.write_bytes(part.read_bytes()[:-5])
    msg = _err(inline_ctx, path)
    assert str(part) in msg and "truncated" in msg


def test_tvips_header_contradicts_size(inline_ctx, sample):
    path, _ = sample
    buf = bytearray(path.read_bytes())
    struct.pack_into("<I", buf, 12, SIG[0] + 1)  # dimy one larger: records do not fit
    path.write_bytes(bytes(buf))
    msg = _err(inline_ctx, path)
    assert str(path) in msg and "whole number" in msg


@pytest.mark.parametrize(
    "offset,value,msg",
    [
        (4, 7, "version 7"),
        (16, 12, "bitsperpixel 12"),
        (8, 0, "frame size"),
        (0, 8, "header size"),
        (48, 1 << 30, "implausible"),
    ],
)
def test_tvips_corrupt_header(inline_ctx, sample, offset, value, msg):
    path, _ = sample
    buf = bytearray(path.read_bytes())
    struct.pack_into("<I", buf, offset, value)
    path.write_bytes(bytes(buf))
    err = _err(inline_ctx, path)
    assert str(path) in err and msg in err


def test_tvips_short(inline_ctx, tmp_path):
    path = tmp_path / "s.tvips"
    path.write_bytes(b"\x00" * 20)
    assert "too short" in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"sig_shape": (16, 16)}, "sig_shape"),
    ],
)
def test_tvips_bad_shapes(inline_ctx, sample, kwargs, msg):
    path, _ = sample
    err = _err(inline_ctx, path, **kwargs)
    assert str(path) in err and msg in err


def test_tvips_nav_shape_and_sync_offset_rules(inline_ctx, sample):
    # LiberTEM: nav_shape may ask for more frames than stored (they are never read);
    # only sync_offset is range-checked, with LiberTEM's text
    path, _ = sample
    ds = inline_ctx.load("tvips", path=str(path), nav_shape=(4, 4))
    assert tuple(ds.shape.nav) == (4, 4)
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        inline_ctx.load("tvips", path=str(path), sync_offset=-15)
