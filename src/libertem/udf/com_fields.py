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
        Rotation in whole degrees, ``-179 <= scan_rotation <= 180``.
    flip_y
        Whether the detector y axis is mirrored.
    cy, cx
        Offset to add to the reference position (row, column) on the detector:
        the mean of the given shifts over the ROI.
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
        The transformed ``(y, x)`` components, float64 (complex128 for complex input).
    """
    matrix = transformation_matrix(scan_rotation, flip_y)
    if not forward:
        matrix = np.linalg.inv(matrix)
    dtype = np.result_type(np.asarray(y_centers), np.asarray(x_centers), np.float64)
    y = np.asarray(y_centers, dtype=dtype)
    x = np.asarray(x_centers, dtype=dtype)
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
        ``(img_y / img_sum - ref_y, img_x / img_sum - ref_x)``, exactly 0 where the
        sum is 0 (the centre is taken to be the reference there). Complex sums give
        complex shifts.
    """
    img_sum = np.asarray(img_sum)
    img_y = np.asarray(img_y)
    img_x = np.asarray(img_x)
    nonzero = img_sum != 0
    divisor = np.where(nonzero, img_sum, 1)
    center_y = np.where(nonzero, img_y / divisor, ref_y)
    center_x = np.where(nonzero, img_x / divisor, ref_x)
    return center_y - ref_y, center_x - ref_x


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


def _gradient(values: np.ndarray, axis: int) -> np.ndarray:
    """:func:`numpy.gradient` along ``axis``; zero along an axis of length 1."""
    if values.shape[axis] < 2:
        return np.zeros(values.shape, dtype=np.result_type(values, np.float64))
    return np.gradient(values, axis=axis)


def divergence_and_curl(y_centers, x_centers) -> tuple[np.ndarray, np.ndarray]:
    """:func:`divergence` and :func:`curl_2d` of a field on a 2D scan.

    A scan axis of length 1 has no derivative along it: it contributes zero.
    Fields that are not 2D have no 2D derivatives: zeros.
    """
    y = np.asarray(y_centers)
    x = np.asarray(x_centers)
    if y.ndim != 2:
        return np.zeros(y.shape), np.zeros(y.shape)
    div = _gradient(y, 0) + _gradient(x, 1)
    curl = _gradient(y, 1) - _gradient(x, 0)
    return div, curl


def magnitude(y_centers, x_centers) -> np.ndarray:
    """Length of the vectors ``(y, x)``."""
    return np.hypot(y_centers, x_centers)


_DEFAULT_ROI = (slice(0, -1), slice(0, -1))


def _rms(values: np.ndarray) -> float:
    return np.sqrt(np.mean(values**2))


def coordinate_check(y_centers, x_centers, roi=None) -> tuple[np.ndarray, np.ndarray]:
    """RMS curl of the corrected field for every whole-degree rotation, unflipped and flipped.

    For each angle and flip, the whole field is corrected with
    :func:`apply_correction`, its curl (:func:`curl_2d`) computed, and only then
    restricted to ``roi``.

    Parameters
    ----------
    y_centers, x_centers
        Detector shifts on a 2D scan.
    roi
        Boolean mask or tuple of slices of the scan area to use; default all
        rows but the last and all columns but the last.

    Returns
    -------
    tuple of numpy.ndarray
        ``(straight, flipped)``, each of shape ``(360,)``: the root mean square
        of the curl after :func:`apply_correction` with
        ``scan_rotation = 0 ... 359`` and ``flip_y`` False, resp. True. The
        correct setting has the smallest curl.
    """
    if roi is None:
        roi = _DEFAULT_ROI
    results = []
    for flip in (False, True):
        curls = np.zeros(360)
        for angle in range(360):
            corrected_y, corrected_x = apply_correction(y_centers, x_centers, angle, flip)
            curls[angle] = _rms(curl_2d(corrected_y, corrected_x)[roi])
        results.append(curls)
    return results[0], results[1]


def guess_corrections(
    y_centers: np.ndarray,
    x_centers: np.ndarray,
    roi: np.ndarray | tuple[slice, ...] | None = None,
) -> GuessResult:
    """Guess ``scan_rotation``, ``flip_y`` and the reference offset from detector shifts.

    A beam deflected by electric fields gives a field without curl in scan
    coordinates, so the rotation and flip with the smallest RMS curl win (see
    :func:`coordinate_check`; of equal minima the smaller angle). That leaves
    rotations 180 degrees apart: since the beam is pulled towards the nuclei,
    where the divergence is strongly negative, 180 degrees are added if the
    lowest of 5 equal histogram bins of the divergence over ``[-a, a]`` (``a``
    its largest magnitude within ``roi``) holds fewer values than the highest
    one. The angle is then brought into ``-179 ... 180``.

    Parameters
    ----------
    y_centers, x_centers
        Detector shifts on a 2D scan (e.g. CoMUDF's ``raw_shifts`` components).
    roi
        Boolean mask or tuple of slices of the scan area to use; default all
        rows but the last and all columns but the last. Derivatives are taken
        of the whole field, then restricted to ``roi``.

    Returns
    -------
    GuessResult
        ``scan_rotation`` (``int``), ``flip_y`` (``bool``), and ``cy``, ``cx``:
        the means of ``y_centers``, ``x_centers`` over ``roi``. Experimental:
        check the result on the data.
    """
    if roi is None:
        roi = _DEFAULT_ROI
    straight, flipped = coordinate_check(y_centers, x_centers, roi=roi)
    flip_y = bool(np.min(flipped) < np.min(straight))
    angle = int(np.argmin(flipped if flip_y else straight))
    corrected_y, corrected_x = apply_correction(y_centers, x_centers, angle, flip_y)
    div = divergence(corrected_y, corrected_x)[roi]
    top = np.max(np.abs(div))
    hist, _ = np.histogram(div, bins=5, range=(-top, top))
    if hist[0] < hist[-1]:
        angle += 180
    if angle > 180:
        angle -= 360
    return GuessResult(
        scan_rotation=angle,
        flip_y=flip_y,
        cy=np.mean(np.asarray(y_centers)[roi]),
        cx=np.mean(np.asarray(x_centers)[roi]),
    )
