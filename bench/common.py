"""Shared helpers of the benchmarks: sample data and timing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DATA_DIR = Path(
    os.environ.get("LIBERTEM_BENCH_DIR", Path(__file__).resolve().parent.parent / "bench-data")
)


def make_raw_file(nav_shape=(64, 128), sig_shape=(256, 256), dtype="uint16") -> Path:
    """A raw file of synthetic frames (>= 1 GiB by default), written once and reused."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    name = f"bench_{'x'.join(map(str, nav_shape))}_{'x'.join(map(str, sig_shape))}_{dtype}.raw"
    path = DATA_DIR / name
    n_frames = int(np.prod(nav_shape))
    frame_bytes = int(np.prod(sig_shape)) * np.dtype(dtype).itemsize
    if path.exists() and path.stat().st_size == n_frames * frame_bytes:
        return path
    rng = np.random.default_rng(42)
    block = rng.poisson(3.0, size=(64, *sig_shape)).astype(dtype)
    with open(path, "wb") as f:
        for start in range(0, n_frames, 64):
            f.write(block[: min(64, n_frames - start)].tobytes())
    return path


def warm_page_cache(path: Path) -> None:
    """Read the whole file once so that it sits in the page cache."""
    with open(path, "rb") as f:
        while f.read(64 * 1024 * 1024):
            pass


def best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls, after one warm-up call and the compilation of
    the kernels it asked for in this process (steady state: first runs are measured by
    bench_memory)."""
    from libertem.common.lazyjit import wait_for_compilations

    fn()
    wait_for_compilations()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
