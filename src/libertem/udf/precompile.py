"""Compile the kernels of the built-in UDFs ahead of time, into numba's on-disk cache.

The kernels of :class:`~libertem.udf.sum.SumUDF`, :class:`~libertem.udf.sumsigudf.SumSigUDF`,
:class:`~libertem.udf.stddev.StdDevUDF` and :class:`~libertem.udf.com.CoMUDF` are
compiled on first use, in the background, while their NumPy twins compute the same
values (see :class:`~libertem.common.lazyjit.KernelWithTwin`). With a warm cache, the
kernels are ready milliseconds after a worker first asks for them. This module warms
the cache for the tile types that common datasets produce::

    python -m libertem.udf.precompile

``python3 dev.py`` runs it when it sets up the environment. The cache lives where numba
keeps it: next to the sources where they are writable, else in the user's cache
folder, or in ``NUMBA_CACHE_DIR``. It stays valid until the sources change.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import numpy as np

#: tile dtypes of common datasets
TILE_DTYPES = ("uint8", "uint16", "uint32", "int16", "int32", "float32", "float64")


def _tiles(dtype, shape=(2, 4, 4)) -> Iterator[np.ndarray]:
    """Tiles as datasets hand them out: writeable arrays and read-only memory maps."""
    tile = np.zeros(shape, dtype=dtype)
    yield tile
    readonly = tile.copy()
    readonly.flags.writeable = False
    yield readonly


def kernel_calls() -> Iterator[tuple[str, object, tuple]]:
    """``(name, kernel, arguments)`` of the built-in kernels, one per tile type."""
    from libertem.udf import com_kernels, stddev, sum_kernels

    for dtype in TILE_DTYPES:
        dtype = np.dtype(dtype)
        for tile in _tiles(dtype):
            flat = tile.reshape((tile.shape[0], -1))
            for out_dtype in sum_kernels.FRAME_SUM_OUT_DTYPES:
                out = np.zeros(flat.shape[1], dtype=out_dtype)
                acc = np.zeros(sum_kernels.SUM_BLOCK, dtype=out_dtype)
                f32 = out_dtype == np.float32
                if not sum_kernels.frame_sums_apply(tile, out):
                    pass
                elif dtype in sum_kernels.EXACT_SUM_TILE_DTYPES:
                    kernel = (
                        sum_kernels.add_exact_frame_sums_f32
                        if f32
                        else sum_kernels.add_exact_frame_sums_f64
                    )
                    exact = np.zeros(4, dtype=sum_kernels.exact_accumulator_dtype(out_dtype))
                    group = sum_kernels.exact_group(dtype, out_dtype)
                    rows = (*sum_kernels.frame_rows(tile), out, exact, group)
                    yield f"SumUDF {dtype} -> {out_dtype}", kernel, rows
                    if dtype == np.uint16:  # big-endian uint16 (Merlin), as native bytes
                        kernel = (
                            sum_kernels.add_swapped_frame_sums_f32
                            if f32
                            else sum_kernels.add_swapped_frame_sums_f64
                        )
                        name = f"SumUDF byte-swapped uint16 -> {out_dtype}"
                        yield name, kernel, rows
                else:
                    kernel = (
                        sum_kernels.add_frame_sums_f32 if f32 else sum_kernels.add_frame_sums_f64
                    )
                    yield f"SumUDF {dtype} -> {out_dtype}", kernel, (flat, out, acc)
                if dtype in sum_kernels.ROW_SUM_TILE_DTYPES:
                    sums = np.zeros(flat.shape[0], dtype=out_dtype)
                    yield (
                        f"SumSigUDF {dtype} -> {out_dtype}",
                        sum_kernels.add_row_sums,
                        (
                            flat,
                            sums,
                        ),
                    )
            if dtype.kind == "f":
                stats = np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
                yield f"StdDevUDF {dtype}", stddev.process_tile, (flat, 0, *stats)
            if dtype in com_kernels.INTEGER_TILE_DTYPES:
                masks = np.zeros((3, flat.shape[1]))
                out = np.zeros((flat.shape[0], 3))
                yield f"CoMUDF {dtype}", com_kernels.moments3, (flat, masks, out)
    stats = [np.zeros(16) for _ in range(5)]
    yield "StdDevUDF merge", stddev.merge, (0, stats[0], stats[1], 0, *stats[2:])


def precompile(verbose: bool = False) -> int:
    """Compile every kernel of :func:`kernel_calls` (or load it from the cache).

    Returns
    -------
    int
        The number of kernels that could not be compiled (they run as NumPy twins).
    """
    failed = 0
    t0 = time.perf_counter()
    for name, kernel, args in kernel_calls():
        ok = kernel.compile_now(*args)
        failed += not ok
        if verbose:
            print(f"{'compiled' if ok else 'FAILED  '} {name}", flush=True)
    if verbose:
        print(f"{time.perf_counter() - t0:.1f} s", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    """``python -m libertem.udf.precompile [-q]``: exit status 1 if a kernel failed."""
    argv = sys.argv[1:] if argv is None else argv
    return 1 if precompile(verbose="-q" not in argv) else 0


__all__ = ["TILE_DTYPES", "kernel_calls", "main", "precompile"]

if __name__ == "__main__":
    sys.exit(main())
