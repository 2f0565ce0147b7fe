"""Checks of UDF declarations that run on the main node before any work starts."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import UDFException
from libertem.udf.classes import UDF


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
    # Attributes set on the instance may differ on the clean copy on purpose: e.g.
    # libertem-live's RecordUDF creates its file only where ``_is_master`` is true, the
    # instance the caller made (preprocess on the main node), not on the copies.


def required_resources(
    udfs: Sequence[UDF], backends: Sequence[str] | None, has_cuda: bool
) -> dict[str, int]:
    """Worker resources that can run all ``udfs`` together.

    Parameters
    ----------
    udfs
        The UDFs of a run.
    backends
        Restriction of the backends (``run_udf(backends=...)``), or ``None``.
    has_cuda
        Whether the executor offers CUDA workers.

    Raises
    ------
    UDFException
        If no kind of worker can run every UDF, or a CUDA-only run meets a cluster
        without CUDA workers.
    """
    from libertem.udf.backends import get_resources_for_backends

    names = ", ".join(type(u).__name__ for u in udfs)
    try:
        resources = get_resources_for_backends([u.get_backends() for u in udfs], backends)
    except UDFException as e:
        raise UDFException(f"{names}: {e}") from e
    if "CUDA" in resources and not has_cuda:
        raise UDFException(f"{names} need a CUDA device, but this executor has no CUDA workers")
    if "CPU" not in resources and "CUDA" not in resources and not has_cuda:
        return {"CPU": 1, "compute": 1}
    return resources
