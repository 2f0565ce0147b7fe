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

    The GMS image is created with the plot: ``DigitalMicrograph.CreateImage`` of
    :attr:`data`, named after the title. :meth:`display` shows it and turns GMS's
    auto-survey off; :meth:`update` sets the contrast limits (the robust range of the
    valid pixels, see ``libertem.viz.base._get_stat_limits``), writes :attr:`data`
    into the image's array (``GetNumArray``) and calls ``UpdateImage``.

    Parameters
    ----------
    dataset, udf, roi, channel, title, min_delta, udfresult
        See :class:`~libertem.viz.base.Live2DPlot`.

    Attributes
    ----------
    image
        The ``Py_Image`` of GMS.
    window
        What ``ShowImage`` returned, once :meth:`display` ran.
    disp
        The image's display 0, once :meth:`display` ran.
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
        dm = _dm()
        self.image = dm.CreateImage(np.array(self.data))
        self.image.SetName(self.title)
        self.window = None
        self.disp = None

    def display(self):
        """Show the image window, with GMS's automatic contrast survey off.

        Returns
        -------
        Py_Image
        """
        self.window = self.image.ShowImage()
        self.disp = self.image.GetImageDisplay(0)
        self.disp.SetDoAutoSurvey(False)
        self.displayed = True
        return self.image

    def update(self, damage, force: bool = False) -> None:
        """Set the contrast limits, write :attr:`data` into the GMS image, redraw it.

        Warns
        -----
        UserWarning
            If :meth:`display` was not called; nothing is changed then.
        """
        if self.disp is None:
            self._warn_not_displayed()
            return
        vmin, vmax = self.value_range(damage)
        self.disp.SetContrastLimits(float(vmin), float(vmax))
        target = self.image.GetNumArray()
        target[...] = self.data
        self.image.UpdateImage()
