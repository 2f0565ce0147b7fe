"""Result arrays as downloadable files: ``.npy``, ``.tif`` (16 or 32 bit) and ``.png``."""

from __future__ import annotations

import io
import json

import numpy as np

#: colour maps the GUI offers (names of matplotlib colour maps)
COLORMAPS = ("gray", "viridis", "magma", "inferno", "cividis", "RdBu_r", "twilight")


class ExportError(ValueError):
    """A download that cannot be made (unknown format, bad parameters)."""


def to_npy(array: np.ndarray) -> bytes:
    """The array in NumPy's ``.npy`` format, unchanged."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def to_tiff(array: np.ndarray, bits: int = 32) -> bytes:
    """The array as a TIFF image (written with ``tifffile``).

    ``bits=32`` stores float32 values. ``bits=16`` stores uint16: unchanged when
    every finite value is an integer in 0..65535, otherwise scaled linearly from
    the finite minimum..maximum to 0..65535 (the scale is written to the image
    description as JSON). NaN becomes 0. An array with a trailing axis (e.g. the
    two components of a field) becomes one page per component.
    """
    import tifffile

    data = np.asarray(array, dtype=np.float64)
    if data.ndim == 3:
        data = np.moveaxis(data, -1, 0)
    description = {"source": "libertem-server"}
    if bits == 32:
        out = data.astype(np.float32)
    elif bits == 16:
        finite = data[np.isfinite(data)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        exact = finite.size == 0 or (
            lo >= 0 and hi <= 65535 and np.array_equal(finite, np.round(finite))
        )
        if exact:
            out = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0).astype(np.uint16)
        else:
            scale = 65535.0 / (hi - lo) if hi > lo else 0.0
            scaled = np.clip(np.nan_to_num((data - lo) * scale, nan=0.0), 0, 65535)
            out = np.round(scaled).astype(np.uint16)
            description.update({"offset": lo, "scale": 1.0 / scale if scale else 0.0})
    else:
        raise ExportError(f"TIFF bits must be 16 or 32, got {bits}")
    buf = io.BytesIO()
    tifffile.imwrite(buf, out, description=json.dumps(description), metadata=None)
    return buf.getvalue()


def limits(data: np.ndarray, low: float, high: float, log: bool) -> tuple[float, float]:
    """Colour scale limits: the ``low`` and ``high`` percentiles of the finite values
    (of ``log1p`` of the values clipped at 0 with ``log``)."""
    values = scaled(data, log)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi)


def scaled(data: np.ndarray, log: bool) -> np.ndarray:
    """The values the colour scale maps: as they are, or ``log1p`` of them (>= 0)."""
    data = np.asarray(data, dtype=np.float64)
    return np.log1p(np.clip(data, 0, None)) if log else data


def to_png(
    array: np.ndarray,
    cmap: str = "gray",
    log: bool = False,
    low: float = 0.0,
    high: float = 100.0,
) -> bytes:
    """The image in colour as the GUI shows it.

    A 2D array is mapped with the colour map ``cmap`` between the ``low`` and
    ``high`` percentiles (linear or ``log``). An array with a trailing axis of 2
    (a vector field ``(y, x)``) is drawn as a colour wheel: hue for the direction,
    brightness for the length. NaN is transparent.
    """
    import matplotlib
    from matplotlib import colors

    data = np.asarray(array, dtype=np.float64)
    if data.ndim == 3 and data.shape[-1] == 2:
        rgba = field_colors(data[..., 0], data[..., 1])
    elif data.ndim == 2:
        if cmap not in COLORMAPS:
            raise ExportError(f"unknown colour map {cmap!r}; choose one of {', '.join(COLORMAPS)}")
        if not (0 <= low < high <= 100):
            raise ExportError(f"need 0 <= low < high <= 100 percentiles, got {low}, {high}")
        lo, hi = limits(data, low, high, log)
        norm = colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1, clip=True)
        rgba = matplotlib.colormaps[cmap](norm(scaled(data, log)))
        rgba[~np.isfinite(data)] = 0
    else:
        raise ExportError(f"cannot draw an array of shape {data.shape} as an image")
    buf = io.BytesIO()
    import matplotlib.image

    matplotlib.image.imsave(buf, rgba, format="png")
    return buf.getvalue()


def field_colors(field_y: np.ndarray, field_x: np.ndarray) -> np.ndarray:
    """RGBA colours of a vector field: hue = direction, value = length / max length."""
    from matplotlib import colors

    length = np.hypot(field_y, field_x)
    finite = np.isfinite(length)
    top = float(length[finite].max()) if finite.any() else 0.0
    hue = (np.arctan2(field_y, field_x) / (2 * np.pi)) % 1.0
    value = np.where(finite, length / top if top > 0 else 0.0, 0.0)
    hsv = np.stack([np.nan_to_num(hue), np.ones_like(hue), np.clip(value, 0, 1)], axis=-1)
    rgba = np.ones((*length.shape, 4))
    rgba[..., :3] = colors.hsv_to_rgb(hsv)
    rgba[~finite] = 0
    return rgba
