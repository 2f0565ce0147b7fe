"""Virtual detector: the intensity of each frame within a ring."""

from __future__ import annotations

import functools

from libertem import masks
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.masks import SingleMaskAnalysis, given, sig_center, with_roi

__all__ = ["RingMaskAnalysis", "RingTemplate"]


class RingTemplate(GeneratorHelper):
    """Code for :class:`RingMaskAnalysis`."""

    short_name = "ring"
    api = "create_ring_analysis"
    api_params = {"cx": "cx", "cy": "cy", "ri": "ri", "ro": "ro"}

    def get_docs(self) -> str:
        return self.format_docs(
            "Ring analysis",
            "The intensity of each frame within the ring ``ri < r <= ro`` around "
            "``(cx, cy)``: a virtual annular dark-field detector.",
        )


class RingMaskAnalysis(SingleMaskAnalysis):
    """Sum of each frame over the ring ``ri < distance <= ro`` around ``(cx, cy)``.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``cx``, ``cy`` (default: the detector centre), ``ro`` (default: half the
        smaller detector side), ``ri`` (default: ``0.8 * ro``), optionally
        ``use_sparse``.
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        cy, cx = sig_center(self)
        ro = given(parameters, "ro", min(self.sig_shape) / 2)
        ri = given(parameters, "ri", ro * 0.8)
        if not 0 <= ri <= ro:
            raise ValueError(f"radii must satisfy 0 <= ri <= ro, got ri={ri}, ro={ro}")
        return with_roi(
            parameters,
            {
                "cx": given(parameters, "cx", cx),
                "cy": given(parameters, "cy", cy),
                "ri": ri,
                "ro": ro,
                "use_sparse": parameters.get("use_sparse"),
            },
        )

    def get_mask_factories(self):
        sy, sx = self.sig_shape
        p = self.parameters
        return [functools.partial(masks.ring, p["cx"], p["cy"], sx, sy, p["ro"], p["ri"])]

    def get_description(self) -> str:
        p = self.parameters
        return (
            f"intensity within the ring {p['ri']} < r <= {p['ro']} around ({p['cx']}, {p['cy']})"
        )

    def need_rerun(self, old_params, new_params) -> bool:
        return any(old_params.get(k) != new_params.get(k) for k in ("cx", "cy", "ri", "ro"))

    @classmethod
    def get_template_helper(cls):
        return RingTemplate
