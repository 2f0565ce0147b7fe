"""Virtual detector: the value of one detector pixel in each frame."""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse

from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.masks import SingleMaskAnalysis, given, with_roi

__all__ = ["PointMaskAnalysis", "PointTemplate", "point_mask"]


def point_mask(x: int, y: int, imageSizeX: int, imageSizeY: int) -> scipy.sparse.csr_matrix:
    """A sparse mask with a single 1 at row ``y``, column ``x``."""
    return scipy.sparse.csr_matrix(
        (np.array([1.0], dtype=np.float32), (np.array([y]), np.array([x]))),
        shape=(imageSizeY, imageSizeX),
    )


class PointTemplate(GeneratorHelper):
    """Code for :class:`PointMaskAnalysis`."""

    short_name = "point"
    api = "create_point_analysis"
    api_params = {"x": "x", "y": "y"}

    def get_docs(self) -> str:
        return self.format_docs(
            "Point analysis", "The value of the detector pixel (column ``x``, row ``y``)."
        )


class PointMaskAnalysis(SingleMaskAnalysis):
    """The value of detector pixel (column ``x``, row ``y``) in each frame.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``x``, ``y`` (default: the detector centre).
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        sy, sx = self.sig_shape
        x = int(given(parameters, "x", sx // 2))
        y = int(given(parameters, "y", sy // 2))
        if not (0 <= x < sx and 0 <= y < sy):
            raise ValueError(f"point (x={x}, y={y}) lies outside the frame of shape {(sy, sx)}")
        return with_roi(parameters, {"x": x, "y": y})

    def get_mask_factories(self):
        sy, sx = self.sig_shape
        return [functools.partial(point_mask, self.parameters["x"], self.parameters["y"], sx, sy)]

    def get_use_sparse(self):
        return "scipy.sparse"

    def get_description(self) -> str:
        return f"value of pixel (x={self.parameters['x']}, y={self.parameters['y']})"

    @classmethod
    def get_template_helper(cls):
        return PointTemplate
