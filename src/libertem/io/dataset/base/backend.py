"""I/O backends: how file-based datasets read their frames.

A backend is a small, picklable description of a reading strategy, chosen per
dataset with ``io_backend=``. The reading itself is done by the frame sources in
:mod:`~libertem.io.dataset.base.filesource`, which ask the backend for its
:attr:`IOBackend.id_` and settings.

``MMapBackend`` (``'mmap'``, the default)
    Read-only memory maps; frames that need no conversion are handed out as views.
``BufferedBackend`` (``'buffered'``)
    ``preadv`` of blocks of frames of at most ``max_buffer_size`` bytes, read ahead
    of the tiles by a background thread per partition; good for slow media and data
    not in the page cache.
``DirectBackend`` (``'direct'``)
    Like buffered, but the file is opened with ``O_DIRECT``: reads bypass the page
    cache, into page-aligned buffers. For data much larger than RAM on fast storage.
"""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar

from libertem.common.exceptions import DataSetException
from libertem.common.lazy import lazy_names

DEFAULT_MAX_BUFFER_SIZE = 16 * 1024 * 1024


class IOBackend:
    """Base class of the I/O backends; subclasses register under their :attr:`id_`."""

    #: short name of the backend, also accepted as ``io_backend='<id>'``
    id_: ClassVar[str | None] = None
    _registry: ClassVar[dict[str, type[IOBackend]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("id_"):
            IOBackend._registry[cls.id_] = cls

    def __init__(self):
        pass

    @classmethod
    def get_cls_by_id(cls, id_: str) -> type[IOBackend]:
        """The backend class registered as ``id_`` (e.g. ``'mmap'``).

        Raises
        ------
        ValueError
            If no backend has that id.
        """
        try:
            return IOBackend._registry[str(id_).lower()]
        except KeyError:
            raise ValueError(
                f"unknown I/O backend {id_!r}; known: {', '.join(sorted(IOBackend._registry))}"
            ) from None

    @classmethod
    def get_supported(cls) -> list[str]:
        """Ids of the backends that work on this platform."""
        return sorted(i for i, c in IOBackend._registry.items() if c.platform_supported())

    @classmethod
    def platform_supported(cls) -> bool:
        """Whether this backend works on this platform."""
        return True

    @classmethod
    def from_json(cls, msg: dict[str, Any]) -> IOBackend:
        """A backend from its JSON form ``{"type": "<id>", <parameters>}``.

        Called on a subclass, ``"type"`` may be left out.
        """
        msg = dict(msg)
        kind = msg.pop("type", None)
        target = cls.get_cls_by_id(kind) if kind is not None else cls
        if target is IOBackend:
            raise ValueError("an I/O backend message needs a 'type'")
        try:
            return target(**msg)
        except TypeError as e:
            raise ValueError(f"invalid parameters for I/O backend {target.id_!r}: {e}") from e

    def to_json(self) -> dict[str, Any]:
        """The JSON form of this backend, as read by :meth:`from_json`."""
        return {"type": self.id_, **self._params()}

    def _params(self) -> dict[str, Any]:
        return {}

    def get_impl(self):
        """The object that reads with this strategy (an ``IOBackendImpl``)."""
        from libertem.io.dataset.base import backend_impl

        return backend_impl.impl_for(self)

    @property
    def max_io_size(self) -> int | None:
        """Most bytes read at once (caps the tile size), or ``None`` for no limit."""
        return None

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._params() == self._params()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self._params().items()))))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"


class MMapBackend(IOBackend):
    """Read with read-only memory maps (the default).

    Parameters
    ----------
    enable_readahead_hints
        Linux: tell the kernel (``madvise``) that each block of frames will be read
        soon and sequentially.
    """

    id_ = "mmap"

    def __init__(self, enable_readahead_hints: bool = False):
        super().__init__()
        self.enable_readahead_hints = bool(enable_readahead_hints)

    def _params(self):
        return {"enable_readahead_hints": self.enable_readahead_hints}


class BufferedBackend(IOBackend):
    """Read with ``preadv`` in blocks of frames, ahead of the tiles in a background thread.

    Parameters
    ----------
    max_buffer_size
        Most bytes read in one go (the size of each read-ahead block); tiles are
        negotiated to be at most this large.
    """

    id_ = "buffered"

    def __init__(self, max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE):
        super().__init__()
        self.max_buffer_size = int(max_buffer_size)
        if self.max_buffer_size < 1:
            raise ValueError(f"max_buffer_size must be positive, got {max_buffer_size}")

    def _params(self):
        return {"max_buffer_size": self.max_buffer_size}

    @property
    def max_io_size(self) -> int:
        return self.max_buffer_size


class DirectBackend(BufferedBackend):
    """Read with ``O_DIRECT``: bypass the page cache, into page-aligned buffers.

    Some file systems (e.g. tmpfs) refuse ``O_DIRECT``; reading then raises a
    :class:`~libertem.common.exceptions.DataSetException` that says so.

    Parameters
    ----------
    max_buffer_size
        Most bytes read in one go; tiles are negotiated to be at most this large.
    """

    id_ = "direct"

    @classmethod
    def platform_supported(cls) -> bool:
        return sys.platform.startswith("linux") and hasattr(os, "O_DIRECT")


def as_io_backend(value, where: str, supported: list[str] | None = None) -> IOBackend | None:
    """An :class:`IOBackend` from ``value``: an instance, an id string or ``None``.

    ``None`` stays ``None`` (the dataset's default applies).

    Raises
    ------
    DataSetException
        If ``value`` names no backend, is of another type, is not in ``supported``,
        or does not work on this platform.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = IOBackend.get_cls_by_id(value)()
        except ValueError:
            known = ", ".join(sorted(IOBackend._registry))
            raise DataSetException(
                f"{where}: unknown io_backend {value!r}; known I/O backends: {known}"
            ) from None
    elif isinstance(value, dict):
        try:
            value = IOBackend.from_json(value)
        except ValueError as e:
            raise DataSetException(f"{where}: {e}") from None
    if not isinstance(value, IOBackend):
        raise DataSetException(
            f"{where}: io_backend must be an IOBackend or one of "
            f"{', '.join(sorted(IOBackend._registry))}, got {type(value).__name__}"
        )
    if supported is not None and value.id_ not in supported:
        raise DataSetException(
            f"{where}: this format does not support io_backend {value.id_!r}; "
            f"supported: {', '.join(supported) or 'none (it does its own I/O)'}"
        )
    if not value.platform_supported():
        raise DataSetException(
            f"{where}: io_backend {value.id_!r} is not supported on {sys.platform}"
        )
    return value


def check_io_backend(io_backend, where: str) -> str:
    """The id of ``io_backend`` (``None``: ``'mmap'``; a name or an ``IOBackend``).

    Raises
    ------
    DataSetException
        If ``io_backend`` names no backend.
    """
    backend = as_io_backend(io_backend, where)
    return "mmap" if backend is None else backend.id_


def resolve_backend(io_backend, where: str) -> IOBackend:
    """``io_backend`` as an :class:`IOBackend` (``None``: the default, memory maps)."""
    return as_io_backend(io_backend, where) or MMapBackend()


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "FileSet": "libertem.io.dataset.base.fileset",
        "IOBackendImpl": "libertem.io.dataset.base.backend_impl",
    },
)
