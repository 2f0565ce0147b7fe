"""A UDF on the main node: full-size buffers, merging partial results, final results;
and the negotiation of the tiling scheme."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.buffers import ArrayWithMask, BufferWrapper, InvalidMaskError
from libertem.common.exceptions import UDFException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.udf import TileDepthEnum, TileSizeEnum
from libertem.io.dataset.base import TilingRequest, make_tiling_scheme
from libertem.io.dataset.base.negotiator import adjust_scheme
from libertem.io.dataset.base.tiling import DEFAULT_TILE_BYTES, LARGE_TILE_BYTES
from libertem.udf.base import UDF, overrides
from libertem.udf.data import MergeAttrMapping, UDFData

if TYPE_CHECKING:
    from libertem.io.dataset.base import TilingScheme


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
    """

    def __init__(self, udf: UDF, sig_shape: tuple[int, ...], n_selected: int):
        self.udf = udf
        declared = udf.get_result_buffers()
        for buf in declared.values():
            buf.set_shape(n_selected, sig_shape)
            buf.allocate()
        self.declared = declared
        self.mergeable = {k: b for k, b in declared.items() if b.use != "result_only"}
        self.custom_merge = overrides(udf, "merge")
        self.merge_all_only = not self.custom_merge and overrides(udf, "merge_all")
        self.pending: dict[Slice, MergeAttrMapping] = {}
        if not (self.custom_merge or self.merge_all_only):
            for name, buf in self.mergeable.items():
                if buf.kind != "nav":
                    raise UDFException(
                        f"{type(udf).__name__} declares buffer {name!r} of kind={buf.kind!r} "
                        "but does not implement merge(dest, src) (or merge_all) to combine "
                        "partial results of partitions"
                    )
        udf.results = UDFData(declared)

    def merge(self, partial: dict[str, np.ndarray], start: int, n: int, sig_dims: int = 0) -> None:
        """Merge the partial results of the frames ``[start, start + n)`` (compressed)."""
        if self.merge_all_only:
            key = Slice((start,), Shape((n,), sig_dims=0))
            self.pending[key] = MergeAttrMapping(partial)
            return
        if not self.custom_merge:
            for name, arr in partial.items():
                self.mergeable[name].raw_data[start : start + n] = arr
            return
        for buf in self.mergeable.values():
            buf.set_view_nav_range(start, start + n)
        try:
            dest = MergeAttrMapping({name: buf.view for name, buf in self.mergeable.items()})
            self.udf.merge(dest=dest, src=MergeAttrMapping(partial))
        finally:
            for buf in self.mergeable.values():
                buf.reset_view()

    def apply_merge_all(self) -> None:
        """Hand everything held back to the UDF's ``merge_all``."""
        if not self.merge_all_only or not self.pending:
            return
        ordered = dict(sorted(self.pending.items(), key=lambda item: item[0].origin[0]))
        self.pending = {}
        merged = self.udf.merge_all(ordered)
        for name, arr in merged.items():
            target = self.mergeable[name].raw_data
            target[...] = np.asarray(arr).reshape(target.shape)

    def results(
        self, dataset_shape: Shape, roi: np.ndarray | None, damage: np.ndarray | None = None
    ) -> dict[str, BufferWrapper]:
        """The UDF's results so far: ``get_results`` on the merged buffers.

        ``damage`` marks the frames merged so far (flat, whole navigation space).
        """
        self.apply_merge_all()
        for buf in self.declared.values():
            buf.reset_view()
        meta = self.udf.meta
        if damage is not None:
            valid = damage if roi is None else damage[roi]
            meta.set_valid_nav_mask(valid.copy())
        try:
            computed = self.udf.get_results()
        finally:
            meta.set_valid_nav_mask(None)
        out = {}
        for name, value in computed.items():
            decl = self.declared.get(name)
            if decl is None:
                raise UDFException(
                    f"{type(self.udf).__name__}.get_results returned {name!r}, which is not "
                    f"a declared buffer ({sorted(self.declared)})"
                )
            mask = None
            if isinstance(value, ArrayWithMask):
                value, mask = value.arr, value.mask
            result = as_result(decl, value, dataset_shape, roi)
            try:
                if mask is not None:
                    result.set_valid_mask(mask)
                elif damage is not None:
                    result.set_valid_nav(damage)
            except InvalidMaskError as e:
                raise UDFException(f"{type(self.udf).__name__} result {name!r}: {e}") from e
            out[name] = result
        return out


def as_result(decl: BufferWrapper, value, dataset_shape: Shape, roi) -> BufferWrapper:
    """A result buffer of ``decl``'s kind holding ``value``."""
    from libertem.common.buffers import to_numpy

    arr = value.raw_data if isinstance(value, BufferWrapper) else to_numpy(value)
    result = decl.result_buffer_type()(
        decl.kind, decl.extra_shape, arr.dtype, decl.where, decl.use
    )
    if decl.kind == "nav":
        n = dataset_shape.nav.size if roi is None else int(np.count_nonzero(roi))
        arr = arr.reshape((n, *decl.extra_shape))
    result.set_storage(arr)
    result.set_result_context(dataset_shape, roi)
    return result


def _is_inf(value) -> bool:
    return isinstance(value, (int, float)) and math.isinf(value)


def tiling_request(udfs: Sequence[UDF], methods: Sequence[str]) -> TilingRequest:
    """What the UDFs together want of the tiles."""
    sizes, depths = [], []
    for udf in udfs:
        prefs = udf.get_tiling_preferences() or {}
        size = prefs.get("total_size", TileSizeEnum.BEST_FIT)
        if size in (TileSizeEnum.BEST_FIT, TileSizeEnum.BEST_FIT.value):
            sizes.append(DEFAULT_TILE_BYTES)
        elif _is_inf(size):
            sizes.append(LARGE_TILE_BYTES)
        else:
            sizes.append(max(1, int(size)))
        depth = prefs.get("depth", TileDepthEnum.DEFAULT)
        if depth in (TileDepthEnum.DEFAULT, TileDepthEnum.DEFAULT.value):
            continue
        depths.append(None if _is_inf(depth) else max(1, int(depth)))
    whole = any(m == "partition" for m in methods) or (
        bool(depths) and all(d is None for d in depths)
    )
    finite = [d for d in depths if d is not None]
    return TilingRequest(
        total_size=min(sizes) if sizes else DEFAULT_TILE_BYTES,
        depth=min(finite) if finite else None,
        full_frames=any(m != "tile" for m in methods),
        whole_partition=whole,
    )


def negotiate_scheme(
    udfs: Sequence[UDF],
    methods: Sequence[str],
    dataset,
    partitions: Sequence,
    input_dtypes: Sequence[np.dtype],
    sig_shape: tuple[int, ...],
    corrections,
) -> TilingScheme:
    """The tiling scheme of a run: the UDFs' wishes, the dataset's blocks, the corrections."""
    max_depth = max((p.stop - p.start for p in partitions), default=1)
    have = getattr(corrections, "have_corrections", None)
    request = tiling_request(udfs, methods)
    scheme = make_tiling_scheme(
        request,
        sig_shape,
        tuple(dataset.get_base_shape()),
        max(d.itemsize for d in input_dtypes),
        max_depth,
        dataset.get_preferred_depth(),
        corrections=corrections if have is not None and have() else None,
        dataset_shape=dataset.shape,
        max_io_size=dataset.get_max_io_size(),
    )
    return adjust_scheme(scheme, dataset, None, request.full_frames)


__all__ = ["MainUDF", "as_result", "negotiate_scheme", "tiling_request"]
