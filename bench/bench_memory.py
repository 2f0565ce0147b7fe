"""Reading page-cached data at memory speed on the default ``Context``, and first runs.

Figures of issue 16, each next to the limit measured in the same run:

- the *read limit*: two threads reducing the file through a fresh read-only memory
  map each time (``numpy.max`` in blocks of 8 MiB, best of several rounds). Page faults
  of the fresh maps are part of it, as they are for a Context's workers. On a shared
  machine the limit varies from run to run (the host may give this machine less
  memory bandwidth): compare the fractions, and only those of runs with a high limit;
- ``SumUDF`` and ``SumSigUDF`` on a 1 GiB uint16 raw file of 256 x 256 frames and one
  of 96 x 96 frames (like a DECTRIS ARINA), as GB/s and as a fraction of the limit;
- ``CoMUDF`` and a ``process_frame`` UDF (``frame.max()`` into a nav buffer) on the
  96 x 96 frames, in thousands of frames per second (and as a fraction of the limit);
- ``ApplyMasksUDF`` with 16 dense masks next to a plain NumPy BLAS loop (64 frames
  at a time, ``float32``);
- first runs: fresh interpreters, each with an empty numba cache
  (``NUMBA_CACHE_DIR`` pointing to a new folder), timing ``import``, ``Context()``,
  ``ctx.load('npy', ...)`` and the first ``SumUDF`` result on a 64 MiB file from the
  start of the interpreter; and every built-in UDF's first run next to its second
  (medians over three fresh interpreters, and the largest difference of the three).

Run with ``python3 bench/bench_memory.py`` (``--help`` for the parts). Every run
throws a set of results away first (the warm-up) and reports the best of the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA_DIR, best_time, make_raw_file, warm_page_cache  # noqa: E402

N_MASKS = 16
LARGE = ((64, 128), (256, 256))  # 1 GiB of uint16
SMALL = ((232, 256), (96, 96))  # 1.02 GiB of uint16
READ_BLOCK = 8 * 1024 * 1024
REPEAT = 5
#: fresh interpreters per built-in UDF for its first-run figures
FIRST_RUN_ROUNDS = 3


# -- the read limit -------------------------------------------------------------------
def _reduce_part(path: Path, lo: int, hi: int, out: list, k: int) -> None:
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    part = mm[lo:hi]
    step = READ_BLOCK // 2
    acc = 0
    for s in range(0, part.shape[0], step):
        acc = max(acc, int(part[s : s + step].max()))
    out[k] = acc
    del part, mm


def read_limit(path: Path, threads: int = 2, repeat: int = REPEAT) -> float:
    """GB/s of ``threads`` threads reducing the file, each through a fresh memory map."""
    n = path.stat().st_size // 2
    bounds = [n * i // threads for i in range(threads + 1)]

    def once() -> None:
        out = [0] * threads
        workers = [
            threading.Thread(target=_reduce_part, args=(path, bounds[i], bounds[i + 1], out, i))
            for i in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return path.stat().st_size / best_time(once, repeat) / 1e9


# -- UDFs -----------------------------------------------------------------------------
def frame_max_udf():
    """A ``process_frame`` UDF: the maximum of each frame into a nav buffer."""
    from libertem.udf import UDF

    class FrameMaxUDF(UDF):
        def get_result_buffers(self):
            return {"m": self.buffer(kind="nav", dtype=np.uint16)}

        def process_frame(self, frame):
            self.results.m[:] = frame.max()

    return FrameMaxUDF()


def mask_factories(sig_shape):
    import libertem.masks as masks

    sy, sx = sig_shape
    return [
        (lambda r=r: masks.circular(sx / 2, sy / 2, sx, sy, 4 + 6 * r)) for r in range(N_MASKS)
    ]


def numpy_masks_loop(mm: np.ndarray, sig_shape) -> float:
    """Seconds of the best plain NumPy loop: 64 frames at a time as float32 @ masks."""
    factories = mask_factories(sig_shape)
    size = int(np.prod(sig_shape))
    matrix = np.stack([f() for f in factories]).reshape(N_MASKS, size).T.astype(np.float32)
    matrix = np.ascontiguousarray(matrix)
    flat = mm.reshape(-1, size)

    def loop():
        out = np.empty((flat.shape[0], N_MASKS), dtype=np.float32)
        for start in range(0, flat.shape[0], 64):
            out[start : start + 64] = flat[start : start + 64].astype(np.float32) @ matrix
        return out

    return best_time(loop, REPEAT)


def memory_figures(quick: bool = False) -> dict:
    """The throughput figures on the default Context; see the module docstring.

    Per file, the read limit is measured before and after the UDFs run; the higher
    of the two is the limit of the figures.
    """
    from libertem.api import Context
    from libertem.common.lazyjit import wait_for_compilations
    from libertem.udf.com import CoMUDF
    from libertem.udf.masks import ApplyMasksUDF
    from libertem.udf.sum import SumUDF
    from libertem.udf.sumsigudf import SumSigUDF

    figures: dict = {}
    repeat = 3 if quick else REPEAT
    files = {}
    for label, (nav, sig) in (("256", LARGE), ("96", SMALL)):
        path = make_raw_file(nav, sig, "uint16")
        warm_page_cache(path)
        files[label] = (path, nav, sig)

    ctx = Context()
    try:
        for label, (path, nav, sig) in files.items():
            nbytes = path.stat().st_size
            n_frames = int(np.prod(nav))
            before = read_limit(path, repeat=repeat)
            ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="uint16")
            seconds: dict[str, float] = {}

            def timed(name, udf_factory, ds=ds, seconds=seconds):
                # a first run starts the compilation of kernels in the workers: wait for it
                ctx.run_udf(dataset=ds, udf=udf_factory())
                ctx.executor.run_each_worker(wait_for_compilations)
                run = lambda: ctx.run_udf(dataset=ds, udf=udf_factory())  # noqa: E731
                seconds[name] = best_time(run, repeat)

            timed("SumUDF", SumUDF)
            timed("SumSigUDF", SumSigUDF)
            if label == "96":
                timed("CoMUDF", CoMUDF.with_params)
                timed("process_frame UDF", frame_max_udf)
            if label == "256":
                mm = np.memmap(path, dtype=np.uint16, mode="r", shape=(*nav, *sig))
                seconds["numpy loop"] = numpy_masks_loop(mm, sig)
                timed("ApplyMasksUDF", lambda sig=sig: ApplyMasksUDF(mask_factories(sig)))
            limit = max(before, read_limit(path, repeat=repeat))
            figures[f"read limit {label}"] = limit
            print(f"{'read limit ' + label + 'x' + label:<38s} {limit:9.2f} GB/s", flush=True)
            for name in ("SumUDF", "SumSigUDF"):
                rate = nbytes / seconds[name] / 1e9
                figures[f"{name} {label}"] = rate
                print(
                    f"{name + ' ' + label + 'x' + label:<38s} {rate:9.2f} GB/s "
                    f"{rate / limit:6.0%} of the read limit",
                    flush=True,
                )
            for name in ("CoMUDF", "process_frame UDF"):
                if name in seconds:
                    rate = n_frames / seconds[name] / 1e3
                    gbs = nbytes / seconds[name] / 1e9
                    figures[f"{name} {label}"] = rate
                    print(
                        f"{name + ' ' + label + 'x' + label:<38s} {rate:9.0f} kframes/s "
                        f"({gbs:.1f} GB/s, {gbs / limit:.0%} of the read limit)",
                        flush=True,
                    )
            if "ApplyMasksUDF" in seconds:
                loop, engine = seconds["numpy loop"], seconds["ApplyMasksUDF"]
                figures["masks / numpy loop"] = loop / engine
                print(
                    f"{'ApplyMasksUDF, ' + str(N_MASKS) + ' masks':<38s} "
                    f"{nbytes / engine / 1e9:9.2f} GB/s {loop / engine:6.2f} x the NumPy "
                    f"BLAS loop ({nbytes / loop / 1e9:.2f} GB/s)",
                    flush=True,
                )
    finally:
        ctx.close()
    return figures


# -- first runs -----------------------------------------------------------------------
FIRST_RESULT = """
import time
T0 = time.perf_counter()
from libertem.api import Context
from libertem.udf.sum import SumUDF
t_import = time.perf_counter()
if __name__ == "__main__":
    with Context() as ctx:
        t_ctx = time.perf_counter()
        ds = ctx.load("npy", path={path!r})
        t_load = time.perf_counter()
        ctx.run_udf(dataset=ds, udf=SumUDF())
        t_first = time.perf_counter()
        ctx.run_udf(dataset=ds, udf=SumUDF())
        t_second = time.perf_counter()
    print({{"import": t_import - T0, "Context": t_ctx - t_import, "load": t_load - t_ctx,
           "first run": t_first - t_load, "second run": t_second - t_first,
           "in script": t_first - T0}})
"""

UDF_FIRST_RUN = """
import time
import numpy as np
from libertem.api import Context
from bench.bench_memory import builtin_udfs
if __name__ == "__main__":
    factory = dict(builtin_udfs())[{name!r}]
    with Context() as ctx:
        ds = ctx.load("npy", path={path!r})
        roi = np.ones(ds.shape.nav, dtype=bool)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            ctx.run_udf(dataset=ds, udf=factory(ds), roi=roi)
            times.append(time.perf_counter() - t0)
    print({{"first": times[0], "second": min(times[1:])}})
"""


def builtin_udfs() -> list:
    """``(name, factory(dataset))`` of every built-in UDF, with typical parameters."""
    from libertem.udf.auto import AutoUDF
    from libertem.udf.com import CoMUDF
    from libertem.udf.crystallinity import CrystallinityUDF
    from libertem.udf.FEM import FEMUDF
    from libertem.udf.logsum import LogsumUDF
    from libertem.udf.masks import ApplyMasksUDF
    from libertem.udf.noop import NoOpUDF
    from libertem.udf.raw import PickUDF
    from libertem.udf.stddev import StdDevUDF
    from libertem.udf.sum import SumUDF
    from libertem.udf.sumsigudf import SumSigUDF

    def centre(ds):
        sy, sx = tuple(ds.shape.sig)
        return sy // 2, sx // 2

    return [
        ("SumUDF", lambda ds: SumUDF()),
        ("SumSigUDF", lambda ds: SumSigUDF()),
        ("StdDevUDF", lambda ds: StdDevUDF()),
        ("LogsumUDF", lambda ds: LogsumUDF()),
        ("CoMUDF", lambda ds: CoMUDF.with_params()),
        ("ApplyMasksUDF", lambda ds: ApplyMasksUDF(mask_factories(tuple(ds.shape.sig)))),
        ("PickUDF", lambda ds: PickUDF()),
        ("NoOpUDF", lambda ds: NoOpUDF()),
        ("FEMUDF", lambda ds: FEMUDF(center=centre(ds), rad_in=4, rad_out=40)),
        (
            "CrystallinityUDF",
            lambda ds: CrystallinityUDF(rad_in=1, rad_out=60, real_center=centre(ds), real_rad=8),
        ),
        ("AutoUDF", lambda ds: AutoUDF(f=lambda frame: frame.max())),
    ]


def _fresh_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter with an empty numba cache; its printed dict."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as work:
        script = Path(work) / "first_run.py"
        script.write_text(code)
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(root / "src"), str(root), env.get("PYTHONPATH", "")]
        )
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, cwd=work
        )
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        result = eval(out.stdout.strip().splitlines()[-1], {})  # noqa: S307 - our own print
        result["process"] = wall
        return result


def npy_file() -> Path:
    """A 64 MiB ``.npy`` file of uint16 frames (32 x 16 x 256 x 256)."""
    path = DATA_DIR / "bench_first_64MiB.npy"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(7)
        np.save(path, rng.poisson(3.0, size=(32, 16, 256, 256)).astype(np.uint16))
    warm_page_cache(path)
    return path


def first_result(rounds: int = 3) -> dict:
    """Seconds from the start of fresh interpreters to the first SumUDF result (best)."""
    path = npy_file()
    best: dict = {}
    for _ in range(rounds):
        result = _fresh_python(FIRST_RESULT.format(path=str(path)))
        if not best or result["in script"] < best["in script"]:
            best = result
    return best


def interpreter_start() -> float:
    """Seconds a bare interpreter needs to start and exit (best of 5)."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def first_runs() -> dict:
    """First-result times and each built-in UDF's first run next to its second."""
    figures: dict = {}
    bare = interpreter_start()
    best = first_result()
    total = best["in script"] + bare
    print(
        f"{'first SumUDF result':<38s} {total:9.2f} s from the interpreter's start "
        f"(interpreter {bare:.2f}, import {best['import']:.2f}, Context() "
        f"{best['Context']:.2f}, load {best['load']:.2f}, first run {best['first run']:.2f}; "
        f"second run {best['second run']:.3f})",
        flush=True,
    )
    figures["first result"] = total
    path = npy_file()
    for name, _ in builtin_udfs():
        code = UDF_FIRST_RUN.format(name=name, path=str(path))
        # medians over fresh interpreters: a single run can meet a stall of the kernel
        # (compacting memory for huge pages) that has nothing to do with being first
        results = [_fresh_python(code) for _ in range(FIRST_RUN_ROUNDS)]
        first = float(np.median([r["first"] for r in results]))
        second = float(np.median([r["second"] for r in results]))
        extra = first - second
        worst = max(r["first"] - r["second"] for r in results)
        figures[f"first run extra {name}"] = extra
        print(
            f"{'first run ' + name:<38s} {first:9.3f} s, second {second:.3f} s: "
            f"{extra:+.3f} s (medians of {FIRST_RUN_ROUNDS} interpreters; largest {worst:+.3f} s)",
            flush=True,
        )
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", action="store_true", help="only the throughput figures")
    parser.add_argument("--first", action="store_true", help="only the first-run figures")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    both = not (args.memory or args.first)
    figures: dict = {}
    print(f"load average: {os.getloadavg()[0]:.2f} (measure on a quiet machine)", flush=True)
    if args.memory or both:
        figures.update(memory_figures(args.quick))
    if args.first or both:
        figures.update(first_runs())
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
