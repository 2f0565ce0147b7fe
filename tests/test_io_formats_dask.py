"""Every file format of the backend matrix on the default executor kind, a Dask cluster:
reading happens in the worker processes; results against numpy, with and without ROI."""

import numpy as np
import pytest

from libertem.api import Context
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from test_io_backend_matrix import FORMATS, NAV
from utils import make_roi


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster

    yield Context(executor=acquire_cluster())
    release_cluster()


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_format_on_dask(tmp_path, dask_ctx, fmt):
    (filetype, path), kwargs, data = fmt(tmp_path)
    ds = dask_ctx.load(filetype, path, num_partitions=3, **kwargs)
    flat = data.reshape(-1, *data.shape[2:]).astype(np.float64)
    for roi in (None, make_roi(NAV, seed=5)):
        sel = flat if roi is None else flat[roi.reshape(-1)]
        res = dask_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), PickUDF()], roi=roi)
        np.testing.assert_allclose(res[0]["intensity"].data, sel.sum(axis=0), rtol=1e-5)
        np.testing.assert_allclose(res[1]["intensity"].raw_data, sel.sum(axis=(1, 2)), rtol=1e-5)
        if roi is not None:
            np.testing.assert_array_equal(res[2]["intensity"].raw_data, sel)
