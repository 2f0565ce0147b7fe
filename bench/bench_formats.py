"""Throughput of SumUDF over the same data stored in several formats, page-cached.

The data (uint16, nav (64, 128) x sig (256, 256), values < 4096, about 1 GiB) is
written once under ``bench-data/`` as raw uint16, MIB U16 (big-endian, headered),
MIB raw R64 12-bit and chunked HDF5 (chunks of 16 frames, uncompressed). Every
rate is GB/s of the equivalent uint16 data. A plain h5py chunk-by-chunk loop
summing the HDF5 file is the baseline for HDF5.
"""

from __future__ import annotations

import numpy as np

from bench.common import DATA_DIR, best_time, make_raw_file, warm_page_cache

N_WORKERS = 2
NAV, SIG = (64, 128), (256, 256)
H5_CHUNKS = (1, 16, *SIG)


def make_files() -> dict[str, object]:
    """The sample files (written once): name -> path."""
    import h5py

    from libertem.utils.sample_data import write_mib_acquisition

    raw = make_raw_file(NAV, SIG, "uint16")
    data = np.memmap(raw, dtype=np.uint16, mode="r", shape=(*NAV, *SIG))
    size = raw.stat().st_size
    n = int(np.prod(NAV))
    paths = {"raw": raw}
    for name, depth_kw in (("mib_u16", ("U16", 12)), ("mib_r64_12", ("R64", 12))):
        prefix = DATA_DIR / f"bench_{name}"
        mib = prefix.with_suffix(".mib")
        hdr = prefix.with_suffix(".hdr")
        if not (mib.exists() and hdr.exists() and mib.stat().st_size == size + 384 * n):
            write_mib_acquisition(prefix, data, pixel_depth=depth_kw[0], counter_depth=depth_kw[1])
        paths[name] = hdr
    h5 = DATA_DIR / "bench_chunked.h5"
    if not h5.exists() or h5.stat().st_size < size:
        tmp = h5.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("data", shape=data.shape, dtype=np.uint16, chunks=H5_CHUNKS)
            for y in range(NAV[0]):
                ds[y] = data[y]
        tmp.rename(h5)
    paths["hdf5"] = h5
    return paths


def h5py_loop(path) -> np.ndarray:
    """Sum of all frames, reading the HDF5 file chunk by chunk with plain h5py."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["data"]
        acc = np.zeros(SIG, dtype=np.float32)
        cy, cx = ds.chunks[:2]
        for y in range(0, ds.shape[0], cy):
            for x in range(0, ds.shape[1], cx):
                block = ds[y : y + cy, x : x + cx]
                acc += block.reshape(-1, *SIG).sum(axis=0, dtype=np.float32)
    return acc


def main() -> dict[str, float]:
    from libertem.api import Context
    from libertem.executor.concurrent import ConcurrentJobExecutor
    from libertem.udf.sum import SumUDF

    paths = make_files()
    for p in paths.values():
        warm_page_cache(p)
        if str(p).endswith(".hdr"):
            warm_page_cache(p.with_suffix(".mib"))
    nbytes = int(np.prod(NAV + SIG)) * 2
    rates: dict[str, float] = {}
    expected = None

    def measure(name, fn):
        seconds = best_time(fn)
        rates[name] = nbytes / seconds / 1e9
        print(f"{name:<32s} {rates[name]:7.2f} GB/s  ({seconds:.3f} s)", flush=True)

    with Context(executor=ConcurrentJobExecutor.make_local(N_WORKERS)) as ctx:
        loads = {
            "raw": dict(
                filetype="raw", path=paths["raw"], nav_shape=NAV, sig_shape=SIG, dtype="uint16"
            ),
            "mib_u16": dict(filetype="mib", path=paths["mib_u16"]),
            "mib_r64_12": dict(filetype="mib", path=paths["mib_r64_12"]),
            "hdf5": dict(filetype="hdf5", path=paths["hdf5"]),
        }
        for name, kwargs in loads.items():
            kwargs = dict(kwargs)
            ds = ctx.load(kwargs.pop("filetype"), **kwargs)
            result = {}

            def go(ds=ds, result=result):
                result["r"] = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].raw_data

            measure(f"SumUDF {name}", go)
            if expected is None:
                expected = result["r"]
            elif not np.allclose(result["r"], expected, rtol=1e-4):
                raise AssertionError(f"{name}: sum differs from raw")
        result = {}
        measure("h5py chunk loop sum", lambda: result.setdefault("h", h5py_loop(paths["hdf5"])))
    ratios = {
        "MIB U16 / raw": rates["SumUDF mib_u16"] / rates["SumUDF raw"],
        "MIB R64 12-bit / raw": rates["SumUDF mib_r64_12"] / rates["SumUDF raw"],
        "HDF5 chunked / h5py loop": rates["SumUDF hdf5"] / rates["h5py chunk loop sum"],
    }
    targets = {"MIB U16 / raw": 0.8, "HDF5 chunked / h5py loop": 0.8}
    for name, value in ratios.items():
        target = targets.get(name)
        note = (
            ""
            if target is None
            else f"  (target >= {target}: {'ok' if value >= target else 'MISSED'})"
        )
        print(f"{name:<32s} {value:7.2f}{note}", flush=True)
    return {**rates, **ratios}


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
