"""Factories for masks in signal space, and helpers to convert between mask types.

All functions follow the convention that ``X`` is the column (last axis) and ``Y``
the row of an image, and that the center of pixel ``(y, x)`` lies at the integer
coordinates ``(x, y)``. Results are shaped ``(imageSizeY, imageSizeX)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
import sparse

__all__ = [
    "circular",
    "ring",
    "radial_gradient",
    "gradient_x",
    "gradient_y",
    "sparse_template_multi_stack",
    "to_dense",
    "to_sparse",
]

# Number of sub-samples per axis and pixel for antialiased edges.
_SUPERSAMPLE = 8


def _radius_map(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> np.ndarray:
    """Distance of each pixel center from ``(centerX, centerY)``."""
    y, x = np.ogrid[0:imageSizeY, 0:imageSizeX]
    return np.sqrt((x - centerX) ** 2 + (y - centerY) ** 2)


def _disk(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool,
) -> np.ndarray:
    """Coverage of each pixel by a disk, as a float64 image."""
    r = _radius_map(centerX, centerY, imageSizeX, imageSizeY)
    result = (r <= radius).astype(np.float64)
    if not antialiased:
        return result
    # Only pixels whose square can intersect the circle line get fractional values:
    # the corners of a unit pixel lie sqrt(1/2) from its center.
    ey, ex = np.nonzero(np.abs(r - radius) < np.sqrt(0.5) + 1e-9)
    offsets = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    sub_y = ey[:, None, None] + offsets[None, :, None] - centerY
    sub_x = ex[:, None, None] + offsets[None, None, :] - centerX
    covered = sub_x**2 + sub_y**2 <= radius**2
    result[ey, ex] = covered.mean(axis=(1, 2))
    return result


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
        If True, pixels on the edge get their fractional coverage by the disk,
        estimated by supersampling each edge pixel.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(imageSizeY, imageSizeX)``: 1 where the distance of
        the pixel center from the center is ``<= radius``, 0 elsewhere.
    """
    return _disk(centerX, centerY, imageSizeX, imageSizeY, radius, antialiased)


def ring(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """An annulus: a disk of ``radius`` minus a disk of ``radius_inner``.

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
        Fractional coverage at both edges, see `circular`.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(imageSizeY, imageSizeX)``, 1 where
        ``radius_inner < r <= radius``.

    Raises
    ------
    ValueError
        If ``radius_inner > radius``.
    """
    if radius_inner > radius:
        raise ValueError(f"radius_inner={radius_inner} must not exceed radius={radius}")
    outer = _disk(centerX, centerY, imageSizeX, imageSizeY, radius, antialiased)
    inner = _disk(centerX, centerY, imageSizeX, imageSizeY, radius_inner, antialiased)
    return outer - inner


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
        Scale edge pixels by their coverage, see `circular`.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(imageSizeY, imageSizeX)`` with ``r / radius`` inside
        the disk and 0 outside.
    """
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    r = _radius_map(centerX, centerY, imageSizeX, imageSizeY)
    return r / radius * _disk(centerX, centerY, imageSizeX, imageSizeY, radius, antialiased)


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


def sparse_template_multi_stack(
    mask_index: Sequence[int],
    offsetX: Sequence[int],
    offsetY: Sequence[int],
    template,
    imageSizeX: int,
    imageSizeY: int,
) -> sparse.COO:
    """A stack of copies of ``template`` placed at different positions.

    Mask ``mask_index[i]`` holds ``template`` with its top-left corner at
    ``(offsetY[i], offsetX[i])``. Parts that fall outside the image are clipped,
    so offsets may be negative or run past the border. Built without Python loops.

    Parameters
    ----------
    mask_index
        Position of each placement in the stack; values in ``[0, len(mask_index))``.
        Usually ``range(n)``. Placements sharing an index are summed.
    offsetX, offsetY
        Column and row of the top-left corner of each placement, same length as
        ``mask_index``.
    template
        2D template (dense or sparse). Only its nonzero entries are stored.
    imageSizeX, imageSizeY
        Width and height of each mask.

    Returns
    -------
    sparse.COO
        Stack of shape ``(len(mask_index), imageSizeY, imageSizeX)`` with the dtype
        of ``template``.
    """
    index = np.asarray(mask_index, dtype=np.intp).reshape(-1)
    offsetX = np.asarray(offsetX, dtype=np.intp).reshape(-1)
    offsetY = np.asarray(offsetY, dtype=np.intp).reshape(-1)
    n = len(index)
    if len(offsetX) != n or len(offsetY) != n:
        raise ValueError(
            f"mask_index, offsetX and offsetY differ in length: {n}, {len(offsetX)}, "
            f"{len(offsetY)}"
        )
    if n and (index.min() < 0 or index.max() >= n):
        raise ValueError(f"mask_index values must lie in [0, {n})")
    template = to_dense(template)
    if template.ndim != 2:
        raise ValueError(f"template must be 2D, got shape {template.shape}")
    ty, tx = np.nonzero(template)
    values = template[ty, tx]
    # One row per placement, one column per nonzero template pixel.
    ys = offsetY[:, np.newaxis] + ty[np.newaxis, :]
    xs = offsetX[:, np.newaxis] + tx[np.newaxis, :]
    inside = (ys >= 0) & (ys < imageSizeY) & (xs >= 0) & (xs < imageSizeX)
    masks = np.broadcast_to(index[:, np.newaxis], ys.shape)[inside]
    data = np.broadcast_to(values[np.newaxis, :], ys.shape)[inside]
    coords = np.stack([masks, ys[inside], xs[inside]])
    # np.nonzero is row-major, so the coordinates are already sorted and unique
    # when the mask indices are strictly increasing.
    ordered = bool(np.all(np.diff(index) > 0))
    return sparse.COO(
        coords,
        data,
        shape=(n, imageSizeY, imageSizeX),
        sorted=ordered,
        has_duplicates=not ordered,
    )


def to_dense(a) -> np.ndarray:
    """Convert a dense or sparse array to a `numpy.ndarray`.

    Parameters
    ----------
    a
        A `numpy.ndarray`, `sparse.SparseArray` (e.g. `sparse.COO`), a
        `scipy.sparse` matrix or array, or anything `numpy.asarray` accepts.

    Returns
    -------
    numpy.ndarray
    """
    if isinstance(a, sparse.SparseArray):
        return a.todense()
    if scipy.sparse.issparse(a):
        return a.toarray()
    return np.asarray(a)


def to_sparse(a) -> sparse.COO:
    """Convert a dense or sparse array to a `sparse.COO`.

    Parameters
    ----------
    a
        A `sparse.COO`, another `sparse.SparseArray`, a `scipy.sparse` matrix or
        array, or anything `numpy.asarray` accepts.

    Returns
    -------
    sparse.COO
    """
    if isinstance(a, sparse.COO):
        return a
    if isinstance(a, sparse.SparseArray):
        return sparse.COO(a)
    if scipy.sparse.issparse(a):
        return sparse.COO.from_scipy_sparse(a)
    return sparse.COO.from_numpy(np.asarray(a))
