"""Writers of raw CSR datasets (three raw files and a TOML descriptor) for the tests."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse


def sparse_frames(shape, density=0.05, dtype="uint16", seed=0) -> np.ndarray:
    """Dense random data of ``shape`` where about ``density`` of the values are non-zero."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    mask = rng.random(shape) < density
    if dtype.kind == "f":
        values = rng.normal(size=shape)
    elif dtype.kind == "c":
        values = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    elif dtype.kind == "b":
        values = np.ones(shape)
    else:
        values = rng.integers(1, 100, size=shape)
    return np.where(mask, values, 0).astype(dtype)


def write_csr(
    directory,
    data: np.ndarray,
    sig_dims: int = 2,
    name: str = "sparse",
    indptr_dtype="<i8",
    indices_dtype="<i4",
    data_dtype=None,
    write_shapes: bool = True,
    extra_params: str = "",
) -> str:
    """Write the dense array ``data`` (nav..., sig...) as a raw CSR dataset.

    Returns the path of the TOML descriptor; the raw files lie next to it, named
    ``{name}_indptr.raw``, ``{name}_indices.raw``, ``{name}_data.raw``.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    nav = data.shape[: data.ndim - sig_dims]
    sig = data.shape[data.ndim - sig_dims :]
    flat = data.reshape((int(np.prod(nav)), int(np.prod(sig))))
    matrix = scipy.sparse.csr_matrix(flat)
    matrix.sort_indices()
    data_dtype = np.dtype(data_dtype if data_dtype is not None else data.dtype)
    files = {
        "indptr": (matrix.indptr, np.dtype(indptr_dtype)),
        "indices": (matrix.indices, np.dtype(indices_dtype)),
        "data": (matrix.data, data_dtype),
    }
    for key, (values, dtype) in files.items():
        values.astype(dtype).tofile(os.path.join(directory, f"{name}_{key}.raw"))
    lines = ["[params]", 'filetype = "raw_csr"']
    if write_shapes:
        lines.append(f"nav_shape = {list(nav)}")
        lines.append(f"sig_shape = {list(sig)}")
    if extra_params:
        lines.append(extra_params)
    lines += ["", "[raw_csr]"]
    for key, (_, dtype) in files.items():
        lines.append(f'{key}_file = "{name}_{key}.raw"')
        lines.append(f'{key}_dtype = "{dtype.str}"')
    path = os.path.join(directory, f"{name}.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
