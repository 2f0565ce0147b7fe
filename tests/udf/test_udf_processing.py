"""Processing methods, their precedence, pre/postprocess, params, task data and input dtypes,
each compared against plain numpy on the same data."""

import numpy as np
import pytest

from libertem.udf import UDF
from utils import (
    DTYPES,
    SHAPES,
    SUM_UDFS,
    assert_close,
    check_sums,
    input_dtype,
    load_mem,
    make_data,
    make_roi,
    ref_input,
    shape_id,
)


@pytest.mark.parametrize("method", sorted(SUM_UDFS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_methods_dtypes(ctx, method, dtype, use_roi):
    data = make_data((4, 6, 6, 5), dtype, seed=3)
    roi = make_roi((4, 6), seed=4) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SUM_UDFS[method](), roi=roi)
    check_sums(res, data, 2, roi)


@pytest.mark.parametrize("method", sorted(SUM_UDFS))
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("num_partitions", [1, 2, 5])
def test_methods_shapes_partitions(ctx, method, shape, use_roi, num_partitions):
    full_shape, sig_dims = shape
    data = make_data(full_shape, "float32", seed=5)
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    roi = make_roi(nav_shape, seed=6) if use_roi else None
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=num_partitions)
    assert tuple(ds.shape) == full_shape
    assert tuple(ds.shape.nav) == nav_shape
    res = ctx.run_udf(dataset=ds, udf=SUM_UDFS[method](), roi=roi)
    check_sums(res, data, sig_dims, roi)


@pytest.mark.parametrize("method", sorted(SUM_UDFS))
@pytest.mark.parametrize("tileshape", [(4, 8, 32), (3, 16, 16), (1, 32, 32), (16, 4, 8)])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_several_tiles_per_partition(ctx, method, tileshape, use_roi):
    data = make_data((8, 16, 32, 32), "uint16", seed=7)
    roi = make_roi((8, 16), seed=8, p=0.7) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3, tileshape=tileshape)
    if method in ("frame", "partition") and tileshape[1:] != (32, 32):
        # LiberTEM: a forced tileshape without whole frames fails for frame/partition UDFs
        with pytest.raises(ValueError, match="incompatible with base shape"):
            ctx.run_udf(dataset=ds, udf=SUM_UDFS[method](), roi=roi)
        ds = load_mem(ctx, data, num_partitions=3, tileshape=(tileshape[0], 32, 32))
    res = ctx.run_udf(dataset=ds, udf=SUM_UDFS[method](), roi=roi)
    check_sums(res, data, 2, roi)


class _TileSpy(UDF):
    """Records the shape of every tile in an object buffer."""

    def get_result_buffers(self):
        return {
            "shapes": self.buffer(kind="single", dtype=object),
            "navsum": self.buffer(kind="nav", dtype="float32"),
        }

    def preprocess(self):
        self.results.shapes[0] = []

    def process_tile(self, tile):
        self.results.shapes[0].append(tuple(tile.shape))
        self.results.navsum[:] += tile.sum(axis=(1, 2))

    def merge(self, dest, src):
        dest.shapes[0] = list(dest.shapes[0] or []) + list(src.shapes[0])
        dest.navsum[:] = src.navsum


def test_tiles_are_smaller_than_partitions(inline_ctx):
    """With a small tileshape, process_tile sees several tiles per partition."""
    data = make_data((8, 16, 32, 32), "float32", seed=9)
    ds = load_mem(inline_ctx, data, num_partitions=2, tileshape=(2, 8, 32))
    res = inline_ctx.run_udf(dataset=ds, udf=_TileSpy())
    shapes = res["shapes"].data[0]
    assert len(shapes) > 2
    assert sum(s[0] * s[1] * s[2] for s in shapes) == 8 * 16 * 32 * 32
    assert all(s[0] <= 64 for s in shapes)
    assert_close(res["navsum"].data, data.sum(axis=(2, 3)))


# --- precedence -------------------------------------------------------------------------------


class _MarkerBase(UDF):
    def get_result_buffers(self):
        return {"which": self.buffer(kind="nav", dtype="int64")}


class AllThree(_MarkerBase):
    def process_tile(self, tile):
        self.results.which[:] = 1

    def process_frame(self, frame):
        self.results.which[:] = 2

    def process_partition(self, partition):
        self.results.which[:] = 3


class FrameAndPartition(_MarkerBase):
    def process_frame(self, frame):
        self.results.which[:] = 2

    def process_partition(self, partition):
        self.results.which[:] = 3


class TileAndPartition(_MarkerBase):
    def process_tile(self, tile):
        self.results.which[:] = 1

    def process_partition(self, partition):
        self.results.which[:] = 3


class OnlyPartition(_MarkerBase):
    def process_partition(self, partition):
        self.results.which[:] = 3


class InheritedFrame(FrameAndPartition):
    """Inherits process_frame and process_partition and adds process_tile."""

    def process_tile(self, tile):
        self.results.which[:] = 1


@pytest.mark.parametrize(
    "cls,expected",
    [
        (AllThree, 1),
        (FrameAndPartition, 2),
        (TileAndPartition, 1),
        (OnlyPartition, 3),
        (InheritedFrame, 1),
    ],
)
def test_precedence(ctx, cls, expected):
    data = make_data((4, 6, 6, 5), "float32")
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=cls())
    assert res["which"].data.shape == (4, 6)
    assert (res["which"].data == expected).all()


class _CallShapes(UDF):
    """Which argument shapes does each processing method see?"""

    def get_result_buffers(self):
        return {"ndim": self.buffer(kind="nav", dtype="int64")}


class _FrameShape(_CallShapes):
    def process_frame(self, frame):
        assert frame.shape == tuple(self.meta.dataset_shape.sig)
        self.results.ndim[:] = frame.ndim


class _PartitionShape(_CallShapes):
    def process_partition(self, partition):
        assert partition.shape[1:] == tuple(self.meta.dataset_shape.sig)
        assert partition.shape[0] == self.meta.partition_shape[0]
        self.results.ndim[:] = partition.shape[0]


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_argument_shapes(ctx, shape):
    full_shape, sig_dims = shape
    data = make_data(full_shape, "float32")
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=_FrameShape())
    assert (res["ndim"].raw_data == sig_dims).all()
    res = ctx.run_udf(dataset=ds, udf=_PartitionShape())
    # each frame holds the number of frames of its partition: 3 partitions of 24 frames
    sizes = res["ndim"].raw_data
    assert sizes.shape == (24,)
    assert np.isclose(np.sum(1.0 / sizes), 3)


# --- preprocess / postprocess ----------------------------------------------------------------


class PreprocessUDF(UDF):
    """preprocess writes the size of the nav view it sees (the whole partition on workers,
    the whole selection on the main node) and counts its calls."""

    def get_result_buffers(self):
        return {
            "plen": self.buffer(kind="nav", dtype="int64"),
            "seen": self.buffer(kind="nav", dtype="int64"),
            "calls": self.buffer(kind="single", dtype="int64"),
            "maxlen": self.buffer(kind="single", dtype="int64"),
            "init": self.buffer(kind="sig", dtype="float64"),
        }

    def preprocess(self):
        n = self.results.plen.shape[0]
        self.results.plen[:] = n
        self.results.calls[:] += 1
        self.results.maxlen[:] = max(int(self.results.maxlen[0]), n)
        self.results.init[:] = -np.inf

    def process_frame(self, frame):
        self.results.seen[:] = self.results.plen
        self.results.init[:] = np.maximum(self.results.init, frame)

    def merge(self, dest, src):
        dest.plen[:] = src.plen
        dest.seen[:] = src.seen
        dest.calls[:] += src.calls
        dest.maxlen[:] = np.maximum(dest.maxlen, src.maxlen)
        dest.init[:] = np.maximum(dest.init, src.init)


def _runs(values):
    """Split a sequence into runs of equal values: [(value, length), ...]."""
    out = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return out


@pytest.mark.parametrize("num_partitions", [1, 2, 3, 4])
def test_preprocess_whole_partition_and_main(ctx, num_partitions):
    data = make_data((4, 6, 6, 5), "float32", seed=11)
    ds = load_mem(ctx, data, num_partitions=num_partitions)
    assert len(list(ds.get_partitions())) == num_partitions
    res = ctx.run_udf(dataset=ds, udf=PreprocessUDF())
    plen = res["plen"].raw_data
    # contiguous runs of equal values, each made of whole partitions of that size
    runs = _runs(plen.tolist())
    assert all(n % v == 0 for v, n in runs), runs
    assert np.isclose(np.sum(1.0 / plen), num_partitions)
    assert (res["seen"].raw_data == plen).all()
    # main node + one call per partition
    assert res["calls"].data[0] == 1 + num_partitions
    # on the main node, preprocess sees the whole dataset
    assert res["maxlen"].data[0] == 24
    np.testing.assert_array_equal(res["init"].data, data.max(axis=(0, 1)))


def test_preprocess_with_roi(ctx):
    data = make_data((4, 6, 6, 5), "float32", seed=11)
    roi = make_roi((4, 6), seed=12)
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=PreprocessUDF(), roi=roi)
    plen = res["plen"].raw_data
    assert plen.shape == (np.count_nonzero(roi),)
    runs = _runs(plen.tolist())
    assert all(n % v == 0 for v, n in runs), runs
    assert res["maxlen"].data[0] == np.count_nonzero(roi)
    np.testing.assert_array_equal(res["init"].data, data[roi].max(axis=0))


class PostprocessUDF(UDF):
    def get_result_buffers(self):
        return {
            "a": self.buffer(kind="nav", dtype="float64"),
            "b": self.buffer(kind="nav", dtype="float64"),
            "pcalls": self.buffer(kind="single", dtype="int64"),
            "pframes": self.buffer(kind="single", dtype="int64"),
        }

    def process_tile(self, tile):
        self.results.a[:] += tile.sum(axis=tuple(range(1, tile.ndim)))

    def postprocess(self):
        # runs once per partition, with nav views for the whole partition
        self.results.b[:] = 2 * self.results.a + 1
        self.results.pcalls[:] += 1
        self.results.pframes[:] += self.results.b.shape[0]

    def merge(self, dest, src):
        dest.a[:] = src.a
        dest.b[:] = src.b
        dest.pcalls[:] += src.pcalls
        dest.pframes[:] += src.pframes


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("num_partitions", [1, 3])
def test_postprocess(ctx, use_roi, num_partitions):
    data = make_data((4, 6, 16, 16), "float32", seed=13)
    roi = make_roi((4, 6), seed=14, p=0.8) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=num_partitions, tileshape=(2, 8, 16))
    res = ctx.run_udf(dataset=ds, udf=PostprocessUDF(), roi=roi)
    sums = data.astype(np.float64).sum(axis=(2, 3))
    sel = np.ones((4, 6), bool) if roi is None else roi
    assert_close(res["a"].data[sel], sums[sel], np.float32)
    assert_close(res["b"].data[sel], 2 * sums[sel] + 1, np.float32)
    assert res["pcalls"].data[0] == num_partitions
    assert res["pframes"].data[0] == np.count_nonzero(sel)


# --- params and the clean-copy rule ----------------------------------------------------------


class MyParamUDF(UDF):
    """The constructor example of the docs: a default is filled in before super().__init__."""

    def __init__(self, my_param=None):
        if my_param is None:
            my_param = "Eins, zwei drei!"
        super().__init__(my_param=my_param)

    def get_result_buffers(self):
        return {"demo": self.buffer(kind="single", dtype=object)}

    def process_frame(self, frame):
        self.results.demo[:] = self.params.my_param

    def merge(self, dest, src):
        dest.demo[:] = src.demo


def test_params_default_and_explicit(ctx):
    ds = load_mem(ctx, make_data((4, 6, 6, 5)), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=MyParamUDF())
    assert res["demo"].data[0] == "Eins, zwei drei!"
    res2 = ctx.run_udf(dataset=ds, udf=MyParamUDF(my_param=42))
    assert res2["demo"].data[0] == 42


class ScaleUDF(UDF):
    def get_result_buffers(self):
        return {"scaled": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame):
        self.results.scaled[:] = np.sum(frame) * self.params.factor + self.params.offset[0]


@pytest.mark.parametrize("factor", [0.5, 3])
def test_params_kwargs(ctx, factor):
    data = make_data((4, 6, 6, 5), "float32", seed=15)
    ds = load_mem(ctx, data, num_partitions=3)
    udf = ScaleUDF(factor=factor, offset=np.array([7.0]))
    assert udf.params.factor == factor
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert_close(res["scaled"].data, data.sum(axis=(2, 3)) * factor + 7.0)


class CleanCopyUDF(UDF):
    """Sets an instance attribute: the engine must run a clean copy, so workers don't see it."""

    def get_result_buffers(self):
        return {"seen": self.buffer(kind="nav", dtype="int64")}

    def process_frame(self, frame):
        self.results.seen[:] = getattr(self, "dirty", 0)


def test_clean_copy_is_used_for_processing(ctx):
    ds = load_mem(ctx, make_data((4, 6, 6, 5)), num_partitions=2)
    udf = CleanCopyUDF()
    udf.dirty = 5
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert (res["seen"].data == 0).all()


def test_same_udf_instance_twice(ctx):
    data = make_data((4, 6, 6, 5), "float32", seed=16)
    ds = load_mem(ctx, data, num_partitions=3)
    udf = SUM_UDFS["tile"]()
    res1 = ctx.run_udf(dataset=ds, udf=udf)
    res2 = ctx.run_udf(dataset=ds, udf=udf)
    check_sums(res1, data, 2)
    check_sums(res2, data, 2)


# --- task data ------------------------------------------------------------------------------


class TaskDataUDF(UDF):
    def get_task_data(self):
        sig = tuple(self.meta.dataset_shape.sig)
        return {"factor": self.params.k * 2, "offset": np.full(sig, 3.0)}

    def get_result_buffers(self):
        return {"out": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame):
        td = self.task_data
        assert td.factor == td["factor"]
        self.results.out[:] = np.sum(frame * td["factor"] + td["offset"])


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_task_data(ctx, use_roi):
    data = make_data((4, 6, 6, 5), "float32", seed=17)
    roi = make_roi((4, 6), seed=18) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=TaskDataUDF(k=1.5), roi=roi)
    expected = (data.astype(np.float64) * 3.0 + 3.0).sum(axis=(2, 3))
    sel = np.ones((4, 6), bool) if roi is None else roi
    assert_close(res["out"].data[sel], expected[sel], np.float32)


# --- input dtype -----------------------------------------------------------------------------


class DtypeSpy(UDF):
    """Records the dtype of the data it gets and meta.input_dtype / meta.dataset_dtype."""

    def get_result_buffers(self):
        return {
            "frame_dtype": self.buffer(kind="nav", dtype=object),
            "meta": self.buffer(kind="single", dtype=object),
            "navsum": self.buffer(kind="nav", dtype=self.meta.input_dtype),
        }

    def process_tile(self, tile):
        for i in range(tile.shape[0]):
            self.results.frame_dtype[i] = str(tile.dtype)
        self.results.navsum[:] += tile.sum(axis=tuple(range(1, tile.ndim)))
        self.results.meta[0] = (str(self.meta.input_dtype), str(self.meta.dataset_dtype))

    def merge(self, dest, src):
        dest.frame_dtype[:] = src.frame_dtype
        dest.navsum[:] = src.navsum
        dest.meta[:] = src.meta


class NativeDtypeSpy(DtypeSpy):
    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE


class Float64Spy(DtypeSpy):
    def get_preferred_input_dtype(self):
        return np.float64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "cls,preferred",
    [(DtypeSpy, np.float32), (NativeDtypeSpy, None), (Float64Spy, np.float64)],
    ids=["default", "native", "float64"],
)
def test_input_dtype(ctx, dtype, cls, preferred):
    data = make_data((4, 6, 6, 5), dtype, seed=19)
    ds = load_mem(ctx, data, num_partitions=2)
    assert ds.dtype == np.dtype(dtype)
    res = ctx.run_udf(dataset=ds, udf=cls())
    expected = np.dtype(dtype) if preferred is None else input_dtype(dtype, preferred)
    assert set(res["frame_dtype"].data.reshape(-1)) == {str(expected)}
    assert res["meta"].data[0] == (str(expected), str(np.dtype(dtype)))
    assert res["navsum"].data.dtype == expected
    ref = data.astype(expected).sum(axis=(2, 3)).astype(expected)
    if expected.kind in "iu":
        np.testing.assert_array_equal(res["navsum"].data, ref)
    else:
        assert_close(res["navsum"].data, ref, expected)


def test_default_conversion_to_float32(ctx):
    """uint16 data reaches the UDF as float32 with the same values."""
    data = make_data((2, 3, 4, 5), "uint16", seed=20)
    ds = load_mem(ctx, data, num_partitions=2)

    class Echo(UDF):
        def get_result_buffers(self):
            return {"echo": self.buffer(kind="nav", extra_shape=(4, 5), dtype="float32")}

        def process_frame(self, frame):
            assert frame.dtype == np.float32
            self.results.echo[:] = frame

    res = ctx.run_udf(dataset=ds, udf=Echo())
    np.testing.assert_array_equal(res["echo"].data, ref_input(data))
