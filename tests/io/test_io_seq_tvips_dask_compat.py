"""SEQ corrections and header fields, TVIPS scan detection, Dask chunk helpers."""

import struct
import warnings
import xml.etree.ElementTree as ET

import dask.array as da
import mrcfile
import numpy as np
import pytest
from rsciio.tvips import file_writer

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base import DtypeConversionDecoder, TilingScheme
from libertem.io.dataset.dask import (
    DaskBackend,
    DaskDataSet,
    DaskFile,
    DaskFileSet,
    FakeDaskMMapFile,
    array_mult,
    findall,
    get_chunksizes,
    get_last_chunked_dim,
    get_values,
    merge_until_target,
    min_neighbour,
    min_with_min_neighbor,
    modify_chunking,
    neighbour_idxs,
)
from libertem.io.dataset.seq import (
    HEADER_SIZE,
    SEQFileSet,
    array_cropping,
    bin_array2d,
    read_seq_header,
    xml_binned_map_maker,
    xml_defect_coord_extractor,
    xml_map_index_selector,
    xml_map_sizes,
    xml_processing,
    xml_unbinned_map_maker,
)
from libertem.io.dataset.tvips import (
    DetectionError,
    SeriesHeader,
    detect_shape,
    frames_in_file,
    get_filenames,
    get_image_count_and_sig_shape,
    read_series_header,
)
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from utils import make_roi
from writers_dm_ser_seq import write_seq

# --- SEQ ----------------------------------------------------------------------------------------

DEFECTS = """<Defects>
  <bad_pixel_map rows="8" columns="12">
    <defect row="1"/><defect column="10"/><defect rows="4-5"/><defect row="7" column="2"/>
  </bad_pixel_map>
  <bad_pixel_map rows="4" columns="6"><defect row="3" column="0"/></bad_pixel_map>
</Defects>"""


def test_xml_helpers():
    root = ET.fromstring(DEFECTS)
    maps = root.findall("bad_pixel_map")
    sizes = xml_map_sizes(maps)
    assert sizes == [(8, 12), (4, 6)]
    assert xml_unbinned_map_maker(sizes) == 0 and xml_binned_map_maker(sizes) == {2: 1}
    assert xml_map_index_selector([False, True]) == 1
    with pytest.raises(DataSetException, match="2 maps"):
        xml_map_index_selector([True, True])
    rows, cols, pix = xml_defect_coord_extractor(maps[0], 0, sizes)
    assert (rows, cols, pix) == ([1, 4, 5], [10], [(7, 2)])
    full = xml_processing(ET.ElementTree(root), {"frame_shape": (8, 12)}).todense()
    expected = np.zeros((8, 12), bool)
    expected[[1, 4, 5]] = True
    expected[:, 10] = True
    expected[7, 2] = True
    np.testing.assert_array_equal(full, expected)
    roi = xml_processing(root, {"frame_shape": (3, 4), "roi": (4, 8, 3, 4)}).todense()
    np.testing.assert_array_equal(roi, expected[4:7, 8:12])
    binned = xml_processing(root, {"binning": 2, "frame_shape": (4, 6)}).todense()
    assert binned.sum() == 1 and binned[3, 0]
    one_map = ET.fromstring(DEFECTS.split('\n  <bad_pixel_map rows="4"')[0] + "</Defects>")
    np.testing.assert_array_equal(
        xml_processing(one_map, {"binning": 2, "frame_shape": (4, 6)}).todense(),
        bin_array2d(expected, 2),
    )
    a = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(array_cropping(a, (3, 4), (2, 2), (1, 1)), a[1:3, 1:3])
    np.testing.assert_array_equal(bin_array2d(np.ones((4, 4)), 2), np.full((2, 2), 4.0))
    with pytest.raises(ValueError):
        array_cropping(a, (3, 4), (3, 3), (1, 1))
    bad = ET.fromstring(
        '<D><bad_pixel_map rows="2" columns="2"><defect row="5"/></bad_pixel_map></D>'
    )
    with pytest.raises(DataSetException, match="outside the map"):
        xml_processing(bad, {})


def _seq_with_corrections(tmp_path, with_defects=True):
    data = np.random.default_rng(0).integers(10, 4000, size=(6, 8, 12)).astype("<u2")
    path = write_seq(tmp_path / "a.seq", data)
    dark = np.random.default_rng(1).integers(0, 9, size=(8, 12)).astype("f4")
    gain = np.random.default_rng(2).random((8, 12)).astype("f4") + 0.5
    for name, arr in (("dark", dark), ("gain", gain)):
        with mrcfile.new(str(path) + f".{name}.mrc") as m:
            m.set_data(arr)
    if with_defects:
        (tmp_path / "a.xml").write_text(DEFECTS)
    return str(path), data, dark, gain


def test_seq_corrections(tmp_path, ctx):
    path, data, dark, gain = _seq_with_corrections(tmp_path)
    ds = ctx.load("seq", path, None, (2, 3))
    assert isinstance(list(ds.get_partitions())[0].fileset, SEQFileSet)
    corr = ds.get_correction_data()
    assert corr.have_corrections()
    np.testing.assert_array_equal(corr.get_dark_frame(), dark)
    np.testing.assert_array_equal(corr.get_gain_map(), gain)
    excluded = corr.get_excluded_pixels().todense()
    assert excluded[1].all() and excluded[:, 10].all() and excluded[7, 2] and excluded.sum() == 42
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corr)
    corrected = (data.astype("f8") - dark) * gain
    good = ~excluded
    np.testing.assert_allclose(res["intensity"].data[good], corrected.sum(axis=0)[good], rtol=1e-5)
    assert ds.meta["width"] == 12 and read_seq_header(path)["fields"]["bit_depth"] == 16
    assert HEADER_SIZE == 632


def test_seq_without_corrections(tmp_path, inline_ctx):
    data = np.zeros((3, 4, 4), np.uint8)
    path = write_seq(tmp_path / "b.seq", data)
    ds = inline_ctx.load("seq", str(path))
    assert not ds.get_correction_data().have_corrections()
    with pytest.warns(FutureWarning, match="scan_size"):
        inline_ctx.load("seq", str(path), (3,))
    with mrcfile.new(str(path) + ".dark.mrc") as m:
        m.set_data(np.zeros((5, 5), "f4"))
    with pytest.raises(DataSetException, match="does not fit frames"):
        ds.get_correction_data()


# --- TVIPS ------------------------------------------------------------------------------


def _tvips(tmp_path, n, rotidx=None, max_file_size=None):
    data = np.random.default_rng(n).integers(0, 255, (n, 6, 5)).astype("u1")
    signal = {
        "data": data,
        "axes": [
            {
                "size": n,
                "index_in_array": 0,
                "name": "t",
                "scale": 1.0,
                "offset": 0.0,
                "units": "ms",
                "navigate": True,
            },
            {
                "size": 6,
                "index_in_array": 1,
                "name": "y",
                "scale": 1.0,
                "offset": 0.0,
                "units": "1/nm",
                "navigate": False,
            },
            {
                "size": 5,
                "index_in_array": 2,
                "name": "x",
                "scale": 1.0,
                "offset": 0.0,
                "units": "1/nm",
                "navigate": False,
            },
        ],
        "metadata": {},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        file_writer(str(tmp_path / "r.tvips"), signal, max_file_size=max_file_size)
    first = tmp_path / "r_000.tvips"
    if rotidx is not None:
        buf = bytearray(first.read_bytes())
        fh = struct.unpack_from("<I", buf, 48)[0]
        record = fh + 30
        for i, v in enumerate(rotidx):
            struct.pack_into("<I", buf, 256 + i * record + 48, v)
        first.write_bytes(bytes(buf))
    return str(first), data


def test_tvips_detection(tmp_path, inline_ctx):
    rotidx = [0, 0, 0] + list(range(1, 10)) + [1, 2]
    path, data = _tvips(tmp_path, 14, rotidx)
    assert detect_shape(path) == (3, (3, 3))
    ds = inline_ctx.load("tvips", path)
    assert ds.sync_offset == 3 and tuple(ds.shape.nav) == (3, 3)
    roi = make_roi((3, 3), seed=1)
    got = inline_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
    np.testing.assert_array_equal(got, data[3:12][roi.reshape(-1)])
    ds = inline_ctx.load("tvips", path, (14,), sync_offset=0)
    assert ds.sync_offset == 0 and tuple(ds.shape.nav) == (14,)
    h = read_series_header(path)
    assert isinstance(h, SeriesHeader) and (h.xdim, h.ydim, h.bpp, h.version) == (5, 6, 8, 2)
    assert frames_in_file(path, h) == 14 and get_filenames(path) == [path]
    assert get_image_count_and_sig_shape(path) == (14, (6, 5))


def test_tvips_no_scan_info(tmp_path, inline_ctx):
    path, _ = _tvips(tmp_path, 5, rotidx=[0] * 5)
    with pytest.raises(DetectionError, match="no frame with scan index 1"):
        detect_shape(path)
    ds = inline_ctx.load("tvips", path)
    assert ds.sync_offset == 0 and tuple(ds.shape.nav) == (5,)


def test_tvips_series_counts(tmp_path):
    record = 60 + 30
    path, _ = _tvips(tmp_path, 10, max_file_size=256 + 4 * record)
    files = get_filenames(path)
    assert len(files) > 1
    h = read_series_header(path)
    assert frames_in_file(files[0], h) == 4
    assert sum(frames_in_file(f, h) for f in files) == 10
    assert get_image_count_and_sig_shape(path)[0] == 10


# --- Dask -------------------------------------------------------------------------------


def test_chunk_helpers():
    np.testing.assert_array_equal(array_mult([1, 2], [3, 4, 5]), [[3, 4, 5], [6, 8, 10]])
    arr = da.zeros((6, 4, 5), chunks=((2, 4), (4,), (2, 3)), dtype="f4")
    np.testing.assert_array_equal(get_chunksizes(arr), [[[64, 96]], [[128, 192]]])
    assert get_last_chunked_dim(arr.chunks) == 2 and get_last_chunked_dim(((3,), (4,))) == -1
    assert findall([1, 2, 1], 1) == [0, 2] and get_values("abc", [2, 0]) == ["c", "a"]
    assert neighbour_idxs([5, 6, 7], 0) == [1] and neighbour_idxs([5, 6, 7], 1) == [0, 2]
    assert min_neighbour([5, 9, 7], 1) == 0 and min_neighbour([4], 0) is None
    assert min_with_min_neighbor([5, 1, 7, 3]) == (1, 0)
    assert modify_chunking(((1, 2, 3), (4,)), 0, [1, 2]) == ((1, 5), (4,))
    with pytest.raises(ValueError):
        modify_chunking(((1, 2, 3),), 0, [0, 2])
    big = da.zeros((12, 10), chunks=(1, 5), dtype="u1")
    merged = merge_until_target(big, 30)
    assert all(c * 10 >= 30 for c in merged.chunks[0]) and merged.chunks[1] == (10,)
    assert sum(merged.chunks[0]) == 12
    assert len(merge_until_target(big, 10**6, min_chunks=3).chunks[0]) == 3


def test_dask_static_methods():
    sl = DaskDataSet.chunks_to_slices((2, 3))
    assert sl == [slice(0, 2), slice(2, 5)]
    chunk = [slice(2, 4), slice(0, 3), slice(0, 5), slice(0, 6)]
    assert DaskDataSet.slices_to_origin(chunk) == (2, 0, 0, 0)
    assert DaskDataSet.slices_to_shape(chunk) == (2, 3, 5, 6)
    flat = DaskDataSet.flatten_nav(chunk, (4, 3), 2)
    assert flat.origin == (6, 0, 0) and tuple(flat.shape) == (6, 5, 6)


def test_dask_dataset_members(ctx):
    data = np.random.default_rng(0).random((4, 5, 6, 7)).astype("f4")
    arr = da.from_array(data, chunks=(1, 5, 3, 7))
    ds = ctx.load("dask", arr, sig_dims=2, min_size=2 * 5 * 6 * 7 * 4)
    assert isinstance(ds.get_io_backend(), DaskBackend) and ds.get_num_partitions() == 2
    slices = list(ds.get_slices())
    assert [(a, b) for _, a, b in slices] == [(0, 10), (10, 20)]
    # LiberTEM reorders navigation axes by chunk count, it never flattens them
    flat = ctx.load("dask", arr, sig_dims=2, preserve_dimensions=False)
    assert tuple(flat.shape) == (4, 5, 6, 7)
    res = ctx.run_udf(dataset=flat, udf=PickUDF(), roi=make_roi((4, 5), seed=4))
    np.testing.assert_array_equal(res["intensity"].raw_data, data[make_roi((4, 5), seed=4)])
    fs = ds.fileset
    assert isinstance(fs, DaskFileSet) and all(isinstance(f, DaskFile) for f in fs)
    scheme = TilingScheme.make_for_shape((3, 6, 7), ds.shape)
    rr = fs.get_read_ranges(0, 20, "f4", scheme)
    impl = ds.get_io_backend().get_impl()
    got = np.zeros((20, 6, 7), "f4")
    for t in impl.get_tiles(scheme, fs, rr, None, "f4", "f4", DtypeConversionDecoder(), 0, None):
        got[t.slice.get()] = t.data
    np.testing.assert_array_equal(got, data.reshape(20, 6, 7))
    f = FakeDaskMMapFile(fs[1].path, fs[1]).open()
    np.testing.assert_array_equal(f.array, data.reshape(20, 6, 7)[10:])
    f.close()
    with pytest.raises(DataSetException, match="alternative I/O backends"):
        ctx.load("dask", arr, sig_dims=2, io_backend="mmap")
    assert ds.check_valid()
