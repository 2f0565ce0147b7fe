"""Survive input files that shrink while they are memory-mapped.

Reading a page of a memory map that lies beyond the end of its (since truncated)
file raises ``SIGBUS``, which kills the process: Python cannot catch it, and
``faulthandler`` only reports it. On Linux, every read-only map of an input file
(:func:`~libertem.io.dataset.base.files.open_file_map` and friends) is registered
here, and a small signal handler, compiled with numba, answers a ``SIGBUS`` inside
a registered map by placing zero pages over the rest of that map and counting the
fault. The read then completes (with zeros), and :func:`guarded` -- which wraps
the tiles of every partition -- raises a
:class:`~libertem.common.exceptions.DataSetException` naming the file before the
next tile is handed out, and at the end of the partition: a run never returns
results computed from the missing data. A ``SIGBUS`` outside the registered maps
goes to the handler that was installed before (or kills the process, as before).

The handler is installed the first time a map is registered. Elsewhere than on
Linux on x86-64 or ARM64, with ``LIBERTEM_NO_MAPGUARD`` set, or if it cannot be
installed, maps are not guarded (the size checks before each partition still apply).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import signal
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from libertem.common.exceptions import DataSetException

#: most maps guarded at once; maps beyond this are not guarded
SLOTS = 512
_PAGE = mmap.PAGESIZE
# table layout (int64): [0] faults so far, [1] address of the saved previous
# sigaction, then per slot (first byte, end, faults)
_HEAD = 2
_table = np.zeros(_HEAD + 3 * SLOTS, dtype=np.int64)
_counter = memoryview(_table)  # fast reads of the fault count
_paths: list[str | None] = [None] * SLOTS
_lock = threading.Lock()
_install_lock = threading.Lock()
#: where glibc's ``struct sigaction`` and ``siginfo_t`` are laid out as assumed here
_MACHINES = ("x86_64", "aarch64")
_state: dict = {"installed": None}


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` on 64-bit Linux."""

    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ulong * 16),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


_SA_SIGINFO = 4
_SA_ONSTACK = 0x08000000


_I32, _I64 = ir.IntType(32), ir.IntType(64)
_VOIDP = ir.IntType(8).as_pointer()


@intrinsic
def _table_address(typingctx, new):
    """The table's address, kept in a module global of the compiled code; set if ``new``."""

    def codegen(context, builder, sig, args):
        gv = builder.module.globals.get("libertem_mapguard_table")
        if gv is None:
            gv = cgutils.add_global_variable(builder.module, _I64, "libertem_mapguard_table")
            gv.linkage = "internal"
            gv.initializer = ir.Constant(_I64, 0)
        with builder.if_then(builder.icmp_signed("!=", args[0], ir.Constant(_I64, 0))):
            builder.store(args[0], gv)
        return builder.load(gv)

    return types.int64(types.int64), codegen


@intrinsic
def _as_pointer(typingctx, address):
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], _I64.as_pointer())

    return types.CPointer(types.int64)(types.int64), codegen


@intrinsic
def _map_zeros(typingctx, address, length):
    """``mmap(address, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)``."""

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_VOIDP, [_VOIDP, _I64, _I32, _I32, _I32, _I64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "mmap")
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x10  # 0x10: MAP_FIXED
        res = builder.call(
            fn,
            [
                builder.inttoptr(args[0], _VOIDP),
                args[1],
                ir.Constant(_I32, mmap.PROT_READ),
                ir.Constant(_I32, flags),
                ir.Constant(_I32, -1),
                ir.Constant(_I64, 0),
            ],
        )
        return builder.ptrtoint(res, _I64)

    return types.int64(types.int64, types.int64), codegen


@intrinsic
def _restore_previous(typingctx, saved):
    """``sigaction(SIGBUS, saved, NULL)``."""

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_I32, [_I32, _VOIDP, _VOIDP])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sigaction")
        signum = ir.Constant(_I32, int(signal.SIGBUS))
        builder.call(fn, [signum, builder.inttoptr(args[0], _VOIDP), ir.Constant(_VOIDP, None)])
        return context.get_dummy_value()

    return types.none(types.int64), codegen


_N = _HEAD + 3 * SLOTS


def _handler(sig, info, ctx):
    """``void handler(int sig, siginfo_t *info, void *ctx)``, compiled by :func:`_install`.

    ``sig == -1`` sets the table's address (``*info``). The compiled code calls ``mmap``
    and ``sigaction`` by name and holds no address of this process: it can be cached.
    """
    if sig == -1:
        _table_address(numba.carray(info, (1,), np.int64)[0])
        return
    table = numba.carray(_as_pointer(_table_address(0)), (_N,), np.int64)
    # siginfo_t: si_signo, si_errno, si_code (ints, padded to 16 bytes), then si_addr
    fault = numba.carray(info, (3,), np.int64)[2]
    for i in range(_HEAD, _N, 3):
        lo, hi = table[i], table[i + 1]
        if lo <= fault < hi:
            first = fault - fault % _PAGE
            if _map_zeros(first, hi - first) == first:
                table[i + 2] += 1
                table[0] += 1
                return
            break
    _restore_previous(table[1])


def _install() -> bool:
    """Install the handler once per process; whether maps are guarded."""
    if _state["installed"] is None:
        with _install_lock:  # installed twice, it would chain to itself
            if _state["installed"] is None:
                _state["installed"] = _install_handler()
    return _state["installed"]


def _install_handler() -> bool:
    ok = False
    if (
        sys.platform.startswith("linux")
        and platform.machine() in _MACHINES
        and not os.environ.get("LIBERTEM_NO_MAPGUARD")
    ):
        try:
            signature = types.void(types.int32, types.voidptr, types.voidptr)
            handler = numba.cfunc(signature, cache=True)(_handler)
            address = ctypes.c_int64(_table.ctypes.data)
            handler.ctypes(-1, ctypes.addressof(address), None)
            libc = ctypes.CDLL(None, use_errno=True)
            previous = _SigAction()
            action = _SigAction(handler=handler.address, flags=_SA_SIGINFO | _SA_ONSTACK)
            if libc.sigaction(int(signal.SIGBUS), ctypes.byref(action), ctypes.byref(previous)):
                raise OSError(ctypes.get_errno(), "sigaction failed")
            _state["keep"] = (handler, previous, action)
            _table[1] = ctypes.addressof(previous)
            ok = True
        except Exception:  # no guard: reading works as without it
            ok = False
    return ok


def _release(slot: int) -> None:
    with _lock:
        base = _HEAD + 3 * slot
        _table[base + 1] = 0
        _table[base] = 0
        _paths[slot] = None


def guard_map(array: np.ndarray, path: str) -> bool:
    """Guard the pages of ``array``, a fresh read-only memory map of ``path``.

    The guard ends when the map is released. Returns whether the map is guarded.
    """
    mapping = getattr(array, "_mmap", None)
    if mapping is None or array.nbytes == 0 or not _install():
        return False
    lo = array.ctypes.data
    lo -= lo % _PAGE
    hi = array.ctypes.data + array.nbytes
    with _lock:
        try:
            slot = _paths.index(None)
        except ValueError:
            return False
        base = _HEAD + 3 * slot
        _paths[slot] = os.fspath(path)
        _table[base + 2] = 0
        _table[base + 1] = 0
        _table[base] = lo
        _table[base + 1] = hi
    weakref.finalize(mapping, _release, slot)
    return True


def fault_count() -> int:
    """Number of faults answered so far in this process."""
    return int(_table[0])


def faulted_paths() -> list[str]:
    """Files whose guarded maps had a fault (and are still mapped)."""
    with _lock:
        return sorted(
            {p for i, p in enumerate(_paths) if p is not None and _table[_HEAD + 3 * i + 2]}
        )


def raise_fault(since: int) -> None:
    """Raise ``DataSetException`` if a guarded map had a fault after ``fault_count() == since``."""
    if int(_table[0]) == since:
        return
    from libertem.io.dataset.base.files import forget_maps

    paths = ", ".join(faulted_paths()) or "an input file"
    forget_maps()
    raise DataSetException(
        f"{paths}: file truncated while it was being read (the data beyond its new end "
        "is gone); the run was stopped"
    )


def guarded(tiles: Iterable) -> Iterator:
    """``tiles``, raising ``DataSetException`` as soon as a guarded map has had a fault:
    before each tile is handed out and after the last one."""
    counter = _counter
    since = counter[0]
    try:
        for tile in tiles:
            if counter[0] != since:
                raise_fault(since)
            yield tile
        if counter[0] != since:
            raise_fault(since)
    finally:
        close = getattr(tiles, "close", None)
        if close is not None:
            close()
