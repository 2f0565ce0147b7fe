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

__all__ = [
    "flip_x",
    "flip_y",
    "identity",
    "rotate",
    "rotate_deg",
    "scale",
    "scale_rotate_flip_y",
]


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


def scale_rotate_flip_y(mat: np.ndarray) -> tuple[float, float, bool]:
    """Decompose ``mat`` into ``scale(s) @ rotate(angle) @ F``, ``F`` being ``flip_y()``
    or ``identity()``.

    Parameters
    ----------
    mat
        A 2x2 numpy array built from a scale, a rotation and possibly a y flip.

    Returns
    -------
    tuple
        ``(scale, angle, flip)``: the length of the columns (float64), the angle in
        radians in ``(-pi, pi]`` (float64) as :func:`rotate` takes it, and whether
        the y axis is mirrored (``bool``). A negative scale factor shows up as a
        rotation by ``pi``, and :func:`flip_x` as ``rotate(pi) @ flip_y()``.

    Raises
    ------
    ValueError
        If the two columns have different lengths, or if the matrix shears.
    """
    scale_y = np.linalg.norm(mat[:, 0])
    scale_x = np.linalg.norm(mat[:, 1])
    if not np.allclose(scale_y, scale_x):
        raise ValueError(f"y scale {scale_y} and x scale {scale_x} are different.")
    normalized = mat / scale_y
    # the 2D cross product of the columns: +1 for a rotation, -1 with a mirror
    flip_factor = normalized[0, 0] * normalized[1, 1] - normalized[0, 1] * normalized[1, 0]
    if not np.allclose(np.abs(flip_factor), 1):
        raise ValueError(f"Contains shear: flip factor (2D cross product) is {flip_factor}.")
    rotation = normalized.copy()
    rotation[:, 0] *= flip_factor
    angle = np.arctan2(-rotation[1, 0], rotation[0, 0])
    return scale_y, angle, bool(flip_factor < 0)
