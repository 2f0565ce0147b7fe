"""Writing to Zarr stores: whole datasets (:func:`export_zarr`, also reached through
``Context.export_dataset(..., format='zarr')``) and the results of ``run_udf``
(:func:`write_results_zarr`, read back with :func:`read_results_zarr`).

A dataset is written by a UDF run, so the data flows through the executor
partition by partition and every worker writes its own part. The array is chunked
along the navigation axes so that each chunk holds a contiguous run of whole
frames. Chunks that lie entirely in one partition are written by its worker;
the few that straddle two partitions are collected from the pieces the workers
leave in a scratch folder inside the store and written at the end, so no chunk
is ever written by two workers at once.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from math import prod
from typing import Any

import numpy as np

from libertem.io.dataset.base.chunked import FlatChunkGrid, flat_slabs
from libertem.io.dataset.zarr import is_zarr_store
from libertem.udf.base import UDF

__all__ = [
    "ZarrExportUDF",
    "export_zarr",
    "is_zarr_target",
    "read_results_zarr",
    "write_results_zarr",
]

#: default bytes of one chunk of an exported dataset
CHUNK_BYTES = 8 * 1024 * 1024
_SCRATCH = ".libertem-export-"
_RESULTS_MARK = "udf-results"


def is_zarr_target(path: str | os.PathLike) -> bool:
    """Whether ``export_dataset`` writes Zarr to ``path`` by default: a name ending in
    ``.zarr``, or an existing directory."""
    path = os.fspath(path)
    return path.rstrip("/\\").lower().endswith(".zarr") or os.path.isdir(path)


def _zarr():
    import zarr
    from zarr.storage import LocalStore

    return zarr, LocalStore


def _clear_target(path: str, overwrite: bool) -> None:
    """Make room for a new store at ``path``; only Zarr stores and empty folders are removed."""
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path) and not is_zarr_store(path):
            raise FileExistsError(f"{path} exists and is not a Zarr store; not replacing it")
        shutil.rmtree(path)
    else:
        os.remove(path)


def export_chunks(
    nav_shape: Sequence[int], sig_shape: Sequence[int], chunk_frames: int
) -> tuple[int, ...]:
    """Chunks of an exported array: about ``chunk_frames`` whole frames that follow each
    other in flat navigation order (the fastest navigation axes whole, then a part of the
    next one, ones before)."""
    nav = [int(n) for n in nav_shape]
    chunks = [1] * len(nav)
    run = 1
    for axis in reversed(range(len(nav))):
        if chunk_frames >= nav[axis] * run:
            chunks[axis] = nav[axis]
            run *= nav[axis]
        else:
            chunks[axis] = max(1, chunk_frames // run)
            break
    return (*chunks, *(int(s) for s in sig_shape))


class _ChunkWriter:
    """Collects the frames of one partition's tiles into whole chunks and writes them."""

    def __init__(self, array, n_nav: int):
        self.array = array
        self.nav_shape = tuple(array.shape[:n_nav])
        self.sig_shape = tuple(array.shape[n_nav:])
        self.grid = FlatChunkGrid(self.nav_shape, array.chunks[:n_nav])
        self.open: dict[int, list] = {}
        self.frame_size = prod(self.sig_shape)

    def put(self, first: int, sig_index: tuple, data: np.ndarray) -> None:
        """Take frames ``first ...`` of the region ``sig_index`` of each frame."""
        stop = first + data.shape[0]
        pixels = prod(data.shape[1:])
        frame = first
        while frame < stop:
            start, end = self.grid.chunk_range(frame)
            entry = self.open.get(start)
            if entry is None:
                buf = np.empty((end - start, *self.sig_shape), dtype=self.array.dtype)
                entry = self.open[start] = [buf, 0]
            upto = min(end, stop)
            entry[0][(slice(frame - start, upto - start), *sig_index)] = data[
                frame - first : upto - first
            ]
            entry[1] += (upto - frame) * pixels
            if entry[1] == (end - start) * self.frame_size:
                write_frames(self.array, start, entry[0])
                del self.open[start]
            frame = upto

    def spill(self, first: int, stop: int, folder: str) -> None:
        """Save the parts of unfinished chunks that frames ``[first, stop)`` hold."""
        for start, (buf, _) in self.open.items():
            lo = max(start, first)
            hi = min(start + buf.shape[0], stop)
            np.save(os.path.join(folder, f"{start}_{lo}_{hi}.npy"), buf[lo - start : hi - start])
        self.open.clear()


def write_frames(array, first: int, frames: np.ndarray) -> None:
    """Write ``frames`` (``(n, *sig)``) to flat frames ``first ...`` of a Zarr array."""
    n_nav = array.ndim - (frames.ndim - 1)
    nav = tuple(array.shape[:n_nav])
    for offset, sel in flat_slabs(first, first + frames.shape[0], nav):
        slab = tuple(s.stop - s.start for s in sel)
        part = frames[offset - first : offset - first + prod(slab)]
        array[sel] = part.reshape(slab + part.shape[1:])


class ZarrExportUDF(UDF):
    """Write the frames of a run into an existing Zarr array (used by :func:`export_zarr`).

    The array has the dataset's shape, or ``(n_selected, *sig)`` with a ROI, and chunks
    of whole frames that are contiguous in flat navigation order.

    Parameters
    ----------
    path
        The store.
    array_path
        Path of the array in the store (``''``: the store is the array).
    scratch
        Folder for the parts of chunks that a partition only partly holds.
    """

    def __init__(self, path: str, array_path: str, scratch: str):
        super().__init__(path=path, array_path=array_path, scratch=scratch)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {}

    def get_task_data(self):
        zarr, LocalStore = _zarr()
        store = LocalStore(self.params.path)
        array = zarr.open_array(store=store, path=self.params.array_path, mode="r+")
        return {"writer": _ChunkWriter(array, array.ndim - self.meta.dataset_shape.sig.dims)}

    def process_tile(self, tile):
        """Put the tile into its chunks; write the chunks it completes."""
        s = self.meta.slice
        self.task_data.writer.put(s.origin[0], s.get(sig_only=True), np.asarray(tile))

    def postprocess(self):
        """Leave the partition's parts of chunks shared with its neighbours for the end."""
        s = self.meta.slice
        self.task_data.writer.spill(s.origin[0], s.origin[0] + s.shape[0], self.params.scratch)


def _write_shared_chunks(array, scratch: str, n_nav: int) -> None:
    """Assemble and write the chunks whose parts the partitions left in ``scratch``."""
    pieces: dict[int, list[tuple[int, int, str]]] = {}
    for name in os.listdir(scratch):
        start, lo, hi = (int(v) for v in name[: -len(".npy")].split("_"))
        pieces.setdefault(start, []).append((lo, hi, os.path.join(scratch, name)))
    grid = FlatChunkGrid(array.shape[:n_nav], array.chunks[:n_nav])
    for start, parts in sorted(pieces.items()):
        stop = grid.chunk_range(start)[1]
        covered = sum(hi - lo for lo, hi, _ in parts)
        if covered != stop - start:
            raise RuntimeError(f"export: chunk at frame {start} got {covered} of {stop - start}")
        buf = np.empty((stop - start, *array.shape[n_nav:]), dtype=array.dtype)
        for lo, hi, file in parts:
            buf[lo - start : hi - start] = np.load(file)
        write_frames(array, start, buf)


def export_zarr(
    ctx,
    dataset,
    path: str | os.PathLike,
    *,
    roi: np.ndarray | None = None,
    progress: bool = False,
    overwrite: bool = False,
    array: str | None = None,
    chunk_frames: int | None = None,
    compressors: Any = "auto",
    zarr_format: int = 3,
    attributes: dict | None = None,
) -> str:
    """Write a dataset to a Zarr array, chunked along the navigation axes.

    Parameters
    ----------
    ctx
        The :class:`~libertem.api.Context` whose executor does the work.
    dataset
        The dataset.
    path
        The store (a directory, created).
    roi
        Write only the selected frames, as a stack ``(n_selected, *sig_shape)``.
    progress
        Show a progress bar.
    overwrite
        Replace an existing store (or array ``array``); other existing files or
        folders are never removed.
    array
        Write the array at this path of a group at ``path`` (created or added to);
        ``None``: the store is the array.
    chunk_frames
        Frames per chunk; by default about 8 MiB of frames.
    compressors
        Passed to ``zarr.create_array``: ``'auto'`` (Zarr's default, Zstandard),
        ``None`` for uncompressed chunks, or codecs.
    zarr_format
        3 (default) or 2.
    attributes
        More attributes of the array (besides ``libertem``: nav and sig shape).

    Returns
    -------
    str
        The path of the store.

    Raises
    ------
    FileExistsError
        If the target exists and ``overwrite`` is false.
    ValueError
        For a ROI that does not fit the dataset or bad chunk settings.
    """
    zarr, LocalStore = _zarr()
    path = os.fspath(path)
    shape = dataset.shape
    sig = tuple(shape.sig)
    nav = tuple(shape.nav)
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        if roi.size != shape.nav.size:
            raise ValueError(f"roi of shape {roi.shape} does not fit navigation shape {nav}")
        nav = (int(np.count_nonzero(roi)),)
    dtype = np.dtype(dataset.dtype)
    frame_bytes = prod(sig) * dtype.itemsize
    if chunk_frames is None:
        chunk_frames = max(1, CHUNK_BYTES // max(1, frame_bytes))
    elif int(chunk_frames) < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    chunks = export_chunks(nav, sig, int(chunk_frames)) if prod(nav) else (1,) * len(nav) + sig
    array_path = (array or "").strip("/")
    if array_path:
        if os.path.exists(path) and not is_zarr_store(path):
            raise FileExistsError(f"{path} exists and is not a Zarr store")
        group = zarr.open_group(store=LocalStore(path), mode="a", zarr_format=zarr_format)
        if array_path in group and not overwrite:
            raise FileExistsError(f"{path}: {array_path!r} exists; pass overwrite=True")
    else:
        _clear_target(path, overwrite)
    attrs = dict(attributes or {})
    attrs["libertem"] = {"nav_shape": list(nav), "sig_shape": list(sig), "roi": roi is not None}
    out = zarr.create_array(
        store=LocalStore(path),
        name=array_path or None,
        shape=(*nav, *sig),
        dtype=dtype,
        chunks=chunks,
        compressors=compressors,
        zarr_format=zarr_format,
        attributes=attrs,
        overwrite=bool(array_path) and overwrite,
    )
    if not prod(nav):
        return path
    scratch = os.path.join(path, _SCRATCH + uuid.uuid4().hex)
    os.makedirs(scratch)
    try:
        udf = ZarrExportUDF(path=path, array_path=array_path, scratch=scratch)
        ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
        _write_shared_chunks(out, scratch, len(nav))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


# results of run_udf ----------------------------------------------------------------


def _result_dicts(results) -> tuple[list[Mapping], bool]:
    """The result dicts of one or more UDFs, and whether there were several."""
    if hasattr(results, "buffers") and not isinstance(results, Mapping):
        results = results.buffers
    if isinstance(results, Mapping):
        return [results], False
    if isinstance(results, Sequence) and all(isinstance(r, Mapping) for r in results):
        return list(results), True
    raise TypeError(
        "results must be the dict that run_udf returns, or a list/tuple of such dicts, "
        f"got {type(results).__name__}"
    )


def _to_numpy(value) -> np.ndarray:
    from libertem.common.buffers import to_numpy

    return np.asarray(to_numpy(getattr(value, "data", value)))


def write_results_zarr(
    results,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    compressors: Any = "auto",
    zarr_format: int = 3,
) -> str:
    """Write the results of ``run_udf`` to a Zarr group, one array per buffer.

    Each array holds the buffer's ``.data`` (shape and dtype as there) and has the
    attributes ``kind`` (``'nav'``, ``'sig'`` or ``'single'``), ``extra_shape`` and
    ``dtype``. Where a buffer has entries without results (``valid_mask``, e.g.
    ``kind='nav'`` buffers of a run with ROI), the mask is stored as the boolean
    array of the same name in the subgroup ``valid_mask``.

    Parameters
    ----------
    results
        What ``run_udf`` returned: a dict of buffers (one UDF), or a list or tuple
        of them (several UDFs: one subgroup per UDF, named ``'0'``, ``'1'``...);
        also a ``UDFResults`` of ``run_udf_iter``. Plain arrays are accepted as values.
    path
        The group to create (a directory).
    overwrite
        Replace an existing Zarr store at ``path``.
    compressors
        Passed to ``zarr.create_array`` (``None``: uncompressed).
    zarr_format
        3 (default) or 2.

    Returns
    -------
    str
        The path of the store.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    TypeError
        For results that are not buffers or arrays, or buffers of ``object`` dtype.
    """
    zarr, LocalStore = _zarr()
    dicts, several = _result_dicts(results)
    arrays = []
    for idx, result in enumerate(dicts):
        for name, buf in result.items():
            data = _to_numpy(buf)
            if data.dtype.kind not in "biufcmM":
                raise TypeError(f"result {name!r}: dtype {data.dtype} cannot be written to Zarr")
            arrays.append((str(idx) if several else "", str(name), buf, data))
    path = os.fspath(path)
    _clear_target(path, overwrite)
    root = zarr.open_group(store=LocalStore(path), mode="w", zarr_format=zarr_format)
    root.attrs["libertem"] = {
        "content": _RESULTS_MARK,
        "udfs": len(dicts) if several else None,
    }
    for prefix, name, buf, data in arrays:
        group = root.require_group(prefix) if prefix else root
        attrs = {"dtype": data.dtype.str}
        kind = getattr(buf, "kind", None)
        if kind is not None:
            attrs["kind"] = kind
            attrs["extra_shape"] = list(getattr(buf, "extra_shape", ()))
        group.create_array(name, data=data, compressors=compressors, attributes=attrs)
        valid = getattr(buf, "valid_mask", None)
        if valid is not None and not np.all(valid):
            masks = group.require_group("valid_mask")
            masks.create_array(name, data=np.asarray(valid, dtype=bool), compressors=compressors)
    return path


def read_results_zarr(path: str | os.PathLike, masked: bool = False):
    """Read results written by :func:`write_results_zarr`.

    Parameters
    ----------
    path
        The group.
    masked
        Return buffers with a stored valid mask as ``numpy.ma.MaskedArray``
        (invalid entries masked).

    Returns
    -------
    dict or list of dict
        Buffer name -> array; a list with one dict per UDF if several were written.

    Raises
    ------
    ValueError
        If ``path`` does not hold results written by :func:`write_results_zarr`.
    """
    zarr, LocalStore = _zarr()
    path = os.fspath(path)
    try:
        root = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError) as e:
        raise ValueError(f"{path}: not a Zarr group of UDF results ({e})") from e
    info = root.attrs.get("libertem") or {}
    if not isinstance(info, Mapping) or info.get("content") != _RESULTS_MARK:
        raise ValueError(f"{path}: not a Zarr group of UDF results")

    def read(group) -> dict[str, np.ndarray]:
        masks = group["valid_mask"] if "valid_mask" in group else None
        out = {}
        for name, arr in sorted(group.arrays()):
            data = arr[...]
            if masked and masks is not None and name in masks:
                data = np.ma.array(data, mask=~masks[name][...])
            out[name] = data
        return out

    n = info.get("udfs")
    if n is None:
        return read(root)
    return [read(root[str(i)]) for i in range(int(n))]
