"""Centre-of-mass helpers: masks, shifts, coordinate corrections and field derivatives.

Vectors are ``(y, x)``. Detector shifts are turned into scan ("physical")
coordinates by :func:`apply_correction`: first the detector y axis is mirrored if
``flip_y``, then the vector is rotated by ``scan_rotation`` degrees, clockwise on
screen (y points down), as in LiberTEM's coordinate conventions.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from libertem import masks
from libertem.corrections import coordinates

__all__ = [
    "GuessResult",
    "apply_correction",
    "center_shifts",
    "com_masks_factory",
    "com_masks_generic",
    "coordinate_check",
    "curl_2d",
    "divergence",
    "divergence_and_curl",
    "guess_corrections",
    "magnitude",
    "selection_factory",
    "transformation_matrix",
]


class GuessResult(NamedTuple):
    """Corrections suggested by :func:`guess_corrections`.

    Attributes
    ----------
    scan_rotation
        Rotation in whole degrees, ``0 <= scan_rotation < 360``.
    flip_y
        Whether the detector y axis is mirrored.
    cy, cx
        Offset to add to the reference position (row, column) on the detector:
        the mean shift, which vanishes for a well-chosen reference.
    """

    scan_rotation: int
    flip_y: bool
    cy: float
    cx: float


def transformation_matrix(scan_rotation: float, flip_y: bool) -> np.ndarray:
    """The 2x2 matrix that :func:`apply_correction` applies to column vectors ``(y, x)``.

    ``rotate_deg(scan_rotation) @ flip_y()`` of :mod:`libertem.corrections.coordinates`
    (the flip only if ``flip_y``): first mirror, then rotate.
    """
    matrix = coordinates.rotate_deg(scan_rotation)
    if flip_y:
        matrix = matrix @ coordinates.flip_y()
    return matrix


def apply_correction(
    y_centers, x_centers, scan_rotation: float, flip_y: bool, forward: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Map detector shifts into scan coordinates (or back).

    Parameters
    ----------
    y_centers, x_centers
        Shift components, arrays of one shape.
    scan_rotation
        Rotation in degrees, clockwise on screen; applied after the flip.
    flip_y
        Mirror the detector y axis.
    forward
        ``True``: detector to scan coordinates; ``False``: the inverse.

    Returns
    -------
    tuple of numpy.ndarray
        The transformed ``(y, x)`` components, float64.
    """
    matrix = transformation_matrix(scan_rotation, flip_y)
    if not forward:
        matrix = np.linalg.inv(matrix)
    y = np.asarray(y_centers, dtype=np.float64)
    x = np.asarray(x_centers, dtype=np.float64)
    return matrix[0, 0] * y + matrix[0, 1] * x, matrix[1, 0] * y + matrix[1, 1] * x


def center_shifts(img_sum, img_y, img_x, ref_y, ref_x) -> tuple[np.ndarray, np.ndarray]:
    """Centre-of-mass shifts from the sum and first moments of each frame.

    Parameters
    ----------
    img_sum
        Intensity of each frame within the mask.
    img_y, img_x
        Sum of intensity times row, times column coordinate within the mask.
    ref_y, ref_x
        Reference position the shifts are relative to.

    Returns
    -------
    tuple of numpy.ndarray
        ``(img_y / img_sum - ref_y, img_x / img_sum - ref_x)``; NaN where the sum is 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        img_sum = np.asarray(img_sum, dtype=np.float64)
        return np.asarray(img_y) / img_sum - ref_y, np.asarray(img_x) / img_sum - ref_x


def _stack_with_moments(base_mask_factory, detector_y: int, detector_x: int, which: int):
    mask = np.asarray(base_mask_factory())
    if which == 0:
        return mask
    if which == 1:
        return masks.gradient_y(detector_x, detector_y, dtype=np.float64) * mask
    return masks.gradient_x(detector_x, detector_y, dtype=np.float64) * mask


def com_masks_generic(detector_y: int, detector_x: int, base_mask_factory) -> list:
    """Mask factories for the centre of mass within an arbitrary selection mask.

    Parameters
    ----------
    detector_y, detector_x
        Signal shape.
    base_mask_factory
        Callable returning the selection mask (``(detector_y, detector_x)``).

    Returns
    -------
    list of callables
        Factories of ``mask``, ``mask * y`` and ``mask * x`` (pixel coordinates), for
        :class:`~libertem.udf.masks.ApplyMasksUDF`; feed its three results to
        :func:`center_shifts`.
    """
    return [
        functools.partial(_stack_with_moments, base_mask_factory, detector_y, detector_x, i)
        for i in range(3)
    ]


def selection_factory(cy, cx, detector_y: int, detector_x: int, r: float, ri: float = 0.0):
    """The factory of the selection mask of the centre of mass: a disk or a ring.

    Parameters
    ----------
    cy, cx
        Centre on the detector (row, column).
    detector_y, detector_x
        Signal shape.
    r
        Outer radius.
    ri
        Inner radius; pixels at most ``ri`` from the centre are left out (a ring).
        0 or ``None``: a disk.

    Returns
    -------
    callable
        Returns the mask: :func:`libertem.masks.ring` or :func:`libertem.masks.circular`.
    """
    if ri:
        return functools.partial(masks.ring, cx, cy, detector_x, detector_y, r, ri)
    return functools.partial(masks.circular, cx, cy, detector_x, detector_y, r)


def com_masks_factory(detector_y: int, detector_x: int, cy: float, cx: float, r: float) -> list:
    """Mask factories for the centre of mass within a disk of radius ``r``.

    See :func:`com_masks_generic`; the selection is
    :func:`libertem.masks.circular` around ``(cy, cx)``.
    """
    base = selection_factory(cy, cx, detector_y, detector_x, r)
    return com_masks_generic(detector_y, detector_x, base)


def divergence(y_centers, x_centers) -> np.ndarray:
    """``d(y)/dy + d(x)/dx`` of a field on a 2D grid, by :func:`numpy.gradient`."""
    return np.gradient(y_centers, axis=0) + np.gradient(x_centers, axis=1)


def curl_2d(y_centers, x_centers) -> np.ndarray:
    """``d(y)/dx - d(x)/dy`` of a field on a 2D grid, by :func:`numpy.gradient`."""
    return np.gradient(y_centers, axis=1) - np.gradient(x_centers, axis=0)


def divergence_and_curl(y_centers, x_centers) -> tuple[np.ndarray, np.ndarray]:
    """:func:`divergence` and :func:`curl_2d` of a field on a 2D scan; zeros for other scans.

    A line scan (or a scan of more than two axes) has no 2D derivatives; its
    divergence and curl are reported as zero.
    """
    y = np.asarray(y_centers)
    if y.ndim != 2:
        return np.zeros(y.shape), np.zeros(y.shape)
    return divergence(y_centers, x_centers), curl_2d(y_centers, x_centers)


def magnitude(y_centers, x_centers) -> np.ndarray:
    """Length of the vectors ``(y, x)``."""
    return np.hypot(y_centers, x_centers)


def _selection(y_centers, x_centers, roi):
    """The field with NaN outside ``roi`` (a bool mask or a tuple of slices)."""
    y = np.array(y_centers, dtype=np.float64)
    x = np.array(x_centers, dtype=np.float64)
    if y.shape != x.shape or y.ndim != 2:
        raise ValueError(
            f"y_centers and x_centers must be 2D arrays of one shape, got {y.shape}, {x.shape}"
        )
    if roi is None:
        return y, x
    if isinstance(roi, tuple):
        return y[roi], x[roi]
    roi = np.asarray(roi, dtype=bool)
    if roi.shape != y.shape:
        raise ValueError(f"roi of shape {roi.shape} does not match the field's shape {y.shape}")
    y[~roi] = np.nan
    x[~roi] = np.nan
    return y, x


def _rms(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(finite**2))) if finite.size else np.nan


def coordinate_check(y_centers, x_centers, roi=None) -> tuple[np.ndarray, np.ndarray]:
    """RMS curl of the corrected field for every whole-degree rotation, unflipped and flipped.

    Parameters
    ----------
    y_centers, x_centers
        Detector shifts on a 2D scan.
    roi
        Boolean mask or tuple of slices of the scan area to use.

    Returns
    -------
    tuple of numpy.ndarray
        ``(straight, flipped)``, each of shape ``(360,)``: the RMS curl after
        :func:`apply_correction` with ``scan_rotation = 0 ... 359`` and
        ``flip_y`` False, resp. True. The correct setting has the smallest curl.
    """
    y, x = _selection(y_centers, x_centers, roi)
    results = []
    for flip in (False, True):
        curls = np.empty(360)
        for angle in range(360):
            cy, cx = apply_correction(y, x, angle, flip)
            curls[angle] = _rms(curl_2d(cy, cx))
        results.append(curls)
    return results[0], results[1]


def _negative_skew(div: np.ndarray) -> float:
    """How much more of the divergence lies at the negative than at the positive end."""
    finite = div[np.isfinite(div)]
    if finite.size == 0:
        return 0.0
    top = max(-finite.min(), finite.max())
    if top == 0:
        return 0.0
    hist, _ = np.histogram(finite, bins=6, range=(-top, top))
    weights = np.array([3, 2, 1, -1, -2, -3])
    return float(np.sum(hist * weights))


def guess_corrections(y_centers: np.ndarray, x_centers: np.ndarray, roi=None) -> GuessResult:
    """Guess ``scan_rotation``, ``flip_y`` and a better reference from detector shifts.

    A beam deflected by electric fields gives a field without curl in scan
    coordinates, so the rotation and flip with the smallest RMS curl win (see
    :func:`coordinate_check`). That leaves rotations 180 degrees apart; since the
    beam is pulled towards the nuclei, where the divergence is strongly negative,
    the one whose divergence leans to the negative end is taken.

    Parameters
    ----------
    y_centers, x_centers
        Detector shifts on a 2D scan (e.g. CoMUDF's ``raw_shifts`` components).
    roi
        Boolean mask or tuple of slices of the scan area to use.

    Returns
    -------
    GuessResult
        See there. Experimental: check the result on the data.
    """
    y, x = _selection(y_centers, x_centers, roi)
    straight, flipped = coordinate_check(y, x)
    flip = bool(np.nanmin(flipped) < np.nanmin(straight))
    curls = flipped if flip else straight
    best = int(np.nanargmin(curls))
    candidates = (best % 180, best % 180 + 180)
    skews = []
    for angle in candidates:
        cy, cx = apply_correction(y, x, angle, flip)
        skews.append(_negative_skew(divergence(cy, cx)))
    angle = candidates[int(np.argmax(skews))]
    return GuessResult(
        scan_rotation=int(angle),
        flip_y=flip,
        cy=float(np.nanmean(y)),
        cx=float(np.nanmean(x)),
    )
