"""Convert 4D DM4 files stored with the scan axes last ("transposed") into C-order ``.npy``.

Gatan's STEMx 4D acquisitions saved as DM4 without the ``Data Order Swapped`` tag
store the array as ``(det_y, det_x, scan_y, scan_x)`` in C order: one frame is
scattered over the whole file, which makes frame-wise reading slow. This module
reads such a file sequentially (each partition is a block of detector pixels for
all scan positions) and writes it transposed, as ``(scan_y, scan_x, det_y, det_x)``,
into a ``.npy`` file that loads fast with ``ctx.load("npy", path=...)``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.buffers import reshaped_view
from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.udf import UDFMethod
from libertem.io.dataset.dm_header import read_dm_image
from libertem.io.dataset.dm_single import SingleDMDataSet, stored_layout
from libertem.udf.record import RecordUDF

if TYPE_CHECKING:
    from libertem.api import Context

__all__ = [
    "ConvertTransposedDatasetUDF",
    "DataSetException",
    "RecordUDF",
    "Shape",
    "SingleDMDataSet",
    "TYPE_CHECKING",
    "convert_dm4_transposed",
]


class ConvertTransposedDatasetUDF(RecordUDF):
    """Write a dataset with its navigation and signal axes swapped into an ``.npy`` file.

    For a dataset of shape ``nav + sig`` the file has shape ``sig + nav`` (each group
    keeps its order) and the dataset's native dtype; any number of axes in either
    group. Typical use: a 4D DM file stored scan axes last, opened with
    ``force_c_order=True`` as ``(det_y, det_x, scan_y, scan_x)``, whose "frames" are
    the scan images of one detector pixel each, becomes ``(scan_y, scan_x, det_y,
    det_x)``. Every partition (a range of "frames") is written with one transposing
    copy. No ROI.

    Parameters
    ----------
    filename
        The ``.npy`` file to create (replaced if it exists).
    _is_master
        Internal: ``True`` for the instance the user creates, which creates the file.
    """

    def get_method(self) -> UDFMethod:
        """Whole partitions: each is one block of detector pixels."""
        return UDFMethod.PARTITION

    def _out_shape(self) -> tuple[int, ...]:
        shape = self.meta.dataset_shape
        return (*shape.sig, *shape.nav)

    def preprocess(self):
        """On the main node: create the output file at its full, transposed shape."""
        if self.meta.roi is not None:
            raise ValueError("ConvertTransposedDatasetUDF converts whole datasets: no roi")
        if not self.params._is_master:
            return
        out = np.lib.format.open_memmap(
            self.params.filename,
            mode="w+",
            dtype=self.meta.input_dtype,
            shape=self._out_shape(),
        )
        out.flush()
        del out

    def get_task_data(self):
        out = np.load(self.params.filename, mmap_mode="r+")
        scan_size = self.meta.dataset_shape.sig.size
        return {"out": out, "pixels": reshaped_view(out, (scan_size, -1))}

    def process_partition(self, partition):
        """Write the detector pixels of this partition for all scan positions."""
        start = self.meta.slice.origin[0]
        n = partition.shape[0]
        self.task_data.pixels[:, start : start + n] = partition.reshape((n, -1)).T


def convert_dm4_transposed(
    dm4_path: os.PathLike,
    out_path: os.PathLike,
    ctx: Context | None = None,
    num_cpus: int | None = None,
    dataset_index: int | None = None,
    progress: bool = False,
) -> None:
    """Convert a 4D DM4 file stored scan axes last into a C-ordered ``.npy`` file.

    The result has shape ``(scan_y, scan_x, det_y, det_x)`` and the file's dtype
    (in native byte order), and opens fast with ``ctx.load("npy", path=out_path)``.

    Parameters
    ----------
    dm4_path
        The DM4 file: 4D data without the ``Data Order Swapped`` tag.
    out_path
        The ``.npy`` file to write (replaced if it exists).
    ctx
        The Context to run the conversion with; by default a local Dask cluster of
        ``num_cpus`` workers (all cores if ``None``), closed afterwards.
    num_cpus
        Workers of the default Context (give either ``ctx`` or ``num_cpus``).
    dataset_index
        Which image of the DM file to convert (see
        :class:`~libertem.io.dataset.dm_single.SingleDMDataSet`).
    progress
        Show a progress bar.

    Raises
    ------
    ValueError
        If both ``ctx`` and ``num_cpus`` are given (before the file is opened).
    DataSetException
        If the image is not 4D, or is stored in C order already (nothing to convert).
    """
    if ctx is not None and num_cpus is not None:
        raise ValueError("Either supply a Context or number of cpus to use in conversion")
    dm4_path = os.fspath(dm4_path)
    out_path = os.fspath(out_path)
    image = read_dm_image(dm4_path, dataset_index)
    if len(image.dims) != 4:
        raise DataSetException(
            f"{dm4_path}: image of dimensions {image.dims} is not 4D; nothing to transpose"
        )
    _, transposed = stored_layout(image, force_c_order=False)
    if not transposed:
        raise DataSetException(
            f"{dm4_path}: the 4D data is stored in C order already (Data Order Swapped); "
            "load it directly"
        )
    if os.path.abspath(out_path) == os.path.abspath(dm4_path):
        raise ValueError(f"{out_path}: the output must not replace the input file")
    own_ctx = ctx is None
    if own_ctx:
        from libertem.api import Context

        ctx = Context.make_with("dask", cpus=num_cpus)
    try:
        ds = ctx.load("dm", path=dm4_path, force_c_order=True, dataset_index=dataset_index)
        _convert_transposed_ds(ctx, ds, out_path, progress=progress)
    finally:
        if own_ctx:
            ctx.close()


def _convert_transposed_ds(ctx: Context, ds, out_path, **run_kwargs) -> None:
    """Run :class:`ConvertTransposedDatasetUDF` writing ``out_path`` on ``ds`` with
    ``ctx.run_udf`` (``run_kwargs`` passed on)."""
    ctx.run_udf(dataset=ds, udf=ConvertTransposedDatasetUDF(os.fspath(out_path)), **run_kwargs)
