"""Write a dataset (or the frames a ROI selects) to a ``.npy`` or raw binary file."""

from __future__ import annotations

import os

import numpy as np

from libertem.common.math import prod
from libertem.common.roi import normalize_roi
from libertem.udf.base import UDF
from libertem.udf.record import RecordUDF

__all__ = ["export_dataset", "ExportUDF"]


class ExportUDF(UDF):
    """Write each tile into a raw binary file of C-ordered frames (internal helper).

    The ``.npy`` counterpart is :class:`~libertem.udf.record.RecordUDF`.

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
    from libertem.io.export import export_zarr

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
