"""The navigation ROI that analysis parameters describe (``parameters['roi']``)."""

from __future__ import annotations

import numpy as np

from libertem import masks

__all__ = ["get_roi"]


def get_roi(params: dict, shape) -> np.ndarray | None:
    """A navigation ROI from the ``'roi'`` entry of analysis parameters.

    Parameters
    ----------
    params
        Analysis parameters; ``params['roi']`` (optional) is
        ``{'shape': 'disk', 'cx': ..., 'cy': ..., 'r': ...}`` (see
        :func:`libertem.masks.circular`) or
        ``{'shape': 'rect', 'x': ..., 'y': ..., 'width': ..., 'height': ...}`` (see
        :func:`libertem.masks.rectangular`: both end rows and columns are included),
        in scan coordinates.
    shape
        Navigation shape ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray or None
        Boolean mask of ``shape``; ``None`` if the parameters hold no ROI with a
        ``'shape'``.

    Raises
    ------
    NotImplementedError
        For a ROI shape other than ``'disk'`` and ``'rect'``.
    """
    roi = params.get("roi") or {}
    if "shape" not in roi:
        return None
    ny, nx = tuple(shape)
    kind = roi["shape"]
    if kind == "disk":
        return masks.circular(roi["cx"], roi["cy"], nx, ny, roi["r"])
    if kind == "rect":
        return masks.rectangular(roi["x"], roi["y"], roi["width"], roi["height"], nx, ny)
    raise NotImplementedError(f"unknown ROI shape {kind!r}; supported are 'disk' and 'rect'")
