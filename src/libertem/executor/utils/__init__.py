"""Helpers of the executors; ``assign_cudas`` is importable from here as in LiberTEM."""


def __getattr__(name: str):
    if name == "assign_cudas":
        from libertem.executor.utils.dask_setup import assign_cudas

        return assign_cudas
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
