"""Masks that depend on the distance from a center: radius maps, radial gradients and
radial bins (:mod:`libertem.masks` offers them with the other mask factories).

``X`` is the column (last axis) and ``Y`` the row; the center of pixel ``(y, x)`` lies
at the integer coordinates ``(x, y)``. Results are shaped ``(imageSizeY, imageSizeX)``.
"""

from __future__ import annotations

import numpy as np

from libertem.common.lazy import LazyModule

# pydata.sparse (which imports numba) and scipy.sparse: imported when sparse masks
# or data come along
sparse = LazyModule("sparse")


def squared_radius_map(
    centerX: float, centerY: float, imageSizeX: int, imageSizeY: int
) -> np.ndarray:
    """Squared distance of each pixel center from ``(centerX, centerY)``."""
    y, x = np.ogrid[0:imageSizeY, 0:imageSizeX]
    return (x - centerX) ** 2 + (y - centerY) ** 2


def radius_map(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> np.ndarray:
    """Distance of each pixel center from ``(centerX, centerY)``."""
    return np.sqrt(squared_radius_map(centerX, centerY, imageSizeX, imageSizeY))


def radial_gradient(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk whose value rises linearly from 0 at the center to 1 at ``radius``.

    Parameters
    ----------
    centerX, centerY
        Center of the disk (column, row).
    imageSizeX, imageSizeY
        Width and height of the image.
    radius
        Radius of the disk, must be positive.
    antialiased
        Let the values fall linearly to 0 within half a pixel on either side of
        ``radius`` (:func:`radial_gradient_background_subtraction` without a
        negative ring).

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(imageSizeY, imageSizeX)`` with ``r / radius``
        inside the disk and 0 outside.
    """
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    r = radius_map(centerX, centerY, imageSizeX, imageSizeY)
    if antialiased:
        return radial_gradient_background_subtraction(r, r0=radius, r_outer=0)
    return np.where(r <= radius, r / radius, 0.0)


def radial_gradient_background_subtraction(r, r0: float, r_outer: float, delta: float = 1):
    """A template over a map of radii: gradient inside, ramp, negative ring outside.

    For each element of ``r``: ``r / r0`` for ``r < r0 - delta/2``; a linear ramp
    ``(r0 - r) / (delta/2)`` from 1 down to -1 for ``r0 - delta/2 <= r < r0 +
    delta/2``; -1 for ``r0 + delta/2 <= r <= r_outer``; 0 beyond.

    Parameters
    ----------
    r
        Radius of each pixel, e.g. the first map of :func:`polar_map` (which can
        describe distorted, elliptical coordinates).
    r0
        Radius of the gradient disk.
    r_outer
        Outer radius of the negative ring; at most ``r0 + delta/2`` for none.
    delta
        Width of the transition.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``r`` (float64 for integer input).
    """
    r = np.asarray(r)
    if r.dtype.kind not in "fc":
        r = r.astype(np.float64)
    half = delta / 2
    result = np.zeros_like(r)
    inner = r < r0 - half
    result[inner] = r[inner] / r0
    ramp = (r >= r0 - half) & (r < r0 + half)
    result[ramp] = (r0 - r[ramp]) / half
    result[(r >= r0 + half) & (r <= r_outer)] = -1
    return result


def bounding_radius(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> int:
    """A radius around ``(centerX, centerY)`` whose disk covers the whole frame.

    Returns
    -------
    int
        ``ceil`` of the distance to the farthest frame corner, plus one.
    """
    dy = max(centerY, imageSizeY - centerY)
    dx = max(centerX, imageSizeX - centerX)
    return int(np.ceil(np.sqrt(dy**2 + dx**2))) + 1


def radial_bins(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float | None = None,
    radius_inner: float = 0,
    n_bins: int | None = None,
    normalize: bool = False,
    use_sparse: bool | None = None,
    dtype=None,
):
    """A stack of antialiased, adjacent rings between ``radius_inner`` and ``radius``.

    Bin ``i`` has width ``w = (radius - radius_inner) / n_bins`` and its middle at
    ``m_i = radius_inner + (i + 1/2) w``. A pixel at distance ``d`` gets the weight
    ``clip(w/2 + 1/2 - |d - m_i|, 0, 1)``: full weight within the bin, a ramp of
    one pixel at the edges, so that neighbouring bins add up to exactly one. When
    the inner radius is below half a pixel, the pixel nearest to the center gets
    ``1 - radius_inner`` in the first bin.

    Parameters
    ----------
    centerX, centerY
        Center (column, row).
    imageSizeX, imageSizeY
        Width and height of the masks.
    radius
        Outer radius; default :func:`bounding_radius`, covering the whole frame.
    radius_inner
        Inner radius.
    n_bins
        Number of rings; default: about one pixel per ring.
    normalize
        Scale each ring to sum to one.
    use_sparse
        Return a ``sparse.COO`` stack; default: if one ring covers less than a
        tenth of the frame.
    dtype
        dtype of the result (default float64).

    Returns
    -------
    numpy.ndarray or sparse.COO
        Stack of shape ``(n_bins, imageSizeY, imageSizeX)``.
    """
    if radius is None:
        radius = bounding_radius(centerX, centerY, imageSizeX, imageSizeY)
    if n_bins is None:
        n_bins = max(1, int(np.round(radius - radius_inner)))
    if radius < radius_inner:
        raise ValueError(f"radius={radius} is smaller than radius_inner={radius_inner}")
    dtype = np.dtype(np.float64 if dtype is None else dtype)
    width = (radius - radius_inner) / n_bins
    if use_sparse is None:
        bin_area = np.pi * (radius**2 - (radius - width) ** 2)
        use_sparse = bin_area / (imageSizeX * imageSizeY) < 0.1
    r = radius_map(centerX, centerY, imageSizeX, imageSizeY).reshape(-1)
    middles = radius_inner + (np.arange(n_bins) + 0.5) * width
    center_pixel = None
    if radius_inner < 0.5:
        yy, xx = int(np.round(centerY)), int(np.round(centerX))
        if 0 <= yy < imageSizeY and 0 <= xx < imageSizeX:
            center_pixel = yy * imageSizeX + xx
    # built ring by ring, so that a sparse stack never exists densely
    rings = []
    for i, middle in enumerate(middles):
        values = np.clip(width / 2 + 0.5 - np.abs(r - middle), 0.0, 1.0)
        if i == 0 and center_pixel is not None:
            values[center_pixel] = 1 - radius_inner
        if normalize:
            total = values.sum()
            if not np.isclose(total, 0):
                values = values / total
        if use_sparse:
            (where,) = np.nonzero(values)
            rings.append((where, values[where].astype(dtype)))
        else:
            rings.append(values.astype(dtype).reshape((imageSizeY, imageSizeX)))
    if not use_sparse:
        return np.stack(rings)
    coords = np.concatenate(
        [
            np.stack([np.full(len(w), i), w // imageSizeX, w % imageSizeX])
            for i, (w, _) in enumerate(rings)
        ],
        axis=1,
    )
    data = np.concatenate([v for _, v in rings])
    return sparse.COO(
        coords, data, shape=(n_bins, imageSizeY, imageSizeX), sorted=True, has_duplicates=False
    )


__all__ = [
    "bounding_radius",
    "radial_bins",
    "radial_gradient",
    "radial_gradient_background_subtraction",
    "radius_map",
    "squared_radius_map",
]
