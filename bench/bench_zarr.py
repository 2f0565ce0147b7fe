"""Throughput of SumUDF over Zarr stores against ``dask.array.from_zarr(...).sum()``.

Two stores of the same uint16 data (nav (32, 64) x sig (256, 256), 256 MiB, chunks
of 16 frames) are written once under ``bench-data/``: uncompressed and Zstandard
compressed. Both readers use two threads. Rates are GB/s of the decoded data; the
ratio is LiberTEM / Dask (>= 1: LiberTEM is faster). Not part of ``run_all.py``.
Run as ``python -m bench.bench_zarr [NAV_Y]`` (NAV_Y scales the size, default 32).
"""

from __future__ import annotations

import sys

import numpy as np

from bench.common import DATA_DIR, best_time

N_WORKERS = 2
SIG = (256, 256)
CHUNK_FRAMES = 16


def make_stores(nav: tuple[int, int]) -> dict[str, str]:
    """The two sample stores (written once): name -> path."""
    import zarr
    from zarr.codecs import ZstdCodec

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    block = rng.poisson(3.0, size=(nav[1], *SIG)).astype(np.uint16)
    paths = {}
    for name, compressors in (("plain", None), ("zstd", [ZstdCodec(level=1)])):
        path = DATA_DIR / f"bench_{nav[0]}x{nav[1]}_{name}.zarr"
        paths[name] = str(path)
        if (path / "zarr.json").exists():
            continue
        arr = zarr.create_array(
            store=str(path),
            shape=(*nav, *SIG),
            dtype="uint16",
            chunks=(1, CHUNK_FRAMES, *SIG),
            compressors=compressors,
            overwrite=True,
        )
        for y in range(nav[0]):
            arr[y] = np.roll(block, y, axis=0)
    return paths


def main(argv: list[str] | None = None) -> dict[str, float]:
    import dask
    import dask.array as da

    from libertem.api import Context
    from libertem.executor.concurrent import ConcurrentJobExecutor
    from libertem.udf.sum import SumUDF

    args = sys.argv[1:] if argv is None else argv
    nav = (int(args[0]) if args else 32, 64)
    paths = make_stores(nav)
    nbytes = int(np.prod(nav + SIG)) * 2
    rates: dict[str, float] = {}

    def measure(name, fn):
        seconds = best_time(fn, repeat=3)
        rates[name] = nbytes / seconds / 1e9
        print(f"{name:<28s} {rates[name]:7.2f} GB/s  ({seconds:.3f} s)", flush=True)

    with Context(executor=ConcurrentJobExecutor.make_local(N_WORKERS)) as ctx:
        for name, path in paths.items():
            ds = ctx.load("zarr", path=path)
            out = {}

            def lt(ds=ds, out=out):
                out["lt"] = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].raw_data

            def dk(path=path, out=out):
                arr = da.from_zarr(path)
                with dask.config.set(scheduler="threads", num_workers=N_WORKERS):
                    out["dk"] = arr.sum(axis=(0, 1), dtype=np.float32).compute()

            measure(f"SumUDF zarr {name}", lt)
            measure(f"dask from_zarr sum {name}", dk)
            if not np.allclose(out["lt"], out["dk"], rtol=1e-5):
                raise AssertionError(f"{name}: SumUDF and dask disagree")
    ratios = {
        f"LiberTEM / dask {name}": rates[f"SumUDF zarr {name}"]
        / rates[f"dask from_zarr sum {name}"]
        for name in paths
    }
    for name, value in ratios.items():
        print(f"{name:<28s} {value:7.2f}", flush=True)
    return {**rates, **ratios}


if __name__ == "__main__":
    main()
