"""Small geometry helpers: rotations, polar coordinates and lattice peak positions.

Vectors are ``(y, x)`` pairs in pixel coordinates: ``y`` points down, ``x`` to the
right. An angle ``phi`` is measured from the x axis towards the y axis, which is
clockwise on screen, as in :func:`numpy.arctan2` ``(y, x)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "calc_coords",
    "frame_peaks",
    "make_cartesian",
    "make_polar",
    "regularize_indices",
    "rotate_deg",
    "rotate_precalc",
    "rotate_rad",
    "within_frame",
]


def make_cartesian(polar: np.ndarray) -> np.ndarray:
    """Polar vectors ``(r, phi)`` to cartesian ``(y, x)``.

    Parameters
    ----------
    polar
        Array of shape ``(..., 2)`` holding radius and angle (radians).

    Returns
    -------
    numpy.ndarray
        Array of shape ``(..., 2)`` holding ``(r sin(phi), r cos(phi))``.
    """
    polar = np.asarray(polar)
    r, phi = polar[..., 0], polar[..., 1]
    return np.stack([r * np.sin(phi), r * np.cos(phi)], axis=-1)


def make_polar(cartesian: np.ndarray) -> np.ndarray:
    """Cartesian vectors ``(y, x)`` to polar ``(r, phi)``.

    Parameters
    ----------
    cartesian
        Array of shape ``(..., 2)`` holding ``(y, x)``.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(..., 2)`` with the length and ``arctan2(y, x)``.
    """
    cartesian = np.asarray(cartesian)
    y, x = cartesian[..., 0], cartesian[..., 1]
    return np.stack([np.hypot(y, x), np.arctan2(y, x)], axis=-1)


def rotate_precalc(y, x, cos_angle, sin_angle) -> tuple:
    """Rotate ``(y, x)`` by the angle whose cosine and sine are given.

    The rotation turns the x axis towards the y axis (clockwise on screen), so
    that the polar angle of the vector grows by the angle.

    Parameters
    ----------
    y, x
        Components (scalars or broadcastable arrays).
    cos_angle, sin_angle
        Cosine and sine of the angle, for rotating many vectors by one angle.

    Returns
    -------
    tuple
        The rotated ``(y, x)``.
    """
    return (y * cos_angle + x * sin_angle, x * cos_angle - y * sin_angle)


def rotate_rad(y, x, radians) -> tuple:
    """Rotate ``(y, x)`` by ``radians``; see :func:`rotate_precalc`."""
    return rotate_precalc(y, x, np.cos(radians), np.sin(radians))


def rotate_deg(y, x, degrees) -> tuple:
    """Rotate ``(y, x)`` by ``degrees``; see :func:`rotate_precalc`."""
    return rotate_rad(y, x, np.deg2rad(degrees))


def regularize_indices(indices: np.ndarray) -> np.ndarray:
    """Lattice indices as an ``(n, 2)`` array.

    Parameters
    ----------
    indices
        Either a list of ``(i, j)`` pairs, shape ``(n, 2)``, or the output of
        ``numpy.mgrid[...]`` for two axes, shape ``(2, m, k)``, which is listed
        column by column (the second grid axis varies slowest).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 2)``.

    Raises
    ------
    ValueError
        For any other shape.
    """
    indices = np.asarray(indices)
    if indices.ndim == 3 and indices.shape[0] == 2:
        # column by column of the grid, the order LiberTEM has always used
        return np.stack([indices[0].T.ravel(), indices[1].T.ravel()], axis=1)
    if indices.ndim == 2 and indices.shape[1] == 2:
        return indices
    raise ValueError(f"indices have shape {indices.shape}, expected (n, 2) or (2, n, m)")


def calc_coords(zero, a, b, indices) -> np.ndarray:
    """Positions ``zero + i * a + j * b`` of lattice points with indices ``(i, j)``.

    Parameters
    ----------
    zero
        Position of the origin ``(y, x)``.
    a, b
        Lattice vectors ``(y, x)``.
    indices
        Array of shape ``(..., 2)`` of ``(i, j)`` pairs.

    Returns
    -------
    numpy.ndarray
        Positions, shape ``(..., 2)``.
    """
    basis = np.array((a, b))
    return np.asarray(zero) + np.dot(indices, basis)


def within_frame(peaks, r, fy, fx) -> np.ndarray:
    """Which peaks lie at least ``r`` from the border of an ``(fy, fx)`` frame.

    Parameters
    ----------
    peaks
        Positions ``(y, x)``, shape ``(n, 2)``.
    r
        Margin to the border.
    fy, fx
        Frame height and width.

    Returns
    -------
    numpy.ndarray
        Boolean, shape ``(n,)``: ``r <= y < fy - r`` and ``r <= x < fx - r``.
    """
    peaks = np.asarray(peaks)
    low = peaks >= (r, r)
    high = peaks < (fy - r, fx - r)
    return np.all(low & high, axis=-1)


def frame_peaks(fy, fx, zero, a, b, r, indices) -> tuple[np.ndarray, np.ndarray]:
    """Lattice points that lie within an ``(fy, fx)`` frame with margin ``r``.

    Parameters
    ----------
    fy, fx
        Frame height and width.
    zero, a, b
        Origin and lattice vectors, see :func:`calc_coords`.
    r
        Margin to the border, see :func:`within_frame`.
    indices
        Lattice indices, see :func:`regularize_indices`.

    Returns
    -------
    tuple of numpy.ndarray
        The indices ``(n, 2)`` and positions ``(n, 2)`` of the points inside.
    """
    indices = regularize_indices(indices)
    peaks = calc_coords(zero, a, b, indices)
    inside = within_frame(peaks, r, fy, fx)
    return indices[inside], peaks[inside]
