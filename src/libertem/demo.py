"""The README's demo: generate a sample 4D-STEM scan, run built-in UDFs, save images.

Run with ``python3 dev.py demo`` (or ``python -m libertem.demo [output_dir]``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

NAV_SHAPE = (96, 96)
SIG_SHAPE = (128, 128)


def make_sample_scan(path: Path, nav_shape=NAV_SHAPE, sig_shape=SIG_SHAPE) -> Path:
    """Write a synthetic 4D-STEM scan as a raw uint16 file (a few hundred MiB).

    Each frame shows a bright central disk and a ring of diffraction disks whose
    intensity varies over the scan (a "grain" in the middle of the field of view),
    plus Poisson noise.
    """
    sy, sx = sig_shape
    y, x = np.mgrid[:sy, :sx]
    cy, cx = sy / 2, sx / 2
    central = ((y - cy) ** 2 + (x - cx) ** 2 <= (sy / 10) ** 2).astype(np.float32)
    bragg = np.zeros(sig_shape, dtype=np.float32)
    for angle in np.linspace(0, 2 * np.pi, 6, endpoint=False):
        by, bx = cy + 0.3 * sy * np.sin(angle), cx + 0.3 * sx * np.cos(angle)
        bragg += (y - by) ** 2 + (x - bx) ** 2 <= (sy / 20) ** 2
    ny, nx = nav_shape
    gy, gx = np.mgrid[:ny, :nx]
    grain = np.exp(-(((gy - ny / 2) / (ny / 4)) ** 2 + ((gx - nx / 2) / (nx / 4)) ** 2))
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for row in range(ny):
            lam = (
                20 * central * (1 - 0.5 * grain[row, :, None, None])
                + 30 * bragg * grain[row, :, None, None]
                + 0.5
            )
            f.write(rng.poisson(lam).astype(np.uint16).tobytes())
    return path


def main(out_dir: str = "demo-output") -> None:
    """Generate the sample data, run SumUDF, SumSigUDF and a virtual detector, save PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import libertem.masks as masks
    from libertem.api import Context
    from libertem.udf.masks import ApplyMasksUDF
    from libertem.udf.sum import SumUDF
    from libertem.udf.sumsigudf import SumSigUDF

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sample_scan.raw"
    t0 = time.perf_counter()
    make_sample_scan(path, NAV_SHAPE, SIG_SHAPE)
    print(
        f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) "
        f"in {time.perf_counter() - t0:.1f} s"
    )

    sy, sx = SIG_SHAPE
    with Context() as ctx:
        ds = ctx.load("raw", path=path, nav_shape=NAV_SHAPE, sig_shape=SIG_SHAPE, dtype="uint16")
        detectors = ApplyMasksUDF(
            mask_factories=[
                lambda: masks.circular(sx / 2, sy / 2, sx, sy, sy / 10),  # bright field
                lambda: masks.ring(sx / 2, sy / 2, sx, sy, sy / 2.5, sy / 5),  # annular dark field
            ]
        )
        t0 = time.perf_counter()
        total, per_frame, virtual = ctx.run_udf(
            dataset=ds, udf=[SumUDF(), SumSigUDF(), detectors], progress=True
        )
        seconds = time.perf_counter() - t0

    images = {
        "sum_of_frames": np.log1p(total["intensity"].data),
        "sum_per_frame": per_frame["intensity"].data,
        "bright_field": virtual["intensity"].data[..., 0],
        "annular_dark_field": virtual["intensity"].data[..., 1],
    }
    for name, image in images.items():
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(image, cmap="viridis")
        ax.set_title(name.replace("_", " "))
        ax.axis("off")
        fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    nbytes = path.stat().st_size
    print(
        f"three UDFs in one pass over {nbytes / 1e9:.2f} GB: {seconds:.2f} s, "
        f"{nbytes / seconds / 1e9:.2f} GB/s"
    )
    print(f"images written to {out.resolve()}: {', '.join(f'{n}.png' for n in images)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
