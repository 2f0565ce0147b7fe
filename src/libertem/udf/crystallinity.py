"""Crystallinity map: Fourier components of each frame on a ring of spatial frequencies."""

from __future__ import annotations

import numpy as np

from libertem.masks import circular
from libertem.udf.base import UDF

__all__ = ["CrystallinityUDF", "run_analysis_crystall"]


class CrystallinityUDF(UDF):
    """How crystalline each frame looks: Fourier intensity on a ring of frequencies.

    The diffraction pattern of a crystalline region has sharp, periodic spots, which
    give strong Fourier components at the frequencies of their spacing; amorphous
    regions give a smooth pattern without them. For each frame, the values are
    shifted to be non-negative and compressed with a power of 0.1 (so that weak
    spots count), a disk around ``real_center`` (typically the zero-order beam) is
    cut out, and the magnitude of the 2D real FFT is summed over the frequencies
    ``rad_in < |k| <= rad_out`` (in units of frequency pixels, ``|k|`` from the
    zero frequency). Result ``'intensity'`` (``kind='nav'``).

    Parameters
    ----------
    rad_in, rad_out
        Inner and outer radius of the frequency ring.
    real_center
        Centre ``(y, x)`` of the disk cut out of each frame.
    real_rad
        Radius of that disk; 0 (or ``None``) cuts out nothing.
    """

    def __init__(self, rad_in, rad_out, real_center, real_rad):
        if rad_in >= rad_out:
            raise ValueError(f"rad_in={rad_in} must be smaller than rad_out={rad_out}")
        super().__init__(
            rad_in=rad_in, rad_out=rad_out, real_center=tuple(real_center), real_rad=real_rad
        )

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=np.float32)}

    def get_task_data(self):
        sy, sx = tuple(self.meta.dataset_shape.sig)
        p = self.params
        real_mask = np.ones((sy, sx))
        if p.real_rad:
            cy, cx = p.real_center
            real_mask[circular(cx, cy, sx, sy, p.real_rad)] = 0
        ky = np.fft.fftfreq(sy) * sy
        kx = np.fft.rfftfreq(sx) * sx
        k = np.hypot(ky[:, np.newaxis], kx[np.newaxis, :])
        fourier_mask = (k > p.rad_in) & (k <= p.rad_out)
        if not fourier_mask.any():
            raise ValueError(
                f"no frequency of a {sy}x{sx} frame lies in the ring {p.rad_in} < |k| <= "
                f"{p.rad_out}"
            )
        return {"real_mask": real_mask, "fourier_mask": fourier_mask}

    def process_frame(self, frame):
        """Sum of the Fourier magnitudes of the prepared frame on the ring."""
        scaled = (frame + np.abs(np.min(frame))) ** 0.1
        spectrum = np.abs(np.fft.rfft2(scaled * self.task_data.real_mask))
        self.results.intensity[:] = np.sum(spectrum[self.task_data.fourier_mask])


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
        Disk ``(y, x)``, radius to cut out of each frame (e.g. the zero-order beam);
        by default nothing is cut out.
    roi, progress
        As for ``ctx.run_udf``.

    Returns
    -------
    dict
        ``{'intensity': BufferWrapper}``, one value per frame.
    """
    if real_center is None or real_rad is None:
        real_center, real_rad = (0, 0), 0
    udf = CrystallinityUDF(
        rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad
    )
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
