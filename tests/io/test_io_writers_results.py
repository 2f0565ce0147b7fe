"""libertem.io.writers: atomic partition writes, result formats."""

import io
import os
import zipfile

import h5py
import numpy as np
import pytest
import tifffile

from libertem.common import Shape, Slice
from libertem.common.analysis import AnalysisResult, AnalysisResultSet
from libertem.io.dataset.base.tiles import DataTile
from libertem.io.writers.base import WriteHandle
from libertem.io.writers.results.base import ResultFormat, ResultFormatRegistry
from libertem.io.writers.results.formats import (
    HDF5ResultFormat,
    NPZCompressedResultFormat,
    NPZResultFormat,
    RawResultFormat,
    TiffResultFormat,
)

FRAMES = np.arange(6 * 4 * 4, dtype=np.float32).reshape((6, 4, 4))
PART = Slice((10, 0, 0), Shape((6, 4, 4), sig_dims=2))  # frames 10..15 of a dataset


def _tiles():
    """Tiles of the partition (dataset coordinates), in two signal halves."""
    for start in range(0, 6, 2):
        for y in (0, 2):
            sl = Slice((10 + start, y, 0), Shape((2, 2, 4), sig_dims=2))
            yield DataTile(FRAMES[start : start + 2, y : y + 2, :], sl, 0)


def test_write_handle_writes_tiles_at_their_place(tmp_path):
    dest = tmp_path / "part.raw"
    with WriteHandle(dest, tmp_path / "tmp", PART, np.float32) as wh:
        passed = list(wh.write_tiles(_tiles()))
        assert not dest.exists()  # only moved into place at the end
    assert len(passed) == 6
    np.testing.assert_array_equal(
        np.fromfile(dest, dtype=np.float32).reshape(FRAMES.shape), FRAMES
    )
    assert os.listdir(tmp_path / "tmp") == []


def test_write_handle_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "part.raw"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with WriteHandle(dest, tmp_path, PART, np.uint16) as wh:
            wh.write_tile(next(_tiles()))
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["part.raw"]


def test_write_handle_needs_with(tmp_path):
    wh = WriteHandle(tmp_path / "x.raw", tmp_path, PART, np.float32)
    with pytest.raises(RuntimeError, match="with"):
        wh.write_tile(next(_tiles()))


@pytest.fixture
def result_set():
    return AnalysisResultSet(
        [
            AnalysisResult(
                np.arange(6.0).reshape(2, 3), np.zeros((2, 3)), "Int", "ints", "intensity"
            ),
            AnalysisResult(np.full((2, 2), 1 - 2j), np.zeros((2, 2)), "Field", "field", "field"),
            AnalysisResult(
                np.ones(3), np.ones(3), "Vis", "hidden", "vis", include_in_download=False
            ),
        ]
    )


def _serialize(fmt):
    buf = io.BytesIO()
    fmt.serialize_to_buffer(buf)
    return io.BytesIO(buf.getvalue())


def test_registry_finds_formats_by_id():
    formats = ResultFormat.get_available_formats()
    assert set(formats) == {"NPZ", "NPZ_COMPRESSED", "TIFF", "HDF5", "RAW"}
    assert ResultFormat.get_format_by_id("HDF5") is HDF5ResultFormat
    assert type(ResultFormat) is ResultFormatRegistry
    with pytest.raises(KeyError, match="unknown result format 'XLS'"):
        ResultFormat.get_format_by_id("XLS")


def test_only_downloadable_results_are_written(result_set):
    assert NPZResultFormat(result_set).get_result_keys() == ["intensity", "field"]


@pytest.mark.parametrize("cls", [NPZResultFormat, NPZCompressedResultFormat])
def test_npz_roundtrip(result_set, cls):
    fmt = cls(result_set)
    assert fmt.get_filename().endswith(".npz")
    loaded = np.load(_serialize(fmt))
    assert sorted(loaded.files) == ["field", "intensity"]
    np.testing.assert_array_equal(loaded["field"], result_set.field.raw_data)


def test_tiff_pages(result_set):
    fmt = TiffResultFormat(result_set)
    assert fmt.get_content_type() == "image/tiff"
    with tifffile.TiffFile(_serialize(fmt)) as tif:
        pages = {p.description: p.asarray() for p in tif.pages}
    assert list(pages) == ["intensity", "field_real", "field_imag"]
    np.testing.assert_array_equal(pages["intensity"], result_set.intensity.raw_data)
    np.testing.assert_array_equal(pages["field_imag"], np.full((2, 2), -2.0))


def test_hdf5_datasets(result_set):
    with h5py.File(_serialize(HDF5ResultFormat(result_set)), "r") as f:
        assert sorted(f) == ["field", "intensity"]
        np.testing.assert_array_equal(f["field"][()], result_set.field.raw_data)
        assert f["intensity"].attrs["title"] == "Int"


def test_raw_members_describe_themselves(result_set):
    with zipfile.ZipFile(_serialize(RawResultFormat(result_set))) as zf:
        names = zf.namelist()
        assert names == ["intensity_float64_2x3.raw", "field_complex128_2x2.raw"]
        data = np.frombuffer(zf.read(names[0]), dtype=np.float64).reshape((2, 3))
    np.testing.assert_array_equal(data, result_set.intensity.raw_data)


def test_base_format_is_abstract(result_set):
    fmt = ResultFormat(result_set)
    for method in (fmt.get_content_type, fmt.get_filename):
        with pytest.raises(NotImplementedError):
            method()
    with pytest.raises(NotImplementedError):
        fmt.serialize_to_buffer(io.BytesIO())
