"""Centre of mass (CoM) of each frame: beam shifts, corrected field, divergence, curl."""

from __future__ import annotations

import enum
from typing import Literal, NamedTuple

import numpy as np

from libertem.common.backend import is_cupy_backend
from libertem.common.container import MaskContainer
from libertem.common.math import prod  # noqa: F401 (LiberTEM's name in this module)
from libertem.udf.classes import UDF
from libertem.udf.com_fields import (
    GuessResult,
    apply_correction,
    center_shifts,
    com_masks_factory,
    com_masks_generic,
    coordinate_check,
    curl_2d,
    divergence,
    divergence_and_curl,
    guess_corrections,
    magnitude,
    selection_factory,
)
from libertem.udf.com_kernels import ExactMoments
from libertem.udf.masks import MASK_BACKENDS, ApplyMasksEngine

__all__ = [
    "RegressionOptions",
    "CoMParams",
    "CoMUDF",
    "GuessResult",
    "ApplyMasksEngine",
    "MaskContainer",
    "apply_correction",
    "center_shifts",
    "com_masks_factory",
    "com_masks_generic",
    "coordinate_check",
    "curl_2d",
    "divergence",
    "guess_corrections",
    "magnitude",
]


class RegressionOptions(enum.IntEnum):
    """How :class:`CoMUDF` flattens the field after the coordinate correction.

    ``NO_REGRESSION`` leaves it as it is; ``SUBTRACT_MEAN`` subtracts the mean
    shift; ``SUBTRACT_LINEAR`` subtracts a least-squares plane
    ``c0 + c1 * y + c2 * x`` over the scan coordinates (row ``y``, column ``x``),
    for example to remove the descan error of a 2D scan.
    """

    NO_REGRESSION = -1
    SUBTRACT_MEAN = 0
    SUBTRACT_LINEAR = 1


class CoMParams(NamedTuple):
    """Parameters of :class:`CoMUDF`.

    Attributes
    ----------
    cy, cx
        Reference position on the detector (row, column) the shifts are relative
        to; ``None``: the centre rounded down, ``sig_shape // 2``.
    r
        Radius of the disk around ``(cy, cx)`` taken into account; ``inf``: the
        whole frame.
    ri
        Inner radius: pixels at most ``ri`` from the reference are left out (a ring).
    scan_rotation
        Rotation in degrees from detector to scan coordinates, see
        :func:`~libertem.udf.com_fields.apply_correction`.
    flip_y
        Mirror the detector y axis before rotating.
    regression
        A :class:`RegressionOptions` value (any ``int`` is taken as one), or
        anything :func:`numpy.array` turns into a ``(3, 2)`` array of coefficients
        ``[offset, d/dy, d/dx]`` for the ``(y, x)`` field to subtract. Checked when
        the results are computed.
    """

    cy: float | None = None
    cx: float | None = None
    r: float = float("inf")
    ri: float | None = 0.0
    scan_rotation: float = 0.0
    flip_y: bool = False
    regression: np.ndarray | Literal[-1, 0, 1] = RegressionOptions.NO_REGRESSION


_DEFAULT_PARAMS = CoMParams()


class CoMUDF(UDF):
    """Centre of mass of each frame within a disk (or ring), with corrections.

    Create it with :meth:`with_params`. The centre of mass is taken relative to
    ``(cy, cx)`` ("raw"), then corrected from detector to scan coordinates
    (``flip_y``, ``scan_rotation``) and flattened by the ``regression``. Needs a
    dataset with 2D navigation and 2D signal shape.

    Parameters
    ----------
    com_params
        The parameters, see :class:`CoMParams`.

    Notes
    -----
    Results, ``kind='nav'`` unless noted:

    ``raw_com`` ``(..., 2)``
        Centre of mass ``(y, x)`` in detector pixel coordinates.
    ``raw_shifts`` ``(..., 2)``
        ``raw_com - (cy, cx)``, before corrections.
    ``field`` ``(..., 2)``
        The shift after coordinate correction and regression; ``field_y`` and
        ``field_x`` are its components, ``magnitude`` its length.
    ``divergence``, ``curl``
        Of ``field`` (:func:`divergence`, :func:`curl_2d`); NaN next to frames
        outside the ROI.
    ``regression`` (``kind='single'``, ``(3, 2)``)
        The coefficients ``[offset, d/dy, d/dx]`` subtracted from the field.

    A frame without intensity in the mask has its centre of mass at the
    reference, shift 0; so do frames not yet processed in partial results. The
    regression is fitted on, and subtracted at, the processed frames within the
    ROI.

    Examples
    --------
    >>> udf = CoMUDF.with_params(cy=15.5, cx=15.5, r=8, flip_y=True)
    >>> udf.get_params().flip_y
    True
    """

    def __init__(self, com_params: CoMParams = _DEFAULT_PARAMS):
        if not isinstance(com_params, CoMParams):
            raise TypeError(
                f"com_params must be CoMParams, got {type(com_params).__name__}; "
                "use CoMUDF.with_params(...) to pass parameters by name"
            )
        super().__init__(com_params=com_params)

    @classmethod
    def with_params(
        cls,
        *,
        cy: float | None = None,
        cx: float | None = None,
        r: float = float("inf"),
        ri: float = 0.0,
        scan_rotation: float = 0.0,
        flip_y: bool = False,
        regression: np.ndarray | Literal[-1, 0, 1] = RegressionOptions.NO_REGRESSION,
    ) -> CoMUDF:
        """A CoMUDF with the fields of :class:`CoMParams` given by name.

        Raises
        ------
        ValueError
            If ``ri >= r``.
        """
        if ri is not None and ri >= r:
            raise ValueError("Inner radius must be less than outer radius for annular CoM")
        return cls(
            CoMParams(
                cy=cy,
                cx=cx,
                r=r,
                ri=ri,
                scan_rotation=scan_rotation,
                flip_y=flip_y,
                regression=regression,
            )
        )

    def get_params(self) -> CoMParams:
        """The parameters, with the reference position filled in once the dataset
        is known."""
        p = self.params.com_params
        if self.meta is None or (p.cy is not None and p.cx is not None):
            return p
        sy, sx = self._sig_shape()
        return p._replace(
            cy=sy // 2 if p.cy is None else p.cy, cx=sx // 2 if p.cx is None else p.cx
        )

    # set-up --------------------------------------------------------------------
    def _sig_shape(self) -> tuple[int, int]:
        sig = tuple(self.meta.dataset_shape.sig)
        if len(sig) != 2:
            raise ValueError("CoMUDF only works with 2D sig shape.")
        return sig

    def _check_shapes(self) -> None:
        self._sig_shape()
        if len(tuple(self.meta.dataset_shape.nav)) != 2:
            raise ValueError("CoMUDF only works with 2D nav shape.")

    def get_backends(self):
        return MASK_BACKENDS

    def get_tiling_preferences(self):
        """Tiles of about 1 MiB (as float32) in general; on integer data, whose tiles
        arrive in their own dtype and are read once by the exact moments (no converted
        copy that should stay in the cache), four times that: fewer tiles, less
        overhead per frame."""
        meta = getattr(self, "meta", None)
        dtype = None if meta is None else meta.dataset_dtype
        corrections = None if meta is None else meta.corrections
        corrected = corrections is not None and corrections.have_corrections()
        if dtype is not None and dtype.kind in "ui" and dtype.itemsize <= 4 and not corrected:
            return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": 4 * 1024 * 1024}
        return super().get_tiling_preferences()

    def get_task_data(self):
        p = self.get_params()
        sy, sx = self._sig_shape()
        base = selection_factory(p.cy, p.cx, sy, sx, p.r, p.ri)
        dtype = np.result_type(self.meta.input_dtype, np.float32)
        on_cupy = is_cupy_backend(getattr(self.meta, "array_backend", None))
        container = MaskContainer(
            com_masks_generic(sy, sx, base),
            dtype=dtype,
            use_sparse=False,
            count=3,
            backend="cupy" if on_cupy else None,
        )
        return {
            "masks": container,
            "engine": ApplyMasksEngine(container, self.meta, True),
            "exact": ExactMoments(container),
        }

    def get_result_buffers(self):
        self._check_shapes()
        dtype = np.result_type(self.meta.input_dtype, np.float32)

        def nav(extra=()):
            return self.buffer(kind="nav", extra_shape=extra, dtype=dtype, use="result_only")

        return {
            "moments": self.buffer(
                kind="nav", extra_shape=(3,), dtype=dtype, use="private", where="device"
            ),
            "raw_com": nav((2,)),
            "raw_shifts": nav((2,)),
            "field": nav((2,)),
            "field_y": nav(),
            "field_x": nav(),
            "magnitude": nav(),
            "divergence": nav(),
            "curl": nav(),
            "regression": self.buffer(
                kind="single", extra_shape=(3, 2), dtype=np.float64, use="result_only"
            ),
        }

    # integer tiles where the data is integer: the moments are computed exactly from them
    # (see libertem.udf.com_kernels), or converted by the engine as the runner would have
    _TAKES_INTEGER_TILES = True

    def process_tile(self, tile):
        """Accumulate the mask sum and first moments of the tile's frames."""
        exact = self.task_data.exact.moments(tile, self.meta.slice)
        if exact is None:
            self.results.moments[:] += self.task_data.engine.process_tile(tile)
        else:
            self.results.moments[:] += exact

    # results ----------------------------------------------------------------------
    def _valid_nav_mask(self) -> np.ndarray:
        """Nav-shaped: frames that are selected and (in partial results) processed."""
        nav_shape = tuple(self.meta.dataset_shape.nav)
        getter = getattr(self.meta, "get_valid_nav_mask", None)
        valid = getter(full_nav=True) if getter is not None else None
        if valid is None:
            valid = self.meta.roi
        if valid is None:
            return np.ones(nav_shape, dtype=bool)
        return np.asarray(valid, dtype=bool).reshape(nav_shape)

    def get_results(self):
        p = self.get_params()
        nav_shape = tuple(self.meta.dataset_shape.nav)
        selected = (
            np.ones(nav_shape, dtype=bool)
            if self.meta.roi is None
            else np.asarray(self.meta.roi, dtype=bool).reshape(nav_shape)
        )
        # frames outside the ROI have no moments; those not processed yet have zeros
        moments = np.zeros(nav_shape + (3,), dtype=np.asarray(self.results.moments).dtype)
        moments[selected] = self.results.moments
        shift_y, shift_x = center_shifts(
            moments[..., 0], moments[..., 1], moments[..., 2], p.cy, p.cx
        )
        valid = self._valid_nav_mask() & selected
        field_y, field_x = apply_correction(shift_y, shift_x, p.scan_rotation, p.flip_y)
        field = np.stack([field_y, field_x], axis=-1)
        regression = self.get_regression(field, valid)
        option = p.regression
        if isinstance(option, int) and option == RegressionOptions.SUBTRACT_MEAN:
            self.apply_mean_regression(regression, field, valid)
        elif not isinstance(option, int) or option == RegressionOptions.SUBTRACT_LINEAR:
            self.apply_lin_regression(regression, _design(nav_shape), field, valid)
        # NaN outside the ROI, so that derivatives next to it are NaN as well
        field[~selected] = np.nan
        results = {
            "raw_com": np.stack([shift_y + p.cy, shift_x + p.cx], axis=-1)[selected],
            "raw_shifts": np.stack([shift_y, shift_x], axis=-1)[selected],
            "regression": regression,
        }
        for key, value in self.get_field_results(field[..., 0], field[..., 1]).items():
            results[key] = value[selected]
        return results

    def get_field_results(self, field_y: np.ndarray, field_x: np.ndarray) -> dict:
        """``field``, its components, ``magnitude``, ``divergence`` and ``curl`` of a
        nav-shaped field (NaN where invalid)."""
        div, curl = divergence_and_curl(field_y, field_x)
        return {
            "field": np.stack([field_y, field_x], axis=-1),
            "field_y": field_y,
            "field_x": field_x,
            "magnitude": magnitude(field_y, field_x),
            "divergence": div,
            "curl": curl,
        }

    def get_regression(self, field: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
        """The ``(3, 2)`` coefficients ``[offset, d/dy, d/dx]`` to subtract from ``field``.

        Parameters
        ----------
        field
            Nav-shaped ``(..., 2)`` corrected shifts.
        valid_mask
            Nav-shaped: where ``field`` holds data to fit.

        Raises
        ------
        ValueError
            If the ``regression`` parameter is an ``int`` other than -1, 0 and 1, or
            does not make a ``(3, 2)`` array.
        """
        option = self.params.com_params.regression
        if not isinstance(option, int):
            coeffs = np.array(option)
            if coeffs.shape != (3, 2):
                raise ValueError(
                    f"Regression parameter {coeffs} doesn't have required shape (3, 2)."
                )
            return coeffs.astype(np.float64)
        if option not in (-1, 0, 1):
            raise ValueError(f"Unrecognized regression option {option}")
        coeffs = np.zeros((3, 2))
        if option == RegressionOptions.NO_REGRESSION or not valid_mask.any():
            return coeffs
        values = field[valid_mask]
        if option == RegressionOptions.SUBTRACT_MEAN:
            coeffs[0] = values.mean(axis=0)
            return coeffs
        design = _design(valid_mask.shape)[valid_mask]
        solution, *_ = np.linalg.lstsq(design, values, rcond=None)
        return solution

    def apply_mean_regression(self, regression, field_inout, valid_mask) -> None:
        """Subtract the offset ``regression[0]`` from the valid entries of the field."""
        field_inout[valid_mask] -= regression[0]

    def apply_lin_regression(self, regression, inp, field_inout, valid_mask) -> None:
        """Subtract the plane ``inp @ regression`` from the valid entries of the field.

        ``inp`` is the nav-shaped design matrix with rows ``[1, y, x]``.
        """
        field_inout[valid_mask] -= inp[valid_mask] @ regression


def _design(nav_shape: tuple[int, int]) -> np.ndarray:
    """Rows ``[1, y, x]`` for every position of a 2D scan."""
    ys, xs = np.indices(nav_shape)
    return np.stack([np.ones(nav_shape), ys, xs], axis=-1)
