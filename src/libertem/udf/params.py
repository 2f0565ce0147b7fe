"""What all tasks of a run share: UDF classes and parameters, ROI, corrections, tiling."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import cloudpickle
import numpy as np

from libertem.common.pickling import dumps as dumps_keeping_filenames
from libertem.common.shape import Shape


def _user_modules(classes: Iterable[type]) -> set[str]:
    """Modules of the UDF classes that are user code, not this package or a library."""
    names = set()
    for cls in classes:
        for klass in cls.__mro__:
            module = klass.__module__
            top = module.split(".")[0]
            if module == "__main__" or top == "libertem" or top in sys.stdlib_module_names:
                continue
            mod = sys.modules.get(module)
            path = getattr(mod, "__file__", None) or ""
            if mod is not None and "site-packages" not in path and "dist-packages" not in path:
                names.add(module)
    return names


def dumps_by_value(obj, classes: Iterable[type]) -> bytes:
    """Pickle ``obj``, with the user modules defining ``classes`` by value.

    Worker processes may not be able to import the module that defines a UDF (a
    test module, a notebook, a script run from elsewhere); its code travels along.
    """
    registered = []
    for name in _user_modules(classes):
        try:
            cloudpickle.register_pickle_by_value(sys.modules[name])
            registered.append(name)
        except ValueError:
            pass
    try:
        # keeps the file names of code by value: worker tracebacks show the user's lines
        return dumps_keeping_filenames(obj)
    finally:
        for name in registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[name])


class UDFParams:
    """Everything the tasks of one run share; shipped to the workers once per run.

    Parameters
    ----------
    kwargs
        Constructor keyword arguments, one dict per UDF.
    roi
        Flat boolean ROI of the dataset, or ``None``.
    corrections
        Corrections to apply to the data (a ``CorrectionSet``), or ``None``.
    tiling_scheme
        The negotiated tiling scheme.
    udf_classes
        The UDF classes (workers make clean copies: ``cls(**kwargs)``).
    input_dtypes
        Input dtype per UDF.
    read_dtype
        Dtype the partitions are read in (converted per UDF where it differs).
    tile_dtypes
        Dtype of the tiles per UDF (default: its input dtype; see
        :func:`~libertem.udf.run_plan.resolve_tile_dtypes`).
    dataset_shape, dataset_dtype
        Of the dataset.
    backends
        The run's restriction of array backends, or ``None``.
    dataset_backends
        Array backends the dataset can provide.
    progress
        Whether tasks send progress messages (someone is listening).
    """

    def __init__(
        self,
        kwargs: list[dict],
        roi: np.ndarray | None,
        corrections,
        tiling_scheme,
        *,
        udf_classes: Sequence[type] = (),
        input_dtypes: Sequence[np.dtype] = (),
        read_dtype=None,
        tile_dtypes: Sequence[np.dtype] = (),
        dataset_shape: Shape | None = None,
        dataset_dtype=None,
        backends: tuple[str, ...] | None = None,
        dataset_backends: tuple[str, ...] = ("numpy",),
        progress: bool = False,
    ):
        self._kwargs = [dict(k) for k in kwargs]
        self._roi = roi
        self._corrections = corrections
        self._tiling_scheme = tiling_scheme
        self.udf_classes = list(udf_classes)
        self.input_dtypes = [np.dtype(d) for d in input_dtypes]
        self.read_dtype = None if read_dtype is None else np.dtype(read_dtype)
        self.tile_dtypes = [np.dtype(d) for d in tile_dtypes]
        self.dataset_shape = dataset_shape
        self.dataset_dtype = None if dataset_dtype is None else np.dtype(dataset_dtype)
        self.backends = None if backends is None else tuple(backends)
        self.dataset_backends = tuple(dataset_backends)
        self.progress = bool(progress)

    @classmethod
    def from_udfs(cls, udfs, roi: np.ndarray | None, corrections, tiling_scheme) -> UDFParams:
        """The parameters of ``udfs`` (their classes and constructor arguments)."""
        udfs = list(udfs)
        return cls(
            kwargs=[udf._kwargs for udf in udfs],
            roi=roi,
            corrections=corrections,
            tiling_scheme=tiling_scheme,
            udf_classes=[type(udf) for udf in udfs],
        )

    @property
    def kwargs(self) -> list[dict[str, Any]]:
        """Constructor keyword arguments, one dict per UDF."""
        return self._kwargs

    @property
    def roi(self) -> np.ndarray | None:
        """Flat boolean ROI, or ``None``."""
        return self._roi

    @property
    def corrections(self):
        """The corrections to apply, or ``None``."""
        return self._corrections

    @property
    def tiling_scheme(self):
        """The tiling scheme of the run."""
        return self._tiling_scheme

    @property
    def udf_specs(self) -> list[tuple[type, dict[str, Any]]]:
        """``(class, kwargs)`` per UDF."""
        return list(zip(self.udf_classes, self._kwargs))

    def patch(self, patch: Sequence[dict[str, Any]]) -> None:
        """Update parameters: ``patch[i]`` holds new values for UDF ``i``'s keyword arguments."""
        if len(patch) != len(self._kwargs):
            raise ValueError(f"patch has {len(patch)} entries for {len(self._kwargs)} UDFs")
        for kwargs, update in zip(self._kwargs, patch):
            kwargs.update(update)

    def __getstate__(self):
        state = self.__dict__.copy()
        specs = (state.pop("udf_classes"), state.pop("_kwargs"))
        state["_specs"] = dumps_by_value(specs, specs[0])
        return state

    def __setstate__(self, state):
        classes, kwargs = cloudpickle.loads(state.pop("_specs"))
        self.__dict__.update(state)
        self.udf_classes = classes
        self._kwargs = kwargs


__all__ = ["UDFParams", "dumps_by_value"]
