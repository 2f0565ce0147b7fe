"""Detector corrections; the code lives in :mod:`libertem.io.corrections.detector`."""

from libertem.io.corrections.detector import (
    CorrectError,
    RepairDescriptor,
    RepairValueError,
    correct,
    correct_dot_masks,
    environments,
    flatten_filter,
    is_sparse,
    numba_ravel_multi_index_multi,
    numba_unravel_index_multi,
    prod,
)

__all__ = [
    "CorrectError",
    "RepairDescriptor",
    "RepairValueError",
    "correct",
    "correct_dot_masks",
    "environments",
    "flatten_filter",
    "is_sparse",
    "numba_ravel_multi_index_multi",
    "numba_unravel_index_multi",
    "prod",
]
