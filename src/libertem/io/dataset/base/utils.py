"""LiberTEM's module path of :class:`FileTree`.

Defined in :mod:`~libertem.io.dataset.base.fileset`, re-exported here on access.
"""

from libertem.common.lazy import lazy_names

_WHERE = {"FileTree": "libertem.io.dataset.base.fileset"}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = list(_WHERE)
