"""Unbuffered reads that bypass the page cache (``O_DIRECT``).

With ``O_DIRECT`` the kernel copies straight between the device and the caller's
buffer, so file offsets, lengths and buffer addresses must be aligned to the
block size (:data:`DIRECT_ALIGN`). :func:`readinto_direct` takes care of that:
it reads any range into any buffer, through an aligned bounce buffer if needed.
Some file systems (tmpfs, for one) refuse ``O_DIRECT``; opening then raises a
:class:`~libertem.common.exceptions.DataSetException` that says so.
"""

from __future__ import annotations

import errno
import io
import os
import sys

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.readahead import (
    DIRECT_ALIGN,
    aligned_empty,
    direct_span,
    no_direct_io,
)


def open_direct(path: str | os.PathLike) -> io.FileIO:
    """Open ``path`` for unbuffered reading with ``O_DIRECT``.

    Returns
    -------
    io.FileIO
        An unbuffered binary file object (read it with :func:`readinto_direct`).

    Raises
    ------
    DataSetException
        If the platform or the file system does not support direct I/O, or the
        file cannot be opened.
    """
    path = os.fspath(path)
    flag = getattr(os, "O_DIRECT", None)
    if flag is None:
        raise DataSetException(f"{path}: direct I/O (O_DIRECT) is not available on {sys.platform}")
    try:
        fd = os.open(path, os.O_RDONLY | flag)
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise no_direct_io(path) from e
        raise DataSetException(f"{path}: cannot open: {e}") from e
    return open(fd, "rb", buffering=0)


def readinto_direct(f: io.FileIO, out) -> int:
    """Read from the position of ``f`` into ``out``, like ``f.readinto(out)``.

    ``f`` is a file opened with :func:`open_direct`. The read is done with aligned
    offset and length; when ``out`` (any writable buffer, e.g. a numpy array) is
    not aligned itself, or the range is not, the bytes go through an aligned
    buffer first. The file position advances by the bytes stored in ``out``.

    Returns
    -------
    int
        Bytes read: ``len(out)`` in bytes, fewer only at the end of the file.

    Raises
    ------
    DataSetException
        If the file system refuses the direct read.
    """
    dest = memoryview(out).cast("B")
    n = len(dest)
    pos = f.tell()
    lo, hi = direct_span(pos, n)
    address = np.frombuffer(dest, dtype=np.uint8).ctypes.data if n else 0
    in_place = pos == lo and n == hi - lo and address % DIRECT_ALIGN == 0
    buf = dest if in_place else memoryview(aligned_empty(hi - lo))
    got = 0
    while got < hi - lo:
        try:
            k = os.preadv(f.fileno(), [buf[got : hi - lo]], lo + got)
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise no_direct_io(getattr(f, "name", "<file>")) from e
            raise DataSetException(f"{getattr(f, 'name', '<file>')}: cannot read: {e}") from e
        if k <= 0:
            break
        got += k
    count = max(0, min(n, got - (pos - lo)))
    if not in_place and count:
        dest[:count] = buf[pos - lo : pos - lo + count]
    f.seek(pos + count)
    return count


__all__ = ["open_direct", "readinto_direct"]
