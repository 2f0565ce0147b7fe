"""libertem.io.direct, buffered file objects, and libertem.io.fs listings."""

import os

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.backend_buffered import (
    BufferedFile,
    DirectBufferedFile,
    block_get_min_fill_factor,
)
from libertem.io.direct import open_direct, readinto_direct
from libertem.io.fs import FSError, get_fs_listing, get_owner_name, stat_path

DATA = np.arange(3 * 4096 + 123, dtype=np.uint16).astype(np.uint8)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    DATA.tofile(path)
    return path


def _open_direct_or_skip(path):
    try:
        return open_direct(path)
    except DataSetException as e:
        assert "O_DIRECT" in str(e)
        pytest.skip(f"no direct I/O here: {e}")


@pytest.mark.parametrize(
    "offset, size",
    [(0, 4096), (0, 3 * 4096), (100, 5000), (4096, 4096 + 123), (3 * 4096, 1000)],
)
def test_readinto_direct_reads_any_range(data_file, offset, size):
    with _open_direct_or_skip(data_file) as f:
        f.seek(offset)
        out = np.full(size, 7, dtype=np.uint8)
        n = readinto_direct(f, out)
        want = DATA[offset : offset + size]
        assert n == len(want)
        np.testing.assert_array_equal(out[:n], want)
        assert (out[n:] == 7).all()
        assert f.tell() == offset + n


def test_open_direct_missing_file(tmp_path):
    with pytest.raises(DataSetException, match="cannot open"):
        open_direct(tmp_path / "missing.bin")


@pytest.mark.parametrize("cls", [BufferedFile, DirectBufferedFile])
def test_buffered_files_read_at_positions(data_file, cls):
    f = cls(data_file, desc=None)
    assert f.handle is None
    try:
        f.open()
    except DataSetException as e:
        pytest.skip(f"no direct I/O here: {e}")
    try:
        assert f.get_blocksize() >= 512
        f.seek(4096 + 5)
        buf = bytearray(300)
        assert f.readinto(buf) == 300
        assert bytes(buf) == DATA[4096 + 5 : 4096 + 305].tobytes()
        f.seek(len(DATA) - 10)
        assert f.readinto(bytearray(50)) == 10
    finally:
        f.close()
    assert f.handle is None
    with pytest.raises(DataSetException, match="not open"):
        f.seek(0)


def test_block_min_fill_factor():
    dense = np.array([[0, 0, 100], [0, 100, 200], [1, 0, 50]])
    assert block_get_min_fill_factor(dense) == 1.0
    gappy = np.array([[0, 0, 100], [0, 300, 400], [-1, 0, 0]])
    assert block_get_min_fill_factor(gappy) == pytest.approx(200 / 400)
    assert block_get_min_fill_factor(np.zeros((0, 3), dtype=int)) == 1.0


# --- io.fs -------------------------------------------------------------------------


def test_fs_listing(tmp_path, data_file):
    (tmp_path / "sub").mkdir()
    listing = get_fs_listing(str(tmp_path))
    assert listing["path"] == str(tmp_path)
    assert [d["name"] for d in listing["dirs"]] == ["sub"]
    assert [f["name"] for f in listing["files"]] == ["data.bin"]
    entry = listing["files"][0]
    st = os.stat(data_file)
    assert entry["size"] == len(DATA) and entry["mtime"] == st.st_mtime
    assert entry["owner"] == get_owner_name(str(data_file), st)
    assert listing["drives"] and {p["key"] for p in listing["places"]} >= {"home"}


def test_fs_errors(tmp_path, data_file):
    with pytest.raises(FSError) as info:
        get_fs_listing(str(tmp_path / "a" / "b"))
    assert info.value.code == "NOT_FOUND" and info.value.alternative == str(tmp_path)
    with pytest.raises(FSError) as info:
        get_fs_listing(str(data_file))
    assert info.value.code == "NOT_A_DIRECTORY"
    with pytest.raises(FSError) as info:
        stat_path(str(tmp_path / "missing"))
    assert info.value.code == "NOT_FOUND"


def test_stat_path(data_file):
    info = stat_path(str(data_file))
    assert info["basename"] == "data.bin" and info["dirname"] == str(data_file.parent)
    assert info["isreg"] and not info["isdir"] and info["size"] == len(DATA)


def test_owner_name_is_the_user_name(data_file):
    pwd = pytest.importorskip("pwd")
    st = os.stat(data_file)
    assert get_owner_name(str(data_file), st) == pwd.getpwuid(os.getuid()).pw_name
    from libertem.io.utils import get_owner_name as from_utils

    assert from_utils is get_owner_name
