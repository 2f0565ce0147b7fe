"""CoMUDF on integer data: tiles in the dataset's dtype, moments computed exactly.

``meta.input_dtype`` and the result dtypes stay what they were with float tiles; a
subclass that overrides ``process_tile`` still gets float tiles.
"""

import numpy as np
import pytest

from libertem.udf.com import CoMUDF
from utils import make_roi

NAV, SIG = (5, 6), (12, 10)


def _data(dtype, high=60000):
    rng = np.random.default_rng(11)
    return rng.integers(0, high, size=(*NAV, *SIG)).astype(dtype)


def _exact_moments(data, cy, cx):
    frames = data.reshape((-1, *SIG)).astype(np.float64)
    yy, xx = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    total = frames.sum(axis=(1, 2))
    return total, (frames * yy).sum(axis=(1, 2)), (frames * xx).sum(axis=(1, 2))


class SeesTiles(CoMUDF):
    """Records the dtypes it gets, and processes as CoMUDF does."""

    def process_tile(self, tile):
        self.results.moments[:] += self.task_data.engine.process_tile(tile)
        assert tile.dtype == self.meta.input_dtype, (tile.dtype, self.meta.input_dtype)


@pytest.mark.parametrize("dtype, result", [("uint16", np.float32), ("uint32", np.float64)])
@pytest.mark.parametrize("use_roi", [False, True])
def test_com_of_integer_data_is_exact(ctx, dtype, result, use_roi):
    data = _data(dtype)
    ds = ctx.load("memory", data=data, num_partitions=3, sig_dims=2)
    roi = make_roi(NAV, seed=4) if use_roi else None
    res = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(), roi=roi)
    cy, cx = SIG[0] // 2, SIG[1] // 2
    total, my, mx = _exact_moments(data, cy, cx)
    # the raw centre of mass from moments that were exact before the cast to the result dtype
    com_y = (my.astype(result) / total.astype(result)).reshape(NAV)
    com_x = (mx.astype(result) / total.astype(result)).reshape(NAV)
    sel = np.ones(NAV, bool) if roi is None else roi
    raw = res["raw_com"].data
    assert raw.dtype == result
    np.testing.assert_allclose(raw[sel][:, 0], com_y[sel], rtol=1e-6)
    np.testing.assert_allclose(raw[sel][:, 1], com_x[sel], rtol=1e-6)


def test_float_path_and_integer_path_agree(ctx):
    data = _data("uint16", high=4000)
    ds_int = ctx.load("memory", data=data, num_partitions=2, sig_dims=2)
    ds_float = ctx.load("memory", data=data.astype(np.float32), num_partitions=2, sig_dims=2)
    a = ctx.run_udf(dataset=ds_int, udf=CoMUDF.with_params())
    b = ctx.run_udf(dataset=ds_float, udf=CoMUDF.with_params())
    for key in ("raw_com", "field", "magnitude"):
        assert a[key].data.dtype == b[key].data.dtype
        np.testing.assert_allclose(a[key].data, b[key].data, rtol=1e-5, equal_nan=True)


def test_subclass_with_own_process_tile_gets_float_tiles(ctx):
    data = _data("uint16", high=1000)
    ds = ctx.load("memory", data=data, num_partitions=2, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=SeesTiles())
    ref = ctx.run_udf(dataset=ds, udf=CoMUDF())
    np.testing.assert_allclose(res["raw_com"].data, ref["raw_com"].data, rtol=1e-5)


def test_non_integer_centre_uses_the_masks_as_before(ctx):
    data = _data("uint16", high=1000)
    ds = ctx.load("memory", data=data, num_partitions=2, sig_dims=2)
    udf = CoMUDF.with_params(cy=5.5, cx=4.25, r=4.5)
    res = ctx.run_udf(dataset=ds, udf=udf)
    ref = ctx.run_udf(
        dataset=ctx.load("memory", data=data.astype(np.float32), num_partitions=2, sig_dims=2),
        udf=CoMUDF.with_params(cy=5.5, cx=4.25, r=4.5),
    )
    np.testing.assert_allclose(res["raw_shifts"].data, ref["raw_shifts"].data, rtol=1e-5)


def test_input_dtype_is_unchanged_and_tiles_are_native(inline_ctx):
    from libertem.udf.run_plan import resolve_input_dtypes, resolve_tile_dtypes

    udfs = [CoMUDF(), SeesTiles()]
    inputs, read = resolve_input_dtypes(udfs, np.uint16, np.uint16, False, True)
    assert inputs == [np.float32, np.float32] and read == np.float32
    tiles, read = resolve_tile_dtypes(udfs, inputs, read, np.uint16, False, True)
    assert tiles == [np.uint16, np.float32] and read == np.uint16
    # float data, corrections, CUDA workers: the input dtype for all
    for native, corrected, host in ((np.float32, False, True), (np.uint16, True, True)):
        tiles, _ = resolve_tile_dtypes(udfs[:1], [np.float32], np.float32, native, corrected, host)
        assert tiles == [np.float32]
    tiles, _ = resolve_tile_dtypes(udfs[:1], [np.float32], np.float32, np.uint16, False, False)
    assert tiles == [np.float32]
