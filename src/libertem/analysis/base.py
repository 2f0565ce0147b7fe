"""Analyses: a UDF plus the recipe that turns its results into named, visualized results."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from libertem.common.analysis import AnalysisResult, AnalysisResultSet
from libertem.common.buffers import BufferWrapper
from libertem.common.viz import rgb_from_2dvector, visualize_simple
from libertem.udf.classes import UDF

if TYPE_CHECKING:
    from libertem.analysis.helper import GeneratorHelper

__all__ = [
    "Analysis",
    "BaseAnalysis",
    "AnalysisResult",
    "AnalysisResultSet",
    "ProcedureProtocol",
    "RPCContext",
    "lin_log_results",
    "single_result_set",
]

# analysis type ids (as the web GUI names them) and the classes, imported when asked for
_ANALYSIS_TYPES = {
    "APPLY_DISK_MASK": ("libertem.analysis.disk", "DiskMaskAnalysis"),
    "APPLY_RING_MASK": ("libertem.analysis.ring", "RingMaskAnalysis"),
    "APPLY_POINT_SELECTOR": ("libertem.analysis.point", "PointMaskAnalysis"),
    "CENTER_OF_MASS": ("libertem.analysis.com", "COMAnalysis"),
    "SUM_FRAMES": ("libertem.analysis.sum", "SumAnalysis"),
    "PICK_FRAME": ("libertem.analysis.raw", "PickFrameAnalysis"),
    "FFTSUM_FRAMES": ("libertem.analysis.sumfft", "SumfftAnalysis"),
    "PICK_FFT_FRAME": ("libertem.analysis.rawfft", "PickFFTFrameAnalysis"),
    "SD_FRAMES": ("libertem.analysis.sd", "SDAnalysis"),
    "SUM_SIG": ("libertem.analysis.sumsig", "SumSigAnalysis"),
    "FEM": ("libertem.analysis.fem", "FEMAnalysis"),
    "APPLY_FFT_MASK": ("libertem.analysis.apply_fft_mask", "ApplyFFTMask"),
    "CLUST": ("libertem.analysis.clust", "ClusterAnalysis"),
    "RADIAL_FOURIER": ("libertem.analysis.radialfourier", "RadialFourierAnalysis"),
}


def lin_log_results(
    data, desc: str, damage, log_first: bool, key: str = "intensity", raw_lin=None
) -> list[AnalysisResult]:
    """The two results of a real array: one shown linearly, one logarithmically.

    Both hold ``data`` as ``raw_data`` (``raw_lin``, if given, for the linear one);
    titles are ``'<key> [lin]'`` and ``'<key> [log]'``.

    Parameters
    ----------
    data
        The values.
    desc
        Description of both results.
    damage
        Boolean mask of valid entries, or ``True``.
    log_first
        ``True`` (sum and pick analyses): ``key`` is the logarithmic view and comes
        first, ``<key>_lin`` second. ``False`` (single-mask analyses): ``key`` is the
        linear view, ``<key>_log`` second.
    key
        Key of the first result.
    raw_lin
        ``raw_data`` of the linear result, if not ``data`` itself.
    """
    raw_lin = data if raw_lin is None else raw_lin
    log = AnalysisResult(
        raw_data=data,
        visualized=functools.partial(visualize_simple, data, logarithmic=True, damage=damage),
        title=f"{key} [log]",
        desc=f"{desc}, log-scaled",
        key=key if log_first else f"{key}_log",
    )
    lin = AnalysisResult(
        raw_data=raw_lin,
        visualized=functools.partial(visualize_simple, np.asarray(raw_lin), damage=damage),
        title=f"{key} [lin]",
        desc=f"{desc}, linearly scaled",
        key=f"{key}_lin" if log_first else key,
    )
    return [log, lin] if log_first else [lin, log]


def single_result_set(udf_results, desc: str, damage, key: str = "intensity") -> AnalysisResultSet:
    """The result set of an analysis with one real result, shown linearly.

    ``raw_data`` is the UDF's buffer ``key``; title and key are ``key``.
    """
    buffer = udf_results[key]
    result = AnalysisResult(
        raw_data=buffer.data,
        visualized=functools.partial(visualize_simple, np.asarray(buffer.data), damage=damage),
        title=key,
        desc=desc,
        key=key,
    )
    return AnalysisResultSet([result], raw_results=udf_results)


class RPCContext(Protocol):
    """What a remote procedure of an analysis gets: the analysis and its latest results."""

    analysis: Analysis
    results: AnalysisResultSet | None


class ProcedureProtocol(Protocol):
    """A remote procedure an analysis offers (see :meth:`Analysis.get_rpc_definitions`)."""

    def __call__(self, comm: RPCContext) -> Awaitable[dict]: ...


class Analysis:
    """Base class of analyses: a UDF and the recipe for its named results.

    Subclasses implement :meth:`get_udf` and :meth:`get_udf_results`; they may
    override :meth:`get_roi` to restrict the frames processed, and
    :meth:`get_template_helper` to generate code that does the same analysis.

    Parameters
    ----------
    dataset
        The dataset to analyse.
    parameters
        The analysis' parameters, available as :attr:`parameters`.
    """

    TYPE = "UDF"

    def __init__(self, dataset, parameters: dict):
        self.dataset = dataset
        self.parameters = parameters

    @classmethod
    def get_analysis_by_type(cls, id_: str) -> type[Analysis]:
        """The analysis class for a type id such as ``'APPLY_DISK_MASK'``.

        Raises
        ------
        ValueError
            For an unknown id.
        """
        import importlib

        try:
            module, name = _ANALYSIS_TYPES[id_]
        except KeyError:
            raise ValueError(
                f"unknown analysis type {id_!r}; known: {', '.join(sorted(_ANALYSIS_TYPES))}"
            ) from None
        return getattr(importlib.import_module(module), name)

    @classmethod
    def get_template_helper(cls) -> type[GeneratorHelper]:
        """The code generator for this analysis (see :mod:`libertem.analysis.helper`).

        Raises
        ------
        NotImplementedError
            If the analysis has none.
        """
        raise NotImplementedError(f"{cls.__name__} has no code template")

    @classmethod
    def get_rpc_definitions(cls) -> dict[str, type[ProcedureProtocol]]:
        """Remote procedures the analysis offers, by name (none by default)."""
        return {}

    def get_parameters(self, parameters: dict) -> dict:
        """Complete and check the parameters (defaults filled in); the identity here."""
        return dict(parameters)

    def get_udf(self) -> UDF:
        """The UDF to run."""
        raise NotImplementedError()

    def get_roi(self) -> np.ndarray | None:
        """A ROI of the analysis itself (``None``: all frames)."""
        return None

    def get_udf_results(
        self,
        udf_results: Mapping[str, BufferWrapper],
        roi: np.ndarray | None,
        damage,
    ) -> AnalysisResultSet:
        """Turn the UDF's results into an :class:`AnalysisResultSet`.

        Parameters
        ----------
        udf_results
            The UDF's result buffers (complete, or partial during a run).
        roi
            The ROI of the run.
        damage
            Boolean navigation mask of the frames processed so far (``True``: all).
        """
        raise NotImplementedError()

    def need_rerun(self, old_params: dict, new_params: dict) -> bool:
        """Whether changing the parameters needs a new pass over the data.

        If not, :meth:`get_udf_results` can make new results from the old UDF
        results. By default, any change needs a rerun.
        """
        return old_params != new_params

    def get_complex_results(
        self, job_result, key_prefix, title, desc, damage, default_lin=True
    ) -> list[AnalysisResult]:
        """Results for a complex (or real) array: magnitude, log, parts, phase, colours.

        Parameters
        ----------
        job_result
            The array.
        key_prefix, title, desc
            Used for the keys, titles and descriptions of the results.
        damage
            Boolean mask of valid entries, or ``True``.
        default_lin
            Whether the result keyed ``key_prefix`` shows the magnitude linearly
            (then ``{key_prefix}_log`` is logarithmic) or the other way round.

        Returns
        -------
        list of AnalysisResult
            For real data the linear and the logarithmic view; for complex data also
            ``_real``, ``_imag``, ``_angle`` and ``_complex`` (a colour wheel).
        """
        data = np.asarray(job_result)
        magnitude = np.abs(data)
        lin_key, log_key = (key_prefix, f"{key_prefix}_log")
        if not default_lin:
            lin_key, log_key = (f"{key_prefix}_lin", key_prefix)
        results = [
            AnalysisResult(
                raw_data=magnitude if data.dtype.kind == "c" else data,
                visualized=functools.partial(visualize_simple, magnitude, damage=damage),
                key=lin_key,
                title=f"{title} [magn]" if data.dtype.kind == "c" else title,
                desc=f"{desc} [magn]" if data.dtype.kind == "c" else desc,
            ),
            AnalysisResult(
                raw_data=magnitude if data.dtype.kind == "c" else data,
                visualized=functools.partial(
                    visualize_simple, magnitude, logarithmic=True, damage=damage
                ),
                key=log_key,
                title=f"{title} [log]",
                desc=f"{desc} [log]",
            ),
        ]
        if data.dtype.kind != "c":
            return results
        for suffix, part in (("real", data.real), ("imag", data.imag), ("angle", np.angle(data))):
            results.append(
                AnalysisResult(
                    raw_data=part,
                    visualized=functools.partial(visualize_simple, part, damage=damage),
                    key=f"{key_prefix}_{suffix}",
                    title=f"{title} [{suffix}]",
                    desc=f"{desc} [{suffix}]",
                )
            )
        results.append(
            AnalysisResult(
                raw_data=data,
                visualized=functools.partial(rgb_from_2dvector, data.imag, data.real),
                key=f"{key_prefix}_complex",
                title=f"{title} [complex]",
                desc=f"{desc} [complex: hue is the phase, brightness the magnitude]",
            )
        )
        return results

    async def controller(
        self,
        cancel_id,
        executor,
        job_is_cancelled: Callable[[], bool],
        send_results: Callable[[AnalysisResultSet, bool], Awaitable[Any]],
    ):
        """Run the analysis on ``executor``, sending results as partitions finish.

        Parameters
        ----------
        cancel_id
            Identifies the run for cancelling it through the executor.
        executor
            The executor to run on.
        job_is_cancelled
            Called between partial results; when it returns True, the run stops.
        send_results
            Awaited with ``(results, finished)`` for every partial result and, with
            ``finished=True``, for the final one.

        Returns
        -------
        AnalysisResultSet or None
            The final results; ``None`` if the run was cancelled.
        """
        from libertem.udf.runner import UDFRunner

        roi = self.get_roi()
        runner = UDFRunner([self.get_udf()])
        agen = runner.run_for_dataset_async(self.dataset, executor, cancel_id, roi=roi)
        last = None
        try:
            async for item in agen:
                if job_is_cancelled():
                    return None
                if last is not None:
                    await send_results(self._results_of(last, roi), False)
                last = item
        finally:
            await agen.aclose()
        results = self._results_of(last, roi)
        await send_results(results, True)
        return results

    def _results_of(self, item, roi) -> AnalysisResultSet:
        damage = item.damage
        damage = np.asarray(getattr(damage, "data", damage), dtype=bool)
        return self.get_udf_results(item.buffers[0], roi, damage)

    @property
    def sig_shape(self) -> tuple[int, ...]:
        """Signal shape of the dataset."""
        return tuple(self.dataset.shape.sig)

    @property
    def nav_shape(self) -> tuple[int, ...]:
        """Navigation shape of the dataset."""
        return tuple(self.dataset.shape.nav)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.parameters}>"


class BaseAnalysis(Analysis):
    """Analyses whose parameters are completed by :meth:`get_parameters` on creation.

    Parameters
    ----------
    dataset
        The dataset to analyse.
    parameters
        The given parameters; :attr:`parameters` holds them completed.
    """

    def __init__(self, dataset, parameters: dict):
        super().__init__(dataset, parameters)
        self.parameters = self.get_parameters(dict(parameters))
