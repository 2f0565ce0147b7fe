"""Survive input files that shrink while they are memory-mapped.

Reading a page of a memory map that lies beyond the end of its (since truncated)
file raises ``SIGBUS``, which kills the process: Python cannot catch it, and
``faulthandler`` only reports it. On Linux, every read-only map of an input file
(:func:`~libertem.io.dataset.base.files.open_file_map` and friends) is registered
here, and a small signal handler answers a ``SIGBUS`` inside
a registered map by placing zero pages over the rest of that map and counting the
fault. The read then completes (with zeros), and :func:`guarded` -- which wraps
the tiles of every partition -- raises a
:class:`~libertem.common.exceptions.DataSetException` naming the file before the
next tile is handed out, and at the end of the partition: a run never returns
results computed from the missing data. A ``SIGBUS`` outside the registered maps
goes to the handler that was installed before (or kills the process, as before).

The handler is installed the first time a map is registered. It is a few lines of
LLVM IR, built with llvmlite and compiled by LLVM in about ten milliseconds (no numba
compilation, which would take the better part of a second on the first read of every
fresh process). Elsewhere than on Linux on x86-64 or ARM64, with
``LIBERTEM_NO_MAPGUARD`` set, or if it cannot be installed, maps are not guarded (the
size checks before each partition still apply).
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

import numpy as np

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
#: ``MAP_FIXED`` of Linux
_MAP_FIXED = 0x10
#: offset of ``si_addr`` in ``siginfo_t``: three ints, padded to 16 bytes
_SI_ADDR = 16


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


def _handler_ir(table: int, mmap_fn: int, sigaction_fn: int) -> str:
    """LLVM IR of ``void libertem_mapguard_handler(int sig, siginfo_t *info, void *ctx)``.

    In Python terms, with ``table`` the int64 table at address ``table``::

        fault = info.si_addr
        for i in range(_HEAD, _HEAD + 3 * SLOTS, 3):
            if table[i] <= fault < table[i + 1]:
                first = fault - fault % _PAGE
                # zero pages over the rest of the map, read-only
                if mmap(first, table[i + 1] - first, ...) == first:
                    table[i + 2] += 1
                    table[0] += 1
                    return
                break
        sigaction(SIGBUS, table[1], NULL)  # not ours: the previous handler takes it

    After the ``sigaction``, the faulting access runs again and meets the previous
    handler (by default: the process ends, as without a guard). The addresses of the
    table and of libc's ``mmap`` and ``sigaction`` are constants of the code.
    """
    from llvmlite import ir

    i8p, i32, i64 = ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(64)

    def const(v, t=i64):
        return ir.Constant(t, v)

    module = ir.Module(name="libertem_mapguard")
    fn = ir.Function(
        module, ir.FunctionType(ir.VoidType(), [i32, i8p, i8p]), "libertem_mapguard_handler"
    )
    blocks = {n: fn.append_basic_block(n) for n in ("entry", "loop", "body", "next", "hit")}
    blocks.update({n: fn.append_basic_block(n) for n in ("count", "chain", "done")})
    b = ir.IRBuilder(blocks["entry"])
    tbl = b.inttoptr(const(table), i64.as_pointer())
    fault = b.load(b.bitcast(b.gep(fn.args[1], [const(_SI_ADDR)]), i64.as_pointer()))
    b.branch(blocks["loop"])

    b.position_at_end(blocks["loop"])
    i = b.phi(i64)
    i.add_incoming(const(_HEAD), blocks["entry"])
    more = b.icmp_signed("<", i, const(_HEAD + 3 * SLOTS))
    b.cbranch(more, blocks["body"], blocks["chain"])

    b.position_at_end(blocks["body"])
    lo = b.load(b.gep(tbl, [i]))
    hi = b.load(b.gep(tbl, [b.add(i, const(1))]))
    inside = b.and_(b.icmp_signed("<=", lo, fault), b.icmp_signed("<", fault, hi))
    b.cbranch(inside, blocks["hit"], blocks["next"])

    b.position_at_end(blocks["next"])
    i.add_incoming(b.add(i, const(3)), blocks["next"])
    b.branch(blocks["loop"])

    b.position_at_end(blocks["hit"])
    first = b.and_(fault, const(~(_PAGE - 1)))
    mmap_ty = ir.FunctionType(i8p, [i8p, i64, i32, i32, i32, i64])
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
    args = [b.inttoptr(first, i8p), b.sub(hi, first), const(mmap.PROT_READ, i32)]
    args += [const(flags, i32), const(-1, i32), const(0)]
    res = b.call(b.inttoptr(const(mmap_fn), mmap_ty.as_pointer()), args)
    b.cbranch(b.icmp_signed("==", b.ptrtoint(res, i64), first), blocks["count"], blocks["chain"])

    b.position_at_end(blocks["count"])
    for ptr in (b.gep(tbl, [b.add(i, const(2))]), b.gep(tbl, [const(0)])):
        b.store(b.add(b.load(ptr), const(1)), ptr)
    b.branch(blocks["done"])

    b.position_at_end(blocks["chain"])
    sigaction_ty = ir.FunctionType(i32, [i32, i8p, i8p])
    previous = b.inttoptr(b.load(b.gep(tbl, [const(1)])), i8p)
    b.call(
        b.inttoptr(const(sigaction_fn), sigaction_ty.as_pointer()),
        [const(int(signal.SIGBUS), i32), previous, ir.Constant(i8p, None)],
    )
    b.branch(blocks["done"])

    b.position_at_end(blocks["done"])
    b.ret_void()
    return str(module)


def _compile_handler(libc) -> tuple[int, object]:
    """Compile the handler for this process: its address, and what keeps it alive."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    addresses = [ctypes.cast(f, ctypes.c_void_p).value for f in (libc.mmap, libc.sigaction)]
    # a context of its own: numba may be compiling in another thread (in the global one)
    module = llvm.parse_assembly(
        _handler_ir(_table.ctypes.data, *addresses), context=llvm.create_context()
    )
    module.verify()
    machine = llvm.Target.from_default_triple().create_target_machine(opt=2)
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    return engine.get_function_address("libertem_mapguard_handler"), engine


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
            libc = ctypes.CDLL(None, use_errno=True)
            address, engine = _compile_handler(libc)
            previous = _SigAction()
            _table[1] = ctypes.addressof(previous)
            action = _SigAction(handler=address, flags=_SA_SIGINFO | _SA_ONSTACK)
            if libc.sigaction(int(signal.SIGBUS), ctypes.byref(action), ctypes.byref(previous)):
                raise OSError(ctypes.get_errno(), "sigaction failed")
            _state["keep"] = (engine, previous, action)
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
