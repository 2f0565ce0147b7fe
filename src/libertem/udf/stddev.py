"""Per-pixel mean, variance and standard deviation over all frames.

Partial statistics of groups of frames (count ``n``, ``sum`` and ``varsum``, the
sum of squared deviations from the group mean) are combined with the pairwise
update of Chan, Golub and LeVeque:
``varsum = varsum_0 + varsum_1 + n_0 n_1 / (n_0 + n_1) (mean_1 - mean_0)**2``,
which stays accurate where summing squares would cancel.
"""

from __future__ import annotations

import numpy as np

from libertem.common.buffers import reshaped_view
from libertem.common.lazyjit import KernelWithTwin, lazy_njit
from libertem.udf.classes import UDF

__all__ = [
    "StdDevUDF",
    "consolidate_result",
    "merge",
    "merge_ndarray",
    "merge_single",
    "process_tile",
    "process_tile_ndarray",
    "run_stddev",
]


@lazy_njit(nogil=True, cache=True)
def merge_single(n, n_0, sum_0, varsum_0, n_1, sum_1, varsum_1, mean_1):
    """Combine the statistics of two groups of ``n_0`` and ``n_1`` values.

    Parameters
    ----------
    n
        ``n_0 + n_1``.
    n_0, sum_0, varsum_0
        Count, sum and sum of squared deviations of the first group.
    n_1, sum_1, varsum_1, mean_1
        The same for the second group, and its mean ``sum_1 / n_1``.

    Returns
    -------
    tuple
        ``(sum, varsum)`` of both groups together.
    """
    if n_0 == 0:
        return sum_1, varsum_1
    delta = mean_1 - sum_0 / n_0
    return sum_0 + sum_1, varsum_0 + varsum_1 + (n_0 * n_1 / n) * delta * delta


@lazy_njit(nogil=True, cache=True)
def _merge_kernel(dest_n, dest_sum, dest_varsum, src_n, src_sum, src_varsum, src_mean):
    if dest_n == 0:
        dest_sum[:] = src_sum
        dest_varsum[:] = src_varsum
        return src_n
    if src_n == 0:
        return dest_n
    n = dest_n + src_n
    for i in range(dest_sum.shape[0]):
        mean_0 = dest_sum[i] / dest_n
        delta = src_mean[i] - mean_0
        mean = mean_0 + src_n * delta / n
        dest_sum[i] = dest_sum[i] + src_sum[i]
        dest_varsum[i] = (
            dest_varsum[i] + src_varsum[i] + src_n * abs(delta) * abs(src_mean[i] - mean)
        )
    return n


def _merge_twin(dest_n, dest_sum, dest_varsum, src_n, src_sum, src_varsum, src_mean):
    """Merge the per-pixel statistics of ``src_n`` frames into those of ``dest_n`` frames.

    Parameters
    ----------
    dest_n
        Number of frames in ``dest_sum`` / ``dest_varsum`` (an int).
    dest_sum, dest_varsum
        Flat per-pixel sums and sums of squared deviations, updated in place.
    src_n
        Number of frames of the statistics to add (an int).
    src_sum, src_varsum, src_mean
        Their flat per-pixel sums, sums of squared deviations and means.

    Returns
    -------
    int
        The number of frames now in ``dest``: ``dest_n + src_n``.
    """
    if dest_n == 0:
        dest_sum[:] = src_sum
        dest_varsum[:] = src_varsum
        return src_n
    if src_n == 0:
        return dest_n
    n = dest_n + src_n
    # the kernel's operations, element by element, in its order (numba divides float32
    # by an int in float64)
    mean_0 = dest_sum / np.float64(dest_n)
    delta = src_mean - mean_0
    mean = mean_0 + src_n * delta / n
    varsum = dest_varsum + src_varsum + src_n * np.abs(delta) * np.abs(src_mean - mean)
    dest_sum[:] = dest_sum + src_sum
    dest_varsum[:] = varsum
    return n


#: :func:`_merge_twin`, compiled (see :class:`~libertem.common.lazyjit.KernelWithTwin`)
merge = KernelWithTwin(_merge_kernel, _merge_twin)


def _module(forbuf):
    """The array module (NumPy or CuPy) of ``forbuf``."""
    if isinstance(forbuf, np.ndarray) or np.isscalar(forbuf):
        return np
    import cupy

    return cupy.get_array_module(forbuf)


def _combined(n_a, sum_a, varsum_a, n_b, sum_b, varsum_b, mean_b, xp):
    """``(n, sum, varsum)`` of two groups of per-pixel statistics, as new arrays."""
    n = n_a + n_b
    safe_n = xp.where(n == 0, 1, n)
    delta = mean_b - sum_a / xp.where(n_a == 0, 1, n_a)
    update = (n_a * n_b / safe_n) * xp.abs(delta) ** 2
    has_a = n_a > 0
    varsum = xp.where(has_a, varsum_a + varsum_b + update, varsum_b)
    return n, xp.where(has_a, sum_a + sum_b, sum_b), varsum


def merge_ndarray(
    dest_n, dest_sum, dest_varsum, src_n, src_sum, src_varsum, src_mean, forbuf
) -> None:
    """Vectorized :func:`merge`, for NumPy or CuPy arrays of any (equal) shape.

    Parameters
    ----------
    dest_n, dest_sum, dest_varsum, src_n, src_sum, src_varsum, src_mean
        See :func:`merge`; complex values give ``varsum`` of ``abs(deviation)**2``.
    forbuf
        An array whose module (``numpy`` or ``cupy``) does the computation.
    """
    xp = _module(forbuf)
    n, total, varsum = _combined(
        dest_n, dest_sum, dest_varsum, src_n, src_sum, src_varsum, src_mean, xp
    )
    dest_varsum[...] = varsum
    dest_sum[...] = total
    dest_n[...] = n


@lazy_njit(nogil=True, cache=True)
def _process_tile_kernel(tile, n_0, sum_inout, varsum_inout):
    n_1, n_pixels = tile.shape
    n = n_0 + n_1
    # row by row, in memory order; the tile's own statistics first
    s = np.zeros(n_pixels)
    for i in range(n_1):
        for p in range(n_pixels):
            s[p] += tile[i, p]
    mean = s / n_1
    v = np.zeros(n_pixels)
    for i in range(n_1):
        for p in range(n_pixels):
            d = tile[i, p] - mean[p]
            v[p] += d * d
    for p in range(n_pixels):
        sum_inout[p], varsum_inout[p] = merge_single(
            n, n_0, sum_inout[p], varsum_inout[p], n_1, s[p], v[p], mean[p]
        )
    return n


def _process_tile_twin(tile, n_0, sum_inout, varsum_inout):
    """Add the frames of a tile to per-pixel statistics of ``n_0`` frames, in place.

    Parameters
    ----------
    tile
        Real array ``(frames, pixels)``.
    n_0
        Number of frames in ``sum_inout`` and ``varsum_inout`` so far.
    sum_inout, varsum_inout
        Flat per-pixel sums and sums of squared deviations.

    Returns
    -------
    int
        The number of frames now in the statistics: ``n_0`` plus the tile's frames.
    """
    n_1 = tile.shape[0]
    n = n_0 + n_1
    # the kernel's operations, pixel by pixel, in its order: frame after frame
    s = np.zeros(tile.shape[1])
    for i in range(n_1):
        s += tile[i]
    mean = s / n_1
    v = np.zeros(tile.shape[1])
    for i in range(n_1):
        d = tile[i] - mean
        v += d * d
    if n_0 == 0:  # merge_single returns the tile's own statistics
        sum_inout[:] = s
        varsum_inout[:] = v
        return n
    delta = mean - sum_inout / np.float64(n_0)  # numba divides float32 by int in float64
    varsum = varsum_inout + v + (n_0 * n_1 / n) * delta * delta
    sum_inout[:] = sum_inout + s
    varsum_inout[:] = varsum
    return n


#: :func:`_process_tile_twin`, compiled (see :class:`~libertem.common.lazyjit.KernelWithTwin`)
process_tile = KernelWithTwin(_process_tile_kernel, _process_tile_twin)


def process_tile_ndarray(tile, n_0: int, sum_inout, varsum_inout, forbuf) -> None:
    """Vectorized :func:`process_tile` for NumPy or CuPy (and complex) data.

    Parameters
    ----------
    tile, n_0, sum_inout, varsum_inout
        See :func:`process_tile`; ``sum_inout`` and ``varsum_inout`` may have any
        shape that ``tile.shape[1:]`` has.
    forbuf
        An array whose module (``numpy`` or ``cupy``) does the computation.
    """
    xp = _module(forbuf)
    n_1 = tile.shape[0]
    s = tile.sum(axis=0)
    mean_1 = s / n_1
    v = (xp.abs(tile - mean_1) ** 2).sum(axis=0)
    if n_0 == 0:
        sum_inout[...] = s
        varsum_inout[...] = v
        return
    n = n_0 + n_1
    delta = mean_1 - sum_inout / n_0
    varsum_inout[...] = varsum_inout + v + (n_0 * n_1 / n) * xp.abs(delta) ** 2
    sum_inout[...] = sum_inout + s


class StdDevUDF(UDF):
    """Mean, variance and standard deviation of every pixel over the frames.

    Parameters
    ----------
    dtype
        Dtype of the statistics (and preferred input dtype); default float64
        (complex128 for complex data).
    use_numba
        Use the compiled kernels on the CPU (real data); otherwise NumPy
        vectorization, which also runs on CuPy.

    Notes
    -----
    Results (all frame-shaped): ``num_frames`` (frames counted per pixel),
    ``sum``, ``varsum`` (sum of squared deviations from the mean), and ``mean``,
    ``var``, ``std`` (population statistics, ``ddof=0``; the variance of complex
    data is the mean of ``abs(x - mean)**2``, as in ``numpy.var``). Pixels without
    frames have NaN statistics.
    """

    def __init__(self, dtype=None, use_numba: bool = True) -> None:
        super().__init__(dtype=dtype, use_numba=use_numba)

    def get_preferred_input_dtype(self):
        return np.float64 if self.params.dtype is None else self.params.dtype

    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_CUPY)

    def get_task_data(self):
        """Whether the numba kernels apply, and the frame counter per signal region."""
        numba_ok = (
            self.params.use_numba
            and self.meta.array_backend == self.BACKEND_NUMPY
            and self.meta.input_dtype.kind == "f"
        )
        # tiling scheme index -> [frames seen, index of the region in a frame]
        return {"use_numba": numba_ok, "regions": {}}

    def get_result_buffers(self):
        dtype = np.result_type(self.meta.input_dtype, np.float64)
        real = np.float64 if dtype.kind != "c" else np.result_type(dtype.type(0).real)
        return {
            "num_frames": self.buffer(kind="sig", dtype=np.int64, where="device"),
            "sum": self.buffer(kind="sig", dtype=dtype, where="device"),
            "varsum": self.buffer(kind="sig", dtype=real, where="device"),
            "mean": self.buffer(kind="sig", dtype=dtype, use="result_only"),
            "var": self.buffer(kind="sig", dtype=real, use="result_only"),
            "std": self.buffer(kind="sig", dtype=real, use="result_only"),
        }

    def process_tile(self, tile):
        """Add the tile's frames to the statistics of its signal region."""
        r = self.results
        regions = self.task_data.regions
        region = regions.get(self.meta.tiling_scheme_idx)
        if region is None:
            region = regions[self.meta.tiling_scheme_idx] = [0, self.meta.sig_slice.get()]
        n_0 = region[0]
        flat_sum, flat_varsum = _flat_view(r.sum), _flat_view(r.varsum)
        if self.task_data.use_numba and flat_sum is not None and flat_varsum is not None:
            process_tile(tile.reshape((tile.shape[0], -1)), n_0, flat_sum, flat_varsum)
        else:
            process_tile_ndarray(tile, n_0, r.sum, r.varsum, forbuf=r.sum)
        region[0] = n_0 + tile.shape[0]

    def postprocess(self):
        """Write the frames counted per signal region into ``num_frames``, pixel by pixel.

        Counting per region instead of per pixel keeps the work per tile small.
        """
        count = self.results.num_frames
        for frames, index in self.task_data.regions.values():
            count[index] = frames

    def merge(self, dest, src):
        src_n = np.asarray(src.num_frames)
        safe = np.where(src_n == 0, 1, src_n)
        args = (
            dest.num_frames,
            dest.sum,
            dest.varsum,
            src_n,
            src.sum,
            src.varsum,
            src.sum / safe,
        )
        counts = _uniform_counts(args[0], src_n)
        contiguous = dest.sum.flags.c_contiguous and dest.varsum.flags.c_contiguous
        if counts is not None and dest.sum.dtype.kind == "f" and contiguous:
            flat = [np.asarray(a).reshape(-1) for a in args[1:3] + args[4:]]
            n = merge(counts[0], flat[0], flat[1], counts[1], flat[2], flat[3], flat[4])
            dest.num_frames[...] = n
        else:
            merge_ndarray(*args, forbuf=dest.sum)

    def merge_all(self, ordered_results):
        """Combine the partitions' statistics in order, pairwise (not in place, so that
        the parts may be Dask arrays)."""
        parts = iter(ordered_results.values())
        first = next(parts)
        n, total, varsum = first.num_frames, first.sum, first.varsum
        for part in parts:
            mean = part.sum / np.where(part.num_frames == 0, 1, part.num_frames)
            n, total, varsum = _combined(
                n, total, varsum, part.num_frames, part.sum, part.varsum, mean, np
            )
        return {"num_frames": n, "sum": total, "varsum": varsum}

    def get_results(self):
        r = self.results
        count = np.asarray(r.num_frames)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(count > 0, r.varsum / count, np.nan)
            mean = np.where(count > 0, r.sum / count, np.nan)
        return {
            "num_frames": count,
            "sum": r.sum,
            "varsum": r.varsum,
            "mean": mean,
            "var": var,
            "std": np.sqrt(var),
        }


def _uniform_counts(dest_n, src_n) -> tuple[int, int] | None:
    """The frame counts as two ints if each is the same for every pixel (as after
    whole partitions), else ``None``."""
    dest_n, src_n = np.asarray(dest_n), np.asarray(src_n)
    if dest_n.size == 0 or dest_n.min() != dest_n.max() or src_n.min() != src_n.max():
        return None
    return int(dest_n.flat[0]), int(src_n.flat[0])


def _flat_view(a):
    """``a`` as a flat view, or ``None`` where its layout does not allow one."""
    try:
        return reshaped_view(a, (-1,))
    except (ValueError, AttributeError):
        return None


def _data(value):
    return np.asarray(getattr(value, "data", value)) if hasattr(value, "kind") else value


def consolidate_result(udf_result) -> dict:
    """StdDevUDF results as plain arrays, with the frame count as one number.

    Computes ``var``, ``std`` and ``mean`` if they are missing (results from before
    they were part of the UDF's results).

    Parameters
    ----------
    udf_result
        Dict with ``'num_frames'``, ``'sum'``, ``'varsum'`` (and possibly ``'var'``,
        ``'std'``, ``'mean'``) as buffers or arrays.

    Returns
    -------
    dict
        ``'sum'``, ``'varsum'``, ``'var'``, ``'std'``, ``'mean'`` as
        :class:`numpy.ndarray`, ``'num_frames'`` as ``int`` (the largest per-pixel count).
    """
    result = {key: np.asarray(_data(value)) for key, value in dict(udf_result).items()}
    counts = result["num_frames"]
    num_frames = int(counts.max()) if counts.size else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if "var" not in result:
            result["var"] = result["varsum"] / counts
        if "std" not in result:
            result["std"] = np.sqrt(result["var"])
        if "mean" not in result:
            result["mean"] = result["sum"] / counts
    result["num_frames"] = num_frames
    return result


def run_stddev(ctx, dataset, roi=None, progress: bool = False, use_numba: bool = True) -> dict:
    """Per-pixel statistics of the (selected) frames of ``dataset``.

    Runs :class:`StdDevUDF` and returns :func:`consolidate_result` of its results.

    Returns
    -------
    dict
        ``'mean'``, ``'var'``, ``'std'``, ``'sum'``, ``'varsum'`` (frame-shaped
        arrays) and ``'num_frames'`` (int).
    """
    udf = StdDevUDF(use_numba=use_numba)
    return consolidate_result(ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress))
