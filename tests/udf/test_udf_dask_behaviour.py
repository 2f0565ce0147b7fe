"""The LiberTEM 0.16 UDF behaviours where they cross processes: on the shared Dask cluster.

Attribute assignment on workers and in merge, ``result_only`` buffers on workers,
completed results, one partial result per partition, aux data in merge, the
messages of removed tile attributes and of cancellation (B-udf-2, 6, 16, 21,
B-context-5, 17, 23). Few runs: the cluster is slow on small machines.
"""

from __future__ import annotations

import numpy as np
import pytest

from libertem.api import Context
from libertem.common.exceptions import UDFRunCancelled
from libertem.common.executor import JobCancelledError
from libertem.udf import UDF
from libertem.udf.base import NoOpUDF
from utils import assert_close, make_data, make_roi

NAV, SIG = (3, 4), (4, 4)


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster

    yield Context(executor=acquire_cluster())
    release_cluster()


class Everything(UDF):
    """Assignments in process and merge, a result_only buffer, aux data in merge."""

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="sig", dtype=np.float64),
            "per_frame": self.buffer(kind="nav", dtype=np.float64),
            "late_was_none": self.buffer(kind="nav", dtype=bool),
            "weights": self.buffer(kind="nav", dtype=np.float32),
            "hidden": self.buffer(kind="nav", dtype=np.float64, use="private"),
            "late": self.buffer(kind="single", dtype=np.float64, use="result_only"),
        }

    def process_frame(self, frame):
        self.results.total += frame
        self.results.per_frame = frame.sum()
        self.results.late_was_none = self.results.late is None
        self.results.hidden = 1

    def merge(self, dest, src):
        dest.total += src.total
        dest.per_frame = src.per_frame
        dest.late_was_none = src.late_was_none
        dest.weights = self.params.w  # the merged partition's part of the aux data
        dest.hidden = src.hidden

    def get_results(self):
        return {"late": np.array([self.results.per_frame.sum()])}


def test_behaviours_on_dask(dask_ctx):
    data = make_data((*NAV, *SIG), "float64", seed=1)
    roi = make_roi(NAV, seed=2)
    ds = dask_ctx.load("memory", data=data, num_partitions=3)
    weights = np.arange(NAV[0] * NAV[1], dtype=np.float32)
    udf = Everything(w=Everything.aux_data(weights, kind="nav", dtype=np.float32))
    res = dask_ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert sorted(res.keys()) == ["late", "late_was_none", "per_frame", "total", "weights"]
    assert_close(res["total"].data, data[roi].sum(axis=0), np.float64)
    assert_close(res["per_frame"].raw_data, data[roi].sum(axis=(1, 2)), np.float64)
    assert res["late_was_none"].raw_data.all()
    assert res["weights"].raw_data.tolist() == weights[roi.reshape(-1)].tolist()
    assert_close(res["late"].data, [data[roi].sum()], np.float64)

    # partial results: one per partition with selected frames, get_results on reading
    parts = list(dask_ctx.run_udf_iter(dataset=ds, udf=udf, roi=roi))
    assert len(parts) == sum(roi[p].any() for p in range(NAV[0]))
    for part in parts:
        assert part.damage.raw_data.shape == (roi.sum(),)
    assert_close(parts[-1].buffers[0]["late"].data, [data[roi].sum()], np.float64)


class UsesTileSlice(NoOpUDF):
    def process_tile(self, tile):
        tile.tile_slice


class GiveUp(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        raise JobCancelledError()


def test_errors_from_workers(dask_ctx):
    ds = dask_ctx.load("memory", data=np.ones((*NAV, *SIG), np.float32), num_partitions=2)
    with pytest.raises(AttributeError) as e:
        dask_ctx.run_udf(dataset=ds, udf=UsesTileSlice())
    assert str(e.value) == (
        "Attribute tile_slice for input tiles was removed. Please use self.meta.slice instead."
    )
    with pytest.raises(UDFRunCancelled) as e:
        dask_ctx.run_udf(dataset=ds, udf=GiveUp())
    assert str(e.value) == "UDF run cancelled after 0 partitions"
    w = Everything.aux_data(np.zeros(12, np.float32), kind="nav", dtype=np.float32)
    res = dask_ctx.run_udf(dataset=ds, udf=Everything(w=w))  # the cluster still works
    assert_close(res["total"].data, np.full(SIG, 12.0), np.float64)
