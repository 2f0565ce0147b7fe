"""Bad input gets a clear exception, and the Context keeps working afterwards."""

import traceback

import numpy as np
import pytest

from libertem.common.exceptions import UDFException
from libertem.exceptions import DataSetException
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import assert_ctx_works, load_mem, make_data

# --- datasets ----------------------------------------------------------------------------------


def test_unknown_filetype(ctx, tmp_path):
    path = tmp_path / "x.raw"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(DataSetException) as e:
        ctx.load("no-such-format", path=str(path))
    assert "no-such-format" in str(e.value)
    assert_ctx_works(ctx)


@pytest.mark.parametrize("filetype", ["raw", "npy"])
def test_missing_file(ctx, tmp_path, filetype):
    path = tmp_path / f"does-not-exist.{filetype}"
    kwargs = dict(path=str(path))
    if filetype == "raw":
        kwargs.update(nav_shape=(2, 3), sig_shape=(4, 5), dtype="float32")
    with pytest.raises(DataSetException) as e:
        ctx.load(filetype, **kwargs)
    assert "does-not-exist" in str(e.value)
    assert_ctx_works(ctx)


@pytest.mark.parametrize("nbytes", [0, 1, 4 * 5 * 4 - 1])
def test_raw_file_too_small(ctx, tmp_path, nbytes):
    # LiberTEM's text: fewer elements than one frame
    path = tmp_path / "small.raw"
    path.write_bytes(b"\1" * nbytes)
    with pytest.raises(DataSetException, match=f"sig_shape must be less than size: {nbytes // 4}"):
        ctx.load("raw", path=str(path), nav_shape=(2, 3), sig_shape=(4, 5), dtype="float32")
    assert_ctx_works(ctx)


@pytest.mark.parametrize("nbytes", [4 * 5 * 4 * 6 - 1, 4 * 5 * 4 * 5])
def test_raw_file_shorter_than_nav_shape(ctx, tmp_path, nbytes):
    # LiberTEM: the 5 stored frames are read, the sixth position has no data
    path = tmp_path / "small.raw"
    data = np.arange(nbytes // 4, dtype=np.float32)
    data.tofile(path)
    ds = ctx.load("raw", path=str(path), nav_shape=(2, 3), sig_shape=(4, 5), dtype="float32")
    assert ds.meta.image_count == 5
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.reshape(-1)
    expected = data[: 5 * 20].reshape(5, 20).sum(axis=1)
    np.testing.assert_allclose(res, np.concatenate([expected, [0]]))
    assert_ctx_works(ctx)


def test_npy_garbage(ctx, tmp_path):
    path = tmp_path / "garbage.npy"
    path.write_bytes(b"this is not an npy file at all" * 10)
    with pytest.raises(DataSetException):
        ctx.load("npy", path=str(path))
    assert_ctx_works(ctx)


def test_npy_truncated(ctx, tmp_path):
    path = tmp_path / "trunc.npy"
    np.save(path, np.ones((4, 6, 8, 10), dtype=np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataSetException):
        ds = ctx.load("npy", path=str(path))
        ctx.run_udf(dataset=ds, udf=SumUDF())
    assert_ctx_works(ctx)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(data=np.zeros((4, 6, 5, 4)), sig_shape=(7, 3)), ValueError),
        (dict(data=np.zeros((5, 4)), sig_dims=3), DataSetException),
        (dict(data=np.zeros((4, 6, 5, 4)), nav_shape=(2, 6), sig_shape=(5, 5)), ValueError),
        (dict(data=np.zeros((4, 6, 5, 4)), sig_shape=(20,), sig_dims=2), ValueError),
    ],
    ids=["sig-shape-not-dividing", "too-few-dims", "sig-mismatch", "sig-dims-mismatch"],
)
def test_memory_wrong_size_data(ctx, kwargs, error):
    # LiberTEM raises ValueError for sig_shape/sig_dims that do not fit the data
    with pytest.raises(error):
        ds = ctx.load("memory", **kwargs)
        ctx.run_udf(dataset=ds, udf=SumUDF())
    assert_ctx_works(ctx)


def test_memory_nav_shape_beyond_data(ctx):
    # LiberTEM: positions without data keep the buffers' initial value
    data = np.ones((4, 6, 5, 4))
    ds = ctx.load("memory", data=data, nav_shape=(4, 7), sig_shape=(5, 4))
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.reshape(-1)
    np.testing.assert_allclose(res, np.concatenate([np.full(24, 20.0), np.zeros(4)]))
    assert_ctx_works(ctx)


def test_memory_no_data(ctx):
    with pytest.raises(DataSetException):
        ctx.load("memory")
    assert_ctx_works(ctx)


@pytest.mark.parametrize("nav_shape", [(3,), (2, 2)])
def test_aux_data_wrong_size(ctx, nav_shape):
    class AuxUDF(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.x[:] = self.params.aux

    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    aux = AuxUDF.aux_data(data=np.ones(nav_shape, dtype=np.float32), kind="nav", dtype="float32")
    with pytest.raises((UDFException, ValueError)):
        ctx.run_udf(dataset=ds, udf=AuxUDF(aux=aux))
    assert_ctx_works(ctx)


# --- ROI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "roi",
    [
        np.ones((6, 4), bool),
        np.ones((4, 5), bool),
        np.ones((4, 6, 1), bool),
        np.ones((25,), bool),
        np.ones((4,), bool),
    ],
    ids=["transposed", "too-small", "extra-axis", "flat-too-long", "flat-too-short"],
)
def test_roi_wrong_shape(ctx, roi):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises(ValueError) as e:
        ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    assert "roi" in str(e.value).lower()
    assert "shape" in str(e.value).lower()
    assert_ctx_works(ctx)


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex64", "U1", "int64", "uint8"])
def test_roi_wrong_dtype(ctx, dtype):
    """LiberTEM 0.16 casts a non-boolean ROI to bool, with a UserWarning."""
    data = make_data((4, 6, 5, 4))
    ds = load_mem(ctx, data)
    roi = np.zeros((4, 6)).astype(dtype)
    roi[1, 2] = np.ones((), dtype=roi.dtype)
    with pytest.warns(UserWarning, match=f"ROI dtype is {np.dtype(dtype)}, expected bool"):
        res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    assert np.allclose(res["intensity"].data, data[roi.astype(bool)].sum(axis=0))
    assert_ctx_works(ctx)


@pytest.mark.parametrize("method", ["run_udf", "run_udf_iter"])
def test_roi_error_before_work(ctx, method):
    """The ROI is checked on the main node before any UDF method runs."""
    calls = []

    class Spy(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            calls.append(1)

    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises(ValueError):
        if method == "run_udf":
            ctx.run_udf(dataset=ds, udf=Spy(), roi=np.ones((3, 3), bool))
        else:
            list(ctx.run_udf_iter(dataset=ds, udf=Spy(), roi=np.ones((3, 3), bool)))
    assert calls == []
    assert_ctx_works(ctx)


# --- bad UDFs ----------------------------------------------------------------------------------


class SigNoMerge(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig")}

    def process_frame(self, frame):
        self.results.s[:] += frame


class SigAndNavNoMerge(UDF):
    def get_result_buffers(self):
        return {"n": self.buffer(kind="nav"), "s": self.buffer(kind="sig", extra_shape=(2,))}

    def process_frame(self, frame):
        self.results.n[:] = 1


class SingleNoMerge(UDF):
    def get_result_buffers(self):
        return {"c": self.buffer(kind="single")}

    def process_frame(self, frame):
        self.results.c[:] += 1


@pytest.mark.parametrize("cls", [SigNoMerge, SigAndNavNoMerge, SingleNoMerge])
def test_sig_buffer_without_merge(ctx, cls):
    # LiberTEM: the default merge raises NotImplementedError for non-nav buffers
    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises(NotImplementedError) as e:
        ctx.run_udf(dataset=ds, udf=cls())
    assert "Default merging only works for kind='nav' buffers" in str(e.value)
    assert_ctx_works(ctx)


def test_sig_buffer_without_merge_in_list(ctx):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises(NotImplementedError):
        ctx.run_udf(dataset=ds, udf=[SumUDF(), SigNoMerge()])
    assert_ctx_works(ctx)


class BadConstructor(UDF):
    """Breaks the clean-copy rule: passes a parameter under a different name."""

    def __init__(self, my_param=None):
        super().__init__(other_param=my_param)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.x[:] = 1


class BadConstructorRequired(UDF):
    """Breaks the clean-copy rule: a required argument that is not passed on."""

    def __init__(self, factor):
        super().__init__()
        self._factor = factor

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.x[:] = self._factor


@pytest.mark.parametrize(
    "make", [lambda: BadConstructor(my_param=3), lambda: BadConstructorRequired(2)]
)
def test_constructor_breaks_clean_copy(ctx, make):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises(UDFException) as e:
        ctx.run_udf(dataset=ds, udf=make())
    msg = str(e.value).lower()
    assert any(word in msg for word in ("__init__", "constructor", "copy")), msg
    assert_ctx_works(ctx)


class NoProcessMethod(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}


def test_udf_without_process_method(ctx):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises(TypeError, match="UDF should implement one of the `process_\\*` methods"):
        ctx.run_udf(dataset=ds, udf=NoProcessMethod())
    assert_ctx_works(ctx)


@pytest.mark.parametrize(
    "key,kwargs",
    [
        ("kind", dict(kind="navv")),
        ("use", dict(kind="nav", use="public")),
        ("where", dict(kind="sig", where="gpu")),
    ],
)
def test_bad_buffer_declaration(ctx, key, kwargs):
    class BadBuffer(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(**self.params.kw)}

        def process_frame(self, frame):
            pass

    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises((UDFException, ValueError)) as e:
        ctx.run_udf(dataset=ds, udf=BadBuffer(kw=kwargs))
    assert key in str(e.value)
    assert_ctx_works(ctx)


# --- UDFs that raise ---------------------------------------------------------------------------


class MyError(Exception):
    pass


class Raiser(UDF):
    def get_result_buffers(self):
        if self.params.where == "get_result_buffers":
            raise MyError("boom in get_result_buffers")
        return {"s": self.buffer(kind="sig"), "n": self.buffer(kind="nav")}

    def preprocess(self):
        if self.params.where == "preprocess":
            raise MyError("boom in preprocess")

    def process_frame(self, frame):
        if self.params.where == "process_frame":
            raise MyError("boom in process_frame")
        self.results.s[:] += frame
        self.results.n[:] = 1

    def postprocess(self):
        if self.params.where == "postprocess":
            raise MyError("boom in postprocess")

    def merge(self, dest, src):
        if self.params.where == "merge":
            raise MyError("boom in merge")
        dest.s[:] += src.s
        dest.n[:] = src.n

    def get_task_data(self):
        if self.params.where == "get_task_data":
            raise MyError("boom in get_task_data")
        return {}

    def get_results(self):
        if self.params.where == "get_results":
            raise MyError("boom in get_results")
        return {"s": self.results.s, "n": self.results.n}


def _find(exc, cls):
    """``exc`` or an exception it was raised from / during that is a ``cls``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, cls):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


WHERES = [
    "get_result_buffers",
    "preprocess",
    "process_frame",
    "postprocess",
    "merge",
    "get_task_data",
    "get_results",
]


@pytest.mark.parametrize("where", WHERES)
@pytest.mark.parametrize("method", ["run_udf", "run_udf_iter", "list"])
def test_udf_raises(ctx, where, method):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)), num_partitions=3)
    with pytest.raises(Exception) as e:
        if method == "run_udf":
            ctx.run_udf(dataset=ds, udf=Raiser(where=where))
        elif method == "list":
            ctx.run_udf(dataset=ds, udf=[SumUDF(), Raiser(where=where)])
        else:
            for part in ctx.run_udf_iter(dataset=ds, udf=Raiser(where=where)):
                part.buffers  # get_results runs when the results are read
    original = _find(e.value, MyError)
    assert original is not None, f"MyError not raised or chained: {e.value!r}"
    assert str(original) == f"boom in {where}"
    # its own traceback surfaces: the frame of the raising method is in it
    tb = "".join(traceback.format_exception(type(e.value), e.value, e.value.__traceback__))
    assert f"boom in {where}" in tb
    assert f'raise MyError("boom in {where}")' in tb
    assert f"in {where}" in tb
    assert_ctx_works(ctx)


def test_udf_raises_repeatedly_context_survives(threads_ctx):
    ds = load_mem(threads_ctx, make_data((4, 6, 5, 4)), num_partitions=6)
    for _ in range(3):
        with pytest.raises(MyError):
            threads_ctx.run_udf(dataset=ds, udf=Raiser(where="process_frame"))
        assert_ctx_works(threads_ctx)


def test_run_udf_non_udf(ctx):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises((UDFException, TypeError)):
        ctx.run_udf(dataset=ds, udf=object())
    assert_ctx_works(ctx)


@pytest.mark.parametrize("sync_offset", [12, 13, -12, -100])
def test_raw_sync_offset_out_of_range(ctx, tmp_path, sync_offset):
    path = tmp_path / "s.raw"
    make_data((12, 6, 5), "float32").tofile(path)
    with pytest.raises(DataSetException) as e:
        ctx.load(
            "raw",
            path=str(path),
            nav_shape=(3, 4),
            sig_shape=(6, 5),
            dtype="float32",
            sync_offset=sync_offset,
        )
    assert "sync_offset" in str(e.value)
    assert_ctx_works(ctx)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(nav_shape=(2, 3), sig_shape=(4, 5), dtype="no-such-dtype"),
        dict(nav_shape=(2, 3), sig_shape=(4, 5)),
        dict(dtype="float32"),
        dict(nav_shape=(2, 0), sig_shape=(4, 5), dtype="float32"),
    ],
    ids=["bad-dtype", "no-dtype", "no-shapes", "zero-nav"],
)
def test_raw_bad_arguments(ctx, tmp_path, kwargs):
    path = tmp_path / "x.raw"
    make_data((6, 4, 5), "float32").tofile(path)
    # a missing shape is LiberTEM's TypeError
    error = TypeError if "nav_shape" not in kwargs else DataSetException
    with pytest.raises(error):
        ctx.load("raw", path=str(path), **kwargs)
    assert_ctx_works(ctx)


def test_raw_path_is_directory(ctx, tmp_path):
    with pytest.raises(DataSetException):
        ctx.load("raw", path=str(tmp_path), nav_shape=(2, 3), sig_shape=(4, 5), dtype="float32")
    assert_ctx_works(ctx)


def test_mask_of_wrong_shape(ctx):
    from libertem.udf.masks import ApplyMasksUDF

    ds = load_mem(ctx, make_data((4, 6, 5, 4)))
    with pytest.raises((UDFException, ValueError)) as e:
        ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[lambda: np.ones((3, 3))]))
    assert "shape" in str(e.value)
    assert_ctx_works(ctx)


def test_udf_raises_with_progress(ctx, capsys):
    ds = load_mem(ctx, make_data((4, 6, 5, 4)), num_partitions=3)
    with pytest.raises(MyError):
        ctx.run_udf(dataset=ds, udf=Raiser(where="process_frame"), progress=True)
    assert_ctx_works(ctx)


@pytest.mark.parametrize("iterate", [False, True])
def test_udf_raises_async(ctx, iterate):
    import asyncio

    ds = load_mem(ctx, make_data((4, 6, 5, 4)), num_partitions=3)

    async def main():
        if iterate:
            async for _ in ctx.run_udf_iter(
                dataset=ds, udf=Raiser(where="process_frame"), sync=False
            ):
                pass
        else:
            await ctx.run_udf(dataset=ds, udf=Raiser(where="process_frame"), sync=False)

    with pytest.raises(MyError):
        asyncio.run(main())
    assert_ctx_works(ctx)


def test_public_exceptions_are_the_common_ones():
    """``libertem.exceptions`` exposes the same classes that the engine raises."""
    import libertem.common.exceptions as common
    import libertem.exceptions as public
    from libertem.api import Context

    for name in ("DataSetException", "UDFException", "UDFRunCancelled", "ExecutorSpecException"):
        assert getattr(public, name) is getattr(common, name)
    with pytest.raises(public.ExecutorSpecException):
        Context.make_with("no-such-executor")


def test_module_level_load(tmp_path):
    """``libertem.api.load`` opens a dataset with a given executor, as ``Context.load`` does."""
    from libertem.api import load
    from libertem.executor.inline import InlineJobExecutor

    data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape((2, 3, 4, 5))
    path = tmp_path / "d.npy"
    np.save(path, data)
    ds = load("npy", str(path), executor=InlineJobExecutor())
    assert tuple(ds.shape) == data.shape
    with pytest.raises(DataSetException, match="auto"):
        load("auto", executor=InlineJobExecutor())
