"""export_dataset writes only ``.npy`` paths unless a format is named; executors pre-import
``libertem.preload`` (which loads hdf5plugin); ConvertTransposedDatasetUDF swaps navigation
and signal axes of any dimensionality (LiberTEM 0.16)."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from libertem.contrib.convert_transposed import (
    ConvertTransposedDatasetUDF,
    _convert_transposed_ds,
    convert_dm4_transposed,
)


@pytest.mark.parametrize("name, suffix", [("out.foo", ".foo"), ("plain", ""), ("out.NPY", ".NPY")])
def test_export_refuses_other_suffixes(ctx, tmp_path, name, suffix):
    ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError) as e:
        ctx.export_dataset(ds, path=str(tmp_path / name))
    assert (
        str(e.value) == f"Unrecognized file extension {suffix} only .npy is currently supported."
    )
    assert os.listdir(tmp_path) == []


def test_export_npy(ctx, tmp_path):
    data = np.random.default_rng(0).random((4, 4, 8, 8)).astype(np.float32)
    ds = ctx.load("memory", data=data)
    path = str(tmp_path / "out.npy")
    ctx.export_dataset(ds, path=path)
    np.testing.assert_array_equal(np.load(path), data)
    with pytest.raises(FileExistsError):
        ctx.export_dataset(ds, path=path)
    # a named format still writes other suffixes
    raw = str(tmp_path / "out.bin")
    ctx.export_dataset(ds, path=raw, format="raw")
    np.testing.assert_array_equal(np.fromfile(raw, dtype=np.float32).reshape(data.shape), data)


CHILD = """
import sys
import libertem.api as lt
print("before", "hdf5plugin" in sys.modules, "libertem.preload" in sys.modules)
ctx = lt.Context.make_with(sys.argv[1])
print("after", "hdf5plugin" in sys.modules, "libertem.preload" in sys.modules)
ctx.close()
"""


@pytest.mark.parametrize("kind", ["inline", "threads"])
def test_executors_preload(kind):
    assert importlib.util.find_spec("libertem.preload") is not None
    has_plugin = importlib.util.find_spec("hdf5plugin") is not None
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["before False False", f"after {has_plugin} True"]


def test_dask_workers_preload():
    from libertem.executor.dask import cluster_spec

    spec = cluster_spec(cpus=[0], cudas=[], has_cupy=False, preload=("my_module",))
    assert all(e["options"]["preload"] == ["libertem.preload", "my_module"] for e in spec.values())


@pytest.mark.parametrize(
    "sig_shape, nav_shape", [((8,), (6,)), ((7, 5), (3, 4)), ((7, 5), (6,)), ((8,), (3, 4))]
)
def test_convert_transposed_any_dims(ctx, tmp_path, sig_shape, nav_shape):
    stored = np.random.default_rng(1).random(sig_shape + nav_shape).astype(np.float32)
    # the trailing (scan) axes act as the signal of the loaded dataset
    ds = ctx.load("memory", data=stored, sig_dims=len(nav_shape), num_partitions=2)
    out = str(tmp_path / "out.npy")
    ctx.run_udf(dataset=ds, udf=ConvertTransposedDatasetUDF(out))
    n_sig = len(sig_shape)
    axes = tuple(range(n_sig, stored.ndim)) + tuple(range(n_sig))
    expected = stored.transpose(axes)
    result = np.load(out)
    assert result.dtype == np.float32 and result.shape == nav_shape + sig_shape
    np.testing.assert_array_equal(result, expected)
    again = str(tmp_path / "again.npy")
    assert _convert_transposed_ds(ctx, ds, again, progress=False) is None
    np.testing.assert_array_equal(np.load(again), expected)


def test_convert_dm4_needs_ctx_or_cpus(ctx, tmp_path):
    with pytest.raises(ValueError) as e:
        convert_dm4_transposed(
            str(tmp_path / "missing.dm4"), str(tmp_path / "o.npy"), ctx=ctx, num_cpus=4
        )
    assert str(e.value) == "Either supply a Context or number of cpus to use in conversion"
    assert os.listdir(tmp_path) == []
