"""The analysis part of :class:`libertem.api.Context`: ``create_*_analysis``, ``run``, export."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from libertem.analysis.base import Analysis, AnalysisResultSet
from libertem.analysis.com import COMAnalysis
from libertem.analysis.export import export_dataset as _export_dataset
from libertem.analysis.masks import (
    DiskMaskAnalysis,
    MasksAnalysis,
    PointMaskAnalysis,
    RingMaskAnalysis,
)
from libertem.analysis.pick import PickFrameAnalysis
from libertem.analysis.radialfourier import RadialFourierAnalysis
from libertem.analysis.sum import SumAnalysis

__all__ = ["AnalysisMixin"]


class AnalysisMixin:
    """Analyses and dataset export, mixed into :class:`libertem.api.Context`.

    Relies on the Context's ``run_udf``.
    """

    # live plots ---------------------------------------------------------------
    @property
    def plot_class(self) -> type:
        """Class of the live plots made for ``plots=True``; default
        :class:`~libertem.viz.mpl.MPLLive2DPlot`."""
        cls = getattr(self, "_plot_class", None)
        if cls is None:
            from libertem.viz.mpl import MPLLive2DPlot

            return MPLLive2DPlot
        return cls

    @plot_class.setter
    def plot_class(self, value: type | None) -> None:
        self._plot_class = value

    def _prepare_plots(self, plots, dataset, udfs, roi) -> list:
        """Plot objects for the ``plots`` argument of ``run_udf``/``run_udf_iter``."""
        from libertem.viz.base import prepare_plots

        if roi is not None:
            roi = np.asarray(roi, dtype=bool).reshape(tuple(dataset.shape.nav))
        return prepare_plots(plots, dataset, udfs, roi, self.plot_class)

    def _wrap_iter_with_plots(self, gen, plot_objects: list, sync: bool):
        """Pass a result generator through the live plots (sync or async)."""
        from libertem.viz.base import wrap_aiter_with_plots, wrap_iter_with_plots

        if not plot_objects:
            return gen
        if sync:
            return wrap_iter_with_plots(gen, plot_objects)
        return wrap_aiter_with_plots(gen, plot_objects)

    def _run_udf_with_plots(self, dataset, udfs, single, roi, progress, backends, plots, sync):
        """``run_udf`` with live plots: iterate partial results, return the final ones."""
        kwargs = dict(
            dataset=dataset, udf=udfs, roi=roi, progress=progress, backends=backends, plots=plots
        )

        def pick(final):
            return final.buffers[0] if single else final.buffers

        if sync:
            final = None
            for item in self.run_udf_iter(**kwargs, sync=True):
                final = item
            return pick(final)

        async def run_async():
            final = None
            async for item in self.run_udf_iter(**kwargs, sync=False):
                final = item
            return pick(final)

        return run_async()

    # analyses -----------------------------------------------------------------
    def create_mask_analysis(
        self,
        factories: Callable | Sequence[Callable],
        dataset,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype=None,
        preferred_dtype=None,
    ) -> MasksAnalysis:
        """Apply masks to every frame; results ``mask_0``, ``mask_1``, ...

        Parameters
        ----------
        factories
            Callables each returning one mask of the signal shape, or one callable
            returning a stack of masks.
        dataset
            The dataset.
        use_sparse, mask_count, mask_dtype, preferred_dtype
            See :class:`~libertem.udf.masks.ApplyMasksUDF`.
        """
        return MasksAnalysis(
            dataset,
            factories,
            use_sparse=use_sparse,
            mask_count=mask_count,
            mask_dtype=mask_dtype,
            preferred_dtype=preferred_dtype,
        )

    def create_disk_analysis(self, dataset, cx: float, cy: float, r: float) -> DiskMaskAnalysis:
        """Sum each frame within a disk of radius ``r`` around ``(cx, cy)``; result
        ``intensity``."""
        return DiskMaskAnalysis(dataset, cx=cx, cy=cy, r=r)

    def create_ring_analysis(
        self, dataset, cx: float, cy: float, ri: float, ro: float
    ) -> RingMaskAnalysis:
        """Sum each frame within the ring ``ri < r <= ro`` around ``(cx, cy)``; result
        ``intensity``."""
        return RingMaskAnalysis(dataset, cx=cx, cy=cy, ri=ri, ro=ro)

    def create_point_analysis(self, dataset, x: int, y: int) -> PointMaskAnalysis:
        """The value of detector pixel (column ``x``, row ``y``) in each frame; result
        ``intensity``."""
        return PointMaskAnalysis(dataset, x=x, y=y)

    def create_sum_analysis(self, dataset) -> SumAnalysis:
        """Sum of all frames; result ``intensity`` (signal-shaped)."""
        return SumAnalysis(dataset)

    def create_com_analysis(
        self,
        dataset,
        cx: float | None = None,
        cy: float | None = None,
        mask_radius: float | None = None,
        flip_y: bool = False,
        scan_rotation: float = 0.0,
    ) -> COMAnalysis:
        """Centre of mass of each frame within ``mask_radius`` of ``(cx, cy)``.

        Results ``field``, ``magnitude``, ``divergence``, ``curl``, ``x``, ``y``; see
        :class:`~libertem.analysis.com.COMAnalysis`. ``scan_rotation`` is in degrees.
        """
        return COMAnalysis(
            dataset,
            cx=cx,
            cy=cy,
            mask_radius=mask_radius,
            flip_y=flip_y,
            scan_rotation=scan_rotation,
        )

    def create_pick_analysis(
        self, dataset, x: int, y: int | None = None, z: int | None = None
    ) -> PickFrameAnalysis:
        """The frame at scan position (column ``x``, row ``y``; ``z`` for a 3D scan);
        result ``intensity``."""
        return PickFrameAnalysis(dataset, x=x, y=y, z=z)

    def create_radial_fourier_analysis(
        self,
        dataset,
        cx: float,
        cy: float,
        ri: float,
        ro: float,
        n_bins: int = 1,
        max_order: int = 8,
        use_sparse: bool | str | None = None,
    ) -> RadialFourierAnalysis:
        """Angular Fourier coefficients on ``n_bins`` rings between ``ri`` and ``ro``;
        see :class:`~libertem.analysis.radialfourier.RadialFourierAnalysis`."""
        return RadialFourierAnalysis(
            dataset,
            cx=cx,
            cy=cy,
            ri=ri,
            ro=ro,
            n_bins=n_bins,
            max_order=max_order,
            use_sparse=use_sparse,
        )

    def run(
        self, job: Analysis, roi: np.ndarray | None = None, progress: bool = False
    ) -> AnalysisResultSet:
        """Run an analysis and return its results.

        Parameters
        ----------
        job
            An analysis from one of the ``create_*_analysis`` methods.
        roi
            Boolean mask over the navigation axes; combined (logical and) with the
            analysis' own ROI, if it has one.
        progress
            Show a progress bar.

        Returns
        -------
        AnalysisResultSet
            Results by key, with attribute and item access
            (``result.intensity.raw_data``, ``result['intensity'].visualized``).
        """
        if not isinstance(job, Analysis):
            raise TypeError(f"run() expects an analysis, got {type(job).__name__}")
        own = job.get_roi()
        if own is not None and roi is not None:
            roi = np.logical_and(own, np.asarray(roi, dtype=bool).reshape(own.shape))
        elif own is not None:
            roi = own
        udf_results = self.run_udf(
            dataset=job.dataset, udf=job.get_udf(), roi=roi, progress=progress
        )
        return job.get_udf_results(udf_results, roi)

    def export_dataset(
        self,
        dataset,
        path: str | os.PathLike,
        roi: np.ndarray | None = None,
        progress: bool = False,
        overwrite: bool = False,
        format: str | None = None,
    ) -> str:
        """Write a dataset to a file that other tools can read.

        Parameters
        ----------
        dataset
            The dataset.
        path
            Target file. A ``.npy`` suffix writes NumPy's format (``numpy.load`` reads
            it), anything else raw C-ordered binary in the dataset's dtype.
        roi
            Write only the selected frames, as a stack ``(n_selected, *sig_shape)``.
            Without ROI the file has the dataset's full shape.
        progress
            Show a progress bar.
        overwrite
            Replace an existing file.
        format
            ``'npy'`` or ``'raw'`` to override the choice by suffix.

        Returns
        -------
        str
            The path written.

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        return _export_dataset(
            self, dataset, path, roi=roi, progress=progress, overwrite=overwrite, format=format
        )
