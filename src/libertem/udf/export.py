"""Exporting datasets: a run whose UDF writes the frames it sees into a file.

``Context.export_dataset`` (:func:`export_dataset`) writes ``.npy`` files with
:class:`RecordUDF` (LiberTEM's UDF, also at :mod:`libertem.udf.record`), raw binary
files with :class:`ExportUDF` and Zarr arrays with :func:`export_zarr`
(:class:`ZarrExportUDF`). Every worker writes its own partitions.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

import numpy as np

from libertem.common.buffers import reshaped_view
from libertem.common.math import prod
from libertem.common.roi import normalize_roi
from libertem.common.shape import Shape
from libertem.io.dataset.zarr import is_zarr_store
from libertem.io.writers.zarr import (
    CHUNK_BYTES,
    SCRATCH_PREFIX,
    ChunkWriter,
    clear_target,
    export_chunks,
    write_shared_chunks,
    zarr_modules,
)
from libertem.udf.classes import UDF

__all__ = [
    "ExportUDF",
    "RecordUDF",
    "ZarrExportUDF",
    "export_dataset",
    "export_zarr",
    "format_of",
]


class RecordUDF(UDF):
    """Write the input data of a run into a NumPy ``.npy`` file, as it is processed.

    Without ROI the file has the dataset's full shape; with a ROI it holds the
    selected frames as a stack ``(n_selected, *sig_shape)``, in the order of the
    flat navigation index. The data keep their native dtype. Other UDFs can run in
    the same pass, so a live stream can be processed and recorded at once.

    Parameters
    ----------
    filename
        The ``.npy`` file to create (replaced if it exists).
    _is_master
        Internal: ``True`` for the instance the user creates, which creates the
        file; the instances made for the partitions only write into it.
    """

    def __init__(self, filename, _is_master=True):
        super().__init__(filename=os.fspath(filename), _is_master=_is_master)

    @classmethod
    def new_for_partition(cls, kwargs, partition, roi):
        """An instance for one partition: it writes into the file but does not create it."""
        return super().new_for_partition({**kwargs, "_is_master": False}, partition, roi)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {}

    def _file_shape(self) -> Shape:
        shape = self.meta.dataset_shape
        sig = tuple(shape.sig)
        if self.meta.roi is None:
            return Shape(tuple(shape), sig_dims=len(sig))
        n = int(np.count_nonzero(self.meta.roi))
        return Shape((n, *sig), sig_dims=len(sig))

    def preprocess(self):
        """On the main node: create the file at its full size, with the ``.npy`` header."""
        if not self.params._is_master:
            return
        shape = self._file_shape()
        out = np.lib.format.open_memmap(
            self.params.filename, mode="w+", dtype=self.meta.input_dtype, shape=tuple(shape)
        )
        out.flush()
        del out

    def get_task_data(self):
        out = np.load(self.params.filename, mmap_mode="r+")
        shape = self._file_shape()
        frames = reshaped_view(out, (prod(shape.nav), *tuple(shape.sig)))
        return {"out": out, "frames": frames}

    def process_tile(self, tile):
        """Write the tile into its place in the file."""
        self.task_data.frames[self.meta.slice.get()] = tile

    def postprocess(self):
        """Flush this partition's writes to the file."""
        self.task_data.out.flush()


class ExportUDF(UDF):
    """Write each tile into a raw binary file of C-ordered frames (internal helper).

    The ``.npy`` counterpart is :class:`RecordUDF`.

    Parameters
    ----------
    path
        The file, already created at its full size.
    dtype
        Dtype of the file.
    n_frames
        Number of frames in the file (selected frames with a ROI).
    """

    def __init__(self, path: str, dtype: str, n_frames: int):
        super().__init__(path=path, dtype=dtype, n_frames=n_frames)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {}

    def get_task_data(self):
        p = self.params
        shape = (p.n_frames, *tuple(self.meta.dataset_shape.sig))
        return {"out": np.memmap(p.path, mode="r+", dtype=np.dtype(p.dtype), shape=shape)}

    def process_tile(self, tile):
        """Write the tile into its place in the output file."""
        self.task_data.out[self.meta.slice.get()] = tile

    def postprocess(self):
        """Flush the partition's writes to the file."""
        self.task_data.out.flush()


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
        zarr, LocalStore = zarr_modules()
        store = LocalStore(self.params.path)
        array = zarr.open_array(store=store, path=self.params.array_path, mode="r+")
        return {"writer": ChunkWriter(array, array.ndim - self.meta.dataset_shape.sig.dims)}

    def process_tile(self, tile):
        """Put the tile into its chunks; write the chunks it completes."""
        s = self.meta.slice
        self.task_data.writer.put(s.origin[0], s.get(sig_only=True), np.asarray(tile))

    def postprocess(self):
        """Leave the partition's parts of chunks shared with its neighbours for the end."""
        s = self.meta.slice
        self.task_data.writer.spill(s.origin[0], s.origin[0] + s.shape[0], self.params.scratch)


def format_of(path: str) -> str:
    """The format ``export_dataset`` writes to ``path`` when none is given: ``'npy'`` for
    a ``.npy`` suffix, ``'zarr'`` for ``.zarr`` (case-sensitive).

    Raises
    ------
    ValueError
        For any other suffix, or none (LiberTEM's message).
    """
    suffix = os.path.splitext(path.rstrip("/\\"))[1]
    if suffix == ".npy":
        return "npy"
    if suffix == ".zarr":
        return "zarr"
    raise ValueError(f"Unrecognized file extension {suffix} only .npy is currently supported.")


def export_dataset(
    ctx,
    dataset,
    path: str | os.PathLike,
    roi: np.ndarray | None = None,
    progress: bool = False,
    overwrite: bool = False,
    format: str | None = None,
) -> str:
    """Write ``dataset`` to ``path`` as ``.npy``, raw binary or Zarr; see
    ``Context.export_dataset``."""
    path = os.fspath(path)
    if format is None:
        format = format_of(path)
    if format == "zarr":
        return export_zarr(ctx, dataset, path, roi=roi, progress=progress, overwrite=overwrite)
    if format not in ("npy", "raw"):
        raise ValueError(f"format must be 'npy', 'raw' or 'zarr', got {format!r}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    roi = normalize_roi(roi, dataset.shape.nav)
    if format == "npy":
        # RecordUDF creates the file (with its header) before the run starts
        ctx.run_udf(dataset=dataset, udf=RecordUDF(path), roi=roi, progress=progress)
        return path
    dtype = np.dtype(dataset.dtype)
    sig = tuple(dataset.shape.sig)
    n_frames = dataset.shape.nav.size if roi is None else int(np.count_nonzero(roi))
    with open(path, "wb") as f:
        f.truncate(n_frames * prod(sig) * dtype.itemsize)
    if n_frames:
        udf = ExportUDF(path=path, dtype=dtype.str, n_frames=n_frames)
        ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
    return path


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
    zarr, LocalStore = zarr_modules()
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
        clear_target(path, overwrite)
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
    scratch = os.path.join(path, SCRATCH_PREFIX + uuid.uuid4().hex)
    os.makedirs(scratch)
    try:
        udf = ZarrExportUDF(path=path, array_path=array_path, scratch=scratch)
        ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
        write_shared_chunks(out, scratch, len(nav))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path
