"""The moments of :class:`~libertem.udf.com.CoMUDF` on integer frames, exact and in one pass.

The three moments of a frame (the sum of its selected pixels and the sums weighted by
the row and the column) are dot products of the frame with three masks. When the
frame's values are integers (integer data of up to 32 bits, no corrections) and the
masks hold integers small enough that no partial sum can reach 2**53, every product
and every partial sum is an integer that float64 holds exactly: the moments are exact,
whatever the order of the additions. :data:`moments3` computes them with a compiled
loop that reads each frame once, in its stored dtype (the float32 copy of the tile,
which a BLAS product needs, is not made); its twin is the float64 matrix product.
Other masks or data take the BLAS path of
:class:`~libertem.udf.masks.ApplyMasksEngine`.
"""

from __future__ import annotations

import numpy as np

from libertem.common.lazyjit import KernelWithTwin, lazy_njit
from libertem.common.slice import Slice

#: float64 holds the integers of magnitude below this exactly
EXACT_LIMIT = 2.0**53
#: tile dtypes of the exact moments
INTEGER_TILE_DTYPES = frozenset(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32")
)


@lazy_njit(nogil=True, fastmath=True, cache=True)
def _moments3(flat, masks, out):
    m0 = masks[0]
    m1 = masks[1]
    m2 = masks[2]
    n = flat.shape[0]
    n_pixels = flat.shape[1]
    f = 0
    # four frames at a time: each mask value loaded once for four frames
    while f + 4 <= n:
        r0 = flat[f]
        r1 = flat[f + 1]
        r2 = flat[f + 2]
        r3 = flat[f + 3]
        a00 = a01 = a02 = a10 = a11 = a12 = 0.0
        a20 = a21 = a22 = a30 = a31 = a32 = 0.0
        for p in range(n_pixels):
            x0 = m0[p]
            x1 = m1[p]
            x2 = m2[p]
            v = np.float64(r0[p])
            a00 += v * x0
            a01 += v * x1
            a02 += v * x2
            v = np.float64(r1[p])
            a10 += v * x0
            a11 += v * x1
            a12 += v * x2
            v = np.float64(r2[p])
            a20 += v * x0
            a21 += v * x1
            a22 += v * x2
            v = np.float64(r3[p])
            a30 += v * x0
            a31 += v * x1
            a32 += v * x2
        out[f, 0], out[f, 1], out[f, 2] = a00, a01, a02
        out[f + 1, 0], out[f + 1, 1], out[f + 1, 2] = a10, a11, a12
        out[f + 2, 0], out[f + 2, 1], out[f + 2, 2] = a20, a21, a22
        out[f + 3, 0], out[f + 3, 1], out[f + 3, 2] = a30, a31, a32
        f += 4
    while f < n:
        row = flat[f]
        a0 = a1 = a2 = 0.0
        for p in range(n_pixels):
            v = np.float64(row[p])
            a0 += v * m0[p]
            a1 += v * m1[p]
            a2 += v * m2[p]
        out[f, 0], out[f, 1], out[f, 2] = a0, a1, a2
        f += 1


def _moments3_twin(flat, masks, out):
    """``out = flat @ masks.T`` in float64, for integer ``flat`` ``(frames, pixels)`` and
    three integer-valued float64 ``masks`` ``(3, pixels)`` that keep every partial sum
    below 2**53 (see :class:`ExactMoments`): exact, so any order of additions agrees."""
    np.matmul(flat.astype(np.float64), masks.T, out=out)


moments3 = KernelWithTwin(_moments3, _moments3_twin)


class ExactMoments:
    """The exact three moments of integer tiles, per signal region of the tiling scheme.

    Parameters
    ----------
    masks
        The :class:`~libertem.common.container.MaskContainer` of the three masks.
    """

    def __init__(self, masks):
        self._container = masks
        # (signal origin, shape, tile dtype) -> (3, pixels) float64 masks, or None
        self._regions: dict[tuple, np.ndarray | None] = {}

    def _masks_for(self, key: Slice, dtype: np.dtype) -> np.ndarray | None:
        nav_dims = key.shape.nav_dims
        region = (tuple(key.origin[nav_dims:]), tuple(key.shape[nav_dims:]), dtype)
        try:
            return self._regions[region]
        except KeyError:
            pass
        masks = self._container.get(key, transpose=False)
        result = None
        if isinstance(masks, np.ndarray) and masks.shape[0] == 3 and masks.dtype.kind in "biuf":
            masks = np.ascontiguousarray(masks, dtype=np.float64)
            info = np.iinfo(dtype)
            largest = float(max(abs(int(info.min)), int(info.max)))
            bound = largest * float(np.abs(masks).sum(axis=1).max(initial=0.0))
            if np.all(np.isfinite(masks)) and np.all(masks == np.round(masks)):
                if bound < EXACT_LIMIT:
                    result = masks
        self._regions[region] = result
        return result

    def moments(self, tile, key: Slice) -> np.ndarray | None:
        """The ``(frames, 3)`` float64 moments of ``tile`` (its signal region ``key``), or
        ``None`` where they cannot be computed exactly (then use the BLAS path)."""
        if not isinstance(tile, np.ndarray) or tile.dtype not in INTEGER_TILE_DTYPES:
            return None
        masks = self._masks_for(key, tile.dtype)
        if masks is None or tile.ndim < 2:
            return None
        flat = tile.reshape((tile.shape[0], -1))
        out = np.empty((flat.shape[0], 3), dtype=np.float64)
        moments3(flat, masks, out)
        return out


__all__ = ["EXACT_LIMIT", "ExactMoments", "INTEGER_TILE_DTYPES", "moments3"]
