"""RecordUDF: the frames of a run end up in a .npy file, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from libertem.udf.record import RecordUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(31)
    return rng.integers(0, 60000, size=(5, 6, 7, 8)).astype(np.uint16)


@pytest.mark.parametrize("use_roi", [False, True])
def test_record_roundtrip(ctx, data, tmp_path, use_roi):
    ds = ctx.load("memory", data=data, num_partitions=4)
    path = tmp_path / "rec.npy"
    roi = None
    if use_roi:
        roi = np.zeros((5, 6), dtype=bool)
        roi[1:4, ::2] = True
    res = ctx.run_udf(ds, [RecordUDF(path), SumUDF()], roi=roi)
    assert res[0] == {}
    recorded = np.load(path)
    assert recorded.dtype == np.uint16  # native dtype, not converted
    expected = data if roi is None else data[roi]
    assert np.array_equal(recorded, expected)
    assert np.allclose(res[1]["intensity"].data, expected.reshape((-1, 7, 8)).sum(axis=0))


def test_record_small_tiles_and_overwrite(inline_ctx, data, tmp_path):
    class SmallTiles(RecordUDF):
        def get_tiling_preferences(self):
            return {"depth": 2, "total_size": 2 * 3 * 8 * 2}

    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    path = tmp_path / "rec.npy"
    np.save(path, np.zeros(3))  # an old file is replaced
    inline_ctx.run_udf(ds, [SmallTiles(str(path)), SumSigUDF()])
    assert np.array_equal(np.load(path), data)


def test_record_params_and_partitions(tmp_path):
    udf = RecordUDF(tmp_path / "x.npy")
    assert udf.params.filename == str(tmp_path / "x.npy")
    assert udf.params._is_master is True
    assert udf.copy().params._is_master is True
    part = RecordUDF.new_for_partition(udf._kwargs, partition=None, roi=None)
    assert part.params._is_master is False and part.params.filename == udf.params.filename
