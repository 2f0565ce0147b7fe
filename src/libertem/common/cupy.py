"""Choosing the CUDA device that CuPy and :func:`~libertem.common.backend.get_use_cuda`
use in a block of code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from libertem.common.backend import device_choice, restore_device_choice, set_use_cuda
from libertem.utils.devices import has_cupy


@contextlib.contextmanager
def use_gpu(device: int | None) -> Iterator[None]:
    """Use CUDA device ``device`` (for CuPy and ``get_use_cuda``) in the block.

    ``None`` changes nothing. The previous device choice is restored afterwards.
    """
    if device is None:
        yield
        return
    previous = device_choice()
    set_use_cuda(device)
    cupy_device = None
    if has_cupy():
        import cupy

        cupy_device = cupy.cuda.Device(int(device))
        cupy_device.__enter__()
    try:
        yield
    finally:
        if cupy_device is not None:
            cupy_device.__exit__(None, None, None)
        restore_device_choice(previous)


__all__ = ["use_gpu"]
