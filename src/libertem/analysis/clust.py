"""Clustering of the scan by the intensities of the detector pixels that vary most.

Driven by :meth:`ClusterAnalysis.controller` (two UDF runs and a clustering step),
not by a single UDF. scikit-learn and scikit-image are imported only when needed.
"""

from __future__ import annotations

import functools
import textwrap

import numpy as np
import sparse

from libertem import masks
from libertem.analysis.base import AnalysisResult, AnalysisResultSet, BaseAnalysis
from libertem.analysis.getroi import get_roi
from libertem.analysis.helper import GeneratorHelper
from libertem.common.executor import JobCancelledError
from libertem.common.viz import visualize_simple
from libertem.executor.base import sync_to_async
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.stddev import StdDevUDF, consolidate_result

__all__ = [
    "ClusterAnalysis",
    "ClusterTemplate",
    "cluster_labels",
    "find_ring_peaks",
    "peak_masks",
    "AnalysisResult",
    "AnalysisResultSet",
    "ApplyMasksUDF",
    "BaseAnalysis",
    "GeneratorHelper",
    "JobCancelledError",
    "StdDevUDF",
    "consolidate_result",
    "get_roi",
    "sync_to_async",
]


def find_ring_peaks(std_map, cy, cx, ri, ro, n_peaks: int, min_dist: int) -> np.ndarray:
    """Up to ``n_peaks`` maxima of ``std_map`` within the ring ``ri < d <= ro``
    around ``(cy, cx)`` (`skimage.feature.peak_local_max`), as ``(y, x)`` rows."""
    from skimage.feature import peak_local_max

    sy, sx = std_map.shape
    ring = masks.ring(cx, cy, sx, sy, ro, ri)
    return peak_local_max(np.asarray(std_map) * ring, num_peaks=n_peaks, min_distance=min_dist)


def peak_masks(peaks, sig_shape) -> sparse.COO:
    """A stack of single-pixel masks (value 1, float32), one per ``(y, x)`` of ``peaks``."""
    peaks = np.asarray(peaks, dtype=np.intp).reshape((-1, 2))
    n = len(peaks)
    coords = np.stack([np.arange(n), peaks[:, 0], peaks[:, 1]])
    return sparse.COO(coords, np.ones(n, dtype=np.float32), shape=(n, *tuple(sig_shape)))


def cluster_labels(values, nav_shape, n_clust: int) -> np.ndarray:
    """Agglomerative (Ward) clustering of the scan positions, neighbours connected.

    Parameters
    ----------
    values
        Feature vectors ``(*nav_shape, n_features)``; each feature is divided by its
        mean absolute value first.
    nav_shape
        2D scan shape.
    n_clust
        Number of clusters.

    Returns
    -------
    numpy.ndarray
        Integer labels starting at 1, of ``nav_shape``.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.image import grid_to_graph

    ny, nx = tuple(nav_shape)
    features = np.asarray(values, dtype=np.float64).reshape((ny * nx, -1))
    scale = np.abs(features).mean(axis=0)
    features = np.divide(features, scale, out=np.zeros_like(features), where=scale != 0)
    clustering = AgglomerativeClustering(
        n_clusters=n_clust,
        linkage="ward",
        metric="euclidean",
        connectivity=grid_to_graph(n_x=ny, n_y=nx),
    )
    return clustering.fit(features).labels_.reshape((ny, nx)) + 1


class ClusterTemplate(GeneratorHelper):
    """Code for :class:`ClusterAnalysis` (a plain script of the same steps)."""

    short_name = "cluster"

    def format_code(self, code: str) -> str:
        """Code written indented inside this class, dedented and tidied."""
        return self.code_formatter(textwrap.dedent(code))

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + [
            "from libertem.udf.stddev import StdDevUDF, consolidate_result",
            "from libertem.udf.masks import ApplyMasksUDF",
            "from libertem.analysis.clust import cluster_labels, find_ring_peaks, peak_masks",
        ]

    def get_docs(self) -> str:
        return self.format_docs(
            "Clustering",
            "The standard deviation over the frames shows which detector pixels vary; the "
            "``n_peaks`` strongest maxima on the ring ``ri < r <= ro`` around ``(cx, cy)`` "
            "are integrated in every frame, and the scan positions are clustered by these "
            "values into ``n_clust`` connected regions (agglomerative, Ward linkage).",
        )

    def get_analysis(self) -> str:
        keys = ("n_peaks", "n_clust", "cy", "cx", "ri", "ro", "min_dist")
        params = {k: self.params.get(k) for k in keys}
        return f"{self.short_name}_params = {params!r}"

    def get_run_sd_udf(self) -> str:
        """Code that computes the standard deviation of the (selected) frames."""
        return self.format_code(
            """
            sd_udf_results = consolidate_result(
                ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi, progress=False)
            )
            """
        )

    def temp_cluster_controller(self) -> str:
        """Code that finds the peaks, integrates them and clusters the scan."""
        p = f"{self.short_name}_params"
        return self.format_code(
            f"""
            peaks = find_ring_peaks(
                sd_udf_results['std'], {p}['cy'], {p}['cx'], {p}['ri'], {p}['ro'],
                n_peaks={p}['n_peaks'], min_dist={p}['min_dist'],
            )
            cluster_udf = ApplyMasksUDF(
                mask_factories=lambda: peak_masks(peaks, ds.shape.sig),
                use_sparse=True, mask_count=len(peaks), mask_dtype=np.float32,
            )
            cluster_udf_results = ctx.run_udf(dataset=ds, udf=cluster_udf, progress=False)
            {self.result_name} = cluster_labels(
                cluster_udf_results['intensity'].data, ds.shape.nav, {p}['n_clust']
            )
            """
        )

    def get_run(self) -> str:
        return self.get_run_sd_udf() + "\n" + self.temp_cluster_controller()

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('clusters')\n"
            f"axes.imshow({self.result_name}, cmap='tab20')"
        ]

    def get_save(self) -> str:
        return f"np.save('cluster_labels.npy', {self.result_name})"


class ClusterAnalysis(BaseAnalysis):
    """Clusters the scan positions by the intensity at the detector pixels that vary most.

    Steps of :meth:`controller`: the standard deviation of the (selected) frames
    (:class:`~libertem.udf.stddev.StdDevUDF`); up to ``n_peaks`` maxima of it within
    the ring ``ri < d <= ro`` around ``(cy, cx)``; the value of each of these pixels in
    every frame (:class:`~libertem.udf.masks.ApplyMasksUDF`, all frames); agglomerative
    clustering (Ward, neighbouring scan positions connected) into ``n_clust``
    clusters. One result, ``intensity``: the navigation-shaped labels, starting at 1.

    Needs scikit-learn and scikit-image (imported when the analysis runs).

    Parameters
    ----------
    dataset
        The dataset (2D scan).
    parameters
        ``n_peaks``, ``n_clust``, ``cy``, ``cx``, ``ri``, ``ro``, ``min_dist`` and
        optionally ``roi`` (see :func:`~libertem.analysis.getroi.get_roi`); other keys
        (such as ``delta``) are ignored.
    """

    TYPE = "UDF"

    def get_udf(self):
        """``None``: the analysis runs through :meth:`controller`."""
        return None

    def get_roi(self):
        return get_roi(self.parameters, self.nav_shape)

    async def run_sd_udf(self, roi, stddev_udf, executor, cancel_id, job_is_cancelled) -> dict:
        """Run ``stddev_udf`` on the frames ``roi`` selects; its result buffers.

        Raises
        ------
        JobCancelledError
            If ``job_is_cancelled()`` is true after the run.
        """
        return await self._run_udf(stddev_udf, roi, executor, cancel_id, job_is_cancelled)

    async def _run_udf(self, udf, roi, executor, cancel_id, job_is_cancelled) -> dict:
        runner_cls = executor.get_udf_runner()
        last = None
        async for part in runner_cls([udf]).run_for_dataset_async(
            self.dataset, executor, cancel_id, roi=roi
        ):
            last = part
        if job_is_cancelled():
            raise JobCancelledError()
        return last.buffers[0]

    async def get_sd_results(self, executor, cancel_id, job_is_cancelled) -> tuple:
        """``(roi, consolidated StdDevUDF results)`` of the frames the ROI selects."""
        roi = self.get_roi()
        results = await self.run_sd_udf(roi, StdDevUDF(), executor, cancel_id, job_is_cancelled)
        return roi, consolidate_result(results)

    def get_cluster_udf(self, sd_udf_results) -> ApplyMasksUDF:
        """The UDF that reads the pixels at the peaks of the standard deviation.

        Raises
        ------
        ValueError
            If the ring holds no peak.
        """
        p = self.parameters
        peaks = find_ring_peaks(
            sd_udf_results["std"],
            p["cy"],
            p["cx"],
            p["ri"],
            p["ro"],
            n_peaks=int(p["n_peaks"]),
            min_dist=int(p["min_dist"]),
        )
        if len(peaks) == 0:
            raise ValueError(f"no peak of the standard deviation in the ring {p['ri']}..{p['ro']}")
        return ApplyMasksUDF(
            mask_factories=functools.partial(peak_masks, peaks, self.sig_shape),
            use_sparse=True,
            mask_count=len(peaks),
            mask_dtype=np.float32,
        )

    def get_udf_results(self, udf_results, roi, damage) -> AnalysisResultSet:
        """Cluster the scan by the results of :meth:`get_cluster_udf`'s UDF."""
        if len(self.nav_shape) != 2:
            raise ValueError(f"clustering needs a 2D scan, not {self.nav_shape}")
        labels = cluster_labels(
            udf_results["intensity"].data, self.nav_shape, int(self.parameters["n_clust"])
        )
        return AnalysisResultSet(
            [
                AnalysisResult(
                    raw_data=labels,
                    visualized=functools.partial(visualize_simple, labels.astype(np.float32)),
                    title="intensity",
                    desc="cluster label of each scan position (from 1)",
                    key="intensity",
                )
            ]
        )

    async def controller(self, cancel_id, executor, job_is_cancelled, send_results):
        """Run the analysis on an asynchronous executor; send the results once.

        Parameters
        ----------
        cancel_id
            Identifies the runs for cancelling.
        executor
            An asynchronous executor, e.g. ``AsyncAdapter(wrapped=InlineJobExecutor())``.
        job_is_cancelled
            Returns whether the job was cancelled (checked after each UDF run).
        send_results
            Awaited once with ``(results, True)``.

        Raises
        ------
        JobCancelledError
            If the job was cancelled.
        """
        roi, sd_results = await self.get_sd_results(executor, cancel_id, job_is_cancelled)
        udf = self.get_cluster_udf(sd_results)
        udf_results = await self._run_udf(udf, None, executor, cancel_id, job_is_cancelled)
        results = self.get_udf_results(udf_results, roi, damage=True)
        await send_results(results, True)
        return results

    @classmethod
    def get_template_helper(cls):
        return ClusterTemplate
