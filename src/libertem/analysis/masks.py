"""Virtual-detector analyses: arbitrary masks, disk, ring and point, via ApplyMasksUDF."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import sparse

from libertem import masks
from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet, visualize_simple
from libertem.udf.masks import ApplyMasksUDF

__all__ = ["MasksAnalysis", "DiskMaskAnalysis", "RingMaskAnalysis", "PointMaskAnalysis"]


def _point_mask(x: int, y: int, imageSizeX: int, imageSizeY: int) -> sparse.COO:
    """A sparse mask with a single 1 at row ``y``, column ``x``."""
    return sparse.COO(
        np.array([[y], [x]]), np.array([1.0], dtype=np.float32), shape=(imageSizeY, imageSizeX)
    )


class MasksAnalysis(Analysis):
    """Apply masks to every frame; results ``mask_0``, ``mask_1``, ... (nav-shaped).

    Parameters
    ----------
    dataset
        The dataset.
    factories
        A sequence of callables each returning one mask of the signal shape, or one
        callable returning a stack ``(n, *sig_shape)``; see
        :class:`~libertem.udf.masks.ApplyMasksUDF`.
    use_sparse, mask_count, mask_dtype, preferred_dtype
        Passed to :class:`~libertem.udf.masks.ApplyMasksUDF`.
    """

    def __init__(
        self,
        dataset,
        factories: Callable | Sequence[Callable],
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype=None,
        preferred_dtype=None,
    ):
        super().__init__(
            dataset,
            {
                "factories": factories,
                "use_sparse": use_sparse,
                "mask_count": mask_count,
                "mask_dtype": mask_dtype,
                "preferred_dtype": preferred_dtype,
            },
        )

    def get_udf(self) -> ApplyMasksUDF:
        p = self.parameters
        return ApplyMasksUDF(
            mask_factories=p["factories"],
            use_sparse=p["use_sparse"],
            mask_count=p["mask_count"],
            mask_dtype=p["mask_dtype"],
            preferred_dtype=p["preferred_dtype"],
        )

    def get_udf_results(self, udf_results, roi) -> AnalysisResultSet:
        intensity = udf_results["intensity"].data
        results = []
        for i in range(intensity.shape[-1]):
            data = intensity[..., i]
            results.append(
                AnalysisResult(
                    raw_data=data,
                    visualized=visualize_simple(data),
                    key=f"mask_{i}",
                    title=f"mask {i}",
                    desc=f"intensity of each frame under mask {i}",
                )
            )
        return AnalysisResultSet(results, raw_results=udf_results)


class _SingleMaskAnalysis(MasksAnalysis):
    """A mask analysis with one mask; its result is called ``intensity``."""

    TITLE = "intensity"
    DESC = "intensity of each frame under the mask"

    def __init__(self, dataset, factory: Callable, parameters: dict):
        super().__init__(dataset, [factory])
        self.parameters.update(parameters)

    def get_udf_results(self, udf_results, roi) -> AnalysisResultSet:
        data = udf_results["intensity"].data[..., 0]
        result = AnalysisResult(
            raw_data=data,
            visualized=visualize_simple(data),
            key="intensity",
            title=self.TITLE,
            desc=self.DESC,
        )
        return AnalysisResultSet([result], raw_results=udf_results)


class DiskMaskAnalysis(_SingleMaskAnalysis):
    """Integrate each frame over a disk of radius ``r`` around ``(cx, cy)``.

    Pixels whose centre lies at most ``r`` from ``(cx, cy)`` count
    (:func:`libertem.masks.circular`). Result ``intensity`` (nav-shaped).
    """

    TITLE = "disk intensity"
    DESC = "intensity of each frame within the disk"

    def __init__(self, dataset, cx: float, cy: float, r: float):
        sy, sx = tuple(dataset.shape.sig)
        factory = functools.partial(masks.circular, cx, cy, sx, sy, r)
        super().__init__(dataset, factory, {"cx": cx, "cy": cy, "r": r})


class RingMaskAnalysis(_SingleMaskAnalysis):
    """Integrate each frame over the ring ``ri < distance <= ro`` around ``(cx, cy)``.

    See :func:`libertem.masks.ring`. Result ``intensity`` (nav-shaped).
    """

    TITLE = "ring intensity"
    DESC = "intensity of each frame within the ring"

    def __init__(self, dataset, cx: float, cy: float, ri: float, ro: float):
        sy, sx = tuple(dataset.shape.sig)
        factory = functools.partial(masks.ring, cx, cy, sx, sy, ro, ri)
        super().__init__(dataset, factory, {"cx": cx, "cy": cy, "ri": ri, "ro": ro})


class PointMaskAnalysis(_SingleMaskAnalysis):
    """The value of detector pixel (row ``y``, column ``x``) in each frame.

    Result ``intensity`` (nav-shaped).
    """

    TITLE = "point intensity"
    DESC = "value of one detector pixel in each frame"

    def __init__(self, dataset, x: int, y: int):
        sy, sx = tuple(dataset.shape.sig)
        if not (0 <= int(x) < sx and 0 <= int(y) < sy):
            raise ValueError(f"point (x={x}, y={y}) lies outside the frame of shape {(sy, sx)}")
        factory = functools.partial(_point_mask, int(x), int(y), sx, sy)
        super().__init__(dataset, factory, {"x": x, "y": y})
