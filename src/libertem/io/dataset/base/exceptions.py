"""LiberTEM's module path of :class:`DataSetException`.

Defined in :mod:`libertem.common.exceptions`.
"""

from libertem.common.exceptions import DataSetException

__all__ = ["DataSetException"]
