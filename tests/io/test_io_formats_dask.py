"""Every file format of the backend matrix on the default executor kind, a Dask cluster:
reading happens in the worker processes; results against numpy, with and without ROI."""

import pytest
from test_io_backend_matrix import FORMATS, check_sums_and_pick

from libertem.api import Context


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster

    yield Context(executor=acquire_cluster())
    release_cluster()


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_format_on_dask(tmp_path, dask_ctx, fmt):
    (filetype, path), kwargs, data = fmt(tmp_path)
    ds = dask_ctx.load(filetype, path, num_partitions=3, **kwargs)
    check_sums_and_pick(dask_ctx, ds, data, roi_seed=5)
