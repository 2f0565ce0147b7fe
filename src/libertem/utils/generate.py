"""Synthetic data for tests and examples: CBED patterns, holograms, linear gradients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from libertem.common.math import prod
from libertem.utils import frame_peaks, make_cartesian, make_polar

__all__ = [
    "cbed_frame",
    "exclude_pixels",
    "frame_peaks",
    "gradient_data",
    "hologram_frame",
    "make_cartesian",
    "make_polar",
    "prod",
]


def cbed_frame(
    fy: int = 128,
    fx: int = 128,
    zero=None,
    a=None,
    b=None,
    indices=None,
    radius: float = 4,
    all_equal: bool = False,
    margin: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic convergent-beam diffraction pattern: disks on a lattice.

    Parameters
    ----------
    fy, fx
        Frame height and width.
    zero
        Position ``(y, x)`` of the zero-order disk; default the frame centre
        ``(fy // 2, fx // 2)``.
    a, b
        Lattice vectors ``(y, x)``; default ``a = (fy // 8, 0)`` and ``b`` is ``a``
        turned by -90 degrees.
    indices
        Lattice indices to draw, see :func:`libertem.utils.regularize_indices`;
        default ``numpy.mgrid[-10:11, -10:11]``.
    radius
        Radius of the (antialiased) disks.
    all_equal
        Give every disk intensity 1. Otherwise the intensity falls with the
        distance from ``zero``, and each disk differs from the others.
    margin
        Minimum distance of drawn disk centres from the border; default ``radius``.

    Returns
    -------
    tuple
        ``(data, indices, peaks)``: the frame as float32 array of shape
        ``(1, fy, fx)``, and the indices and positions ``(y, x)`` of the disks drawn.
    """
    from libertem.masks import circular

    zero = np.array((fy // 2, fx // 2) if zero is None else zero)
    a = np.array((fy // 8, 0) if a is None else a)
    b = np.array(make_cartesian(make_polar(a) - (0, np.pi / 2)) if b is None else b)
    if indices is None:
        indices = np.mgrid[-10:11, -10:11]
    if margin is None:
        margin = radius
    indices, peaks = frame_peaks(fy=fy, fx=fx, zero=zero, a=a, b=b, r=margin, indices=indices)
    data = np.zeros((1, fy, fx), dtype=np.float32)
    distances = np.linalg.norm(peaks - zero, axis=-1)
    top = max(distances.max() + 1, len(peaks) + 1) if len(peaks) else 1
    for i, (py, px) in enumerate(peaks):
        weight = 1 if all_equal else max(1, top - distances[i] + i)
        data[0] += circular(px, py, fx, fy, radius, antialiased=True) * weight
    return data, indices, peaks


def hologram_frame(
    amp,
    phi,
    counts: float = 1000.0,
    sampling: float = 5.0,
    visibility: float = 1.0,
    f_angle: float = 30.0,
    gaussian_noise: float | None = None,
    poisson_noise: float | None = None,
) -> np.ndarray:
    """A synthetic off-axis electron hologram of an object wave.

    The object wave ``amp * exp(1j * phi)`` interferes with a tilted reference
    wave of amplitude 1. With ``y``, ``x`` the row and column indices and
    ``t = f_angle`` in radians::

        I = counts / 2 * (1 + amp**2 + 2 * visibility * amp
                          * cos(2 pi / sampling * (y cos t + x sin t) - phi))

    so ``f_angle=0`` gives fringes that vary along the rows (``y``) and
    ``f_angle=90`` along the columns (``x``).

    Parameters
    ----------
    amp, phi
        Amplitude and phase (radians) of the object wave, arrays of one shape.
    counts
        Mean intensity per pixel where ``amp == 1``.
    sampling
        Fringe period in pixels.
    visibility
        Fringe contrast, 0 to 1.
    f_angle
        Fringe direction in degrees, see above.
    gaussian_noise
        If given (``float`` or ``int``), the image is blurred with a Gaussian
        filter of this sigma in pixels (:func:`scipy.ndimage.gaussian_filter`,
        boundary mode "reflect"), after the Poisson noise.
    poisson_noise
        If given (``float`` or ``int``), shot noise: with
        ``s = poisson_noise * counts`` the image becomes
        ``s * numpy.random.poisson(I / s)``, drawn from numpy's global random state.

    Returns
    -------
    numpy.ndarray
        The hologram, float64, the shape of ``phi``.

    Raises
    ------
    ValueError
        If ``amp`` and ``phi`` are not 2D arrays of one shape, or a noise parameter is neither
        ``float`` nor ``int``.
    """
    amp = np.asarray(amp)
    phi = np.asarray(phi)
    if amp.shape != phi.shape or phi.ndim != 2:
        raise ValueError("Amplitude and phase should be 2d arrays of the same shape.")
    y, x = np.indices(phi.shape, dtype=np.float64)
    angle = np.deg2rad(f_angle)
    k = 2 * np.pi / sampling
    carrier = k * y * np.cos(angle) + k * x * np.sin(angle)
    holo = counts / 2 * (1.0 + amp**2 + 2.0 * visibility * amp * np.cos(carrier - phi))
    if poisson_noise:
        if not isinstance(poisson_noise, float | int):
            raise ValueError("poisson_noise parameter should be float or int or None.")
        dose = poisson_noise * counts
        holo = dose * np.random.poisson(holo / dose)  # noqa: NPY002 (global state, as documented)
    if gaussian_noise:
        if not isinstance(gaussian_noise, float | int):
            raise ValueError("gaussian_noise parameter should be float or int or None.")
        from scipy.ndimage import gaussian_filter

        holo = gaussian_filter(holo, gaussian_noise)
    return np.asarray(holo, dtype=np.float64)


def gradient_data(nav_dims: Sequence[int], sig_dims: Sequence[int]) -> np.ndarray:
    """Data that is a linear function of all coordinates, with a different slope
    per axis.

    Every pixel that is not on the border of a frame equals the mean of its
    neighbours along each signal axis, so excluded pixels can be reconstructed
    exactly by interpolation (see :func:`exclude_pixels`).

    Parameters
    ----------
    nav_dims, sig_dims
        Navigation and signal shape.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(*nav_dims, *sig_dims)``, values at least 1.
    """
    shape = (*tuple(nav_dims), *tuple(sig_dims))
    data = np.ones(shape, dtype=np.float64)
    for axis, size in enumerate(shape):
        ramp = np.arange(size, dtype=np.float64) * (axis + 1) / max(size, 1)
        data += ramp.reshape((-1,) + (1,) * (len(shape) - axis - 1))
    return data.astype(np.float32)


def exclude_pixels(sig_dims: Sequence[int], num_excluded: int, rng=None) -> np.ndarray:
    """Random pixels to mark as defective, each reconstructible from its neighbours.

    The pixels lie off the border of the frame and no two of them touch (not even
    diagonally), so each one has intact neighbours along every axis.

    Parameters
    ----------
    sig_dims
        Signal shape.
    num_excluded
        Number of pixels.
    rng
        A ``numpy.random.Generator`` or seed; default a fresh generator.

    Returns
    -------
    numpy.ndarray
        Coordinates, shape ``(len(sig_dims), num_excluded)``, as
        ``sparse.COO(coords, data=True, shape=sig_dims)`` takes them.

    Raises
    ------
    ValueError
        If that many pixels do not fit.
    """
    sig_dims = tuple(int(s) for s in sig_dims)
    rng = np.random.default_rng(rng)
    if num_excluded == 0:
        return np.zeros((len(sig_dims), 0), dtype=np.int64)
    if any(s < 3 for s in sig_dims):
        raise ValueError(f"frames of shape {sig_dims} have no pixels off the border")
    # candidates on a grid with spacing 2 never touch; shuffle and draw from them
    grid = np.stack(
        np.meshgrid(*[np.arange(1, s - 1, 2) for s in sig_dims], indexing="ij"), axis=-1
    ).reshape((-1, len(sig_dims)))
    if num_excluded > len(grid):
        raise ValueError(
            f"at most {len(grid)} separated pixels fit into frames of shape {sig_dims}, "
            f"not {num_excluded}"
        )
    chosen = grid[rng.choice(len(grid), size=num_excluded, replace=False)]
    order = np.lexsort(chosen.T[::-1])
    return chosen[order].T.astype(np.int64)
