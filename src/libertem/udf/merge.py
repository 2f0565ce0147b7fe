"""Merging on the main node: a UDF's full-size buffers, merging the partial results of
the partitions into them, and the final results."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from libertem.common.buffers import ArrayWithMask, BufferWrapper, PlaceholderBufferWrapper
from libertem.common.exceptions import UDFException
from libertem.common.shape import Shape
from libertem.udf.classes import UDF, overrides
from libertem.udf.data import MergeAttrMapping, UDFData
from libertem.udf.mixins import DEFAULT_MERGE_ONLY_NAV
from libertem.udf.partition_runner import aux_buffers

if TYPE_CHECKING:
    pass


class MainUDF:
    """A UDF on the main node: its full-size buffers and how partial results merge in.

    Parameters
    ----------
    udf
        The UDF (its ``meta`` is set).
    sig_shape
        The dataset's signal shape.
    n_selected
        Number of frames the run processes.
    merge_all
        Whether the executor merges with the UDF's ``merge_all`` (the delayed
        executor) instead of ``merge``.

    Raises
    ------
    NotImplementedError
        If a buffer that is merged is not of ``kind='nav'`` and the UDF has no
        ``merge`` (nor a ``merge_all`` that the executor uses).
    """

    def __init__(
        self, udf: UDF, sig_shape: tuple[int, ...], n_selected: int, merge_all: bool = False
    ):
        self.udf = udf
        declared = udf.get_result_buffers()
        buffers = {}
        for name, buf in declared.items():
            if buf.use == "result_only":
                buffers[name] = PlaceholderBufferWrapper(
                    buf.kind, buf.extra_shape, buf.dtype, buf.where, buf.use
                )
                continue
            buf.set_shape(n_selected, sig_shape)
            buf.allocate()
            buffers[name] = buf
        self.declared = declared
        self.mergeable = {k: b for k, b in declared.items() if b.use != "result_only"}
        self.custom_merge = overrides(udf, "merge")
        uses_merge_all = merge_all and overrides(udf, "merge_all")
        if not (self.custom_merge or uses_merge_all):
            if any(buf.kind != "nav" for buf in self.mergeable.values()):
                raise NotImplementedError(DEFAULT_MERGE_ONLY_NAV)
        udf.results = UDFData(buffers)

    def merge(
        self,
        partial: dict[str, np.ndarray],
        start: int,
        n: int,
        damage: np.ndarray | None = None,
        nav_range: tuple[int, int] | None = None,
        roi: np.ndarray | None = None,
    ) -> None:
        """Merge the partial results of the frames ``[start, start + n)`` (compressed).

        Parameters
        ----------
        partial
            The partition's results, by buffer name.
        start, n
            Where its frames are among the selected frames.
        damage
            Flat mask of the frames merged before (``meta.get_valid_nav_mask()``
            inside ``merge``); not changed.
        nav_range
            The partition's frames ``[start, stop)`` in the whole navigation space:
            auxiliary data reads as this part inside ``merge``.
        roi
            Flat ROI of the run, or ``None``.
        """
        if not self.custom_merge:
            for name, arr in partial.items():
                self.mergeable[name].raw_data[start : start + n] = arr
            return
        meta = self.udf.meta
        for buf in self.mergeable.values():
            buf.set_view_nav_range(start, start + n)
        aux = aux_buffers(self.udf)  # looked up each time: parameters may be updated
        whole_aux = [(buf, buf.raw_data) for buf in aux]
        if nav_range is not None:
            for buf in aux:
                buf.bind_aux(nav_range[0], nav_range[1], roi)
        if damage is not None:
            meta.set_valid_nav_source(damage, roi)
        try:
            dest = MergeAttrMapping({name: buf.view for name, buf in self.mergeable.items()})
            self.udf.merge(dest=dest, src=MergeAttrMapping(partial))
        finally:
            meta.set_valid_nav_mask(None)
            for buf, storage in whole_aux:
                buf.set_storage(storage)
            for buf in self.mergeable.values():
                buf.reset_view()

    def results(
        self, dataset_shape: Shape, roi: np.ndarray | None, damage: np.ndarray | None = None
    ) -> dict[str, BufferWrapper]:
        """The UDF's results so far: ``get_results`` on the merged buffers.

        ``damage`` marks the frames merged so far (flat, whole navigation space).

        Raises
        ------
        KeyError
            If ``get_results`` returns a name that is not declared.
        UDFException
            If it returns a ``use='private'`` buffer, or an array whose dtype kind
            differs from the declared one.
        """
        for buf in self.mergeable.values():
            buf.reset_view()
        meta = self.udf.meta
        if damage is not None:
            meta.set_valid_nav_source(damage, roi)
        try:
            computed = self.udf.get_results()
        finally:
            meta.set_valid_nav_mask(None)
        out = {}
        for name, value in collect_results(self.declared, computed).items():
            decl = self.declared[name]
            mask = None
            if isinstance(value, ArrayWithMask):
                value, mask = value.arr, value.mask
            result = as_result(decl, value, dataset_shape, roi)
            if mask is not None:
                result.set_valid_mask(mask)
            elif damage is not None:
                result.set_valid_nav(damage)
            out[name] = result
        return out


def collect_results(declared: dict[str, BufferWrapper], computed: dict) -> dict:
    """What ``get_results`` returned (``computed``), checked and completed.

    Every ``use=None`` buffer it leaves out is added as merged (its ``raw_data``);
    left-out ``use='result_only'`` buffers do not appear. Order: as declared.

    Raises
    ------
    KeyError
        For a name that is not declared.
    UDFException
        For a ``use='private'`` buffer, or an array whose dtype kind differs from
        the declared one.
    """
    for name in computed:
        if declared[name].use == "private":
            raise UDFException("Don't return `use='private'` buffers from `get_results`")
    out = {}
    for name, decl in declared.items():
        if name in computed:
            value = computed[name]
        elif decl.use is None:
            value = decl.raw_data
        else:
            continue
        arr = value.arr if isinstance(value, ArrayWithMask) else value
        check_dtype_kind(name, decl, arr)
        out[name] = value
    return out


def check_dtype_kind(name: str, decl: BufferWrapper, value) -> None:
    """Refuse a returned array whose dtype kind differs from the declared buffer's.

    Raises
    ------
    UDFException
        Naming both dtypes.
    """
    dtype = getattr(value, "dtype", None)
    if isinstance(value, BufferWrapper) or dtype is None:
        return
    if np.dtype(dtype).kind != decl.dtype.kind:
        raise UDFException(
            f"the returned ndarray {name!r} has a different dtype kind ({np.dtype(dtype)}) "
            f"than declared ({decl.dtype})"
        )


def as_result(decl: BufferWrapper, value, dataset_shape: Shape, roi) -> BufferWrapper:
    """A result buffer of ``decl``'s kind holding ``value`` (see ``BufferWrapper.set_result``)."""
    from libertem.common.buffers import to_numpy

    arr = value.raw_data if isinstance(value, BufferWrapper) else to_numpy(value)
    result = decl.result_buffer_type()(
        decl.kind, decl.extra_shape, arr.dtype, decl.where, decl.use
    )
    result.set_result(arr, dataset_shape, roi)
    return result


__all__ = [
    "MainUDF",
    "as_result",
    "check_dtype_kind",
    "collect_results",
]
