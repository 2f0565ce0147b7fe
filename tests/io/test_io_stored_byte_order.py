"""SumUDF reads big-endian frames as stored (views, no swap pass); everything else sees
native tiles. Results are checked against numpy on the same data."""

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.corrections import CorrectionSet
from libertem.udf.base import UDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.runner import resolve_input_dtypes
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from libertem.utils.sample_data import write_mib_acquisition

NAV, SIG = (4, 6), (16, 16)


class TileDtypes:
    """Mixin: records the dtype of every tile the UDF receives (and passes the tile on
    unchanged, so it takes whatever byte order the UDF below it takes)."""

    _TAKES_STORED_BYTE_ORDER = True

    def process_tile(self, tile):
        self.params.seen.append(tile.dtype)
        super().process_tile(tile)


class RecordingSumUDF(TileDtypes, SumUDF):
    def __init__(self, seen, dtype="float32"):
        UDF.__init__(self, dtype=dtype, seen=seen)


class RecordingSumSigUDF(TileDtypes, SumSigUDF):
    def __init__(self, seen, dtype="float32"):
        UDF.__init__(self, dtype=dtype, seen=seen)


def _frames(dtype, seed=5):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3000, size=(*NAV, *SIG)).astype(dtype)


@pytest.fixture(params=["U16", "U32"])
def mib(request, tmp_path):
    dtype = {"U16": np.uint16, "U32": np.uint32}[request.param]
    data = _frames(dtype)
    hdr = write_mib_acquisition(tmp_path / "scan", data, pixel_depth=request.param)
    return hdr, data


def _roi():
    roi = np.zeros(NAV, dtype=bool)
    roi[1:3, ::2] = True
    return roi


@pytest.mark.parametrize("io_backend", ["mmap", "buffered", "direct"])
@pytest.mark.parametrize("with_roi", [False, True])
def test_mib_sum_takes_stored_big_endian_tiles(ctx, mib, io_backend, with_roi):
    hdr, data = mib
    ds = ctx.load("mib", path=hdr, nav_shape=NAV, io_backend=io_backend)
    assert ds.dtype.isnative and not ds.stored_dtype.isnative
    assert ds.stored_dtype.newbyteorder("=") == ds.dtype
    roi = _roi() if with_roi else None
    sel = np.ones(NAV, dtype=bool) if roi is None else roi
    seen = []
    try:
        res = ctx.run_udf(ds, RecordingSumUDF(seen), roi=roi)
    except DataSetException as e:  # a file system without O_DIRECT
        assert io_backend == "direct" and "direct I/O" in str(e)
        return
    assert set(seen) == {ds.stored_dtype}
    intensity = res["intensity"].data
    assert intensity.dtype == np.result_type(np.float32, data.dtype)
    assert np.array_equal(intensity, data[sel].astype(np.float64).sum(axis=0))


def test_subclass_overriding_process_tile_gets_native_tiles(ctx, mib):
    """The declaration belongs to the class whose processing method runs."""
    hdr, data = mib
    seen = []

    class MaxSumUDF(SumUDF):
        def process_tile(self, tile):
            seen.append(tile.dtype)
            out = self.results.intensity
            out[:] = np.maximum(out, tile.max(axis=0))

        def merge(self, dest, src):
            dest.intensity[:] = np.maximum(dest.intensity, src.intensity)

        def merge_all(self, ordered_results):
            parts = [part.intensity for part in ordered_results.values()]
            return {"intensity": np.maximum.reduce(parts)}

    ds = ctx.load("mib", path=hdr, nav_shape=NAV)
    res = ctx.run_udf(ds, MaxSumUDF())
    assert set(seen) == {ds.dtype}
    assert np.array_equal(res["intensity"].data, data.max(axis=(0, 1)))


def test_mib_mixed_run_gets_native_tiles(ctx, mib):
    hdr, data = mib
    ds = ctx.load("mib", path=hdr, nav_shape=NAV)
    sums, sigs = [], []
    masks = ApplyMasksUDF([lambda: np.ones(SIG)])
    res_sum, res_sig, res_mask = ctx.run_udf(
        ds, [RecordingSumUDF(sums), RecordingSumSigUDF(sigs), masks]
    )
    assert set(sums) == set(sigs) == {ds.dtype}
    ref = data.astype(np.float64)
    assert np.array_equal(res_sum["intensity"].data, ref.sum(axis=(0, 1)))
    assert np.array_equal(res_sig["intensity"].data, ref.sum(axis=(2, 3)))
    assert np.allclose(res_mask["intensity"].data[..., 0], ref.sum(axis=(2, 3)))


def test_mib_sum_with_corrections_gets_float_tiles(ctx, mib):
    hdr, data = mib
    ds = ctx.load("mib", path=hdr, nav_shape=NAV)
    dark = np.full(SIG, 7.0, dtype=np.float32)
    seen = []
    res = ctx.run_udf(ds, RecordingSumUDF(seen), corrections=CorrectionSet(dark=dark))
    assert set(seen) == {np.dtype(np.result_type(np.float32, data.dtype))}
    ref = (data.astype(np.float64) - dark).sum(axis=(0, 1))
    assert np.allclose(res["intensity"].data, ref, rtol=1e-6)


def test_r64_and_native_formats_read_native(ctx, tmp_path):
    data = _frames(np.uint16) % 4096
    hdr = write_mib_acquisition(tmp_path / "raw", data, pixel_depth="R64", counter_depth=12)
    ds = ctx.load("mib", path=hdr, nav_shape=NAV)
    assert ds.stored_dtype == ds.dtype
    seen = []
    res = ctx.run_udf(ds, RecordingSumUDF(seen))
    assert set(seen) == {ds.dtype}
    assert np.array_equal(res["intensity"].data, data.astype(np.float64).sum(axis=(0, 1)))
    native = ctx.load("memory", data=data)
    assert native.stored_dtype == native.dtype == np.uint16


def test_big_endian_memory_dataset(ctx):
    data = _frames(">u2")
    ds = ctx.load("memory", data=data, num_partitions=3)
    seen = []
    res = ctx.run_udf(ds, RecordingSumUDF(seen, dtype="float64"), roi=_roi())
    assert {d.newbyteorder("=") for d in seen} == {np.dtype(np.uint16)}
    assert res["intensity"].data.dtype == np.float64
    assert np.array_equal(res["intensity"].data, data[_roi()].astype(np.float64).sum(axis=0))


@pytest.mark.parametrize(
    ("corrected", "host_numpy_only", "udfs", "expected"),
    [
        (False, True, [SumUDF()], (">u2", ">u2")),
        (False, False, [SumUDF()], ("uint16", "uint16")),  # CUDA workers present
        (True, True, [SumUDF()], ("float32", "float32")),
        (False, True, [SumUDF(), SumSigUDF()], ("uint16", "uint16")),
        (False, True, [SumUDF(dtype="float64"), SumUDF()], (">u2", ">u2")),
    ],
)
def test_resolve_input_dtypes(corrected, host_numpy_only, udfs, expected):
    dtypes, read = resolve_input_dtypes(
        udfs, "uint16", ">u2", corrected=corrected, host_numpy_only=host_numpy_only
    )
    assert dtypes == [np.dtype(expected[0])] * len(udfs)
    assert read == np.dtype(expected[1])


def test_resolve_input_dtypes_for_native_stores():
    dtypes, read = resolve_input_dtypes(
        [SumUDF(), ApplyMasksUDF([lambda: np.ones(SIG)])],
        "uint16",
        "uint16",
        corrected=False,
        host_numpy_only=True,
    )
    assert dtypes == [np.dtype(np.uint16), np.dtype(np.float32)]
    assert read == np.dtype(np.uint16)
