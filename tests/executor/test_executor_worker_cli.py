"""The ``libertem-worker`` console script, for real: a ``dask scheduler`` process, two
``libertem-worker`` processes, ``DaskJobExecutor.connect``, UDF runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from dask_shared import popen_logged as _popen
from dask_shared import subprocess_env as _env
from dask_shared import terminate as _terminate
from dask_shared import wait_for_processes as _wait_for
from libertem.api import Context
from libertem.executor.dask import DaskJobExecutor
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

BIN = Path(sys.executable).parent
DASK = BIN / "dask"
WORKER = BIN / "libertem-worker"
START_TIMEOUT = 90


def test_worker_help():
    out = subprocess.run(
        [str(WORKER), "--help"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert out.returncode == 0
    for option in ("--cpus", "--cudas", "--name", "--num-service"):
        assert option in out.stdout


def test_workers_join_scheduler_and_run_udfs(tmp_path, inline_ctx):
    assert DASK.exists() and WORKER.exists()
    scheduler_file = tmp_path / "s.json"
    procs: list[subprocess.Popen] = []
    executor = None
    try:
        procs.append(
            _popen(
                [
                    DASK,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--scheduler-file",
                    scheduler_file,
                    "--no-dashboard",
                ],
                tmp_path / "scheduler.log",
            )
        )

        def address():
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = _wait_for(address, START_TIMEOUT, "the scheduler file", procs, tmp_path)
        procs.append(_popen([WORKER, addr, "--cpus", "1", "--name", "w1"], tmp_path / "w1.log"))
        # the second one also starts a service worker, and explicitly no CUDA worker
        procs.append(
            _popen(
                [WORKER, addr, "--cpus", "1", "--name", "w2", "--cudas", "", "--num-service", "1"],
                tmp_path / "w2.log",
            )
        )
        executor = DaskJobExecutor.connect(addr, client_kwargs={"timeout": 30})

        def workers():
            info = executor.client.scheduler_info(n_workers=-1)["workers"]
            return info if len(info) >= 3 else None

        info = _wait_for(workers, START_TIMEOUT, "three workers", procs, tmp_path)
        assert len(info) == 3
        by_name = {str(w["name"]): w for w in info.values()}
        compute = sorted(n for n, w in by_name.items() if w["resources"].get("compute"))
        service = [n for n, w in by_name.items() if not w["resources"].get("compute")]
        assert len(compute) == 2 and len(service) == 1, by_name
        assert compute[0].startswith("w1") and compute[1].startswith("w2"), compute
        assert service[0].startswith("w2"), service
        for name in compute:
            assert by_name[name]["resources"] == {"CPU": 1, "compute": 1, "ndarray": 1}
        assert all(w["nthreads"] == 1 for w in info.values())
        available = executor.get_available_workers()
        assert len(available.compute_workers()) == 2
        assert not available.has_cuda()

        data = np.random.default_rng(21).integers(0, 256, size=(8, 9, 10, 11))
        data = data.astype(np.uint16)
        masks = np.random.default_rng(22).random((2, 10, 11)).astype(np.float32)

        def udfs():
            return [
                SumUDF(),
                SumSigUDF(),
                StdDevUDF(),
                ApplyMasksUDF(mask_factories=lambda: masks),
            ]

        ref_ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=6)
        expected = inline_ctx.run_udf(dataset=ref_ds, udf=udfs())
        with Context(executor=executor) as ctx:
            ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=6)
            results = ctx.run_udf(dataset=ds, udf=udfs())
            f = data.astype(np.float32)
            assert np.array_equal(results[0]["intensity"].data, f.sum(axis=(0, 1)))
            assert np.array_equal(results[1]["intensity"].data, f.sum(axis=(2, 3)))
            for got, exp in zip(results, expected):
                assert set(got) == set(exp)
                for name in exp:
                    np.testing.assert_allclose(got[name].data, exp[name].data, rtol=1e-6)
            # two separate worker processes
            pids = executor.run_each_worker(os.getpid)
            assert len(set(pids.values())) == 3
    finally:
        if executor is not None:
            executor.close()
        _terminate(procs)
    for proc in procs:
        assert proc.poll() is not None
