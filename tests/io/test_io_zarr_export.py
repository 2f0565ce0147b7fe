"""Writing Zarr: ctx.export_dataset(..., format='zarr') / export_zarr, and run_udf results
to a Zarr group; read back with zarr and numpy."""

import os

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.io.dataset.base.chunked import FlatChunkGrid
from libertem.io.writers.results.zarr import read_results_zarr, write_results_zarr
from libertem.io.writers.zarr import export_chunks, is_zarr_target
from libertem.udf.base import UDF
from libertem.udf.export import export_zarr
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

NAV, SIG = (7, 9), (8, 10)


def make_data(seed=0, dtype=np.float32, nav=NAV, sig=SIG):
    return np.random.default_rng(seed).random((*nav, *sig)).astype(dtype)


def scratch_left(path):
    return [n for n in os.listdir(path) if n.startswith(".libertem")]


def test_export_dataset_zarr(tmp_path, ctx):
    data = make_data()
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    path = str(tmp_path / "out.zarr")
    assert ctx.export_dataset(ds, path=path) == path
    arr = zarr.open_array(path, mode="r")
    assert arr.metadata.zarr_format == 3 and arr.dtype == np.float32
    np.testing.assert_array_equal(arr[...], data)
    assert arr.chunks[-2:] == SIG and arr.attrs["libertem"]["nav_shape"] == list(NAV)
    assert scratch_left(path) == []
    back = ctx.load("zarr", path=path)
    res = ctx.run_udf(dataset=back, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].raw_data, data.sum(axis=(0, 1)), rtol=1e-5)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ctx.export_dataset(ds, path=path)
    data2 = make_data(seed=1)
    ds2 = ctx.load("memory", data=data2, sig_dims=2)
    ctx.export_dataset(ds2, path=path, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], data2)


@pytest.mark.parametrize("chunk_frames", [1, 4, 5, 9, 20, 100])
@pytest.mark.parametrize("parts", [1, 4, 11])
def test_chunks_shared_between_partitions(tmp_path, ctx, chunk_frames, parts):
    data = make_data(seed=chunk_frames)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=parts)
    path = str(tmp_path / f"c{chunk_frames}-{parts}.zarr")
    export_zarr(ctx, ds, path, chunk_frames=chunk_frames, compressors=None)
    arr = zarr.open_array(path, mode="r")
    np.testing.assert_array_equal(arr[...], data)
    assert arr.chunks == export_chunks(NAV, SIG, chunk_frames)
    assert scratch_left(path) == []


def test_export_roi_formats_and_tiles(tmp_path, ctx):
    data = make_data(dtype=np.uint16)
    roi = np.random.default_rng(4).random(NAV) > 0.4
    # tiles smaller than a frame: chunks are completed from several tiles
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4, tileshape=(3, 4, 10))
    path = str(tmp_path / "roi.zarr")
    export_zarr(ctx, ds, path, roi=roi, chunk_frames=4, zarr_format=2)
    arr = zarr.open_array(path, mode="r")
    assert arr.metadata.zarr_format == 2 and arr.dtype == np.uint16
    assert arr.shape == (int(roi.sum()), *SIG) and arr.chunks == (4, *SIG)
    np.testing.assert_array_equal(arr[...], data[roi])
    assert arr.attrs["libertem"]["roi"] is True
    empty = str(tmp_path / "none.zarr")
    export_zarr(ctx, ds, empty, roi=np.zeros(NAV, dtype=bool))
    assert zarr.open_array(empty, mode="r").shape == (0, *SIG)
    stack = ctx.load("zarr", path=path)
    res = ctx.run_udf(dataset=stack, udf=SumSigUDF())
    np.testing.assert_allclose(res["intensity"].raw_data, data[roi].sum(axis=(1, 2)))


def test_format_choice_and_groups(tmp_path, inline_ctx):
    ctx = inline_ctx
    data = make_data()
    ds = ctx.load("memory", data=data, sig_dims=2)
    folder = tmp_path / "folder"
    folder.mkdir()
    assert is_zarr_target(str(folder)) and is_zarr_target("x.ZARR/")
    assert not is_zarr_target(str(tmp_path / "x.npy"))
    ctx.export_dataset(ds, path=str(folder), overwrite=True, format="zarr")  # empty folder
    np.testing.assert_array_equal(zarr.open_array(str(folder), mode="r")[...], data)
    plain = str(tmp_path / "plain")
    ctx.export_dataset(ds, path=plain, format="zarr")
    np.testing.assert_array_equal(zarr.open_array(plain, mode="r")[...], data)
    npy = ctx.export_dataset(ds, path=str(tmp_path / "x.npy"))
    np.testing.assert_array_equal(np.load(npy), data)
    group = str(tmp_path / "g.zarr")
    export_zarr(ctx, ds, group, array="scan/data")
    export_zarr(ctx, ds, group, array="scan/half", roi=np.arange(63).reshape(NAV) % 2 == 0)
    root = zarr.open_group(group, mode="r")
    np.testing.assert_array_equal(root["scan/data"][...], data)
    np.testing.assert_array_equal(root["scan/half"][...], data.reshape(-1, *SIG)[::2])
    with pytest.raises(FileExistsError, match="'scan/data' exists"):
        export_zarr(ctx, ds, group, array="scan/data")
    export_zarr(ctx, ds, group, array="scan/data", overwrite=True, attributes={"note": "x"})
    assert zarr.open_group(group, mode="r")["scan/data"].attrs["note"] == "x"
    loaded = ctx.load("zarr", path=group, array="scan/data")
    assert tuple(loaded.shape) == data.shape


def test_export_errors(tmp_path, inline_ctx):
    ctx = inline_ctx
    ds = ctx.load("memory", data=make_data(), sig_dims=2)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "important.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        ctx.export_dataset(ds, path=str(keep), overwrite=True, format="zarr")
    assert (keep / "important.txt").exists()
    # without format, only .npy (and .zarr) suffixes are accepted, as in LiberTEM
    with pytest.raises(ValueError, match="Unrecognized file extension  only .npy"):
        ctx.export_dataset(ds, path=str(keep), overwrite=True)
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        export_zarr(ctx, ds, str(keep), array="a")
    with pytest.raises(ValueError, match="roi"):
        export_zarr(ctx, ds, str(tmp_path / "a.zarr"), roi=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="chunk_frames"):
        export_zarr(ctx, ds, str(tmp_path / "b.zarr"), chunk_frames=0)
    with pytest.raises(ValueError, match="zarr_format"):
        export_zarr(ctx, ds, str(tmp_path / "c.zarr"), zarr_format=4)
    with pytest.raises(ValueError, match="'npy', 'raw' or 'zarr'"):
        ctx.export_dataset(ds, path=str(tmp_path / "d.bin"), format="tiff")
    assert not any((tmp_path / n).exists() for n in ("a.zarr", "b.zarr", "c.zarr"))


@settings(max_examples=15)
@given(
    nav=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    chunk_frames=st.integers(1, 40),
    parts=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    use_roi=st.booleans(),
)
def test_export_property(tmp_path_factory, inline_ctx, nav, chunk_frames, parts, seed, use_roi):
    nav = tuple(nav)
    data = np.random.default_rng(seed).integers(0, 100, (*nav, 3, 2)).astype(np.int32)
    roi = np.random.default_rng(seed + 1).random(nav) > 0.5 if use_roi else None
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=parts)
    path = str(tmp_path_factory.mktemp("prop") / "p.zarr")
    export_zarr(inline_ctx, ds, path, chunk_frames=chunk_frames, roi=roi)
    expected = data if roi is None else data[roi]
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], expected)
    chunks = export_chunks(expected.shape[:-2], (3, 2), chunk_frames)
    if expected.size:
        grid = FlatChunkGrid(expected.shape[:-2], chunks[:-2])
        assert grid.unit <= chunk_frames  # a chunk holds at most chunk_frames frames


# --- results -------------------------------------------------------------------------


class ManyKindsUDF(UDF):
    """Buffers of every kind, with extra axes and integer dtypes."""

    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", extra_shape=(2,), dtype="int64"),
            "frame_sum": self.buffer(kind="sig", dtype="float64"),
            "count": self.buffer(kind="single", dtype="int32"),
        }

    def process_frame(self, frame):
        self.results.per_frame[:] = (int(frame.max()), int(frame.min()))
        self.results.frame_sum[:] += frame
        self.results.count[:] += 1

    def merge(self, dest, src):
        dest.frame_sum[:] += src.frame_sum
        dest.count[:] += src.count
        dest.per_frame[:] = src.per_frame


def test_results_to_zarr(tmp_path, ctx):
    data = (make_data() * 100).astype(np.uint16)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    single = ctx.run_udf(dataset=ds, udf=SumUDF())
    path = str(tmp_path / "sum.zarr")
    assert write_results_zarr(single, path) == path
    arr = zarr.open_group(path, mode="r")["intensity"]
    np.testing.assert_allclose(arr[...], data.sum(axis=(0, 1)))
    assert arr.attrs["kind"] == "sig" and arr.attrs["extra_shape"] == []
    assert read_results_zarr(path)["intensity"].dtype == np.float32
    roi = np.random.default_rng(3).random(NAV) > 0.5
    both = ctx.run_udf(dataset=ds, udf=[ManyKindsUDF(), SumSigUDF()], roi=roi)
    multi = str(tmp_path / "multi.zarr")
    write_results_zarr(both, multi, zarr_format=2, compressors=None)
    first, second = read_results_zarr(multi)
    assert first["per_frame"].shape == (*NAV, 2) and first["per_frame"].dtype == np.int64
    np.testing.assert_array_equal(first["per_frame"][roi][:, 0], data[roi].max(axis=(1, 2)))
    np.testing.assert_allclose(first["frame_sum"], data[roi].sum(axis=0))
    assert first["count"].tolist() == [int(roi.sum())]
    masked = read_results_zarr(multi, masked=True)[1]["intensity"]
    np.testing.assert_array_equal(masked.mask, ~roi)
    np.testing.assert_allclose(masked.compressed(), data[roi].sum(axis=(1, 2)))
    group = zarr.open_group(multi, mode="r")
    assert group["0/per_frame"].attrs["kind"] == "nav"
    assert group["0/per_frame"].attrs["extra_shape"] == [2]
    assert "valid_mask" not in group["0"] or "frame_sum" not in group["0/valid_mask"]
    with pytest.raises(FileExistsError):
        write_results_zarr(single, path)
    write_results_zarr({"plain": np.arange(4)}, path, overwrite=True)
    assert read_results_zarr(path)["plain"].tolist() == [0, 1, 2, 3]


def test_results_errors(tmp_path):
    with pytest.raises(TypeError, match="object"):
        write_results_zarr({"o": np.array([None, 1], dtype=object)}, str(tmp_path / "o.zarr"))
    with pytest.raises(TypeError, match="results must be"):
        write_results_zarr(42, str(tmp_path / "n.zarr"))
    assert not (tmp_path / "o.zarr").exists()
    zarr.create_array(store=str(tmp_path / "a.zarr"), shape=(2,), dtype="u1")
    with pytest.raises(ValueError, match="not a Zarr group of UDF results"):
        read_results_zarr(str(tmp_path / "a.zarr"))
    with pytest.raises(ValueError, match="not a Zarr group of UDF results"):
        read_results_zarr(str(tmp_path / "missing.zarr"))
