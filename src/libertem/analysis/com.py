"""Centre of mass (differential phase contrast), as an analysis over CoMUDF."""

from __future__ import annotations

from libertem.analysis.base import (
    Analysis,
    AnalysisResult,
    AnalysisResultSet,
    field_to_rgb,
    visualize_simple,
)
from libertem.udf.com import CoMUDF

__all__ = ["COMAnalysis"]


class COMAnalysis(Analysis):
    """Centre-of-mass shifts of each frame within a disk, and what follows from them.

    Parameters
    ----------
    dataset
        The dataset.
    cx, cy
        Reference position on the detector (column, row).
    mask_radius
        Radius of the disk around ``(cx, cy)`` taken into account; ``None``: whole frame.
    flip_y, scan_rotation
        Correction from detector to scan coordinates (rotation in degrees), see
        :func:`libertem.udf.com.apply_correction`.

    Notes
    -----
    Results: ``field`` (``raw_data`` of shape ``(*nav, 2)`` holding the corrected
    ``(y, x)`` shift; visualized as a colour wheel), ``magnitude``, ``divergence`` and
    ``curl`` (2D scans only), ``x`` and ``y`` (the corrected shift components).
    """

    def __init__(
        self,
        dataset,
        cx: float | None = None,
        cy: float | None = None,
        mask_radius: float | None = None,
        flip_y: bool = False,
        scan_rotation: float = 0.0,
    ):
        super().__init__(
            dataset,
            {
                "cx": cx,
                "cy": cy,
                "r": mask_radius,
                "flip_y": flip_y,
                "scan_rotation": scan_rotation,
            },
        )

    def get_udf(self) -> CoMUDF:
        p = self.parameters
        return CoMUDF(
            cx=p["cx"], cy=p["cy"], r=p["r"], flip_y=p["flip_y"], scan_rotation=p["scan_rotation"]
        )

    def get_udf_results(self, udf_results, roi) -> AnalysisResultSet:
        fy = udf_results["field_y"].data
        fx = udf_results["field_x"].data
        results = [
            AnalysisResult(
                raw_data=udf_results["field"].data,
                visualized=field_to_rgb(fy, fx),
                key="field",
                title="field",
                desc="corrected centre-of-mass shift (y, x); hue: direction, brightness: length",
            ),
            AnalysisResult(
                raw_data=udf_results["magnitude"].data,
                visualized=visualize_simple(udf_results["magnitude"].data),
                key="magnitude",
                title="magnitude",
                desc="length of the centre-of-mass shift",
            ),
        ]
        for key, desc in (
            ("divergence", "divergence of the field"),
            ("curl", "curl of the field"),
        ):
            if key in udf_results:
                data = udf_results[key].data
                results.append(AnalysisResult(data, visualize_simple(data), key, key, desc))
        results += [
            AnalysisResult(fx, visualize_simple(fx), "x", "x shift", "corrected x shift"),
            AnalysisResult(fy, visualize_simple(fy), "y", "y shift", "corrected y shift"),
        ]
        return AnalysisResultSet(results, raw_results=udf_results)
