"""Crystallinity map: Fourier components of each frame on a ring of spatial frequencies."""

from __future__ import annotations

import numpy as np

from libertem.masks import circular
from libertem.udf.classes import UDF

__all__ = ["CrystallinityUDF", "run_analysis_crystall"]


def fourier_ring(sig_shape, rad_in, rad_out) -> np.ndarray:
    """The frequencies ``rad_in < d <= rad_out`` of a real 2D FFT, as a boolean mask of
    its half spectrum ``(sy, sx // 2 + 1)``.

    ``d`` is measured on the full ``(sy, sx)`` grid from the point ``(sy/2, sx/2)``;
    the grid is moved with :func:`numpy.fft.fftshift` and cut to the columns of the
    half spectrum.
    """
    sy, sx = tuple(sig_shape)
    yy, xx = np.mgrid[0:sy, 0:sx]
    d2 = (yy - sy * 0.5) ** 2 + (xx - sx * 0.5) ** 2
    ring = (d2 <= rad_out**2) & ~(d2 <= rad_in**2)
    return np.fft.fftshift(ring)[:, : sx // 2 + 1]


class CrystallinityUDF(UDF):
    """How crystalline each frame looks: Fourier intensity on a ring of frequencies.

    The diffraction pattern of a crystalline region has sharp, periodic spots, which
    give strong Fourier components at the frequencies of their spacing; amorphous
    regions give a smooth pattern without them. For every frame:

    1. if both ``real_center`` and ``real_rad`` are given, the pixels at most
       ``real_rad`` from ``real_center`` (typically the zero-order beam) are set to 0;
    2. ``intensity`` is the sum of ``|rfft2(frame)|`` over the frequencies of
       :func:`fourier_ring` (``rad_in < d <= rad_out``).

    Result ``'intensity'`` (``kind='nav'``, float32). The parameters are not checked.

    Parameters
    ----------
    rad_in, rad_out
        Inner and outer radius of the frequency ring.
    real_center
        Centre ``(y, x)`` of the disk zeroed in each frame, or ``None``.
    real_rad
        Radius of that disk (0 zeroes the centre pixel), or ``None``.
    """

    def __init__(self, rad_in, rad_out, real_center, real_rad):
        if real_center is not None:
            real_center = tuple(real_center)
        super().__init__(
            rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad
        )

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=np.float32)}

    def get_task_data(self):
        sig_shape = tuple(self.meta.dataset_shape.sig)
        sy, sx = sig_shape
        p = self.params
        keep = np.ones(sig_shape, dtype=bool)
        if p.real_center is not None and p.real_rad is not None:
            cy, cx = p.real_center
            keep &= ~circular(cx, cy, sx, sy, p.real_rad)
        return {"keep": keep, "ring": fourier_ring(sig_shape, p.rad_in, p.rad_out)}

    def process_frame(self, frame):
        """Sum of the Fourier magnitudes of the masked frame on the ring."""
        spectrum = np.abs(np.fft.rfft2(frame * self.task_data.keep))
        self.results.intensity[:] = np.sum(spectrum[self.task_data.ring])


def run_analysis_crystall(
    ctx, dataset, rad_in, rad_out, real_center=None, real_rad=None, roi=None, progress=False
) -> dict:
    """Crystallinity map of ``dataset`` with :class:`CrystallinityUDF`.

    Parameters
    ----------
    ctx, dataset
        Where and what to run on.
    rad_in, rad_out
        Ring of spatial frequencies, in frequency pixels.
    real_center, real_rad
        Disk ``(y, x)``, radius to zero in each frame (e.g. the zero-order beam);
        nothing is zeroed unless both are given.
    roi, progress
        As for ``ctx.run_udf``.

    Returns
    -------
    dict
        ``{'intensity': BufferWrapper}``, one value per frame.
    """
    udf = CrystallinityUDF(
        rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad
    )
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
