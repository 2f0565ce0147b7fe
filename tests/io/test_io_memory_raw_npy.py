"""Loading datasets (memory, raw, npy) and reading them back exactly, read-only."""

import builtins
import hashlib
import io
import os
import pathlib

import numpy as np
import pytest

from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import (
    DTYPES,
    SHAPES,
    assert_close,
    make_data,
    make_roi,
    run_echo,
    shape_id,
)

# --- memory ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_memory_roundtrip(ctx, shape, dtype):
    full_shape, sig_dims = shape
    data = make_data(full_shape, dtype, seed=70)
    ds = ctx.load("memory", data=data, sig_dims=sig_dims, num_partitions=3)
    assert tuple(ds.shape) == full_shape
    assert ds.shape.sig_dims == sig_dims
    assert tuple(ds.shape.sig) == full_shape[len(full_shape) - sig_dims :]
    assert ds.dtype == np.dtype(dtype)
    echo, raw = run_echo(ctx, ds)
    assert echo.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(echo, data)
    np.testing.assert_array_equal(raw, data.reshape((-1, *ds.shape.sig)))


@pytest.mark.parametrize("num_partitions", [1, 2, 3, 7, 24])
def test_memory_num_partitions(ctx, num_partitions):
    data = make_data((4, 6, 5, 4), "float32", seed=71)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=num_partitions)
    parts = list(ds.get_partitions())
    assert len(parts) == num_partitions
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)


@pytest.mark.parametrize("tileshape", [(1, 5, 4), (2, 5, 4), (3, 1, 4), (4, 2, 2), (24, 5, 4)])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_memory_tileshape(ctx, tileshape, use_roi):
    data = make_data((4, 6, 5, 4), "uint16", seed=72)
    roi = make_roi((4, 6), seed=73) if use_roi else None
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2, tileshape=tileshape)
    echo, raw = run_echo(ctx, ds, roi=roi)
    sel = np.ones((4, 6), bool) if roi is None else roi
    np.testing.assert_array_equal(raw, data[sel])
    np.testing.assert_array_equal(echo[sel], data[sel])


def test_memory_datashape(ctx):
    ds = ctx.load("memory", datashape=(4, 6, 8, 10), num_partitions=2)
    assert tuple(ds.shape) == (4, 6, 8, 10)
    assert tuple(ds.shape.nav) == (4, 6)
    data = np.asarray(ds.data)
    assert data.shape == (4, 6, 8, 10)
    assert np.ptp(data) > 0  # random, not all equal
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert_close(res["intensity"].data, data.astype(np.float64).sum(axis=(0, 1)))


def test_memory_data_unchanged(ctx):
    data = make_data((4, 6, 5, 4), "float32", seed=74)
    copy = data.copy()
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_array_equal(data, copy)


# --- raw ---------------------------------------------------------------------------------------


def _write_raw(path, arr):
    arr.tofile(path)
    return path


RAW_SHAPES = [
    ((12,), (6, 5)),
    ((3, 4), (6, 5)),
    ((2, 2, 3), (6, 5)),
    ((3, 4), (30,)),
]


@pytest.mark.parametrize("nav_sig", RAW_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_raw_roundtrip(ctx, tmp_path, nav_sig, dtype):
    nav_shape, sig_shape = nav_sig
    data = make_data(nav_shape + sig_shape, dtype, seed=75)
    path = _write_raw(tmp_path / "data.raw", data)
    ds = ctx.load("raw", path=str(path), nav_shape=nav_shape, sig_shape=sig_shape, dtype=dtype)
    assert tuple(ds.shape) == nav_shape + sig_shape
    assert tuple(ds.shape.nav) == nav_shape
    assert tuple(ds.shape.sig) == sig_shape
    assert ds.dtype == np.dtype(dtype)
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)


def test_raw_pathlib_and_roi(ctx, tmp_path):
    data = make_data((4, 6, 16, 16), "uint16", seed=76)
    path = _write_raw(tmp_path / "data.raw", data)
    ds = ctx.load(
        "raw", path=pathlib.Path(path), nav_shape=(4, 6), sig_shape=(16, 16), dtype="uint16"
    )
    roi = make_roi((4, 6), seed=77)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
    assert_close(res[0]["intensity"].data, data[roi].sum(axis=0).astype(np.float64))
    assert_close(res[1]["intensity"].raw_data, data[roi].sum(axis=(1, 2)).astype(np.float64))


def _expected_sync(frames, k):
    """Dataset frame i is file frame i + k; frames outside the file are zeros."""
    n = frames.shape[0]
    out = np.zeros_like(frames)
    for i in range(n):
        if 0 <= i + k < n:
            out[i] = frames[i + k]
    return out


@pytest.mark.parametrize("sync_offset", [-7, -2, -1, 0, 1, 3, 11])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_raw_sync_offset(ctx, tmp_path, sync_offset, use_roi):
    nav_shape, sig_shape = (3, 4), (6, 5)
    data = make_data(nav_shape + sig_shape, "uint16", seed=78) + 1  # no zero frames
    path = _write_raw(tmp_path / "data.raw", data)
    ds = ctx.load(
        "raw",
        path=str(path),
        nav_shape=nav_shape,
        sig_shape=sig_shape,
        dtype="uint16",
        sync_offset=sync_offset,
    )
    assert tuple(ds.shape) == nav_shape + sig_shape
    expected = _expected_sync(data.reshape((12, *sig_shape)), sync_offset).reshape(data.shape)
    roi = make_roi(nav_shape, seed=79) if use_roi else None
    sel = np.ones(nav_shape, bool) if roi is None else roi
    echo, raw = run_echo(ctx, ds, roi=roi)
    np.testing.assert_array_equal(raw, expected[sel])
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    assert_close(res["intensity"].raw_data, expected[sel].sum(axis=(1, 2)).astype(np.float64))


def test_raw_sync_offset_more_frames_in_file(ctx, tmp_path):
    """The file holds more frames than the dataset: a positive offset reads later frames."""
    data = make_data((16, 6, 5), "float32", seed=80)
    path = _write_raw(tmp_path / "data.raw", data)
    ds = ctx.load(
        "raw", path=str(path), nav_shape=(3, 4), sig_shape=(6, 5), dtype="float32", sync_offset=3
    )
    _, raw = run_echo(ctx, ds)
    np.testing.assert_array_equal(raw, data[3:15])


# --- npy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(24, 6, 5), (4, 6, 6, 5), (2, 3, 4, 6, 5)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_npy_roundtrip(ctx, tmp_path, shape, dtype):
    data = make_data(shape, dtype, seed=81)
    path = tmp_path / "data.npy"
    np.save(path, data)
    ds = ctx.load("npy", path=str(path))
    assert tuple(ds.shape) == shape
    assert tuple(ds.shape.sig) == shape[-2:]
    assert ds.dtype == np.dtype(dtype)
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_npy_udfs(ctx, tmp_path, use_roi):
    data = make_data((8, 16, 32, 32), "float32", seed=82)
    path = tmp_path / "data.npy"
    np.save(path, data)
    ds = ctx.load("npy", path=path)
    roi = make_roi((8, 16), seed=83) if use_roi else None
    sel = np.ones((8, 16), bool) if roi is None else roi
    res_sum, res_sumsig = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
    assert_close(res_sum["intensity"].data, data[sel].sum(axis=0))
    assert_close(res_sumsig["intensity"].raw_data, data[sel].sum(axis=(1, 2)))


# --- read-only ---------------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT


@pytest.fixture
def open_spy(monkeypatch):
    """Records (path, mode or flags) of every file opened through Python in this test."""
    calls = []
    real_open = builtins.open
    real_os_open = os.open

    def spy_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)):
            calls.append((os.path.realpath(os.fsdecode(file)), mode))
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        calls.append((os.path.realpath(os.fsdecode(path)), flags))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    return calls


def _assert_read_only(calls, path):
    path = os.path.realpath(path)
    for p, mode in calls:
        if p != path:
            continue
        if isinstance(mode, str):
            assert not set(mode) & set("wax+"), f"{path} opened with mode {mode!r}"
        else:
            assert mode & _WRITE_FLAGS == 0, f"{path} opened with flags {mode:#o}"


def _digest(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("filetype", ["raw", "npy"])
def test_files_opened_read_only(inline_ctx, threads_ctx, tmp_path, open_spy, filetype):
    data = make_data((4, 6, 8, 10), "uint16", seed=84)
    if filetype == "raw":
        path = _write_raw(tmp_path / "data.raw", data)
        kwargs = dict(path=str(path), nav_shape=(4, 6), sig_shape=(8, 10), dtype="uint16")
    else:
        path = tmp_path / "data.npy"
        np.save(path, data)
        kwargs = dict(path=str(path))
    open_spy.clear()  # only the engine's opens from here on
    os.chmod(path, 0o444)
    before = _digest(path)
    mtime = os.stat(path).st_mtime_ns
    try:
        for ctx in (inline_ctx, threads_ctx):
            ds = ctx.load(filetype, **kwargs)
            roi = make_roi((4, 6), seed=85)
            res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
            assert_close(res[0]["intensity"].data, data[roi].sum(axis=0).astype(np.float64))
            echo, _ = run_echo(ctx, ds)
            np.testing.assert_array_equal(echo, data)
        # the spy sees the engine's opens, and none of them may write
        assert any(p == os.path.realpath(path) for p, _ in open_spy)
        _assert_read_only(open_spy, path)
        assert _digest(path) == before
        assert os.stat(path).st_mtime_ns == mtime
    finally:
        os.chmod(path, 0o644)


# --- more dtypes, layouts and filetypes ------------------------------------------------------

EXTRA_DTYPES = ["float16", "int8", "int16", "uint64", "complex128", "bool", ">u2", ">f4", ">i4"]


@pytest.mark.parametrize("dtype", EXTRA_DTYPES)
@pytest.mark.parametrize("filetype", ["memory", "raw", "npy"])
def test_extra_dtypes_roundtrip(inline_ctx, tmp_path, dtype, filetype):
    ctx = inline_ctx
    data = make_data((4, 6, 5, 4), dtype, seed=86)
    if filetype == "memory":
        ds = ctx.load("memory", data=data, num_partitions=3)
    elif filetype == "raw":
        data.tofile(tmp_path / "x.raw")
        ds = ctx.load(
            "raw", path=str(tmp_path / "x.raw"), nav_shape=(4, 6), sig_shape=(5, 4), dtype=dtype
        )
    else:
        np.save(tmp_path / "x.npy", data)
        ds = ctx.load("npy", path=str(tmp_path / "x.npy"))
    assert ds.dtype.kind == np.dtype(dtype).kind
    assert ds.dtype.itemsize == np.dtype(dtype).itemsize
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    ref = data.astype(np.result_type(np.float32, data.dtype.newbyteorder("=")))
    assert_close(res[0]["intensity"].data, ref.sum(axis=(0, 1)), ref.dtype)
    assert_close(res[1]["intensity"].data, ref.sum(axis=(2, 3)), ref.dtype)


@pytest.mark.parametrize(
    "view",
    [
        lambda d: d[:, ::2, :, ::2],
        lambda d: d.transpose(1, 0, 2, 3),
        lambda d: d[..., ::-1],
        lambda d: d[1:3],
    ],
    ids=["strided", "transposed", "reversed", "sliced"],
)
def test_memory_non_contiguous_and_read_only(ctx, view):
    data = view(make_data((4, 12, 5, 8), "float32", seed=87))
    assert not data.flags.c_contiguous or data.base is not None
    ds = ctx.load("memory", data=data, num_partitions=3)
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)
    ro = np.array(data)
    ro.flags.writeable = False
    ds = ctx.load("memory", data=ro, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert_close(res["intensity"].data, data.sum(axis=(0, 1)))


def test_auto_npy(ctx, tmp_path):
    data = make_data((4, 6, 5, 4), "uint16", seed=88)
    np.save(tmp_path / "x.npy", data)
    ds = ctx.load("auto", path=str(tmp_path / "x.npy"))
    assert tuple(ds.shape) == data.shape
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)


def test_raw_nav_shape_smaller_than_file(ctx, tmp_path):
    data = make_data((48, 5, 8), "float32", seed=89)
    data.tofile(tmp_path / "x.raw")
    ds = ctx.load(
        "raw", path=str(tmp_path / "x.raw"), nav_shape=(4, 6), sig_shape=(5, 8), dtype="float32"
    )
    _, raw = run_echo(ctx, ds)
    np.testing.assert_array_equal(raw, data[:24])


def test_fortran_npy_read_or_clear_error(ctx, tmp_path):
    from libertem.exceptions import DataSetException

    data = np.asfortranarray(make_data((4, 6, 5, 4), "float32", seed=90))
    np.save(tmp_path / "f.npy", data)
    try:
        ds = ctx.load("npy", path=str(tmp_path / "f.npy"))
    except DataSetException as e:
        assert "f.npy" in str(e)
        return
    echo, _ = run_echo(ctx, ds)
    np.testing.assert_array_equal(echo, data)
