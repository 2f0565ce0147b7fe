"""Plain numpy reference of the detector corrections, for the corrections tests."""

from __future__ import annotations

from itertools import product

import numpy as np


def neighbours(pos, excluded: np.ndarray):
    """Valid neighbours of ``pos``: inside the frame, not excluded, at most 1 away per axis."""
    shape = excluded.shape
    out = []
    for off in product((-1, 0, 1), repeat=len(shape)):
        if not any(off):
            continue
        q = tuple(p + o for p, o in zip(pos, off))
        if all(0 <= c < s for c, s in zip(q, shape)) and not excluded[q]:
            out.append(q)
    return out


def ref_correct(frames, dark=None, gain=None, excluded=None, stat=np.mean):
    """``(frames - dark) * gain`` in float64, excluded pixels set to ``stat`` of neighbours.

    ``frames`` has shape ``(n, *sig)``; ``excluded`` is a boolean mask of the
    signal shape. Pixels without valid neighbours keep their value.
    """
    out = np.array(frames, dtype=np.float64)
    if dark is not None:
        out -= dark
    if gain is not None:
        out *= gain
    if excluded is not None:
        excluded = np.asarray(excluded, dtype=bool)
        fixed = out.copy()
        for pos in zip(*np.nonzero(excluded)):
            nbs = neighbours(pos, excluded)
            index = (slice(None), *pos)
            if nbs:
                values = np.stack([out[(slice(None), *q)] for q in nbs], axis=0)
                fixed[index] = stat(values, axis=0)
        out = fixed
    return out
