"""HDF5 dataset choice and detection as in LiberTEM 0.16: the largest dataset of three or
more dimensions, the layout of detect_params, empty files, the listing time-out (clock and
environment variable), error texts."""

import os
from unittest import mock

import h5py
import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset import detect
from libertem.io.dataset.hdf5 import H5DataSet
from libertem.udf.sumsigudf import SumSigUDF

ENV = "LIBERTEM_IO_HDF5_TIMEOUT_DEBUG"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture
def multi(tmp_path):
    path = str(tmp_path / "multi.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "scan/five_d", data=np.arange(128, dtype=np.float32).reshape(2, 2, 2, 4, 4)
        )
        f.create_dataset("three_d", data=np.ones((3, 4, 4), dtype=np.float32))
        f.create_dataset("image", data=np.ones((100, 100), dtype=np.float32))
    return path


@pytest.mark.parametrize("nav_shape", [None, (8,), (2, 4), (3, 3)])
def test_largest_dataset_of_three_or_more_dims(inline_ctx, multi, nav_shape):
    ds = inline_ctx.load("hdf5", path=multi, nav_shape=nav_shape)
    assert ds.ds_path == "scan/five_d" and ds.path == multi
    expected_nav = (2, 2, 2) if nav_shape is None else nav_shape
    assert tuple(ds.shape) == (*expected_nav, 4, 4) and ds.meta.image_count == 8
    sums = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.reshape(-1)
    frames = np.arange(128, dtype=np.float64).reshape(8, 16).sum(axis=1)
    expected = np.zeros(int(np.prod(expected_nav)))
    expected[: min(8, expected.size)] = frames[: expected.size]
    np.testing.assert_allclose(sums, expected)


def test_error_texts(inline_ctx, tmp_path):
    only2d = str(tmp_path / "only2d.h5")
    with h5py.File(only2d, "w") as f:
        f.create_dataset("image", data=np.ones((32, 32)))
    with pytest.raises(DataSetException) as e:
        inline_ctx.load("hdf5", path=only2d)
    assert str(e.value) == f"Unable to infer dataset from file {only2d}"
    with pytest.raises(DataSetException) as e:
        inline_ctx.load("hdf5", path=only2d, ds_path="image")
    assert str(e.value) == "2D HDF5 files are currently not supported"
    # the Context stays usable
    three = str(tmp_path / "three.h5")
    with h5py.File(three, "w") as f:
        f.create_dataset("d", data=np.ones((2, 3, 3)))
    assert tuple(inline_ctx.load("hdf5", path=three).shape) == (2, 3, 3)


def test_detect_params_layout(inline_ctx, tmp_path):
    full = str(tmp_path / "full.h5")
    with h5py.File(full, "w") as f:
        f.create_dataset("data", data=np.ones((5, 5, 16, 16)))
        f.create_dataset("line", data=np.ones((7, 16, 16)), chunks=(1, 16, 16))
        f.create_dataset("cube", data=np.ones((2, 3, 4, 16, 16)), compression="gzip")
        f.create_dataset("image", data=np.ones((16, 16)))
    r = detect(full, executor=inline_ctx.executor)
    assert r["type"] == "hdf5"
    assert r["parameters"] == {
        "path": full,
        "ds_path": "data",
        "nav_shape": (5, 5),
        "sig_shape": (16, 16),
    }
    assert list(r["parameters"]) == ["path", "ds_path", "nav_shape", "sig_shape"]
    by_path = {d["path"]: d for d in r["info"]["datasets"]}
    assert [d["path"] for d in r["info"]["datasets"]] == ["cube", "data", "line"]
    cube = dict(by_path["cube"])
    chunks = cube.pop("chunks")  # chosen by h5py for the compressed dataset
    assert isinstance(chunks, tuple) and len(chunks) == 5
    assert list(by_path["cube"]) == [
        "path",
        "shape",
        "compression",
        "chunks",
        "raw_nav_shape",
        "nav_shape",
        "sig_shape",
        "image_count",
    ]
    assert cube == {
        "path": "cube",
        "shape": (2, 3, 4, 16, 16),
        "compression": "gzip",
        "raw_nav_shape": (2, 3, 4),
        "nav_shape": (6, 4),
        "sig_shape": (16, 16),
        "image_count": 24,
    }
    assert by_path["line"]["nav_shape"] == (1, 7) and by_path["line"]["chunks"] == (1, 16, 16)
    assert by_path["data"]["compression"] is None and by_path["data"]["chunks"] is None
    # "auto" loads the detected parameters
    ds = inline_ctx.load("auto", path=full)
    assert ds.ds_path == "data" and tuple(ds.shape) == (5, 5, 16, 16)


def test_detect_empty_and_not_hdf5(inline_ctx, tmp_path):
    empty = str(tmp_path / "empty.h5")
    with h5py.File(empty, "w"):
        pass
    r = detect(empty, executor=inline_ctx.executor)
    assert r == {"type": "hdf5", "parameters": {"path": empty}, "info": {"datasets": []}}
    text = tmp_path / "notes.txt"
    text.write_text("not hdf5")
    assert H5DataSet.detect_params(str(text), executor=inline_ctx.executor) is False


@pytest.fixture
def one(tmp_path):
    path = str(tmp_path / "one.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.ones((2, 2, 8, 8)))
    return path


@pytest.mark.parametrize(
    "env, elapsed, found",
    [
        (None, 2.5, True),
        (None, 3.5, False),
        ("", 3.5, False),
        ("abc", 2.5, True),
        ("abc", 3.5, False),
        ("10", 3.5, True),
        ("10", 10.5, False),
    ],
)
def test_listing_time_limit(inline_ctx, monkeypatch, one, env, elapsed, found):
    if env is not None:
        monkeypatch.setenv(ENV, env)
    # the clock is read before the walk and once per visited object (here: one)
    with mock.patch("libertem.io.dataset.hdf5.current_time", side_effect=[0, elapsed]):
        r = H5DataSet.detect_params(one, executor=inline_ctx.executor)
    keys = ["path", "ds_path", "nav_shape", "sig_shape"] if found else ["path"]
    assert list(r["parameters"]) == keys
    assert (r["info"]["datasets"] != []) == found


def test_listing_timeout_everywhere(inline_ctx, one):
    with mock.patch("h5py.File.visititems", side_effect=TimeoutError("too slow")):
        r = H5DataSet.detect_params(one, executor=inline_ctx.executor)
    assert r == {"parameters": {"path": one}, "info": {"datasets": []}}
    with mock.patch("libertem.io.dataset.hdf5.current_time", side_effect=[0, 10]):
        with pytest.raises(DataSetException, match="Unable to infer dataset"):
            inline_ctx.load("hdf5", path=one)
    ds = inline_ctx.load("hdf5", path=one, ds_path="data")
    listed = [d["value"] for d in ds.diagnostics if d["name"] == "datasets"]
    assert [d["path"] for d in listed[0]] == ["data"]
    with mock.patch("libertem.io.dataset.hdf5.current_time", side_effect=[0, 10]):
        diags = ds.diagnostics
    assert [d["value"] for d in diags if d["name"] == "datasets"] == [[]]
    assert os.environ.get(ENV) is None
