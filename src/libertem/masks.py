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

from libertem.utils import make_polar
from libertem.utils.radial_masks import (
    bounding_radius,
    radial_bins,
    radial_gradient,
    radial_gradient_background_subtraction,
    squared_radius_map,
)
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
    return squared_radius_map(centerX, centerY, imageSizeX, imageSizeY) <= radius * radius


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
    r2 = squared_radius_map(centerX, centerY, imageSizeX, imageSizeY)
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
