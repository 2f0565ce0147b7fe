"""Fluctuation electron microscopy (FEM): intensity fluctuations on a ring of each frame."""

from __future__ import annotations

import numpy as np

from libertem.masks import ring
from libertem.udf.classes import UDF

__all__ = ["FEMUDF", "run_fem"]


class FEMUDF(UDF):
    """Standard deviation of the pixel values on a ring of each frame.

    In fluctuation electron microscopy, the variance of the diffracted intensity on
    a ring at a given scattering angle probes medium-range order. Result
    ``'intensity'`` (``kind='nav'``): the standard deviation (population, ``ddof=0``)
    of the pixels with ``rad_in < r <= rad_out`` around ``center``.

    Parameters
    ----------
    center
        Centre ``(y, x)`` of the ring on the detector.
    rad_in, rad_out
        Inner and outer radius.
    """

    def __init__(self, center, rad_in, rad_out):
        if rad_in >= rad_out:
            raise ValueError(f"rad_in={rad_in} must be smaller than rad_out={rad_out}")
        super().__init__(center=tuple(center), rad_in=rad_in, rad_out=rad_out)

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=np.float32)}

    def get_task_data(self):
        sy, sx = tuple(self.meta.dataset_shape.sig)
        cy, cx = self.params.center
        mask = ring(cx, cy, sx, sy, self.params.rad_out, self.params.rad_in)
        if not mask.any():
            raise ValueError(
                f"the ring around {self.params.center} with radii {self.params.rad_in}, "
                f"{self.params.rad_out} contains no pixel of the {sy}x{sx} frame"
            )
        return {"mask": mask}

    def process_frame(self, frame):
        """Standard deviation of the frame's pixels on the ring."""
        self.results.intensity[:] = np.std(frame[self.task_data.mask])


def run_fem(ctx, dataset, center, rad_in, rad_out, roi=None) -> dict:
    """Run :class:`FEMUDF` on ``dataset``.

    Returns
    -------
    dict
        ``{'intensity': BufferWrapper}``: the standard deviation on the ring per frame.
    """
    udf = FEMUDF(center=center, rad_in=rad_in, rad_out=rad_out)
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi)
