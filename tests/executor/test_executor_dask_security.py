"""Who can reach the Dask executor's processes: a local cluster listens on loopback only,
``libertem-worker`` binds the interface it is told, a TLS cluster works with
``DaskJobExecutor.connect(..., client_kwargs={'security': ...})``, and the dashboard
link, where there is one, answers."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from distributed.security import Security

from dask_shared import listening_addresses, popen_logged, terminate, wait_for_processes
from libertem.api import Context
from libertem.executor.cli import default_host
from libertem.executor.dask import DaskJobExecutor
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

BIN = Path(sys.executable).parent
START_TIMEOUT = 90
DATA = np.arange(6 * 5 * 4 * 3, dtype=np.float32).reshape((6, 5, 4, 3))


def _check_runs(ctx) -> None:
    ds = ctx.load("memory", data=DATA, sig_dims=2, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(res[0]["intensity"].data, DATA.sum(axis=(0, 1)))
    np.testing.assert_allclose(res[1]["intensity"].data, DATA.sum(axis=(2, 3)))


def _describe(listeners) -> list[str]:
    import psutil

    out = []
    for _, port, pid in listeners:
        try:
            out.append(f"{port}: {' '.join(psutil.Process(pid).cmdline())[:200]}")
        except psutil.NoSuchProcess:
            out.append(f"{port}: gone")
    return out


def test_default_context_listens_on_loopback_only():
    # what listens already (other tests' clusters) is not this Context's
    before = {(port, pid) for _, port, pid in listening_addresses([os.getpid()])}
    with Context() as ctx:
        client = ctx.executor.client
        listeners = [
            entry
            for entry in listening_addresses([os.getpid()])
            if (entry[1], entry[2]) not in before
        ]
        # the scheduler, its HTTP server, the nannies, the workers and their HTTP servers
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        assert len(listeners) >= 2 + 3 * n_workers, listeners
        exposed = [entry for entry in listeners if entry[0] != "127.0.0.1"]
        assert not exposed, (exposed, _describe(exposed))
        for address in [client.scheduler.address, *client.scheduler_info()["workers"]]:
            assert address.startswith("tcp://127.0.0.1:"), address
        _check_runs(ctx)


def test_dashboard_link_answers_or_is_absent():
    with Context() as ctx:
        link = ctx.executor.client.dashboard_link
        if link:
            # served (bokeh installed): on loopback, and it answers
            assert link.startswith("http://127.0.0.1:"), link
            with urllib.request.urlopen(link, timeout=30) as response:
                assert response.status == 200
        else:  # no dashboard without bokeh: then there must be no link either
            assert importlib.util.find_spec("bokeh") is None, "bokeh is there, no dashboard"


def test_default_host_of_libertem_worker():
    for scheduler in ("tcp://127.0.0.1:8786", "tls://localhost:8786", "127.0.0.1:1", "localhost"):
        assert default_host(scheduler) == "127.0.0.1"
    # a scheduler elsewhere: the interface that reaches it, never all interfaces
    host = default_host("tcp://192.0.2.10:8786")
    assert host not in ("", "0.0.0.0", "::"), host


# --- TLS ------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_cluster_with_libertem_worker(tmp_path):
    cert, key = _self_signed(tmp_path)
    tls_args = ["--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key]
    scheduler_file = tmp_path / "s.json"
    procs: list[subprocess.Popen] = []
    executor = None
    try:
        procs.append(
            popen_logged(
                [
                    BIN / "dask", "scheduler", "--protocol", "tls", "--host", "127.0.0.1",
                    "--port", "0", "--scheduler-file", scheduler_file, "--no-dashboard",
                    *tls_args,
                ],
                tmp_path / "scheduler.log",
            )
        )  # fmt: skip

        def address():
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = wait_for_processes(address, START_TIMEOUT, "the scheduler", procs, tmp_path)
        assert addr.startswith("tls://127.0.0.1:"), addr
        worker_args = [BIN / "libertem-worker", addr, "--cpus", "2", "--name", "tlsw", *tls_args]
        procs.append(popen_logged(worker_args, tmp_path / "worker.log"))

        security = Security(
            tls_ca_file=str(cert),
            tls_client_cert=str(cert),
            tls_client_key=str(key),
            require_encryption=True,
        )
        executor = DaskJobExecutor.connect(
            addr, client_kwargs={"security": security, "timeout": 30}
        )

        def workers():
            info = executor.client.scheduler_info(n_workers=-1)["workers"]
            return info if len(info) >= 2 else None

        info = wait_for_processes(workers, START_TIMEOUT, "two workers", procs, tmp_path)
        assert all(a.startswith("tls://127.0.0.1:") for a in info), list(info)
        # libertem-worker bound loopback (the scheduler is on this host), nothing else
        worker_listeners = listening_addresses([procs[1].pid])
        assert worker_listeners
        assert all(ip == "127.0.0.1" for ip, _, _ in worker_listeners), worker_listeners
        with Context(executor=executor) as ctx:
            _check_runs(ctx)
        executor = None
        # without the certificates, there is no way in
        with pytest.raises(ConnectionError):
            DaskJobExecutor.connect(addr, client_kwargs={"timeout": 5})
    finally:
        if executor is not None:
            executor.close()
        terminate(procs)
