"""``io_backend='buffered'`` for DM, SER and SEQ files: the same frames as memory-mapped."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from libertem.api import Context
from libertem.common.exceptions import DataSetException
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.raw import PickUDF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import writers_dm_ser_seq  # noqa: E402


def _frames(rng, dtype, n=6, shape=(8, 10)):
    return rng.integers(0, 1000, size=(n, *shape)).astype(dtype)


def _sample(kind: str, tmp_path: Path, rng):
    if kind == "dm-stack":
        data = _frames(rng, np.uint16)
        path = tmp_path / "stack.dm4"
        writers_dm_ser_seq.write_dm(path, data, version=4)
        return dict(path=str(path)), data
    if kind == "dm-files":
        data = _frames(rng, np.float32, n=4)
        files = []
        for i, frame in enumerate(data):
            files.append(str(tmp_path / f"frame{i}.dm3"))
            writers_dm_ser_seq.write_dm(files[-1], frame, version=3)
        return dict(files=files), data
    if kind == "ser":
        data = _frames(rng, np.uint16)
        path = tmp_path / "scan.ser"
        writers_dm_ser_seq.write_ser(path, data, nav_dims=(6,), gaps=[0, 8, 0, 24, 0, 0])
        # TIA stores images bottom row first; readers hand them out top row first
        return dict(path=str(path)), data[:, ::-1]
    data = _frames(rng, np.uint16)
    path = tmp_path / "movie.seq"
    writers_dm_ser_seq.write_seq(path, data)
    return dict(path=str(path)), data


@pytest.mark.parametrize("kind", ["dm-stack", "dm-files", "ser", "seq"])
@pytest.mark.parametrize("use_roi", [False, True])
def test_buffered_reads_equal_mmap_and_data(kind, use_roi, tmp_path):
    rng = np.random.default_rng(11)
    kwargs, data = _sample(kind, tmp_path, rng)
    filetype = kind.split("-")[0]
    ctx = Context(executor=InlineJobExecutor())
    roi = np.zeros(data.shape[0], dtype=bool)
    roi[[0, 2, 3]] = True
    picked = {}
    for backend in ("mmap", "buffered"):
        ds = ctx.load(filetype, io_backend=backend, **kwargs)
        res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi if use_roi else np.ones_like(roi))
        picked[backend] = res["intensity"].raw_data
    expected = data[roi] if use_roi else data
    assert np.array_equal(picked["mmap"], expected)
    assert np.array_equal(picked["buffered"], expected)


@pytest.mark.parametrize("kind", ["dm-stack", "ser", "seq"])
def test_unknown_io_backend_is_rejected(kind, tmp_path):
    kwargs, _ = _sample(kind, tmp_path, np.random.default_rng(3))
    ctx = Context(executor=InlineJobExecutor())
    with pytest.raises(DataSetException, match="io_backend"):
        ctx.load(kind.split("-")[0], io_backend="carrier-pigeon", **kwargs)
