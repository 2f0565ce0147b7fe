"""How memory, npy and raw datasets derive their shapes and check their arguments
(LiberTEM 0.16): MemoryDataSet's sig_dims/nav_shape/sig_shape rules, NPY's sig_shape and
detection, the raw dataset's legacy arguments, the filetypes registry, DataSet.roi."""

import warnings

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset import (
    filetypes,
    get_dataset_cls,
    register_dataset_cls,
    unregister_dataset_cls,
)
from libertem.io.dataset.base import MMapBackend
from libertem.io.dataset.memory import MemoryDataSet, MemoryFile
from libertem.io.dataset.npy import NPYDataSet
from libertem.io.dataset.raw import RAWDatasetParams
from libertem.udf.sumsigudf import SumSigUDF

D = (2, 3, 4, 5)


@pytest.mark.parametrize(
    "kw, nav, sig",
    [
        ({}, (2, 3), (4, 5)),
        ({"sig_dims": 1}, (2, 3, 4), (5,)),
        ({"sig_dims": 3}, (2,), (3, 4, 5)),
        ({"sig_shape": (4, 5)}, (2, 3), (4, 5)),
        ({"sig_shape": (20,)}, (2, 3, 4), (20,)),
        ({"nav_shape": (6,)}, (6,), (3, 4, 5)),
        ({"nav_shape": (6,), "sig_dims": 2}, (6,), (4, 5)),
        ({"nav_shape": (2, 3, 4)}, (2, 3, 4), (5,)),
        ({"nav_shape": (3, 2), "sig_shape": (20,)}, (3, 2), (20,)),
    ],
)
def test_memory_shapes_from_stored_axes(inline_ctx, kw, nav, sig):
    data = np.arange(np.prod(D), dtype=np.float32).reshape(D)
    ds = inline_ctx.load("memory", data=data, **kw)
    assert tuple(ds.shape.nav) == nav and tuple(ds.shape.sig) == sig
    assert ds.meta.image_count == data.size // int(np.prod(sig))
    # frames are cut from the flat data in C order; positions without a frame stay 0
    sums = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.reshape(-1)
    frames = data.reshape(-1, int(np.prod(sig))).sum(axis=1)
    expected = np.zeros(int(np.prod(nav)))
    n = min(expected.size, frames.size)
    expected[:n] = frames[:n]
    np.testing.assert_allclose(sums, expected)


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {"sig_shape": (4, 5), "sig_dims": 1},
            "Length of sig_shape (4, 5) not matching sig_dims 1.",
        ),
        (
            {"sig_shape": (20,), "sig_dims": 2},
            "Length of sig_shape (20,) not matching sig_dims 2.",
        ),
        # the length check comes before anything else
        (
            {"sig_shape": (4, 5), "sig_dims": 1, "sync_offset": 100},
            "Length of sig_shape (4, 5) not matching sig_dims 1.",
        ),
        ({"sig_shape": (7, 7)}, "Data size is not a multiple of sig shape"),
    ],
)
def test_memory_argument_errors(inline_ctx, kw, message):
    data = np.zeros(D, dtype=np.float32)
    for make in (
        lambda: inline_ctx.load("memory", data=data, **kw),
        lambda: MemoryDataSet(data=data, **kw),
    ):
        with pytest.raises(ValueError) as e:
            make()
        assert str(e.value) == message
    MemoryDataSet(data=data)  # the context stays usable; valid arguments load
    inline_ctx.run_udf(dataset=inline_ctx.load("memory", data=data), udf=SumSigUDF())


def test_memory_tileshape_and_base_shape():
    data = np.zeros((4, 6, 30, 64), dtype=np.float32)
    ds = MemoryDataSet(data=data, tileshape=(3, 10, 16), base_shape=(1, 15, 16))
    assert tuple(ds.tileshape) == (3, 10, 16) and ds.tileshape.sig.dims == 2
    assert ds.get_base_shape(roi=None) == (1, 15, 16)
    assert MemoryDataSet(data=data).tileshape is None
    MemoryFile(
        path=None,
        start_idx=0,
        end_idx=4,
        native_dtype=np.float32,
        sig_shape=(30, 64),
        data=data.reshape(-1, 30, 64)[:4],
        check_cast=True,
    )


NPY = (8, 8, 8, 8)


@pytest.fixture
def npy_path(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, np.arange(np.prod(NPY), dtype=np.float32).reshape(NPY))
    return str(path)


@pytest.mark.parametrize(
    "kw, shape, count",
    [
        ({"sig_shape": (3, 3)}, (8, 8, 3, 3), 455),
        ({"sig_shape": (16, 16)}, (8, 8, 16, 16), 16),
        ({"sig_shape": (64,), "sig_dims": 1}, (8, 8, 8, 64), 64),
        ({"sig_shape": (64,), "sig_dims": None}, (8, 8, 8, 64), 64),
        ({"sig_dims": 1}, (8, 8, 8, 8), 512),
    ],
)
def test_npy_sig_shape(inline_ctx, npy_path, kw, shape, count):
    ds = inline_ctx.load("npy", path=npy_path, **kw)
    assert tuple(ds.shape) == shape and ds.meta.image_count == count
    flat = np.load(npy_path).reshape(-1)
    frame = int(np.prod(shape[len(shape) - len(ds.shape.sig) :]))
    sums = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.reshape(-1)
    expected = np.zeros(sums.size)
    n = min(count, sums.size)
    expected[:n] = flat[: count * frame].reshape(count, frame).sum(axis=1)[:n]
    np.testing.assert_allclose(sums, expected, rtol=1e-6)


def test_npy_argument_errors(inline_ctx, npy_path):
    with pytest.raises(
        DataSetException, match=r"^Mismatching sig_dims \(= 2\) and sig_shape \(64,\) arguments$"
    ):
        inline_ctx.load("npy", path=npy_path, sig_shape=(64,))
    with pytest.raises(DataSetException, match="^Must supply one of sig_dims or sig_shape"):
        NPYDataSet(npy_path, sig_dims=None)
    with pytest.raises(DataSetException, match=r"sync_offset should be in \(0, 0\)"):
        inline_ctx.load("npy", path=npy_path, sig_shape=(100, 100))
    ds = inline_ctx.load("npy", path=npy_path)
    (f,) = ds._get_fileset()
    assert f._path == ds._path


def test_npy_detect_params(tmp_path, inline_ctx):
    np.save(tmp_path / "d3.npy", np.zeros((6, 5, 4), np.float32))
    (tmp_path / "notes.txt").write_text("hello")
    r = NPYDataSet.detect_params(str(tmp_path / "d3.npy"), inline_ctx.executor)
    assert r == {
        "parameters": {"path": str(tmp_path / "d3.npy"), "nav_shape": (6,), "sig_shape": (5, 4)},
        "info": {"image_count": 6, "native_sig_shape": (5, 4)},
    }
    for arg in (555, str(tmp_path / "notes.txt"), str(tmp_path / "missing.npy"), None):
        assert NPYDataSet.detect_params(arg, inline_ctx.executor) is False


@pytest.fixture
def raw_path(tmp_path):
    path = tmp_path / "d.raw"
    np.arange(8 * 8 * 8 * 8, dtype=np.float32).tofile(path)
    return str(path)


def _load_raw(ctx, path, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = ctx.load("raw", path=path, dtype="float32", **kw)
    return ds, [w for w in rec if issubclass(w.category, FutureWarning)]


def test_raw_legacy_arguments(inline_ctx, raw_path):
    ds, warned = _load_raw(inline_ctx, raw_path, scan_size=(8, 8), detector_size=(8, 8))
    assert tuple(ds.shape) == (8, 8, 8, 8) and len(warned) == 2
    ds, warned = _load_raw(
        inline_ctx, raw_path, nav_shape=(8, 8), detector_size_raw=(8, 8), crop_detector_to=[8, 8]
    )
    assert tuple(ds.shape) == (8, 8, 8, 8) and len(warned) == 2
    ds, warned = _load_raw(
        inline_ctx, raw_path, nav_shape=(8, 8), sig_shape=(8, 8), enable_direct=True
    )
    assert type(ds.get_io_backend()).__name__ == "DirectBackend" and len(warned) == 1
    ds, warned = _load_raw(
        inline_ctx, raw_path, nav_shape=(8, 8), sig_shape=(8, 8), tileshape=(1, 8, 8)
    )
    assert len(warned) == 1
    res = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data
    np.testing.assert_allclose(res.reshape(-1), np.arange(4096.0).reshape(64, 64).sum(axis=1))


@pytest.mark.parametrize(
    "kw, error, message",
    [
        ({"nav_shape": (8, 8)}, TypeError, "missing 1 required argument: 'sig_shape'"),
        ({"sig_shape": (8, 8)}, TypeError, "missing 1 required argument: 'nav_shape'"),
        (
            {"nav_shape": (8, 8), "detector_size_raw": (8, 8), "crop_detector_to": (4, 4)},
            ValueError,
            "RawFileDataSet can't crop detector anymore, please use EMPAD DataSet",
        ),
        (
            {"nav_shape": (8, 8), "detector_size": (8, 8), "crop_detector_to": (8, 8)},
            ValueError,
            "cannot specify both detector_size and crop_detector_to",
        ),
        (
            {"scan_size": (8, 8), "nav_shape": (8, 8), "sig_shape": (8, 8)},
            ValueError,
            "cannot specify both scan_size and nav_shape",
        ),
        (
            {"nav_shape": (8, 8), "detector_size": (8, 8), "sig_shape": (8, 8)},
            ValueError,
            "cannot specify both detector_size and sig_shape",
        ),
        (
            {
                "nav_shape": (8, 8),
                "sig_shape": (8, 8),
                "enable_direct": True,
                "io_backend": MMapBackend(),
            },
            ValueError,
            "can't specify io_backend and enable_direct at the same time",
        ),
        (
            {"nav_shape": (8, 8), "sig_shape": (65, 65)},
            DataSetException,
            "sig_shape must be less than size: 4096",
        ),
    ],
)
def test_raw_argument_errors(inline_ctx, raw_path, kw, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as e:
            inline_ctx.load("raw", path=raw_path, dtype="float32", **kw)
    assert str(e.value) == message


def test_raw_params_converter():
    conv = RAWDatasetParams()
    msg = {"type": "RAW", "path": "p", "dtype": "d", "nav_shape": [16, 16], "sig_shape": [8, 8]}
    out = conv.convert_to_python({**msg, "sync_offset": 0})
    assert list(out) == ["path", "dtype", "nav_shape", "sig_shape", "sync_offset"]
    assert out["nav_shape"] == [16, 16] and out["sync_offset"] == 0
    assert list(conv.convert_to_python(msg)) == ["path", "dtype", "nav_shape", "sig_shape"]


def test_filetypes_registry():
    assert isinstance(filetypes, dict)
    reference = ["hdf5", "raw", "raw_csr", "mib", "blo", "k2is", "ser", "frms6", "empad",
                 "dm", "seq", "mrc", "tvips", "npy", "dask", "memory"]  # fmt: skip
    assert [k for k in filetypes if k in reference] == reference
    assert filetypes["raw"] == "libertem.io.dataset.raw.RawFileDataSet"
    for key in filetypes:
        assert get_dataset_cls(key).__name__ == filetypes[key].rsplit(".", 1)[1]
    register_dataset_cls("myraw", "libertem.io.dataset.raw.RawFileDataSet")
    try:
        assert filetypes["myraw"] == "libertem.io.dataset.raw.RawFileDataSet"
        assert get_dataset_cls("MyRaw").__name__ == "RawFileDataSet"
    finally:
        unregister_dataset_cls("myraw")
    assert "myraw" not in filetypes
    filetypes["mem2"] = MemoryDataSet  # a class stored as the value is returned as it is
    try:
        assert get_dataset_cls("mem2") is MemoryDataSet
    finally:
        del filetypes["mem2"]


def test_dataset_roi_helper(inline_ctx):
    ds = inline_ctx.load("memory", data=np.zeros((3, 4, 2, 2), dtype=np.float32))
    assert type(ds.roi).__name__ == "RoiHelper"
    for key in (np.s_[0], np.s_[1, 2], np.s_[0:2, 1:3], np.s_[..., -1], np.s_[:, ::2]):
        expected = np.zeros((3, 4), bool)
        expected[key] = True
        got = ds.roi[key]
        assert got.dtype == bool and np.array_equal(got, expected)
    assert ds.roi[0] is not ds.roi[0]
    # usable as a run's roi
    res = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=ds.roi[1])
    assert res["intensity"].raw_data.shape == (4,)
