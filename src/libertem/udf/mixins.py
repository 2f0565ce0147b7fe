"""The processing-method protocol of UDFs: the mixins that declare ``process_*`` and
the other optional methods, and which processing method a UDF runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from libertem.common.exceptions import UDFException
from libertem.common.slice import Slice
from libertem.common.udf import UDFMethod
from libertem.udf.data import MergeAttrMapping


class UDFFrameMixin:
    """Implement ``process_frame`` to process one frame at a time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def process_frame(self, frame: np.ndarray):
        """Process one frame (an array of the signal shape).

        ``kind='nav'`` buffers in ``self.results`` are views for this frame;
        ``'sig'`` and ``'single'`` buffers are the whole partition's buffers.
        """
        raise NotImplementedError()


class UDFTileMixin:
    """Implement ``process_tile`` to process stacks of (parts of) frames."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def process_tile(self, tile: np.ndarray):
        """Process a tile: ``depth`` frames times a rectangle of the signal.

        ``self.meta.slice`` gives its position. ``kind='nav'`` buffers are views of
        the tile's frames, ``kind='sig'`` buffers are cut to the tile's signal region.
        """
        raise NotImplementedError()


class UDFPartitionMixin:
    """Implement ``process_partition`` to process a whole partition at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def process_partition(self, partition: np.ndarray) -> None:
        """Process all (selected) frames of a partition, stacked along the first axis."""
        raise NotImplementedError()


class UDFPreprocessMixin:
    """Implement ``preprocess`` to initialize buffers before processing or merging."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def preprocess(self) -> None:
        """Initialize buffers; runs per partition on workers and once on the main node."""
        raise NotImplementedError()


class UDFPostprocessMixin:
    """Implement ``postprocess`` to finish a partition's results on the worker."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def postprocess(self) -> None:
        """Run after all data of a partition has been processed."""
        raise NotImplementedError()


class UDFMergeAllMixin:
    """Implement ``merge_all`` to merge all partial results in one step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def merge_all(self, ordered_results: Mapping[Slice, MergeAttrMapping]) -> Mapping[str, Any]:
        """Merge partial results.

        Parameters
        ----------
        ordered_results
            Mapping of each partition's :class:`~libertem.common.slice.Slice` to its
            partial results (attribute/item access per buffer), ordered by position.

        Returns
        -------
        dict
            Buffer name to merged array; ``nav`` results flat and ROI-compressed.
        """
        raise NotImplementedError()


DEFAULT_MERGE_ONLY_NAV = (
    "Default merging only works for kind='nav' buffers. "
    "Please implement a suitable custom merge function."
)

_METHODS = (
    (UDFMethod.TILE, UDFTileMixin.process_tile),
    (UDFMethod.FRAME, UDFFrameMixin.process_frame),
    (UDFMethod.PARTITION, UDFPartitionMixin.process_partition),
)


def implements(cls, method: UDFMethod) -> bool:
    """Whether ``cls`` has its own ``process_<method>`` (not the mixin's stub)."""
    stub = dict(_METHODS)[method]
    impl = getattr(cls, f"process_{method.value}", None)
    return impl is not None and impl is not stub


def first_implemented(cls) -> UDFMethod | None:
    """The first of ``TILE``, ``FRAME``, ``PARTITION`` whose ``process_*`` method ``cls``
    implements, or ``None``."""
    for method, _stub in _METHODS:
        if implements(cls, method):
            return method
    return None


def find_method(udf) -> str:
    """Which processing method a UDF uses: ``'tile'``, ``'frame'`` or ``'partition'``,
    as its ``get_method()`` says.

    Raises
    ------
    UDFException
        If ``get_method()`` returns something other than a
        :class:`~libertem.common.udf.UDFMethod`, or a method the UDF does not implement.
    """
    method = udf.get_method()
    if not isinstance(method, UDFMethod):
        raise UDFException("UDF.get_method() returned unrecognized value")
    if not implements(type(udf), method):
        raise UDFException(
            f"UDF declared method {method.value} but does not implement process_{method.value}."
        )
    return method.value


__all__ = [
    "DEFAULT_MERGE_ONLY_NAV",
    "UDFFrameMixin",
    "UDFMergeAllMixin",
    "UDFPartitionMixin",
    "UDFPostprocessMixin",
    "UDFPreprocessMixin",
    "UDFTileMixin",
    "find_method",
    "first_implemented",
    "implements",
]
