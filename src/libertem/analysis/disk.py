"""Virtual detector: the intensity of each frame within a disk."""

from __future__ import annotations

import functools

from libertem import masks
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.masks import SingleMaskAnalysis, given, sig_center, with_roi

__all__ = ["DiskMaskAnalysis", "DiskTemplate"]


class DiskTemplate(GeneratorHelper):
    """Code for :class:`DiskMaskAnalysis`."""

    short_name = "disk"
    api = "create_disk_analysis"
    api_params = {"cx": "cx", "cy": "cy", "r": "r"}

    def get_docs(self) -> str:
        return self.format_docs(
            "Disk analysis",
            "The intensity of each frame within a disk of radius ``r`` around "
            "``(cx, cy)``: a virtual bright-field or annular detector.",
        )


class DiskMaskAnalysis(SingleMaskAnalysis):
    """Sum of each frame over the pixels at most ``r`` from ``(cx, cy)``.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``cx``, ``cy`` (default: the detector centre, ``sig_shape / 2``), ``r``
        (default: a quarter of the smaller detector side), optionally ``use_sparse``.
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        cy, cx = sig_center(self)
        r = given(parameters, "r", min(self.sig_shape) / 4)
        if r < 0:
            raise ValueError(f"radius r={r} must not be negative")
        return with_roi(
            parameters,
            {
                "cx": given(parameters, "cx", cx),
                "cy": given(parameters, "cy", cy),
                "r": r,
                "use_sparse": parameters.get("use_sparse"),
            },
        )

    def get_mask_factories(self):
        sy, sx = self.sig_shape
        p = self.parameters
        return [functools.partial(masks.circular, p["cx"], p["cy"], sx, sy, p["r"])]

    def get_description(self) -> str:
        p = self.parameters
        return f"intensity within the disk of radius {p['r']} around ({p['cx']}, {p['cy']})"

    def need_rerun(self, old_params, new_params) -> bool:
        return any(old_params.get(k) != new_params.get(k) for k in ("cx", "cy", "r"))

    @classmethod
    def get_template_helper(cls):
        return DiskTemplate
