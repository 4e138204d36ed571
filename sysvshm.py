# sysvshm - System V IPC for Python in one stdlib-only file.
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The sysvshm authors
#
# Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
# associated documentation files (the "Software"), to deal in the Software without restriction,
# including without limitation the rights to use, copy, modify, merge, publish, distribute,
# sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions: the above copyright notice and this
# permission notice shall be included in all copies or substantial portions of the Software.
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED. See LICENSE.
"""System V shared memory, semaphores (and semaphore sets) through ctypes.

The model, as in the kernel: an IPC object (segment, semaphore set) lives in the machine's IPC
namespace, named by a key, until someone *removes* it - it outlives the process that created it.
A process *attaches* a segment into its address space and *detaches* it again; detaching never
removes, and removing a segment that is still attached only marks it: the kernel destroys it at
the last detach.

Memory safety: every view this module hands out (``buf``, its slices, ``as_ctypes`` objects,
numpy arrays built on them) keeps the mapping alive.  ``detach()`` while such a view exists
raises ``BufferError`` (as ``mmap.close()`` does) on CPython; on PyPy, whose mmap counts no
exports, ``detach()`` replaces the segment by private zero memory so a stale view can never
crash the interpreter or write into the segment.

Drop-in for the ``sysv_ipc`` C extension: same names, signatures and documented behaviour,
minus its defects (see README.md).  Linux only; the struct layouts are declared per ABI below.
"""

import ctypes
import errno as _errno
import os
import struct
import sys
import time

# Import time: typing costs ~9 ms on CPython 3.11 (it pulls in re, enum, collections, ...),
# three times `import ctypes`; the annotations are for type checkers only, so they are strings
# and typing is imported for the checker alone (mypy treats TYPE_CHECKING as true).  mmap,
# random, warnings and weakref are imported where they are used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import mmap
    from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                        Union)

__version__ = "0.1.0"
VERSION = __version__
__author__ = "The sysvshm authors"
__license__ = "MIT"
__copyright__ = "Copyright (c) 2026 The sysvshm authors"

__all__ = [
    "IPC_CREAT", "IPC_EXCL", "IPC_CREX", "IPC_NOWAIT", "IPC_PRIVATE", "KEY_MIN", "KEY_MAX",
    "PAGE_SIZE", "SEMAPHORE_VALUE_MAX", "SEMAPHORE_TIMEOUT_SUPPORTED", "SEM_UNDO",
    "SHM_RDONLY", "SHM_RND", "SHM_HUGETLB", "SHM_NORESERVE", "SHM_REMAP", "SHM_EXEC",
    "VERSION", "Error", "InternalError", "PermissionsError", "ExistentialError", "BusyError",
    "NotAttachedError", "SharedMemory", "Semaphore", "SemaphoreSet", "attach", "ftok",
    "remove_semaphore", "remove_shared_memory",
]

if not sys.platform.startswith("linux"):
    # The constants and struct layouts below are Linux's; on another kernel they would be
    # silently wrong, which is worse than not importing.
    raise ImportError("sysvshm supports Linux only (this is %r)" % sys.platform)

# --- Constants: <sys/ipc.h>, <sys/shm.h>, <sys/sem.h> (Linux values) -------------------------------
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_CREX = IPC_CREAT | IPC_EXCL
IPC_PRIVATE = 0
_IPC_RMID, _IPC_SET, _IPC_STAT = 0, 1, 2

SHM_RDONLY = 0o10000
SHM_RND = 0o20000
SHM_REMAP = 0o40000
SHM_EXEC = 0o100000
SHM_HUGETLB = 0o4000
SHM_NORESERVE = 0o10000
_SHM_HUGE_MASK = 0x3F << 26          # SHM_HUGE_2MB / SHM_HUGE_1GB page-size bits
_SHM_LOCK, _SHM_UNLOCK = 11, 12
_SHM_DEST, _SHM_LOCKED = 0o1000, 0o2000   # status bits of shm_perm.mode

SEM_UNDO = 0x1000
_GETPID, _GETVAL, _GETALL, _GETNCNT, _GETZCNT, _SETVAL, _SETALL = 11, 12, 13, 14, 15, 16, 17

KEY_MIN = -2 ** 31                   # key_t is a 32-bit signed int; ipcs prints it unsigned,
KEY_MAX = 2 ** 32 - 1                # so 0x80000000..0xffffffff are accepted as well.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")   # what mmap.PAGESIZE reads
SEMAPHORE_VALUE_MAX = 32767          # SEMVMX
SEMAPHORE_TIMEOUT_SUPPORTED = True   # semtimedop(), or a bounded polling fallback without it

_CPYTHON = sys.implementation.name == "cpython"

# --- Platform block: kernel struct layouts per ABI ------------------------------------------------
# glibc and musl hand IPC_STAT buffers to the kernel in its "ipc64" layout, so the layouts are the
# kernel's, per architecture (not per word size: x86_64's semid_ds differs from aarch64's).
# Each field is (offset, struct code); code "T" is a 32-bit ABI's time split in two words (low,
# then high at offset + 4).  Only the fields we read or write are declared.
if TYPE_CHECKING:
    _Fields = Dict[str, Tuple[int, str]]


def _perm(mode_code: str, mode_offset: int) -> "_Fields":
    return {"key": (0, "i"), "uid": (4, "I"), "gid": (8, "I"), "cuid": (12, "I"),
            "cgid": (16, "I"), "mode": (mode_offset, mode_code)}


def _merge(*parts: "_Fields") -> "_Fields":
    out = {}  # type: _Fields
    for part in parts:
        out.update(part)
    return out


_LE_PERM = _perm("H", 20)   # mode is u16 (+pad) or u32 at 20; both read right as u16 on little-endian
_LAYOUTS = {
    # x86_64 (and x32): semid_ds keeps an unused word after each time.
    "x86_64": {
        "shm": (112, _merge(_LE_PERM, {"size": (48, "Q"), "atime": (56, "q"), "dtime": (64, "q"),
                                       "ctime": (72, "q"), "cpid": (80, "i"), "lpid": (84, "i"),
                                       "nattch": (88, "Q")})),
        "sem": (104, _merge(_LE_PERM, {"otime": (48, "q"), "ctime": (64, "q"), "nsems": (80, "Q")})),
        "msg": (120, _merge(_LE_PERM, {"stime": (48, "q"), "rtime": (56, "q"), "ctime": (64, "q"),
                                       "cbytes": (72, "Q"), "qnum": (80, "Q"), "qbytes": (88, "Q"),
                                       "lspid": (96, "i"), "lrpid": (100, "i")})),
    },
    # asm-generic, 64-bit little-endian: aarch64, riscv64, loongarch64.
    "generic64": {
        "shm": (112, _merge(_LE_PERM, {"size": (48, "Q"), "atime": (56, "q"), "dtime": (64, "q"),
                                       "ctime": (72, "q"), "cpid": (80, "i"), "lpid": (84, "i"),
                                       "nattch": (88, "Q")})),
        "sem": (88, _merge(_LE_PERM, {"otime": (48, "q"), "ctime": (56, "q"), "nsems": (64, "Q")})),
        "msg": (120, _merge(_LE_PERM, {"stime": (48, "q"), "rtime": (56, "q"), "ctime": (64, "q"),
                                       "cbytes": (72, "Q"), "qnum": (80, "Q"), "qbytes": (88, "Q"),
                                       "lspid": (96, "i"), "lrpid": (100, "i")})),
    },
    # asm-generic, 32-bit little-endian: i386, arm (armhf/armel).  Times are low + high words.
    "generic32": {
        "shm": (84, _merge(_LE_PERM, {"size": (36, "I"), "atime": (40, "T"), "dtime": (48, "T"),
                                      "ctime": (56, "T"), "cpid": (64, "i"), "lpid": (68, "i"),
                                      "nattch": (72, "I")})),
        "sem": (64, _merge(_LE_PERM, {"otime": (36, "T"), "ctime": (44, "T"), "nsems": (52, "I")})),
        "msg": (88, _merge(_LE_PERM, {"stime": (36, "T"), "rtime": (44, "T"), "ctime": (52, "T"),
                                      "cbytes": (60, "I"), "qnum": (64, "I"), "qbytes": (68, "I"),
                                      "lspid": (72, "i"), "lrpid": (76, "i")})),
    },
}  # type: Dict[str, Dict[str, Tuple[int, _Fields]]]


def _detect_abi() -> str:
    """Name the layout for the *running interpreter* (a 32-bit Python on a 64-bit kernel is 32-bit)."""
    multiarch = getattr(sys.implementation, "_multiarch", None) or ""
    arch = multiarch.split("-")[0] if multiarch else os.uname().machine
    bits = ctypes.sizeof(ctypes.c_void_p) * 8
    little = sys.byteorder == "little"
    if arch == "x86_64" and "gnux32" in multiarch:
        return "x86_64"
    if arch in ("x86_64", "amd64") and bits == 64:
        return "x86_64"
    if arch in ("x86_64", "amd64", "i386", "i486", "i586", "i686") and bits == 32:
        return "generic32"
    if little and bits == 64 and arch in ("aarch64", "arm64", "riscv64", "loongarch64"):
        return "generic64"
    if little and bits == 32 and (arch.startswith("arm") or arch == "riscv32"):
        return "generic32"
    raise ImportError("sysvshm: no struct layout is declared for %s (%d-bit, %s-endian); "
                      "refusing to guess" % (arch, bits, sys.byteorder))


ABI = _detect_abi()
_LAYOUT = _LAYOUTS[ABI]

# --- libc and its prototypes ---------------------------------------------------------------------
# CDLL(None) is the running process's libc on glibc and musl alike (find_library may return None on
# musl and runs external programs).  errno is read only after a call failed.
_libc = ctypes.CDLL(None, use_errno=True)
_c_int, _c_void_p, _c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
_PROTOTYPES = {
    "shmget": ([_c_int, _c_size_t, _c_int], _c_int),
    "shmat": ([_c_int, _c_void_p, _c_int], _c_void_p),   # returns (void *) -1 on failure, not NULL
    "shmdt": ([_c_void_p], _c_int),
    "shmctl": ([_c_int, _c_int, _c_void_p], _c_int),
    "semget": ([_c_int, _c_int, _c_int], _c_int),
    "semctl": ([_c_int, _c_int, _c_int], _c_int),        # variadic: the union goes as an extra arg
    "semop": ([_c_int, _c_void_p, _c_size_t], _c_int),
    "ftok": ([ctypes.c_char_p, _c_int], _c_int),
    "mmap": ([_c_void_p, _c_size_t, _c_int, _c_int, _c_int, ctypes.c_long], _c_void_p),
    "munmap": ([_c_void_p, _c_size_t], _c_int),
    "madvise": ([_c_void_p, _c_size_t, _c_int], _c_int),
    "msgget": ([_c_int, _c_int], _c_int),
    "msgctl": ([_c_int, _c_int, _c_void_p], _c_int),
}  # type: Dict[str, Tuple[List[Any], Any]]
for _name, (_argtypes, _restype) in _PROTOTYPES.items():
    _func = getattr(_libc, _name)
    _func.argtypes, _func.restype = _argtypes, _restype
_shmget, _shmat, _shmdt, _shmctl = _libc.shmget, _libc.shmat, _libc.shmdt, _libc.shmctl
_semget, _semctl, _semop = _libc.semget, _libc.semctl, _libc.semop
_MAP_FAILED = ctypes.c_void_p(-1).value
_get_errno = ctypes.get_errno

# Hot path (FACTS §8): semop/semtimedop without argtypes, called with preallocated arguments -
# each declared argument costs ~100 ns per call through from_param.  _libc[name] makes a new
# function object (unlike _libc.name, which is the declared one, cached).
_semop_fast = _libc["semop"]
try:
    _semtimedop_fast = _libc["semtimedop"]   # type: Optional[Any]
except AttributeError:                      # absent on some libcs: polling fallback
    _semtimedop_fast = None
# The same for the shared-memory life cycle (create, attach, remove); the caller wraps what is not
# a C int (size_t, void *) itself.
_shmget_fast, _shmat_fast, _shmctl_fast = _libc["shmget"], _libc["shmat"], _libc["shmctl"]
_shmat_fast.restype = _c_void_p
if not _CPYTHON:
    # PyPy is the other way round: its JIT makes declared calls fast, and undeclared ones cost
    # ~7x more (a semop pair: 2.5 us declared, 17 us undeclared, PyPy 7.3.11).
    _semop_fast, _shmget_fast, _shmat_fast, _shmctl_fast = _semop, _shmget, _shmat, _shmctl
    if _semtimedop_fast is not None:
        _semtimedop_fast.argtypes = [_c_int, _c_void_p, _c_size_t, _c_void_p]


class _sembuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short),
                ("sem_flg", ctypes.c_short)]


class _timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _semun(ctypes.Union):
    _fields_ = [("val", ctypes.c_int), ("ptr", ctypes.c_void_p)]


def _semun_val(value: int) -> ctypes.c_ulong:
    """union semun {.val = value} as the pointer-sized image semctl() reads from its variadic slot.

    Passing a plain int would put the value in the wrong half on 64-bit big-endian machines (s390x
    then silently sets 0 - FACTS §3); building the union in memory is right everywhere."""
    u = _semun()
    u.val = value
    return ctypes.c_ulong(ctypes.c_ulong.from_buffer(u).value)


# --- Errors --------------------------------------------------------------------------------------
class Error(OSError):
    """Base class of this module's errors; an OSError carrying errno, and the failed call."""

    call = None  # type: Optional[str]

    def __str__(self) -> str:
        text = OSError.__str__(self)
        return "%s: %s" % (self.call, text) if self.call else text


class InternalError(Error):
    """Something is wrong inside this module (for instance a struct layout self-check failed)."""


class PermissionsError(Error):
    """The object's permissions do not allow the operation."""


class ExistentialError(Error):
    """The object does not exist (any more), or exists when it must not."""


class BusyError(Error):
    """A semaphore wait timed out, or would have blocked with block=False / IPC_NOWAIT."""


class NotAttachedError(Error):
    """The shared memory is not attached in this process."""


# Each errno gets one class that is both the sysv_ipc class and the stdlib OSError subclass, so
# that `except FileExistsError` and `except sysv_ipc.ExistentialError` both catch it.
class ExistsError(ExistentialError, FileExistsError):
    """EEXIST: IPC_CREX and the key is taken."""


class NotFoundError(ExistentialError, FileNotFoundError):
    """ENOENT: no object has that key."""


class RemovedError(ExistentialError):
    """EIDRM/EINVAL: the object was removed (or the id never existed)."""


class AccessError(PermissionsError, PermissionError):
    """EACCES/EPERM."""


class WouldBlockError(BusyError, BlockingIOError):
    """EAGAIN with block=False or IPC_NOWAIT."""


class TimedOutError(BusyError, TimeoutError):
    """The timeout expired (semtimedop's EAGAIN)."""


_ERRNO_CLASSES = {
    _errno.EEXIST: ExistsError, _errno.ENOENT: NotFoundError, _errno.EIDRM: RemovedError,
    _errno.EACCES: AccessError, _errno.EPERM: AccessError, _errno.EAGAIN: WouldBlockError,
    _errno.EINTR: InterruptedError,
}  # type: Dict[int, Any]


def _error(err: int, call: str, cls: "Any" = None) -> Error:
    """Build the exception for a failed `call` (e.g. "shmget(key=0x00001234, size=4096)")."""
    if cls is None:
        cls = _ERRNO_CLASSES.get(err, Error)
        if cls is InterruptedError:
            cls = type("InterruptedError", (Error, InterruptedError), {})
    exc = cls(err, os.strerror(err))
    exc.call = call
    return exc  # type: ignore[no-any-return]


def _check(result: int, call: "Callable[[], str]", gone: bool = True) -> int:
    """Raise for a -1 result; EINVAL on an id-based call means the id is gone (RemovedError)."""
    if result == -1:
        err = _get_errno()
        raise _error(err, call(), RemovedError if gone and err == _errno.EINVAL else None)
    return result


def _index(value: "Any", what: str) -> int:
    """An integer argument (bool excluded), or TypeError - before any system call."""
    if type(value) is int:      # the common case, first: a quarter of a microsecond less
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__))
    return int(value.__index__())


def _key_t(key: "Any") -> int:
    """Check a key and return it as key_t; never truncates (sysv_ipc does, silently)."""
    key = _index(key, "key")
    if not KEY_MIN <= key <= KEY_MAX:
        raise ValueError("key %d is outside key_t (%d..%#x)" % (key, KEY_MIN, KEY_MAX))
    return key - 2 ** 32 if key > 0x7FFFFFFF else key


def _fmt_key(ckey: int) -> str:
    return "0x%08x" % (ckey & 0xFFFFFFFF)


def _check_flags(flags: "Any", allowed: int, what: str) -> int:
    flags = _index(flags, "flags")
    if flags < 0 or flags & ~allowed:
        raise ValueError("%s: unsupported flag bits %#o" % (what, flags & ~allowed if flags >= 0
                                                              else flags))
    return flags


def _check_mode(mode: "Any") -> int:
    mode = _index(mode, "mode")
    if not 0 <= mode <= 0o777:
        raise ValueError("mode must be between 0 and 0o777, not %#o" % mode)
    return mode


def _timeout(timeout: "Any") -> "Optional[float]":
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number or None, not %s" % type(timeout).__name__)
    if timeout != timeout or timeout < 0:
        raise ValueError("timeout must be >= 0 (or None to wait forever), not %r" % timeout)
    return float(timeout)


def _random_key() -> int:
    import random
    return random.randint(1, 0x7FFFFFFF)


# --- IPC_STAT / IPC_SET through the declared layouts ---------------------------------------------
def _ctl(kind: str, ident: int, cmd: int, buf: "Any") -> int:
    """shmctl / semctl / msgctl with a struct buffer (semctl's is its variadic fourth argument)."""
    if kind == "shm":
        return int(_shmctl(ident, cmd, ctypes.byref(buf)))
    if kind == "sem":
        return int(_semctl(ident, 0, cmd, ctypes.byref(buf)))
    return int(_libc.msgctl(ident, cmd, ctypes.byref(buf)))


def _unpack(kind: str, raw: "Any") -> "Dict[str, int]":
    out = {}
    for name, (offset, code) in _LAYOUT[kind][1].items():
        if code == "T":
            low, high = struct.unpack_from("=II", raw, offset)
            out[name] = (high << 32) | low
        else:
            out[name] = struct.unpack_from("=" + code, raw, offset)[0]
    return out


_selfchecked = False


def _stat(kind: str, ident: int) -> "Dict[str, int]":
    """IPC_STAT of an object, decoded with the declared layout."""
    if not _selfchecked:
        _selfcheck()
    buf = ctypes.create_string_buffer(_LAYOUT[kind][0])
    _check(_ctl(kind, ident, _IPC_STAT, buf), lambda: "%sctl(id=%d, IPC_STAT)" % (kind, ident))
    return _unpack(kind, buf.raw)


def _set(kind: str, ident: int, field: str, value: int) -> None:
    """IPC_SET one of uid/gid/mode (read-modify-write of the kernel's own struct)."""
    buf = ctypes.create_string_buffer(_LAYOUT[kind][0])
    what = lambda: "%sctl(id=%d, IPC_SET %s=%d)" % (kind, ident, field, value)  # noqa: E731
    _check(_ctl(kind, ident, _IPC_STAT, buf), what)
    offset, code = _LAYOUT[kind][1][field]
    struct.pack_into("=" + code, buf, offset, value)
    _check(_ctl(kind, ident, _IPC_SET, buf), what)


def _selfcheck() -> None:
    """Check the declared layouts against the kernel once, on a private segment and set.

    A wrong layout does not fail loudly (it reads plausible garbage), so before any layout is
    trusted: a fresh private segment must report its size, our pid and one attachment, and a
    fresh private set its number of semaphores."""
    global _selfchecked
    size = 3 * PAGE_SIZE + 123
    shmid = _check(_shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600), lambda: "shmget(IPC_PRIVATE)")
    try:
        address = _shmat(shmid, None, 0)
        if address == _MAP_FAILED:
            raise _error(_get_errno(), "shmat(id=%d)" % shmid)
        try:
            buf = ctypes.create_string_buffer(_LAYOUT["shm"][0])
            _check(_shmctl(shmid, _IPC_STAT, ctypes.byref(buf)), lambda: "shmctl(IPC_STAT)")
            shm = _unpack("shm", buf.raw)
        finally:
            _shmdt(address)
    finally:
        _shmctl(shmid, _IPC_RMID, None)
    semid = _check(_semget(IPC_PRIVATE, 3, IPC_CREAT | 0o600), lambda: "semget(IPC_PRIVATE)")
    try:
        buf = ctypes.create_string_buffer(_LAYOUT["sem"][0])
        _check(_semctl(semid, 0, _IPC_STAT, ctypes.byref(buf)), lambda: "semctl(IPC_STAT)")
        sem = _unpack("sem", buf.raw)
    finally:
        _semctl(semid, 0, _IPC_RMID)
    expected = (size, os.getpid(), 1, 0o600, 3, 0)
    seen = (shm["size"], shm["cpid"], shm["nattch"], shm["mode"] & 0o777, sem["nsems"],
            sem["otime"])
    if seen != expected:
        raise InternalError(0, "struct layout self-check failed for ABI %s: expected (size, cpid, "
                            "nattch, mode, nsems, otime) = %r, kernel gave %r" % (ABI, expected, seen))
    _selfchecked = True


class _ReadOnly(object):
    """A read-only attribute whose error text is the C extension's ('attribute ... is not writable')."""

    def __init__(self, getter: "Callable[[Any], Any]", message: "Optional[str]" = None) -> None:
        self.getter = getter
        self.message = message
        self.__doc__ = getter.__doc__

    def __set_name__(self, owner: "Any", name: str) -> None:
        # An alias (`pid = last_pid = ...`) keeps the first, documented, name.
        self.name = getattr(self, "name", name)

    def __get__(self, obj: "Any", cls: "Any" = None) -> "Any":
        if obj is None:
            return self
        return self.getter(obj)

    def __set__(self, obj: "Any", value: "Any") -> None:
        cls = type(obj)
        raise AttributeError(self.message or "attribute '%s' of '%s.%s' objects is not writable"
                             % (self.name, cls.__module__, cls.__qualname__))


def _kind_field(field: str, doc: str) -> _ReadOnly:
    """A read-only attribute read from IPC_STAT of the object's kind."""
    def getter(self: "Any") -> int:
        return _stat(self._kind, self._id)[field]
    getter.__doc__ = doc
    return _ReadOnly(getter)


class _Permissions(object):
    """uid, gid, mode (settable through IPC_SET) and cuid, cgid, shared by every IPC object."""

    _kind = ""
    _id = -1

    id = _ReadOnly(lambda self: self._id, "readonly attribute")
    cuid = _kind_field("cuid", "The creator's user id.")
    cgid = _kind_field("cgid", "The creator's group id.")

    @property
    def uid(self) -> int:
        """The owner's user id (settable: IPC_SET)."""
        return _stat(self._kind, self._id)["uid"]

    @uid.setter
    def uid(self, value: int) -> None:
        _set(self._kind, self._id, "uid", _index(value, "uid"))

    @property
    def gid(self) -> int:
        """The owner's group id (settable: IPC_SET)."""
        return _stat(self._kind, self._id)["gid"]

    @gid.setter
    def gid(self, value: int) -> None:
        _set(self._kind, self._id, "gid", _index(value, "gid"))

    @property
    def mode(self) -> int:
        """The permission bits, 0..0o777 (settable: IPC_SET)."""
        return _stat(self._kind, self._id)["mode"] & 0o777

    @mode.setter
    def mode(self, value: int) -> None:
        _set(self._kind, self._id, "mode", _check_mode(value))



# --- Shared memory -------------------------------------------------------------------------------
_PROT_READ, _PROT_WRITE = 1, 2
_MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS = 0x02, 0x10, 0x20
_MADV_POPULATE_READ, _MADV_POPULATE_WRITE = 22, 23
_BUSY = ("cannot detach: views into the segment are still alive (buf, slices of it, as_ctypes "
         "objects, numpy arrays); release them first")


class _Py_buffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


def _address_of(m: "mmap.mmap") -> int:
    """The address of an mmap's memory (our reservation for SHM_REMAP)."""
    try:
        probe = ctypes.c_char.from_buffer(m)
    except TypeError:
        # CPython's from_buffer wants a writable buffer; a read-only mmap's address comes from the
        # buffer protocol itself (PyPy's from_buffer takes read-only buffers, so never gets here).
        view = _Py_buffer()
        get, release = ctypes.pythonapi.PyObject_GetBuffer, ctypes.pythonapi.PyBuffer_Release
        get.argtypes, get.restype = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int], ctypes.c_int
        release.argtypes, release.restype = [ctypes.c_void_p], None
        get(m, ctypes.byref(view), 0)
        address = view.buf
        release(ctypes.byref(view))
        return int(address)
    address = ctypes.addressof(probe)
    del probe
    return address


def _hugepage_size() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2 * 1024 * 1024


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def _overlay(address: int, length: int, readonly: bool) -> None:
    """Detach by mapping private zero memory over the segment (MAP_FIXED): the kernel drops the
    attachment, and a stale view can only reach private memory - never the segment, never a hole."""
    prot = _PROT_READ if readonly else _PROT_READ | _PROT_WRITE
    if _libc.mmap(address, length, prot, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED, -1, 0) \
            == _MAP_FAILED:
        raise _error(_get_errno(), "mmap(%#x, %d, MAP_FIXED) over a detached segment"
                     % (address, length))


def _release_raw(state: "List[Any]") -> None:
    """Finalizer of an attachment at a caller-chosen address: runs once no view can reach it."""
    address, length, overlaid = state
    if overlaid:
        _libc.munmap(address, length)
    else:
        _shmdt(address)


class SharedMemory(_Permissions):
    """A System V shared memory segment (shmget), attached by the constructor (shmat).

    ``buf`` is a zero-copy memoryview of the segment; ``read``/``write``/``read_into`` copy.
    Leaving a ``with`` block detaches (never removes).  ``remove()`` marks the segment for
    destruction at its last detach."""

    _kind = "shm"
    # Sentinels, so that detach(), __repr__ and garbage collection work on a half-built object.
    _key = IPC_PRIVATE   # type: int
    _size = 0
    _align = PAGE_SIZE
    _view = None         # type: Optional[memoryview]  # exactly `size` bytes; read-only if SHM_RDONLY
    _owner = None        # type: Any  # owns the mapping: an mmap, or a ctypes array (explicit address)
    _base = 0            # offset of the segment in _owner
    _address = None      # type: Optional[int]
    _readonly = False
    _raw_state = None    # type: Optional[List[Any]]

    def __init__(self, key: "Optional[int]", flags: int = 0, mode: int = 0o600, size: int = 0,
                 init_character: "Optional[bytes]" = b" ") -> None:
        flags = _check_flags(flags, IPC_CREX | SHM_HUGETLB | SHM_NORESERVE | _SHM_HUGE_MASK,
                             "SharedMemory")
        mode = _check_mode(mode)
        size = _index(size, "size")
        if size < 0:
            raise ValueError("size must be >= 0, not %d" % size)
        if init_character is not None and (not isinstance(init_character, (bytes, bytearray))
                                           or len(init_character) != 1):
            raise ValueError("init_character must be one byte (bytes of length 1) or None")
        exclusive = flags & IPC_CREX == IPC_CREX
        if size == 0 and exclusive:
            size = PAGE_SIZE          # sysv_ipc's documented default for IPC_CREX
        if flags & SHM_HUGETLB:
            self._align = _hugepage_size()
        if key is None:
            if not exclusive:
                raise ValueError("key=None (a random unused key) needs flags=IPC_CREX")
            for _ in range(1000):
                ckey = _random_key()
                ident = _shmget_fast(ckey, _c_size_t(size), flags | mode)
                if ident >= 0 or _get_errno() != _errno.EEXIST:
                    break
            self._key = ckey
        else:
            ckey = _key_t(key)
            ident = _shmget_fast(ckey, _c_size_t(size), flags | mode)
            self._key = key
        if ident < 0:
            _check(ident, lambda: "shmget(key=%s, size=%d, flags=%#o)"
                   % (_fmt_key(ckey), size, flags), gone=False)
        self._id = ident
        # A segment this call created has exactly the size asked for (shm_segsz is not rounded);
        # an opened one may be larger than asked, so ask the kernel.  Segments never resize.
        created = exclusive or ckey == IPC_PRIVATE     # IPC_PRIVATE always makes a new segment
        self._size = size if created else _stat("shm", self._id)["size"]
        try:
            self.attach()
        except PermissionsError:
            # Read permission only (e.g. a 0o444 segment of another user): attach read-only rather
            # than refuse the object; buf.readonly tells, and write() raises AccessError.
            self.attach(None, SHM_RDONLY)
        if exclusive and init_character is not None and not self._readonly:
            ctypes.memset(self._address, init_character[0], self._size)

    def __repr__(self) -> str:
        where = "at %#x%s" % (self._address, " read-only" if self._readonly else "") \
            if self._view is not None else "detached"
        return "<%s key=%s id=%d size=%d %s>" % (type(self).__name__, _fmt_key(_key_t(self._key)),
                                                self._id, self._size, where)

    def __enter__(self) -> "SharedMemory":
        return self

    def __exit__(self, *exc: "Any") -> None:
        if self._view is not None:
            self.detach()

    # -- attach / detach ------------------------------------------------------------------------
    def attach(self, address: "Optional[int]" = None, flags: int = 0) -> None:
        """Wrapper around ``shmat()``: attach the segment (SHM_RDONLY: read-only).

        Without an address the segment lands in an anonymous mmap reserved for it (SHM_REMAP),
        so the mmap's export counting guards every view.  Already attached: detaches first."""
        flags = _check_flags(flags, SHM_RDONLY | SHM_RND | SHM_REMAP | SHM_EXEC, "attach")
        if self._view is not None:
            self.detach()
        if not self._size:      # unknown yet (segments are at least 1 byte and never resize)
            self._size = _stat("shm", self._id)["size"]
        if address is None:
            if flags & SHM_REMAP:
                raise ValueError("SHM_REMAP needs an address")
            self._attach_reserved(flags & ~SHM_RND)
        else:
            self._attach_at(_index(address, "address"), flags)

    def _attach_reserved(self, flags: int) -> None:
        import mmap
        readonly = bool(flags & SHM_RDONLY)
        prot = _PROT_READ if readonly else _PROT_READ | _PROT_WRITE
        align = self._align
        while True:
            length = -(-(self._size or 1) // align) * align         # _round_up, inlined
            reservation = mmap.mmap(-1, length + align - PAGE_SIZE, flags=mmap.MAP_PRIVATE,
                                    prot=prot)
            start = _address_of(reservation)
            address = start if align == PAGE_SIZE else _round_up(start, align)
            result = _shmat_fast(self._id, _c_void_p(address), flags | SHM_REMAP)
            if result != _MAP_FAILED:
                break
            err = _get_errno()
            reservation.close()
            if err == _errno.EINVAL and align == PAGE_SIZE:
                align = _hugepage_size()   # an existing SHM_HUGETLB segment needs huge alignment
                continue
            raise _error(err, "shmat(id=%d, flags=%#o)" % (self._id, flags),
                         RemovedError if err == _errno.EINVAL else None)
        self._align, self._owner, self._base = align, reservation, address - start
        self._address, self._readonly, self._raw_state = address, readonly, None
        self._view = memoryview(reservation)[self._base:self._base + self._size]

    def _attach_at(self, address: int, flags: int) -> None:
        readonly = bool(flags & SHM_RDONLY)
        if readonly and not hasattr(memoryview, "toreadonly"):
            raise NotImplementedError("SHM_RDONLY with an explicit address needs Python 3.8+ "
                                      "(memoryview.toreadonly); attach without an address")
        result = _shmat(self._id, address, flags)
        if result == _MAP_FAILED:
            raise _error(_get_errno(), "shmat(id=%d, address=%#x, flags=%#o)"
                         % (self._id, address, flags))
        length = _round_up(max(self._size, 1), PAGE_SIZE)
        owner = (ctypes.c_ubyte * length).from_address(result)
        state = [result, length, False]
        import weakref
        weakref.finalize(owner, _release_raw, state)
        view = memoryview(owner).cast("B")[:self._size]
        self._align, self._owner, self._base = PAGE_SIZE, owner, 0
        self._address, self._readonly, self._raw_state = result, readonly, state
        self._view = view.toreadonly() if readonly else view  # type: ignore[attr-defined]

    def detach(self) -> None:
        """Wrapper around ``shmdt()``.  Raises BufferError (and stays attached, every view valid)
        while a view into the segment is alive; NotAttachedError if not attached."""
        if self._view is None:
            raise self._not_attached("detach")
        if not _CPYTHON:
            # PyPy's mmap counts no exports: replace the segment by private memory instead.
            length = _round_up(max(self._size, 1), self._align)
            _overlay(self._address, length, self._readonly)  # type: ignore[arg-type]
            if self._raw_state is not None:
                self._raw_state[2] = True
            self._view = self._owner = self._address = None
            return
        # CPython: `buf` hands out self._view itself, so a reference beyond ours (and
        # getrefcount's argument) is a live view; a failed release() means exports from it.
        if sys.getrefcount(self._view) > 2:
            raise BufferError(_BUSY)
        try:
            self._view.release()
        except BufferError:
            raise BufferError(_BUSY) from None
        owner = self._owner
        try:
            if self._raw_state is None:
                owner.close()          # raises BufferError while any slice / from_buffer lives
            elif sys.getrefcount(owner) > 3:
                raise BufferError(_BUSY)
        except BufferError:
            view = memoryview(owner)
            if self._raw_state is not None:
                view = view.cast("B")
            view = view[self._base:self._base + self._size]
            self._view = view.toreadonly() if self._readonly and self._raw_state else view
            raise BufferError(_BUSY) from None
        del owner
        self._view = self._owner = self._address = None   # raw: the finalizer runs shmdt()

    def _not_attached(self, what: str) -> NotAttachedError:
        exc = NotAttachedError(_errno.EINVAL, "not attached")
        exc.call = "%s(id=%d)" % (what, self._id)
        return exc

    # -- data -----------------------------------------------------------------------------------
    @property
    def buf(self) -> memoryview:
        """The whole segment as a zero-copy memoryview (format 'B', read-only for SHM_RDONLY)."""
        view = self._view
        if view is None:
            raise self._not_attached("buf")
        return view

    def __buffer__(self, flags: int) -> memoryview:   # PEP 688 (3.12+): memoryview(shm)
        return self.buf

    def read(self, byte_count: int = 0, offset: int = 0) -> bytes:
        """Copy out ``byte_count`` bytes (0: to the end) from ``offset``; clipped at the end."""
        view = self._view
        if view is None:
            raise self._not_attached("read")
        size = self._size
        if offset < 0 or offset >= size:
            raise ValueError("offset must be between 0 and %d, not %r" % (size - 1, offset))
        if byte_count < 0:
            raise ValueError("byte_count must be >= 0, not %r" % (byte_count,))
        end = offset + byte_count
        if byte_count == 0 or end > size:
            end = size
        return view[offset:end].tobytes()

    def write(self, s: "Union[bytes, str, Any]", offset: int = 0) -> None:
        """Copy ``s`` (bytes-like; str is encoded UTF-8) into the segment at ``offset``."""
        view = self._view
        if view is None:
            raise self._not_attached("write")
        if self._readonly:
            exc = AccessError(_errno.EACCES, "segment attached read-only (SHM_RDONLY)")
            exc.call = "write(id=%d)" % self._id
            raise exc
        if isinstance(s, str):
            s = s.encode("utf-8")
        elif not isinstance(s, (bytes, bytearray)):
            s = memoryview(s).cast("B")
        end = offset + len(s)
        if offset < 0 or end > self._size:
            raise ValueError("writing %d bytes at offset %r does not fit in %d bytes"
                             % (len(s), offset, self._size))
        view[offset:end] = s

    def read_into(self, buffer: "Any", offset: int = 0) -> int:
        """Copy from ``offset`` into a writable ``buffer`` (memcpy speed, no temporary);
        returns the number of bytes copied: min(len(buffer), size - offset)."""
        view = self._view
        if view is None:
            raise self._not_attached("read_into")
        size = self._size
        if offset < 0 or offset > size:
            raise ValueError("offset must be between 0 and %d, not %r" % (size, offset))
        with memoryview(buffer) as dest:
            if dest.readonly:
                raise TypeError("read_into() needs a writable buffer")
            with dest.cast("B") as flat:
                count = min(flat.nbytes, size - offset)
                flat[:count] = view[offset:offset + count]
        return count

    def as_ctypes(self, ctype: "Any" = None, offset: int = 0) -> "Any":
        """The segment as a ctypes object: a byte array (default) or an instance of ``ctype``
        (a Structure mirroring a C struct, ``c_uint32 * 16``, ...) at ``offset``; bounds-checked.
        The object keeps the mapping alive (detach() raises BufferError while it exists)."""
        if self._view is None:
            raise self._not_attached("as_ctypes")
        if self._readonly:
            raise TypeError("the segment is attached read-only and ctypes objects are always "
                            "writable; use ctype.from_buffer_copy(shm.buf, offset) to copy")
        offset = _index(offset, "offset")
        if not 0 <= offset <= self._size:
            raise ValueError("offset must be between 0 and %d, not %d" % (self._size, offset))
        if ctype is None:
            ctype = ctypes.c_ubyte * (self._size - offset)
        need = ctypes.sizeof(ctype)
        if offset + need > self._size:
            raise ValueError("%s (%d bytes) at offset %d does not fit in %d bytes"
                             % (getattr(ctype, "__name__", ctype), need, offset, self._size))
        return ctype.from_buffer(self._owner, self._base + offset)

    def prefault(self) -> None:
        """Fault every page in now (madvise MADV_POPULATE_WRITE, Linux 5.14+; else one read per
        page), so that first touches later do not pay ~2 us a page.  Nothing is written."""
        view = self.buf
        length = _round_up(max(self._size, 1), self._align)
        advice = _MADV_POPULATE_READ if self._readonly else _MADV_POPULATE_WRITE
        if _libc.madvise(self._address, length, advice) != 0:
            view[::PAGE_SIZE].tobytes()

    # -- control --------------------------------------------------------------------------------
    def remove(self) -> None:
        """Wrapper around ``shmctl(IPC_RMID)``: destroy at the last detach (does not detach)."""
        if _shmctl_fast(self._id, _IPC_RMID, None) != 0:
            _check(-1, lambda: "shmctl(id=%d, IPC_RMID)" % self._id)

    def lock(self) -> None:
        """Wrapper around ``shmctl(SHM_LOCK)``: keep the segment in RAM (CAP_IPC_LOCK or
        RLIMIT_MEMLOCK)."""
        _check(_shmctl(self._id, _SHM_LOCK, None), lambda: "shmctl(id=%d, SHM_LOCK)" % self._id)

    def unlock(self) -> None:
        """Wrapper around ``shmctl(SHM_UNLOCK)``."""
        _check(_shmctl(self._id, _SHM_UNLOCK, None),
               lambda: "shmctl(id=%d, SHM_UNLOCK)" % self._id)

    key = _ReadOnly(lambda self: self._key)
    size = _ReadOnly(lambda self: self._size)
    address = _ReadOnly(lambda self: self._address)
    attached = _ReadOnly(lambda self: self._view is not None)
    readonly = _ReadOnly(lambda self: self._readonly)
    last_attach_time = _kind_field("atime", "Last shmat() by anyone (shm_atime).")
    last_detach_time = _kind_field("dtime", "Last shmdt() by anyone (shm_dtime).")
    last_change_time = _kind_field("ctime", "Last IPC_SET (shm_ctime).")
    creator_pid = _kind_field("cpid", "The creator's pid (shm_cpid).")
    last_pid = _kind_field("lpid", "The pid of the last shmat()/shmdt() (shm_lpid).")
    number_attached = _kind_field("nattch", "The number of attachments (shm_nattch).")
    removed = _ReadOnly(lambda self: bool(_stat("shm", self._id)["mode"] & _SHM_DEST))
    locked = _ReadOnly(lambda self: bool(_stat("shm", self._id)["mode"] & _SHM_LOCKED))


# --- Semaphores ----------------------------------------------------------------------------------
_INIT_GRACE = 2.0   # seconds a fresh set may stay uninitialised before an opener stops waiting
_monotonic = time.monotonic
_VALUE_ERROR = "The semaphore's value must remain between 0 and SEMVMX"


def _sem_value(value: "Any") -> int:
    value = _index(value, "semaphore value")
    if not 0 <= value <= SEMAPHORE_VALUE_MAX:
        raise ValueError(_VALUE_ERROR)
    return value


def _sem_delta(delta: "Any") -> int:
    delta = abs(_index(delta, "delta"))
    if delta == 0:
        raise ValueError("delta must not be 0")
    if delta > SEMAPHORE_VALUE_MAX:
        raise ValueError("delta must be at most SEMVMX (%d)" % SEMAPHORE_VALUE_MAX)
    return delta


def _semop_wait(semid: int, sops: "Any", nsops: int, timeout: "Optional[float]",
                describe: "Callable[[], str]") -> None:
    """semop / semtimedop with EINTR retried on the remaining time.

    Linux never restarts semop after a signal handler; ctypes returns EINTR, the Python handler
    runs at the next bytecode, and an exception it raises (KeyboardInterrupt) leaves this loop."""
    ref, count = ctypes.byref(sops), ctypes.c_size_t(nsops)
    if timeout is None:
        while _semop_fast(semid, ref, count) != 0:
            err = _get_errno()
            if err != _errno.EINTR:
                raise _error(err, describe(), RemovedError if err == _errno.EINVAL else None)
        return
    nowait = any(sop.sem_flg & IPC_NOWAIT for sop in sops)
    deadline = _monotonic() + timeout
    if _semtimedop_fast is None:
        return _semop_poll(semid, sops, count, deadline, nowait, describe)
    spec = _timespec()
    spec_ref = ctypes.byref(spec)
    while True:
        remaining = max(0.0, deadline - _monotonic())
        spec.tv_sec = int(remaining)
        spec.tv_nsec = int((remaining - spec.tv_sec) * 1e9)
        if _semtimedop_fast(semid, ref, count, spec_ref) == 0:
            return
        err = _get_errno()
        if err == _errno.EINTR:
            continue
        cls = None
        if err == _errno.EAGAIN:
            cls = WouldBlockError if nowait else TimedOutError
        elif err == _errno.EINVAL:
            cls = RemovedError
        raise _error(err, describe(), cls)


def _semop_poll(semid: int, sops: "Any", count: "Any", deadline: float, nowait: bool,
                describe: "Callable[[], str]") -> None:
    """The timeout fallback where libc has no semtimedop: IPC_NOWAIT tries, bounded sleeps."""
    trial = type(sops)()
    ctypes.memmove(trial, sops, ctypes.sizeof(sops))
    for sop in trial:
        sop.sem_flg |= IPC_NOWAIT
    delay = 0.0005
    while _semop_fast(semid, ctypes.byref(trial), count) != 0:
        err = _get_errno()
        if err == _errno.EAGAIN and not nowait and _monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - _monotonic())))
            delay = min(delay * 2, 0.02)
            continue
        if err == _errno.EINTR:
            continue
        cls = None
        if err == _errno.EAGAIN:
            cls = WouldBlockError if nowait else TimedOutError
        elif err == _errno.EINVAL:
            cls = RemovedError
        raise _error(err, describe(), cls)


def _sem_initialise(semid: int, values: "List[int]") -> None:
    """Set the values of a set we just created, then make sem_otime non-zero (FACTS §6).

    SETVAL/SETALL leave sem_otime at 0; one semop that adds and takes back 1 (atomically, so the
    value never changes) marks the set initialised for everyone who opens it concurrently."""
    if any(values):
        array = (ctypes.c_ushort * len(values))(*values)
        _check(_semctl(semid, 0, _SETALL, ctypes.byref(array)),
               lambda: "semctl(id=%d, SETALL)" % semid)
    step = 1 if values[0] < SEMAPHORE_VALUE_MAX else -1
    marks = (_sembuf * 2)((0, step, IPC_NOWAIT), (0, -step, IPC_NOWAIT))
    _check(_semop(semid, marks, 2), lambda: "semop(id=%d, initialised mark)" % semid)


def _await_initialised(semid: int) -> None:
    """Wait (bounded) until the creator of a set marked it initialised (sem_otime != 0).

    A set that never saw a semop and was created (or last SETVAL'd) more than _INIT_GRACE
    seconds ago is taken as it is: a foreign program's set must not hang the opener."""
    delay, limit = 0.0005, _monotonic() + _INIT_GRACE + 1.0
    while True:
        stat = _stat("sem", semid)
        if stat["otime"] or stat["ctime"] + _INIT_GRACE <= time.time() or _monotonic() > limit:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _open_set(key: "Any", nsems: int, flags: int, mode: int,
              values: "List[int]") -> "Tuple[int, int]":
    """semget with the race-free create-or-open protocol; returns (id, key as reported)."""
    describe = lambda: "semget(key=%s, nsems=%d, flags=%#o)" % (_fmt_key(ckey), nsems, flags)  # noqa
    if key is None:
        if flags & IPC_CREX != IPC_CREX:
            raise ValueError("key=None (a random unused key) needs flags=IPC_CREX")
        for _ in range(1000):
            ckey = _random_key()
            ident = _semget(ckey, nsems, IPC_CREX | mode)
            if ident >= 0 or _get_errno() != _errno.EEXIST:
                break
        _check(ident, describe, gone=False)
        return _initialise_new(ident, values), ckey
    ckey = _key_t(key)
    for _ in range(100):    # a set removed between our two semget calls: try again
        if flags & IPC_CREAT:
            ident = _semget(ckey, nsems, IPC_CREX | mode)
            if ident >= 0:
                return _initialise_new(ident, values), key
            if _get_errno() != _errno.EEXIST or flags & IPC_EXCL:
                _check(-1, describe, gone=False)
        ident = _semget(ckey, nsems, 0)
        if ident >= 0:
            _await_initialised(ident)
            return ident, key
        if not flags & IPC_CREAT or _get_errno() != _errno.ENOENT:
            _check(-1, describe, gone=False)
    raise _error(_errno.EAGAIN, describe())


def _initialise_new(ident: int, values: "List[int]") -> int:
    try:
        _sem_initialise(ident, values)
    except BaseException:
        _semctl(ident, 0, _IPC_RMID)    # ours, never seen initialised: do not leave it behind
        raise
    return ident


class _SemaphoreOps(object):
    """acquire/release/Z and value/block/undo of semaphore `index` of set `id`.

    The three sembufs are preallocated and wrapped in byref() once; the undeclared semop
    handle is called directly on the fast path (FACTS §8); errno is read only on failure.
    nsops goes as a plain int 1 (a C int: a c_size_t object would cost a conversion object
    per call); only the kernel reads it, as an unsigned int, and libffi widens it anyway."""

    _id = -1
    _index = 0
    _block = True
    _undo = False

    def _setup(self, ident: int, index: int) -> None:
        self._id, self._index = ident, index
        self._p, self._v, self._z = _sembuf(index, -1, 0), _sembuf(index, 1, 0), _sembuf(index, 0, 0)
        self._p_ref, self._v_ref, self._z_ref = (ctypes.byref(self._p), ctypes.byref(self._v),
                                                 ctypes.byref(self._z))
        self._flags = 0

    def _set_flags(self) -> None:
        nowait = 0 if self._block else IPC_NOWAIT
        self._flags = (SEM_UNDO if self._undo else 0) | nowait
        self._p.sem_flg = self._v.sem_flg = self._flags
        self._z.sem_flg = nowait

    def _wait(self, op: int, timeout: "Any", what: str) -> None:
        timeout = _timeout(timeout)
        flags = self._flags if op else self._flags & ~SEM_UNDO
        sops = (_sembuf * 1)((self._index, op, flags))
        _semop_wait(self._id, sops, 1, timeout, lambda: "%s(id=%d, index=%d, delta=%d, timeout=%r)"
                    % (what, self._id, self._index, op, timeout))

    def acquire(self, timeout: "Optional[float]" = None, delta: int = 1) -> None:
        """Wrapper around ``semop()`` / ``semtimedop()``: wait until the value is >= |delta|,
        then subtract it.  timeout None waits forever, 0 tries once, > 0 waits at most that
        long; BusyError (also TimeoutError / BlockingIOError) when it cannot."""
        if timeout is None and delta == 1 and _semop_fast(self._id, self._p_ref, 1) == 0:
            return
        self._wait(-_sem_delta(delta), timeout, "acquire")

    def release(self, delta: int = 1) -> None:
        """Wrapper around ``semop()``: add |delta| to the value (never blocks)."""
        if delta == 1 and _semop_fast(self._id, self._v_ref, 1) == 0:
            return
        self._wait(_sem_delta(delta), None, "release")

    def Z(self, timeout: "Optional[float]" = None) -> None:
        """Wrapper around ``semop()`` with sem_op 0: wait until the value is zero."""
        if timeout is None and _semop_fast(self._id, self._z_ref, 1) == 0:
            return
        self._wait(0, timeout, "Z")

    P = acquire
    V = release

    def _getctl(self, cmd: int, name: str) -> int:
        return _check(_semctl(self._id, self._index, cmd),
                      lambda: "semctl(id=%d, index=%d, %s)" % (self._id, self._index, name))

    @property
    def value(self) -> int:
        """The value (semctl GETVAL); settable (SETVAL), 0..SEMAPHORE_VALUE_MAX."""
        return self._getctl(_GETVAL, "GETVAL")

    @value.setter
    def value(self, value: int) -> None:
        value = _sem_value(value)
        _check(_semctl(self._id, self._index, _SETVAL, _semun_val(value)),
               lambda: "semctl(id=%d, index=%d, SETVAL %d)" % (self._id, self._index, value))

    @property
    def block(self) -> bool:
        """False: acquire/Z raise BusyError instead of waiting (IPC_NOWAIT)."""
        return self._block

    @block.setter
    def block(self, value: bool) -> None:
        self._block = bool(value)
        self._set_flags()

    @property
    def undo(self) -> bool:
        """True: the kernel undoes this process's changes when it exits (SEM_UNDO)."""
        return self._undo

    @undo.setter
    def undo(self, value: bool) -> None:
        self._undo = bool(value)
        self._set_flags()

    # sysv_ipc's names, and the kernel's (GETPID, GETNCNT, GETZCNT) as short aliases.
    last_pid = pid = _ReadOnly(lambda self: self._getctl(_GETPID, "GETPID"))
    waiting_for_nonzero = ncnt = _ReadOnly(lambda self: self._getctl(_GETNCNT, "GETNCNT"))
    waiting_for_zero = zcnt = _ReadOnly(lambda self: self._getctl(_GETZCNT, "GETZCNT"))

    def __enter__(self) -> "Any":
        self.acquire()
        return self

    def __exit__(self, *exc: "Any") -> None:
        self.release()


class Semaphore(_Permissions, _SemaphoreOps):
    """A System V semaphore: a set of one (semget(key, 1)), as in sysv_ipc.

    Creating initialises the value and marks the set initialised; opening an existing one
    (IPC_CREAT included) never changes its value and waits, bounded, for its creator."""

    _kind = "sem"
    _key = IPC_PRIVATE   # type: int

    def __init__(self, key: "Optional[int]", flags: int = 0, mode: int = 0o600,
                 initial_value: int = 0) -> None:
        flags = _check_flags(flags, IPC_CREX, "Semaphore")
        mode = _check_mode(mode)
        initial_value = _sem_value(initial_value)
        ident, self._key = _open_set(key, 1, flags, mode, [initial_value])
        self._setup(ident, 0)

    def __repr__(self) -> str:
        return "<%s key=%s id=%d>" % (type(self).__name__, _fmt_key(_key_t(self._key)), self._id)

    def remove(self) -> None:
        """Wrapper around ``semctl(IPC_RMID)``; processes waiting on it get EIDRM."""
        _check(_semctl(self._id, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % self._id)

    key = _ReadOnly(lambda self: self._key)
    o_time = _kind_field("otime", "The last semop() on the set (sem_otime).")
    last_change_time = _kind_field("ctime", "The last change of the set (sem_ctime).")


class SemaphoreMember(_SemaphoreOps):
    """Semaphore `index` of a SemaphoreSet: acquire/release/Z/value/block/undo, ncnt/zcnt/pid."""

    def __init__(self, semset: "SemaphoreSet", index: int) -> None:
        self.set = semset
        self._setup(semset.id, index)

    index = _ReadOnly(lambda self: self._index)

    def __repr__(self) -> str:
        return "<SemaphoreMember %d of set id=%d>" % (self._index, self._id)


class SemaphoreSet(_Permissions):
    """A System V semaphore set (semget(key, nsems)); opens a foreign program's set too.

    ``s[i]`` is a member that behaves like a Semaphore; ``op()`` applies several operations
    atomically (one semop); ``values`` reads/writes all values (GETALL/SETALL)."""

    _kind = "sem"
    _key = IPC_PRIVATE   # type: int

    def __init__(self, key: "Optional[int]", nsems: int = 0, flags: int = 0, mode: int = 0o600,
                 initial_values: "Union[None, int, Sequence[int]]" = None) -> None:
        flags = _check_flags(flags, IPC_CREX, "SemaphoreSet")
        mode = _check_mode(mode)
        nsems = _index(nsems, "nsems")
        if nsems < 0:
            raise ValueError("nsems must be >= 0, not %d" % nsems)
        if initial_values is None or isinstance(initial_values, int):
            values = [_sem_value(initial_values or 0)] * max(nsems, 1)
        else:
            values = [_sem_value(v) for v in initial_values]
            if nsems == 0:
                nsems = len(values)
            if len(values) != nsems:
                raise ValueError("%d initial values for %d semaphores" % (len(values), nsems))
        if flags & IPC_CREAT and nsems == 0:
            raise ValueError("creating a set needs nsems >= 1 (0 opens an existing set)")
        ident, self._key = _open_set(key, nsems, flags, mode, values)
        self._id = ident
        self._nsems = _stat("sem", ident)["nsems"]
        self._members = [None] * self._nsems   # type: List[Optional[SemaphoreMember]]

    def __repr__(self) -> str:
        return "<SemaphoreSet key=%s id=%d nsems=%d>" % (_fmt_key(_key_t(self._key)), self._id,
                                                         self._nsems)

    def __len__(self) -> int:
        return self._nsems

    def __getitem__(self, index: int) -> SemaphoreMember:
        index = _index(index, "index")
        if index < 0:
            index += self._nsems
        if not 0 <= index < self._nsems:
            raise IndexError("semaphore index out of range (set of %d)" % self._nsems)
        member = self._members[index]
        if member is None:
            member = self._members[index] = SemaphoreMember(self, index)
        return member

    def __iter__(self) -> "Iterator[SemaphoreMember]":
        return (self[i] for i in range(self._nsems))

    @property
    def values(self) -> "List[int]":
        """All values (semctl GETALL); settable (SETALL) with a sequence of len(set) values."""
        array = (ctypes.c_ushort * self._nsems)()
        _check(_semctl(self._id, 0, _GETALL, ctypes.byref(array)),
               lambda: "semctl(id=%d, GETALL)" % self._id)
        return list(array)

    @values.setter
    def values(self, values: "Sequence[int]") -> None:
        checked = [_sem_value(v) for v in values]
        if len(checked) != self._nsems:
            raise ValueError("%d values for a set of %d" % (len(checked), self._nsems))
        array = (ctypes.c_ushort * self._nsems)(*checked)
        _check(_semctl(self._id, 0, _SETALL, ctypes.byref(array)),
               lambda: "semctl(id=%d, SETALL)" % self._id)

    def op(self, operations: "Iterable[Sequence[int]]",
           timeout: "Optional[float]" = None) -> None:
        """Wrapper around ``semop()`` / ``semtimedop()``: apply every ``(index, delta[, flags])``
        atomically - all or none.  delta > 0 adds, < 0 waits then subtracts, 0 waits for zero;
        flags: IPC_NOWAIT, SEM_UNDO.  Timeout as in Semaphore.acquire()."""
        ops = [tuple(o) for o in operations]
        if not ops:
            raise ValueError("op() needs at least one operation")
        sops = (_sembuf * len(ops))()
        for sop, operation in zip(sops, ops):
            if len(operation) not in (2, 3):
                raise ValueError("an operation is (index, delta) or (index, delta, flags)")
            index = _index(operation[0], "index")
            delta = _index(operation[1], "delta")
            flags = _check_flags(operation[2] if len(operation) == 3 else 0,
                                 IPC_NOWAIT | SEM_UNDO, "op")
            if not 0 <= index < self._nsems:
                raise IndexError("semaphore index %d out of range (set of %d)"
                                 % (index, self._nsems))
            if abs(delta) > SEMAPHORE_VALUE_MAX:
                raise ValueError("delta must be within +-SEMVMX (%d)" % SEMAPHORE_VALUE_MAX)
            sop.sem_num, sop.sem_op, sop.sem_flg = index, delta, flags
        _semop_wait(self._id, sops, len(ops), _timeout(timeout),
                    lambda: "semop(id=%d, %r, timeout=%r)" % (self._id, ops, timeout))

    def remove(self) -> None:
        """Wrapper around ``semctl(IPC_RMID)``; processes waiting on it get EIDRM."""
        _check(_semctl(self._id, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % self._id)

    key = _ReadOnly(lambda self: self._key)
    o_time = _kind_field("otime", "The last semop() on the set (sem_otime).")
    last_change_time = _kind_field("ctime", "The last change of the set (sem_ctime).")


# --- Module functions ----------------------------------------------------------------------------
def attach(id: int, address: "Optional[int]" = None, flags: int = 0) -> SharedMemory:
    """Attach the existing segment ``id`` (shmat) and return a new SharedMemory for it."""
    mem = SharedMemory.__new__(SharedMemory)
    mem._id = _index(id, "id")
    stat = _stat("shm", mem._id)
    mem._key, mem._size = stat["key"], stat["size"]
    mem.attach(address, flags)
    return mem


def remove_shared_memory(id: int) -> None:
    """Wrapper around ``shmctl(id, IPC_RMID)``."""
    ident = _index(id, "id")
    _check(_shmctl(ident, _IPC_RMID, None), lambda: "shmctl(id=%d, IPC_RMID)" % ident)


def remove_semaphore(id: int) -> None:
    """Wrapper around ``semctl(id, 0, IPC_RMID)``."""
    ident = _index(id, "id")
    _check(_semctl(ident, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % ident)


def ftok(path: str, id: int, silence_warning: bool = False) -> int:
    """Wrapper around ``ftok()``: a key from a file's inode and device, and the low 8 bits of
    ``id``.  Two files can give the same key; warns unless ``silence_warning``."""
    if not silence_warning:
        import warnings
        warnings.warn("Use of ftok() is not recommended: different files can give the same key",
                      stacklevel=2)
    raw = os.fsencode(path)
    key = _libc.ftok(raw, _index(id, "id"))
    if key == -1:
        err = _get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(key)


# --- Command line --------------------------------------------------------------------------------
def _demo() -> int:
    """The seed scenario end to end: program "A" (this process) creates a 32 MiB segment and a
    set of two semaphores; program "B" (a forked child) opens both by key, reads A's data without
    copying, writes a status word back and wakes A.  Everything made is removed."""
    import zlib
    start = _monotonic()

    def say(who: str, text: str) -> None:
        print("%9.3f ms  %-6s %s" % ((_monotonic() - start) * 1e3, who, text))
        sys.stdout.flush()

    size, header = 32 * 1024 * 1024, 64
    mem = SharedMemory(None, IPC_CREX, size=size, init_character=None)
    try:
        sems = SemaphoreSet(None, 2, IPC_CREX)
        try:
            say("A", "created segment key=%s id=%d (%d MiB) and semaphore set key=%s id=%d"
                % (_fmt_key(mem.key), mem.id, size >> 20, _fmt_key(sems.key), sems.id))
            pattern = bytes(range(256)) * 4096
            for offset in range(header, size, len(pattern)):
                chunk = min(len(pattern), size - offset)
                mem.buf[offset:offset + chunk] = pattern[:chunk]
            expected = zlib.crc32(mem.buf[header:])
            say("A", "wrote %d MiB of data, crc32=%08x; forking B" % (size >> 20, expected))
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    with SharedMemory(mem.key) as b_mem:
                        b_sems = SemaphoreSet(sems.key)
                        say("B", "opened both by key; waiting on semaphore 0")
                        b_sems[0].acquire(timeout=10)
                        crc = zlib.crc32(b_mem.buf[header:])     # zero-copy read of A's data
                        say("B", "read %d MiB in place, crc32=%08x" % (size >> 20, crc))
                        struct.pack_into("<II", b_mem.buf, 0, 0xDEADBEEF, crc)
                        say("B", "wrote status 0xDEADBEEF at offset 0; releasing semaphore 1")
                    b_sems[1].release()
                    code = 0
                finally:
                    os._exit(code)
            say("A", "releasing semaphore 0, waiting on semaphore 1")
            sems[0].release()
            sems[1].acquire(timeout=10)
            status, crc = struct.unpack_from("<II", mem.buf, 0)
            _, wait_status = os.waitpid(pid, 0)
            say("A", "woken: status=%#x, B's crc32=%08x (%s), B exited %d"
                % (status, crc, "match" if crc == expected else "MISMATCH", wait_status >> 8))
            ok = status == 0xDEADBEEF and crc == expected and wait_status == 0
        finally:
            sems.remove()
    finally:
        mem.detach()
        mem.remove()
    say("A", "removed the segment and the set: %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv: "Optional[List[str]]" = None) -> int:
    """``python3 sysvshm.py COMMAND``; see --help."""
    import argparse
    parser = argparse.ArgumentParser(prog="sysvshm", description="System V IPC from Python.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="run the A/B scenario: segment + semaphore set, two "
                        "processes, timings; removes what it made")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo()
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
