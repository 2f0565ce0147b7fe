"""Factories for masks in signal space, and helpers to convert between mask types.

All functions follow the convention that ``X`` is the column (last axis) and ``Y``
the row of an image, and that the center of pixel ``(y, x)`` lies at the integer
coordinates ``(x, y)``. Results are shaped ``(imageSizeY, imageSizeX)``.

Plain masks (:func:`circular`, :func:`ring`, :func:`rectangular`) are boolean
arrays; their antialiased variants and the weighted masks are float64. Antialiased
edges ramp linearly over one pixel of distance, the same ramp that makes adjacent
:func:`radial_bins` sum to one.
"""

from __future__ import annotations

import numpy as np
import sparse

from libertem.utils import make_polar
from libertem.utils.sparse_masks import (
    is_sparse,
    sparse_circular_multi_stack,
    sparse_template_multi_stack,
    to_dense,
    to_sparse,
)

__all__ = [
    "circular",
    "ring",
    "rectangular",
    "radial_gradient",
    "radial_gradient_background_subtraction",
    "background_subtraction",
    "radial_bins",
    "polar_map",
    "balance",
    "bounding_radius",
    "gradient_x",
    "gradient_y",
    "sparse_template_multi_stack",
    "sparse_circular_multi_stack",
    "is_sparse",
    "make_polar",
    "to_dense",
    "to_sparse",
]


def _squared_radius_map(
    centerX: float, centerY: float, imageSizeX: int, imageSizeY: int
) -> np.ndarray:
    """Squared distance of each pixel center from ``(centerX, centerY)``."""
    y, x = np.ogrid[0:imageSizeY, 0:imageSizeX]
    return (x - centerX) ** 2 + (y - centerY) ** 2


def _radius_map(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> np.ndarray:
    """Distance of each pixel center from ``(centerX, centerY)``."""
    return np.sqrt(_squared_radius_map(centerX, centerY, imageSizeX, imageSizeY))


def circular(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A filled disk.

    Parameters
    ----------
    centerX, centerY
        Center of the disk (column, row).
    imageSizeX, imageSizeY
        Width and height of the image.
    radius
        Radius of the disk in pixels.
    antialiased
        If True, pixels near the edge get values between 0 and 1 that fall
        linearly with the distance (the single bin of :func:`radial_bins`).

    Returns
    -------
    numpy.ndarray
        Shape ``(imageSizeY, imageSizeX)``. Boolean, True where the distance of the
        pixel center from the center is ``<= radius``; float64 if antialiased.
    """
    if antialiased:
        return radial_bins(
            centerX, centerY, imageSizeX, imageSizeY, radius=radius, n_bins=1, use_sparse=False
        )[0]
    # squared distances: the boundary does not depend on the rounding of a square root
    return _squared_radius_map(centerX, centerY, imageSizeX, imageSizeY) <= radius * radius


# LiberTEM's private name of circular, imported by code written for LiberTEM
_make_circular_mask = circular


def ring(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """An annulus: a disk of ``radius`` without the disk of ``radius_inner``.

    Parameters
    ----------
    centerX, centerY
        Center of the ring (column, row).
    imageSizeX, imageSizeY
        Width and height of the image.
    radius
        Outer radius.
    radius_inner
        Inner radius, at most ``radius``.
    antialiased
        Linear ramps at both edges (one bin of :func:`radial_bins`).

    Returns
    -------
    numpy.ndarray
        Shape ``(imageSizeY, imageSizeX)``. Boolean, True where
        ``radius_inner < r <= radius``; float64 if antialiased.

    Raises
    ------
    ValueError
        If ``radius_inner > radius``.
    """
    if radius_inner > radius:
        raise ValueError(f"radius_inner={radius_inner} must not exceed radius={radius}")
    if antialiased:
        return radial_bins(
            centerX,
            centerY,
            imageSizeX,
            imageSizeY,
            radius=radius,
            radius_inner=radius_inner,
            n_bins=1,
            use_sparse=False,
        )[0]
    r2 = _squared_radius_map(centerX, centerY, imageSizeX, imageSizeY)
    return (r2 <= radius * radius) & ~(r2 <= radius_inner * radius_inner)


def rectangular(X, Y, Width, Height, imageSizeX: int, imageSizeY: int) -> np.ndarray:
    """A filled rectangle with one corner at column ``X``, row ``Y``.

    Parameters
    ----------
    X, Y
        Corner of the rectangle (column, row).
    Width, Height
        Extent in pixels; negative values extend the rectangle to the left / upwards
        from the corner. Both end columns ``int(min(X, X + Width))`` and
        ``int(max(X, X + Width))`` are included (``|Width| + 1`` columns for whole
        numbers), likewise for the rows; the result is clipped to the image. If
        ``Width`` or ``Height`` is 0, the mask is empty.
    imageSizeX, imageSizeY
        Width and height of the image.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``(imageSizeY, imageSizeX)``.
    """
    mask = np.zeros((imageSizeY, imageSizeX), dtype=bool)
    if Width * Height == 0:
        return mask
    x0, x1 = int(min(X, X + Width)), int(max(X, X + Width))
    y0, y1 = int(min(Y, Y + Height)), int(max(Y, Y + Height))
    mask[max(0, y0) : max(0, y1 + 1), max(0, x0) : max(0, x1 + 1)] = True
    return mask


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
    r = _radius_map(centerX, centerY, imageSizeX, imageSizeY)
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


def background_subtraction(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk of ``radius_inner`` minus the surrounding ring, scaled to sum to zero.

    Applied to a frame, the result is the intensity within the disk minus the
    background estimated from the ring ``radius_inner < r <= radius``, scaled to
    the disk's area.

    Parameters
    ----------
    centerX, centerY
        Center (column, row).
    imageSizeX, imageSizeY
        Width and height of the image.
    radius
        Outer radius of the background ring.
    radius_inner
        Radius of the disk.
    antialiased
        Antialiased disk and ring.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(imageSizeY, imageSizeX)``.
    """
    disk = circular(centerX, centerY, imageSizeX, imageSizeY, radius_inner, antialiased)
    background = ring(centerX, centerY, imageSizeX, imageSizeY, radius, radius_inner, antialiased)
    disk = disk.astype(np.float64)
    background = background.astype(np.float64)
    return disk - background * (disk.sum() / background.sum())


def polar_map(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    stretchY: float = 1.0,
    angle: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle of every pixel around a center.

    Parameters
    ----------
    centerX, centerY
        Center (column, row).
    imageSizeX, imageSizeY
        Width and height of the maps.
    stretchY, angle
        Elliptical distortion: the coordinates are rotated by ``angle`` radians and
        the y component is divided by ``stretchY``, so that an ellipse stretched by
        ``stretchY`` along the direction ``angle`` (0: the y axis) maps to a circle.

    Returns
    -------
    tuple of numpy.ndarray
        Radius and angle (``arctan2(dy, dx)``), each of shape
        ``(imageSizeY, imageSizeX)``.
    """
    y, x = np.mgrid[0:imageSizeY, 0:imageSizeX]
    dy = y - centerY
    dx = x - centerX
    if stretchY != 1.0 or angle != 0.0:
        c, s = np.cos(angle), np.sin(angle)
        dy, dx = (dy * c - dx * s) / stretchY, dx * c + dy * s
    polar = make_polar(np.stack([dy, dx], axis=-1))
    return polar[..., 0], polar[..., 1]


def balance(template: np.ndarray) -> np.ndarray:
    """Scale the negative part of a template so that the template sums to zero.

    Such a mask gives zero on a uniform background.

    Parameters
    ----------
    template
        Array with positive and negative values.

    Returns
    -------
    numpy.ndarray
        A copy with the negative values multiplied by
        ``sum(positive) / -sum(negative)``.
    """
    result = np.array(template, dtype=np.result_type(template, np.float64), copy=True)
    positive = result[result > 0].sum()
    negative = result[result < 0].sum()
    if negative == 0:
        raise ValueError("template has no negative values to balance")
    result[result < 0] *= positive / -negative
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
    r = _radius_map(centerX, centerY, imageSizeX, imageSizeY).reshape(-1)
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


def gradient_x(imageSizeX: int, imageSizeY: int, dtype=np.float32) -> np.ndarray:
    """An image whose value is the x (column) coordinate of each pixel.

    Parameters
    ----------
    imageSizeX, imageSizeY
        Width and height of the image.
    dtype
        dtype of the result.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(imageSizeY, imageSizeX)``.
    """
    row = np.arange(imageSizeX, dtype=dtype)
    return np.broadcast_to(row[np.newaxis, :], (imageSizeY, imageSizeX)).copy()


def gradient_y(imageSizeX: int, imageSizeY: int, dtype=np.float32) -> np.ndarray:
    """An image whose value is the y (row) coordinate of each pixel.

    Parameters
    ----------
    imageSizeX, imageSizeY
        Width and height of the image.
    dtype
        dtype of the result.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(imageSizeY, imageSizeX)``.
    """
    col = np.arange(imageSizeY, dtype=dtype)
    return np.broadcast_to(col[:, np.newaxis], (imageSizeY, imageSizeX)).copy()
