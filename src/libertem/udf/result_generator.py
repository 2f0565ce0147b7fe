"""The generators ``Context.run_udf_iter`` returns: partial results, parameter updates."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from libertem.udf.results import UDFResults


class ResultGenerator:
    """Yields :class:`~libertem.udf.results.UDFResults` as partitions are merged.

    The last item holds the final results. Closing the generator cancels the
    remaining work.

    Parameters
    ----------
    task_results
        The generator of results.
    runner
        The :class:`~libertem.udf.runner.UDFRunner` of the run.
    result_iter
        What yields the raw task results (for parameter updates); by default the
        runner's current one.
    """

    def __init__(self, task_results: Generator[UDFResults, None, None], runner, result_iter=None):
        self._gen = task_results
        self._runner = runner
        self._result_iter = result_iter

    def __iter__(self):
        return self

    def __next__(self) -> UDFResults:
        return next(self._gen)

    def close(self) -> None:
        """Stop the run; tasks not finished are cancelled."""
        self._gen.close()

    def throw(self, exc: Exception):
        """Raise ``exc`` inside the run."""
        return self._gen.throw(exc)

    def update_parameters_experimental(self, parameters: list[dict[str, Any]]) -> None:
        """Change UDF parameters while the run goes on.

        ``parameters[i]`` holds new values for keyword arguments of UDF ``i``; tasks
        that start afterwards (and ``get_results`` on the main node) see them.
        Experimental: which partitions see the old values depends on timing.
        """
        result_iter = self._result_iter or getattr(self._runner, "current_results", None)
        if result_iter is None:
            raise RuntimeError("the run has not started yet: take a first result, then update")
        result_iter.update_parameters_experimental(parameters)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ResultAsyncGenerator:
    """The async version of :class:`ResultGenerator` (``run_udf_iter(..., sync=False)``).

    Parameters
    ----------
    result_generator
        The synchronous generator; its steps run in a thread.
    """

    def __init__(self, result_generator: ResultGenerator):
        from libertem.common.async_utils import async_generator

        self._sync = result_generator
        self._agen: AsyncGenerator = async_generator(result_generator)

    def __aiter__(self):
        return self

    async def __anext__(self) -> UDFResults:
        return await self._agen.__anext__()

    async def aclose(self) -> None:
        """Stop the run; tasks not finished are cancelled."""
        await self._agen.aclose()

    async def athrow(self, exc: Exception):
        """Raise ``exc`` inside the run."""
        return await self._agen.athrow(exc)

    async def update_parameters_experimental(self, parameters: list[dict[str, Any]]) -> None:
        """See :meth:`ResultGenerator.update_parameters_experimental`; a coroutine here."""
        self._sync.update_parameters_experimental(parameters)


#: names of the return types of ``run_udf_iter`` (for type annotations)
RunUDFGenType = ResultGenerator
RunUDFGenTypeL = ResultGenerator
RunUDFAGenType = ResultAsyncGenerator
RunUDFAGenTypeL = ResultAsyncGenerator

__all__ = [
    "ResultGenerator",
    "ResultAsyncGenerator",
    "RunUDFGenType",
    "RunUDFGenTypeL",
    "RunUDFAGenType",
    "RunUDFAGenTypeL",
]
