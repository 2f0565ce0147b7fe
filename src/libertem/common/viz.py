"""Turning results into images: colour maps, vector fields as colour wheels, PNG encoding."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

__all__ = ["encode_image", "make_colormap", "rgb_from_2dvector", "visualize_simple"]


def make_colormap() -> Colormap:
    """The default colour map of :func:`visualize_simple`.

    Returns
    -------
    matplotlib.colors.Colormap
        ``gist_earth``: dark blue over green to white, readable on screen and in print.
    """
    from matplotlib import colormaps

    return colormaps["gist_earth"]


def _valid(result: np.ndarray, damage) -> np.ndarray:
    """Finite pixels that hold results (``damage``: bool mask, ``True``/``None``: all)."""
    valid = np.isfinite(result)
    if damage is not None and damage is not True:
        valid &= np.broadcast_to(np.asarray(damage, dtype=bool), result.shape)
    return valid


def visualize_simple(
    result, colormap=None, logarithmic: bool = False, vmin=None, vmax=None, damage=None
) -> np.ndarray:
    """A colour image of a 2D result (the magnitude for complex data).

    Parameters
    ----------
    result
        2D array.
    colormap
        A matplotlib colour map; default :func:`make_colormap`.
    logarithmic
        Show ``log(value - min + 1)``, which brings out weak features.
    vmin, vmax
        Values mapped to the ends of the colour map; default the minimum and
        maximum of the valid pixels (after the log, if any).
    damage
        Boolean mask of the pixels that hold results (``None``/``True``: all);
        only they set the range, the others are drawn as the lowest value.

    Returns
    -------
    numpy.ndarray
        RGBA image, ``uint8``, shape ``(*result.shape, 4)`` (as in LiberTEM).
    """
    data = np.asarray(result)
    data = np.abs(data) if data.dtype.kind == "c" else data.astype(np.float64)
    valid = _valid(data, damage)
    if logarithmic and valid.any():
        data = np.log(data - data[valid].min() + 1)
    lo = vmin if vmin is not None else (data[valid].min() if valid.any() else 0.0)
    hi = vmax if vmax is not None else (data[valid].max() if valid.any() else 1.0)
    scale = hi - lo
    norm = (data - lo) / scale if scale > 0 else np.zeros(data.shape)
    norm = np.where(valid, np.clip(norm, 0, 1), 0.0)
    cmap = make_colormap() if colormap is None else colormap
    return (cmap(norm) * 255).round().astype(np.uint8)


def rgb_from_2dvector(y, x, vmax=None) -> np.ndarray:
    """A colour-wheel image of a 2D vector field: hue is the direction, brightness the length.

    Parameters
    ----------
    y, x
        Components of the vectors, arrays of one shape.
    vmax
        Length shown at full brightness; default the largest finite length.

    Returns
    -------
    numpy.ndarray
        RGB image, ``uint8``, shape ``(*y.shape, 3)``; black where the vector is not
        finite. The direction of the x axis is red, the hue turns from there towards
        the y axis.
    """
    from matplotlib.colors import hsv_to_rgb

    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    length = np.hypot(y, x)
    finite = np.isfinite(length)
    if vmax is None:
        vmax = length[finite].max() if finite.any() else 0.0
    hue = (np.arctan2(y, x) / (2 * np.pi)) % 1.0
    value = np.clip(length / vmax, 0, 1) if vmax > 0 else np.zeros(length.shape)
    hsv = np.stack([np.where(finite, hue, 0), np.ones(hue.shape), np.where(finite, value, 0)], -1)
    return (hsv_to_rgb(hsv) * 255).round().astype(np.uint8)


def encode_image(result, save_kwargs: dict | None = None) -> io.BytesIO:
    """Encode an image as PNG (or another format Pillow writes).

    Parameters
    ----------
    result
        ``uint8`` image, 2D (grey) or ``(h, w, 3|4)`` (RGB/RGBA), e.g. from
        :func:`visualize_simple`. Float data in ``[0, 1]`` are scaled to ``uint8``.
    save_kwargs
        Passed to :meth:`PIL.Image.Image.save`; default ``{'format': 'png'}``.

    Returns
    -------
    io.BytesIO
        The encoded image, positioned at its start.
    """
    from PIL import Image

    data = np.asarray(result)
    if data.dtype != np.uint8:
        if data.dtype.kind not in "fiub":
            raise TypeError(f"cannot encode an image of dtype {data.dtype}")
        data = (np.clip(np.nan_to_num(data.astype(np.float64)), 0, 1) * 255).round()
        data = data.astype(np.uint8)
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[-1] not in (3, 4)):
        raise ValueError(f"an image must be (h, w), (h, w, 3) or (h, w, 4), got {data.shape}")
    kwargs = {"format": "png"} if save_kwargs is None else dict(save_kwargs)
    kwargs.setdefault("format", "png")
    buf = io.BytesIO()
    Image.fromarray(data).save(buf, **kwargs)
    buf.seek(0)
    return buf
