"""LiberTEM's module path of the direct I/O backend (``O_DIRECT`` reads).

The backend is :class:`~libertem.io.dataset.base.backend.DirectBackend`; its
reading side is :class:`~libertem.io.dataset.base.backend_impl.BufferedBackendImpl`
with ``direct_io=True``. This module re-exports them on access.
"""

from libertem.common.lazy import lazy_names

_WHERE = {
    "BufferedBackendImpl": "libertem.io.dataset.base.backend_impl",
    "DirectBackend": "libertem.io.dataset.base.backend",
    "IOBackend": "libertem.io.dataset.base.backend",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = list(_WHERE)
