"""libertem-server's HTTP and WebSocket API, with one in-process server for the module."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from web_testing import NAV, WsClient, http, ring_image, run_state, started, write_sample

from libertem.web.datasets import DatasetEntry
from libertem.web.server import WebServer
from libertem.web.state import ContextCode

RING = {"shape": "ring", "cx": 32.0, "cy": 30.5, "ri": 6.0, "ro": 14.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from libertem.api import Context

    base = tmp_path_factory.mktemp("web_server")
    root = base / "root"
    path, data = write_sample(root / "scans")
    (base / "outside.npy").write_bytes(b"x")
    os.symlink(base / "outside.npy", root / "escape.npy")
    ctx = Context.make_with("threads", cpus=2)
    code = ContextCode('Context.make_with("threads", cpus=2)')
    srv = WebServer(ctx, root=root, context_code=code).start_in_thread()
    srv.data = data
    srv.base = f"http://127.0.0.1:{srv.port}"
    yield srv
    srv.stop()
    ctx.close()


@pytest.fixture(scope="module")
def dataset(server):
    status, body, _ = http(
        server.base,
        "/api/datasets",
        server.token,
        {"path": "scans/sample.hdr", "filetype": "auto"},
    )
    assert status == 201, body
    import json

    return json.loads(body)


def ws(server, token=True) -> WsClient:
    query = f"?token={server.token}" if token else ""
    return WsClient(f"ws://127.0.0.1:{server.port}/api/ws{query}")


def test_listens_on_loopback_only_by_default(server):
    assert server.host == "127.0.0.1"
    assert {addr[0] for addr in server.listening_addresses()} == {"127.0.0.1"}
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")


ROUTES = [
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/api/config"),
    ("GET", "/api/files?path="),
    ("POST", "/api/detect"),
    ("GET", "/api/datasets"),
    ("POST", "/api/datasets"),
    ("DELETE", "/api/datasets/d1"),
    ("GET", "/api/status"),
    ("GET", "/api/runs/r1/download/intensity.npy"),
    ("GET", "/api/runs/r1/script.py"),
    ("GET", "/api/runs/r1/notebook.ipynb"),
    ("GET", "/no/such/page"),
]


@pytest.mark.parametrize("method, route", ROUTES)
def test_every_route_needs_the_token(server, method, route):
    body = {} if method == "POST" else None
    status, _, _ = http(server.base, route, None, body, method)
    assert status == 401
    status, _, _ = http(server.base, route, "wrong-token", body, method)
    assert status == 403
    sep = "&" if "?" in route else "?"
    status, _, _ = http(server.base, f"{route}{sep}token=nope", None, body, method)
    assert status == 403


def test_websocket_needs_the_token(server):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as missing:
        ws(server, token=False)
    assert missing.value.code == 401
    with pytest.raises(HTTPClientError) as wrong:
        WsClient(f"ws://127.0.0.1:{server.port}/api/ws?token=nope")
    assert wrong.value.code == 403


def test_page_with_token_sets_a_cookie_for_get_only(server):
    status, body, headers = http(server.base, f"/?token={server.token}")
    assert status == 200 and b"static/app.js" in body
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, _ = http(server.base, "/api/config", headers={"Cookie": cookie})
    assert status == 200
    status, _, _ = http(server.base, "/api/datasets", body={}, headers={"Cookie": cookie})
    assert status == 401  # changes need the token itself, not the cookie


@pytest.mark.parametrize(
    "path", ["..", "../outside.npy", "scans/../../outside.npy", "/etc", "escape.npy"]
)
def test_paths_outside_the_root_are_refused(server, path):
    from urllib.parse import quote

    status, body, _ = http(server.base, f"/api/files?path={quote(path)}", server.token)
    assert status == 403 and b"error" in body
    status, _, _ = http(server.base, "/api/detect", server.token, {"path": path})
    assert status == 403
    status, _, _ = http(server.base, "/api/datasets", server.token, {"path": path})
    assert status == 403


def test_file_browser_lists_the_root(server):
    import json

    status, body, _ = http(server.base, "/api/files?path=", server.token)
    listing = json.loads(body)
    assert status == 200 and [e["name"] for e in listing["entries"]] == ["scans"]
    status, body, _ = http(server.base, "/api/files?path=scans", server.token)
    assert sorted(e["name"] for e in json.loads(body)["entries"]) == ["sample.hdr", "sample.mib"]
    status, body, _ = http(server.base, "/api/detect", server.token, {"path": "scans/sample.hdr"})
    assert json.loads(body)["filetype"] == "mib"


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"nav_shape": "sixteen"}, "nav_shape", "is not of type 'array'"),
        ({"nav_shape": [0, 16]}, "nav_shape", "less than the minimum"),
        ({"sync_offset": 1.5}, "sync_offset", "is not of type 'integer'"),
        # a larger scan than stored is fine (as in LiberTEM); an offset past the data is not
        ({"sync_offset": 10**6}, "sync_offset", "sync_offset should be in"),
    ],
)
def test_bad_dataset_parameters_get_the_error_and_leave_nothing(server, params, field, message):
    import json

    before = json.loads(http(server.base, "/api/status", server.token)[1])
    body = {"path": "scans/sample.hdr", "filetype": "mib", "params": params}
    status, answer, _ = http(server.base, "/api/datasets", server.token, body)
    error = json.loads(answer)
    assert status == 400
    assert error["field"] == field
    if message:
        assert message in error["error"]
    after = json.loads(http(server.base, "/api/status", server.token)[1])
    assert after["datasets"] == before["datasets"]
    assert after["active"] == []


def test_unknown_format_and_missing_file(server):
    import json

    status, answer, _ = http(
        server.base, "/api/datasets", server.token, {"path": "scans/sample.hdr", "filetype": "xyz"}
    )
    assert status == 400 and json.loads(answer)["field"] == "filetype"
    status, answer, _ = http(
        server.base, "/api/datasets", server.token, {"path": "scans/none.hdr", "filetype": "auto"}
    )
    assert status == 400 and "none.hdr" in json.loads(answer)["error"]


def _final_images(client: WsClient, channel: str):
    events = client.until(started(channel))
    run_id = events[-1]["run"]["id"]
    seen = client.until(run_state(run_id, "done"))
    images = [m for m in seen if isinstance(m, tuple) and m[0]["run"] == run_id]
    assert images[-1][0]["final"] is True
    return run_id, images


def test_virtual_detector_run_and_downloads(server, dataset):
    import json

    client = ws(server)
    try:
        client.send(
            {
                "type": "run",
                "dataset": dataset["id"],
                "channel": "result",
                "analysis": {"kind": "virtual", "detector": RING},
            }
        )
        run_id, images = _final_images(client, "result")
    finally:
        client.close()
    expected = ring_image(server.data, RING["cx"], RING["cy"], RING["ri"], RING["ro"])
    header, final = images[-1]
    assert header["progress"] == [NAV[0] * NAV[1]] * 2
    assert np.allclose(final["intensity"], expected, rtol=1e-6)
    status, body, headers = http(
        server.base, f"/api/runs/{run_id}/download/intensity.npy", server.token
    )
    assert status == 200 and "sample_virtual_ring_intensity.npy" in headers["Content-Disposition"]
    assert np.allclose(np.load(io.BytesIO(body)), expected, rtol=1e-6)
    for suffix in ("intensity.tif?bits=16", "intensity.tif", "intensity.png?cmap=viridis&log=1"):
        assert http(server.base, f"/api/runs/{run_id}/download/{suffix}", server.token)[0] == 200
    status, body, _ = http(
        server.base, f"/api/runs/{run_id}/download/intensity.png?cmap=x", server.token
    )
    assert status == 400 and b"colour map" in body
    assert http(server.base, f"/api/runs/{run_id}/download/field.npy", server.token)[0] == 404
    nb = json.loads(http(server.base, f"/api/runs/{run_id}/notebook.ipynb", server.token)[1])
    assert nb["nbformat"] == 4


def test_generated_script_runs_and_reproduces(server, dataset, tmp_path):
    client = ws(server)
    roi = {"shape": "rect", "x": 2, "y": 3, "width": 6, "height": 5}
    try:
        client.send(
            {
                "type": "run",
                "dataset": dataset["id"],
                "channel": "frame",
                "analysis": {"kind": "framesum", "mean": True, "roi": roi},
            }
        )
        run_id, images = _final_images(client, "frame")
    finally:
        client.close()
    expected = server.data[3:8, 2:8].astype(np.float64).mean(axis=(0, 1))
    assert np.allclose(images[-1][1]["intensity"], expected, rtol=1e-6)
    status, script, _ = http(server.base, f"/api/runs/{run_id}/script.py", server.token)
    assert status == 200
    (tmp_path / "repro.py").write_bytes(script)
    done = subprocess.run(
        [sys.executable, "repro.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = np.load(tmp_path / "sample_average_roi_intensity.npy")
    download = np.load(
        io.BytesIO(
            http(server.base, f"/api/runs/{run_id}/download/intensity.npy", server.token)[1]
        )
    )
    assert np.array_equal(result, download)
    assert np.allclose(result, expected, rtol=1e-6)


def test_com_run_matches_the_python_api(server, dataset, inline_ctx):
    from libertem.udf.com import CoMUDF

    params = {
        "cx": 32.0,
        "cy": 32.0,
        "r": 20.0,
        "ri": 0.0,
        "flip_y": True,
        "scan_rotation": 15.0,
        "regression": 0,
    }
    client = ws(server)
    try:
        client.send(
            {
                "type": "run",
                "dataset": dataset["id"],
                "channel": "result",
                "analysis": {"kind": "com", "params": params},
            }
        )
        run_id, images = _final_images(client, "result")
    finally:
        client.close()
    ds = inline_ctx.load("auto", path=str(server.state.root / "scans" / "sample.hdr"))
    ref = inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(**params))
    final = images[-1][1]
    assert set(final) == {"field_y", "field_x", "magnitude", "divergence", "curl"}
    field = ref["field"].data
    assert np.allclose(final["field_y"], field[..., 0], rtol=1e-5, atol=1e-6)
    assert np.allclose(final["curl"], ref["curl"].data, rtol=1e-5, atol=1e-6, equal_nan=True)
    body = http(server.base, f"/api/runs/{run_id}/download/field.npy", server.token)[1]
    assert np.allclose(np.load(io.BytesIO(body)), field, rtol=1e-6)


def test_many_tabs_watch_one_run(server, dataset):
    first, second = ws(server), ws(server)
    try:
        first.send(
            {
                "type": "run",
                "dataset": dataset["id"],
                "channel": "nav",
                "analysis": {"kind": "navsum"},
            }
        )
        run_id = first.until(started("nav"))[-1]["run"]["id"]
        second.send({"type": "watch", "run": run_id, "channel": "nav"})
        seen_first = first.until(run_state(run_id, "done"))
        seen_second = second.until(run_state(run_id, "done"))
    finally:
        first.close()
        second.close()
    expected = server.data.astype(np.float64).sum(axis=(2, 3))
    for seen in (seen_first, seen_second):
        header, images = [m for m in seen if isinstance(m, tuple)][-1]
        assert header["run"] == run_id and header["final"]
        assert np.allclose(images["intensity"], expected, rtol=1e-6)


def test_bad_requests_on_the_websocket(server, dataset):
    client = ws(server)
    try:
        client.send({"type": "run", "dataset": "d999", "channel": "x", "analysis": {}})
        assert (
            "no open dataset" in client.until(lambda m: m.get("event") == "error")[-1]["message"]
        )
        client.send(
            {
                "type": "run",
                "dataset": dataset["id"],
                "channel": "result",
                "analysis": {"kind": "virtual", "detector": {"shape": "star"}},
            }
        )
        error = client.until(lambda m: m.get("event") == "error")[-1]
        assert error["channel"] == "result" and "unknown detector shape" in error["message"]
        client.send({"type": "dance"})
        assert (
            "unknown message type"
            in client.until(lambda m: m.get("event") == "error")[-1]["message"]
        )
    finally:
        client.close()


# cancellation ---------------------------------------------------------------------------
PROCESSED: list[int] = []


def _slow_entry(server):
    """A dataset of 24 partitions whose frame sums take a while (a stand-in for big data)."""
    from libertem.udf import UDF

    class SlowSumSigUDF(UDF):
        def get_result_buffers(self):
            return {"intensity": self.buffer(kind="nav", dtype=np.float32)}

        def process_partition(self, partition):
            PROCESSED.append(1)
            time.sleep(0.1)
            self.results.intensity[:] = partition.sum(axis=(-2, -1))

    data = np.ones((24, 4, 8, 8), dtype=np.float32)
    ds = server.state.ctx.load("memory", data=data, num_partitions=24)
    entry = DatasetEntry(id="slow", ds=ds, filetype="memory", path="slow", load_kwargs={})
    server.state.datasets.entries["slow"] = entry
    return SlowSumSigUDF


def _wait_for_state(server, run_id, states, timeout=60):
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(http(server.base, "/api/status", server.token)[1])
        run = next(r for r in status["runs"] if r["id"] == run_id)
        if run["state"] in states:
            return run, status
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach {states}")


def _start_slow(server, client, monkeypatch, channel="result"):
    from libertem.web import websocket

    udf_cls = _slow_entry(server)
    real = websocket.make_plan

    def slow_plan(spec, nav_shape, sig_shape):
        plan = real({"kind": "navsum"}, nav_shape, sig_shape)
        plan.udf = udf_cls()
        return plan

    monkeypatch.setattr(websocket, "make_plan", slow_plan)
    PROCESSED.clear()
    client.send({"type": "run", "dataset": "slow", "channel": channel, "analysis": {}})
    run_id = client.until(started(channel))[-1]["run"]["id"]
    client.until(lambda m: isinstance(m, tuple) and m[0]["run"] == run_id)  # first image
    return run_id


def test_closing_the_tab_cancels_its_run(server, monkeypatch):
    client = ws(server)
    run_id = _start_slow(server, client, monkeypatch)
    client.close()
    run, status = _wait_for_state(server, run_id, ("cancelled", "done"))
    assert run["state"] == "cancelled"
    assert run_id not in status["active"]
    assert len(PROCESSED) < 24


def test_a_new_detector_cancels_the_stale_run(server, monkeypatch):
    client = ws(server)
    try:
        stale = _start_slow(server, client, monkeypatch)
        monkeypatch.undo()
        client.send(
            {
                "type": "run",
                "dataset": "slow",
                "channel": "result",
                "analysis": {"kind": "virtual", "detector": {"shape": "whole"}},
            }
        )
        fresh = client.until(started("result"))[-1]["run"]["id"]
        seen = client.until(run_state(fresh, "done"))
    finally:
        client.close()
    run, _ = _wait_for_state(server, stale, ("cancelled", "done"))
    assert run["state"] == "cancelled" and run["watchers"] == 0
    assert len(PROCESSED) < 24
    assert not any(isinstance(m, tuple) and m[0]["run"] == stale for m in seen)
    header, images = [m for m in seen if isinstance(m, tuple)][-1]
    assert header["run"] == fresh and header["final"]
    assert np.allclose(images["intensity"], 64.0)


def test_closing_a_dataset(server):
    import json

    status, body, _ = http(
        server.base, "/api/datasets", server.token, {"path": "scans/sample.hdr"}
    )
    entry = json.loads(body)
    assert status == 201
    status, _, _ = http(server.base, f"/api/datasets/{entry['id']}", server.token, method="DELETE")
    assert status == 200
    ids = [d["id"] for d in json.loads(http(server.base, "/api/datasets", server.token)[1])]
    assert entry["id"] not in ids
    status, _, _ = http(server.base, f"/api/datasets/{entry['id']}", server.token, method="DELETE")
    assert status == 404


def test_generated_notebook_runs(server, dataset, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    client = ws(server)
    try:
        client.send(
            {
                "type": "run",
                "dataset": dataset["id"],
                "channel": "frame",
                "analysis": {"kind": "pick", "x": 4, "y": 9},
            }
        )
        run_id, _ = _final_images(client, "frame")
    finally:
        client.close()
    text = http(server.base, f"/api/runs/{run_id}/notebook.ipynb", server.token)[1]
    nb = nbformat.reads(text.decode(), as_version=4)
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert np.array_equal(
        np.load(tmp_path / "sample_frame_y9_x4_intensity.npy"), server.data[9, 4]
    )
