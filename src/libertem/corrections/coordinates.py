"""2x2 matrices that transform ``(y, x)`` coordinates between scan and detector systems.

Coordinates are pixel coordinates: ``y`` points down, ``x`` to the right, and a
positive angle turns clockwise on screen. A matrix ``m`` maps a column vector:
``m @ (y, x)``; products combine right to left, so ``rotate_deg(30) @ flip_y()``
first mirrors ``y``, then rotates. That is how
:func:`libertem.udf.com.apply_correction` maps detector shifts to scan
coordinates. For the rotations and flips here, the row form ``(y, x) @ m``
applies the inverse transformation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["flip_x", "flip_y", "identity", "rotate", "rotate_deg", "scale"]


def identity() -> np.ndarray:
    """The transformation that changes nothing.

    Returns
    -------
    numpy.ndarray
        The 2x2 identity matrix.
    """
    return np.eye(2)


def rotate(radians: float) -> np.ndarray:
    """Rotation by an angle in radians, clockwise on screen for ``matrix @ (y, x)``.

    Parameters
    ----------
    radians
        The angle.

    Returns
    -------
    numpy.ndarray
        ``[[cos, sin], [-sin, cos]]``: ``(y, x)`` becomes
        ``(y cos + x sin, x cos - y sin)``.
    """
    c, s = np.cos(radians), np.sin(radians)
    return np.array([[c, s], [-s, c]])


def rotate_deg(degrees: float) -> np.ndarray:
    """Rotation by an angle in degrees, see :func:`rotate`.

    Parameters
    ----------
    degrees
        The angle.

    Returns
    -------
    numpy.ndarray
        The 2x2 rotation matrix.
    """
    return rotate(np.deg2rad(degrees))


def flip_y() -> np.ndarray:
    """Mirror the y axis: ``(y, x)`` becomes ``(-y, x)``.

    Returns
    -------
    numpy.ndarray
        ``[[-1, 0], [0, 1]]``.
    """
    return np.array([[-1.0, 0.0], [0.0, 1.0]])


def flip_x() -> np.ndarray:
    """Mirror the x axis: ``(y, x)`` becomes ``(y, -x)``.

    Returns
    -------
    numpy.ndarray
        ``[[1, 0], [0, -1]]``.
    """
    return np.array([[1.0, 0.0], [0.0, -1.0]])


def scale(factor: float) -> np.ndarray:
    """Scale both coordinates by ``factor``.

    Parameters
    ----------
    factor
        The scale factor.

    Returns
    -------
    numpy.ndarray
        ``factor`` times the identity.
    """
    return np.eye(2) * factor
