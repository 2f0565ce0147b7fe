"""A first script: start a Context, open a dataset, run a virtual detector.

Usage::

    python examples/basic.py [PATH]

PATH is any file ``ctx.load('auto', ...)`` recognises (.npy, .mib/.hdr, .h5, .dm4,
...). Without it, a small sample scan is written to a temporary folder first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import libertem.masks as masks
from libertem import api


def make_sample(folder: Path) -> Path:
    """A small 4D-STEM scan as .npy: a bright disk whose intensity varies over the scan."""
    y, x = np.mgrid[:64, :64]
    disk = ((y - 32) ** 2 + (x - 32) ** 2 < 10**2).astype(np.float32)
    gy, gx = np.mgrid[:32, :32]
    brightness = 1 + np.sin(gy / 5) * np.cos(gx / 7)
    scan = brightness[:, :, None, None] * disk[None, None]
    path = folder / "sample.npy"
    np.save(path, scan.astype(np.float32))
    return path


def main(path: str | None = None) -> np.ndarray:
    """Run a bright-field virtual detector over the dataset at ``path``; return the image."""
    with tempfile.TemporaryDirectory() as folder:
        if path is None:
            path = str(make_sample(Path(folder)))
        # Context() starts a local Dask cluster, one worker process per CPU core;
        # the with-block shuts it down at the end.
        with api.Context() as ctx:
            ds = ctx.load("auto", path=path)
            sy, sx = tuple(ds.shape.sig)[-2:]
            print(f"{path}: {type(ds).__name__}, shape {tuple(ds.shape)}, dtype {ds.dtype}")

            # The masks are sent to the workers as functions that create them,
            # which keeps what travels through the cluster small.
            def bright_field():
                return masks.circular(sx / 2, sy / 2, sx, sy, min(sx, sy) / 4)

            analysis = ctx.create_mask_analysis(dataset=ds, factories=[bright_field])
            result = ctx.run(analysis, progress=True)
            image = result.mask_0.raw_data
            print(
                f"bright-field image: shape {image.shape}, "
                f"min {image.min():.4g}, max {image.max():.4g}"
            )

            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            out = Path("basic-bright-field.png")
            plt.imsave(out, image)
            print(f"saved {out.resolve()}")
            return image


# Worker processes import this module: only start work in the main program.
if __name__ == "__main__":
    main(*sys.argv[1:])
