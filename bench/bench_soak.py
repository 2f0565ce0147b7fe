"""Long use: latency of small runs and memory growth over many runs.

Run with ``python3 dev.py bench`` (part of the suite) or alone with
``.venv/bin/python bench/bench_soak.py [--runs N] [--failing N]``. Prints

- the median wall time of a small run (16x16x32x32 float32, SumUDF) on the
  thread executor and on the default Context, and their ratio;
- the resident memory of the main process and of every Dask worker after the
  first 10 runs (and the compilation of the kernels they asked for), after
  ``--runs`` runs and after ``--failing`` failing runs, and the growth in MiB per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1024 * 1024
#: the growth (since the first 10 runs) the soak must stay within, per process
LIMIT_MIB = 50


def _rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def _worker_rss(ctx) -> dict[str, int]:
    client = getattr(ctx.executor, "client", None)
    if client is None:
        return {}
    return client.run(_rss)


def _median_ms(ctx, ds, udf, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        ctx.run_udf(dataset=ds, udf=udf)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def small_runs(n: int = 200) -> dict[str, float]:
    """Median ms of a small SumUDF run on threads and on the default Context."""
    from libertem.api import Context
    from libertem.udf.sum import SumUDF

    data = np.random.default_rng(0).random((16, 16, 32, 32), dtype=np.float32)
    out = {}
    with Context.make_with("threads") as ctx:
        ds = ctx.load("memory", data=data, sig_dims=2)
        out["threads"] = _median_ms(ctx, ds, SumUDF(), n)
    with Context() as ctx:
        ds = ctx.load("memory", data=data, sig_dims=2)
        out["default"] = _median_ms(ctx, ds, SumUDF(), n)
    print(f"{'small run median, threads':<36s} {out['threads']:8.2f} ms")
    print(f"{'small run median, default Context':<36s} {out['default']:8.2f} ms")
    print(f"ratio default / threads {out['default'] / out['threads']:.1f}x", flush=True)
    return out


class _FailingUDF:
    """Built lazily so that the module imports without the package."""

    @staticmethod
    def make():
        from libertem.udf import UDF

        class FailingUDF(UDF):
            def get_result_buffers(self):
                return {"x": self.buffer(kind="nav")}

            def process_frame(self, frame):
                raise ValueError("soak: intended failure")

        return FailingUDF()


def soak(runs: int = 1000, failing: int = 250) -> dict[str, float]:
    """Memory growth of the main process and the workers over many small runs."""
    from libertem.api import Context
    from libertem.common.lazyjit import wait_for_compilations
    from libertem.udf.sum import SumUDF

    data = np.random.default_rng(1).random((16, 16, 32, 32), dtype=np.float32)
    with Context() as ctx:
        ds = ctx.load("memory", data=data, sig_dims=2)
        for _ in range(10):
            ctx.run_udf(dataset=ds, udf=SumUDF())
        # the kernels the runs asked for, compiled now: numba and LLVM take about 50 MiB
        # once per process, which is not growth per run (docs/performance.md)
        ctx.executor.run_each_worker(wait_for_compilations)
        wait_for_compilations()
        main0, workers0 = _rss(), _worker_rss(ctx)
        for _ in range(runs - 10):
            ctx.run_udf(dataset=ds, udf=SumUDF())
        main1, workers1 = _rss(), _worker_rss(ctx)
        udf = _FailingUDF.make()
        for _ in range(failing):
            try:
                ctx.run_udf(dataset=ds, udf=udf)
            except Exception:
                pass
        main2, workers2 = _rss(), _worker_rss(ctx)

    def report(label: str, before: int, after: int, n: int) -> float:
        per_run = (after - before) / MIB / max(n, 1)
        print(
            f"{label:<36s} {before / MIB:8.1f} -> {after / MIB:8.1f} MiB "
            f"({(after - before) / MIB:+.1f} MiB, {per_run:+.3f} MiB/run)"
        )
        return per_run

    out = {"main": report(f"main after 10 -> {runs} runs", main0, main1, runs - 10)}
    out["main failing"] = report(f"main over {failing} failing runs", main1, main2, failing)
    growth = {"main": (max(main1, main2) - main0) / MIB}
    for name in sorted(workers0):
        short = name.rsplit(":", 1)[-1]
        key = f"worker :{short}"
        out[key] = report(f"{key} 10 -> {runs} runs", workers0[name], workers1[name], runs - 10)
        if name in workers2:
            out[f"{key} failing"] = report(
                f"{key} failing", workers1[name], workers2[name], failing
            )
            growth[key] = (max(workers1[name], workers2[name]) - workers0[name]) / MIB
    worst = max(growth, key=growth.get)
    verdict = "within" if growth[worst] <= LIMIT_MIB else "NOT within"
    print(
        f"largest growth since the first 10 runs: {worst} {growth[worst]:+.1f} MiB "
        f"({verdict} {LIMIT_MIB} MiB)",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--failing", type=int, default=250)
    parser.add_argument("--small", type=int, default=200, help="runs per small-run median")
    args = parser.parse_args(argv)
    small_runs(args.small)
    soak(args.runs, args.failing)


if __name__ == "__main__":
    main()
