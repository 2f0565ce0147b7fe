"""The README's demo: a tour of a synthetic 4D-STEM scan.

It writes a scan with a known shift field as a Merlin (MIB) acquisition, opens it
with ``ctx.load('auto', ...)`` on the default Context (a local Dask cluster), and
runs a bright-field and an annular dark-field virtual detector, centre-of-mass
(COM) and a picked frame, each with a progress bar. It saves the figures as PNG
and prints what it computed and how fast.

Run with ``python3 dev.py demo`` (or ``python -m libertem.demo [output_dir]``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

NAV_SHAPE = (96, 96)
SIG_SHAPE = (128, 128)
DISK_RADIUS = 10
MAX_SHIFT = 3.0


def shift_field(nav_shape=NAV_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """The known beam shift (y, x) in pixels at every scan position: a vortex."""
    ny, nx = nav_shape
    gy, gx = np.mgrid[:ny, :nx]
    angle = np.arctan2(gy - ny / 2, gx - nx / 2)
    radius = np.hypot(gy - ny / 2, gx - nx / 2) / (min(ny, nx) / 2)
    strength = MAX_SHIFT * np.clip(radius, 0, 1)
    return strength * np.cos(angle), -strength * np.sin(angle)


def make_scan(nav_shape=NAV_SHAPE, sig_shape=SIG_SHAPE, seed: int = 0) -> np.ndarray:
    """Synthetic diffraction frames ``(*nav_shape, *sig_shape)`` as uint16 counts.

    Every frame has a bright central disk shifted by :func:`shift_field`, six
    Bragg disks whose intensity marks a round "grain" in the middle of the scan,
    and Poisson noise.
    """
    ny, nx = nav_shape
    sy, sx = sig_shape
    shift_y, shift_x = shift_field(nav_shape)
    gy, gx = np.mgrid[:ny, :nx]
    grain = np.hypot(gy - ny / 2, gx - nx / 2) < min(ny, nx) / 4
    y, x = np.mgrid[:sy, :sx].astype(np.float32)
    bragg = np.zeros(sig_shape, dtype=np.float32)
    for angle in np.linspace(0, 2 * np.pi, 6, endpoint=False):
        by, bx = sy / 2 + 0.35 * sy * np.sin(angle), sx / 2 + 0.35 * sx * np.cos(angle)
        bragg += (y - by) ** 2 + (x - bx) ** 2 <= (DISK_RADIUS / 2) ** 2
    rng = np.random.default_rng(seed)
    out = np.empty((ny, nx, sy, sx), dtype=np.uint16)
    for row in range(ny):
        cy = sy / 2 + shift_y[row, :, None, None]
        cx = sx / 2 + shift_x[row, :, None, None]
        disk = ((y - cy) ** 2 + (x - cx) ** 2 <= DISK_RADIUS**2).astype(np.float32)
        lam = 40 * disk + 25 * bragg * grain[row, :, None, None] + 0.2
        out[row] = rng.poisson(lam)
    return out


def _save(out: Path, name: str, image: np.ndarray, title: str, cmap: str = "gray") -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image, cmap=cmap)
    ax.set_title(title)
    ax.axis("off")
    fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(out_dir: str = "demo-output") -> None:
    """Generate the sample scan, run the tour on the default Context, save figures."""
    import matplotlib

    matplotlib.use("Agg")

    from libertem.api import Context
    from libertem.utils.sample_data import write_mib_acquisition

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scan = make_scan(NAV_SHAPE, SIG_SHAPE)
    path = write_mib_acquisition(out / "sample_scan", scan, pixel_depth="U16")
    nbytes = scan.nbytes
    print(
        f"wrote a synthetic {NAV_SHAPE} x {SIG_SHAPE} scan as a Merlin acquisition "
        f"({nbytes / 2**20:.0f} MiB) to {path} in {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    with Context() as ctx:
        workers = ctx.executor.get_available_workers().compute_workers()
        print(
            f"started the default Context ({type(ctx.executor).__name__}, "
            f"{len(workers)} compute workers) in {time.perf_counter() - t0:.1f} s"
        )
        ds = ctx.load("auto", path=path)
        print(f"opened {type(ds).__name__} of shape {tuple(ds.shape)}, dtype {ds.dtype}")
        sy, sx = SIG_SHAPE
        analyses = {
            "picked frame": ctx.create_pick_analysis(ds, x=NAV_SHAPE[1] // 2, y=NAV_SHAPE[0] // 2),
            "bright field": ctx.create_disk_analysis(ds, cx=sx / 2, cy=sy / 2, r=2 * DISK_RADIUS),
            "annular dark field": ctx.create_ring_analysis(
                ds, cx=sx / 2, cy=sy / 2, ri=3 * DISK_RADIUS, ro=sy / 2
            ),
            "centre of mass": ctx.create_com_analysis(
                ds, cx=sx / 2, cy=sy / 2, mask_radius=2 * DISK_RADIUS
            ),
        }
        results = {}
        for name, analysis in analyses.items():
            t0 = time.perf_counter()
            results[name] = ctx.run(analysis, progress=True)
            seconds = time.perf_counter() - t0
            note = ""
            if name == "bright field":
                note = " (first full pass: the workers map the files)"
            rate = f", {nbytes / seconds / 1e9:.2f} GB/s{note}" if name != "picked frame" else ""
            print(f"{name}: {seconds:.2f} s{rate}")

    bf = results["bright field"].intensity.raw_data
    adf = results["annular dark field"].intensity.raw_data
    field_x, field_y = results["centre of mass"].field.raw_data
    known_y, known_x = shift_field(NAV_SHAPE)
    error = np.hypot(field_y - known_y, field_x - known_x)
    frame = results["picked frame"].intensity.raw_data
    _save(out, "bright_field", bf, "bright field")
    _save(out, "annular_dark_field", adf, "annular dark field (the grain)")
    _save(out, "com_magnitude", np.hypot(field_y, field_x), "COM shift", "magma")
    _save(
        out,
        "com_divergence",
        results["centre of mass"].divergence.raw_data,
        "COM divergence",
        "RdBu",
    )
    _save(out, "picked_frame", np.log1p(np.squeeze(frame)), "frame at the scan centre", "viridis")
    print(
        f"COM recovers the known shift field: mean error {error.mean():.3f} px, "
        f"max {error.max():.3f} px (shifts up to {MAX_SHIFT} px)"
    )
    centre = (NAV_SHAPE[0] // 2, NAV_SHAPE[1] // 2)
    print(f"annular dark field inside / outside the grain: {adf[centre]:.0f} / {adf[1, 1]:.0f}")
    print(f"figures written to {out.resolve()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
