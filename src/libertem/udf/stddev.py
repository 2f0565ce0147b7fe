"""Per-pixel mean, variance and standard deviation over all frames."""

from __future__ import annotations

import numpy as np

from libertem.udf.base import UDF


def merge_moments(n_a, mean_a, varsum_a, n_b, mean_b, varsum_b, xp=np):
    """Combine counts, means and sums of squared deviations of two groups (Chan et al.).

    Arrays may be broadcast against each other; returns ``(n, mean, varsum)``.
    ``xp`` is the array module of the arrays (``numpy`` or ``cupy``).
    """
    n = n_a + n_b
    safe_n = xp.where(n == 0, 1, n)
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / safe_n)
    varsum = varsum_a + varsum_b + xp.abs(delta) ** 2 * (n_a * n_b / safe_n)
    return n, mean, varsum


class StdDevUDF(UDF):
    """Mean, variance and standard deviation of every pixel over the frames.

    Results: ``'mean'``, ``'var'``, ``'std'`` (frame-shaped, population statistics,
    ``ddof=0``), ``'sum'`` and ``'num_frames'``. Partial results combine with a
    numerically stable pairwise update, computed in float64 (complex128 for complex
    data, whose variance is the mean of ``abs(x - mean)**2``, as in ``numpy.var``).
    """

    def get_preferred_input_dtype(self):
        return np.float64

    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_CUPY)

    def get_result_buffers(self):
        value_dtype = self.meta.input_dtype
        return {
            "pixel_count": self.buffer(kind="sig", dtype=np.int64, use="private", where="device"),
            "sum": self.buffer(kind="sig", dtype=value_dtype, where="device"),
            "varsum": self.buffer(kind="sig", dtype=np.float64, use="private", where="device"),
            "num_frames": self.buffer(kind="single", dtype=np.int64, use="result_only"),
            "mean": self.buffer(kind="sig", dtype=value_dtype, use="result_only"),
            "var": self.buffer(kind="sig", dtype=np.float64, use="result_only"),
            "std": self.buffer(kind="sig", dtype=np.float64, use="result_only"),
        }

    def process_tile(self, tile):
        """Combine the tile's count, mean and squared deviations with those so far."""
        xp = self.xp
        n_b = tile.shape[0]
        mean_b = xp.sum(tile, axis=0) / n_b
        varsum_b = xp.sum(xp.abs(tile - mean_b) ** 2, axis=0)
        self._combine(self.results, n_b, mean_b * n_b, varsum_b, xp)

    def merge(self, dest, src):
        self._combine(dest, src.pixel_count, src.sum, src.varsum, np)

    @staticmethod
    def _combine(dest, n_b, sum_b, varsum_b, xp):
        n_a = dest.pixel_count
        mean_a = dest.sum / xp.where(n_a == 0, 1, n_a)
        mean_b = sum_b / xp.where(xp.asarray(n_b) == 0, 1, n_b)
        n, _, varsum = merge_moments(n_a, mean_a, dest.varsum, n_b, mean_b, varsum_b, xp)
        dest.pixel_count[:] = n
        dest.sum[:] += sum_b
        dest.varsum[:] = varsum

    def get_results(self):
        r = self.results
        count = r.pixel_count
        safe = np.where(count == 0, 1, count)
        var = r.varsum / safe
        return {
            "sum": r.sum,
            "num_frames": np.array([count.max() if count.size else 0]),
            "mean": r.sum / safe,
            "var": var,
            "std": np.sqrt(var),
        }
