"""LiberTEM's module path of :class:`RecordUDF` (record the frames a run sees into a
``.npy`` file); it lives with the other dataset exports in :mod:`libertem.udf.export`."""

from libertem.common.buffers import reshaped_view
from libertem.common.math import prod
from libertem.common.shape import Shape
from libertem.udf.classes import UDF
from libertem.udf.export import RecordUDF

__all__ = ["RecordUDF", "Shape", "UDF", "prod", "reshaped_view"]
