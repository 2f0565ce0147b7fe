"""DM datasets in LiberTEM's forms: the DMDataSet factory, SingleDMDataSet (dataset_index,
force_c_order, io backends) and StackedDMDataSet (same_offset, scan_size)."""

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.dm import DMDataSet, StackedDMDataSet
from libertem.io.dataset.dm_header import read_dm_image, read_dm_images
from libertem.io.dataset.dm_single import SingleDMDataSet
from utils import make_roi
from writers_dm_ser_seq import DMWriter, Group, check_dataset, dm_image_group, write_dm

SIG = (8, 8)


def _data(shape, dtype="uint16", seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, 200, size=shape).astype(dtype)


def write_dm_images(path, arrays, version=4):
    """A DM file whose ImageList holds ``arrays`` (C order, little-endian), in order."""
    image_list = Group()
    for a in arrays:
        image_list.append(("", dm_image_group(np.ascontiguousarray(a), a.shape[::-1])))
    body = DMWriter(version, "<").group(Group([("ImageList", image_list)]))
    if version == 3:
        head = (3).to_bytes(4, "big") + (len(body) + 4).to_bytes(4, "big")
    else:
        head = (4).to_bytes(4, "big") + (len(body) + 4).to_bytes(8, "big")
    with open(path, "wb") as f:
        f.write(head + (1).to_bytes(4, "big") + body + bytes(8))
    return str(path)


def _frames(tmp_path, n=6, dtype="float32", seed=0):
    frames = _data((n, *SIG), dtype, seed)
    return frames, [str(write_dm(tmp_path / f"f{i}.dm4", f)) for i, f in enumerate(frames)]


def test_factory_picks_the_class(inline_ctx, tmp_path):
    stack = _data((6, *SIG), seed=1)
    path = str(write_dm(tmp_path / "stack.dm4", stack))
    _, files = _frames(tmp_path)
    for ds in (DMDataSet(path=path), DMDataSet(path), SingleDMDataSet(path)):
        assert type(ds) is SingleDMDataSet and isinstance(ds, DMDataSet)
    for ds in (DMDataSet(files=files), DMDataSet(files), StackedDMDataSet(files=files)):
        assert type(ds) is StackedDMDataSet and isinstance(ds, DMDataSet)
    assert isinstance(inline_ctx.load("dm", path), SingleDMDataSet)
    assert isinstance(inline_ctx.load("dm", files, nav_shape=(2, 3)), StackedDMDataSet)
    with pytest.raises(DataSetException, match="either path"):
        DMDataSet(path=path, files=files)
    with pytest.raises(DataSetException, match="either path"):
        DMDataSet()
    with pytest.raises(DataSetException, match="files must be a list"):
        StackedDMDataSet(files=path)
    with pytest.raises(DataSetException, match="path must name one"):
        SingleDMDataSet(path=files)
    assert DMDataSet.get_supported_extensions() == {"dm3", "dm4"}
    assert StackedDMDataSet.get_supported_extensions() == {"dm3", "dm4"}
    assert SingleDMDataSet.detect_params(path) == {"parameters": {"path": path}}
    assert StackedDMDataSet.detect_params(path) is False


def test_dataset_index(ctx, tmp_path):
    thumb = np.arange(16, dtype=np.uint8).reshape(4, 4)
    big = _data((6, *SIG), "uint16", seed=2)
    small = _data((3, *SIG), "float32", seed=3)
    path = write_dm_images(tmp_path / "multi.dm4", [thumb, big, small])
    images = read_dm_images(path)
    assert [im.index for im in images] == [0, 1, 2]
    assert read_dm_image(path).index == 1  # the largest by default
    ds = ctx.load("dm", path=path)
    check_dataset(ctx, ds, big, roi=make_roi((6,), seed=1))
    ds = ctx.load("dm", path=path, dataset_index=2, nav_shape=(3,))
    assert ds.dtype == np.float32
    check_dataset(ctx, ds, small)
    ds = ctx.load("dm", path=path, dataset_index=0)
    check_dataset(ctx, ds, thumb[None])
    for bad in (3, -1, "x"):
        with pytest.raises(DataSetException, match="multi.dm4.*dataset_index"):
            ctx.load("dm", path=path, dataset_index=bad)


@pytest.mark.parametrize("io_backend", ["mmap", "buffered"])
def test_single_io_backends_and_force_c_order(ctx, tmp_path, io_backend):
    stack = _data((6, *SIG), "int16", seed=4)
    path = write_dm(tmp_path / "stack.dm3", stack, version=3)
    ds = ctx.load("dm", path=str(path), nav_shape=(2, 3), io_backend=io_backend)
    check_dataset(ctx, ds, stack.reshape(2, 3, *SIG), roi=make_roi((2, 3), seed=5))
    data4 = _data((2, 3, *SIG), "uint16", seed=6)
    path = write_dm(tmp_path / "old.dm4", data4, layout="sig_first")
    ds = ctx.load("dm", path=str(path), io_backend=io_backend)
    check_dataset(ctx, ds, data4)
    # forced C order: the stored (det_y, det_x, scan_y, scan_x) array as it is
    ds = ctx.load("dm", path=str(path), io_backend=io_backend, force_c_order=True)
    check_dataset(ctx, ds, np.ascontiguousarray(data4.transpose(2, 3, 0, 1)))


@pytest.mark.parametrize("io_backend", ["mmap", "buffered"])
def test_stacked(ctx, tmp_path, io_backend):
    frames, files = _frames(tmp_path, seed=7)
    ds = ctx.load("dm", files=files, nav_shape=(2, 3), io_backend=io_backend)
    assert type(ds) is StackedDMDataSet
    check_dataset(ctx, ds, frames.reshape(2, 3, *SIG), roi=make_roi((2, 3), seed=9))
    ds = ctx.load("dm", files=files, same_offset=True, io_backend=io_backend)
    check_dataset(ctx, ds, frames)


def test_stacked_scan_size_and_same_offset_errors(inline_ctx, tmp_path):
    frames, files = _frames(tmp_path, seed=8)
    with pytest.warns(FutureWarning, match="scan_size"):
        ds = StackedDMDataSet(files=files, scan_size=(3, 2))
    ds = ds.initialize(inline_ctx.executor)
    assert tuple(ds.shape) == (3, 2, *SIG)
    check_dataset(inline_ctx, ds, frames.reshape(3, 2, *SIG))
    short = tmp_path / "short.dm4"
    short.write_bytes(open(files[0], "rb").read()[:200])
    with pytest.raises(DataSetException, match="short.dm4.*too short.*same_offset"):
        inline_ctx.load("dm", files=[*files, str(short)], same_offset=True)
    with pytest.raises(DataSetException, match="short.dm4"):
        inline_ctx.load("dm", files=[*files, str(short)])
    with pytest.raises(DataSetException, match="f0.dm4.*sig_shape"):
        inline_ctx.load("dm", files=files, sig_shape=(7, 7))
    with pytest.raises(DataSetException, match="list of files is empty"):
        inline_ctx.load("dm", files=[])


def test_msg_converters(inline_ctx, tmp_path):
    import jsonschema

    thumb = np.arange(16, dtype=np.uint8).reshape(4, 4)
    big = _data((6, *SIG), "uint16", seed=2)
    path = write_dm_images(tmp_path / "multi.dm4", [thumb, big])
    conv = DMDataSet.get_msg_converter()()
    assert SingleDMDataSet.get_msg_converter() is type(conv)
    kwargs = conv.to_python({"type": "DM", "path": path, "dataset_index": 1, "nav_shape": [2, 3]})
    assert kwargs == {"path": path, "dataset_index": 1, "nav_shape": (2, 3)}
    check_dataset(inline_ctx, inline_ctx.load("dm", **kwargs), big.reshape(2, 3, *SIG))
    with pytest.raises(jsonschema.ValidationError):
        conv.to_python({"type": "DM", "path": path, "dataset_index": -1})
    frames, files = _frames(tmp_path, n=4, seed=3)
    stacked = StackedDMDataSet.get_msg_converter()()
    message = stacked.from_python(
        {
            "files": tuple(tmp_path / f"f{i}.dm4" for i in range(4)),
            "nav_shape": (2, 2),
            "same_offset": True,
        }
    )
    assert message == {"type": "DM", "files": files, "nav_shape": [2, 2], "same_offset": True}
    kwargs = stacked.to_python(message)
    assert kwargs == {"files": files, "nav_shape": (2, 2), "same_offset": True}
    check_dataset(inline_ctx, inline_ctx.load("dm", **kwargs), frames.reshape(2, 2, *SIG))
    with pytest.raises(jsonschema.ValidationError):
        stacked.to_python({"type": "DM", "files": []})


def test_dm_files_give_frames(tmp_path):
    from libertem.io.dataset.base import OffsetsSizes
    from libertem.io.dataset.dm import DMFileSet, StackedDMFile
    from libertem.io.dataset.dm_single import DMFile

    data4 = _data((2, 3, 4, 5), "uint16", seed=12)  # (scan_y, scan_x, det_y, det_x)
    path = write_dm(tmp_path / "old.dm4", data4, layout="sig_first")
    image = read_dm_image(path)
    raw = memoryview(open(path, "rb").read())
    plain = DMFile(path, 0, 20, image.dtype, (2, 3), file_header=image.offset)
    frames = plain.get_array_from_memview(raw, plain.get_offsets_sizes(len(raw)))
    np.testing.assert_array_equal(frames, data4.transpose(2, 3, 0, 1).reshape(20, 2, 3))
    transposed = DMFile(
        path, 0, 6, image.dtype, (4, 5), file_header=image.offset, transposed_shape=(4, 5, 2, 3)
    )
    assert transposed.transposed_shape == (4, 5, 2, 3)
    frames = transposed.get_array_from_memview(raw, transposed.get_offsets_sizes(len(raw)))
    np.testing.assert_array_equal(frames, data4.reshape(6, 4, 5))
    short = raw[: image.offset + 10]
    for f in (plain, transposed):
        with pytest.raises(DataSetException, match="old.dm4.*truncated"):
            f.get_array_from_memview(short, f.get_offsets_sizes(len(short)))
    frame = StackedDMFile(path, 3, 4, image.dtype, (4, 5), file_header=image.offset)
    got = frame.get_array_from_memview(raw, frame.get_offsets_sizes(len(raw)))
    assert got.shape == (1, 4, 5)
    with pytest.raises(DataSetException, match="old.dm4.*truncated"):
        frame.get_array_from_memview(short, OffsetsSizes(image.offset, 0, 0, 40))
    other = StackedDMFile(path, 4, 5, np.float32, (4, 5), file_header=image.offset)
    with pytest.raises(DataSetException, match="old.dm4.*differs"):
        DMFileSet([frame, other])
