"""Every file format that reads its own bytes, with each I/O backend, on each executor,
with and without ROI: results against numpy."""

import struct

import h5py
import mrcfile
import numpy as np
import pytest

from libertem.io.dataset.base import BufferedBackend, DirectBackend, MMapBackend
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from libertem.utils.sample_data import write_mib_acquisition
from utils import make_roi
from writers_dm_ser_seq import write_seq

NAV, SIG = (3, 4), (16, 16)


def _frames(dtype="u2", hi=4000, seed=0):
    return np.random.default_rng(seed).integers(0, hi, size=(*NAV, *SIG)).astype(dtype)


def raw(tmp):
    d = _frames()
    d.tofile(tmp / "a.raw")
    return ("raw", str(tmp / "a.raw")), {"dtype": "u2", "nav_shape": NAV, "sig_shape": SIG}, d


def npy(tmp):
    d = _frames(">i4")
    np.save(tmp / "a.npy", d)
    return ("npy", str(tmp / "a.npy")), {}, d


def mib_u16(tmp):
    d = _frames()
    return ("mib", write_mib_acquisition(tmp / "m", d, n_files=2)), {}, d


def mib_r64(tmp):
    d = _frames(hi=64)
    return ("mib", write_mib_acquisition(tmp / "r", d, pixel_depth="R64", counter_depth=6)), {}, d


def mrc(tmp):
    d = _frames("f4")
    with mrcfile.new(str(tmp / "a.mrc")) as m:
        m.set_data(d.reshape(-1, *SIG))
        m.set_image_stack()
    return ("mrc", str(tmp / "a.mrc")), {"nav_shape": NAV}, d


def seq(tmp):
    d = _frames()
    return ("seq", str(write_seq(tmp / "a.seq", d.reshape(-1, *SIG)))), {"nav_shape": NAV}, d


def hdf5(tmp):
    d = _frames("f4")
    with h5py.File(tmp / "a.h5", "w") as f:
        f.create_dataset("data", data=d)
    return ("hdf5", str(tmp / "a.h5")), {}, d


def blo(tmp):
    d = _frames("u1", hi=255)
    header = bytearray(256)
    header[:6] = b"IMGBLO"
    struct.pack_into("<HIII", header, 6, 258, 240, 256, 0)
    struct.pack_into("<HHHH", header, 20, SIG[0], 0, NAV[1], NAV[0])
    body = b"".join(
        struct.pack("<HI", 0x55AA, i) + f.tobytes() for i, f in enumerate(d.reshape(-1, *SIG))
    )
    (tmp / "a.blo").write_bytes(bytes(header) + body)
    return ("blo", str(tmp / "a.blo")), {}, d


def empad(tmp):
    rec = np.random.default_rng(1).random((12, 130, 128)).astype("<f4")
    rec.tofile(tmp / "e.raw")
    (tmp / "e.xml").write_text(
        '<root><raw_file filename="e.raw"/><pix_x>4</pix_x><pix_y>3</pix_y></root>'
    )
    return ("empad", str(tmp / "e.xml")), {}, rec[:, :128].reshape(3, 4, 128, 128)


FORMATS = [raw, npy, mib_u16, mib_r64, mrc, seq, hdf5, blo, empad]


def check_sums_and_pick(ctx, ds, data, roi_seed):
    """SumUDF, SumSigUDF and PickUDF over ``ds`` against numpy on ``data``, with and
    without an ROI."""
    flat = data.reshape(-1, *data.shape[2:]).astype(np.float64)
    for roi in (None, make_roi(NAV, seed=roi_seed)):
        sel = flat if roi is None else flat[roi.reshape(-1)]
        res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), PickUDF()], roi=roi)
        np.testing.assert_allclose(res[0]["intensity"].data, sel.sum(axis=0), rtol=1e-5)
        np.testing.assert_allclose(res[1]["intensity"].raw_data, sel.sum(axis=(1, 2)), rtol=1e-5)
        if roi is not None:
            np.testing.assert_array_equal(res[2]["intensity"].raw_data, sel)


BACKENDS = {
    "mmap": MMapBackend(),
    "buffered": BufferedBackend(max_buffer_size=2048),
    "direct": DirectBackend(max_buffer_size=8192),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_format_backend_matrix(tmp_path, ctx, fmt, backend):
    (filetype, path), kwargs, data = fmt(tmp_path)
    ds = ctx.load(filetype, path, io_backend=BACKENDS[backend], num_partitions=2, **kwargs)
    assert ds.get_io_backend() == BACKENDS[backend]
    check_sums_and_pick(ctx, ds, data, roi_seed=3)
