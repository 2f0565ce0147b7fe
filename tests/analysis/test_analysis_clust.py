"""ClusterAnalysis: standard deviation, peaks on a ring, their values per frame and
connected Ward clustering, driven by the asynchronous controller."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from libertem.analysis.clust import (
    ClusterAnalysis,
    ClusterTemplate,
    find_ring_peaks,
    peak_masks,
)
from libertem.analysis.codegen import generate_cells, to_script
from libertem.common.executor import JobCancelledError
from libertem.executor.base import AsyncAdapter
from libertem.io.dataset.memory import MemoryDataSet
from libertem.udf.masks import ApplyMasksUDF

PARAMS = {"n_peaks": 4, "n_clust": 2, "cy": 4, "cx": 4, "ri": 1, "ro": 5, "delta": 0.05}


def _halves() -> np.ndarray:
    """Left half of the scan: spots at (1, 1), (6, 6); right half: (1, 6), (6, 1)."""
    data = np.zeros((4, 6, 8, 8), dtype=np.float32)
    data[:, :, 4, 4] = 5
    data[:, :3, 1, 1] = data[:, :3, 6, 6] = 3
    data[:, 3:, 1, 6] = data[:, 3:, 6, 1] = 3
    data += np.random.default_rng(0).uniform(0, 0.1, size=data.shape).astype(np.float32)
    return data


def _run(analysis, executor, cancelled=lambda: False):
    sent = []

    async def send_results(results, finished):
        sent.append((results, finished))

    async def main():
        adapter = AsyncAdapter(wrapped=executor)
        return await analysis.controller(
            cancel_id="clust",
            executor=adapter,
            job_is_cancelled=cancelled,
            send_results=send_results,
        )

    returned = asyncio.run(main())
    return returned, sent


def _check_halves(labels):
    assert labels.shape == (4, 6) and labels.dtype.kind == "i"
    assert sorted(set(labels.ravel().tolist())) == [1, 2]
    left, right = set(labels[:, :3].ravel().tolist()), set(labels[:, 3:].ravel().tolist())
    assert len(left) == len(right) == 1 and left != right


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_two_halves_form_two_clusters(ctx, use_roi):
    ds = MemoryDataSet(data=_halves(), num_partitions=2)
    params = dict(PARAMS, min_dist=1)
    if use_roi:
        # the standard deviation of the middle columns alone still shows all four spots
        params["roi"] = {"shape": "rect", "x": 2, "y": 0, "width": 1, "height": 3}
    analysis = ClusterAnalysis(dataset=ds, parameters=params)
    assert analysis.get_udf() is None
    returned, sent = _run(analysis, ctx.executor)
    assert len(sent) == 1 and sent[0][1] is True and sent[0][0] is returned
    assert returned.keys() == ["intensity"]
    _check_halves(np.asarray(returned.intensity.raw_data))


def test_steps_against_numpy(inline_ctx):
    data = _halves()
    ds = MemoryDataSet(data=data)
    analysis = ClusterAnalysis(dataset=ds, parameters=dict(PARAMS, min_dist=1))

    async def sd():
        return await analysis.get_sd_results(
            AsyncAdapter(wrapped=inline_ctx.executor), "sd", lambda: False
        )

    roi, sd_results = asyncio.run(sd())
    assert roi is None and sd_results["num_frames"] == 24
    std = data.reshape((-1, 8, 8)).std(axis=0)
    np.testing.assert_allclose(sd_results["std"], std, rtol=1e-5)
    peaks = find_ring_peaks(sd_results["std"], 4, 4, 1, 5, n_peaks=4, min_dist=1)
    assert sorted(map(tuple, peaks)) == [(1, 1), (1, 6), (6, 1), (6, 6)]
    udf = analysis.get_cluster_udf(sd_results)
    assert isinstance(udf, ApplyMasksUDF)
    assert udf.get_mask_count() == 4 and udf.get_mask_dtype() == np.float32
    stack = peak_masks(peaks, (8, 8)).todense()
    assert stack.dtype == np.float32 and stack.sum() == 4
    values = inline_ctx.run_udf(dataset=ds, udf=udf)["intensity"].data
    expected = np.stack([data[:, :, y, x] for y, x in peaks], axis=-1)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    res = analysis.get_udf_results({"intensity": type("B", (), {"data": values})()}, None, True)
    _check_halves(res.intensity.raw_data)


def test_cancelled_job_raises(inline_ctx):
    analysis = ClusterAnalysis(dataset=MemoryDataSet(data=_halves()), parameters=PARAMS)
    analysis.parameters["min_dist"] = 1
    with pytest.raises(JobCancelledError):
        _run(analysis, inline_ctx.executor, cancelled=lambda: True)


def test_generated_code_clusters(inline_ctx, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    data = _halves()
    np.save(tmp_path / "data.npy", data)
    analysis = ClusterAnalysis(
        dataset=inline_ctx.load("memory", data=data), parameters=dict(PARAMS, min_dist=1)
    )
    assert ClusterAnalysis.get_template_helper() is ClusterTemplate
    assert ClusterTemplate.short_name == "cluster"
    script = to_script(
        generate_cells(
            [analysis],
            dataset_code=f"ds = ctx.load('npy', path={str(tmp_path / 'data.npy')!r})",
            context_code="ctx = Context.make_with('inline')",
        )
    )
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(script, "generated.py", "exec"), ns)
    finally:
        os.chdir(cwd)
    _check_halves(ns["cluster_result"])
    assert os.path.exists(tmp_path / "cluster_labels.npy")


@pytest.fixture(scope="module")
def dask_executor():
    from dask_shared import acquire_cluster, release_cluster

    yield acquire_cluster()
    release_cluster()


def test_on_dask_cluster(dask_executor):
    ds = MemoryDataSet(data=_halves(), num_partitions=3)
    returned, sent = _run(
        ClusterAnalysis(dataset=ds, parameters=dict(PARAMS, min_dist=1)), dask_executor
    )
    assert len(sent) == 1
    _check_halves(np.asarray(returned.intensity.raw_data))
