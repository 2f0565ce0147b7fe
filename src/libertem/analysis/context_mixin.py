"""The analysis part of :class:`libertem.api.Context`: ``create_*_analysis``, ``run``,
``display``, live plots and dataset export."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.roi import normalize_roi

# The analyses (and what they import: masks, sparse arrays, the UDF library) load
# on first use, so that importing libertem.api stays quick.
if TYPE_CHECKING:
    from libertem.analysis.base import Analysis, AnalysisResultSet
    from libertem.analysis.com import COMAnalysis
    from libertem.analysis.disk import DiskMaskAnalysis
    from libertem.analysis.masks import MasksAnalysis
    from libertem.analysis.point import PointMaskAnalysis
    from libertem.analysis.radialfourier import RadialFourierAnalysis
    from libertem.analysis.raw import PickFrameAnalysis
    from libertem.analysis.ring import RingMaskAnalysis
    from libertem.analysis.sum import SumAnalysis

__all__ = ["AnalysisMixin"]


def _given(**kwargs) -> dict:
    """The keyword arguments that are not ``None``."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _dense_roi(roi, nav_shape: tuple[int, ...]) -> np.ndarray | None:
    """A navigation-shaped boolean mask from the ROI forms ``run_udf`` accepts (see
    :func:`~libertem.common.roi.normalize_roi`), or ``None``."""
    flat = normalize_roi(roi, nav_shape)
    return None if flat is None else flat.reshape(nav_shape)


class AnalysisMixin:
    """Analyses, live plots and dataset export, mixed into :class:`libertem.api.Context`.

    Relies on the Context's ``run_udf`` and ``run_udf_iter``.
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
        from libertem.viz.run_hooks import prepare_plots

        if not plots:
            return []
        roi = _dense_roi(roi, tuple(dataset.shape.nav))
        return prepare_plots(plots, dataset, udfs, roi, self.plot_class)

    def _wrap_iter_with_plots(self, gen, plot_objects: list, sync: bool):
        """Pass a result generator through the live plots (sync or async)."""
        from libertem.viz.run_hooks import wrap_aiter_with_plots, wrap_iter_with_plots

        if not plot_objects:
            return gen
        if sync:
            return wrap_iter_with_plots(gen, plot_objects)
        return wrap_aiter_with_plots(gen, plot_objects)

    def _run_udf_with_plots(
        self, dataset, udfs, single, roi, progress, backends, plots, sync, corrections=None
    ):
        """``run_udf`` with live plots: iterate partial results, return the final ones."""
        kwargs = dict(
            dataset=dataset, udf=udfs, roi=roi, progress=progress, backends=backends, plots=plots
        )
        if corrections is not None:
            kwargs["corrections"] = corrections

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

    def display(self, dataset, udf, roi=None):
        """What ``udf`` would produce on ``dataset``: its result buffers, without running.

        Parameters
        ----------
        dataset
            The dataset.
        udf
            The UDF.
        roi
            A ROI, as for ``run_udf``.

        Returns
        -------
        libertem.viz.info.UDFInfo
            Shows as a table of the buffers (name, kind, shape, dtype, use) in Jupyter
            and as text in a console; ``.rows`` has the same as dicts.
        """
        from libertem.viz.base import declared_buffers
        from libertem.viz.info import UDFInfo

        nav_shape = tuple(dataset.shape.nav)
        buffers = declared_buffers(dataset, udf, _dense_roi(roi, nav_shape))
        return UDFInfo(type(udf).__name__, buffers, nav_shape, tuple(dataset.shape.sig))

    # analyses -----------------------------------------------------------------
    def create_mask_analysis(
        self,
        factories: Callable | Iterable[Callable],
        dataset,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype=None,
        dtype=None,
    ) -> MasksAnalysis:
        """Apply masks to every frame; results ``mask_0``, ``mask_1``, ...

        Parameters
        ----------
        factories
            Callables each returning one mask of the signal shape, or one callable
            returning a stack of masks.
        dataset
            The dataset.
        use_sparse, mask_count, mask_dtype
            See :class:`~libertem.udf.masks.ApplyMasksUDF`.
        dtype
            Preferred input dtype.
        """
        from libertem.analysis.masks import MasksAnalysis

        return MasksAnalysis(
            dataset=dataset,
            parameters={
                "factories": factories,
                **_given(
                    use_sparse=use_sparse,
                    mask_count=mask_count,
                    mask_dtype=mask_dtype,
                    dtype=dtype,
                ),
            },
        )

    def create_disk_analysis(
        self, dataset, cx: float | None = None, cy: float | None = None, r: float | None = None
    ) -> DiskMaskAnalysis:
        """Sum each frame within a disk of radius ``r`` around ``(cx, cy)``; result
        ``intensity``. Defaults: the detector centre and a quarter of its smaller side."""
        from libertem.analysis.disk import DiskMaskAnalysis

        return DiskMaskAnalysis(dataset=dataset, parameters=_given(cx=cx, cy=cy, r=r))

    def create_ring_analysis(
        self,
        dataset,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
    ) -> RingMaskAnalysis:
        """Sum each frame within the ring ``ri < r <= ro`` around ``(cx, cy)``; result
        ``intensity``. Defaults: the detector centre, ``ro`` half its smaller side,
        ``ri = 0.8 * ro``."""
        from libertem.analysis.ring import RingMaskAnalysis

        return RingMaskAnalysis(dataset=dataset, parameters=_given(cx=cx, cy=cy, ri=ri, ro=ro))

    def create_point_analysis(
        self, dataset, x: int | None = None, y: int | None = None
    ) -> PointMaskAnalysis:
        """The value of detector pixel (column ``x``, row ``y``) in each frame; result
        ``intensity``. Default: the detector centre."""
        from libertem.analysis.point import PointMaskAnalysis

        return PointMaskAnalysis(dataset=dataset, parameters=_given(x=x, y=y))

    def create_sum_analysis(self, dataset) -> SumAnalysis:
        """Sum of all frames; result ``intensity`` (signal-shaped)."""
        from libertem.analysis.sum import SumAnalysis

        return SumAnalysis(dataset=dataset, parameters={})

    def create_com_analysis(
        self,
        dataset,
        cx: float | None = None,
        cy: float | None = None,
        mask_radius: float | None = None,
        flip_y: bool = False,
        mask_radius_inner: float | None = None,
        scan_rotation: float = 0.0,
    ) -> COMAnalysis:
        """Centre of mass of each frame within ``mask_radius`` of ``(cx, cy)``.

        Results ``field``, ``magnitude``, ``divergence``, ``curl``, ``x``, ``y``; see
        :class:`~libertem.analysis.com.COMAnalysis`. ``mask_radius_inner`` (with
        ``mask_radius``) makes the mask a ring; ``scan_rotation`` is in degrees.
        The dataset needs 2 navigation and 2 signal dimensions, else
        ``ValueError``.
        """
        from libertem.analysis.com import COMAnalysis, check_com_arguments

        check_com_arguments(dataset, mask_radius, mask_radius_inner)
        parameters = _given(cx=cx, cy=cy, r=mask_radius, ri=mask_radius_inner)
        parameters.update(flip_y=flip_y, scan_rotation=scan_rotation)
        return COMAnalysis(dataset=dataset, parameters=parameters)

    def create_pick_analysis(
        self, dataset, x: int, y: int | None = None, z: int | None = None
    ) -> PickFrameAnalysis:
        """The frame at scan position (column ``x``, row ``y``; ``z`` for a 3D scan);
        result ``intensity``."""
        from libertem.analysis.raw import PickFrameAnalysis

        return PickFrameAnalysis(dataset=dataset, parameters=_given(x=x, y=y, z=z))

    def create_radial_fourier_analysis(
        self,
        dataset,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
        n_bins: int | None = None,
        max_order: int | None = None,
        use_sparse: bool | None = None,
    ) -> RadialFourierAnalysis:
        """Angular Fourier coefficients on ``n_bins`` rings between ``ri`` and ``ro``;
        see :class:`~libertem.analysis.radialfourier.RadialFourierAnalysis`."""
        from libertem.analysis.radialfourier import RadialFourierAnalysis

        parameters = _given(
            cx=cx, cy=cy, ri=ri, ro=ro, n_bins=n_bins, max_order=max_order, use_sparse=use_sparse
        )
        return RadialFourierAnalysis(dataset=dataset, parameters=parameters)

    def run(self, job: Analysis, roi=None, progress=False, corrections=None) -> AnalysisResultSet:
        """Run an analysis and return its results.

        Parameters
        ----------
        job
            An analysis from one of the ``create_*_analysis`` methods.
        roi
            Boolean mask over the navigation axes (or another ROI form of
            ``run_udf``); combined (logical and) with the analysis' own ROI.
        progress
            Show a progress bar (or pass a progress reporter).
        corrections
            Corrections to apply to the data, as for ``run_udf``.

        Returns
        -------
        AnalysisResultSet
            Results by key, with attribute and item access
            (``result.intensity.raw_data``, ``result['intensity'].visualized``).
        """
        from libertem.analysis.base import Analysis

        if not isinstance(job, Analysis):
            raise TypeError(f"run() expects an analysis, got {type(job).__name__}")
        if job.TYPE != "UDF":
            raise TypeError(f"cannot run analyses of TYPE {job.TYPE!r}, only 'UDF'")
        nav_shape = tuple(job.dataset.shape.nav)
        own = job.get_roi()
        roi = _dense_roi(roi, nav_shape)
        if own is not None:
            own = np.asarray(own, dtype=bool).reshape(nav_shape)
            roi = own if roi is None else own & roi
        kwargs = dict(dataset=job.dataset, udf=job.get_udf(), roi=roi, progress=progress)
        if corrections is not None:
            kwargs["corrections"] = corrections
        udf_results = self.run_udf(**kwargs)
        return job.get_udf_results(udf_results=udf_results, roi=roi, damage=True)

    def export_dataset(
        self,
        dataset,
        path: str | os.PathLike | None = None,
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
            it), a ``.zarr`` suffix a Zarr array chunked along the navigation axes (see
            :func:`libertem.udf.export.export_zarr`); other suffixes need ``format``.
        roi
            Write only the selected frames, as a stack ``(n_selected, *sig_shape)``.
            Without ROI the file has the dataset's full shape.
        progress
            Show a progress bar.
        overwrite
            Replace an existing file.
        format
            ``'npy'``, ``'raw'`` (C-ordered binary in the dataset's dtype) or ``'zarr'``
            to override the choice by suffix.

        Returns
        -------
        str
            The path written.

        Raises
        ------
        ValueError
            Without ``format``, for a suffix other than ``.npy`` (or ``.zarr``), before
            anything is written.
        FileExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        from libertem.udf.export import export_dataset

        if path is None:
            raise TypeError("export_dataset() needs a path")
        return export_dataset(
            self, dataset, path, roi=roi, progress=progress, overwrite=overwrite, format=format
        )
