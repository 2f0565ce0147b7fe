"""A run of the GUI, planned: the UDF, the ROI, how to read its results, and its code.

:func:`make_plan` turns an analysis description (see :mod:`libertem.web.analyses`)
into a :class:`Plan` for one dataset. The plan knows the Python code of each step,
which :mod:`libertem.web.codegen` writes into the downloadable script; the arrays
offered for download are read from the results the same way that code reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from libertem.udf.base import UDF
from libertem.web.analyses import (
    AnalysisError,
    Call,
    as_2d,
    com_params,
    detector_call,
    evaluate_call,
    literal,
    roi_call,
)

Reader = Callable[[Mapping, int], np.ndarray]


@dataclass
class Plan:
    """Everything about one run but its execution.

    Attributes
    ----------
    kind, label
        The analysis kind and a short name for files (``'ring'``, ``'com'``, ...).
    title
        A human-readable description.
    udf
        The UDF to run.
    roi
        Navigation-shaped boolean ROI, or ``None``.
    roi_call
        How the ROI is made (over the 2D navigation image), or ``None``.
    imports
        Import lines the code needs.
    udf_code
        Lines that assign ``udf`` (may use ``sy``, ``sx``, ``np``, ``masks``).
    outputs
        Channel name -> (Python expression over ``result`` and ``n_frames``, reader of
        the same value from the result buffers).
    nav_kind
        Whether the channels are navigation images (otherwise: frames).
    """

    kind: str
    label: str
    title: str
    udf: UDF
    roi: np.ndarray | None
    roi_call: Call | None
    imports: list[str]
    udf_code: list[str]
    outputs: dict[str, tuple[str, Reader]]
    nav_kind: bool
    params: dict = field(default_factory=dict)

    def n_frames(self, nav_shape: tuple[int, ...]) -> int:
        """How many frames the run processes."""
        if self.roi is None:
            return int(np.prod(nav_shape))
        return int(np.count_nonzero(self.roi))

    def arrays(self, buffers: Mapping, n_frames: int) -> dict[str, np.ndarray]:
        """The results as the Python API gives them (what the downloads hold)."""
        outputs = self.outputs.items()
        return {name: np.asarray(read(buffers, n_frames)) for name, (_, read) in outputs}


def _mask_udf_code(call: Call) -> list[str]:
    body = ["    " + line for line in call.code(("sy", "sx"))]
    return [
        "def detector():",
        *body,
        "    return mask.reshape(sig_shape)",
        "",
        "udf = ApplyMasksUDF(mask_factories=[detector])",
    ]


def make_plan(spec: dict, nav_shape: tuple[int, ...], sig_shape: tuple[int, ...]) -> Plan:
    """Plan the analysis described by ``spec`` on a dataset of the given shapes.

    Raises
    ------
    AnalysisError
        If the description is invalid for this dataset.
    """
    if not isinstance(spec, dict):
        raise AnalysisError(f"analysis must be an object, got {spec!r}")
    nav_shape, sig_shape = tuple(nav_shape), tuple(sig_shape)
    nav_2d, sig_2d = as_2d(nav_shape), as_2d(sig_shape)
    kind = spec.get("kind")
    if kind == "pick":
        call = Call(
            "point",
            {
                "y": _pick_index(spec, "y", nav_2d[0]),
                "x": _pick_index(spec, "x", nav_2d[1]),
            },
        )
        roi_c: Call | None = call
    else:
        roi_c = roi_call(spec.get("roi"), nav_2d)
    roi = None if roi_c is None else evaluate_call(roi_c, nav_2d).reshape(nav_shape)
    if roi is not None and not roi.any():
        raise AnalysisError("the ROI selects no frame")
    common = {"roi": roi, "roi_call": roi_c}
    if kind == "navsum":
        from libertem.udf.sumsigudf import SumSigUDF

        return Plan(
            kind="navsum",
            label="framesums",
            title="sum over each frame",
            udf=SumSigUDF(),
            imports=["from libertem.udf.sumsigudf import SumSigUDF"],
            udf_code=["udf = SumSigUDF()"],
            outputs={"intensity": ('result["intensity"].data', lambda b, n: b["intensity"].data)},
            nav_kind=True,
            **common,
        )
    if kind == "pick":
        from libertem.udf.raw import PickUDF

        y, x = roi_c.kwargs["y"], roi_c.kwargs["x"]
        return Plan(
            kind="pick",
            label=f"frame_y{y}_x{x}",
            title=f"frame at y={y}, x={x}",
            udf=PickUDF(),
            imports=["from libertem.udf.raw import PickUDF"],
            udf_code=["udf = PickUDF()"],
            outputs={
                "intensity": (
                    'result["intensity"].data[0].reshape(sig_2d)',
                    lambda b, n: b["intensity"].data[0].reshape(sig_2d),
                )
            },
            nav_kind=False,
            params={"x": x, "y": y},
            **common,
        )
    if kind == "framesum":
        from libertem.udf.sum import SumUDF

        mean = bool(spec.get("mean", False))
        what = "average" if mean else "sum"
        where = " of the ROI" if roi is not None else ""
        if mean:
            out = ('result["intensity"].data.reshape(sig_2d) / n_frames', _mean_reader(sig_2d))
        else:
            out = (
                'result["intensity"].data.reshape(sig_2d)',
                lambda b, n: b["intensity"].data.reshape(sig_2d),
            )
        return Plan(
            kind="framesum",
            label=("average" if mean else "sum") + ("_roi" if roi is not None else ""),
            title=f"{what} of all frames{where}",
            udf=SumUDF(),
            imports=["from libertem.udf.sum import SumUDF"],
            udf_code=["udf = SumUDF()"],
            outputs={"intensity": out},
            nav_kind=False,
            params={"mean": mean},
            **common,
        )
    if kind == "virtual":
        from libertem.udf.masks import ApplyMasksUDF

        detector = spec.get("detector")
        call = detector_call(detector, sig_2d)
        udf = ApplyMasksUDF(
            mask_factories=[lambda: evaluate_call(call, sig_2d).reshape(sig_shape)]
        )
        return Plan(
            kind="virtual",
            label=f"virtual_{detector['shape']}",
            title=f"virtual image of a {detector['shape']} detector",
            udf=udf,
            imports=[
                "import libertem.masks as masks",
                "from libertem.udf.masks import ApplyMasksUDF",
            ],
            udf_code=_mask_udf_code(call),
            outputs={
                "intensity": (
                    'result["intensity"].data[..., 0]',
                    lambda b, n: b["intensity"].data[..., 0],
                )
            },
            nav_kind=True,
            params={"detector": call},
            **common,
        )
    if kind == "com":
        from libertem.udf.com import CoMUDF

        if len(sig_shape) != 2:
            raise AnalysisError(f"centre of mass needs 2D frames, not {sig_shape}")
        params = com_params(spec.get("params"))
        args = ", ".join(f"{k}={literal(v)}" for k, v in params.items())
        outputs = {
            "field": ('result["field"].data', _buffer("field")),
            "field_y": ('result["field"].data[..., 0]', _component(0)),
            "field_x": ('result["field"].data[..., 1]', _component(1)),
        }
        for name in ("magnitude", "divergence", "curl"):
            outputs[name] = (f'result["{name}"].data', _buffer(name))
        return Plan(
            kind="com",
            label="com",
            title="centre of mass",
            udf=CoMUDF.with_params(**params),
            imports=["from libertem.udf.com import CoMUDF"],
            udf_code=[f"udf = CoMUDF.with_params({args})"],
            outputs=outputs,
            nav_kind=True,
            params=params,
            **common,
        )
    raise AnalysisError(
        f"unknown analysis kind {kind!r}; choose navsum, pick, framesum, virtual or com"
    )


def _pick_index(spec: dict, key: str, size: int) -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise AnalysisError(f"pick: {key} must be an integer in 0..{size - 1}, got {value!r}")
    return value


def _mean_reader(sig_2d: tuple[int, int]) -> Reader:
    return lambda b, n: b["intensity"].data.reshape(sig_2d) / n


def _buffer(name: str) -> Reader:
    return lambda b, n: b[name].data


def _component(index: int) -> Reader:
    return lambda b, n: b["field"].data[..., index]
