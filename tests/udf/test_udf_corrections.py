"""``run_udf(..., corrections=...)``: the corrections reach every tile, on every executor.

The reference applies the same ``CorrectionSet`` to all frames at once; tiles that
cut frames (with excluded pixels near their edges) must give the same results.
"""

from __future__ import annotations

import numpy as np
import pytest
import sparse

from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.corrections import CorrectionSet
from libertem.io.dataset.memory import MemoryDataSet
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

NAV, SIG = (4, 6), (16, 12)


@pytest.fixture(scope="module")
def data():
    return (np.random.default_rng(8).random(NAV + SIG) * 100).astype(np.float32)


@pytest.fixture(scope="module")
def corrections():
    rng = np.random.default_rng(9)
    dark = rng.random(SIG).astype(np.float32)
    gain = (rng.random(SIG) + 0.5).astype(np.float32)
    # excluded pixels on and next to the rows where small tiles are cut
    excluded = np.zeros(SIG, dtype=bool)
    excluded[3, 5] = excluded[4, 0] = excluded[8, 11] = excluded[15, 3] = True
    return CorrectionSet(dark=dark, gain=gain, excluded_pixels=sparse.COO.from_numpy(excluded))


def reference(data, corrections):
    frames = data.reshape((-1, *SIG)).astype(np.float32)
    whole = Slice((0, 0, 0), Shape(frames.shape, sig_dims=2))
    corrections.apply(frames, whole)
    return frames.reshape(data.shape)


class TileSumsUDF(UDF):
    """Frame sums and sum frame from small tiles that cut frames into pieces."""

    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 3 * 4 * 12 * 4}

    def get_result_buffers(self):
        return {
            "frames": self.buffer(kind="nav", dtype="float64"),
            "sig": self.buffer(kind="sig", dtype="float64"),
            "cut": self.buffer(kind="single", dtype=bool),
        }

    def process_tile(self, tile):
        self.results.frames[:] += tile.sum(axis=(1, 2))
        self.results.sig[:] += tile.sum(axis=0)
        self.results.cut[:] |= tile.shape[1] < SIG[0]

    def merge(self, dest, src):
        dest.frames[:] = src.frames
        dest.sig[:] += src.sig
        dest.cut[:] |= src.cut


@pytest.mark.parametrize("with_roi", [False, True])
def test_corrected_tiles_match_numpy(ctx, data, corrections, with_roi):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    expected = reference(data, corrections)
    roi = None
    if with_roi:
        roi = np.zeros(NAV, dtype=bool)
        roi[1:3, 1:5] = True
    res = ctx.run_udf(dataset=ds, udf=TileSumsUDF(), corrections=corrections, roi=roi)
    selected = expected if roi is None else expected[roi]
    frames = selected.reshape((-1, *SIG))
    assert res["cut"].data[0]  # the tiles did cut the frames
    assert np.allclose(res["frames"].raw_data, frames.sum(axis=(1, 2)), rtol=1e-5)
    assert np.allclose(res["sig"].data, frames.sum(axis=0), rtol=1e-5)
    whole = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], corrections=corrections, roi=roi)
    assert np.allclose(whole[0]["intensity"].data, frames.sum(axis=0), rtol=1e-5)
    assert np.allclose(whole[1]["intensity"].raw_data, frames.sum(axis=(1, 2)), rtol=1e-5)


def test_run_udf_iter_and_map_take_corrections(ctx, data, corrections):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    expected = reference(data, corrections)
    *_, last = ctx.run_udf_iter(dataset=ds, udf=SumUDF(), corrections=corrections)
    assert np.allclose(last.buffers[0]["intensity"].data, expected.sum(axis=(0, 1)), rtol=1e-5)
    res = ctx.map(dataset=ds, f=np.max, corrections=corrections)
    assert np.allclose(res.data, expected.max(axis=(2, 3)), rtol=1e-6)


def test_meta_corrections_and_dataset_default(ctx, data, corrections):
    seen = []

    class Probe(SumUDF):
        def get_task_data(self):
            seen.append(self.meta.corrections)
            return super().get_task_data()

    class CorrectedDataSet(MemoryDataSet):
        def get_correction_data(self):
            return corrections

    ds = CorrectedDataSet(data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=Probe())
    assert np.allclose(res["intensity"].data, reference(data, corrections).sum(axis=(0, 1)))
    assert seen and all(c is corrections or c.have_corrections() for c in seen)
    # given corrections win over the dataset's
    empty = CorrectionSet()
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=empty)
    assert np.allclose(res["intensity"].data, data.sum(axis=(0, 1)))


def test_no_corrections_leaves_data(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=TileSumsUDF())
    assert np.allclose(res["sig"].data, data.sum(axis=(0, 1)), rtol=1e-6)
