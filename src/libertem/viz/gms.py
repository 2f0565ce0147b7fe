"""Live plots in Gatan Microscopy Suite (GMS), through its ``DigitalMicrograph`` module."""

from __future__ import annotations

import numpy as np

from libertem.viz.base import Live2DPlot

__all__ = ["GMSLive2DPlot", "Live2DPlot"]


def _dm():
    try:
        import DigitalMicrograph
    except ImportError as e:
        raise ImportError(
            "GMSLive2DPlot runs inside Gatan Microscopy Suite, whose Python has the "
            "DigitalMicrograph module"
        ) from e
    return DigitalMicrograph


class GMSLive2DPlot(Live2DPlot):
    """A live plot shown as an image window in Gatan Microscopy Suite.

    :meth:`display` creates a GMS image from :attr:`data` with
    ``DigitalMicrograph.CreateImage``, names it after the title and shows it;
    :meth:`update` writes the new data into the image's array
    (``GetNumArray``) and calls ``UpdateImage`` so that GMS redraws it.

    Parameters
    ----------
    dataset, udf, roi, channel, title, min_delta, udfresult
        See :class:`~libertem.viz.base.Live2DPlot`.

    Attributes
    ----------
    image
        The ``Py_Image`` of GMS, once :meth:`display` ran.
    """

    def __init__(
        self,
        dataset,
        udf,
        roi=None,
        channel=None,
        title=None,
        min_delta: float = 0.2,
        udfresult=None,
    ):
        super().__init__(dataset, udf, roi, channel, title, min_delta, udfresult)
        self.image = None

    def _frame(self) -> np.ndarray:
        """:attr:`data` as GMS shows it: float32, NaN (no result yet) as 0."""
        return np.nan_to_num(np.asarray(self.data, dtype=np.float32), nan=0.0)

    def display(self):
        """Create the GMS image and show its window.

        Returns
        -------
        Py_Image
        """
        dm = _dm()
        self.image = dm.CreateImage(self._frame().copy())
        self.image.SetName(self.title)
        self.image.ShowImage()
        self.displayed = True
        return self.image

    def update(self, damage, force: bool = False) -> None:
        """Write :attr:`data` into the GMS image and let GMS redraw it."""
        if self.image is None:
            return
        target = self.image.GetNumArray()
        target[...] = self._frame().reshape(target.shape)
        self.image.UpdateImage()
