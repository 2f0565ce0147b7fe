"""Cost of applying corrections to one tile, against the plain numpy expression.

For a tile of ``(depth, 256, 256)`` float32 (a typical 1 MiB-per-frame-block tile,
and a larger one), it times ``CorrectionSet.apply`` with dark + gain in place, with
dark + gain + 64 excluded pixels, and numpy's ``(tile - dark) * gain`` (which
allocates two temporaries). Rates are GB/s of float32 tile data.
"""

from __future__ import annotations

import numpy as np

from bench.common import best_time

SIG = (256, 256)


def main() -> None:
    from libertem.common.shape import Shape
    from libertem.common.slice import Slice
    from libertem.corrections import CorrectionSet

    rng = np.random.default_rng(0)
    dark = rng.random(SIG).astype(np.float32)
    gain = rng.random(SIG).astype(np.float32)
    excluded = np.zeros(SIG, dtype=bool)
    excluded.reshape(-1)[rng.choice(excluded.size, 64, replace=False)] = True
    plain = CorrectionSet(dark=dark, gain=gain)
    patched = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded, allow_empty=True)
    for depth in (4, 64):
        tile = rng.random((depth, *SIG)).astype(np.float32)
        tile_slice = Slice((0, 0, 0), Shape(tile.shape, sig_dims=2))
        gb = tile.nbytes / 1e9
        t_numpy = best_time(lambda tile=tile: (tile - dark) * gain, repeat=20)
        t_apply = best_time(lambda t=tile, s=tile_slice: plain.apply(t, s), repeat=20)
        t_patch = best_time(lambda t=tile, s=tile_slice: patched.apply(t, s), repeat=20)
        print(
            f"corrections tile ({depth}, 256, 256) float32: numpy {gb / t_numpy:.2f} GB/s, "
            f"apply dark+gain {gb / t_apply:.2f} GB/s ({t_numpy / t_apply:.2f}x numpy), "
            f"+64 excluded {gb / t_patch:.2f} GB/s"
        )


if __name__ == "__main__":
    main()
