"""Turning results into images: colour maps, vector fields as colour wheels, PNG encoding."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

__all__ = [
    "encode_image",
    "get_stat_limits",
    "make_colormap",
    "make_cyclic_colormap",
    "rgb_from_2dvector",
    "visualize_simple",
]


def get_stat_limits(data, quantile: float = 0.001, snip_factor: float = 10.0):
    """Robust colour limits ``(vmin, vmax)`` of ``data``: far outliers are cut off.

    The limits start as the minimum and maximum of the finite values (real parts for
    complex data). For real numeric data that is not all zero, the values between the
    ``quantile`` and ``1 - quantile`` quantiles of the non-zero values (a range widened
    to include 0 when there are zeros) are the retained ones; a limit moves to the
    retained minimum (maximum) when it lies more than ``snip_factor`` times that
    value's magnitude away from it.

    Parameters
    ----------
    data
        Array of any shape.
    quantile
        Fraction cut at each end for finding the retained range.
    snip_factor
        How far (relative to the retained extreme) an outlier must be to be cut.

    Returns
    -------
    tuple of float
        ``vmin < vmax``: equal limits get ``vmax`` moved to the next float up; no
        finite values give ``(1.0, nextafter(1.0))``.
    """
    data = np.asarray(data)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 1.0, math.nextafter(1.0, math.inf)
    vmin = float(np.real(finite.min()))
    vmax = float(np.real(finite.max()))
    numeric = np.issubdtype(finite.dtype, np.number) and not np.iscomplexobj(finite)
    if numeric and np.any(finite != 0):
        nonzero = finite[finite != 0]
        lower, upper = (float(q) for q in np.quantile(nonzero, [quantile, 1 - quantile]))
        if nonzero.size < finite.size:
            lower, upper = min(lower, 0.0), max(upper, 0.0)
        retained = finite[(finite >= lower) & (finite <= upper)]
        if retained.size:
            fmin, fmax = float(retained.min()), float(retained.max())
            if abs(fmin) > 0 and abs(fmin - vmin) / abs(fmin) > snip_factor:
                vmin = fmin
            if abs(fmax) > 0 and abs(fmax - vmax) / abs(fmax) > snip_factor:
                vmax = fmax
    if vmin == vmax:
        vmax = math.nextafter(vmin, math.inf)
    return float(vmin), float(vmax)


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
        Show ``log(value - min + 1)`` (``min`` of the finite values), which brings
        out weak features.
    vmin, vmax
        Values mapped to the ends of the colour map; default: robust limits
        (:func:`get_stat_limits`) of the valid pixels as float32 (after the log, if
        any), ``1`` if there are none.
    damage
        Boolean mask of the pixels that hold results (``None``: the non-zero
        pixels; ``True``: all); only finite ones among them set the range, the
        others are drawn as the lowest value.

    Returns
    -------
    numpy.ndarray
        RGBA image, ``uint8``, shape ``(*result.shape, 4)`` (as in LiberTEM).
    """
    data = np.asarray(result)
    data = np.abs(data) if data.dtype.kind == "c" else data.astype(np.float64)
    if damage is None:
        damage = data != 0
    if logarithmic:
        finite = data[np.isfinite(data)]
        if finite.size:
            data = np.log(data - finite.min() + 1)
    valid = _valid(data, damage)
    if vmin is None or vmax is None:
        if valid.any():
            auto_lo, auto_hi = get_stat_limits(data[valid].astype(np.float32))
        else:
            auto_lo = auto_hi = 1.0
        lo = auto_lo if vmin is None else vmin
        hi = auto_hi if vmax is None else vmax
    else:
        lo, hi = vmin, vmax
    scale = hi - lo
    norm = (data - lo) / scale if scale > 0 else np.zeros(data.shape)
    norm = np.where(valid, np.clip(norm, 0, 1), 0.0)
    cmap = make_colormap() if colormap is None else colormap
    return (cmap(norm) * 255).round().astype(np.uint8)


def rgb_from_2dvector(y, x, vmax=None) -> np.ndarray:
    """A colour image of a 2D vector field: hue is the direction, saturation the length.

    The colour of a direction comes from colorcet's cyclic isoluminant colour map
    (``'cet_cyclic_isoluminant'``), so all directions look equally bright. The angle
    ``arctan2(-y, -x)`` (of the inputs as given) picks the position on the map. In
    CIELUV space the lightness is scaled by 0.8 and the chroma by ``2.2 * a``, where
    ``a = min(length / vmax, 1)``; a zero vector is mid grey.

    Parameters
    ----------
    y, x
        Components of the vectors (broadcast against each other).
    vmax
        Length shown at full saturation; default the largest finite length (1 if
        that is 0).

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGB image of shape ``np.broadcast(y, x).shape + (3,)``.
    """
    import colorcet  # noqa: F401 - registers the colour map with matplotlib
    from matplotlib import colormaps
    from skimage.color import luv2rgb, rgb2luv

    y, x = np.asarray(y), np.asarray(x)
    length = np.sqrt(np.abs(y) ** 2 + np.abs(x) ** 2)
    if vmax is None:
        finite = length[np.isfinite(length)]
        vmax = float(finite.max()) if finite.size else 0.0
        if vmax == 0:
            vmax = 1.0
    strength = np.minimum(length / vmax, 1)
    position = (np.arctan2(-y, -x) + np.pi) / (2 * np.pi)
    cmap = colormaps["cet_cyclic_isoluminant"]
    colour = np.asarray(cmap(position, bytes=True))[..., :3]
    luv = rgb2luv(colour)
    luv[..., 0] *= 0.8
    luv[..., 1] *= 2.2 * strength
    luv[..., 2] *= 2.2 * strength
    return (luv2rgb(luv) * 255).astype(np.uint8)


def make_cyclic_colormap():
    """The cyclic colour map ``'libertem_cyclic'`` of :func:`rgb_from_2dvector`'s colours.

    Returns
    -------
    matplotlib.colors.LinearSegmentedColormap
        256 entries, from the unit vectors at 0, 1, ..., 359 degrees
        (``y=-sin(a)``, ``x=-cos(a)``).
    """
    from matplotlib.colors import LinearSegmentedColormap

    angles = np.radians(np.arange(360))
    colours = rgb_from_2dvector(y=-np.sin(angles), x=-np.cos(angles)) / 255
    return LinearSegmentedColormap.from_list("libertem_cyclic", colours, N=256)


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
