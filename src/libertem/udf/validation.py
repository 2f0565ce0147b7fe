"""Checks of UDF declarations that run on the main node before any work starts."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import UDFException
from libertem.udf.base import UDF

_ENGINE_ATTRIBUTES = {"_kwargs", "params", "results", "task_data", "meta", "_backend"}


def _plainly_different(a, b) -> bool:
    """Whether two parameter values certainly differ (only judged for plain values)."""
    if a is b:
        return False
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return (
            a.shape != b.shape
            or a.dtype != b.dtype
            or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    plain = (numbers.Number, str, bytes, bool, type(None))
    if isinstance(a, plain) and isinstance(b, plain):
        return a != b and not (a != a and b != b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) != len(b) or any(_plainly_different(x, y) for x, y in zip(a, b))
    return False


def check_clean_copy(udf: UDF) -> None:
    """Check that ``type(udf)(**params)`` re-creates the UDF as the documentation requires.

    Raises
    ------
    UDFException
        If the constructor did not pass its parameters to ``UDF.__init__``, does not
        accept them back, or changes them on the way.
    """
    name = type(udf).__name__
    if not hasattr(udf, "_kwargs"):
        raise UDFException(f"{name}.__init__ must call super().__init__(**parameters)")
    rule = (
        "A UDF constructor must pass its parameters to super().__init__() under the names "
        "it accepts itself, so that a clean copy type(udf)(**params) behaves the same"
    )
    try:
        copy = udf.copy()
    except TypeError as e:
        raise UDFException(
            f"{name} cannot be re-created from its parameters {sorted(udf._kwargs)}: {e}. {rule}"
        ) from e
    if set(copy._kwargs) != set(udf._kwargs):
        raise UDFException(
            f"a clean copy of {name} has parameters {sorted(copy._kwargs)}, the original "
            f"{sorted(udf._kwargs)}. {rule}"
        )
    for key, value in udf._kwargs.items():
        if _plainly_different(value, copy._kwargs[key]):
            raise UDFException(
                f"a clean copy of {name} has {key}={copy._kwargs[key]!r}, the original "
                f"{key}={value!r}. {rule}"
            )
    for key, value in vars(udf).items():
        if key in _ENGINE_ATTRIBUTES or key not in vars(copy):
            continue
        if _plainly_different(value, vars(copy)[key]):
            raise UDFException(
                f"attribute {key!r} of {name} differs on a clean copy "
                f"({vars(copy)[key]!r} instead of {value!r}): workers would see a different "
                f"value. Pass it through super().__init__() and read it from self.params"
            )


def check_backends(udf: UDF, backends: Sequence[str] | None) -> None:
    """Check that the UDF can run on the CPU backends available here.

    Raises
    ------
    UDFException
        If the UDF (or the ``backends`` restriction) needs CUDA, which this executor lacks.
    """
    supported = set(udf.get_backends())
    if backends is not None:
        supported &= set(backends)
    if UDF.BACKEND_NUMPY not in supported:
        raise UDFException(
            f"{type(udf).__name__} can only run on {sorted(supported) or 'no backend'}; "
            "no CUDA worker is available, only the 'numpy' backend"
        )
