"""The filetype registry of ``libertem.io.dataset``, ``load``, ``Context.load`` in LiberTEM's
argument forms, and the JSON parameter converters of the formats."""

import asyncio

import jsonschema
import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.common.messageconverter import MessageConverter
from libertem.io import dataset as registry
from libertem.io.dataset.base import BufferedBackend, DirectBackend
from libertem.io.dataset.blo import BLODatasetParams
from libertem.io.dataset.dask import DaskDatasetParams
from libertem.io.dataset.empad import EMPADDatasetParams
from libertem.io.dataset.hdf5 import HDF5DatasetParams
from libertem.io.dataset.mib import MIBDataSet, MIBDatasetParams
from libertem.io.dataset.mrc import MRCDatasetParams
from libertem.io.dataset.npy import NPYDataSet, NPYDatasetParams
from libertem.io.dataset.raw import RAWDatasetParams, RawFileDataSet
from libertem.io.dataset.seq import SEQDatasetParams
from libertem.io.dataset.ser import SERDatasetParams
from libertem.io.dataset.tvips import TVIPSDatasetParams
from libertem.udf.sum import SumUDF
from libertem.utils.sample_data import write_mib_acquisition


def test_registry_functions():
    assert registry.get_dataset_cls("RAW") is RawFileDataSet
    ext = registry.build_extension_map()
    assert ext["npy"] == ["npy"] and "mib" in ext["hdr"] and "hdf5" in ext["h5"]
    assert {"npy", "mib", "h5", "mrc", "seq", "ser", "tvips", "blo"} <= registry.get_extensions()
    assert registry.get_search_order("/x/y.MIB")[0] == "mib"
    assert registry.get_search_order(np.zeros(3)) == ["memory"]
    registry.register_dataset_cls("myraw", "libertem.io.dataset.raw.RawFileDataSet")
    try:
        assert registry.get_dataset_cls("myraw") is RawFileDataSet
        assert "myraw" in registry.filetypes
    finally:
        registry.unregister_dataset_cls("myraw")
    with pytest.raises(DataSetException, match="unknown filetype 'myraw'"):
        registry.get_dataset_cls("myraw")
    registry.register_dataset_cls("broken", "no.such.module:Thing")
    try:
        with pytest.raises(DataSetException, match="cannot import"):
            registry.get_dataset_cls("broken")
    finally:
        registry.unregister_dataset_cls("broken")
    with pytest.raises(ValueError, match="module.ClassName"):
        registry.register_dataset_cls("x", "nodots")


def test_detect_and_load(tmp_path, inline_ctx):
    data = np.arange(3 * 4 * 5 * 6, dtype=np.float32).reshape(3, 4, 5, 6)
    np.save(tmp_path / "a.npy", data)
    found = registry.detect(str(tmp_path / "a.npy"), inline_ctx.executor)
    assert found["type"] == "npy" and found["parameters"]["path"].endswith("a.npy")
    (tmp_path / "junk.bin").write_bytes(b"nothing to see")
    assert registry.detect(str(tmp_path / "junk.bin")) == {}
    with pytest.raises(DataSetException, match="could not determine"):
        inline_ctx.load("auto", path=str(tmp_path / "junk.bin"))
    ds = registry.load("npy", str(tmp_path / "a.npy"), executor=inline_ctx.executor)
    assert isinstance(ds, NPYDataSet) and tuple(ds.shape) == data.shape
    ds = asyncio.run(
        registry.load(
            "auto", path=str(tmp_path / "a.npy"), executor=inline_ctx.executor, enable_async=True
        )
    )
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)))
    ds = registry.load(NPYDataSet, path=str(tmp_path / "a.npy"), executor=None)
    assert tuple(ds.shape) == data.shape
    with pytest.raises(DataSetException, match="invalid arguments") as bad:
        inline_ctx.load("npy", str(tmp_path / "a.npy"), no_such_arg=1)
    assert isinstance(bad.value, TypeError)  # what LiberTEM code catches
    assert "no_such_arg" in str(bad.value)


def test_context_load_positional_forms(tmp_path, inline_ctx):
    data = np.random.default_rng(0).integers(0, 9, (2, 3, 4, 5)).astype("<u2")
    data.tofile(tmp_path / "r.raw")
    path = str(tmp_path / "r.raw")
    # LiberTEM's order: path, dtype, scan_size, detector_size, ...
    with pytest.warns(FutureWarning, match="argument is deprecated") as record:
        a = inline_ctx.load("raw", path, "<u2", (2, 3), (4, 5))
    assert {str(w.message).split()[0] for w in record} == {"scan_size", "detector_size"}
    b = inline_ctx.load("raw", path, dtype="<u2", nav_shape=(2, 3), sig_shape=(4, 5))
    c = inline_ctx.load(
        "raw", path, "<u2", nav_shape=(2, 3), sig_shape=(4, 5), io_backend=BufferedBackend()
    )
    assert c.get_io_backend() == BufferedBackend()
    d = inline_ctx.load("raw", path, "<u2", enable_direct=True, nav_shape=(2, 3), sig_shape=(4, 5))
    assert isinstance(d.get_io_backend(), DirectBackend)
    for ds in (a, b, c, d):
        res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
        np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    # LiberTEM's argument checks: ValueError, each deprecated argument warns first
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="scan_size and nav_shape"):
        inline_ctx.load("raw", path, "<u2", (2, 3), nav_shape=(2, 3), sig_shape=(4, 5))
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="can't crop detector"):
        inline_ctx.load(
            "raw", path, "<u2", nav_shape=(2, 3), sig_shape=(4, 5), crop_detector_to=(2, 2)
        )
    with pytest.raises(ValueError, match="io_backend and enable_direct at the same time"):
        inline_ctx.load(
            "raw",
            path,
            "<u2",
            enable_direct=True,
            io_backend="mmap",
            nav_shape=(2, 3),
            sig_shape=(4, 5),
        )
    with pytest.raises(TypeError, match="missing 1 required argument: 'sig_shape'"):
        inline_ctx.load("raw", path, "<u2", nav_shape=(2, 3))
    with pytest.warns(FutureWarning, match="tileshape is ignored"):
        inline_ctx.load(
            "raw", path, "<u2", tileshape=(1, 4, 5), nav_shape=(2, 3), sig_shape=(4, 5)
        )


def test_mib_positional_and_scan_size(tmp_path, inline_ctx):
    data = np.arange(2 * 3 * 16 * 16).reshape(2, 3, 16, 16) % 4000
    hdr = write_mib_acquisition(tmp_path / "m", data)
    with pytest.warns(FutureWarning, match="tileshape"):
        ds = inline_ctx.load("mib", hdr, (1, 16, 16))
    assert tuple(ds.shape.nav) == (2, 3)
    with pytest.warns(FutureWarning, match="scan_size"):
        ds = inline_ctx.load("mib", hdr, None, (6,))
    assert tuple(ds.shape.nav) == (6,)
    ds = MIBDataSet(hdr, nav_shape=(3, 2), sync_offset=1, io_backend="buffered")
    ds = ds.initialize(inline_ctx.executor)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, data.reshape(6, 16, 16)[1:].sum(axis=0))


PARAMS = [
    (RAWDatasetParams, {"path": "/a", "dtype": "u2", "nav_shape": [2, 3], "sig_shape": [4, 5]}),
    (NPYDatasetParams, {"path": "/a.npy", "sig_dims": 2, "sync_offset": -2}),
    (MIBDatasetParams, {"path": "/a.hdr", "nav_shape": [4, 4], "disable_glob": True}),
    (HDF5DatasetParams, {"path": "/a.h5", "ds_path": "/d", "min_num_partitions": 3}),
    (MRCDatasetParams, {"path": "/a.mrc", "io_backend": "buffered"}),
    (EMPADDatasetParams, {"path": "/a.xml", "sig_shape": [128, 128]}),
    (BLODatasetParams, {"path": "/a.blo", "endianess": ">"}),
    (SERDatasetParams, {"path": "/a.ser", "emipath": "/a.emi"}),
    (SEQDatasetParams, {"path": "/a.seq", "nav_shape": [5]}),
    (TVIPSDatasetParams, {"path": "/a_000.tvips", "sync_offset": 3}),
]


@pytest.mark.parametrize("cls, params", PARAMS, ids=[c.__name__ for c, _ in PARAMS])
def test_dataset_params(cls, params):
    conv = cls()
    assert isinstance(conv, MessageConverter)
    type_name = cls.SCHEMA["properties"]["type"]["const"]
    msg = {"type": type_name, **params}
    py = conv.to_python(msg)
    assert "type" not in py
    for k, v in params.items():
        if cls is RAWDatasetParams:  # LiberTEM passes the raw values on unchanged
            assert py[k] == v
        else:
            assert py[k] == (tuple(v) if isinstance(v, list) else v)
    assert conv.convert_to_python(msg) == py
    back = conv.from_python({"type": type_name, **py})
    assert back == msg
    with pytest.raises(jsonschema.ValidationError):
        conv.validate({"type": "WRONG", **params})
    with pytest.raises(jsonschema.ValidationError):
        conv.validate({"type": type_name})  # no path
    with pytest.raises(jsonschema.ValidationError):
        conv.validate({**msg, "nav_shape": [0, -1]})


def test_params_match_constructors(tmp_path, inline_ctx):
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    data.tofile(tmp_path / "r.raw")
    msg = {
        "type": "RAW",
        "path": str(tmp_path / "r.raw"),
        "dtype": "uint16",
        "nav_shape": [2, 3],
        "sig_shape": [4, 5],
        "sync_offset": 1,
    }
    kwargs = RawFileDataSet.get_msg_converter()().to_python(msg)
    ds = inline_ctx.load("raw", **kwargs)
    assert tuple(ds.shape) == data.shape and ds.sync_offset == 1
    with pytest.raises(DataSetException, match="not from JSON"):
        DaskDatasetParams().convert_to_python({})
    with pytest.raises(jsonschema.ValidationError):
        DaskDatasetParams().validate({"type": "DASK"})
