"""Centre of mass (differential phase contrast) as an analysis over three masks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from libertem.analysis.base import AnalysisResult, AnalysisResultSet, BaseAnalysis
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.masks import BaseMasksAnalysis, given, sig_center, with_roi
from libertem.common.viz import rgb_from_2dvector, visualize_simple
from libertem.udf.com_fields import (
    GuessResult,
    apply_correction,
    center_shifts,
    com_masks_factory,
    com_masks_generic,
    coordinate_check,
    curl_2d,
    divergence,
    guess_corrections,
    magnitude,
    selection_factory,
)

if TYPE_CHECKING:
    from libertem.analysis.base import RPCContext

__all__ = [
    "COMAnalysis",
    "COMResultSet",
    "ComTemplate",
    "ParameterGuessProc",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "BaseMasksAnalysis",
    "GeneratorHelper",
    "GuessResult",
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

# only these parameters shape the masks; the others act on the mask results
_MASK_PARAMS = ("cx", "cy", "r", "ri")


class COMResultSet(AnalysisResultSet):
    """Results of :class:`COMAnalysis`: ``field``, ``magnitude``, ``divergence``,
    ``curl``, ``x``, ``y`` (without ``divergence`` and ``curl`` on a scan with an
    axis of length 1); for complex data ``x_real``, ``y_real``, ``x_imag``,
    ``y_imag``."""


class ComTemplate(GeneratorHelper):
    """Code for :class:`COMAnalysis`."""

    short_name = "com"
    api = "create_com_analysis"
    api_params = {
        "cx": "cx",
        "cy": "cy",
        "r": "mask_radius",
        "ri": "mask_radius_inner",
        "flip_y": "flip_y",
        "scan_rotation": "scan_rotation",
    }

    def convert_params(self) -> str:
        params = dict(self.params)
        if params.get("r") == float("inf"):
            params["r"] = None  # the default: the whole frame
        if not params.get("ri"):
            params["ri"] = None
        helper = GeneratorHelper(params)
        helper.api_params = self.api_params
        return helper.convert_params()

    def get_dependency(self) -> list[str]:
        return [*super().get_dependency(), "from libertem.viz import rgb_from_2dvector"]

    def get_docs(self) -> str:
        return self.format_docs(
            "Centre of mass",
            "The shift of the centre of mass of each frame within the mask from the "
            "reference ``(cx, cy)``, corrected by ``flip_y`` and ``scan_rotation``. "
            "Results: ``field`` (x and y shift), ``magnitude``, ``divergence`` and ``curl`` "
            "(on scans whose axes are all longer than 1).",
        )

    def get_plot(self) -> list[str]:
        r = self.result_name
        return [
            f"field_x, field_y = {r}.field.raw_data\n"
            "fig, axes = plt.subplots()\n"
            "axes.set_title('field')\n"
            "axes.imshow(rgb_from_2dvector(field_y, field_x))",
            f"for key in ('magnitude', 'divergence', 'curl'):\n"
            f"    if key not in {r}.keys():\n"
            "        continue  # no divergence and curl on a scan with an axis of length 1\n"
            "    fig, axes = plt.subplots()\n"
            "    axes.set_title(key)\n"
            f"    axes.imshow({r}[key].raw_data)",
        ]

    def get_save(self) -> str:
        r = self.result_name
        return (
            f"np.save('com_field_y.npy', {r}.y.raw_data)\n"
            f"np.save('com_field_x.npy', {r}.x.raw_data)\n"
            f"for key in ('divergence', 'curl'):\n"
            f"    if key in {r}.keys():\n"
            f"        np.save(f'com_{{key}}.npy', {r}[key].raw_data)"
        )


class ParameterGuessProc:
    """Remote procedure of :class:`COMAnalysis`: guess the corrections from its results.

    Called with an :class:`~libertem.analysis.base.RPCContext` whose ``results`` are
    the analysis' latest results; answers with the corrections of
    :func:`~libertem.udf.com_fields.guess_corrections` and the improved reference.
    """

    async def __call__(self, comm: RPCContext) -> dict:
        results = comm.results
        if results is None:
            return {"status": "error", "message": "run the analysis first"}
        p = comm.analysis.parameters
        raw_y, raw_x = results.raw_shifts
        guess = guess_corrections(raw_y, raw_x)
        return {
            "status": "ok",
            "guess": {
                "scan_rotation": guess.scan_rotation,
                "flip_y": guess.flip_y,
                "cy": p["cy"] + guess.cy,
                "cx": p["cx"] + guess.cx,
            },
        }


def check_com_arguments(dataset, mask_radius, mask_radius_inner) -> None:
    """Check the arguments of ``Context.create_com_analysis``.

    Raises
    ------
    ValueError
        If the dataset does not have 2 navigation and 2 signal dimensions, or an
        inner radius is given without an outer one.
    """
    if len(tuple(dataset.shape.nav)) != 2:
        raise ValueError("incompatible dataset: need two navigation dimensions")
    if len(tuple(dataset.shape.sig)) != 2:
        raise ValueError("incompatible dataset: need two signal dimensions")
    if mask_radius_inner is not None and mask_radius is None:
        raise ValueError(
            "incompatible parameters: must pass both `mask_radius` and "
            "`mask_radius_inner` for annular CoM"
        )


class COMAnalysis(BaseMasksAnalysis):
    """Centre-of-mass shifts of each frame within a disk (or ring), and what follows.

    Applies three masks (the selection, and the selection times the row and the
    column coordinate) and computes the shifts from them with
    :func:`~libertem.udf.com_fields.center_shifts`; see also
    :class:`~libertem.udf.com.CoMUDF`, which does this as one UDF.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``cx``, ``cy`` (reference, default the detector centre ``sig_shape / 2``),
        ``r`` (radius of the disk, default: the whole frame), ``ri`` (inner radius
        of a ring, default 0), ``flip_y`` and ``scan_rotation`` (degrees), see
        :func:`~libertem.udf.com_fields.apply_correction`.

    Notes
    -----
    Results (nav-shaped): ``field`` (``raw_data`` is the tuple ``(x, y)`` of the
    corrected shifts, ``visualized`` a colour wheel), ``magnitude``,
    ``divergence`` and ``curl`` (only if every scan axis is longer than 1), ``x``
    and ``y``. A frame without intensity in the mask has shift 0. For complex
    data the shifts are complex, and the results are their parts ``x_real``,
    ``y_real``, ``x_imag`` and ``y_imag`` instead. The result set also has
    ``raw_shifts``, the uncorrected ``(y, x)`` shifts.
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        cy, cx = sig_center(self)
        return with_roi(
            parameters,
            {
                "cx": given(parameters, "cx", cx),
                "cy": given(parameters, "cy", cy),
                "r": given(parameters, "r", float("inf")),
                "ri": given(parameters, "ri", 0.0),
                "flip_y": bool(parameters.get("flip_y", False)),
                "scan_rotation": float(given(parameters, "scan_rotation", 0.0)),
            },
        )

    def get_mask_factories(self):
        if len(self.sig_shape) != 2:
            raise ValueError(f"COM needs 2D frames, the dataset has signal shape {self.sig_shape}")
        sy, sx = self.sig_shape
        p = self.parameters
        base = selection_factory(p["cy"], p["cx"], sy, sx, p["r"], p["ri"])
        return com_masks_generic(sy, sx, base)

    def get_use_sparse(self):
        return False

    def get_udf_results(self, udf_results, roi, damage):
        data = udf_results["intensity"].data
        return self.get_generic_results(data[..., 0], data[..., 1], data[..., 2], damage)

    def get_generic_results(self, img_sum, img_y, img_x, damage) -> COMResultSet:
        """Results from the nav-shaped mask sum and first moments."""
        p = self.parameters
        raw_y, raw_x = center_shifts(img_sum, img_y, img_x, p["cy"], p["cx"])
        y, x = apply_correction(raw_y, raw_x, p["scan_rotation"], p["flip_y"])
        if damage is None or damage is True:
            damage = np.ones(np.shape(y), dtype=bool)
        damage = np.asarray(damage, dtype=bool).reshape(np.shape(y))
        if np.iscomplexobj(y):
            results = _complex_results(x, y, damage)
        else:
            results = _real_results(x, y, damage)
        results.raw_shifts = (raw_y, raw_x)
        return results

    def need_rerun(self, old_params: dict, new_params: dict) -> bool:
        """Only the mask geometry needs new data; flip and rotation act on the results."""
        return any(old_params.get(k) != new_params.get(k) for k in _MASK_PARAMS)

    @classmethod
    def get_rpc_definitions(cls):
        return {"guess": ParameterGuessProc}

    @classmethod
    def get_template_helper(cls):
        return ComTemplate


def _simple(values, damage):
    return lambda: visualize_simple(values, damage=damage)


def _real_results(x: np.ndarray, y: np.ndarray, damage: np.ndarray) -> COMResultSet:
    mag = magnitude(y, x)
    field = AnalysisResult(
        raw_data=(x, y),
        visualized=lambda: rgb_from_2dvector(y, x),
        title="field",
        desc="corrected centre-of-mass shift; hue: direction, brightness: length",
        key="field",
        include_in_download=False,
    )
    results = [
        field,
        AnalysisResult(mag, _simple(mag, damage), "magnitude", "length of the shift", "magnitude"),
    ]
    if y.ndim == 2 and min(y.shape) > 1:
        div, curl = divergence(y, x), curl_2d(y, x)
        results += [
            AnalysisResult(
                div, _simple(div, damage), "divergence", "divergence of the field", "divergence"
            ),
            AnalysisResult(curl, _simple(curl, damage), "curl", "curl of the field", "curl"),
        ]
    results += [
        AnalysisResult(x, _simple(x, damage), "x", "x component of the shift", "x"),
        AnalysisResult(y, _simple(y, damage), "y", "y component of the shift", "y"),
    ]
    return COMResultSet(results)


def _complex_results(x: np.ndarray, y: np.ndarray, damage: np.ndarray) -> COMResultSet:
    parts = [
        ("x_real", "x [real]", "real part of the x shift", x.real),
        ("y_real", "y [real]", "real part of the y shift", y.real),
        ("x_imag", "x [imag]", "imaginary part of the x shift", x.imag),
        ("y_imag", "y [imag]", "imaginary part of the y shift", y.imag),
    ]
    return COMResultSet(
        [
            AnalysisResult(values, _simple(values, damage), title, desc, key)
            for key, title, desc, values in parts
        ]
    )
