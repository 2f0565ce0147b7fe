"""ApplyMasksUDF and MaskContainer as in LiberTEM 0.16: mask and result dtypes, stacks
returned as Python lists, per-frame shifts from flat aux data and on scipy.sparse
frames, the backend list, and the private names other code reaches."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import sparse

from libertem.api import Context
from libertem.common.container import MaskContainer
from libertem.io.dataset.memory import MemoryDataSet
from libertem.udf.base import UDF
from libertem.udf.masks import ApplyMasksUDF

NAV = (2, 3)
SIG = (6, 5)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(21).random(NAV + SIG).astype(np.float32)


def _shifted(frame: np.ndarray, mask: np.ndarray, dy: int, dx: int) -> float:
    """Mask pixel (y, x) meets frame pixel (y + dy, x + dx); outside counts as zero."""
    total = 0.0
    for y, x in np.ndindex(mask.shape):
        fy, fx = y + dy, x + dx
        if 0 <= fy < frame.shape[0] and 0 <= fx < frame.shape[1]:
            total += float(mask[y, x]) * float(frame[fy, fx])
    return total


# --- dtypes (B-analysis-13) ----------------------------------------------------------


@pytest.mark.parametrize(
    "data_dtype, mask_dtype, kwargs, expected",
    [
        (np.float32, np.complex128, {}, np.complex128),
        (np.float32, np.complex128, {"mask_dtype": np.complex64}, np.complex64),
        (np.int16, np.bool_, {"preferred_dtype": np.int32}, np.int32),
        (np.int16, np.bool_, {}, np.float32),
        (np.float32, np.float64, {}, np.float64),
        (np.float32, np.uint16, {}, np.float32),
        (np.float64, np.float32, {}, np.float64),
    ],
)
def test_result_dtype_is_result_type_of_input_and_masks(
    ctx, data, data_dtype, mask_dtype, kwargs, expected
):
    rng = np.random.default_rng(3)
    values = (data * 50).astype(data_dtype)
    raw = rng.random((2, *SIG)) * 3
    masks = (raw > 1.5) if mask_dtype is np.bool_ else raw.astype(mask_dtype)
    udf = ApplyMasksUDF(mask_factories=lambda: masks, **kwargs)
    res = ctx.run_udf(dataset=ctx.load("memory", data=values, num_partitions=2), udf=udf)
    out = res["intensity"].data
    assert out.dtype == expected and out.shape == (*NAV, 2)
    applied = masks.astype(kwargs.get("mask_dtype", masks.dtype))
    ref = np.einsum("abyx,myx->abm", values.astype(np.complex128), applied.astype(np.complex128))
    if out.dtype.kind != "c":
        ref = ref.real
    np.testing.assert_allclose(out, ref, rtol=1e-5)


@pytest.mark.parametrize("use_sparse", [None, False, "scipy.sparse", "sparse.pydata"])
def test_mask_container_keeps_the_masks_dtype(use_sparse):
    bool_masks = np.zeros((2, 4, 4), dtype=bool)
    bool_masks[0, 1] = bool_masks[1, :, 2] = True
    u16 = np.ones((4, 4), dtype=np.uint16)
    c128 = np.full((4, 4), 1 + 2j)
    assert MaskContainer(lambda: bool_masks, use_sparse=use_sparse).dtype == np.bool_
    assert MaskContainer([lambda: u16, lambda: u16], use_sparse=use_sparse).dtype == np.uint16
    assert MaskContainer([lambda: c128], use_sparse=use_sparse).dtype == np.complex128
    both = MaskContainer([lambda: u16, lambda: u16.astype(np.float32)], use_sparse=use_sparse)
    assert both.dtype == np.float32  # numpy promotion of the masks' dtypes
    given = MaskContainer(lambda: bool_masks, dtype=np.float64, use_sparse=use_sparse)
    assert given.dtype == np.float64 and given.computed_masks.dtype == np.float64


def test_mask_analysis_dtype_is_the_preferred_input_dtype(inline_ctx):
    values = np.arange(np.prod(NAV + SIG), dtype=np.int16).reshape(NAV + SIG)
    masks = np.zeros((1, *SIG), dtype=bool)
    masks[0, 2:4] = True
    ds = inline_ctx.load("memory", data=values)
    an = inline_ctx.create_mask_analysis(dataset=ds, factories=lambda: masks, dtype=np.int32)
    out = inline_ctx.run(an).mask_0.raw_data
    assert out.dtype == np.int32
    assert np.array_equal(out, values[..., 2:4, :].sum(axis=(2, 3)))


# --- a factory returning a list or tuple (B-analysis-3) ------------------------------


@pytest.mark.parametrize("wrap", [list, tuple, lambda ms: [m.tolist() for m in ms]])
@pytest.mark.parametrize("use_sparse", [None, False])
def test_one_factory_returning_a_sequence_of_masks(ctx, data, wrap, use_sparse):
    ones = np.ones(SIG)
    left = np.zeros(SIG)
    left[:, :2] = 1
    udf = ApplyMasksUDF(mask_factories=lambda: wrap([ones, left]), use_sparse=use_sparse)
    assert udf.get_mask_count() == 2
    out = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udf)["intensity"].data
    assert out.shape == (*NAV, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out[..., 0], data.sum(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], data[..., :2].sum(axis=(2, 3)), rtol=1e-6)


def test_mask_analysis_with_a_list_factory(inline_ctx, data):
    left = np.zeros(SIG)
    left[:, :2] = 1
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run(
        inline_ctx.create_mask_analysis(dataset=ds, factories=lambda: [np.ones(SIG), left])
    )
    assert res.keys() == ["mask_0", "mask_1"]
    np.testing.assert_allclose(res.mask_1.raw_data, data[..., :2].sum(axis=(2, 3)), rtol=1e-6)


# --- shifts: flat aux data (B-analysis-1), sparse frames (B-analysis-2) --------------


def _shifts():
    return np.array([[0, 0], [2, 0], [-1, 3], [1, -2], [0, 4], [-5, 0]])


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("flat", [True, False], ids=["flat", "navshaped"])
def test_per_frame_shifts_from_aux_data(ctx, data, flat, use_roi):
    shifts = _shifts()
    given = shifts.ravel() if flat else shifts.reshape((*NAV, 2))
    aux = ApplyMasksUDF.aux_data(data=given, kind="nav", extra_shape=(2,), dtype=shifts.dtype)
    mask = np.arange(np.prod(SIG), dtype=np.float64).reshape(SIG) % 3
    roi = np.array([[True, False, True], [False, True, True]]) if use_roi else None
    udf = ApplyMasksUDF(mask_factories=[lambda: mask], shifts=aux)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data, num_partitions=2), udf=udf, roi=roi)
    frames = data.reshape((-1, *SIG))
    ref = np.array([_shifted(f, mask, *s) for f, s in zip(frames, shifts)])
    sel = np.ones(len(frames), bool) if roi is None else roi.ravel()
    np.testing.assert_allclose(res["intensity"].raw_data[:, 0], ref[sel], rtol=1e-6)


def test_aux_data_reshapes_and_checks():
    aux = UDF.aux_data(data=np.arange(12.0, dtype=np.float32), kind="nav", extra_shape=(2, 3))
    assert aux.raw_data.shape == (2, 2, 3)
    assert np.array_equal(aux.raw_data[1], np.arange(6.0, 12.0).reshape((2, 3)))
    with pytest.raises(ValueError):
        UDF.aux_data(data=np.arange(5.0), kind="nav", extra_shape=(2,), dtype=float)
    with pytest.raises(AssertionError):
        UDF.aux_data(data=np.arange(6, dtype=np.int64), kind="nav", extra_shape=(2,))


@pytest.mark.parametrize(
    "backend, mask_kind, use_sparse",
    [
        ("numpy", "dense", None),
        ("sparse.COO", "dense", None),
        ("sparse.COO", "coo", True),
        ("scipy.sparse.csr_matrix", "dense", None),
        ("scipy.sparse.csr_matrix", "scipy", None),
        ("scipy.sparse.csr_matrix", "coo", "sparse.pydata"),
        ("scipy.sparse.csc_matrix", "dense", False),
        ("scipy.sparse.csc_matrix", "coo", True),
    ],
)
def test_shifts_on_every_frame_backend(ctx, data, backend, mask_kind, use_sparse):
    shifts = _shifts()
    aux = ApplyMasksUDF.aux_data(data=shifts, kind="nav", extra_shape=(2,), dtype=shifts.dtype)
    mask = np.zeros(SIG, dtype=np.float32)
    mask[1:4, 1:3] = 1
    mask[5, 4] = 2
    made = {
        "dense": lambda: mask,
        "scipy": lambda: scipy.sparse.csr_matrix(mask),
        "coo": lambda: sparse.COO.from_numpy(mask),
    }[mask_kind]
    ds = MemoryDataSet(data=data, array_backends=(backend,), num_partitions=2)
    udf = ApplyMasksUDF(mask_factories=[made], shifts=aux, use_sparse=use_sparse)
    res = ctx.run_udf(dataset=ds, udf=udf)
    frames = data.reshape((-1, *SIG))
    ref = np.array([_shifted(f, mask, *s) for f, s in zip(frames, shifts)])
    np.testing.assert_allclose(res["intensity"].data.reshape(-1), ref, rtol=1e-5)


# --- backends and refused combinations (B-analysis-2, B-analysis-21) ------------------

ALL_MATRIX = {
    "cupy",
    "cupyx.scipy.sparse.coo_matrix",
    "cupyx.scipy.sparse.csc_matrix",
    "cupyx.scipy.sparse.csr_matrix",
    "numpy",
    "scipy.sparse.coo_matrix",
    "scipy.sparse.csc_matrix",
    "scipy.sparse.csr_matrix",
    "sparse.COO",
    "sparse.GCXS",
}


def test_backends_offered():
    masks = lambda: np.ones((1, 4, 4))  # noqa: E731
    assert set(ApplyMasksUDF(mask_factories=masks).get_backends()) == ALL_MATRIX
    shifted = set(ApplyMasksUDF(mask_factories=masks, shifts=(1, 1)).get_backends())
    assert shifted == ALL_MATRIX - {"scipy.sparse.coo_matrix", "cupyx.scipy.sparse.coo_matrix"}
    picked = ApplyMasksUDF(mask_factories=masks, backends=("numpy", "scipy.sparse.csr_array"))
    assert picked.get_backends() == ("numpy",)
    coo = ("scipy.sparse.coo_matrix",)
    assert ApplyMasksUDF(mask_factories=masks, backends=coo).get_backends() == coo
    for given, shifts in ((("scipy.sparse.csr_array",), None), (coo, (1, 0))):
        with pytest.raises(ValueError) as info:
            ApplyMasksUDF(mask_factories=masks, backends=given, shifts=shifts)
        assert str(info.value) == f"No compatible backend found in {given}"


@pytest.mark.parametrize("use_sparse", ["scipy.sparse", "scipy.sparse.csc", "scipy.sparse.csr"])
def test_scipy_sparse_refused_with_shifts(use_sparse):
    with pytest.raises(ValueError) as info:
        ApplyMasksUDF(
            mask_factories=lambda: np.ones((1, 5, 6)), shifts=(1, -3), use_sparse=use_sparse
        )
    assert str(info.value) == (
        f"Sparse backend {use_sparse} not supported for shifts, use sparse.pydata instead."
    )
    ApplyMasksUDF(mask_factories=lambda: np.ones((1, 5, 6)), use_sparse=use_sparse)


# --- private names ----------------------------------------------------------------


def test_private_names_before_and_after_a_local_run(inline_ctx, data):
    calls = []

    def factory():
        calls.append(1)
        return np.ones((1, *SIG), dtype=np.float32)

    udf = ApplyMasksUDF(mask_factories=factory, mask_count=1, mask_dtype=np.float32)
    assert udf._mask_container is None
    container = udf.masks
    assert udf._mask_container is container and container._computed_masks is None
    assert not calls
    assert container.computed_masks.shape == (1, *SIG)
    assert container._computed_masks is not None and calls == [1]


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster

    yield Context(executor=acquire_cluster())
    release_cluster()


def test_main_process_never_computes_counted_masks(dask_ctx, data):
    """With count and dtype given, a multi-process run leaves the masks uncomputed here."""
    calls = []

    def factory():
        calls.append(1)
        return np.ones((1, *SIG), dtype=np.float32)

    ds = dask_ctx.load("memory", data=data, num_partitions=2)
    an = dask_ctx.create_mask_analysis(
        dataset=ds, factories=factory, mask_count=1, mask_dtype=np.float32
    )
    udf = an.get_udf()
    res = dask_ctx.run_udf(dataset=ds, udf=udf)
    np.testing.assert_allclose(res["intensity"].data[..., 0], data.sum(axis=(2, 3)), rtol=1e-5)
    assert udf._mask_container is None and not calls
    assert udf.masks._computed_masks is None
    # flat per-frame shifts cross to the workers as well
    shifts = _shifts()
    aux = ApplyMasksUDF.aux_data(data=shifts.ravel(), kind="nav", extra_shape=(2,), dtype=int)
    mask = np.ones(SIG)
    shifted = dask_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF([lambda: mask], shifts=aux))
    frames = data.reshape((-1, *SIG))
    ref = [_shifted(f, mask, *s) for f, s in zip(frames, shifts)]
    np.testing.assert_allclose(shifted["intensity"].data.reshape(-1), ref, rtol=1e-5)
