"""Raw CSR sparse datasets: descriptor, arrays, tiles in every array backend, UDF runs,
ROI, sync_offset, dtypes, and errors; checked against the dense numpy data written."""

import os

import numpy as np
import pytest
import scipy.sparse
import sparse
from hypothesis import given
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset import raw_csr
from libertem.io.dataset.base import TilingScheme
from libertem.io.dataset.raw_csr import (
    NUMPY,
    SCIPY_CSR,
    RawCSRDataSet,
    get_descriptor,
    get_nav_size,
    get_triple,
    populate_tile,
    populate_tile_numba,
    read_tiles_straight,
    read_tiles_with_roi,
    sliced_indptr,
)
from libertem.udf import UDF
from utils import make_roi
from writers_csr import sparse_frames, write_csr
from writers_dm_ser_seq import check_dataset, shifted

NAV, SIG = (4, 5), (8, 9)

# scipy sums and the numpy.matrix backend make np.matrix objects
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


def _scheme(depth, sig=SIG):
    return TilingScheme.make_for_shape((depth, *sig), Shape((1, *sig), sig_dims=len(sig)))


def _frames_of(tiles):
    """Dense frames ``(n, sig pixels)`` of CSR tiles, in order."""
    return np.concatenate([t.data.toarray() for t in tiles])


def _shifted_flat(flat, sync_offset, n):
    return shifted(flat, sync_offset, n)


@pytest.fixture
def sample(tmp_path):
    data = sparse_frames(NAV + SIG, 0.2, "uint16", seed=1)
    return write_csr(tmp_path, data), data


# --- descriptor and arrays --------------------------------------------------------------------


def test_descriptor_and_arrays(sample):
    path, data = sample
    d = get_descriptor(path)
    base = os.path.dirname(path)
    assert d.indptr_file == os.path.join(base, "sparse_indptr.raw")
    assert d.indices_file == os.path.join(base, "sparse_indices.raw")
    assert d.data_file == os.path.join(base, "sparse_data.raw")
    assert (d.indptr_dtype, d.indices_dtype, d.data_dtype) == (
        np.dtype("<i8"),
        np.dtype("<i4"),
        np.dtype("<u2"),
    )
    ref = scipy.sparse.csr_matrix(data.reshape(20, -1))
    t = get_triple(d)
    np.testing.assert_array_equal(t.indptr, ref.indptr)
    np.testing.assert_array_equal(t.indices, ref.indices)
    np.testing.assert_array_equal(t.data, ref.data)
    assert not t.data.flags.writeable
    assert get_nav_size(d) == 20
    raw_csr.check(d, NAV, SIG, debug=True)
    assert raw_csr.can_use_numba(t)
    assert raw_csr.load_toml(path)["params"]["filetype"] == "raw_csr"


def test_sliced_indptr(sample):
    path, data = sample
    t = get_triple(get_descriptor(path))
    part = Slice((3, 0, 0), Shape((6, *SIG), sig_dims=2))
    np.testing.assert_array_equal(sliced_indptr(t, part, 0), t.indptr[3:10])
    got = sliced_indptr(t, part, -5)  # rows -2 .. 3: two empty rows first
    np.testing.assert_array_equal(got, [0, 0, 0, *t.indptr[1:5]])
    got = sliced_indptr(t, part, 15)  # rows 18 .. 23: rows 20.. are empty
    np.testing.assert_array_equal(got, [*t.indptr[18:21], *[t.indptr[20]] * 4])
    assert set(sliced_indptr(t, part, 40)) == {t.indptr[20]}
    assert set(sliced_indptr(t, part, -40)) == {0}


def test_populate_tile_both_versions(sample):
    path, data = sample
    t = get_triple(get_descriptor(path))
    rows = np.array([0, 3, 4, 11, 19])
    starts = t.indptr[rows].astype(np.int64)
    stops = t.indptr[rows + 1].astype(np.int64)
    nnz = int((stops - starts).sum())
    outs = []
    for fn in (populate_tile, populate_tile_numba):
        out = (np.empty(nnz, np.float32), np.empty(nnz, np.int32), np.empty(6, np.int64))
        fn(starts, stops, t.data, t.indices, *out)
        outs.append(out)
        m = scipy.sparse.csr_matrix((out[0], out[1], out[2]), shape=(5, 72))
        np.testing.assert_array_equal(m.toarray(), data.reshape(20, -1)[rows])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@given(
    depth=st.integers(1, 7),
    sync_offset=st.integers(-22, 22),
    start=st.integers(0, 19),
    length=st.integers(1, 20),
    roi_seed=st.one_of(st.none(), st.integers(0, 10**6)),
    numba_ok=st.booleans(),
)
def test_read_tiles_property(depth, sync_offset, start, length, roi_seed, numba_ok):
    """Any partition, depth, sync_offset and ROI: the tiles hold exactly the reference rows."""
    length = min(length, 20 - start)
    path, flat = _PROPERTY_SAMPLE
    t = get_triple(get_descriptor(path))
    if not numba_ok:  # a non-native data array takes the numpy gather
        t = t._replace(data=t.data.astype(">f4"))
    assert raw_csr.can_use_numba(t) == numba_ok
    part = Slice((start, 0, 0), Shape((length, *SIG), sig_dims=2))
    ref = _shifted_flat(flat, sync_offset, 20)[start : start + length]
    if roi_seed is None:
        tiles = list(read_tiles_straight(t, part, sync_offset, _scheme(depth), np.float64))
    else:
        roi = np.random.default_rng(roi_seed).random(20) < 0.5
        if roi_seed % 2:  # the partition's part of the ROI, or the whole dataset's
            roi = roi[start : start + length]
        tiles = list(read_tiles_with_roi(t, part, sync_offset, _scheme(depth), roi, np.float64))
        ref = ref[roi[start : start + length] if roi.size == 20 else roi]
    origins = list(range(0, ref.shape[0], depth))
    assert [t.slice.origin[0] for t in tiles] == origins
    assert [t.tile_slice.origin[0] for t in tiles] == [start + o for o in origins]
    assert all(t.data.shape[0] <= depth and t.data.dtype == np.float64 for t in tiles)
    assert all(tuple(t.slice.shape) == (t.data.shape[0], *SIG) for t in tiles)
    got = _frames_of(tiles) if tiles else np.zeros((0, 72))
    np.testing.assert_array_equal(got, ref)


def _make_property_sample():
    import tempfile

    data = sparse_frames((20, *SIG), 0.3, "float32", seed=5)
    path = write_csr(tempfile.mkdtemp(prefix="csr_prop_"), data, sig_dims=2)
    return path, data.reshape(20, -1)


_PROPERTY_SAMPLE = _make_property_sample()


# --- the dataset ------------------------------------------------------------------------------


def test_load_and_detect(ctx, sample):
    path, data = sample
    ds = ctx.load("raw_csr", path=path)
    assert isinstance(ds, RawCSRDataSet)
    assert tuple(ds.shape) == NAV + SIG and ds.shape.sig_dims == 2
    assert ds.dtype == np.uint16
    assert tuple(ds.array_backends) == (SCIPY_CSR,)
    auto = ctx.load("auto", path=path)
    assert isinstance(auto, RawCSRDataSet) and tuple(auto.shape) == NAV + SIG
    params = RawCSRDataSet.detect_params(path)
    assert params["parameters"]["path"] == path
    assert params["parameters"]["nav_shape"] == list(NAV)
    assert RawCSRDataSet.get_supported_extensions() == {"toml"}
    assert RawCSRDataSet.get_supported_io_backends() == ["mmap"]
    assert RawCSRDataSet(path).supports_correction() is False
    ds = ctx.load("raw_csr", path, nav_shape=(20,), sig_shape=(72,))
    assert tuple(ds.shape) == (20, 72) and ds.shape.sig_dims == 1
    names = {d["name"]: d["value"] for d in ds.get_diagnostics()}
    assert names["stored values (nnz)"] == str(np.count_nonzero(data))
    empty = np.count_nonzero(np.count_nonzero(data.reshape(20, -1), axis=1) == 0)
    assert names["stored frames without values"] == str(empty)
    assert path in ds.get_cache_key()


def test_detect_rejects_other_toml(tmp_path):
    other = tmp_path / "other.toml"
    other.write_text('[params]\nfiletype = "raw"\n')
    assert RawCSRDataSet.detect_params(str(other)) is False
    broken = tmp_path / "broken.toml"
    broken.write_text("[params\n")
    assert RawCSRDataSet.detect_params(str(broken)) is False
    assert RawCSRDataSet.detect_params(str(tmp_path / "missing.toml")) is False
    data_file = tmp_path / "x.raw"
    data_file.write_bytes(b"[params]\nfiletype = 'raw_csr'\n")
    assert RawCSRDataSet.detect_params(str(data_file)) is False


BACKENDS = [
    None,
    SCIPY_CSR,
    NUMPY,
    "sparse.COO",
    "sparse.GCXS",
    "scipy.sparse.csc_matrix",
    "scipy.sparse.coo_matrix",
    "scipy.sparse.csr_array",
    "numpy.matrix",
]


@pytest.mark.parametrize("array_backend", BACKENDS)
@pytest.mark.parametrize("with_roi", [False, True])
def test_partition_tiles_in_each_backend(inline_ctx, sample, array_backend, with_roi):
    path, data = sample
    ds = inline_ctx.load("raw_csr", path=path, num_partitions=3)
    roi = make_roi(NAV, seed=3).reshape(-1) if with_roi else None
    frames = []
    for p in ds.get_partitions():
        roi_part = None if roi is None else roi[p.start : p.stop]
        for tile in p.get_tiles(_scheme(3), np.float32, roi_part, array_backend=array_backend):
            n = tile.slice.shape[0]
            kind = array_backend or SCIPY_CSR
            if kind in (NUMPY, "sparse.COO", "sparse.GCXS"):
                assert tile.data.shape == (n, *SIG)
            else:
                assert tile.data.shape == (n, 72)
            if kind == SCIPY_CSR:
                assert isinstance(tile.data, scipy.sparse.csr_matrix)
            dense = tile.data
            if isinstance(dense, sparse.SparseArray):
                dense = dense.todense()
            elif scipy.sparse.issparse(dense):
                dense = dense.toarray()
            dense = np.asarray(dense).reshape((n, -1))
            assert dense.dtype == np.float32
            frames.append(dense)
    ref = data.reshape(20, -1)
    if roi is not None:
        ref = ref[roi]
    np.testing.assert_array_equal(np.concatenate(frames), ref)


class CSRSumsUDF(UDF):
    """Sums over frames and over pixels, computed on scipy CSR tiles."""

    def get_backends(self):
        return (self.BACKEND_SCIPY_CSR,)

    def get_result_buffers(self):
        return {
            "sig": self.buffer(kind="sig", dtype="float64"),
            "nav": self.buffer(kind="nav", dtype="float64"),
            "kinds": self.buffer(kind="single", dtype="int64"),
        }

    def process_tile(self, tile):
        if isinstance(tile, scipy.sparse.csr_matrix):
            self.results.kinds[:] += 1
        sig = tuple(self.meta.dataset_shape.sig)
        self.results.sig[:] += np.asarray(tile.sum(axis=0)).reshape(sig)
        self.results.nav[:] += np.asarray(tile.sum(axis=1)).reshape(-1)

    def merge(self, dest, src):
        dest.sig[:] += src.sig
        dest.nav[:] = src.nav
        dest.kinds[:] += src.kinds


@pytest.mark.parametrize("with_roi", [False, True])
def test_sparse_udf(ctx, sample, with_roi):
    path, data = sample
    ds = ctx.load("raw_csr", path=path, num_partitions=2)
    roi = make_roi(NAV, seed=4) if with_roi else None
    res = ctx.run_udf(dataset=ds, udf=CSRSumsUDF(), roi=roi)
    sel = data if roi is None else data[roi]
    np.testing.assert_allclose(res["sig"].data, sel.reshape(-1, *SIG).sum(axis=0))
    nav = data.sum(axis=(2, 3), dtype=np.float64)
    if roi is None:
        np.testing.assert_allclose(res["nav"].data, nav)
    else:
        np.testing.assert_allclose(res["nav"].data[roi], nav[roi])
    assert int(res["kinds"].data[0]) >= 2  # the UDF got CSR tiles


@pytest.mark.parametrize("sync_offset", [0, 3, -4])
def test_dense_udfs(ctx, tmp_path, sync_offset):
    """Dense UDFs (PickUDF, SumUDF, SumSigUDF) get dense tiles converted from CSR."""
    data = sparse_frames(NAV + SIG, 0.1, "float32", seed=7)
    path = write_csr(tmp_path, data)
    ds = ctx.load("raw_csr", path=path, sync_offset=sync_offset, num_partitions=3)
    ref = shifted(data.reshape(20, *SIG), sync_offset, 20).reshape(NAV + SIG)
    check_dataset(ctx, ds, ref, roi=make_roi(NAV, seed=8))


@pytest.mark.parametrize(
    "dtypes",
    [
        ("<i8", "<i4", "<u2"),
        ("<u4", "<u2", "<f4"),
        (">i8", ">i4", ">f8"),
        ("<i4", "<u1", "|b1"),
        ("<i8", "<i8", "<c8"),
        ("<u8", ">u4", "<i2"),
    ],
)
def test_dtypes(inline_ctx, tmp_path, dtypes):
    indptr, indices, values = dtypes
    kind = np.dtype(values).kind
    data = sparse_frames((6, 4, 4), 0.3, np.dtype(values).newbyteorder("="), seed=9)
    path = write_csr(tmp_path, data, indptr_dtype=indptr, indices_dtype=indices, data_dtype=values)
    ds = inline_ctx.load("raw_csr", path=path)
    assert ds.dtype == np.dtype(values)
    roi = make_roi((6,), seed=2)
    for r in (None, roi):
        tiles = [
            t
            for p in ds.get_partitions()
            for t in p.get_tiles(
                _scheme(4, (4, 4)),
                np.complex128 if kind == "c" else np.float64,
                None if r is None else r[p.start : p.stop],
            )
        ]
        ref = data.reshape(6, -1) if r is None else data.reshape(6, -1)[r]
        np.testing.assert_array_equal(_frames_of(tiles), ref)


def test_nav_shape_and_sync_offset(inline_ctx, sample):
    path, data = sample
    frames = data.reshape(20, *SIG)
    ds = inline_ctx.load("raw_csr", path=path, nav_shape=(2, 8))
    check_dataset(inline_ctx, ds, frames[:16].reshape(2, 8, *SIG))
    ds = inline_ctx.load("raw_csr", path=path, nav_shape=(5, 5), sync_offset=-3)
    check_dataset(inline_ctx, ds, shifted(frames, -3, 25).reshape(5, 5, *SIG))
    ds = inline_ctx.load("raw_csr", path=path, sig_shape=(72,))
    check_dataset(inline_ctx, ds, data.reshape(4, 5, 72))


def test_shapes_from_arguments_only(inline_ctx, tmp_path):
    data = sparse_frames((6, 3, 4), 0.5, "uint8", seed=3)
    path = write_csr(tmp_path, data, write_shapes=False)
    with pytest.raises(DataSetException, match="sparse.toml.*no sig_shape"):
        inline_ctx.load("raw_csr", path=path)
    ds = inline_ctx.load("raw_csr", path=path, sig_shape=(3, 4))
    assert tuple(ds.shape) == (6, 3, 4)
    check_dataset(inline_ctx, ds, data)


# --- errors -----------------------------------------------------------------------------------


def test_errors_at_load(inline_ctx, tmp_path, sample):
    path, data = sample
    load = inline_ctx.load
    with pytest.raises(DataSetException, match="missing.toml.*no such file"):
        load("raw_csr", path=str(tmp_path / "missing.toml"))
    with pytest.raises(DataSetException, match="sparse.toml.*sig_shape.*does not fit"):
        load("raw_csr", path=path, sig_shape=(8, 8))
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(load("raw_csr", path=path, nav_shape=(5, 5)).shape.nav) == (5, 5)
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        load("raw_csr", path=path, sync_offset=20)
    with pytest.raises(DataSetException, match="io_backend 'buffered'"):
        load("raw_csr", path=path, io_backend="buffered")
    with pytest.raises(DataSetException, match="nav_shape"):
        load("raw_csr", path=path, nav_shape=(0, 3))

    def variant(name, edit):
        text = open(path).read()
        p = tmp_path / name
        p.write_text(edit(text))
        return str(p)

    bad = variant("nosec.toml", lambda t: t.split("[raw_csr]")[0])
    with pytest.raises(DataSetException, match="nosec.toml.*no \\[raw_csr\\] section"):
        load("raw_csr", path=bad)
    bad = variant("dt.toml", lambda t: t.replace('data_dtype = "<u2"', 'data_dtype = "nonsense"'))
    with pytest.raises(DataSetException, match="dt.toml.*data_dtype"):
        load("raw_csr", path=bad)
    bad = variant(
        "fdt.toml", lambda t: t.replace('indices_dtype = "<i4"', 'indices_dtype = "<f4"')
    )
    with pytest.raises(DataSetException, match="fdt.toml.*indices_dtype.*unsupported"):
        load("raw_csr", path=bad)
    bad = variant("nofile.toml", lambda t: t.replace('"sparse_data.raw"', '"gone.raw"'))
    with pytest.raises(DataSetException, match="gone.raw.*no such file"):
        load("raw_csr", path=bad)
    bad = variant("ft.toml", lambda t: t.replace('filetype = "raw_csr"', 'filetype = "raw"'))
    with pytest.raises(DataSetException, match="ft.toml.*filetype"):
        load("raw_csr", path=bad)
    bad = variant("syntax.toml", lambda t: t.replace("[raw_csr]", "[raw_csr"))
    with pytest.raises(DataSetException, match="syntax.toml.*not a valid TOML"):
        load("raw_csr", path=bad)
    bad = variant("shape.toml", lambda t: t.replace("sig_shape = [8, 9]", 'sig_shape = "8x9"'))
    with pytest.raises(DataSetException, match="shape.toml.*sig_shape"):
        load("raw_csr", path=bad)


def test_errors_inconsistent_arrays(inline_ctx, tmp_path):
    data = sparse_frames((6, 4, 4), 0.5, "uint16", seed=11)
    path = write_csr(tmp_path, data)
    d = get_descriptor(path)
    values = open(d.data_file, "rb").read()
    with open(d.data_file, "wb") as f:
        f.write(values[:-1])
    with pytest.raises(DataSetException, match="sparse_data.raw.*whole number"):
        inline_ctx.load("raw_csr", path=path)
    with open(d.data_file, "wb") as f:
        f.write(values[:-2])
    with pytest.raises(DataSetException, match="sparse_data.raw.*holds .* values"):
        inline_ctx.load("raw_csr", path=path)
    with open(d.data_file, "wb") as f:
        f.write(values)
    indptr = np.fromfile(d.indptr_file, dtype="<i8")
    indptr[-1] += 1
    indptr.tofile(d.indptr_file)
    with pytest.raises(DataSetException, match="sparse_indptr.raw.*runs from 0 to"):
        inline_ctx.load("raw_csr", path=path)


def test_corrupt_content_raises_when_read(inline_ctx, tmp_path):
    """Offsets and indices are checked per tile: corrupt ones raise, never read out of bounds."""
    data = sparse_frames((6, 4, 4), 0.5, "uint16", seed=12)
    path = write_csr(tmp_path, data)
    d = get_descriptor(path)
    good_indptr = np.fromfile(d.indptr_file, dtype="<i8")
    bad = good_indptr.copy()
    bad[3] = 10**12
    bad.tofile(d.indptr_file)
    ds = inline_ctx.load("raw_csr", path=path)
    with pytest.raises(DataSetException, match="row offsets"):
        check_dataset(inline_ctx, ds, data)
    with pytest.raises(DataSetException, match="row offsets"):
        check_dataset(inline_ctx, ds, data, roi=make_roi((6,), seed=1))
    with pytest.raises(DataSetException, match="offsets decrease"):
        raw_csr.check(d, (6,), (4, 4), debug=True)
    good_indptr.tofile(d.indptr_file)
    indices = np.fromfile(d.indices_file, dtype="<i4")
    indices[-1] = 16
    indices.tofile(d.indices_file)
    with pytest.raises(DataSetException, match="indices outside the frame"):
        raw_csr.check(d, (6,), (4, 4), debug=True)
    ds = inline_ctx.load("raw_csr", path=path)
    with pytest.raises(DataSetException, match="indices outside the frame"):
        check_dataset(inline_ctx, ds, data)


def test_partition_refuses_cut_frames_and_corrections(inline_ctx, sample):
    path, _ = sample
    ds = inline_ctx.load("raw_csr", path=path)
    p = list(ds.get_partitions())[0]
    cut = TilingScheme.make_for_shape((2, 4, 9), Shape((1, *SIG), sig_dims=2))
    with pytest.raises(ValueError, match="whole frames"):
        p.validate_tiling_scheme(cut)
    with pytest.raises(ValueError, match="whole frames"):
        next(iter(p.get_tiles(cut, np.float32)))
    p.validate_tiling_scheme(_scheme(2))

    class Corrections:
        def have_corrections(self):
            return True

    with pytest.raises(NotImplementedError, match="raw_csr"):
        p.set_corrections(Corrections())
    assert p.get_locations() is None
    assert tuple(ds.adjust_tileshape((3, 1, 1), None)) == (3, *SIG)


def test_msg_converter(inline_ctx, sample):
    import jsonschema

    path, data = sample
    conv = RawCSRDataSet.get_msg_converter()()
    kwargs = conv.to_python(
        {"type": "RAW_CSR", "path": path, "nav_shape": [2, 10], "sync_offset": 1}
    )
    assert kwargs == {"path": path, "nav_shape": (2, 10), "sync_offset": 1}
    ds = inline_ctx.load("raw_csr", **kwargs)
    ref = shifted(data.reshape(20, *SIG), 1, 20).reshape(2, 10, *SIG)
    check_dataset(inline_ctx, ds, ref)
    for bad in (
        {"type": "RAW_CSR"},
        {"type": "RAW", "path": path},
        {"type": "RAW_CSR", "path": path, "nav_shape": [0]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            conv.to_python(bad)


def test_run_with_corrections_is_refused(ctx, sample):
    from libertem.corrections import CorrectionSet
    from libertem.udf.sum import SumUDF

    path, _ = sample
    ds = ctx.load("raw_csr", path=path)
    with pytest.raises(NotImplementedError, match="raw_csr"):
        ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=CorrectionSet(dark=np.ones(SIG)))
    # an empty correction set changes nothing and is accepted
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=CorrectionSet())
    np.testing.assert_allclose(res["intensity"].data, sample[1].sum(axis=(0, 1)))


def test_macrotile(inline_ctx, sample):
    path, data = sample
    ds = inline_ctx.load("raw_csr", path=path, num_partitions=2)
    p = list(ds.get_partitions())[1]
    tile = p.get_macrotile(dest_dtype=np.float64)
    assert isinstance(tile.data, scipy.sparse.csr_matrix)
    assert tile.tile_slice.origin[0] == p.start
    np.testing.assert_array_equal(tile.data.toarray(), data.reshape(20, -1)[p.start : p.stop])
    dense = p.get_macrotile(dest_dtype=np.float64, array_backend=NUMPY)
    np.testing.assert_array_equal(dense.data, data.reshape(20, *SIG)[p.start : p.stop])
