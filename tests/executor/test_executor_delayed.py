"""DelayedJobExecutor: UDF results as Dask arrays, merge / merge_all graphs, ROI,
resources, and task_results_array."""

from __future__ import annotations

import re

import dask
import dask.array as da
import numpy as np
import pytest

from libertem.api import Context
from libertem.contrib.daskadapter import task_results_array
from libertem.executor.delayed import DelayedJobExecutor
from libertem.executor.utils.dask_buffer import DaskResultBufferWrapper
from libertem.udf import UDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

SHAPE = (16, 16, 16, 16)


@pytest.fixture(scope="module")
def delayed_ctx():
    ctx = Context(executor=DelayedJobExecutor())
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(11).integers(0, 100, size=SHAPE).astype(np.float32)


@pytest.fixture
def ds(delayed_ctx, data):
    return delayed_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)


class MySumUDF(UDF):
    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        self.results.intensity[:] += np.sum(tile, axis=0)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity


class MySumMergeUDF(MySumUDF):
    def merge_all(self, ordered_results):
        chunks = [b.intensity for b in ordered_results.values()]
        stack = np.stack(chunks)
        intensity = stack.sum(axis=0)
        return {"intensity": intensity}


class NavAndSigUDF(UDF):
    """A nav result with extra axes, a sig result with merge, and get_results."""

    def get_result_buffers(self):
        return {
            "minmax": self.buffer(kind="nav", extra_shape=(2,), dtype="float32"),
            "total": self.buffer(kind="sig", dtype="float64"),
            "mean": self.buffer(kind="sig", dtype="float64", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.minmax[:] = (frame.min(), frame.max())
        self.results.total[:] += frame

    def merge(self, dest, src):
        dest.total[:] += src.total
        dest.minmax[:] = src.minmax

    def get_results(self):
        n = (
            np.prod(self.meta.dataset_shape.nav)
            if self.meta.roi is None
            else np.count_nonzero(self.meta.roi)
        )
        return {
            "minmax": self.results.minmax,
            "total": self.results.total,
            "mean": self.results.total / n,
        }


def _graph_keys(arr: da.Array) -> list[str]:
    return [str(k) for k in dict(arr.__dask_graph__())]


def test_results_are_dask_arrays(delayed_ctx, ds, data):
    res = delayed_ctx.run_udf(dataset=ds, udf=SumSigUDF())
    buf = res["intensity"]
    assert isinstance(buf, DaskResultBufferWrapper)
    assert isinstance(buf.delayed_data, da.Array)
    assert isinstance(buf.delayed_raw_data, da.Array)
    assert buf.delayed_data.shape == (16, 16)
    assert buf.delayed_raw_data.shape == (256,)
    # kind='nav' results are chunked by partition
    partition_sizes = tuple(p.stop - p.start for p in ds.get_partitions())
    assert partition_sizes == (64, 64, 64, 64)
    assert buf.delayed_raw_data.chunks == (partition_sizes,)
    assert buf.delayed_data.chunks == ((4, 4, 4, 4), (16,))
    # computing
    expected = data.sum(axis=(2, 3))
    assert np.array_equal(buf.delayed_data.compute(), expected)
    assert np.array_equal(buf.data, expected)
    assert np.array_equal(buf.raw_data, expected.reshape(-1))


def test_print_format(delayed_ctx, ds, capsys):
    res = delayed_ctx.run_udf(dataset=ds, udf=SumSigUDF())
    print(res["intensity"].delayed_data)
    out = capsys.readouterr().out.strip()
    pattern = (
        r"dask\.array<reshape, shape=\(16, 16\), dtype=float32, "
        r"chunksize=\(\d+, \d+\), chunktype=numpy\.ndarray>"
    )
    assert re.fullmatch(pattern, out), out


def test_nothing_runs_until_compute(delayed_ctx, data):
    calls = []

    class CountingUDF(SumSigUDF):
        def process_tile(self, tile):
            calls.append(tile.shape[0])
            super().process_tile(tile)

    with dask.config.set(scheduler="synchronous"):
        ds = delayed_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
        res = delayed_ctx.run_udf(dataset=ds, udf=CountingUDF())
        assert calls == []
        assert np.array_equal(res["intensity"].data, data.sum(axis=(2, 3)))
        assert sum(calls) == 256


def test_several_udfs_one_compute(delayed_ctx, ds, data):
    r1, r2 = delayed_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    a, b = dask.compute(r1["intensity"].delayed_data, r2["intensity"].delayed_data)
    assert np.array_equal(a, data.sum(axis=(0, 1)))
    assert np.array_equal(b, data.sum(axis=(2, 3)))


def test_merge_all_results_equal(delayed_ctx, ds, data, tmp_path):
    """Whatever graph is built, merge and merge_all give the same results; both render."""
    default = delayed_ctx.run_udf(dataset=ds, udf=MySumUDF())["intensity"]
    streamlined = delayed_ctx.run_udf(dataset=ds, udf=MySumMergeUDF())["intensity"]
    assert np.array_equal(default.data, streamlined.data)
    assert np.array_equal(streamlined.data, data.sum(axis=(0, 1)))
    target = tmp_path / "tree.svg"
    streamlined.delayed_data.visualize(filename=str(target))
    assert target.exists() and target.stat().st_size > 0


class OnlyMergeAllUDF(UDF):
    """merge_all() and no merge()."""

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        self.results.intensity[:] += np.sum(tile, axis=0)

    def merge_all(self, ordered_results):
        return {"intensity": np.stack([b.intensity for b in ordered_results.values()]).sum(0)}


def test_merge_all_only_streamlined(delayed_ctx, ds, data, tmp_path):
    chain = delayed_ctx.run_udf(dataset=ds, udf=MySumUDF())["intensity"].delayed_data
    flat = delayed_ctx.run_udf(dataset=ds, udf=OnlyMergeAllUDF())["intensity"].delayed_data
    assert not [k for k in _graph_keys(flat) if "merge" in k.lower()]
    assert len(_graph_keys(flat)) != len(_graph_keys(chain))
    assert np.array_equal(flat.compute(), chain.compute())
    assert np.array_equal(flat.compute(), data.sum(axis=(0, 1)))
    target = tmp_path / "tree-merge-all.png"
    flat.visualize(filename=str(target))
    assert target.stat().st_size > 0


def test_custom_merge_wrapped_in_delayed(delayed_ctx, ds, data):
    res = delayed_ctx.run_udf(dataset=ds, udf=MySumUDF())
    arr = res["intensity"].delayed_data
    keys = _graph_keys(arr)
    n_partitions = len(list(ds.get_partitions()))
    # one delayed merge call per partition, chained
    merge_keys = [k for k in keys if "merge" in k.lower()]
    assert len(merge_keys) == n_partitions, keys
    assert np.array_equal(arr.compute(), data.sum(axis=(0, 1)))


def test_merge_all_streamlines_graph(delayed_ctx, ds, data, tmp_path):
    default = delayed_ctx.run_udf(dataset=ds, udf=MySumUDF())["intensity"]
    streamlined = delayed_ctx.run_udf(dataset=ds, udf=MySumMergeUDF())["intensity"]
    keys_default = _graph_keys(default.delayed_data)
    keys_streamlined = _graph_keys(streamlined.delayed_data)
    assert not [k for k in keys_streamlined if "merge" in k.lower()]
    # a different, not deeper structure: no chain of merge steps
    assert len(keys_streamlined) != len(keys_default) or set(
        re.sub(r"-[0-9a-f]{8,}.*", "", k) for k in keys_streamlined
    ) != set(re.sub(r"-[0-9a-f]{8,}.*", "", k) for k in keys_default)
    assert np.array_equal(default.data, streamlined.data)
    assert np.array_equal(streamlined.data, data.sum(axis=(0, 1)))
    for name, arr in (("default", default), ("merge_all", streamlined)):
        target = tmp_path / f"tree-{name}.png"
        arr.delayed_data.visualize(filename=str(target))
        assert target.exists() and target.stat().st_size > 0


def test_builtin_sum_uses_merge_all(delayed_ctx, ds, data):
    arr = delayed_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].delayed_data
    assert not [k for k in _graph_keys(arr) if "merge_step" in k]
    assert np.array_equal(arr.compute(), data.sum(axis=(0, 1)))


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_roi_and_get_results(delayed_ctx, inline_ctx, ds, data, use_roi):
    roi = make_roi(SHAPE[:2], seed=12) if use_roi else None
    inline_ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    for udf_cls in (SumSigUDF, SumUDF, NavAndSigUDF, StdDevUDF):
        expected = inline_ctx.run_udf(dataset=inline_ds, udf=udf_cls(), roi=roi)
        res = delayed_ctx.run_udf(dataset=ds, udf=udf_cls(), roi=roi)
        assert set(res) == set(expected), udf_cls
        for name, buf in expected.items():
            got = res[name]
            assert isinstance(got.delayed_data, da.Array)
            assert got.delayed_data.shape == buf.data.shape, (udf_cls, name)
            np.testing.assert_allclose(got.data, buf.data, rtol=1e-6, err_msg=f"{name}")
            np.testing.assert_allclose(got.raw_data, buf.raw_data, rtol=1e-6)
            computed = got.delayed_data.compute()
            np.testing.assert_allclose(computed, buf.data, rtol=1e-6)
    if use_roi:
        res = delayed_ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
        raw = res["intensity"].delayed_raw_data
        assert raw.shape == (np.count_nonzero(roi),)
        assert np.isnan(res["intensity"].data[~roi]).all()


def test_masks_delayed(delayed_ctx, ds, data):
    masks = np.random.default_rng(2).random((2, 16, 16)).astype(np.float32)
    res = delayed_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: masks))
    arr = res["intensity"].delayed_data
    assert arr.shape == (16, 16, 2)
    np.testing.assert_allclose(arr.compute(), np.einsum("ijkl,mkl->ijm", data, masks), rtol=1e-5)


def test_get_resources_from_udfs():
    class CupyOnly(MySumUDF):
        def get_backends(self):
            return ("cupy",)

    class Both(MySumUDF):
        def get_backends(self):
            return ("numpy", "cupy")

    class NumpyOnly(MySumUDF):
        def get_backends(self):
            return ("numpy",)

    cpu = DelayedJobExecutor.get_resources_from_udfs([MySumUDF(), NumpyOnly()])
    assert cpu == {"CPU": 1, "compute": 1}
    assert DelayedJobExecutor.get_resources_from_udfs(MySumUDF()) == cpu
    builtin = DelayedJobExecutor.get_resources_from_udfs([SumUDF(), SumSigUDF()])
    assert builtin.get("compute") == 1 and "CUDA" not in builtin
    cuda = DelayedJobExecutor.get_resources_from_udfs([CupyOnly()])
    assert cuda["CUDA"] == 1 and cuda["compute"] == 1 and "CPU" not in cuda
    both = DelayedJobExecutor.get_resources_from_udfs([Both()])
    assert both.get("compute") == 1 and "CPU" not in both and "CUDA" not in both


def test_ctx_map_delayed(delayed_ctx, ds, data):
    buf = delayed_ctx.map(dataset=ds, f=lambda frame: frame.max())
    assert isinstance(buf.delayed_data, da.Array)
    assert np.array_equal(buf.data, data.max(axis=(2, 3)))


def test_dask_array_input_stays_lazy(delayed_ctx):
    arr = da.random.default_rng(5).random((8, 8, 6, 6), chunks=(2, 8, 6, 6))
    ds = delayed_ctx.load("dask", arr, sig_dims=2)
    res = delayed_ctx.run_udf(dataset=ds, udf=SumSigUDF())
    out = res["intensity"].delayed_data
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), arr.sum(axis=(2, 3)).compute(), rtol=1e-5)


# --- task_results_array --------------------------------------------------------------------


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_task_results_array(inline_ctx, data, use_roi):
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    roi = make_roi(SHAPE[:2], seed=13) if use_roi else None
    n_tasks = len(list(ds.get_partitions()))
    sel = np.ones(SHAPE[:2], bool) if roi is None else roi

    # sig buffer: stacked per task; merging = summing over the task axis
    parts = task_results_array(ds, MySumUDF(), roi=roi)
    assert set(parts) == {"intensity"}
    arr = parts["intensity"]
    assert isinstance(arr, da.Array)
    assert arr.shape == (n_tasks, 16, 16)
    assert np.array_equal(arr.sum(axis=0).compute(), data[sel].sum(axis=0))
    expected = inline_ctx.run_udf(dataset=ds, udf=MySumUDF(), roi=roi)["intensity"].data
    assert np.array_equal(arr.compute().sum(axis=0), expected)

    # nav buffer: concatenated along the (ROI-compressed) frames, one chunk per task
    parts = task_results_array(ds, SumSigUDF(), roi=roi)
    arr = parts["intensity"]
    n_sel = int(np.count_nonzero(sel))
    assert arr.shape == (n_sel,)
    assert len(arr.chunks[0]) == n_tasks
    assert np.array_equal(arr.compute(), data.sum(axis=(2, 3))[sel])
