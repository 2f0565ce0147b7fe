"""libertem-server: from a detector change to the first and to the finished image.

On the README's demo dataset (a 96 x 96 scan of 128 x 128 uint16 frames, about
300 MiB, as a Merlin acquisition) and the default Context (a local Dask cluster),
a WebSocket client plays a browser tab: it changes a ring detector and times the
first updated virtual image and the finished one. Goals: the first update within
150 ms; the finished image at 70% or more of ``SumUDF``'s throughput on the same
dataset and Context, measured in the same run.

Run with ``python bench/bench_web.py`` (or as part of ``python3 dev.py bench``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA_DIR, best_time, warm_page_cache  # noqa: E402

N_CHANGES = 8


def demo_dataset() -> Path:
    """The README's demo scan, written once to the benchmark data folder."""
    from libertem.demo import NAV_SHAPE, SIG_SHAPE, make_scan
    from libertem.utils.sample_data import write_mib_acquisition

    folder = DATA_DIR / "demo_scan"
    hdr = folder / "sample_scan.hdr"
    if not hdr.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_mib_acquisition(folder / "sample_scan", make_scan(NAV_SHAPE, SIG_SHAPE), "U16")
    return hdr


async def _changes(port: int, token: str, dataset_id: str, sig: tuple[int, int]) -> list:
    """Time N_CHANGES detector changes: (seconds to first image, seconds to final image)."""
    from tornado.websocket import websocket_connect

    from libertem.web.protocol import decode_images

    conn = await websocket_connect(f"ws://127.0.0.1:{port}/api/ws?token={token}")
    sy, sx = sig

    async def change(ro: float) -> tuple[float, float]:
        detector = {"shape": "ring", "cx": sx / 2, "cy": sy / 2, "ri": ro / 2, "ro": ro}
        request = {
            "type": "run",
            "dataset": dataset_id,
            "channel": "result",
            "analysis": {"kind": "virtual", "detector": detector},
        }
        t0 = time.perf_counter()
        await conn.write_message(json.dumps(request))
        run_id, first = None, None
        while True:
            message = await conn.read_message()
            if isinstance(message, str):
                event = json.loads(message)
                if event.get("event") == "run" and event["run"]["state"] == "queued":
                    run_id = run_id or event["run"]["id"]
                elif event.get("event") == "error":
                    raise RuntimeError(event["message"])
                continue
            header, _ = decode_images(message)
            if header["run"] != run_id:
                continue
            first = first or time.perf_counter() - t0
            if header["final"]:
                return first, time.perf_counter() - t0

    await change(20.0)  # warm-up
    timings = [await change(16.0 + 2 * (i % 5)) for i in range(N_CHANGES)]
    conn.close()
    return timings


def main() -> dict[str, float]:
    from libertem.api import Context
    from libertem.udf.sum import SumUDF
    from libertem.web.server import WebServer

    hdr = demo_dataset()
    nbytes = hdr.with_suffix(".mib").stat().st_size
    warm_page_cache(hdr.with_suffix(".mib"))
    with Context() as ctx:
        server = WebServer(ctx, root=hdr.parent).start_in_thread()
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/api/datasets",
                data=json.dumps({"path": hdr.name, "filetype": "auto"}).encode(),
                headers={"Authorization": f"token {server.token}"},
            )
            with urllib.request.urlopen(req, timeout=120) as f:
                info = json.loads(f.read())
            entry = server.state.datasets.entries[info["id"]]
            sum_seconds = best_time(lambda: ctx.run_udf(dataset=entry.ds, udf=SumUDF()))
            timings = asyncio.run(
                _changes(server.port, server.token, info["id"], tuple(info["sig_2d"]))
            )
        finally:
            server.stop()
    first = [t[0] for t in timings]
    done = [t[1] for t in timings]
    sum_rate = nbytes / sum_seconds / 1e9
    gui_rate = nbytes / statistics.median(done) / 1e9
    print(f"dataset {hdr} ({nbytes / 2**20:.0f} MiB), {info['shape']}")
    print(f"{'SumUDF, default Context (best)':<44s} {sum_rate:7.2f} GB/s  ({sum_seconds:.3f} s)")
    print(
        f"{'detector change -> first image (median/max)':<44s} "
        f"{1000 * statistics.median(first):7.1f} / {1000 * max(first):.1f} ms  (goal <= 150 ms)"
    )
    print(
        f"{'detector change -> finished image (median)':<44s} "
        f"{gui_rate:7.2f} GB/s  ({statistics.median(done):.3f} s)"
    )
    ratio = gui_rate / sum_rate
    print(f"ratio finished image / SumUDF {ratio:5.2f}x  (goal >= 0.70)")
    return {
        "first_ms": 1000 * statistics.median(first),
        "finished / SumUDF": ratio,
    }


if __name__ == "__main__":
    main()
