"""What the GUI runs: analysis descriptions (JSON) turned into UDFs, ROIs and images.

Each description is a dict with a ``"kind"``:

``navsum``
    The sum over each frame (:class:`~libertem.udf.sumsigudf.SumSigUDF`).
``pick``
    One frame, ``x`` (column) and ``y`` (row) in the navigation image
    (:class:`~libertem.udf.raw.PickUDF`).
``framesum``
    Sum of all frames, or with ``"mean": true`` their average
    (:class:`~libertem.udf.sum.SumUDF`).
``virtual``
    A virtual detector ``"detector"`` (see :func:`detector_call`) applied to every
    frame (:class:`~libertem.udf.masks.ApplyMasksUDF`).
``com``
    Centre of mass with ``"params"`` (the fields of
    :class:`~libertem.udf.com.CoMParams`; :class:`~libertem.udf.com.CoMUDF`).

All kinds but ``pick`` take an optional ``"roi"`` (see :func:`roi_call`). Masks
and ROIs are built from :class:`Call` objects, which are both evaluated here and
written out as code by :mod:`libertem.web.codegen`, so that a downloaded script
computes exactly what the GUI showed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import libertem.masks as masks


class AnalysisError(ValueError):
    """An analysis description that cannot be run on the dataset."""


@dataclass(frozen=True)
class Call:
    """A call of a mask function: ``func(**kwargs)``, or a single-pixel mask.

    Attributes
    ----------
    func
        ``'masks.circular'``, ``'masks.ring'``, ``'ones'`` (everything),
        ``'point'`` (one pixel, ``y`` and ``x``) or ``'box'`` (the pixels of rows
        ``y0:y1`` and columns ``x0:x1``; ``masks.rectangular`` would include both
        end rows and columns, as in LiberTEM).
    kwargs
        Keyword arguments, plain Python numbers.
    """

    func: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, shape: tuple[int, int]) -> np.ndarray:
        """The boolean mask of 2D ``shape``."""
        if self.func == "ones":
            return np.ones(shape, dtype=bool)
        if self.func == "point":
            mask = np.zeros(shape, dtype=bool)
            mask[self.kwargs["y"], self.kwargs["x"]] = True
            return mask
        if self.func == "box":
            k = self.kwargs
            mask = np.zeros(shape, dtype=bool)
            mask[k["y0"] : k["y1"], k["x0"] : k["x1"]] = True
            return mask
        fn = getattr(masks, self.func.split(".", 1)[1])
        return np.asarray(fn(**self.kwargs), dtype=bool)

    def code(self, shape_names: tuple[str, str]) -> list[str]:
        """Python lines that assign the mask to ``mask`` (``numpy as np``, ``masks``)."""
        h, w = shape_names
        if self.func == "ones":
            return [f"mask = np.ones(({h}, {w}), dtype=bool)"]
        if self.func == "point":
            return [
                f"mask = np.zeros(({h}, {w}), dtype=bool)",
                f"mask[{self.kwargs['y']}, {self.kwargs['x']}] = True",
            ]
        if self.func == "box":
            k = self.kwargs
            return [
                f"mask = np.zeros(({h}, {w}), dtype=bool)",
                f"mask[{k['y0']}:{k['y1']}, {k['x0']}:{k['x1']}] = True",
            ]
        args = ", ".join(f"{k}={literal(v)}" for k, v in self.kwargs.items())
        return [f"mask = {self.func}({args})"]


def literal(value) -> str:
    """``value`` as Python source; strings are taken as variable names."""
    if isinstance(value, str):
        return value  # names of variables (the image sizes)
    if isinstance(value, float) and math.isinf(value):
        return 'float("inf")'
    return repr(value)


def as_2d(shape: tuple[int, ...]) -> tuple[int, int]:
    """How the GUI shows a navigation or signal shape as an image ``(height, width)``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (1, shape[0])
    return (int(np.prod(shape[:-1])), shape[-1])


def _number(spec: dict, key: str, what: str, minimum: float | None = None) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnalysisError(f"{what}: {key!r} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise AnalysisError(f"{what}: {key!r} must be at least {minimum}, got {value}")
    return float(value)


def _index(spec: dict, key: str, size: int, what: str) -> int:
    value = int(math.floor(_number(spec, key, what)))
    if not 0 <= value < size:
        raise AnalysisError(f"{what}: {key}={value} is outside 0..{size - 1}")
    return value


def detector_call(spec: dict, sig_2d: tuple[int, int]) -> Call:
    """The mask of a virtual detector on frames of shape ``sig_2d``.

    ``spec["shape"]`` is ``'point'`` (``cx``, ``cy``), ``'disk'`` (``cx``, ``cy``,
    ``r``), ``'ring'`` (``cx``, ``cy``, ``ri``, ``ro``), ``'rect'`` (``x``, ``y``,
    ``width``, ``height``) or ``'whole'``; coordinates are columns (x) and rows (y)
    in pixels.

    Raises
    ------
    AnalysisError
        For an unknown shape or missing or invalid numbers.
    """
    if not isinstance(spec, dict):
        raise AnalysisError(f"detector must be an object, got {spec!r}")
    shape = spec.get("shape")
    sy, sx = sig_2d
    size = {"imageSizeX": "sx", "imageSizeY": "sy"}
    what = f"{shape} detector"
    if shape == "whole":
        return Call("ones")
    if shape == "point":
        return Call(
            "point", {"y": _index(spec, "cy", sy, what), "x": _index(spec, "cx", sx, what)}
        )
    if shape == "disk":
        centre = {"centerX": _number(spec, "cx", what), "centerY": _number(spec, "cy", what)}
        return Call("masks.circular", {**centre, **size, "radius": _number(spec, "r", what, 0)})
    if shape == "ring":
        centre = {"centerX": _number(spec, "cx", what), "centerY": _number(spec, "cy", what)}
        ri, ro = _number(spec, "ri", what, 0), _number(spec, "ro", what, 0)
        if ri > ro:
            raise AnalysisError(f"ring detector: inner radius {ri} exceeds outer radius {ro}")
        return Call("masks.ring", {**centre, **size, "radius": ro, "radius_inner": ri})
    if shape == "rect":
        x, y = int(round(_number(spec, "x", what))), int(round(_number(spec, "y", what)))
        w = int(round(_number(spec, "width", what)))
        h = int(round(_number(spec, "height", what)))
        x0, x1 = sorted((x, x + w))
        y0, y1 = sorted((y, y + h))
        box = {"y0": max(0, y0), "y1": max(0, y1), "x0": max(0, x0), "x1": max(0, x1)}
        return Call("box", box)
    raise AnalysisError(
        f"unknown detector shape {shape!r}; choose point, disk, ring, rect or whole"
    )


def roi_call(spec: dict | None, nav_2d: tuple[int, int]) -> Call | None:
    """The ROI drawn on the navigation image: ``'rect'`` or ``'disk'``, or ``None``.

    The same shapes and keys as :func:`detector_call`, over the navigation image.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("shape") not in ("rect", "disk"):
        raise AnalysisError(f"roi must be a 'rect' or 'disk' shape, got {spec!r}")
    call = detector_call(spec, nav_2d)
    kwargs = {k: ("nx" if v == "sx" else "ny" if v == "sy" else v) for k, v in call.kwargs.items()}
    return Call(call.func, kwargs)


def evaluate_call(call: Call, shape_2d: tuple[int, int]) -> np.ndarray:
    """Evaluate ``call`` with the image-size names bound to ``shape_2d``."""
    h, w = shape_2d
    names = {"sx": w, "sy": h, "nx": w, "ny": h}
    kwargs = {k: names.get(v, v) if isinstance(v, str) else v for k, v in call.kwargs.items()}
    return Call(call.func, kwargs).evaluate(shape_2d)


def com_params(spec: dict) -> dict[str, Any]:
    """Keyword arguments of ``CoMUDF.with_params`` from the GUI's COM parameters.

    ``r`` of ``None`` means the whole frame (``inf``); ``regression`` is -1, 0 or 1.
    """
    if not isinstance(spec, dict):
        raise AnalysisError(f"COM parameters must be an object, got {spec!r}")
    what = "centre of mass"
    out: dict[str, Any] = {
        "cy": _number(spec, "cy", what),
        "cx": _number(spec, "cx", what),
        "r": float("inf") if spec.get("r") is None else _number(spec, "r", what, 0),
        "ri": _number({"ri": spec.get("ri", 0.0)}, "ri", what, 0),
        "scan_rotation": _number({"s": spec.get("scan_rotation", 0.0)}, "s", what),
        "flip_y": bool(spec.get("flip_y", False)),
        "regression": spec.get("regression", -1),
    }
    if out["regression"] not in (-1, 0, 1):
        raise AnalysisError(f"regression must be -1, 0 or 1, got {out['regression']!r}")
    if out["ri"] > out["r"]:
        raise AnalysisError(f"inner radius {out['ri']} exceeds the radius {out['r']}")
    return out
