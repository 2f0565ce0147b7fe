"""Virtual-detector analyses over ApplyMasksUDF: the base, arbitrary masks, single masks."""

from __future__ import annotations

import numpy as np

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    lin_log_results,
)
from libertem.analysis.getroi import get_roi
from libertem.common.viz import visualize_simple
from libertem.udf.masks import ApplyMasksUDF

__all__ = [
    "BaseMasksAnalysis",
    "MasksAnalysis",
    "SingleMaskAnalysis",
    "MasksResultSet",
    "SingleMaskResultSet",
    "get_roi",
    "AnalysisResult",
    "AnalysisResultSet",
    "ApplyMasksUDF",
    "BaseAnalysis",
]


class MasksResultSet(AnalysisResultSet):
    """Results of :class:`MasksAnalysis`: ``mask_0``, ``mask_1``, ..."""


class SingleMaskResultSet(AnalysisResultSet):
    """Results of a single-mask analysis: ``intensity`` and ``intensity_log`` (more keys
    for complex masks)."""


class BaseMasksAnalysis(BaseAnalysis):
    """Analyses that apply masks with :class:`~libertem.udf.masks.ApplyMasksUDF`.

    Subclasses implement :meth:`get_mask_factories`; the parameters
    ``use_sparse``, ``mask_count``, ``mask_dtype`` and ``dtype`` (the preferred input
    dtype) are passed on to the UDF.
    """

    def get_mask_factories(self):
        """The mask factories for ApplyMasksUDF."""
        raise NotImplementedError()

    def get_use_sparse(self):
        """``use_sparse`` for ApplyMasksUDF (parameter ``use_sparse``)."""
        return self.parameters.get("use_sparse")

    def get_preset_mask_count(self):
        """``mask_count`` for ApplyMasksUDF (parameter ``mask_count``)."""
        return self.parameters.get("mask_count")

    def get_preset_mask_dtype(self):
        """``mask_dtype`` for ApplyMasksUDF (parameter ``mask_dtype``)."""
        return self.parameters.get("mask_dtype")

    def get_preset_dtype(self):
        """The preferred input dtype for ApplyMasksUDF (parameter ``dtype``)."""
        return self.parameters.get("dtype")

    def get_roi(self):
        """The ROI of the ``'roi'`` parameter, see :func:`get_roi`."""
        return get_roi(self.parameters, self.nav_shape)

    def get_udf(self) -> ApplyMasksUDF:
        return ApplyMasksUDF(
            mask_factories=self.get_mask_factories(),
            use_sparse=self.get_use_sparse(),
            mask_count=self.get_preset_mask_count(),
            mask_dtype=self.get_preset_mask_dtype(),
            preferred_dtype=self.get_preset_dtype(),
        )


def _damage(damage, shape):
    if damage is None or damage is True:
        return True
    return np.asarray(damage, dtype=bool).reshape(shape)


class MasksAnalysis(BaseMasksAnalysis):
    """Apply arbitrary masks to every frame; results ``mask_0``, ``mask_1``, ...

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``factories`` (a sequence of callables each returning one mask, or one
        callable returning a stack), and optionally ``use_sparse``, ``mask_count``,
        ``mask_dtype``, ``dtype`` (see :class:`BaseMasksAnalysis`) and ``roi`` (see
        :func:`get_roi`).
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        if "factories" not in parameters:
            raise ValueError("MasksAnalysis needs the parameter 'factories'")
        return dict(parameters)

    def get_mask_factories(self):
        return self.parameters["factories"]

    def get_roi(self):
        return get_roi(self.parameters, self.nav_shape)

    def get_udf_results(self, udf_results, roi, damage):
        return self.get_generic_results(udf_results["intensity"].data, damage)

    def get_generic_results(self, data, damage) -> MasksResultSet:
        """Results from the nav-shaped stack of mask intensities ``(*nav, n_masks)``."""
        damage = _damage(damage, data.shape[:-1])

        def results():
            out = []
            for i in range(data.shape[-1]):
                values = data[..., i]
                if values.dtype.kind == "c":
                    out += self.get_complex_results(
                        values, f"mask_{i}", f"mask {i}", f"intensity under mask {i}", damage
                    )
                else:
                    out.append(
                        AnalysisResult(
                            raw_data=values,
                            visualized=lambda v=values: visualize_simple(v, damage=damage),
                            title=f"mask {i}",
                            desc=f"intensity of each frame under mask {i}",
                            key=f"mask_{i}",
                        )
                    )
            return out

        return MasksResultSet(results)


class SingleMaskAnalysis(BaseMasksAnalysis):
    """Base of the analyses with one mask (disk, ring, point).

    Results for real data: ``intensity`` (title ``'intensity [lin]'``) and
    ``intensity_log`` (``'intensity [log]'``, log-scaled image), both with the
    navigation-shaped values as ``raw_data``; complex masks add ``intensity_real``,
    ``intensity_imag``, ``intensity_angle`` and ``intensity_complex``.
    """

    def get_description(self) -> str:
        """Description of the ``intensity`` result."""
        return "intensity of each frame under the mask"

    def get_udf_results(self, udf_results, roi, damage):
        return self.get_generic_results(udf_results["intensity"].data[..., 0], damage)

    def get_generic_results(self, data, damage) -> SingleMaskResultSet:
        """Results from the nav-shaped intensity under the mask."""
        damage = _damage(damage, data.shape)
        desc = self.get_description()
        if data.dtype.kind == "c":
            return SingleMaskResultSet(
                self.get_complex_results(data, "intensity", "intensity", desc, damage)
            )
        return SingleMaskResultSet(lin_log_results(data, desc, damage, log_first=False))


def sig_center(analysis) -> tuple[float, float]:
    """``(cy, cx)`` at the middle of the detector: ``sig_shape / 2``."""
    sy, sx = analysis.sig_shape
    return sy / 2, sx / 2


def given(parameters: dict, key: str, default):
    """``parameters[key]`` unless missing or ``None``."""
    value = parameters.get(key)
    return default if value is None else value


def with_roi(parameters: dict, completed: dict) -> dict:
    """``completed`` plus the ``'roi'`` entry of ``parameters``, if there is one."""
    if parameters.get("roi"):
        completed["roi"] = parameters["roi"]
    return completed
