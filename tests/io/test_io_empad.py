"""EMPAD: XML + raw files written from the format description, checked against rsciio.empad."""

import hashlib
import logging

import numpy as np
import pytest
from rsciio.empad import file_reader

from libertem.exceptions import DataSetException
from libertem.io.dataset.empad import EMPADDataSet, parse_empad_xml
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

NAV = (3, 5)
N = NAV[0] * NAV[1]
RAW_NAME = "scan_x5_y3.raw"

logging.getLogger("rsciio").setLevel(logging.ERROR)


def write_empad(folder, nav=NAV, xml_body=None, raw_name=RAW_NAME, seed=0):
    """Write ``raw_name`` (130 x 128 float32 records, metadata rows = NaN / 1e30) and an XML."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(nav))
    records = rng.normal(size=(n, 130, 128)).astype("<f4")
    records[:, 128] = np.nan
    records[:, 129] = 1e30
    records.tofile(folder / raw_name)
    if xml_body is None:
        xml_body = f"<pix_x>{nav[-1]}</pix_x><pix_y>{nav[0]}</pix_y>"
    xml = f'<?xml version="1.0"?>\n<root><raw_file filename="{raw_name}"/>{xml_body}</root>\n'
    path = folder / "acquisition.xml"
    path.write_text(xml)
    return path, records[:, :128]


def rsciio_frames(xml_path):
    data = np.asarray(file_reader(str(xml_path))[0]["data"])
    return data.reshape((-1, 128, 128))


def expected_frames(ref, nav_size, sync_offset):
    out = np.zeros((nav_size, *ref.shape[1:]), dtype=ref.dtype)
    for i in range(nav_size):
        if 0 <= i + sync_offset < ref.shape[0]:
            out[i] = ref[i + sync_offset]
    return out


def check_dataset(ctx, ds, ref, nav_shape, sync_offset=0, roi=None):
    exp = expected_frames(
        ref.reshape((ref.shape[0], *tuple(ds.shape.sig))), int(np.prod(nav_shape)), sync_offset
    )
    sel = (np.ones(nav_shape, bool) if roi is None else roi).reshape(-1)
    res = ctx.run_udf(dataset=ds, udf=[PickUDF(), SumUDF(), SumSigUDF()], roi=roi)
    np.testing.assert_array_equal(res[0]["intensity"].raw_data, exp[sel])
    wide = exp[sel].astype(np.float64)
    np.testing.assert_allclose(res[1]["intensity"].data, wide.sum(axis=0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        res[2]["intensity"].raw_data, wide.sum(axis=(1, 2)), rtol=1e-4, atol=1e-2
    )


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def sample(tmp_path):
    path, frames = write_empad(tmp_path)
    ref = rsciio_frames(path)
    np.testing.assert_array_equal(ref, frames)
    return path, ref


@pytest.mark.parametrize("variant", ["plain", "roi", "sync+", "sync-", "reshape", "buffered"])
def test_empad_read(ctx, sample, variant):
    path, ref = sample
    kwargs, nav, sync, roi = {}, NAV, 0, None
    if variant == "roi":
        roi = make_roi(NAV, seed=3)
    elif variant == "sync+":
        kwargs, sync, roi = {"sync_offset": 2}, 2, make_roi(NAV, seed=4)
    elif variant == "sync-":
        kwargs, nav, sync = {"nav_shape": (15,), "sync_offset": -4}, (15,), -4
    elif variant == "reshape":
        kwargs, nav = {"nav_shape": (2, 6), "sig_shape": (64, 256)}, (2, 6)
    elif variant == "buffered":
        kwargs, sync, roi = {"sync_offset": 1, "io_backend": "buffered"}, 1, make_roi(NAV, seed=5)
    raw = path.parent / RAW_NAME
    before = digest(raw), digest(path)
    ds = ctx.load("empad", path=str(path), num_partitions=2, **kwargs)
    assert tuple(ds.shape.nav) == nav and ds.dtype == np.float32
    check_dataset(ctx, ds, ref, nav, sync, roi)
    assert (digest(raw), digest(path)) == before


@pytest.mark.parametrize(
    "body,nav",
    [
        ("<scan_parameters><series_count>15</series_count></scan_parameters>", (15,)),
        ("", (3, 5)),  # from the raw file name
        (
            "<scan_parameters><scan_resolution_x>5</scan_resolution_x>"
            "<scan_resolution_y>3</scan_resolution_y></scan_parameters>",
            (3, 5),
        ),
    ],
)
def test_empad_xml_variants(inline_ctx, tmp_path, body, nav):
    path, frames = write_empad(tmp_path, xml_body=body)
    ds = inline_ctx.load("auto", path=str(path))
    assert isinstance(ds, EMPADDataSet)
    assert tuple(ds.shape) == (*nav, 128, 128)
    ref = rsciio_frames(path)
    np.testing.assert_array_equal(ref, frames)
    check_dataset(inline_ctx, ds, ref, nav, 0, make_roi(nav, seed=6))


def test_empad_stack_without_scan(inline_ctx, tmp_path):
    path, frames = write_empad(tmp_path, raw_name="data.raw", xml_body="")
    ds = inline_ctx.load("empad", path=str(path))
    assert tuple(ds.shape) == (15, 128, 128)
    check_dataset(inline_ctx, ds, frames, (15,))


def test_empad_raw_path(inline_ctx, sample):
    path, ref = sample
    raw = path.parent / RAW_NAME
    ds = inline_ctx.load("empad", path=str(raw))  # scan from the name
    assert tuple(ds.shape.nav) == NAV
    ds = inline_ctx.load("empad", path=str(raw), nav_shape=(5, 3), sync_offset=-1)
    check_dataset(inline_ctx, ds, ref, (5, 3), -1, make_roi((5, 3), seed=7))


def test_empad_view_in_place(sample):
    path, ref = sample
    ds = EMPADDataSet(str(path)).initialize(None)
    frames = list(ds.get_partitions())[0].open_source().view(0, N)
    assert isinstance(frames, np.ndarray) and not frames.flags.owndata
    assert frames.strides[0] == 130 * 128 * 4
    np.testing.assert_array_equal(frames, ref)


def test_empad_parse_xml():
    info = parse_empad_xml(
        b'<root><raw_file filename="a.raw"/><pix_x>4</pix_x><pix_y>2</pix_y></root>'
    )
    assert info.raw_filename == "a.raw" and info.nav_shape == (2, 4)


# --- errors --------------------------------------------------------------------------------------


def _err(ctx, path, **kwargs):
    with pytest.raises(DataSetException) as e:
        ctx.load(kwargs.pop("filetype", "empad"), path=str(path), **kwargs)
    assert str(path) in str(e.value)
    return str(e.value)


def test_empad_missing(inline_ctx, tmp_path, sample):
    assert "no such file" in _err(inline_ctx, tmp_path / "nope.xml")
    path, _ = sample
    (path.parent / RAW_NAME).unlink()
    assert "raw file missing" in _err(inline_ctx, path)


def test_empad_not_empad_auto(inline_ctx, tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<html><body>hi</body></html>")
    assert "could not determine" in _err(inline_ctx, path, filetype="auto")
    assert "root element" in _err(inline_ctx, path)
    path.write_bytes(b"\x00\xff garbage")
    assert "not a valid XML" in _err(inline_ctx, path)


def test_empad_truncated(inline_ctx, sample):
    path, _ = sample
    raw = path.parent / RAW_NAME
    data = raw.read_bytes()
    raw.write_bytes(data[:-100])
    assert "truncated" in _err(inline_ctx, path)
    raw.write_bytes(data[: 130 * 128 * 4 * 14])
    assert "needs 15 frames" in _err(inline_ctx, path)


def test_empad_header_contradicts_size(inline_ctx, sample):
    path, _ = sample
    raw = path.parent / RAW_NAME
    raw.write_bytes(raw.read_bytes() * 2)
    assert "holds 30" in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "body,msg",
    [
        ("<pix_x>five</pix_x><pix_y>3</pix_y>", "not an integer"),
        ("<pix_x>0</pix_x><pix_y>3</pix_y>", "positive"),
        ("<pix_x>5</pix_x>", "pix_y"),
    ],
)
def test_empad_corrupt_xml(inline_ctx, tmp_path, body, msg):
    path, _ = write_empad(tmp_path, xml_body=body)
    assert msg in _err(inline_ctx, path)


def test_empad_no_raw_element(inline_ctx, tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<root><pix_x>1</pix_x></root>")
    assert "raw_file" in _err(inline_ctx, path)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"sig_shape": (128, 130)}, "sig_shape"),
    ],
)
def test_empad_bad_shapes(inline_ctx, sample, kwargs, msg):
    path, _ = sample
    assert msg in _err(inline_ctx, path, **kwargs)


def test_empad_nav_shape_and_sync_offset_rules(inline_ctx, sample):
    # LiberTEM: nav_shape may ask for more frames than stored (they are never read);
    # only sync_offset is range-checked, with LiberTEM's text
    path, _ = sample
    ds = inline_ctx.load("empad", path=str(path), nav_shape=(4, 5))
    assert tuple(ds.shape.nav) == (4, 5)
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        inline_ctx.load("empad", path=str(path), sync_offset=-15)


def test_empad_raw_not_multiple(inline_ctx, tmp_path):
    raw = tmp_path / "x.raw"
    raw.write_bytes(b"\0" * 1000)
    assert "whole number" in _err(inline_ctx, raw)
