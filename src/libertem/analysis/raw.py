"""Pick one frame, as an analysis."""

from __future__ import annotations

import numpy as np

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    lin_log_results,
)
from libertem.analysis.helper import GeneratorHelper
from libertem.udf.raw import PickUDF

__all__ = [
    "PickFrameAnalysis",
    "PickResultSet",
    "PickTemplate",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "GeneratorHelper",
    "PickUDF",
]

_AXES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


class PickResultSet(AnalysisResultSet):
    """Results of :class:`PickFrameAnalysis`: ``intensity`` (log-scaled image) and
    ``intensity_lin`` of the same frame; more keys for complex data."""


class PickTemplate(GeneratorHelper):
    """Code for :class:`PickFrameAnalysis`."""

    short_name = "pick"
    api = "create_pick_analysis"
    api_params = {"x": "x", "y": "y", "z": "z"}

    def convert_params(self) -> str:
        return ", ".join(
            f"{k}={int(self.params[k])!r}"
            for k in ("x", "y", "z")
            if self.params.get(k) is not None
        )

    def get_docs(self) -> str:
        return self.format_docs("Pick frame", "The frame at one scan position.")

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('picked frame')\n"
            f"axes.imshow({self.result_name}.intensity.raw_data)"
        ]


class PickFrameAnalysis(BaseAnalysis):
    """The frame at one scan position: ``x`` for a 1D scan, ``(y, x)`` 2D, ``(z, y, x)`` 3D.

    The coordinates are checked when the analysis runs (when its ROI is made, see
    :meth:`get_roi`), not when it is created.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``x``, and ``y`` and ``z`` as the scan has axes; exactly the coordinates of
        the scan's axes must be given (not ``None``).

    Notes
    -----
    Results for real data: ``intensity`` (title ``'intensity [log]'``, log-scaled
    image) and ``intensity_lin`` (``'intensity [lin]'``), both the frame in the
    dataset's dtype. Complex frames give ``intensity_lin``, ``intensity``,
    ``intensity_real``, ``intensity_imag``, ``intensity_angle`` and
    ``intensity_complex``.
    """

    TYPE = "UDF"

    def _checked_origin(self) -> tuple[int, ...]:
        nav = self.nav_shape
        names = _AXES.get(len(nav))
        if names is None:
            raise ValueError(f"pick analysis supports 1 to 3 scan dimensions, not {nav}")
        given = {n for n in ("x", "y", "z") if self.parameters.get(n) is not None}
        missing = [n for n in names if n not in given]
        if missing:
            raise ValueError(f"a scan of shape {nav} needs {', '.join(names)}; missing {missing}")
        extra = sorted(given - set(names))
        if extra:
            raise ValueError(f"a scan of shape {nav} has no coordinate {', '.join(extra)}")
        coords = tuple(int(self.parameters[n]) for n in names)
        if not all(0 <= c < n for c, n in zip(coords, nav)):
            raise ValueError(f"scan position {coords} lies outside the scan of shape {nav}")
        return coords

    def get_origin(self) -> tuple[int, ...]:
        """The scan position as an index of the navigation axes, e.g. ``(y, x)``.

        Raises
        ------
        ValueError
            If the coordinates do not fit the scan (see the class description).
        """
        return self._checked_origin()

    def get_coords(self) -> int:
        """The flat navigation index of the frame."""
        return int(np.ravel_multi_index(self.get_origin(), self.nav_shape))

    def get_udf(self) -> PickUDF:
        return PickUDF()

    def get_roi(self) -> np.ndarray:
        """A navigation mask that selects the frame.

        Raises
        ------
        ValueError
            For a scan of other than 1 to 3 dimensions, a missing coordinate, a
            coordinate the scan does not have, or a position outside the scan.
        """
        roi = np.zeros(self.nav_shape, dtype=bool)
        roi[self.get_origin()] = True
        return roi

    def get_udf_results(self, udf_results, roi, damage) -> PickResultSet:
        frames = udf_results["intensity"].data
        if frames.shape[0] != 1:
            raise ValueError(f"expected one picked frame, got {frames.shape[0]}")
        return self.get_generic_results(frames[0], damage)

    def get_generic_results(self, data, damage) -> PickResultSet:
        """Results from the picked frame."""
        desc = "the frame at the picked scan position"
        if data.dtype.kind == "c":
            return PickResultSet(
                self.get_complex_results(data, "intensity", "intensity", desc, True, False)
            )
        return PickResultSet(lin_log_results(data, desc, True, log_first=True))

    @classmethod
    def get_template_helper(cls):
        return PickTemplate
