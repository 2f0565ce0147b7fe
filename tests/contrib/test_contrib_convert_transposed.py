"""convert_dm4_transposed: 4D DM4 files stored scan axes last become C-ordered .npy files,
checked against the data written and against ncempy reading the DM file."""

import ncempy.io.dm as ncem_dm
import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.contrib.convert_transposed import (
    ConvertTransposedDatasetUDF,
    convert_dm4_transposed,
)
from libertem.udf.base import UDFMethod
from writers_dm_ser_seq import write_dm

NAV, SIG = (3, 5), (8, 6)


def _data(seed=0, dtype="uint16"):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, size=NAV + SIG).astype(dtype)


@pytest.mark.parametrize("num_partitions", [1, 4, 7])
def test_convert_with_ctx(ctx, tmp_path, num_partitions):
    data = _data(seed=num_partitions)
    path = write_dm(tmp_path / "t.dm4", data, layout="sig_first")
    stored = np.asarray(ncem_dm.dmReader(str(path))["data"])  # (det_y, det_x, scan_y, scan_x)
    np.testing.assert_array_equal(stored.transpose(2, 3, 0, 1), data)
    out = tmp_path / "out.npy"
    ds = ctx.load("dm", path=str(path), force_c_order=True, num_partitions=num_partitions)
    assert tuple(ds.shape) == SIG + NAV
    ctx.run_udf(dataset=ds, udf=ConvertTransposedDatasetUDF(str(out)))
    result = np.load(out)
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, data)


def test_convert_dm4_transposed(ctx, tmp_path):
    data = _data(seed=11, dtype="float32")
    path = write_dm(tmp_path / "t.dm4", data, layout="sig_first", byteorder=">")
    out = tmp_path / "out.npy"
    convert_dm4_transposed(path, out, ctx=ctx)
    result = np.load(out)
    assert result.dtype == np.float32  # native byte order
    np.testing.assert_array_equal(result, data)
    # the converted file loads as an npy dataset of the scan-first shape
    ds = ctx.load("npy", path=str(out))
    assert tuple(ds.shape) == NAV + SIG


def test_convert_default_context_and_index(tmp_path):
    data = _data(seed=12)
    path = write_dm(tmp_path / "t.dm4", data, layout="sig_first")  # thumbnail is image 0
    out = tmp_path / "out.npy"
    convert_dm4_transposed(str(path), str(out), num_cpus=2, dataset_index=1, progress=False)
    np.testing.assert_array_equal(np.load(out), data)


def test_convert_udf_method_and_errors(inline_ctx, tmp_path):
    udf = ConvertTransposedDatasetUDF(str(tmp_path / "x.npy"))
    assert udf.get_method() == UDFMethod.PARTITION
    data = _data(seed=13)
    c_order = write_dm(tmp_path / "c.dm4", data, layout="c")
    with pytest.raises(DataSetException, match="c.dm4.*C order already"):
        convert_dm4_transposed(c_order, tmp_path / "o.npy", ctx=inline_ctx)
    stack = write_dm(tmp_path / "s.dm4", data.reshape(15, *SIG))
    with pytest.raises(DataSetException, match="s.dm4.*not 4D"):
        convert_dm4_transposed(stack, tmp_path / "o.npy", ctx=inline_ctx)
    old = write_dm(tmp_path / "old.dm4", data, layout="sig_first")
    with pytest.raises(DataSetException, match="old.dm4.*dataset_index"):
        convert_dm4_transposed(old, tmp_path / "o.npy", ctx=inline_ctx, dataset_index=5)
    with pytest.raises(ValueError, match="must not replace"):
        convert_dm4_transposed(old, old, ctx=inline_ctx)
    assert not (tmp_path / "o.npy").exists()
    ds = inline_ctx.load("dm", path=str(old), force_c_order=True)
    roi = np.zeros(ds.shape.nav, dtype=bool)
    roi[0, 0] = True
    with pytest.raises(ValueError, match="no roi"):
        inline_ctx.run_udf(
            dataset=ds, udf=ConvertTransposedDatasetUDF(str(tmp_path / "r.npy")), roi=roi
        )
