"""Streaming from disk: SumUDF per I/O backend next to dd and an O_DIRECT read loop.

Writes a raw file (uint16 frames of 256 x 256, ``--size-gib`` GiB, default 4) under
``bench-data/`` (or ``$LIBERTEM_BENCH_DIR``, or ``--dir``), and measures, in rounds,
the sequential read rate of the same file by

- ``dd if=FILE of=/dev/null bs=16M iflag=direct`` (its own figures, parsed),
- a Python loop of ``preadv`` into one 16 MiB page-aligned buffer, ``O_DIRECT``,
- ``SumUDF`` over ``ctx.load('raw', ..., io_backend=...)`` for each backend on the
  thread executor and on the default (Dask) ``Context``.

Before every run the file's pages are dropped from the page cache
(``posix_fadvise(POSIX_FADV_DONTNEED)``; memory maps of it are released first, in
this process and in the Dask workers), and the share of the file still cached is
measured with ``mincore``: the ``cached`` column shows that every figure is a disk
figure. A last line reads the file once more *without* dropping it, for contrast.

Usage: ``.venv/bin/python bench/bench_disk.py [--size-gib N] [--backend direct|buffered|mmap]``
(``--backend`` may be repeated; default: all three; ``--help`` for the rest).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import mmap
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIG = (256, 256)
DTYPE = np.uint16
FRAME_BYTES = SIG[0] * SIG[1] * np.dtype(DTYPE).itemsize
BLOCK = 16 * 1024 * 1024
GIB = 1024**3
BACKENDS = ("direct", "buffered", "mmap")
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "bench-data"


# -- the file -------------------------------------------------------------------------
def write_file(path: Path, size: int) -> None:
    """Write ``size`` bytes of synthetic uint16 frames to ``path`` and flush them to disk."""
    rng = np.random.default_rng(11)
    block = rng.integers(0, 4096, size=BLOCK // 2, dtype=np.uint16)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for k, pos in enumerate(range(0, size, BLOCK)):
            f.write((block + np.uint16(k % 61))[: (min(BLOCK, size - pos)) // 2].tobytes())
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)


def prepare_file(folder: Path, size_gib: float) -> Path:
    """The benchmark file of about ``size_gib`` GiB (whole frames), written unless present."""
    folder.mkdir(parents=True, exist_ok=True)
    size = max(1, int(size_gib * GIB) // BLOCK) * BLOCK
    path = folder / f"bench_disk_{size // (1024 * 1024)}MiB.raw"
    if not path.exists() or path.stat().st_size != size:
        free = shutil.disk_usage(folder).free
        if free < size + GIB:
            sys.exit(f"{folder}: {free / GIB:.1f} GiB free, the file needs {size / GIB:.1f} GiB")
        print(f"writing {path} ({size / GIB:.2f} GiB) ...", flush=True)
        t0 = time.perf_counter()
        write_file(path, size)
        print(f"  written at {size / (time.perf_counter() - t0) / 1e9:.2f} GB/s", flush=True)
    return path


def check_direct_io(path: Path) -> None:
    """Exit with a message when the file system refuses ``O_DIRECT``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as e:
        sys.exit(f"{path}: O_DIRECT is refused ({e}); use --dir on a disk-backed file system")
    os.close(fd)


# -- the page cache -------------------------------------------------------------------
def forget_maps() -> None:
    """Release the memory maps libertem keeps of input files (else their pages stay cached)."""
    from libertem.io.dataset.base import files

    forget = getattr(files, "forget_maps", None) or files._cached_memmap.cache_clear
    forget()
    gc.collect()


def drop_cache(path: Path) -> None:
    """Evict the (clean, unmapped) pages of ``path`` from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)


def cached_fraction(path: Path) -> float:
    """Share of the pages of ``path`` in the page cache (``mincore`` of a fresh map)."""
    size = path.stat().st_size
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as mm:
        addr = np.frombuffer(mm, np.uint8).ctypes.data
        pages = -(-size // mmap.PAGESIZE)
        vec = np.zeros(pages, np.uint8)
        res = _libc.mincore(
            ctypes.c_void_p(addr), ctypes.c_size_t(size), vec.ctypes.data_as(ctypes.c_void_p)
        )
        if res != 0:
            return float("nan")
        cached = int(np.count_nonzero(vec & 1))
        del addr
    return cached / pages


# -- the baselines --------------------------------------------------------------------
def run_dd(path: Path, direct: bool = True) -> float:
    """GB/s that ``dd bs=16M`` reports for reading ``path`` (with ``iflag=direct``)."""
    cmd = ["dd", f"if={path}", "of=/dev/null", "bs=16M"] + (["iflag=direct"] if direct else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if res.returncode != 0:
        raise RuntimeError(f"dd failed: {res.stderr.strip()}")
    m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", res.stderr)
    if m is None:
        raise RuntimeError(f"cannot parse dd's output: {res.stderr.strip()}")
    return int(m.group(1)) / float(m.group(2)) / 1e9


def run_direct_loop(path: Path) -> float:
    """GB/s of a Python ``preadv`` loop, ``O_DIRECT``, 16 MiB aligned buffer (like fio)."""
    buf = mmap.mmap(-1, BLOCK)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        total = 0
        t0 = time.perf_counter()
        while True:
            n = os.preadv(fd, [view], total)
            if n <= 0:
                break
            total += n
        dt = time.perf_counter() - t0
    finally:
        os.close(fd)
        view.release()
        buf.close()
    return total / dt / 1e9


# -- SumUDF ---------------------------------------------------------------------------
def make_backend(name: str):
    from libertem.io.dataset.base import BufferedBackend, DirectBackend, MMapBackend

    return {"direct": DirectBackend, "buffered": BufferedBackend, "mmap": MMapBackend}[name]()


def run_sum(ctx, path: Path, backend: str) -> tuple[float, np.ndarray]:
    """GB/s of SumUDF over the file with ``backend``, and the sum."""
    from libertem.udf.sum import SumUDF

    n = path.stat().st_size // FRAME_BYTES
    ds = ctx.load(
        "raw", str(path), DTYPE, nav_shape=(n,), sig_shape=SIG, io_backend=make_backend(backend)
    )
    t0 = time.perf_counter()
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    dt = time.perf_counter() - t0
    return path.stat().st_size / dt / 1e9, np.array(res["intensity"].data)


def make_contexts(which: list[str]) -> dict:
    from libertem.api import Context

    contexts = {}
    if "threads" in which:
        contexts["threads"] = Context.make_with("threads")
    if "dask" in which:
        contexts["dask"] = Context()
    return contexts


def cold(contexts: dict, path: Path) -> float:
    """Drop ``path`` from the page cache (maps released everywhere first); the share left."""
    forget_maps()
    for ctx in contexts.values():
        try:
            ctx.executor.run_each_worker(forget_maps)
        except Exception:  # executors without workers: nothing to release
            pass
    drop_cache(path)
    return cached_fraction(path)


# -- the report -----------------------------------------------------------------------
def report(rows: dict[str, list[tuple[float, float]]], dd_name: str) -> None:
    dd = statistics.median(r for r, _ in rows[dd_name])
    rounds = max(len(v) for v in rows.values())
    head = "".join(f"  run{i + 1}" for i in range(rounds))
    print(f"\n{'GB/s':34s}{head}  median  best  x dd  cached")
    for name, runs in rows.items():
        rates = [r for r, _ in runs]
        med = statistics.median(rates)
        cols = "".join(f"{r:6.2f}" for r in rates) + "      " * (rounds - len(rates))
        print(
            f"{name:34s}{cols}  {med:6.2f} {max(rates):5.2f} {med / dd:5.2f}"
            f"  {max(c for _, c in runs):6.1%}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=4.0, help="file size (default 4)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="default: all")
    parser.add_argument(
        "--executor", action="append", choices=("threads", "dask"), help="default: both"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all runs (default 3)")
    parser.add_argument("--dir", type=Path, help="folder of the file (default: bench-data/)")
    parser.add_argument("--keep", action="store_true", help="keep the file afterwards")
    args = parser.parse_args(argv)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # workers: no INFO lines
    folder = args.dir or Path(os.environ.get("LIBERTEM_BENCH_DIR", DEFAULT_DIR))
    backends = args.backend or list(BACKENDS)
    executors = args.executor or ["threads", "dask"]

    path = prepare_file(folder, args.size_gib)
    check_direct_io(path)
    size = path.stat().st_size
    print(f"file {path}: {size / GIB:.2f} GiB, {size // FRAME_BYTES} frames {SIG} uint16")
    print(f"CPUs: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}", flush=True)
    contexts = make_contexts(executors)
    dd_name = "dd bs=16M iflag=direct"
    rows: dict[str, list[tuple[float, float]]] = {dd_name: [], "python O_DIRECT loop, 16 MiB": []}
    sums: dict[str, np.ndarray] = {}
    try:
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds} ...", flush=True)
            c = cold(contexts, path)
            rows[dd_name].append((run_dd(path), c))
            c = cold(contexts, path)
            rows["python O_DIRECT loop, 16 MiB"].append((run_direct_loop(path), c))
            for ex, ctx in contexts.items():
                for backend in backends:
                    c = cold(contexts, path)
                    rate, total = run_sum(ctx, path, backend)
                    rows.setdefault(f"SumUDF {ex:7s} {backend}", []).append((rate, c))
                    sums[f"{ex} {backend}"] = total
        report(rows, dd_name)
        run_dd(path, direct=False)  # pulls the file into the page cache (if it fits) ...
        cached = cached_fraction(path)
        rate = run_dd(path, direct=False)  # ... to show what page-cache figures look like
        print(f"{'(contrast) dd bs=16M, not dropped':34s}{rate:6.2f}  cached {cached:.1%}")
    finally:
        for ctx in contexts.values():
            ctx.close()
        if not args.keep:
            path.unlink(missing_ok=True)
    ref = next(iter(sums.values()), None)
    agree = all(np.allclose(s, ref, rtol=1e-5) for s in sums.values())
    print(f"the sums of all SumUDF runs agree: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
