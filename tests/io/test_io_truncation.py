"""Input files that shrink during a run: a clean DataSetException, the process survives.

Reading a memory map beyond the end of a truncated file raises SIGBUS, which used to
kill the process. Each scenario runs in a subprocess, so that a regression cannot take
pytest down with it; the subprocess reports what happened as JSON.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the guard of memory maps is Linux-only"
)

_DRIVER = textwrap.dedent(
    r"""
    import json, os, sys
    import numpy as np
    from libertem.api import Context
    from libertem.common.exceptions import DataSetException
    from libertem.udf.base import UDF

    N, SIG = 64, (16, 16)

    class TruncatingUDF(UDF):
        # sums each frame; truncates the file when it reaches frame `at`
        def __init__(self, path, at, size):
            super().__init__(path=path, at=at, size=size)

        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav", dtype="float64")}

        def process_frame(self, frame):
            self.results.s[:] = frame.sum()
            if int(self.meta.coordinates[0][-1]) == self.params.at:
                os.truncate(self.params.path, self.params.size)

    def write(fmt, d, data):
        if fmt == "raw":
            path = os.path.join(d, "f.raw")
            data.tofile(path)
            return path, 0, dict(nav_shape=(N,), sig_shape=SIG, dtype=data.dtype)
        if fmt == "npy":
            path = os.path.join(d, "f.npy")
            np.save(path, data)
            return path, 128, {}
        if fmt == "mrc":
            import mrcfile
            path = os.path.join(d, "f.mrc")
            with mrcfile.new(path, overwrite=True) as m:
                m.set_data(data)
            return path, 1024, {}
        if fmt == "hdf5":
            import h5py
            path = os.path.join(d, "f.h5")
            with h5py.File(path, "w") as f:
                f.create_dataset("data", data=data)
                offset = f["data"].id.get_offset()
            return path, offset, dict(ds_path="data")
        if fmt == "hdf5-gzip":  # read through h5py
            import h5py

            path = os.path.join(d, "f.h5")
            with h5py.File(path, "w") as f:
                f.create_dataset("data", data=data, chunks=(4, *SIG), compression="gzip")
            return path, 0, dict(ds_path="data")
        if fmt == "mib":
            from libertem.utils.sample_data import write_mib_acquisition
            path = write_mib_acquisition(os.path.join(d, "f"), data, with_hdr=False)
            return path, 384, {}
        raise ValueError(fmt)

    def run(case):
        fmt, executor, backend, at, keep = case
        d = os.path.join(sys.argv[2], f"{fmt}-{executor}-{backend}-{at}-{keep}")
        os.makedirs(d)
        # float32 raw/npy tiles are views of the map (the UDF touches the truncated pages),
        # the others are converted while read
        dtype = np.float32 if fmt in ("raw", "npy") else np.uint16
        data = np.random.default_rng(0).integers(0, 1000, (N, *SIG)).astype(dtype)
        path, header, kwargs = write(fmt, d, data)
        expected = data.reshape(N, -1).sum(axis=1)
        frame_bytes = data[0].nbytes
        ctx = Context.make_with(executor, **({"cpus": 2} if executor == "threads" else {}))
        ds = ctx.load(fmt.split("-")[0], path, num_partitions=8, io_backend=backend, **kwargs)
        out = {"case": case}
        try:
            res = ctx.run_udf(ds, TruncatingUDF(path, at, header + keep * frame_bytes))
            # only right if all was read before the file shrank (threads)
            out["result"] = "finished"
            out["right"] = bool(np.allclose(res["s"].data, expected))
        except DataSetException as e:
            out["result"] = "DataSetException"
            out["names_file"] = os.path.basename(path) in str(e)
        except Exception as e:
            out["result"] = f"{type(e).__name__}: {e}"
        # the file written again: a run gives the right result
        os.makedirs(d + "-again")
        path, _, _ = write(fmt, d + "-again", data)
        ds = ctx.load(fmt.split("-")[0], path, num_partitions=4, io_backend=backend, **kwargs)
        res = ctx.run_udf(ds, TruncatingUDF(path, -1, 0))
        out["again_ok"] = bool(np.allclose(res["s"].data, expected))
        ctx.close()
        return out

    for case in json.loads(sys.argv[1]):
        print(json.dumps(run(case)), flush=True)
    """
)


def _run_driver(cases, tmp_path, timeout=240):
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(cases), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"driver died with {proc.returncode} "
        f"({signal.Signals(-proc.returncode).name if proc.returncode < 0 else 'exit'}):\n"
        f"{proc.stdout}\n{proc.stderr[-3000:]}"
    )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# (frame at which the UDF truncates, frames the file keeps): in the partition being
# read (frames 0-7 of the first partition), and at the end of the first partition,
# cutting the ones after it
_CUTS = [(3, 1), (7, 12)]


def _check(outputs, n_cases):
    assert len(outputs) == n_cases
    for out in outputs:
        assert out["again_ok"], out
        if out["result"] == "finished":
            # threads: other partitions may have read everything before the file shrank
            assert out["case"][1] == "threads" and out["right"], out
            continue
        assert out["result"] == "DataSetException", out
        assert out["names_file"], out


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_truncated_during_run_raw_npy(tmp_path, executor):
    cases = [
        (fmt, executor, backend, at, keep)
        for fmt in ("raw", "npy")
        for backend in ("mmap", "buffered")
        for at, keep in _CUTS
    ]
    _check(_run_driver(cases, tmp_path), len(cases))


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_truncated_during_run_other_formats(tmp_path, executor):
    formats = ("mrc", "hdf5", "hdf5-gzip", "mib")
    cases = [(fmt, executor, None, at, keep) for fmt in formats for at, keep in _CUTS]
    _check(_run_driver(cases, tmp_path), len(cases))


_GUARD = textwrap.dedent(
    r"""
    import os, sys
    import numpy as np
    from libertem.common.exceptions import DataSetException
    from libertem.io.dataset.base import mapguard
    from libertem.io.dataset.base.files import open_file_map

    path = os.path.join(sys.argv[1], "f.bin")
    data = np.arange(100_000, dtype=np.float64)
    data.tofile(path)
    mm = open_file_map(path)
    view = mm.view(np.float64)
    assert view[-1] == data[-1]
    before = mapguard.fault_count()
    tiles = mapguard.guarded(iter([1, 2]))
    assert next(tiles) == 1
    os.truncate(path, 4096)
    total = view.sum()  # pages beyond the new end read as zeros instead of SIGBUS
    assert total == data[:512].sum(), total
    assert mapguard.fault_count() == before + 1
    assert mapguard.faulted_paths() == [path]
    try:
        next(tiles)
    except DataSetException as e:
        assert path in str(e) and "truncated" in str(e), e
    else:
        raise AssertionError("no DataSetException")
    print("guarded ok", flush=True)
    if sys.argv[2] == "foreign":
        # a map that is not ours: SIGBUS goes to the previous handler (the default: death)
        other = os.path.join(sys.argv[1], "g.bin")
        data.tofile(other)
        plain = np.memmap(other, dtype=np.float64, mode="r")
        os.truncate(other, 4096)
        print(plain.sum())
    """
)


def test_guarded_map_reads_zeros_and_reports(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _GUARD, str(tmp_path), "ours"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "guarded ok" in proc.stdout


def test_foreign_sigbus_still_fatal(tmp_path):
    """The guard answers only faults in its own maps; others keep their default effect."""
    proc = subprocess.run(
        [sys.executable, "-c", _GUARD, str(tmp_path), "foreign"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "guarded ok" in proc.stdout
    assert proc.returncode == -signal.SIGBUS, (proc.returncode, proc.stderr[-2000:])


def test_map_of_short_file_is_dataset_exception(tmp_path):
    from libertem.common.exceptions import DataSetException
    from libertem.io.dataset.base.files import open_file_map, open_memmap

    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(DataSetException, match="truncated"):
        open_memmap(path, "u2", 0, (51,))
    assert open_memmap(path, "u2", 0, (50,)).shape == (50,)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(DataSetException, match="empty.bin"):
        open_file_map(empty)
