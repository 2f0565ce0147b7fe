"""Shapes, slices, buffers and other building blocks shared by all layers."""

from libertem.common.shape import Shape
from libertem.common.slice import Slice, SliceUsageError

__all__ = ["Shape", "Slice", "SliceUsageError"]
