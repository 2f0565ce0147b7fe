"""The ``libertem-server`` command, run as ``python -m libertem.web`` in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import psutil
import pytest
from web_testing import http


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_root")
    (root / "hello.npy").write_bytes(b"x")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "libertem.web",
            "--no-browser",
            "--executor",
            "threads",
            "--cpus",
            "1",
            "--local-directory",
            str(root),
            "--token",
            "s3cret",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    url = None
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"(http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail("libertem-server printed no URL:\n" + "".join(lines))
    yield proc, url, lines
    proc.terminate()
    proc.wait(timeout=30)
    proc.stdout.close()


def test_prints_a_url_with_the_token_on_loopback(cli_server):
    proc, url, lines = cli_server
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=s3cret", url)
    assert "thread pool" in "".join(lines)
    listening = [
        c.laddr
        for c in psutil.Process(proc.pid).net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and {addr.ip for addr in listening} == {"127.0.0.1"}


def test_token_is_required(cli_server):
    _, url, _ = cli_server
    base = url.split("/?")[0]
    assert http(base, "/")[0] == 401
    assert http(base, "/?token=wrong")[0] == 403
    status, body, _ = http(base, "/?token=s3cret")
    assert status == 200 and b"<canvas" not in body and b"app.js" in body
    status, body, _ = http(base, "/api/files?path=", "s3cret")
    assert status == 200 and b"hello.npy" in body


def test_bad_options_are_refused(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "libertem.web",
            "--no-browser",
            "--local-directory",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "is not a folder" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "libertem.web", "--no-browser", "--cpus", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--cpus must be at least 1" in done.stderr


def test_executor_choices_and_their_code():
    from libertem.web.cli import make_context

    ctx, code = make_context("threads", 1)
    try:
        assert code.expr == 'Context.make_with("threads", cpus=1)'
        assert code.description == "thread pool"
        assert len(ctx.executor.get_available_workers()) == 1
    finally:
        ctx.close()
    with pytest.raises(SystemExit, match="--executor must be"):
        make_context("quantum", None)
