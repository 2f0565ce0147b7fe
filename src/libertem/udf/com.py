"""Centre of mass (CoM) of each frame within a disk: beam shifts, field, divergence, curl."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import UDFException
from libertem.masks import circular
from libertem.udf.base import UDF

__all__ = ["CoMParams", "CoMUDF", "apply_correction", "divergence", "curl"]


@dataclass(frozen=True)
class CoMParams:
    """Parameters of :class:`CoMUDF`, see there."""

    cy: float | None = None
    cx: float | None = None
    r: float | None = None
    ri: float = 0.0
    scan_rotation: float = 0.0
    flip_y: bool = False


def apply_correction(
    y: np.ndarray, x: np.ndarray, scan_rotation: float = 0.0, flip_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Map detector shifts ``(y, x)`` into the scan coordinate system.

    First ``y`` is negated if ``flip_y``, then the vector is rotated by
    ``scan_rotation`` degrees: ``y' = y cos(phi) - x sin(phi)``,
    ``x' = y sin(phi) + x cos(phi)``.

    Parameters
    ----------
    y, x
        Shift components, any (equal) shapes.
    scan_rotation
        Rotation in degrees.
    flip_y
        Mirror the y axis before rotating.

    Returns
    -------
    tuple of numpy.ndarray
        The corrected ``(y, x)`` components.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if flip_y:
        y = -y
    phi = np.deg2rad(scan_rotation)
    c, s = np.cos(phi), np.sin(phi)
    return y * c - x * s, y * s + x * c


def divergence(field_y: np.ndarray, field_x: np.ndarray) -> np.ndarray:
    """``d(field_y)/dy + d(field_x)/dx`` of a field on a 2D grid (``numpy.gradient``)."""
    return np.gradient(field_y, axis=0) + np.gradient(field_x, axis=1)


def curl(field_y: np.ndarray, field_x: np.ndarray) -> np.ndarray:
    """``d(field_x)/dy - d(field_y)/dx`` of a field on a 2D grid (``numpy.gradient``)."""
    return np.gradient(field_x, axis=0) - np.gradient(field_y, axis=1)


def _weights(params, sig_shape: tuple[int, int], dtype) -> np.ndarray:
    """Stack of (mask, mask * (y - cy), mask * (x - cx)), shape ``(3, sy, sx)``."""
    sy, sx = sig_shape
    cy, cx = _center(params, sig_shape)
    if params.r is None:
        mask = np.ones(sig_shape)
    else:
        mask = circular(cx, cy, sx, sy, params.r)
        if params.ri:
            mask = mask - circular(cx, cy, sx, sy, params.ri)
    ys, xs = np.mgrid[0:sy, 0:sx]
    return np.stack([mask, mask * (ys - cy), mask * (xs - cx)]).astype(dtype)


def _center(params, sig_shape: tuple[int, int]) -> tuple[float, float]:
    sy, sx = sig_shape
    cy = (sy - 1) / 2 if params.cy is None else float(params.cy)
    cx = (sx - 1) / 2 if params.cx is None else float(params.cx)
    return cy, cx


class CoMUDF(UDF):
    """Centre of mass of each frame within a disk (or ring), relative to ``(cy, cx)``.

    Parameters
    ----------
    cx, cy
        Reference position on the detector (column, row); default: the frame centre.
    r
        Radius of the disk taken into account; ``None``: the whole frame.
    ri
        Inner radius: pixels with distance ``<= ri`` are left out (a ring).
    scan_rotation
        Rotation in degrees from detector to scan coordinates, see
        :func:`apply_correction`.
    flip_y
        Mirror the detector y axis before rotating.

    Notes
    -----
    Results (all ``kind='nav'``):

    ``raw_com``
        ``(..., 2)``: uncorrected ``(y, x)`` shift of the centre of mass from ``(cy, cx)``.
    ``raw_mask_sum``
        Intensity within the mask.
    ``field``
        ``(..., 2)``: ``raw_com`` after ``flip_y`` and ``scan_rotation``.
    ``field_y``, ``field_x``, ``magnitude``
        Components and length of ``field``.
    ``divergence``, ``curl``
        Of ``field`` over the scan (only for a 2D scan), by ``numpy.gradient``;
        NaN next to frames outside a ROI.

    A frame without intensity in the mask has a NaN centre of mass.

    Examples
    --------
    >>> udf = CoMUDF(cx=15.5, cy=15.5, r=8)
    >>> udf2 = CoMUDF.with_params(cx=15.5, cy=15.5, r=8, flip_y=True)
    """

    def __init__(
        self,
        cx: float | None = None,
        cy: float | None = None,
        r: float | None = None,
        ri: float = 0.0,
        scan_rotation: float = 0.0,
        flip_y: bool = False,
    ):
        super().__init__(cx=cx, cy=cy, r=r, ri=ri, scan_rotation=scan_rotation, flip_y=flip_y)

    @classmethod
    def with_params(cls, **kwargs) -> CoMUDF:
        """Create from the fields of :class:`CoMParams` (``cy``, ``cx``, ``r``, ...)."""
        params = CoMParams(**kwargs)
        return cls(
            cx=params.cx,
            cy=params.cy,
            r=params.r,
            ri=params.ri,
            scan_rotation=params.scan_rotation,
            flip_y=params.flip_y,
        )

    def _sig_shape(self) -> tuple[int, int]:
        sig = tuple(self.meta.dataset_shape.sig)
        if len(sig) != 2:
            raise UDFException(f"CoMUDF needs 2D frames, the dataset has signal shape {sig}")
        return sig

    def get_preferred_input_dtype(self):
        return np.float32

    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_CUPY)

    def get_task_data(self):
        sig = self._sig_shape()
        dtype = np.result_type(self.meta.input_dtype, np.float32)
        return {"weights": self.xp.asarray(_weights(self.params, sig, dtype))}

    def get_result_buffers(self):
        nav_2d = len(tuple(self.meta.dataset_shape.nav)) == 2
        self._sig_shape()
        buffers = {
            "moments": self.buffer(
                kind="nav", extra_shape=(3,), dtype="float64", use="private", where="device"
            ),
            "raw_com": self.buffer(
                kind="nav", extra_shape=(2,), dtype="float64", use="result_only"
            ),
            "raw_mask_sum": self.buffer(kind="nav", dtype="float64", use="result_only"),
            "field": self.buffer(kind="nav", extra_shape=(2,), dtype="float64", use="result_only"),
            "field_y": self.buffer(kind="nav", dtype="float64", use="result_only"),
            "field_x": self.buffer(kind="nav", dtype="float64", use="result_only"),
            "magnitude": self.buffer(kind="nav", dtype="float64", use="result_only"),
        }
        if nav_2d:
            buffers["divergence"] = self.buffer(kind="nav", dtype="float64", use="result_only")
            buffers["curl"] = self.buffer(kind="nav", dtype="float64", use="result_only")
        return buffers

    def process_tile(self, tile):
        """Accumulate the mask sum and first moments of the tile's frames."""
        weights = self.task_data.weights[(slice(None), *self.meta.slice.get(sig_only=True))]
        flat = tile.reshape((tile.shape[0], -1))
        if flat.dtype != weights.dtype:
            flat = flat.astype(weights.dtype)
        self.results.moments[:] += flat @ weights.reshape((3, -1)).T

    def get_results(self):
        moments = self.results.moments
        with np.errstate(divide="ignore", invalid="ignore"):
            com_y = moments[:, 1] / moments[:, 0]
            com_x = moments[:, 2] / moments[:, 0]
        p = self.params
        field_y, field_x = apply_correction(com_y, com_x, p.scan_rotation, p.flip_y)
        results = {
            "raw_com": np.stack([com_y, com_x], axis=-1),
            "raw_mask_sum": moments[:, 0].copy(),
            "field": np.stack([field_y, field_x], axis=-1),
            "field_y": field_y,
            "field_x": field_x,
            "magnitude": np.hypot(field_y, field_x),
        }
        nav_shape = tuple(self.meta.dataset_shape.nav)
        if len(nav_shape) == 2:
            roi = self.meta.roi
            grid_y = _to_grid(field_y, nav_shape, roi)
            grid_x = _to_grid(field_x, nav_shape, roi)
            results["divergence"] = _from_grid(divergence(grid_y, grid_x), roi)
            results["curl"] = _from_grid(curl(grid_y, grid_x), roi)
        return results


def _to_grid(values: np.ndarray, nav_shape: tuple[int, ...], roi) -> np.ndarray:
    """Nav-shaped array from ROI-compressed values, NaN outside the ROI."""
    if roi is None:
        return values.reshape(nav_shape)
    grid = np.full(nav_shape, np.nan)
    grid[np.asarray(roi, dtype=bool).reshape(nav_shape)] = values
    return grid


def _from_grid(grid: np.ndarray, roi) -> np.ndarray:
    """ROI-compressed flat values of a nav-shaped array."""
    if roi is None:
        return grid.reshape(-1)
    return grid[np.asarray(roi, dtype=bool).reshape(grid.shape)]
