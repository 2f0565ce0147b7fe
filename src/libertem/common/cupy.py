"""LiberTEM's module path of :func:`use_gpu` (a context choosing the CUDA device).

The function lives with the task environment of the executors
(:mod:`libertem.executor.utils.environment`); this module re-exports it on access.
"""

from libertem.common.lazy import lazy_names

_WHERE = {"use_gpu": "libertem.executor.utils.environment"}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = list(_WHERE)
