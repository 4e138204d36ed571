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
"""System V shared memory, semaphores, semaphore sets and message queues through ctypes.

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
import itertools
import operator
import os
import signal as _signal
import struct
import sys
import threading
import time
import weakref

# Import time: typing costs ~9 ms on CPython 3.11 (it pulls in re, enum, collections, ...),
# three times `import ctypes`; the annotations are for type checkers only, so they are strings
# and typing is imported for the checker alone (mypy treats TYPE_CHECKING as true).  mmap,
# random, warnings and weakref are imported where they are used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import mmap
    from typing import (Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, NoReturn,
                        Optional, Sequence, Set, Tuple, Type, TypeVar, Union, overload)
    from typing import Generic as _Generic
    _T = TypeVar("_T")
    _CT = TypeVar("_CT", bound="ctypes._CData")
    _Sem = TypeVar("_Sem", bound="_SemaphoreOps")
else:
    # At run time, without importing typing: `class _ReadOnly(_Generic[_T])` is a plain class.
    class _Subscriptable(object):
        def __getitem__(self, item: object) -> type:
            return object

    _Generic, _T = _Subscriptable(), None

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
    "NotAttachedError", "ExistsError", "NotFoundError", "RemovedError", "AccessError",
    "WouldBlockError", "TimedOutError", "InterruptedCallError", "OutOfRangeError",
    "MessageTooLongError", "SharedMemory", "Semaphore", "SemaphoreSet", "SemaphoreMember",
    "attach", "ftok", "remove_semaphore", "remove_shared_memory",
    "MSG_NOERROR", "MSG_EXCEPT", "MessageQueue", "remove_message_queue",
    "Channel", "ChannelClosedError", "ChannelLayoutError",
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


class _AttachFlag(int):
    """SHM_RDONLY: an int that keeps its identity through `|` and `+`, so that the constructor
    can refuse `SharedMemory(key, IPC_CREAT | SHM_RDONLY)`: there its bit is SHM_NORESERVE."""

    __slots__ = ()

    def __or__(self, other: "Any") -> "Any":
        value = int.__or__(self, other)
        return value if value is NotImplemented else _AttachFlag(value)

    def __add__(self, other: "Any") -> "Any":
        value = int.__add__(self, other)
        return value if value is NotImplemented else _AttachFlag(value)

    def __xor__(self, other: "Any") -> "Any":
        value = int.__xor__(self, other)
        return value if value is NotImplemented else _AttachFlag(value)

    __ror__, __radd__, __rxor__ = __or__, __add__, __xor__


SHM_RDONLY = _AttachFlag(0o10000)
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

# <sys/msg.h>; MSG_EXCEPT is Linux-only (MSG_COPY, also Linux, is not offered).
MSG_NOERROR = 0o10000                # msgrcv: truncate a longer message instead of failing (E2BIG)
MSG_EXCEPT = 0o20000                 # msgrcv with type > 0: the first message *not* of that type

KEY_MIN = -2 ** 31                   # key_t is a 32-bit signed int; ipcs prints it unsigned,
KEY_MAX = 2 ** 32 - 1                # so 0x80000000..0xffffffff are accepted as well.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")   # what mmap.PAGESIZE reads
SEMAPHORE_VALUE_MAX = 32767          # SEMVMX
SEMAPHORE_TIMEOUT_SUPPORTED = True   # semtimedop(), or a bounded polling fallback without it

_CPYTHON = sys.implementation.name == "cpython"

# --- Platform block: kernel struct layouts per ABI ------------------------------------------------
# glibc and musl hand IPC_STAT buffers to the kernel in its "ipc64" layout, so the layouts are the
# kernel's, per architecture (not per word size: x86_64's semid_ds differs from aarch64's).
# Each field is (offset, struct code), read in the running interpreter's byte order; code "T" is a
# 32-bit ABI's time split in two words (low, then high at offset + 4); code "M" is a 32-bit mode_t
# that may arrive in its high half (see s390x below).  Only the fields we read or write are
# declared.  LayoutProbeTest (test_sysvshm.py) checks every entry against what each target's C
# compiler says (sizeof/offsetof, width, signedness) and against a real IPC_STAT decoded in that
# byte order.
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


# mode is a 32-bit mode_t at 20 in every libc checked (glibc: x86_64, i386, armhf, aarch64, s390x;
# musl x86_64).  Where the kernel's own field is a u16 (i386, arm) the next two bytes are zeroed
# padding, so the u32 read is exact; a u16 read is right only on little-endian (s390x: always 0).
_PERM = _perm("I", 20)
_S390X_PERM = _perm("M", 20)
# The 64-bit shmid_ds and msqid_ds (x86_64, asm-generic, s390x alike: only semid_ds differs).
_SHM64 = {"size": (48, "Q"), "atime": (56, "q"), "dtime": (64, "q"), "ctime": (72, "q"),
          "cpid": (80, "i"), "lpid": (84, "i"), "nattch": (88, "Q")}
_MSG64 = {"stime": (48, "q"), "rtime": (56, "q"), "ctime": (64, "q"), "cbytes": (72, "Q"),
          "qnum": (80, "Q"), "qbytes": (88, "Q"), "lspid": (96, "i"), "lrpid": (100, "i")}
_SEM64 = {"otime": (48, "q"), "ctime": (56, "q"), "nsems": (64, "Q")}     # asm-generic
_LAYOUTS = {
    # x86_64 (and x32): semid_ds keeps an unused word after each time.
    "x86_64": {
        "shm": (112, _merge(_PERM, _SHM64)),
        "sem": (104, _merge(_PERM, {"otime": (48, "q"), "ctime": (64, "q"), "nsems": (80, "Q")})),
        "msg": (120, _merge(_PERM, _MSG64)),
    },
    # asm-generic, 64-bit little-endian: aarch64, riscv64, loongarch64.
    "generic64": {
        "shm": (112, _merge(_PERM, _SHM64)),
        "sem": (88, _merge(_PERM, _SEM64)),
        "msg": (120, _merge(_PERM, _MSG64)),
    },
    # asm-generic, 32-bit little-endian: i386, arm (armhf/armel).  Times are low + high words.
    "generic32": {
        "shm": (84, _merge(_PERM, {"size": (36, "I"), "atime": (40, "T"), "dtime": (48, "T"),
                                   "ctime": (56, "T"), "cpid": (64, "i"), "lpid": (68, "i"),
                                   "nattch": (72, "I")})),
        "sem": (64, _merge(_PERM, {"otime": (36, "T"), "ctime": (44, "T"), "nsems": (52, "I")})),
        "msg": (88, _merge(_PERM, {"stime": (36, "T"), "rtime": (44, "T"), "ctime": (52, "T"),
                                   "cbytes": (60, "I"), "qnum": (64, "I"), "qbytes": (68, "I"),
                                   "lspid": (72, "i"), "lrpid": (76, "i")})),
    },
    # s390x, 64-bit big-endian (arch/s390 headers, not asm-generic): the offsets come out as
    # generic64's, but every field must be read at its full width - a narrower read of a
    # big-endian field gets its high bytes (mode as u16 reads 0, nsems as u32 reads 0).
    # mode is "M": qemu-user (7.2 checked), where s390x code is usually tested, byte-swaps only 16
    # of mode's 32 bits, so there it arrives in the high half and IPC_SET reads the high half.
    "s390x": {
        "shm": (112, _merge(_S390X_PERM, _SHM64)),
        "sem": (88, _merge(_S390X_PERM, _SEM64)),
        "msg": (120, _merge(_S390X_PERM, _MSG64)),
    },
}  # type: Dict[str, Dict[str, Tuple[int, _Fields]]]


def _info_structs(ulong: str) -> "Dict[str, Tuple[int, _Fields]]":
    """What IPC_INFO / SHM_INFO / SEM_INFO / MSG_INFO write in place of a *id_ds: struct shminfo
    (the kernel's shminfo64, as glibc and musl pass IPC_64) and struct shm_info are words of
    __kernel_ulong_t, code `ulong`; seminfo and msginfo are ints on every ABI."""
    width = struct.calcsize(ulong)
    shminfo = dict((name, (i * width, ulong)) for i, name in enumerate(
        ("shmmax", "shmmin", "shmmni", "shmseg", "shmall")))
    shm_info = dict((name, ((i + 1) * width, ulong)) for i, name in enumerate(
        ("shm_tot", "shm_rss", "shm_swp", "swap_attempts", "swap_successes")))
    shm_info["used_ids"] = (0, "i")
    seminfo = dict((name, (i * 4, "i")) for i, name in enumerate(
        ("semmap", "semmni", "semmns", "semmnu", "semmsl", "semopm", "semume", "semusz",
         "semvmx", "semaem")))
    msginfo = dict((name, (i * 4, "i")) for i, name in enumerate(
        ("msgpool", "msgmap", "msgmax", "msgmnb", "msgmni", "msgssz", "msgtql")))
    return {"shminfo": (9 * width, shminfo), "shm_info": (6 * width, shm_info),
            "seminfo": (40, seminfo), "msginfo": (32, msginfo)}


# __kernel_ulong_t is 64-bit on x86_64 (and x32, whose C long is 32-bit), asm-generic 64-bit and
# s390x; 32-bit on i386 and arm.
_INFO_64, _INFO_32 = _info_structs("Q"), _info_structs("I")
for _abi, _info in (("x86_64", _INFO_64), ("generic64", _INFO_64), ("generic32", _INFO_32),
                    ("s390x", _INFO_64)):
    _LAYOUTS[_abi].update(_info)

# ELF e_machine -> the name multiarch triplets use (elf.h: EM_386, EM_ARM, EM_S390, EM_X86_64,
# EM_AARCH64, EM_RISCV, EM_LOONGARCH).
_ELF_MACHINES = {3: "i386", 40: "arm", 22: "s390x", 62: "x86_64", 183: "aarch64", 243: "riscv",
                 258: "loongarch"}


def _interpreter_arch() -> str:
    """The running interpreter's architecture: its multiarch triplet, else its own ELF header.

    Never the kernel's machine name: a 32-bit interpreter on a 64-bit kernel (i386 on x86_64,
    Raspberry Pi OS armhf on an aarch64 kernel) is told the 64-bit kernel's name by uname()."""
    multiarch = getattr(sys.implementation, "_multiarch", None)
    if multiarch:
        return str(multiarch)
    try:
        with open("/proc/self/exe", "rb") as exe:   # the process's own executable, even if embedded
            header = exe.read(20)
    except OSError:
        return ""
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] not in (1, 2):
        return ""
    machine = struct.unpack_from("<H" if header[5] == 1 else ">H", header, 18)[0]
    if machine == 62 and header[4] == 1:    # ELFCLASS32 x86_64 code is the x32 ABI
        return "x86_64-linux-gnux32"
    return _ELF_MACHINES.get(machine, "elf-machine-%d" % machine)


def _detect_abi(multiarch: "Optional[str]" = None, bits: "Optional[int]" = None,
                byteorder: "Optional[str]" = None) -> str:
    """Name the layout for the *running interpreter* (a 32-bit Python on a 64-bit kernel is 32-bit).

    The arguments default to this interpreter's facts (tests pass other targets' facts)."""
    if multiarch is None:
        multiarch = _interpreter_arch()
    if bits is None:
        bits = ctypes.sizeof(ctypes.c_void_p) * 8
    if byteorder is None:
        byteorder = sys.byteorder
    arch = multiarch.split("-")[0]
    little = byteorder == "little"
    if arch == "x86_64" and bits == 32 and "gnux32" in multiarch:
        return "x86_64"
    if arch in ("x86_64", "amd64") and bits == 64:
        return "x86_64"
    if arch in ("x86_64", "amd64", "i386", "i486", "i586", "i686") and bits == 32:
        return "generic32"
    if little and bits == 64 and arch in ("aarch64", "arm64", "riscv64", "riscv", "loongarch64",
                                          "loongarch"):
        return "generic64"
    if little and bits == 32 and (arch.startswith("arm") or arch in ("riscv32", "riscv")):
        return "generic32"
    if not little and bits == 64 and arch == "s390x":
        return "s390x"
    raise ImportError("sysvshm: no struct layout is declared for %s (%d-bit, %s-endian); "
                      "refusing to guess" % (multiarch or "an unknown architecture", bits, byteorder))


_ARCH = _interpreter_arch()
ABI = _detect_abi(_ARCH)
_LAYOUT = _LAYOUTS[ABI]
# SHMLBA, the boundary shmat() wants an address on (glibc's bits/shmlba.h): four pages on 32-bit
# ARM, whose kernel refuses (EINVAL) any other address without SHM_RND, as qemu-user does for it.
_SHMLBA = 4 * PAGE_SIZE if ABI == "generic32" and _ARCH.startswith("arm") else PAGE_SIZE

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
    "msgsnd": ([_c_int, _c_void_p, _c_size_t, _c_int], _c_int),
    "msgrcv": ([_c_int, _c_void_p, _c_size_t, ctypes.c_long, _c_int], ctypes.c_ssize_t),
}  # type: Dict[str, Tuple[List[Any], Any]]
for _name, (_argtypes, _restype) in _PROTOTYPES.items():
    _func = getattr(_libc, _name)
    _func.argtypes, _func.restype = _argtypes, _restype
_shmget, _shmat, _shmdt, _shmctl = _libc.shmget, _libc.shmat, _libc.shmdt, _libc.shmctl
_semget, _semctl, _semop = _libc.semget, _libc.semctl, _libc.semop
_MAP_FAILED = int(ctypes.c_void_p(-1).value or 0)   # (void *)-1: also the largest size_t
_get_errno = ctypes.get_errno

# Hot path (FACTS §8): semop/semtimedop without argtypes, called with preallocated arguments -
# each declared argument costs ~100 ns per call through from_param.  _libc[name] makes a new
# function object (unlike _libc.name, which is the declared one, cached).
_semop_fast = _libc["semop"]
_semget_fast = _libc["semget"]            # only ever called with three ints within C int
_semctl_fast = _libc["semctl"]            # variadic; called with three ints and a byref()
_msgget_fast = _libc["msgget"]            # only ever called with two ints within C int
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
    _semget_fast, _semctl_fast, _msgget_fast = _semget, _semctl, _libc.msgget
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
    """Base class of this module's errors: an OSError carrying ``errno`` and ``strerror``, and
    in ``call`` the failed call with its arguments (e.g. "shmget(key=0x00001234, size=4096,
    flags=0o3000)"), or None."""

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


class InterruptedCallError(Error, InterruptedError):
    """EINTR (blocking calls retry it; it shows only where a call cannot be retried)."""


class OutOfRangeError(Error, ValueError):
    """ERANGE: a semaphore would go above SEMVMX (a ValueError, as in sysv_ipc)."""


_ERRNO_CLASSES = {
    _errno.EEXIST: ExistsError, _errno.ENOENT: NotFoundError, _errno.EIDRM: RemovedError,
    _errno.EACCES: AccessError, _errno.EPERM: AccessError, _errno.EAGAIN: WouldBlockError,
    _errno.EINTR: InterruptedCallError, _errno.ERANGE: OutOfRangeError,
}  # type: Dict[int, Any]


def _error(err: int, call: str, cls: "Any" = None) -> Error:
    """Build the exception for a failed `call` (e.g. "shmget(key=0x00001234, size=4096)")."""
    if cls is None:
        cls = _ERRNO_CLASSES.get(err, Error)
    exc = cls(err, "timed out" if cls is TimedOutError else os.strerror(err))
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
    number = value.__index__()
    if not isinstance(number, int):     # int() would truncate a float, parse a str
        raise TypeError("%s: __index__ returned %s, not an integer"
                        % (what, type(number).__name__))
    return int(number)


def _key_t(key: "Any") -> int:
    """Check a key and return it as key_t; never truncates (sysv_ipc does, silently)."""
    value = _index(key, "key")
    if not KEY_MIN <= value <= KEY_MAX:
        raise ValueError("key %d is outside key_t (%d..%#x)" % (value, KEY_MIN, KEY_MAX))
    return value - 2 ** 32 if value > 0x7FFFFFFF else value


def _fmt_key(ckey: int) -> str:
    return "0x%08x" % (ckey & 0xFFFFFFFF)


class _ArgumentRangeError(ValueError, OverflowError):
    """An integer argument outside what the system call can take (catch either base)."""


def _c_range(value: "Any", what: str, low: int, high: int) -> int:
    """An integer argument that C receives, checked against the C type's range first (ctypes
    would silently wrap it modulo its width)."""
    number = _index(value, what)
    if not low <= number <= high:
        raise _ArgumentRangeError("%s must be between %d and %d, not %d"
                                  % (what, low, high, number))
    return number


def _check_flags(flags: "Any", allowed: int, what: str) -> int:
    value = _index(flags, "flags")
    if value < 0 or value & ~allowed:
        raise ValueError("%s: unsupported flag bits %#o" % (what, value & ~allowed if value >= 0
                                                              else value))
    if value & IPC_CREX == IPC_EXCL:
        raise ValueError("%s: IPC_EXCL without IPC_CREAT (the kernel would ignore it)" % what)
    if value & _SHM_HUGE_MASK and not value & SHM_HUGETLB:
        raise ValueError("%s: a huge page size (SHM_HUGE_2MB, SHM_HUGE_1GB: bits %#x) means "
                         "something only with SHM_HUGETLB" % (what, value & _SHM_HUGE_MASK))
    return value


def _ipc_id(value: "Any") -> int:
    """An id as the kernel gives them: an int, 0..INT_MAX (ctypes would wrap 2**32 + id to id)."""
    return _c_range(value, "id", 0, 2 ** 31 - 1)


def _id_value(value: "Any", what: str) -> int:
    """A uid_t / gid_t: 0..2**32 - 2 ((uid_t) -1 means "no change" to the kernel)."""
    checked = _index(value, what)
    if not 0 <= checked <= 2 ** 32 - 2:
        raise ValueError("%s must be between 0 and %d, not %d" % (what, 2 ** 32 - 2, checked))
    return checked


def _check_mode(mode: "Any") -> int:
    value = _index(mode, "mode")
    if not 0 <= value <= 0o777:
        raise ValueError("mode must be between 0 and 0o777, not %#o" % value)
    return value


def _timeout(timeout: "Any") -> "Optional[float]":
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number or None, not %s" % type(timeout).__name__)
    if timeout != timeout or timeout < 0:
        raise ValueError("timeout must be >= 0 (or None to wait forever), not %r" % timeout)
    if timeout == float("inf"):
        return None
    return float(timeout)


def _create_at_random_key(get: "Callable[[int], int]") -> "Tuple[int, int]":
    """Create at a random unused key: `get(key)` (a *get with IPC_CREX) is tried again while the
    key is taken.  Returns (get's result, the key); a result of -1 leaves errno for _check."""
    for _ in range(1000):
        key = _random_key()
        ident = get(key)
        if ident >= 0 or _get_errno() != _errno.EEXIST:
            break
    return ident, key


# Signals that arrive from outside (not a fault of the running code): blocked while a constructor
# creates an object, so that no handler's exception can fall between the system call that
# creates it and the code that would remove it if a later step fails.
_ASYNC_SIGNALS = frozenset(  # (32 and 33 are glibc's own: valid_signals() leaves them out)
    _signal.valid_signals() if hasattr(_signal, "valid_signals")
    else set(range(1, _signal.NSIG)) - {32, 33}) - frozenset(
    getattr(_signal, name) for name in ("SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGILL",
                                        "SIGFPE", "SIGTRAP", "SIGSYS", "SIGABRT")
    if hasattr(_signal, name))


# The C function: signal's wrapper turns every signal of the old mask into an enum (60 us).
_sigmask = getattr(__import__("_signal"), "pthread_sigmask", _signal.pthread_sigmask)


def _signal_mask() -> "Any":
    """The thread's signal mask, to restore after _defer_signals() (asking may run a handler
    that was already due: before anything is created)."""
    return _sigmask(_signal.SIG_BLOCK, ())


def _defer_signals() -> None:
    _sigmask(_signal.SIG_BLOCK, _ASYNC_SIGNALS)


def _restore_signals(mask: "Any") -> None:
    """Back to `mask`; a handler for a signal that arrived meanwhile runs here (and may raise):
    in _sigmask (3.11+), or at the call after it (before 3.11), still in the caller's region."""
    _sigmask(_signal.SIG_SETMASK, mask)
    _signal_checkpoint()


def _signal_checkpoint() -> None:
    """Nothing: calling a Python function is where CPython runs a handler that became due."""


def _random_key() -> int:
    """1..0x7FFFFFFF, from os.urandom (no lazy import that a Ctrl-C could leave half done)."""
    return int.from_bytes(os.urandom(4), "little") % 0x7FFFFFFF + 1


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
        elif code == "M":
            # Real mode bits never reach bit 16, so a value above 0xffff is qemu's half-swap.
            mode = struct.unpack_from("=I", raw, offset)[0]
            out[name] = mode >> 16 if mode > 0xFFFF else mode
        else:
            out[name] = struct.unpack_from("=" + code, raw, offset)[0]
    return out


_checked: "Set[str]" = set()   # the kinds whose declared layout matched the kernel


def _raw_stat(kind: str, ident: int) -> "Dict[str, int]":
    buf = ctypes.create_string_buffer(_LAYOUT[kind][0])
    _check(_ctl(kind, ident, _IPC_STAT, buf), lambda: "%sctl(id=%d, IPC_STAT)" % (kind, ident))
    return _unpack(kind, buf.raw)


def _stat(kind: str, ident: int) -> "Dict[str, int]":
    """IPC_STAT of an object, decoded with the declared layout (checked first, once)."""
    if kind not in _checked:
        _selfcheck(kind)
    return _raw_stat(kind, ident)


def _set(kind: str, ident: int, field: str, value: int) -> None:
    """IPC_SET one of uid/gid/mode (read-modify-write of the kernel's own struct)."""
    buf = ctypes.create_string_buffer(_LAYOUT[kind][0])
    what = lambda: "%sctl(id=%d, IPC_SET %s=%d)" % (kind, ident, field, value)  # noqa: E731
    _check(_ctl(kind, ident, _IPC_STAT, buf), what)
    offset, code = _LAYOUT[kind][1][field]
    if code == "M":
        # Both halves: the kernel keeps only in->mode & 0777, qemu-user reads the high half.
        packed = struct.pack("=I", value | (value & 0xFFFF) << 16)
    else:
        packed = struct.pack("=" + code, value)
    # Slice assignment, not struct.pack_into: PyPy 3.11 refuses a ctypes array as pack_into's
    # "read-write bytes-like object".
    buf[offset:offset + len(packed)] = packed   # type: ignore[call-overload]
    _check(_ctl(kind, ident, _IPC_SET, buf), what)


def _probe_shm() -> "Tuple[Tuple[int, ...], Tuple[int, ...]]":
    """A fresh private segment of an odd size (one page at most, so that a small kernel.shmmax
    still allows it), attached once: its size, our pid, one attachment, its mode."""
    size = min(PAGE_SIZE - 1, 3333)
    shmid = _check(_shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600), lambda: "shmget(IPC_PRIVATE)",
                   gone=False)
    try:
        address = _shmat(shmid, None, 0)
        if address == _MAP_FAILED:
            raise _error(_get_errno(), "shmat(id=%d)" % shmid)
        try:
            shm = _raw_stat("shm", shmid)
        finally:
            _shmdt(address)
    finally:
        _shmctl(shmid, _IPC_RMID, None)
    return (shm["size"], shm["cpid"], shm["nattch"], shm["mode"] & 0o777), (size, os.getpid(), 1,
                                                                           0o600)


def _probe_sem() -> "Tuple[Tuple[int, ...], Tuple[int, ...]]":
    """A fresh private set of three: its number of semaphores, mode, and no semop yet."""
    semid = _check(_semget(IPC_PRIVATE, 3, IPC_CREAT | 0o600), lambda: "semget(IPC_PRIVATE)",
                   gone=False)
    try:
        sem = _raw_stat("sem", semid)
    finally:
        _semctl(semid, 0, _IPC_RMID)
    return (sem["nsems"], sem["mode"] & 0o777, sem["otime"]), (3, 0o600, 0)


_PROBES = {"shm": _probe_shm, "sem": _probe_sem}   # type: Dict[str, Callable[[], Any]]


def _selfcheck(kind: str) -> None:
    """Check the declared layout of `kind` against the kernel once, on a private object.

    A wrong layout does not fail loudly (it reads plausible garbage), so before a layout is
    trusted, a fresh private object must report what we know of it.  Where the probe cannot be
    made (the namespace is full, or limits forbid it) the check is tried again next time rather
    than blocking work on existing objects.  Signals wait meanwhile: a handler's exception
    between creating the probe and removing it would leave it behind."""
    mask = _signal_mask()
    try:
        _defer_signals()
        seen, expected = _PROBES[kind]()
    except Error as exc:
        if exc.errno in (_errno.ENOSPC, _errno.ENOMEM, _errno.EINVAL, _errno.EACCES,
                         _errno.EPERM):
            return
        raise
    finally:
        _restore_signals(mask)
    if seen != expected:
        raise InternalError(0, "struct layout self-check failed for ABI %s (%s): expected %r, "
                            "the kernel gave %r" % (ABI, kind, expected, seen))
    _checked.add(kind)


class _ReadOnly(_Generic[_T]):
    """A read-only attribute whose error text is the C extension's ('attribute ... is not writable').

    For a type checker it is an attribute of type _T that cannot be assigned: reading it on an
    instance gives the getter's result, and ``__set__`` accepts no value (NoReturn)."""

    def __init__(self, getter: "Callable[[Any], _T]", doc: str,
                 message: "Optional[str]" = None) -> None:
        self.getter = getter
        self.message = message
        self.__doc__ = doc

    def __set_name__(self, owner: "Any", name: str) -> None:
        # An alias (`pid = last_pid = ...`) keeps the first, documented, name.
        self.name = getattr(self, "name", name)

    if TYPE_CHECKING:   # on the class: the descriptor itself; on an instance: a _T
        @overload
        def __get__(self, obj: None, cls: "Any" = None) -> "_ReadOnly[_T]":
            ...

        @overload
        def __get__(self, obj: object, cls: "Any" = None) -> "_T":
            ...

    def __get__(self, obj: "Any", cls: "Any" = None) -> "Any":
        if obj is None:
            return self
        return self.getter(obj)

    def __set__(self, obj: "Any", value: "NoReturn") -> None:
        cls = type(obj)
        raise AttributeError(self.message or "attribute '%s' of '%s.%s' objects is not writable"
                             % (self.name, cls.__module__, cls.__qualname__))


def _kind_field(field: str, doc: str) -> "_ReadOnly[int]":
    """A read-only attribute read from IPC_STAT of the object's kind."""
    def getter(self: "Any") -> int:
        return _stat(self._kind, self._id)[field]
    return _ReadOnly(getter, doc)


class _NoCopy(object):
    """copy.copy(), copy.deepcopy() and pickle are refused (as by sysv_ipc): a copy would share
    the original's prebuilt system-call arguments (its undo and block flags, among others) while
    keeping attributes of its own, and it cannot be a second kernel object."""

    def __reduce_ex__(self, protocol: "Any") -> "Any":
        name = type(self).__name__
        again = ("SemaphoreSet(key)[index]" if name == "SemaphoreMember" else
                 "%s(key)" % name)
        raise TypeError("a %s cannot be copied or pickled; open the object again: %s"
                        % (name, again))


class _Permissions(_NoCopy):
    """uid, gid, mode (settable through IPC_SET) and cuid, cgid, shared by every IPC object."""

    _kind = ""
    _id = -1

    id = _ReadOnly(lambda self: self._id, "The identifier (shmid, semid, msqid) the kernel "
                   "gave the object: what ipcs shows and attach() takes.",
                   "readonly attribute")  # type: _ReadOnly[int]
    cuid = _kind_field("cuid", "The creator's user id.")
    cgid = _kind_field("cgid", "The creator's group id.")

    @property
    def uid(self) -> int:
        """The owner's user id (settable: IPC_SET)."""
        return _stat(self._kind, self._id)["uid"]

    @uid.setter
    def uid(self, value: int) -> None:
        _set(self._kind, self._id, "uid", _id_value(value, "uid"))

    @property
    def gid(self) -> int:
        """The owner's group id (settable: IPC_SET)."""
        return _stat(self._kind, self._id)["gid"]

    @gid.setter
    def gid(self, value: int) -> None:
        _set(self._kind, self._id, "gid", _id_value(value, "gid"))

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


def _address_of(m: "mmap.mmap") -> int:
    """The address of an mmap's memory (our reservation for SHM_REMAP)."""
    try:
        probe = ctypes.c_char.from_buffer(m)
    except TypeError:
        # CPython's from_buffer wants a writable buffer; a read-only mmap's address comes from the
        # buffer protocol itself (PyPy's from_buffer takes read-only buffers, so never gets here).
        # A Py_buffer (11 words at most; its first member is `void *buf`), as raw memory: no
        # Structure class to build at import for this one rare path.
        view = ctypes.create_string_buffer(16 * ctypes.sizeof(ctypes.c_void_p))
        # Prototypes of our own: never the argtypes of the process-wide ctypes.pythonapi ones.
        get = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_void_p, ctypes.c_int)(
            ("PyObject_GetBuffer", ctypes.pythonapi))
        release = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(("PyBuffer_Release", ctypes.pythonapi))
        get(m, view, 0)
        address = ctypes.c_void_p.from_buffer(view).value
        release(view)
        return int(address or 0)
    address = ctypes.addressof(probe)
    del probe
    return address


_HUGE_PROBE = 64 * 1024    # every huge page size (64 KiB on arm64 and up) is a multiple of it


def _kernel_page_size(address: int) -> int:
    """The page size of the mapping that starts at `address` (/proc/self/smaps), or PAGE_SIZE."""
    try:
        with open("/proc/self/smaps") as smaps:
            head = "%x-" % address
            found = False
            for line in smaps:
                if line.startswith(head):
                    found = True
                elif found and line.startswith("KernelPageSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return PAGE_SIZE


def _hugepage_size() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2 * 1024 * 1024


def _is_ctype(ctype: "Any") -> bool:
    return isinstance(ctype, type) and issubclass(
        ctype, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array,
                ctypes._Pointer, getattr(ctypes, "_CFuncPtr")))  # noqa: B009 (untyped)


_CTYPES_METATYPES = frozenset(type(t) for t in (
    ctypes.c_int, ctypes.Structure, ctypes.Union, ctypes.c_int * 1, ctypes.POINTER(ctypes.c_int),
    ctypes.CFUNCTYPE(None)))


def _check_ctype(ctype: "Any") -> None:
    """A ctypes type as ctypes made it: its own metatype (a caller's metaclass could answer
    __mro__, __eq__, __hash__ or attribute lookups with anything), and none of the methods that
    build instances overridden."""
    if not _is_ctype(ctype):
        raise TypeError("as_ctypes() needs a ctypes type (c_int, a Structure subclass, "
                        "c_uint8 * 16, ...), not %r" % (ctype,))
    if type(ctype) not in _CTYPES_METATYPES:
        raise TypeError("as_ctypes() takes ctypes types with ctypes' own metaclass, not %s"
                        % type(ctype).__name__)
    for klass in ctype.__mro__:
        module = getattr(klass, "__module__", "")
        if not _is_ctypes_module(module) and module != "builtins":
            for name in ("from_buffer", "from_address", "__new__"):
                if name in vars(klass):
                    raise TypeError("as_ctypes() takes no type that overrides %s (%s does)"
                                    % (name, klass.__name__))


def _follows_pointers(ctype: "Any") -> bool:
    """Does reading `ctype` make ctypes dereference an address stored in it?  Decided from what
    reads of a zero-filled private instance return, not from `_type_` / `_fields_`: those are
    plain class attributes that can be changed after ctypes fixed the layout.  Every field of
    every base class, nested structures and unions, array elements; ctypes' own descriptors are
    called directly, so no method of the caller's classes runs.  A NULL pointer of any kind reads
    as None, a pointer or function object, or an error (py_object)."""
    cached = _POINTER_FREE.get(ctype) if _CPYTHON else None  # PyPy: _type_/_fields_ stay live
    if cached is not None:
        return not cached
    try:
        # Zeros beyond sizeof() too: PyPy 8 computes sizeof() from a changed _type_, while
        # reads keep the layout the class was made with.
        probe = ctype.from_buffer(bytearray(max(ctypes.sizeof(ctype), 1) + 512))
        follows = _reads_pointer(probe, 0)
    except Exception:        # anything odd about the type: refuse it
        follows = True
    try:
        _POINTER_FREE[ctype] = not follows   # the real layout never changes
    except TypeError:
        pass
    return follows


_POINTER_FREE = weakref.WeakKeyDictionary()   # type: weakref.WeakKeyDictionary[Any, bool]
_CFUNC = getattr(ctypes, "_CFuncPtr")  # noqa: B009 (untyped)


def _ctypes_descriptor(klass: "Any", name: str) -> "Any":
    """`name` as ctypes itself defines it for `klass` (skipping the caller's subclasses)."""
    for base in klass.__mro__:
        if _is_ctypes_module(getattr(base, "__module__", "")) and name in vars(base):
            return vars(base)[name]
    raise TypeError("not a ctypes type")


def _is_ctypes_module(name: "Any") -> bool:
    return isinstance(name, str) and name.lstrip("_").split(".")[0] == "ctypes"


def _reads_pointer(obj: "Any", depth: int) -> bool:
    if depth > 32 or isinstance(obj, (ctypes._Pointer, _CFUNC)):
        return True
    # Both ctypes' own descriptors and the ordinary lookup a caller's code will make: PyPy 8
    # gives each c_char_p subclass a `value` of its own, fixed when the class was made.
    klass = type(obj)
    if isinstance(obj, ctypes._SimpleCData):
        items = [_ctypes_descriptor(klass, "value").__get__(obj, klass), obj.value]
    elif isinstance(obj, ctypes.Array):
        items = [_ctypes_descriptor(klass, "__getitem__")(obj, 0), obj[0]] if len(obj) else []
    elif isinstance(obj, (ctypes.Structure, ctypes.Union)):
        items = []
        for base in klass.__mro__:
            for name, field in list(vars(base).items()):
                if type(field).__name__ in ("CField", "Field") \
                        and _is_ctypes_module(type(field).__module__):
                    items += [field.__get__(obj, klass), getattr(obj, name)]
    else:
        return True
    return any(item is None or (isinstance(item, (ctypes._SimpleCData, ctypes.Array,
                                                  ctypes.Structure, ctypes.Union,
                                                  ctypes._Pointer, _CFUNC))
                                and _reads_pointer(item, depth + 1))
               for item in items)


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def _overlay(address: int, length: int, readonly: bool) -> None:
    """Detach by mapping private zero memory over the segment (MAP_FIXED, one atomic step): the
    kernel drops the attachment, and a stale view can only reach private memory - never the
    segment, never a hole."""
    prot = _PROT_READ if readonly else _PROT_READ | _PROT_WRITE
    flags = _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED
    for attempt in (1, 2):
        if _libc.mmap(address, length, prot, flags, -1, 0) != _MAP_FAILED:
            return
        err = _get_errno()
        if attempt == 1 and err == _errno.ENOMEM:
            import gc       # too many mappings: PyPy frees detached reservations late
            gc.collect()
    raise _error(err, "mmap(%#x, %d, MAP_FIXED) over a detached segment" % (address, length))


# Owners of mappings whose raw address has left the SharedMemory (`address` read, or an attach at
# an address the caller chose): C code may use it, so nothing but detach() ends the mapping -
# not the object's garbage collection.  id(owner) -> owner.
_PINNED = {}   # type: Dict[int, Any]

# PyPy, attachments at caller-chosen addresses: what detach() left there is private memory that
# stale views may still reach (PyPy's views do not keep a ctypes owner alive), so it is never
# unmapped; a later attach inside such a range replaces it (SHM_REMAP).  [start, end) pairs.
_PARKED = []   # type: List[List[int]]


def _parked(start: int, end: int, take: bool = False) -> bool:
    """Is [start, end) inside a parked range?  take=True removes it from that range."""
    for i, (low, high) in enumerate(_PARKED):
        if low <= start and end <= high:
            if take:
                del _PARKED[i]
                _PARKED.extend(r for r in ([low, start], [end, high]) if r[0] < r[1])
            return True
    return False


# Attachments at caller-chosen addresses: (weak reference to the owner, state).  The owner's
# finalizer detaches; a signal handler's exception can cut a finalizer short before it does
# (it is Python code), so attach() and detach() sweep: a dead owner whose state is not done.
_RAW = []   # type: List[Tuple[Any, List[Any]]]


def _sweep_raw() -> None:
    for entry in list(_RAW):
        if entry[0]() is None:
            if not entry[1][2]:
                _release_raw(entry[1])
            try:
                _RAW.remove(entry)
            except ValueError:
                pass


def _release_raw(state: "List[Any]") -> None:
    """Finalizer of the owner of an attachment at a caller-chosen address: nothing can reach the
    range any more (CPython: every view holds the owner), so shmdt().  Not after a detach() on
    PyPy, whose overlay stays (state[2])."""
    address, length, overlaid = state
    if not overlaid:
        mask = _signal_mask()
        try:
            _defer_signals()
            state[2] = True
            _shmdt(address)
        finally:
            _restore_signals(mask)


_OWNED = "this mapping belongs to a SharedMemory: detach() it instead"
_mapping_type = None   # type: Any


def _new_mapping(length: int, readonly: bool) -> "mmap.mmap":
    """An anonymous reservation to attach a segment into (SHM_REMAP): an mmap - whose buffer is
    read-only when the attach is, whose exports CPython counts, and which every view keeps alive
    - that only SharedMemory may close (PyPy's close() would unmap it under live views)."""
    global _mapping_type
    import mmap
    if _mapping_type is None:
        class _Mapping(mmap.mmap):
            def close(self) -> None:
                raise BufferError(_OWNED)

            def resize(self, newsize: int) -> None:
                raise BufferError(_OWNED)

            def madvise(self, *args: "Any") -> None:   # MADV_DONTFORK, MADV_REMOVE, ...
                raise BufferError(_OWNED)

            def __exit__(self, *exc_info: "Any") -> None:
                raise BufferError(_OWNED)
        _mapping_type = _Mapping
    prot = _PROT_READ if readonly else _PROT_READ | _PROT_WRITE
    return _mapping_type(-1, length, flags=mmap.MAP_PRIVATE, prot=prot)  # type: ignore[no-any-return]


class _ReadOnlyMemory(object):
    """The buffer of a read-only attach at a caller-chosen address (CPython 3.12+, PEP 688): a
    read-only view of raw memory that no view of it can turn writable (ctypes objects are always
    writable, and a toreadonly() view's .obj would be one).  Views keep it alive."""

    __slots__ = ("address", "length", "__weakref__")

    def __init__(self, address: int, length: int) -> None:
        self.address, self.length = address, length

    def __buffer__(self, flags: int) -> memoryview:
        if flags & 1:                                  # inspect.BufferFlags.WRITABLE
            raise BufferError("the segment is attached read-only")
        from_memory = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t,
                                        ctypes.c_int)(("PyMemoryView_FromMemory", ctypes.pythonapi))
        return from_memory(self.address, self.length, 0x100)   # type: ignore[no-any-return]


def _shm_address(self: "SharedMemory") -> "Optional[int]":
    """Where the segment is attached (None: detached).  Reading it hands the raw address out:
    from then on only detach() ends the attachment, never garbage collection."""
    owner = self._owner
    if owner is not None:
        _PINNED[id(owner)] = owner
    return self._address


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
    _raw_state = None    # type: Optional[List[Any]]  # explicit address: [address, length, overlaid]
    _lock = None         # type: Any  # held by attach() and detach() (an RLock)
    _busy = False        # attach() or detach() running (a signal handler may re-enter _lock)
    _page_probed = False  # _align is known (huge, or /proc/self/smaps said ordinary pages)

    def __init__(self, key: "Optional[int]", flags: int = 0, mode: int = 0o600, size: int = 0,
                 init_character: "Optional[bytes]" = b" ", readonly: bool = False) -> None:
        if self._lock is not None:
            raise TypeError("SharedMemory.__init__() cannot run again on an object (it would "
                            "describe one segment while attached to another): make a new one")
        self._lock = threading.RLock()
        tagged = isinstance(flags, _AttachFlag)
        flags = _check_flags(flags, IPC_CREX | SHM_HUGETLB | SHM_NORESERVE | _SHM_HUGE_MASK,
                             "SharedMemory")
        if tagged or (flags & SHM_RDONLY and not flags & IPC_CREAT):
            # SHM_RDONLY is shmat()'s; here its bit is shmget()'s SHM_NORESERVE, which means
            # something only when creating.  Either way, not what the caller wrote.
            raise ValueError("SharedMemory(): SHM_RDONLY is an attach() flag (its bit means "
                             "SHM_NORESERVE to the constructor); to open read-only, pass "
                             "readonly=True")
        if not isinstance(readonly, bool):
            raise TypeError("readonly must be True or False, not %r" % (readonly,))
        mode = _check_mode(mode)
        size = _c_range(size, "size", 0, _MAP_FAILED)      # size_t: ctypes would wrap it
        if init_character is not None:
            if not isinstance(init_character, (bytes, bytearray)) \
                    or len(bytes(init_character)) != 1:
                raise ValueError("init_character must be one byte (bytes of length 1) or None")
            fill = bytes(init_character)[0]   # exact bytes: no __getitem__ of the caller's
        exclusive = flags & IPC_CREX == IPC_CREX
        if key is None and not exclusive:
            raise ValueError("key=None (a random unused key) needs flags=IPC_CREX")
        if key is not None:
            key = _index(key, "key")       # once: the caller's __index__ runs a single time
        ckey = _random_key() if key is None else _key_t(key)
        if size == 0 and exclusive:
            size = PAGE_SIZE          # sysv_ipc's documented default for IPC_CREX
        if "shm" not in _checked:
            _selfcheck("shm")   # before creating anything whose fields we would misread
        if flags & SHM_HUGETLB:
            self._align = _hugepage_size()
        # From here on, whatever this call creates is removed if any later step fails - or is
        # interrupted (a signal handler's exception, Ctrl-C): `ident` is set by the statement
        # that creates, with no Python call in between.
        ident = -1
        creating = True      # with ident >= 0: this call made the segment
        mask = _signal_mask() if flags & IPC_CREAT or ckey == IPC_PRIVATE else None
        try:
            if mask is not None:
                _defer_signals()
            if key is None:
                ident, ckey = _create_at_random_key(
                    lambda k: int(_shmget_fast(k, _c_size_t(size), flags | mode)))
            elif ckey == IPC_PRIVATE or exclusive:   # IPC_PRIVATE always makes a new segment
                ident = _shmget_fast(ckey, _c_size_t(size), flags | mode)
            else:
                # Opening asks for no permission bits, as shmget(key, 0, 0) in C does: `mode` is
                # for creation; access is checked when attaching.  IPC_CREAT: open first, so
                # that this call knows whether it created the segment (and must remove it if a
                # later step fails).
                while True:
                    creating = False
                    ident = _shmget_fast(ckey, _c_size_t(size), flags & ~IPC_CREAT)
                    if ident >= 0 or not flags & IPC_CREAT or _get_errno() != _errno.ENOENT:
                        break
                    creating = True
                    ident = _shmget_fast(ckey, _c_size_t(size), flags | IPC_EXCL | mode)
                    if ident >= 0 or _get_errno() != _errno.EEXIST:
                        break                   # (EEXIST: made meanwhile; open it)
            if ident < 0:
                _check(ident, lambda: "shmget(key=%s, size=%d, flags=%#o)"
                       % (_fmt_key(ckey), size, flags), gone=False)
            self._id = ident
            self._key = ckey & 0xFFFFFFFF if key is None else key
            # A segment this call created has exactly the size asked for (shm_segsz is not
            # rounded); an opened one may be larger, so ask the kernel.  Segments never resize.
            self._size = size if creating else _stat("shm", ident)["size"]
            if readonly:
                self.attach(None, SHM_RDONLY)
            else:
                try:
                    self.attach()
                except PermissionsError:
                    # Read permission only (e.g. a 0o444 segment of another user): attach
                    # read-only rather than refuse the object; buf.readonly tells, write() raises.
                    self.attach(None, SHM_RDONLY)
            if exclusive and init_character is not None:
                if self._readonly:
                    self._fill_as_creator(fill, mode, not flags & SHM_NORESERVE)
                elif self._address is not None:
                    self._back_huge_pages(self._address, not flags & SHM_NORESERVE)
                    ctypes.memset(self._address, fill, self._size)
            if mask is not None:
                deferred, mask = mask, None
                _restore_signals(deferred)   # a handler's exception here still removes it
        except BaseException:
            if creating and ident >= 0:   # ours and unusable: do not leave it behind
                _shmctl(ident, _IPC_RMID, None)
                if self._view is not None:
                    try:
                        self._detach()
                    except BufferError:
                        pass
            raise
        finally:
            if mask is not None:
                _restore_signals(mask)

    def _fill_as_creator(self, byte: int, mode: int, reserved: bool) -> None:
        """init_character for a segment we just created without write permission for ourselves
        (mode 0o400, 0o444): as its owner, lend us write permission for one temporary attach."""
        _set("shm", self._id, "mode", mode | 0o200)
        try:
            address = _shmat(self._id, None, 0)
            if address == _MAP_FAILED:
                raise _error(_get_errno(), "shmat(id=%d) to fill" % self._id)
            try:
                self._back_huge_pages(address, reserved)
                ctypes.memset(address, byte, self._size)
            finally:
                _shmdt(address)
        finally:
            _set("shm", self._id, "mode", mode)

    def __repr__(self) -> str:
        where = "detached"
        if self._address is not None:
            where = "at %#x%s" % (self._address, " read-only" if self._readonly else "")
        return "<%s key=%s id=%d size=%d %s>" % (type(self).__name__, _fmt_key(_key_t(self._key)),
                                                self._id, self._size, where)

    def __reduce_ex__(self, protocol: "Any") -> "Any":
        # copy.copy(), deepcopy() and pickle: a copy would share (and could detach) the mapping
        # while claiming an attachment of its own; sysv_ipc refuses them too.
        raise TypeError("a SharedMemory cannot be copied or pickled; open the segment again: "
                        "SharedMemory(key) or sysvshm.attach(id)")

    def __reduce__(self, *args: "Any") -> "Any":
        return self.__reduce_ex__(0)

    __getstate__ = __reduce__

    def __enter__(self) -> "SharedMemory":
        return self

    def __exit__(self, exc_type: "Any", exc: "Any", traceback: "Any") -> None:
        if self._view is not None:
            try:
                self.detach()
            except BufferError:
                if exc_type is None:
                    raise
                # An exception is already on its way out: do not replace it; the segment stays
                # attached while its views live, and garbage collection detaches it.

    def _populate(self, address: int, write: bool, length: int = 0) -> bool:
        """Fault every page of the attachment at `address` in (madvise MADV_POPULATE_*, Linux
        5.14+).  False if the kernel has no such advice; an error if a page cannot be backed
        (a huge-page segment with no free huge page: where a first touch would be SIGBUS)."""
        length = length or _round_up(max(self._size, 1), self._align)
        if _libc.madvise(address, length,
                         _MADV_POPULATE_WRITE if write else _MADV_POPULATE_READ) == 0:
            return True
        err = _get_errno()
        if err == _errno.EINVAL:
            return False
        raise _error(err, "madvise(id=%d, MADV_POPULATE_%s): the segment's pages cannot be "
                     "backed%s" % (self._id, "WRITE" if write else "READ",
                                   " (no free huge pages)" if self._align > PAGE_SIZE else ""))

    def _back_huge_pages(self, address: int, reserved: bool) -> None:
        """Before this module first touches a huge-page segment: without SHM_NORESERVE the kernel
        reserved its pages at shmget(); with it, only a successful populate proves them."""
        if self._align > PAGE_SIZE and not self._populate(address, True) and not reserved:
            raise _error(_errno.EINVAL, "SharedMemory(id=%d): this kernel cannot populate "
                         "(MADV_POPULATE_WRITE, Linux 5.14+) a SHM_NORESERVE huge-page segment, "
                         "and touching a page no huge page backs is SIGBUS; pass "
                         "init_character=None" % self._id)

    # -- attach / detach ------------------------------------------------------------------------
    def attach(self, address: "Optional[int]" = None, flags: int = 0) -> None:
        """Wrapper around ``shmat()``: attach the segment (SHM_RDONLY: read-only).

        Without an address the segment lands in an anonymous mmap reserved for it (SHM_REMAP):
        every view keeps that mmap alive.  Already attached: detaches first."""
        flags = _check_flags(flags, SHM_RDONLY | SHM_RND | SHM_REMAP | SHM_EXEC, "attach")
        if address is not None:
            address = _c_range(address, "address", 0, _MAP_FAILED - 1)
            if address == 0:
                address = None            # shmat(id, NULL): the system chooses, as for None
            elif address < _SHMLBA and flags & SHM_RND:
                # The kernel would round it down to 0 and map the segment over page 0 (MAP_FIXED;
                # root may): every NULL pointer in the process would then reach the segment.
                raise ValueError("address %#x rounds down (SHM_RND) to 0: pass None for an "
                                 "address of the system's choosing" % address)
        if address is None and flags & SHM_REMAP:
            raise ValueError("SHM_REMAP needs an address")
        # The object's lock, entered in C (an RLock's __enter__: from 3.10 on, no interrupt can
        # fall between taking it and the block that gives it back): another thread waits for the
        # running call; a signal handler that interrupted one in this thread re-enters the lock
        # and meets _busy instead of changing the attachment under it.
        with self._lock:
            self._refuse_reentry("attach")
            try:
                self._busy = True
                if self._view is not None:
                    self._detach()
                if not self._size:    # unknown yet (segments are at least 1 byte, never resize)
                    self._size = _stat("shm", self._id)["size"]
                if address is None:
                    self._attach_reserved(flags & ~SHM_RND)
                else:
                    self._attach_at(address, flags)
            finally:
                self._busy = False

    def _refuse_reentry(self, what: str) -> None:
        """BusyError if a signal handler re-enters attach()/detach() of this object.  A flag an
        interrupted call could not clear (3.6-3.9, PyPy: a handler's exception can land inside
        a `finally`) is recognised by the lock's depth: held once, by this call alone."""
        if self._busy and " count=1 " in repr(self._lock):
            self._busy = False
        if self._busy:
            exc = BusyError(_errno.EBUSY, "attach() or detach() of this object was interrupted "
                            "by this signal handler, which may not attach or detach it")
            exc.call = "%s(id=%d)" % (what, self._id)
            raise exc

    def _attach_reserved(self, flags: int) -> None:
        readonly = bool(flags & SHM_RDONLY)
        align = self._align          # the mapping's granularity: a page, or a huge page
        while True:
            length = -(-(self._size or 1) // align) * align         # _round_up, inlined
            boundary = align if align > _SHMLBA else _SHMLBA        # where shmat() accepts it
            # Room to round up to the boundary, and to step off a huge-page boundary (below).
            try:
                try:
                    reservation = _new_mapping(length + 2 * boundary, readonly)
                except OSError:
                    if _CPYTHON:
                        raise
                    import gc           # PyPy: detached reservations wait for its collector
                    gc.collect()
                    reservation = _new_mapping(length + 2 * boundary, readonly)
            except (OSError, OverflowError) as exc:   # ENOMEM: RLIMIT_AS, no such stretch of
                # addresses; OverflowError: more than a 32-bit process can map
                raise _error(getattr(exc, "errno", None) or _errno.ENOMEM,
                             "mmap(%d bytes) to attach id=%d into"
                             % (length + 2 * boundary, self._id)) from None
            start = _address_of(reservation)
            address = start if boundary == PAGE_SIZE else _round_up(start, boundary)
            if align == PAGE_SIZE and address % _HUGE_PROBE == 0:
                # Never on a huge-page boundary while the kind of segment is not known: a
                # huge-page segment then always refuses (EINVAL) and is recognised below.
                address += boundary
            result = _shmat_fast(self._id, _c_void_p(address), flags | SHM_REMAP)
            if result != _MAP_FAILED:
                break
            err = _get_errno()
            del reservation          # nothing else holds it: unmapped
            if err == _errno.EINVAL and align == PAGE_SIZE:
                align = _hugepage_size()   # an existing SHM_HUGETLB segment needs huge alignment
                continue
            raise _error(err, "shmat(id=%d, flags=%#o)" % (self._id, flags),
                         RemovedError if err == _errno.EINVAL else None)
        try:
            self._align = align
            if align > PAGE_SIZE:
                self._prove_backed(address, length, readonly, reservation)
            self._owner, self._base = reservation, address - start
            self._address, self._readonly, self._raw_state = address, readonly, None
            self._view = self._make_view()
        except BaseException:
            # Not published (a signal handler's exception): drop the reservation, and with it
            # the attachment inside it (nothing else can reach either).
            if self._view is None:
                self._owner = self._address = None
                if _CPYTHON:
                    import mmap
                    mmap.mmap.close(reservation)    # (no view of it exists)
            raise

    def _prove_backed(self, address: int, length: int, readonly: bool, reservation: "Any") -> None:
        """A huge-page segment: fault its pages in before anything can touch them (SHM_NORESERVE,
        or no free huge page: a first touch would be SIGBUS).  On failure, detached, and an
        error."""
        try:
            if not self._populate(address, not readonly, length):
                pass      # Linux < 5.14: cannot prove it; without SHM_NORESERVE shmget reserved
        except BaseException:
            if reservation is None:
                _shmdt(address)
            else:
                _overlay(address, length, readonly)   # the reservation's memory again
            raise

    def _make_view(self) -> memoryview:
        """The attachment's own view (never handed out: `buf` gives slices of it)."""
        if self._raw_state is None:    # an mmap: read-only if the reservation is
            return memoryview(self._owner)[self._base:self._base + self._size]
        return memoryview(self._owner).cast("B")[:self._size]

    def _attach_at(self, address: int, flags: int) -> None:
        readonly = bool(flags & SHM_RDONLY)
        if flags & SHM_REMAP:
            # It would replace whatever is mapped there - memory this process is using, another
            # attachment whose views then dangle: a crash the caller cannot see coming.
            raise ValueError("SHM_REMAP is not supported: attach at a free address instead")
        if readonly and not (_CPYTHON and sys.version_info >= (3, 12)):
            # A read-only buffer over raw memory that no view can make writable needs PEP 688.
            raise NotImplementedError("SHM_RDONLY with an explicit address needs CPython 3.12+; "
                                      "attach without an address")
        # Signals wait until the attachment is the object's: nothing else would ever detach an
        # attachment at an address that a handler's exception separated from its owner.
        mask = _signal_mask()
        try:
            _defer_signals()
            self._attach_at_deferred(address, flags, readonly)
        finally:
            _restore_signals(mask)

    def _attach_at_deferred(self, address: int, flags: int, readonly: bool) -> None:
        length = _round_up(max(self._size, 1), PAGE_SIZE)
        start = address - address % _SHMLBA if flags & SHM_RND else address
        if not _CPYTHON and _parked(start, start + length):
            flags |= SHM_REMAP           # our own leftover private memory: replace it
        result = _shmat(self._id, address, flags)
        if result == _MAP_FAILED:
            err = _get_errno()
            call = "shmat(id=%d, address=%#x, flags=%#o)" % (self._id, address, flags)
            if err == _errno.EINVAL and address % _SHMLBA and not flags & SHM_RND:
                call += " (the address must be a multiple of SHMLBA, %d, or use SHM_RND)" \
                    % _SHMLBA
            raise _error(err, call)
        # Until the object owns the attachment, an exception (a signal handler's) undoes it.
        state = [result, length, True]      # [2] True: the owner's finalizer does nothing
        owner = None                        # type: Any
        try:
            if flags & SHM_REMAP:
                _parked(result, result + length, take=True)
            if self._align > PAGE_SIZE or self._page_probed:
                align = self._align
            else:                          # once per object: segments never change kind
                align = _kernel_page_size(result)
                self._page_probed = True
            if align > PAGE_SIZE:
                length = state[1] = _round_up(length, align)
                self._align = align
                self._prove_backed(result, length, readonly, None)
            owner = _ReadOnlyMemory(result, self._size) if readonly else \
                (ctypes.c_ubyte * length).from_address(result)
            weakref.finalize(owner, _release_raw, state).atexit = False  # views outlive exit
            _sweep_raw()
            _RAW.append((weakref.ref(owner), state))
            _PINNED[id(owner)] = owner     # the caller chose the address: only detach() ends it
            self._owner, self._base = owner, 0
            self._address, self._readonly, self._raw_state = result, readonly, state
            state[2] = False
            self._view = self._make_view()
        except BaseException:
            if self._view is None:         # not published: nothing can reach it
                state[2] = True
                _PINNED.pop(id(owner), None)
                self._owner = self._address = self._raw_state = None
                if _CPYTHON:
                    _shmdt(result)
                else:
                    _overlay(result, length, readonly)
                    _PARKED.append([result, result + length])
            raise

    def detach(self) -> None:
        """Wrapper around ``shmdt()``.  CPython: raises BufferError (and stays attached, every
        view valid) while a view into the segment is alive.  PyPy: private zero memory replaces
        the segment under any view left.  NotAttachedError if not attached."""
        with self._lock:
            self._refuse_reentry("detach")
            try:
                self._busy = True
                self._detach()
            finally:
                self._busy = False

    def _detach(self) -> None:
        view, owner, address = self._view, self._owner, self._address
        if view is None:
            raise self._not_attached("detach")
        pinned = False
        alive = None             # type: Any
        try:
            self._view = None    # from here on, nothing can make a new view of this attachment
            pinned = _PINNED.pop(id(owner), None) is not None
            if not _CPYTHON:
                # PyPy counts no exports: replace the segment by private memory, atomically.
                length = _round_up(max(self._size, 1), self._align)
                if address is not None:
                    _overlay(address, length, self._readonly)
                    if self._raw_state is not None:
                        self._raw_state[2] = True       # the overlay stays: never unmapped
                        _PARKED.append([address, address + length])
            else:
                # Our own view is never handed out (`buf` gives slices of it), so releasing it
                # cannot fail.  What is left alive: an mmap counts it (close() raises
                # BufferError); any other owner is kept alive by it.
                view.release()
                if self._raw_state is None:
                    import mmap
                    mmap.mmap.close(owner)
                else:
                    alive = weakref.ref(owner)
                    self._owner = owner = None
                    if alive() is not None:      # None: freed, and its finalizer did shmdt()
                        raise BufferError(_BUSY)
                    _sweep_raw()      # (a finalizer that a handler's exception cut short)
        except BaseException as exc:
            # An exception can also come from a signal handler, after the step that detached
            # returned: ask the state what happened, not the control flow.
            if alive is not None:
                owner = alive()
            if _CPYTHON:
                gone = owner is None if self._raw_state is not None else owner.closed
            else:                 # an overlay again is harmless: private memory for private
                gone = not isinstance(exc, Error)
                if gone and address is not None:
                    length = _round_up(max(self._size, 1), self._align)
                    _overlay(address, length, self._readonly)
                    if self._raw_state is not None and not self._raw_state[2]:
                        self._raw_state[2] = True
                        _PARKED.append([address, address + length])
            if gone:
                self._owner = self._address = None
                owner = view = None
                raise
            self._owner = owner
            if pinned:
                _PINNED[id(owner)] = owner
            self._view = self._make_view()
            # The exception's traceback keeps this frame: a reference left in it would keep the
            # mapping "alive" for a detach() retried in the caller's `except BufferError:`.
            owner = view = None
            if isinstance(exc, BufferError):
                raise BufferError(_BUSY) from None
            raise
        self._owner = self._address = None

    def _not_attached(self, what: str) -> NotAttachedError:
        exc = NotAttachedError(_errno.EINVAL, "not attached")
        exc.call = "%s(id=%d)" % (what, self._id)
        return exc

    # -- data -----------------------------------------------------------------------------------
    @property
    def buf(self) -> memoryview:
        """The whole segment as a zero-copy memoryview (format 'B', read-only for SHM_RDONLY).

        Each access gives a new view, so releasing one (``with shm.buf as view:``) affects
        nothing else; keep it in a variable in a hot loop."""
        view = self._view
        if view is None:
            raise self._not_attached("buf")
        return view[:]

    def __buffer__(self, flags: int) -> memoryview:   # PEP 688 (3.12+): memoryview(shm)
        view = self.buf
        if flags & 1 and view.readonly:                # inspect.BufferFlags.WRITABLE
            raise BufferError("the segment is attached read-only")
        return view

    def read(self, byte_count: int = 0, offset: int = 0) -> bytes:
        """Copy out ``byte_count`` bytes (0: to the end) from ``offset``; clipped at the end."""
        byte_count = _index(byte_count, "byte_count")   # first: __index__ may run any code
        offset = _index(offset, "offset")
        view = self._view
        if view is None:
            raise self._not_attached("read")
        size = self._size
        if offset < 0 or offset >= size:
            raise ValueError("offset must be between 0 and %d, not %d" % (size - 1, offset))
        if byte_count < 0:
            raise ValueError("byte_count must be >= 0, not %d" % byte_count)
        end = offset + byte_count
        if byte_count == 0 or end > size:
            end = size
        return view[offset:end].tobytes()

    def write(self, s: "Union[bytes, str, Any]", offset: int = 0) -> None:
        """Copy ``s`` (bytes-like; str is encoded UTF-8) into the segment at ``offset``."""
        if type(s) is not bytes:            # the common case first: one test on the hot path
            if isinstance(s, str):
                s = s.encode("utf-8")
            elif type(s) is not bytearray:  # a subclass's __len__ could run code: a flat view
                try:
                    flat = memoryview(s)
                except TypeError:
                    raise TypeError("write() needs bytes, a bytes-like object or str, not %s"
                                    % type(s).__name__) from None
                if not flat.c_contiguous:
                    raise TypeError("write() needs a contiguous buffer (this %s is strided: "
                                    "copy it with bytes() first)" % type(s).__name__)
                s = flat.cast("B")
        offset = _index(offset, "offset")   # before the view is taken: __index__ may detach
        view = self._view
        if view is None or self._readonly:
            if view is None:
                raise self._not_attached("write")
            exc = AccessError(_errno.EACCES, "segment attached read-only (SHM_RDONLY)")
            exc.call = "write(id=%d)" % self._id
            raise exc
        end = offset + len(s)
        if offset < 0 or end > self._size:
            raise ValueError("writing %d bytes at offset %d does not fit in %d bytes"
                             % (len(s), offset, self._size))
        view[offset:end] = s

    def read_into(self, buffer: "Any", offset: int = 0) -> int:
        """Copy from ``offset`` into a writable ``buffer`` (memcpy speed, no temporary);
        returns the number of bytes copied: min(len(buffer), size - offset)."""
        offset = _index(offset, "offset")
        with memoryview(buffer) as dest:    # (a __buffer__ of the caller's may run any code)
            if dest.readonly:
                raise TypeError("read_into() needs a writable buffer")
            view = self._view
            if view is None:
                raise self._not_attached("read_into")
            size = self._size
            if offset < 0 or offset > size:
                raise ValueError("offset must be between 0 and %d, not %d" % (size, offset))
            with dest.cast("B") as flat:
                count = min(flat.nbytes, size - offset)
                flat[:count] = view[offset:offset + count]
        return count

    if TYPE_CHECKING:   # as_ctypes(MyStruct) is a MyStruct; as_ctypes() a c_ubyte array
        @overload
        def as_ctypes(self, ctype: None = None, offset: int = 0) -> "ctypes.Array[ctypes.c_ubyte]":
            ...

        @overload
        def as_ctypes(self, ctype: "Type[_CT]", offset: int = 0) -> "_CT":
            ...

    def as_ctypes(self, ctype: "Any" = None, offset: int = 0) -> "Any":
        """The segment as a ctypes object: a byte array (default) or an instance of ``ctype``
        (a Structure mirroring a C struct, ``c_uint32 * 16``, ...) at ``offset``; bounds-checked.
        The object keeps the mapping alive (detach() raises BufferError while it exists)."""
        if ctype is not None:
            _check_ctype(ctype)
        offset = _index(offset, "offset")
        for step in ("fits", "final"):
            # Twice: the pointer probe reads the type's fields, and a caller's __getattribute__
            # may run then (and detach, or attach read-only): the final checks and from_buffer
            # use a snapshot taken after it, with no caller's code in between.
            view, owner, base, size = self._view, self._owner, self._base, self._size
            if view is None:
                raise self._not_attached("as_ctypes")
            if self._readonly:
                raise TypeError("the segment is attached read-only and ctypes objects are always "
                                "writable; use ctype.from_buffer_copy(shm.buf, offset) to copy")
            if not 0 <= offset <= size:
                raise ValueError("offset must be between 0 and %d, not %d" % (size, offset))
            kind = ctypes.c_ubyte * (size - offset) if ctype is None else ctype
            need = ctypes.sizeof(kind)
            if offset + need > size:
                raise ValueError("%s (%d bytes) at offset %d does not fit in %d bytes"
                                 % (getattr(kind, "__name__", kind), need, offset, size))
            if step == "fits" and ctype is not None and _follows_pointers(ctype):
                raise TypeError("%s holds pointers (c_char_p, c_wchar_p, c_void_p, py_object, "
                                "POINTER, function pointers) that ctypes would follow or that mean "
                                "nothing in another process, and any process could aim them "
                                "anywhere; declare an address-sized integer (c_size_t) instead"
                                % getattr(ctype, "__name__", ctype))
        try:
            return kind.from_buffer(owner, base + offset)
        except (ValueError, TypeError):       # detached meanwhile (another thread)
            if self._view is None:
                raise self._not_attached("as_ctypes") from None
            raise

    def prefault(self) -> None:
        """Fault every page in now (madvise MADV_POPULATE_WRITE, Linux 5.14+; else one read per
        page), so that first touches later do not pay ~2 us a page.  Nothing is written.  A
        page that cannot be backed (huge pages exhausted) raises an error, never SIGBUS."""
        view, address = self._view, self._address
        if view is None or address is None:
            raise self._not_attached("prefault")
        if not self._populate(address, not self._readonly):
            if self._align > PAGE_SIZE:
                raise _error(_errno.EINVAL, "prefault(id=%d): this kernel cannot populate "
                             "(MADV_POPULATE, Linux 5.14+), and touching a huge page that is "
                             "not backed is SIGBUS" % self._id)
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

    key = _ReadOnly(lambda self: self._key, "The key given to the constructor (the random "
                    "one chosen for key=None; IPC_PRIVATE is 0); attach(id) gives the kernel's "
                    "key_t.")  # type: _ReadOnly[int]
    size = _ReadOnly(lambda self: self._size, "The segment's size in bytes (shm_segsz); "
                     "segments never resize.")  # type: _ReadOnly[int]
    address = _ReadOnly(_shm_address, _shm_address.__doc__ or "")
    attached = _ReadOnly(lambda self: self._view is not None, "True while the segment is "
                         "attached in this process.")  # type: _ReadOnly[bool]
    readonly = _ReadOnly(lambda self: self._readonly, "True if attached read-only (readonly=True "
                         "or SHM_RDONLY): write() raises AccessError, ``buf`` is a read-only "
                         "memoryview.")  # type: _ReadOnly[bool]
    last_attach_time = _kind_field("atime", "Last shmat() by anyone (shm_atime).")
    last_detach_time = _kind_field("dtime", "Last shmdt() by anyone (shm_dtime).")
    last_change_time = _kind_field("ctime", "Last IPC_SET (shm_ctime).")
    creator_pid = _kind_field("cpid", "The creator's pid (shm_cpid).")
    last_pid = _kind_field("lpid", "The pid of the last shmat()/shmdt() (shm_lpid).")
    number_attached = _kind_field("nattch", "The number of attachments (shm_nattch).")
    removed = _ReadOnly(lambda self: bool(_stat("shm", self._id)["mode"] & _SHM_DEST),
                        "True once remove() was called: the kernel destroys the segment at its "
                        "last detach (SHM_DEST).")  # type: _ReadOnly[bool]
    locked = _ReadOnly(lambda self: bool(_stat("shm", self._id)["mode"] & _SHM_LOCKED),
                       "True while lock() keeps the segment in RAM (SHM_LOCKED)."
                       )  # type: _ReadOnly[bool]


# --- Semaphores ----------------------------------------------------------------------------------
_INIT_GRACE = 2.0   # seconds a fresh set may stay uninitialised before an opener stops waiting
_monotonic = time.monotonic
# sysv_ipc's sentence first (its own tests compare it), then what was wrong.
_VALUE_ERROR = "The semaphore's value must remain between 0 and SEMVMX"
_SEM_NUM_MAX = 65535        # struct sembuf's sem_num is an unsigned short
_INT_MAX = 2 ** 31 - 1


def _sem_limits() -> "Tuple[int, int]":
    """(SEMMSL, SEMOPM) of this IPC namespace: the most semaphores in a set and the most
    operations in one semop (/proc/sys/kernel/sem; IPC_INFO where /proc cannot tell)."""
    try:
        with open("/proc/sys/kernel/sem") as limits:
            semmsl, _semmns, semopm = [int(field) for field in limits.read().split()[:3]]
        return semmsl, semopm
    except (OSError, ValueError):
        pass
    info = ctypes.create_string_buffer(_LAYOUT["seminfo"][0])
    if _semctl(0, 0, 3, ctypes.byref(info)) < 0:       # IPC_INFO
        return 32000, 500                             # Linux's defaults
    fields = _LAYOUT["seminfo"][1]
    return (struct.unpack_from("=i", info.raw, fields["semmsl"][0])[0],
            struct.unpack_from("=i", info.raw, fields["semopm"][0])[0])


def _sem_value(value: "Any") -> int:
    checked = _index(value, "semaphore value")
    if not 0 <= checked <= SEMAPHORE_VALUE_MAX:
        raise _ArgumentRangeError("%s (%d), not %d" % (_VALUE_ERROR, SEMAPHORE_VALUE_MAX,
                                                       checked))
    return checked


def _sem_delta(delta: "Any") -> int:
    """|delta| of acquire/release: sysv_ipc's documented behaviour ("the value decreases by
    abs(delta)"), checked to 1..SEMVMX (sem_op is a short, and the kernel refuses more)."""
    size = abs(_index(delta, "delta"))
    if not 1 <= size <= SEMAPHORE_VALUE_MAX:
        raise _ArgumentRangeError("delta must be between 1 and SEMVMX (%d) in absolute value "
                                  "(its sign is ignored, as in sysv_ipc), not %d"
                                  % (SEMAPHORE_VALUE_MAX, _index(delta, "delta")))
    return size


_WAIT_CHUNK = 2.0 ** 31 - 1    # the longest single semtimedop wait; longer timeouts loop
# What a failed call can report in its own situation (the man pages' ERRORS), besides EINTR
# and the "would block" errno of a non-blocking call.
_SEMOP_ERRNOS = frozenset((_errno.E2BIG, _errno.EACCES, _errno.EFAULT, _errno.EFBIG, _errno.EIDRM,
                           _errno.EINVAL, _errno.ENOMEM, _errno.ERANGE, _errno.ENOSPC))
_MSGSND_ERRNOS = frozenset((_errno.EACCES, _errno.EFAULT, _errno.EIDRM, _errno.EINVAL,
                            _errno.ENOMEM))
_MSGRCV_ERRNOS = frozenset((_errno.E2BIG, _errno.EACCES, _errno.EFAULT, _errno.EIDRM,
                            _errno.EINVAL, _errno.ENOSYS))
_GONE = (_errno.EIDRM, _errno.EINVAL)


def _confirmed(err: int, previous: int, possible: "FrozenSet[int]") -> int:
    """Decide what errno `err` of a failed semop/msgsnd/msgrcv means.  Returns 0 to retry the
    call, -1 to retry it and believe `err` if the retry fails the same way, or the errno to
    report (`previous`, the first of two matching failures).

    ctypes keeps one saved errno per thread, and a Python signal handler can run between the
    foreign call and get_errno(): if the handler makes a failing ctypes call (a non-blocking
    try, say), the errno read here is the handler's.  Nothing can read errno before Python code
    runs again, so the answer is believed only if the situation can produce it: EINTR and any
    errno the call cannot produce mean retry (the handler ran, so the call was interrupted),
    and a possible one must come twice in a row (a failed call changes nothing, so a retry is
    harmless; a real error is persistent and comes again at once)."""
    if err not in possible:
        return 0
    if previous == err or previous in _GONE and err in _GONE:
        return previous
    return -1


def _semop_error(err: int, nowait: bool, describe: "Callable[[], str]") -> Error:
    cls = None  # type: Any
    if err == _errno.EAGAIN:
        cls = WouldBlockError if nowait else TimedOutError
    elif err in _GONE:
        cls = RemovedError
    exc = _error(err, describe(), cls)
    if err == _errno.ERANGE:
        exc.strerror = "%s: a semaphore's value would go above SEMVMX (%d)" % (
            _VALUE_ERROR, SEMAPHORE_VALUE_MAX)
    elif err == _errno.E2BIG:
        exc.strerror = "more operations than one semop() may apply (SEMOPM is %d)" % (
            _sem_limits()[1])
    elif err == _errno.EFBIG:
        exc.strerror = "a semaphore index beyond the set's size"
    return exc


def _semop_wait(semid: int, sops: "Any", nsops: int, timeout: "Optional[float]",
                describe: "Callable[[], str]") -> None:
    """semop / semtimedop with EINTR retried on the remaining time.

    Linux never restarts semop after a signal handler; ctypes returns EINTR, the Python handler
    runs at the next bytecode, and an exception it raises (KeyboardInterrupt) leaves this loop.
    The errno read afterwards is trusted only as far as _confirmed() says: an untimed wait
    without IPC_NOWAIT cannot get EAGAIN, and a timed one gets it only once its time is up."""
    ref, count = ctypes.byref(sops), ctypes.c_size_t(nsops)
    nowait = any(sop.sem_flg & IPC_NOWAIT for sop in sops)
    deadline = 0.0 if timeout is None else _monotonic() + timeout
    timed = _semtimedop_fast    # type: Any
    if timeout is not None and timed is None:
        return _semop_poll(semid, sops, count, deadline, nowait, describe)
    spec = _timespec()
    spec_ref = ctypes.byref(spec)
    previous = 0
    while True:
        if timeout is None:
            if _semop_fast(semid, ref, count) == 0:
                return
        else:
            remaining = max(0.0, deadline - _monotonic())
            wait = min(remaining, _WAIT_CHUNK)      # tv_sec is a C long: 32 bits on 32-bit ABIs
            spec.tv_sec = int(wait)
            spec.tv_nsec = int((wait - spec.tv_sec) * 1e9)
            if timed(semid, ref, count, spec_ref) == 0:
                return
        err = _get_errno()
        if err == _errno.EAGAIN:
            if nowait or timeout is not None and _monotonic() >= deadline:
                raise _semop_error(err, nowait, describe)
            previous = 0          # untimed, or time left (a longer wait, or not ours): again
            continue
        verdict = _confirmed(err, previous, _SEMOP_ERRNOS)
        if verdict > 0:
            raise _semop_error(verdict, nowait, describe)
        previous = err if verdict else 0


def _semop_poll(semid: int, sops: "Any", count: "Any", deadline: float, nowait: bool,
                describe: "Callable[[], str]") -> None:
    """The timeout fallback where libc has no semtimedop: IPC_NOWAIT tries, bounded sleeps."""
    trial = type(sops)()
    ctypes.memmove(trial, sops, ctypes.sizeof(sops))
    for sop in trial:
        sop.sem_flg |= IPC_NOWAIT
    delay = 0.0005
    previous = 0
    while _semop_fast(semid, ctypes.byref(trial), count) != 0:
        err = _get_errno()
        if err == _errno.EAGAIN:
            if nowait or _monotonic() >= deadline:
                raise _semop_error(err, nowait, describe)
            time.sleep(min(delay, max(0.0, deadline - _monotonic())))
            delay = min(delay * 2, 0.02)
            previous = 0
            continue
        verdict = _confirmed(err, previous, _SEMOP_ERRNOS)
        if verdict > 0:
            raise _semop_error(verdict, nowait, describe)
        previous = err if verdict else 0


def _sem_initialise(semid: int, values: "List[int]") -> None:
    """Set the values of a set we just created, then make sem_otime non-zero (FACTS §6).

    SETVAL/SETALL leave sem_otime at 0; one semop that adds and takes back 1 (atomically, so the
    value never changes) marks the set initialised for everyone who opens it concurrently."""
    if any(values):
        array = (ctypes.c_ushort * len(values))(*values)
        _check(_semctl(semid, 0, _SETALL, ctypes.byref(array)),
               lambda: "semctl(id=%d, SETALL)" % semid)
    step = 1 if values[0] < SEMAPHORE_VALUE_MAX else -1
    marks = (_sembuf * 2)(_sembuf(0, step, IPC_NOWAIT), _sembuf(0, -step, IPC_NOWAIT))
    _check(_semop(semid, marks, 2), lambda: "semop(id=%d, initialised mark)" % semid)


def _await_initialised(semid: int) -> None:
    """Wait (bounded) until the creator of a set marked it initialised (sem_otime != 0).

    Only create-or-open (IPC_CREAT) waits: that caller takes part in the protocol; a plain open
    returns at once (blocked waiters are woken by the creator's SETALL anyway).

    A set that never saw a semop and was created (or last SETVAL'd) more than _INIT_GRACE
    seconds ago is taken as it is: a foreign program's set must not hang the opener.  Nor does
    a caller who may alter the set but not read it (IPC_STAT needs read permission) wait: it
    cannot see sem_otime, and semop() itself does not need it."""
    delay, limit = 0.0005, _monotonic() + _INIT_GRACE + 1.0
    while True:
        try:
            stat = _stat("sem", semid)
        except AccessError:
            return
        if stat["otime"] or stat["ctime"] + _INIT_GRACE <= time.time() or _monotonic() > limit:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


_FLAG_NAMES = {IPC_CREAT: "IPC_CREAT", IPC_EXCL: "IPC_EXCL", IPC_CREX: "IPC_CREX"}


def _flags_as_nsems(nsems: int, flags: int) -> str:
    """The argument-order trap: SemaphoreSet(key, IPC_CREAT) passes the flags as nsems."""
    if flags or nsems not in _FLAG_NAMES:
        return ""
    return ("; nsems=%d is %s: the flags come third, SemaphoreSet(key, nsems, %s)"
            % (nsems, _FLAG_NAMES[nsems], _FLAG_NAMES[nsems]))


def _open_set(key: "Any", nsems: int, flags: int, mode: int,
              values: "List[int]") -> "Tuple[int, int, bool]":
    """semget with the race-free create-or-open protocol; returns (id, key as reported, whether
    this call created the set - then initialised, and the caller's to remove should it fail)."""
    if "sem" not in _checked:
        _selfcheck("sem")
    ckey = 0

    def describe() -> str:
        return "semget(key=%s, nsems=%d, flags=%#o)" % (_fmt_key(ckey), nsems, flags)

    def fail() -> "Any":
        err = _get_errno()
        if err == _errno.EINVAL and nsems == 0 and flags & IPC_CREAT:
            raise ValueError("no semaphore set has key %s, and creating one needs nsems >= 1"
                             % _fmt_key(ckey))
        exc = _error(err, describe())
        hint = _flags_as_nsems(nsems, flags)
        if hint and err in (_errno.ENOENT, _errno.EINVAL):
            exc.strerror = "%s%s" % (exc.strerror, hint)
        raise exc
    if key is None:
        if flags & IPC_CREX != IPC_CREX:
            raise ValueError("key=None (a random unused key) needs flags=IPC_CREX%s"
                             % (_flags_as_nsems(nsems, flags)
                                or " (the flags are the third argument of SemaphoreSet)"
                                if nsems in _FLAG_NAMES else ""))
        if nsems == 0:
            raise ValueError("creating a set needs nsems >= 1")
        ident, ckey = _create_at_random_key(lambda k: int(_semget(k, nsems, IPC_CREX | mode)))
        if ident < 0:
            fail()
        return _initialise_new(ident, values), ckey, True
    key = _index(key, "key")        # once: the caller's __index__ runs a single time
    ckey = _key_t(key)
    if ckey == IPC_PRIVATE:     # always a new set, whatever the flags
        if nsems == 0:
            raise ValueError("creating a set needs nsems >= 1 (IPC_PRIVATE always creates)")
        ident = _semget(ckey, nsems, IPC_CREAT | mode)
        if ident < 0:
            fail()
        return _initialise_new(ident, values), key, True
    for _ in range(100):    # a set removed between our two semget calls: try again
        if flags & IPC_CREAT:
            ident = _semget(ckey, nsems, IPC_CREX | mode)
            if ident >= 0:
                return _initialise_new(ident, values), key, True
            if _get_errno() != _errno.EEXIST or flags & IPC_EXCL:
                fail()
        # With IPC_CREAT the kernel checks `mode` against the existing set, as semget() in C.
        ident = _semget(ckey, nsems, mode if flags & IPC_CREAT else 0)
        if ident >= 0:
            if flags & IPC_CREAT:
                _await_initialised(ident)
            return ident, key, False
        if not flags & IPC_CREAT or _get_errno() != _errno.ENOENT:
            fail()
    raise _error(_errno.EAGAIN, describe())


def _creation_mask(key: "Any", flags: int) -> "Any":
    """The signal mask to restore after a constructor that may create (key None, IPC_PRIVATE or
    IPC_CREAT): signals from outside are deferred meanwhile (_defer_signals), so that no
    handler's exception (Ctrl-C included) can fall between the call that creates the object and
    the code that removes it should a later step fail.  None for a plain open."""
    if key is None or flags & IPC_CREAT or key == IPC_PRIVATE:
        return _signal_mask()
    return None


def _initialise_new(ident: int, values: "List[int]") -> int:
    try:
        _sem_initialise(ident, values)
    except BaseException:
        _semctl(ident, 0, _IPC_RMID)    # ours, never seen initialised: do not leave it behind
        raise
    return ident


_SEM_DS_SIZE = _LAYOUT["sem"][0]
_NSEMS_AT, _NSEMS_CODE = _LAYOUT["sem"][1]["nsems"]
_NSEMS_CODE = "=" + _NSEMS_CODE


def _sem_nsems(semid: int) -> int:
    """sem_nsems by IPC_STAT (the layout is checked once by _selfcheck), or -1 if the call
    failed (the caller then takes the general path, which reports errors)."""
    buf = ctypes.create_string_buffer(_SEM_DS_SIZE)
    if _semctl_fast(semid, 0, _IPC_STAT, ctypes.byref(buf)) != 0:
        return -1
    # .raw: PyPy 8's struct refuses a ctypes array as a buffer
    return int(struct.unpack_from(_NSEMS_CODE, buf.raw, _NSEMS_AT)[0])


def _set_size(semid: int) -> int:
    """The number of semaphores in a set this process opened: IPC_STAT's sem_nsems, or, for a
    caller who may alter the set but not read it, found by semop itself.  semop checks every
    index against the set's size before it checks permissions, and an operation of -32768
    with IPC_NOWAIT can never succeed (no value is that high), so it fails with EFBIG exactly
    when the index is beyond the set, and changes nothing."""
    try:
        return _stat("sem", semid)["nsems"]
    except AccessError:
        pass
    probe = _sembuf(0, -32768, IPC_NOWAIT)
    ref = ctypes.byref(probe)

    def beyond(index: int) -> bool:
        probe.sem_num = index
        if _semop(semid, ref, 1) == 0:      # cannot happen; a set of at least index + 1
            return False
        err = _get_errno()
        if err in _GONE:
            raise _error(err, "semop(id=%d, size probe)" % semid, RemovedError)
        return err == _errno.EFBIG
    low, high = 1, _SEM_NUM_MAX + 1         # the size is in low..high; sem_num reaches 65535
    if not beyond(high - 1):
        return high
    while low < high:                       # the first index beyond the set
        middle = (low + high) // 2
        if beyond(middle):
            high = middle
        else:
            low = middle + 1
    return low


# Prebuilt sembufs by (index, flags): P, V, Z, and P and Z with IPC_NOWAIT (the try-locks), each
# wrapped in byref() once.  The kernel only reads them and nothing here writes them after they
# are built, so every handle on the same member and flags shares one set: opening a Semaphore
# allocates none.  A few dozen entries at most (indexes in use x 4 flag combinations).
_SEM_REFS = {}   # type: Dict[Tuple[int, int], Tuple[Any, ...]]
_INT_ONLY = frozenset((int,))
# Identity checks of the fast paths: only the int itself can be `is` these (never True, 0.0 or
# an int subclass), so a hit needs no further check; a miss just takes the checked way.
_ZERO, _ONE, _MODE_600 = 0, 1, 0o600
_int_set = frozenset
_chain = itertools.chain
_is = operator.is_


def _sem_refs(index: int, flags: int) -> "Tuple[Any, ...]":
    refs = _SEM_REFS.get((index, flags))
    if refs is None:
        nowait = flags | IPC_NOWAIT
        bufs = (_sembuf(index, -1, flags), _sembuf(index, 1, flags),
                _sembuf(index, 0, flags & ~SEM_UNDO), _sembuf(index, -1, nowait),
                _sembuf(index, 0, nowait & ~SEM_UNDO))
        refs = _SEM_REFS.setdefault((index, flags), tuple(ctypes.byref(b) for b in bufs))
    return refs


class _SemaphoreOps(_NoCopy):
    """acquire/release/Z and value/block/undo of semaphore `index` of set `id`.

    The sembufs are prebuilt and wrapped in byref() once (_sem_refs); the undeclared semop
    handle is called directly on the fast paths (FACTS §8); errno is read only on failure.
    nsops goes as a plain int 1 (a C int: a c_size_t object would cost a conversion object
    per call); only the kernel reads it, as an unsigned int, and libffi widens it anyway.

    Fast paths (one semop, nothing allocated): acquire() / Z() without a timeout, a try
    (timeout 0, or block False), the first try of a timed wait, release()."""

    _id = -1
    _index = 0
    _block = True
    _undo = False
    _flags = 0

    def _setup(self, ident: int, index: int) -> None:
        self._id, self._index = ident, index
        (self._p_ref, self._v_ref, self._z_ref, self._pn_ref,
         self._zn_ref) = _SEM_REFS.get((index, 0)) or _sem_refs(index, 0)

    def _set_flags(self) -> None:
        nowait = 0 if self._block else IPC_NOWAIT
        self._flags = (SEM_UNDO if self._undo else 0) | nowait
        (self._p_ref, self._v_ref, self._z_ref, self._pn_ref,
         self._zn_ref) = _sem_refs(self._index, self._flags)

    def _wait(self, op: int, timeout: "Any", what: str) -> None:
        timeout = _timeout(timeout)
        flags = self._flags if op else self._flags & ~SEM_UNDO
        sops = (_sembuf * 1)(_sembuf(self._index, op, flags))
        _semop_wait(self._id, sops, 1, timeout, lambda: "%s(id=%d, index=%d, delta=%d, timeout=%r)"
                    % (what, self._id, self._index, op, timeout))

    def _busy(self, what: str, op: int, timeout: "Any") -> None:
        """After a failed try on a fast path: EAGAIN is the answer (an IPC_NOWAIT semop cannot
        be interrupted); anything else goes the slow way, which confirms it."""
        if _get_errno() == _errno.EAGAIN:     # timeout 0 "timed out", as semtimedop says
            raise _error(_errno.EAGAIN, "%s(id=%d, index=%d, delta=%d, timeout=%r)"
                         % (what, self._id, self._index, op, timeout),
                         TimedOutError if self._block else WouldBlockError)

    def acquire(self, timeout: "Optional[float]" = None, delta: int = 1) -> None:
        """Wrapper around ``semop()`` / ``semtimedop()``: wait until the value is >= |delta|,
        then subtract it (sysv_ipc: "decreases by abs(delta)").  timeout None waits forever,
        0 tries once, > 0 waits at most that long; BusyError (also TimeoutError /
        BlockingIOError) when it cannot."""
        if delta is _ONE:       # (only the int 1 itself can be it: True, 1.0 go the checked way)
            if timeout is None:
                if _semop_fast(self._id, self._p_ref, 1) == 0:
                    return
                if not self._block:
                    self._busy("acquire", -1, timeout)
            elif (timeout is _ZERO or (timeout.__class__ is float or timeout.__class__ is int)
                  and timeout >= 0):
                # A try, or the first try of a timed wait: no timespec, no closure.
                if _semop_fast(self._id, self._pn_ref, 1) == 0:
                    return
                if timeout == 0 or not self._block:
                    self._busy("acquire", -1, timeout)
        self._wait(-_sem_delta(delta), timeout, "acquire")

    def release(self, delta: int = 1) -> None:
        """Wrapper around ``semop()``: add |delta| to the value (never blocks)."""
        if delta is _ONE and _semop_fast(self._id, self._v_ref, 1) == 0:
            return
        self._wait(_sem_delta(delta), None, "release")

    def Z(self, timeout: "Optional[float]" = None) -> None:
        """Wrapper around ``semop()`` with sem_op 0: wait until the value is zero."""
        if timeout is None:
            if _semop_fast(self._id, self._z_ref, 1) == 0:
                return
            if not self._block:
                self._busy("Z", 0, timeout)
        elif (timeout is _ZERO or (timeout.__class__ is float or timeout.__class__ is int)
              and timeout >= 0):
            if _semop_fast(self._id, self._zn_ref, 1) == 0:
                return
            if timeout == 0 or not self._block:
                self._busy("Z", 0, timeout)
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
    last_pid = pid = _ReadOnly(lambda self: self._getctl(_GETPID, "GETPID"),
                               "The pid of the last semop() on this semaphore (semctl "
                               "GETPID); ``pid`` is the same.")  # type: _ReadOnly[int]
    waiting_for_nonzero = ncnt = _ReadOnly(
        lambda self: self._getctl(_GETNCNT, "GETNCNT"), "The number of processes waiting "
        "for the value to increase (semctl GETNCNT); ``ncnt`` is the same."
    )  # type: _ReadOnly[int]
    waiting_for_zero = zcnt = _ReadOnly(
        lambda self: self._getctl(_GETZCNT, "GETZCNT"), "The number of processes waiting "
        "for the value to become zero (semctl GETZCNT); ``zcnt`` is the same."
    )  # type: _ReadOnly[int]

    def __enter__(self: "_Sem") -> "_Sem":
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
    _p_ref, _v_ref, _z_ref, _pn_ref, _zn_ref = _sem_refs(0, 0)

    def __init__(self, key: "Optional[int]", flags: int = _ZERO, mode: int = _MODE_600,
                 initial_value: int = _ZERO) -> None:
        if (key.__class__ is int and 0 < key <= 0x7FFFFFFF and flags is _ZERO
                and (mode is _MODE_600 or mode.__class__ is int and 0 <= mode <= 0o777)
                and (initial_value is _ZERO or initial_value.__class__ is int
                     and 0 <= initial_value <= SEMAPHORE_VALUE_MAX) and "sem" in _checked):
            # Opening an existing semaphore by key: every argument checked as below, and one
            # system call, semget(key, 1, 0) - the least that can open it (the kernel checks
            # the key, that the set has a semaphore, and nothing else: no right is asked for).
            # On failure, the general path below repeats it and reports the error.
            ident = _semget_fast(key, 1, 0)
            if ident >= 0:
                self._key = key
                self._id = ident      # the sembufs of member 0, flags 0: the class's
                return
        flags = _check_flags(flags, IPC_CREX, "Semaphore")
        mode = _check_mode(mode)
        initial_value = _sem_value(initial_value)
        ident, created = -1, False
        mask = _creation_mask(key, flags)
        try:
            if mask is not None:
                _defer_signals()
            ident, self._key, created = _open_set(key, 1, flags, mode, [initial_value])
            self._setup(ident, 0)
            if mask is not None:
                deferred, mask = mask, None
                _restore_signals(deferred)   # a handler's exception here still removes it
        except BaseException:
            if created:
                _semctl(ident, 0, _IPC_RMID)    # never leave behind what this call created
            raise
        finally:
            if mask is not None:
                _restore_signals(mask)

    def __repr__(self) -> str:
        return "<%s key=%s id=%d>" % (type(self).__name__, _fmt_key(_key_t(self._key)), self._id)

    def remove(self) -> None:
        """Wrapper around ``semctl(IPC_RMID)``; processes waiting on it get EIDRM."""
        _check(_semctl(self._id, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % self._id)

    key = _ReadOnly(lambda self: self._key, "The key given to the constructor (the random one "
                    "chosen for key=None; IPC_PRIVATE is 0).")  # type: _ReadOnly[int]
    o_time = _kind_field("otime", "The last semop() on the set (sem_otime).")
    last_change_time = _kind_field("ctime", "The last change of the set (sem_ctime).")


class SemaphoreMember(_SemaphoreOps):
    """Semaphore ``index`` of a SemaphoreSet (``sems[i]``): acquire/release/Z/value/block/undo,
    ncnt/zcnt/pid, a context manager as Semaphore; ``set`` is the SemaphoreSet it belongs to."""

    def __init__(self, semset: "SemaphoreSet", index: int) -> None:
        self.set = semset
        self._setup(semset.id, index)

    index = _ReadOnly(lambda self: self._index, "This semaphore's number in its set (sem_num)."
                      )  # type: _ReadOnly[int]

    def __repr__(self) -> str:
        return "<SemaphoreMember %d of set id=%d>" % (self._index, self._id)


class SemaphoreSet(_Permissions):
    """A System V semaphore set (semget(key, nsems)); opens a foreign program's set too.

    ``s[i]`` is a member that behaves like a Semaphore; ``op()`` applies several operations
    atomically (one semop); ``values`` reads/writes all values (GETALL/SETALL)."""

    _kind = "sem"
    _key = IPC_PRIVATE   # type: int

    def __init__(self, key: "Optional[int]", nsems: int = _ZERO, flags: int = _ZERO,
                 mode: int = _MODE_600,
                 initial_values: "Union[None, int, Sequence[int]]" = None) -> None:
        if (key.__class__ is int and 0 < key <= 0x7FFFFFFF and nsems is _ZERO and flags is _ZERO
                and (mode is _MODE_600 or mode.__class__ is int and 0 <= mode <= 0o777)
                and initial_values is None and "sem" in _checked):
            # Opening an existing set by key: every argument checked as below, and two system
            # calls - semget(key, 0, 0), which opens it without asking for any right, and
            # IPC_STAT for its size (len(), index checks).  Where IPC_STAT is not allowed (no
            # read permission), the general path below finds the size another way.
            ident = _semget_fast(key, 0, 0)
            if ident >= 0:
                size = _sem_nsems(ident)
                if size > 0:
                    self._key, self._id, self._nsems = key, ident, size
                    self._members = [None] * size   # type: List[Optional[SemaphoreMember]]
                    self._op_cache = {}    # type: Dict[int, Tuple[Any, ...]]
                    return
        flags = _check_flags(flags, IPC_CREX, "SemaphoreSet")
        mode = _check_mode(mode)
        nsems = _c_range(nsems, "nsems", 0, _INT_MAX)
        if key is None and flags & IPC_CREX != IPC_CREX and nsems in _FLAG_NAMES:
            _open_set(key, nsems, flags, mode, [])      # says what the likely mistake is
        if nsems > 1:       # before building initial values: the kernel refuses more anyway
            semmsl = _sem_limits()[0]
            if nsems > semmsl:
                raise _ArgumentRangeError(
                    "nsems must be between 0 and SEMMSL (%d, the most semaphores in a set: "
                    "/proc/sys/kernel/sem), not %d%s" % (semmsl, nsems,
                                                         _flags_as_nsems(nsems, flags)))
        if nsems == 0 and flags & IPC_EXCL and initial_values is None:
            raise ValueError("creating a set (IPC_CREX) needs nsems >= 1")
        if initial_values is None or isinstance(initial_values, int):
            values = [_sem_value(initial_values or 0)] * max(nsems, 1)
        else:
            values = [_sem_value(v) for v in initial_values]
            if nsems == 0:
                nsems = len(values)
            if len(values) != nsems:
                raise ValueError("%d initial values for %d semaphores" % (len(values), nsems))
        # nsems 0 with IPC_CREAT opens an existing set (the kernel's answer decides).
        ident, created = -1, False
        mask = _creation_mask(key, flags)
        try:
            if mask is not None:
                _defer_signals()
            ident, self._key, created = _open_set(key, nsems, flags, mode, values)
            self._id = ident
            # A set we created has the size we asked for: no IPC_STAT, which needs read
            # permission (a creator may have given itself only 0o200).
            self._nsems = nsems if created else _set_size(ident)
            self._members = [None] * self._nsems
            # op()'s prebuilt sembuf arrays by id() of the operation list (only ever read by
            # the kernel); each entry holds the list, so its id stays its own.
            self._op_cache = {}
            if mask is not None:
                deferred, mask = mask, None
                _restore_signals(deferred)   # a handler's exception here still removes it
        except BaseException:
            if created:
                _semctl(ident, 0, _IPC_RMID)    # never leave behind what this call created
            raise
        finally:
            if mask is not None:
                _restore_signals(mask)

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
        if index > _SEM_NUM_MAX:
            raise IndexError("semaphore index %d is beyond what semop() can address (sem_num is "
                             "an unsigned short: 0..%d)" % (index, _SEM_NUM_MAX))
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
        # A prebuilt list (or tuple) of tuples of ints, passed again: its sembuf array was
        # built and checked the first time.  The hit needs the same list object holding the
        # same tuple objects (tuples of exact ints cannot change; a list item replaced, added
        # or removed is a miss), so nothing is converted or checked twice.
        cached = self._op_cache.get(id(operations))
        if (cached is not None and cached[0] is operations and len(operations) == cached[2]
                and all(map(_is, operations, cached[1]))):
            if timeout is None and _semop_fast(self._id, cached[3], cached[2]) == 0:
                return
            shown = cached[5]
            _semop_wait(self._id, cached[4], cached[2], _timeout(timeout),
                        lambda: "semop(id=%d, %s, timeout=%r)" % (self._id, shown, timeout))
            return
        ops = tuple(map(tuple, operations))
        count = len(ops)
        if not count:
            raise ValueError("op() needs at least one operation")
        if count > 32:      # every kernel allows 32 (SEMOPM is 500 by default)
            semopm = _sem_limits()[1]
            if count > semopm:
                raise _ArgumentRangeError(
                    "op() got %d operations; one semop() applies at most SEMOPM (%d: "
                    "/proc/sys/kernel/sem)" % (count, semopm))
        sops = (_sembuf * count)()
        for number, (sop, operation) in enumerate(zip(sops, ops)):
            if len(operation) not in (2, 3):
                raise ValueError("operation %d is %r: an operation is (index, delta) or "
                                 "(index, delta, flags)" % (number, operation))
            index = _index(operation[0], "index")
            if not 0 <= index < min(self._nsems, _SEM_NUM_MAX + 1):
                raise IndexError("operation %d: semaphore index %d out of range (set of %d)"
                                 % (number, index, self._nsems))
            delta = _index(operation[1], "delta")
            if not -SEMAPHORE_VALUE_MAX <= delta <= SEMAPHORE_VALUE_MAX:
                raise _ArgumentRangeError(
                    "operation %d: delta must be between -SEMVMX and SEMVMX (%d), not %d"
                    % (number, SEMAPHORE_VALUE_MAX, delta))
            flags = _check_flags(operation[2] if len(operation) == 3 else 0,
                                 IPC_NOWAIT | SEM_UNDO, "op")
            sop.sem_num, sop.sem_op, sop.sem_flg = index, delta, flags
        timeout = _timeout(timeout)
        shown = repr(list(ops)) if count <= 8 else "%d operations" % count
        if ((operations.__class__ is list or operations.__class__ is tuple)
                and all(o.__class__ is tuple for o in operations)
                and _int_set(map(type, _chain(*operations))) == _INT_ONLY):
            if len(self._op_cache) >= 64:
                self._op_cache.clear()
            self._op_cache[id(operations)] = (operations, tuple(operations), count,
                                              ctypes.byref(sops), sops, shown)
        _semop_wait(self._id, sops, count, timeout,
                    lambda: "semop(id=%d, %s, timeout=%r)" % (self._id, shown, timeout))

    def remove(self) -> None:
        """Wrapper around ``semctl(IPC_RMID)``; processes waiting on it get EIDRM."""
        _check(_semctl(self._id, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % self._id)

    key = _ReadOnly(lambda self: self._key, "The key given to the constructor (the random one "
                    "chosen for key=None; IPC_PRIVATE is 0).")  # type: _ReadOnly[int]
    o_time = _kind_field("otime", "The last semop() on the set (sem_otime).")
    last_change_time = _kind_field("ctime", "The last change of the set (sem_ctime).")


# --- Message queues ------------------------------------------------------------------------------
_MTEXT = ctypes.sizeof(ctypes.c_long)    # offsetof(struct msgbuf, mtext): the type is a C long
_LONG_MAX = 2 ** (8 * _MTEXT - 1) - 1
_LONG_MIN = -_LONG_MAX - 1
_MSG_2048 = 2048       # max_message_size's default (identity-checked on the fast path)
_QBYTES_MAX = 2 ** (8 * struct.calcsize("=" + _LAYOUT["msg"][1]["qbytes"][1])) - 1
# Hot path (FACTS §8): undeclared msgsnd/msgrcv called with preallocated ctypes arguments
# (declared ones on PyPy, whose JIT makes those the fast ones - see _semop_fast).
_msgsnd_fast, _msgrcv_fast = _libc["msgsnd"], _libc["msgrcv"]
_msgrcv_fast.restype = ctypes.c_ssize_t
if not _CPYTHON:
    _msgsnd_fast, _msgrcv_fast = _libc.msgsnd, _libc.msgrcv


class MessageTooLongError(Error):
    """E2BIG: the message is longer than the receive buffer; it stays queued, nothing is lost."""


def _msg_limit(name: str) -> "Optional[int]":
    """A limit of this IPC namespace: /proc/sys/kernel/msgmax (the longest message) or msgmnb
    (the capacity of a new queue); None where /proc cannot tell."""
    try:
        with open("/proc/sys/kernel/" + name) as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return None


def _msgmax() -> int:
    return _msg_limit("msgmax") or 8192     # Linux's default


def _msg_type(value: "Any", receive: bool) -> int:
    """A message type as a C long: >= 1 to send; any long to receive (0 any, < 0 lowest <= |t|)."""
    checked = _index(value, "type")
    low = _LONG_MIN if receive else 1
    if not low <= checked <= _LONG_MAX:
        raise ValueError("type must be between %d and %d (a C long%s), not %d"
                         % (low, _LONG_MAX, "" if receive else " > 0", checked))
    return checked


def _probe_msg() -> "Tuple[Tuple[Any, ...], Tuple[Any, ...]]":
    """A private queue, stat'ed holding one message and again once it is received: a wrong
    msqid_ds layout would read plausible garbage (qnum, cbytes, the two pids and qbytes are all
    at risk)."""
    ident = _check(_libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600), lambda: "msgget(IPC_PRIVATE)",
                   gone=False)
    raws = []
    try:
        message = _MsgBuffer(5)
        message.mtype.value = 3
        _check(_libc.msgsnd(ident, message.ref, 5, IPC_NOWAIT), lambda: "msgsnd(IPC_PRIVATE)")
        for received in (False, True):
            if received:
                _check(_libc.msgrcv(ident, message.ref, 5, 0, IPC_NOWAIT),
                       lambda: "msgrcv(IPC_PRIVATE)")
            buf = ctypes.create_string_buffer(_LAYOUT["msg"][0])
            _check(_ctl("msg", ident, _IPC_STAT, buf), lambda: "msgctl(IPC_STAT)")
            raws.append(buf.raw)
    finally:
        _libc.msgctl(ident, _IPC_RMID, None)
    full, empty = _unpack("msg", raws[0]), _unpack("msg", raws[1])
    pid, msgmnb = os.getpid(), _msg_limit("msgmnb")
    pids = [(pid, 0), (pid, pid)]       # (lspid, lrpid): sent by us, then received by us
    seen_pids = [(full["lspid"], full["lrpid"]), (empty["lspid"], empty["lrpid"])]
    if seen_pids != pids and _MTEXT == 8:
        # qemu-user (7.2; fixed upstream in 2025) writes msg_lspid and msg_lrpid as two 8-byte
        # longs on 64-bit guests, where the kernel has two 4-byte pid_t: that exact pattern
        # passes (the rest of the layout is checked as usual; only these two attributes then
        # read wrong, and only under that emulator).
        offset = _LAYOUT["msg"][1]["lspid"][0]
        if [struct.unpack_from("=qq", raw, offset) for raw in raws] == pids:
            seen_pids = pids
    return ((full["qnum"], full["cbytes"], empty["qnum"], empty["cbytes"], full["mode"] & 0o777,
             full["qbytes"], seen_pids), (1, 5, 0, 0, 0o600, msgmnb or full["qbytes"], pids))


_PROBES["msg"] = _probe_msg


class _MsgBuffer(object):
    """A preallocated struct msgbuf (long mtype; char mtext[capacity]) and its call arguments:
    ``capacity`` (msgsz of receive), ``size`` (msgsz of send), ``msgtyp`` (of receive)."""

    __slots__ = ("raw", "ref", "mtype", "view", "text", "capacity", "size", "msgtyp", "sent",
                 "length", "wanted", "room")

    def __init__(self, capacity: int) -> None:
        self.raw = ctypes.create_string_buffer(_MTEXT + capacity)
        self.ref = ctypes.byref(self.raw)
        self.mtype = ctypes.c_long.from_buffer(self.raw)
        self.view = memoryview(self.raw).cast("B")
        self.text = self.view[_MTEXT:]          # mtext
        self.capacity = ctypes.c_size_t(capacity)
        self.size = ctypes.c_size_t()
        self.msgtyp = ctypes.c_long()
        # What send last wrote in mtype and size, and receive in msgtyp (send and receive
        # take their buffers from separate pools): equal values are not written again.
        self.sent, self.length, self.wanted = 0, 0, 0
        self.room = capacity


def _rcv_flags(type: "Any", block: "Any", flags: "Any") -> "Tuple[int, int]":
    """Check receive's type and flags; returns (type, msgrcv flags)."""
    type = _msg_type(type, True)
    if flags:
        flags = _check_flags(flags, MSG_NOERROR | MSG_EXCEPT | IPC_NOWAIT, "receive")
        if flags & MSG_EXCEPT and type <= 0:
            raise ValueError("MSG_EXCEPT needs type > 0 (the kernel ignores it otherwise)")
    return type, flags | (0 if block else IPC_NOWAIT)


def _flag_names(flags: int) -> str:
    names = [name for name, bit in (("IPC_NOWAIT", IPC_NOWAIT), ("MSG_NOERROR", MSG_NOERROR),
                                    ("MSG_EXCEPT", MSG_EXCEPT)) if flags & bit]
    return "|".join(names) or "0"


class MessageQueue(_Permissions):
    """A System V message queue (msgget), as in sysv_ipc, plus MSG_NOERROR, MSG_EXCEPT and
    receive_into().

    ``send`` puts a typed message (type >= 1) at the tail; ``receive`` takes the first message
    (type 0), the first of a type (type > 0; with MSG_EXCEPT the first of any other type) or the
    first of the lowest type <= |type| (type < 0).  ``max_message_size`` is the receive buffer:
    a longer message raises MessageTooLongError and stays queued, unless MSG_NOERROR truncates it.
    Blocking calls retry EINTR; block=False raises BusyError (also BlockingIOError) instead.

    Each call uses a preallocated buffer taken from a per-queue pool (one per concurrent caller:
    threads and signal handlers never share one), so the hot path allocates nothing but the
    result."""

    _kind = "msg"
    _key = IPC_PRIVATE     # type: int
    _max_size = 0
    _send_limit = -1       # a length every send may use without the checks of _check_length()
    _capacity = -1

    def __init__(self, key: "Optional[int]", flags: int = _ZERO, mode: int = _MODE_600,
                 max_message_size: int = _MSG_2048) -> None:
        if (key.__class__ is int and 0 < key <= 0x7FFFFFFF and flags is _ZERO
                and (mode is _MODE_600 or mode.__class__ is int and 0 <= mode <= 0o777)
                and (max_message_size is _MSG_2048 or max_message_size.__class__ is int
                     and 0 <= max_message_size <= sys.maxsize - _MTEXT) and "msg" in _checked):
            # Opening an existing queue by key: every argument checked as below, and one
            # system call, msgget(key, 0) (no right asked for: send and receive ask their
            # own).  On failure the general path below repeats it and reports the error.
            ident = _msgget_fast(key, 0)
            if ident >= 0:
                self._key, self._id, self._max_size = key, ident, max_message_size
                self._pool = []        # type: List[_MsgBuffer]
                self._send_pool = []   # type: List[_MsgBuffer]
                return
        flags = _check_flags(flags, IPC_CREX, "MessageQueue")
        mode = _check_mode(mode)
        # The receive buffer is allocated with the smaller of this and kernel.msgmax (no
        # message can be longer), so a large max_message_size costs no memory.
        size = _c_range(max_message_size, "max_message_size", 0, sys.maxsize - _MTEXT)
        if key is None and flags & IPC_CREX != IPC_CREX:
            raise ValueError("key=None (a random unused key) needs flags=IPC_CREX")
        if key is not None:
            key = _index(key, "key")       # once: the caller's __index__ runs a single time
        ckey = _random_key() if key is None else _key_t(key)
        if "msg" not in _checked:
            _selfcheck("msg")
        msgget = _libc.msgget
        ident, created = -1, False
        mask = _creation_mask(key, flags)
        try:
            if mask is not None:
                _defer_signals()
            if key is None:
                ident, ckey = _create_at_random_key(lambda k: int(msgget(k, flags | mode)))
                created = ident >= 0
            elif ckey == IPC_PRIVATE or flags & IPC_EXCL:
                ident = msgget(ckey, flags | mode)
                created = ident >= 0 and bool(flags & IPC_CREAT or ckey == IPC_PRIVATE)
            elif flags & IPC_CREAT:
                # Create exclusively first, so that this call knows whether it created the
                # queue (and must remove it should a later step fail); else open it, with
                # `mode` checked against it by the kernel as msgget(key, IPC_CREAT | mode) does.
                for _ in range(100):
                    ident = msgget(ckey, IPC_CREX | mode)
                    created = ident >= 0
                    if created or _get_errno() != _errno.EEXIST:
                        break
                    ident = msgget(ckey, mode)
                    if ident >= 0 or _get_errno() != _errno.ENOENT:
                        break       # (ENOENT: removed meanwhile; create it)
            else:
                # Opening asks for no permission bits (as msgget(key, 0) in C).
                ident = msgget(ckey, flags)
            self._id = _check(ident, lambda: "msgget(key=%s, flags=%#o)" % (_fmt_key(ckey),
                                                                            flags), gone=False)
            self._key = ckey if key is None else key
            self._max_size = size
            self._pool = []        # free buffers of receive; pop/append are atomic
            self._send_pool = []   # and of send
            # The capacity of the pooled buffers: min(max_message_size, kernel.msgmax), read at
            # the first use (and again if a longer message arrives: msgmax was raised since).
            self._capacity = -1
            if mask is not None:
                deferred, mask = mask, None
                _restore_signals(deferred)   # a handler's exception here still removes it
        except BaseException:
            if created:
                _libc.msgctl(ident, _IPC_RMID, None)   # never leave behind what it created
            raise
        finally:
            if mask is not None:
                _restore_signals(mask)

    def __repr__(self) -> str:
        return "<%s key=%s id=%d max_message_size=%d>" % (
            type(self).__name__, _fmt_key(_key_t(self._key)), self._id, self._max_size)

    def _check_length(self, length: int) -> None:
        """Refuse, before msgsnd, a message that could never be queued (msgsnd would give EINVAL
        above msgmax, or block forever above the queue's msg_qbytes).  The limits are then
        cached: a later max_size lowered by another process is not seen (msgsnd blocks)."""
        if length > self._max_size:
            raise ValueError("The message length exceeds queue's max_message_size (%d)"
                             % self._max_size)
        msgmax = _msgmax()
        if length > msgmax:
            raise ValueError("a message of %d bytes is longer than the system's limit (%d, "
                             "kernel.msgmax: /proc/sys/kernel/msgmax)" % (length, msgmax))
        try:
            qbytes = _stat("msg", self._id)["qbytes"]
        except AccessError:
            # A write-only queue (a 0o622 "mailbox"): msgsnd() needs no read permission, and
            # neither does send(); a message longer than msg_qbytes then waits, as in C.
            qbytes = msgmax
        if length > qbytes or qbytes == 0:
            raise ValueError("a message of %d bytes can never be queued: the queue's max_size "
                             "(msg_qbytes) is %d bytes" % (length, qbytes))
        self._send_limit = min(self._max_size, msgmax, qbytes)
        self._capacity = min(self._max_size, msgmax)     # msgmax may have changed

    def send(self, message: "Union[bytes, str, Any]", block: bool = True,
             type: int = _ONE) -> None:
        """Wrapper around ``msgsnd()``: queue ``message`` (bytes-like; str is encoded UTF-8)
        with ``type`` >= 1.  A full queue blocks, or raises BusyError with block=False."""
        if message.__class__ is not bytes:
            if isinstance(message, str):
                message = message.encode("utf-8")
            else:
                message = memoryview(message).cast("B")
        length = len(message)
        if length > self._send_limit:
            self._check_length(length)
        if type is not _ONE and (type.__class__ is not int or not 0 < type <= _LONG_MAX):
            type = _msg_type(type, False)
        flags = 0 if block else IPC_NOWAIT
        pool = self._send_pool
        try:
            buf = pool.pop()
        except IndexError:
            buf = self._new_buffer()
        if buf.room < length:           # made before msgmax was raised
            buf = _MsgBuffer(length)
        try:
            if buf.sent != type:
                buf.mtype.value = buf.sent = type
            buf.text[:length] = message
            if buf.length != length:
                buf.size.value = buf.length = length
            previous = 0
            while _msgsnd_fast(self._id, buf.ref, buf.size, flags) != 0:
                # The errno is trusted as _confirmed() says (a signal handler's failing call
                # may have replaced it): only IPC_NOWAIT gives EAGAIN.
                err = _get_errno()
                if err == _errno.EAGAIN and flags:
                    raise self._fail(err, self._call("msgsnd", length, type, flags), length)
                if err == _errno.EINVAL:          # msgmax lowered since?  Or the queue is gone.
                    self._check_length(length)
                verdict = _confirmed(err, previous, _MSGSND_ERRNOS)
                if verdict > 0:
                    raise self._fail(verdict, self._call("msgsnd", length, type, flags), length)
                previous = err if verdict else 0
        finally:
            pool.append(buf)

    def _call(self, name: str, size: int, type: int, flags: int) -> str:
        return "%s(id=%d, %d bytes, type=%d, flags=%s)" % (name, self._id, size, type,
                                                           _flag_names(flags))

    def _new_buffer(self) -> _MsgBuffer:
        capacity = self._capacity
        if capacity < 0:
            capacity = self._capacity = min(self._max_size, _msgmax())
        return _MsgBuffer(capacity)

    def _retry(self, buf: _MsgBuffer, limit: int, type: int, flags: int) -> int:
        """msgrcv after a failure into ``buf`` (its ``size`` is msgsz): EINTR is retried (a
        handler's exception propagates), and the errno is trusted as _confirmed() says.  A
        message longer than the buffer but within ``limit`` (msgmax was raised after the buffer
        was made) grows the buffer."""
        previous = 0
        while True:
            err = _get_errno()
            if err == _errno.ENOMSG and flags & IPC_NOWAIT:
                raise self._fail(err, self._call("msgrcv", buf.size.value, type, flags),
                                 buf.size.value)
            verdict = _confirmed(err, previous, _MSGRCV_ERRNOS)
            if verdict > 0:
                size = buf.size.value
                if verdict == _errno.E2BIG and size < limit:
                    longest = min(limit, _msgmax())
                    if longest > size:
                        buf.__init__(longest)       # type: ignore[misc]
                        buf.size.value = longest
                        buf.msgtyp.value = buf.wanted = type
                        if limit == self._max_size:
                            self._capacity = max(self._capacity, longest)
                        verdict = 0
                if verdict:
                    raise self._fail(verdict, self._call("msgrcv", size, type, flags), size)
            previous = err if verdict < 0 else 0
            length = _msgrcv_fast(self._id, buf.ref, buf.size, buf.msgtyp, flags)
            if length >= 0:
                return int(length)

    def receive(self, block: bool = True, type: int = _ZERO,
                flags: int = _ZERO) -> "Tuple[bytes, int]":
        """Wrapper around ``msgrcv()``: take a message, return ``(bytes, type)``.

        type 0: the first message; > 0: the first of that type (MSG_EXCEPT: of any other
        type); < 0: the first of the lowest type <= |type|.  Nothing matching: waits, or
        BusyError with block=False.  Longer than max_message_size: MessageTooLongError and the
        message stays queued, or with MSG_NOERROR it is truncated (the rest is discarded)."""
        if (type is not _ZERO or flags is not _ZERO or block is not True) and (
                flags or not block or type.__class__ is not int
                or not _LONG_MIN <= type <= _LONG_MAX):
            type, flags = _rcv_flags(type, block, flags)
        pool = self._pool
        try:
            buf = pool.pop()
        except IndexError:
            buf = self._new_buffer()
        try:
            if buf.wanted != type:
                buf.msgtyp.value = buf.wanted = type
            length = _msgrcv_fast(self._id, buf.ref, buf.capacity, buf.msgtyp, flags)
            if length < 0:
                buf.size.value = buf.capacity.value
                length = self._retry(buf, self._max_size, type, flags)
            return buf.text[:length].tobytes(), buf.mtype.value
        finally:
            pool.append(buf)

    def receive_into(self, buffer: "Any", block: bool = True, type: int = 0,
                     flags: int = 0) -> "Tuple[int, int]":
        """Wrapper around ``msgrcv()`` that copies the text into a writable ``buffer`` (bytearray,
        ctypes object, memoryview, SharedMemory.buf slice) and returns ``(length, type)``: no
        bytes object, nothing allocated.  ``len(buffer)`` (in bytes) replaces max_message_size
        as the limit; otherwise as receive()."""
        if flags or not block or type.__class__ is not int or not _LONG_MIN <= type <= _LONG_MAX:
            type, flags = _rcv_flags(type, block, flags)
        dest = memoryview(buffer)
        try:
            if dest.readonly:
                raise TypeError("receive_into() needs a writable buffer")
            if dest.ndim != 1 or dest.format != "B":
                flat = dest.cast("B")     # C-contiguous only (TypeError otherwise)
                dest.release()
                dest = flat
            capacity = dest.nbytes
            pool = self._pool
            try:
                buf = pool.pop()
            except IndexError:
                buf = self._new_buffer()
            if buf.capacity.value < capacity:
                # No message is longer than msgmax: a larger buffer is never filled further.
                longest = min(capacity, _msgmax())
                if buf.capacity.value < longest:
                    pool.append(buf)
                    buf = _MsgBuffer(longest)
                    pool = []           # this one is not pooled
            try:
                size = buf.size
                size.value = min(capacity, buf.capacity.value)
                buf.msgtyp.value = buf.wanted = type
                length = _msgrcv_fast(self._id, buf.ref, size, buf.msgtyp, flags)
                if length < 0:
                    length = self._retry(buf, capacity, type, flags)
                dest[:length] = buf.view[_MTEXT:_MTEXT + length]
                return length, buf.mtype.value
            finally:
                pool.append(buf)
        finally:
            dest.release()

    def _fail(self, err: int, call: str, capacity: int) -> Error:
        exc = None    # type: Optional[Error]
        if err == _errno.E2BIG:
            exc = MessageTooLongError(err, "the first matching message is longer than %d bytes; "
                                      "it stays queued (receive with flags=MSG_NOERROR to "
                                      "truncate it, or a larger buffer)" % capacity)
        elif err == _errno.EAGAIN:
            exc = WouldBlockError(err, "the queue is full")
        if exc is not None:
            exc.call = call
            return exc
        if err == _errno.ENOMSG:
            return _error(err, call, WouldBlockError)
        return _error(err, call, RemovedError if err in (_errno.EINVAL, _errno.EIDRM) else None)

    def remove(self) -> None:
        """Wrapper around ``msgctl(IPC_RMID)``: the queue and its messages are destroyed at once;
        processes waiting in send/receive get EIDRM (ExistentialError)."""
        _check(_libc.msgctl(self._id, _IPC_RMID, None),
               lambda: "msgctl(id=%d, IPC_RMID)" % self._id)

    @property
    def max_size(self) -> int:
        """The queue's capacity in bytes (msg_qbytes); settable (IPC_SET; raising it above
        kernel.msgmnb needs CAP_SYS_RESOURCE)."""
        return _stat("msg", self._id)["qbytes"]

    @max_size.setter
    def max_size(self, value: int) -> None:
        # The kernel keeps 32 bits of it (2**32 would read back 0, and every send then fail).
        value = _c_range(value, "max_size", 0, min(_QBYTES_MAX, 2 ** 32 - 1))
        _set("msg", self._id, "qbytes", value)
        self._send_limit = -1

    key = _ReadOnly(lambda self: self._key, "The key given to the constructor (the random one "
                    "chosen for key=None; IPC_PRIVATE is 0).")  # type: _ReadOnly[int]
    max_message_size = _ReadOnly(lambda self: self._max_size, "The longest message this object "
                                 "sends or receives, as given to the constructor (its receive "
                                 "buffer; the queue's capacity is max_size)."
                                 )  # type: _ReadOnly[int]
    last_send_time = _kind_field("stime", "The last msgsnd() (msg_stime).")
    last_receive_time = _kind_field("rtime", "The last msgrcv() (msg_rtime).")
    last_change_time = _kind_field("ctime", "The last change: creation or IPC_SET (msg_ctime).")
    last_send_pid = _kind_field("lspid", "The pid of the last msgsnd() (msg_lspid).")
    last_receive_pid = _kind_field("lrpid", "The pid of the last msgrcv() (msg_lrpid).")
    current_messages = _kind_field("qnum", "The number of messages queued (msg_qnum).")
    current_bytes = _kind_field("cbytes", "The bytes of message text queued (msg_cbytes).")


# --- Module functions ----------------------------------------------------------------------------
def attach(id: int, address: "Optional[int]" = None, flags: int = 0) -> SharedMemory:
    """Attach the existing segment ``id`` (shmat) and return a new SharedMemory for it."""
    mem = SharedMemory.__new__(SharedMemory)
    mem._lock = threading.RLock()
    mem._id = _ipc_id(id)
    try:
        stat = _stat("shm", mem._id)
    except RemovedError as exc:
        raise _error(exc.errno or _errno.EINVAL, "attach(id=%d): no segment has this id (attach() "
                     "takes an id, as ipcs -m shows it or SharedMemory(key).id gives it; to "
                     "open by key, use SharedMemory(key))" % mem._id, NotFoundError) from None
    mem._key, mem._size = stat["key"], stat["size"]
    mem.attach(address, flags)
    return mem


def remove_shared_memory(id: int) -> None:
    """Wrapper around ``shmctl(id, IPC_RMID)``."""
    ident = _ipc_id(id)
    _check(_shmctl(ident, _IPC_RMID, None), lambda: "shmctl(id=%d, IPC_RMID)" % ident)


def remove_semaphore(id: int) -> None:
    """Wrapper around ``semctl(id, 0, IPC_RMID)``."""
    ident = _ipc_id(id)
    _check(_semctl(ident, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % ident)


def remove_message_queue(id: int) -> None:
    """Wrapper around ``msgctl(id, IPC_RMID)``."""
    ident = _ipc_id(id)
    _check(_libc.msgctl(ident, _IPC_RMID, None), lambda: "msgctl(id=%d, IPC_RMID)" % ident)


def ftok(path: str, id: int, silence_warning: bool = False) -> int:
    """Wrapper around ``ftok()``: a key from a file's inode and device, and ``id`` (0..255: C's
    ftok() uses only its low 8 bits, so larger ids are refused rather than folded; C's
    ``ftok(path, 'A')`` is ``ftok(path, ord('A'))``).  Two files can give the same key; warns
    unless ``silence_warning``."""
    if isinstance(id, str) and len(id) == 1:
        raise TypeError("ftok() id must be an integer 0..255: C's ftok(path, %r) is "
                        "ftok(path, ord(%r)) == ftok(path, %d)" % (id, id, ord(id)))
    number = _c_range(id, "ftok() id", 0, 255)
    if not silence_warning:
        import warnings
        warnings.warn("Use of ftok() is not recommended: different files can give the same key",
                      stacklevel=2)
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("ftok(): embedded null byte in path %r" % (path,))
    key = _libc.ftok(raw, number)
    if key == -1:
        err = _get_errno()
        raise _error(err, "ftok(%r, %d)" % (path, number))
    return int(key)


# --- Channel: a message channel over one segment and one semaphore set ---------------------------
# The layout and the protocol are published in examples/sysvshm_channel.h; every step below is
# named after that file's, which C and Go peers follow too.
_CH_MAGIC = 0x48435653
_CH_VERSION = 1
_CH_HEADER = 128
_CH_SLOT_HEADER = 64
_CH_MAX_SLOTS = 4096
_CH_MAX_SLOT_SIZE = 2 ** 31 - 1
_CH_POISON = 16384
_CH_MUTEX, _CH_FREE, _CH_READY, _CH_DONE = 0, 1, 2, 3
_CH_SLOT_FREE, _CH_WRITING, _CH_READY_STATE, _CH_READING = 0, 1, 2, 3
_J_NONE, _J_COMMIT, _J_TAKE, _J_TAKE_FREE, _J_CLOSE = 0, 1, 2, 3, 4
_CH_SPIN_TIME = 100e-6  # seconds of looking before a blocking wait (see Channel._wait)
# What an operation holds besides MUTEX, should an exception leave MUTEX taken (Channel._recover):
_PH_PRODUCER, _PH_CONSUMER, _PH_MUTEX, _PH_EXIT_WRITING, _PH_EXIT_READING = range(5)
# semid -> one entry per thread of this process inside an operation on that channel.
_CH_INFLIGHT = {}  # type: Dict[int, List[List[int]]]
_CH_OPEN_WAIT = 5.0     # seconds an opener waits for the creator to finish initialising


class _ChHeader(ctypes.Structure):
    _fields_ = [("magic", ctypes.c_uint32), ("version", ctypes.c_uint32),
                ("header_size", ctypes.c_uint32), ("slots", ctypes.c_uint32),
                ("slot_size", ctypes.c_uint32), ("slot_stride", ctypes.c_uint32),
                ("order_offset", ctypes.c_uint32), ("slots_offset", ctypes.c_uint32),
                ("head", ctypes.c_uint64), ("tail", ctypes.c_uint64),
                ("closed", ctypes.c_uint32), ("j_op", ctypes.c_uint32),
                ("j_done", ctypes.c_uint32), ("j_slot", ctypes.c_uint32),
                ("j_counter", ctypes.c_uint64), ("j_pid", ctypes.c_int32),
                ("reserved0", ctypes.c_uint32), ("sent", ctypes.c_uint64),
                ("received", ctypes.c_uint64), ("reclaimed", ctypes.c_uint64),
                ("reserved", ctypes.c_uint8 * 24)]


class _ChSlot(ctypes.Structure):
    _fields_ = [("state", ctypes.c_uint32), ("pid", ctypes.c_int32), ("length", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32 * 13)]


def _ch_geometry(slots: int, slot_size: int) -> "Tuple[int, int, int]":
    """(slots_offset, slot_stride, segment size) of a channel (sysvshm_channel.h)."""
    slots_offset = _round_up(_CH_HEADER + 4 * slots, 64)
    stride = _CH_SLOT_HEADER + _round_up(slot_size, 64)
    return slots_offset, stride, slots_offset + slots * stride


def _pid_alive(pid: int) -> bool:
    """False once `pid` has exited (no such process, or a zombie): its SEM_UNDO has run."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return data[data.rfind(b")") + 2:][:1] not in (b"Z", b"X")


class ChannelClosedError(Error, EOFError):
    """The channel was closed: send()/reserve() refuse; receive*() raise it once drained."""


class ChannelLayoutError(Error, ValueError):
    """The segment or set at that key is not a channel of this version and geometry."""


def _ch_error(cls: "Any", err: int, text: str, call: str) -> Error:
    exc = cls(err, text)
    exc.call = call
    return exc  # type: ignore[no-any-return]


class _InPlace(object):
    """What Channel.reserve() and Channel.receive_view() return: a context manager for one
    block.  It is entered and exited once (RuntimeError otherwise: nothing is taken or freed
    twice); one entered and never exited (dropped) gives its slot back when collected."""
    __slots__ = ("_channel", "_send", "_n", "_timeout", "_tickets", "_exits", "_entry", "_pid")

    def __init__(self, channel: "Channel", send: bool, n: int,
                 timeout: "Optional[float]") -> None:
        self._channel, self._send, self._n, self._timeout = channel, send, n, timeout
        self._tickets = [True]
        self._exits = []  # type: List[bool]
        self._pid = os.getpid()     # a forked child's copy never gives back the parent's slot
        # (phase, the slot taken under MUTEX, the slot held after it): see Channel._recover
        self._entry = [_PH_PRODUCER if send else _PH_CONSUMER, -1, -1]

    def _unused(self, what: str) -> RuntimeError:
        return RuntimeError("a reserve()/receive_view() context manager is %s once: call "
                            "reserve()/receive_view() again" % what)

    def __enter__(self) -> memoryview:
        try:
            self._tickets.pop()
        except IndexError:
            raise self._unused("entered") from None
        channel, entry = self._channel, self._entry
        inflight = channel._inflight
        inflight.append(entry)
        try:
            if self._send:
                view = channel._reserve_enter(entry, self._n, self._timeout)
            else:
                view = channel._view_enter(entry, self._timeout)
            self._pid = os.getpid()
            self._exits.append(True)
            channel._held += 1
        except BaseException:
            channel._recover(entry)
            if entry[2] >= 0 and not self._exits:   # taken, and the block will not run
                channel._orphan(entry[2])
            raise
        finally:
            inflight.pop()
        return view

    def __exit__(self, etype: "Any", value: "Any", tb: "Any") -> None:
        try:
            self._exits.pop()
        except IndexError:
            raise self._unused("exited") from None
        channel, entry = self._channel, self._entry
        channel._held -= 1
        s = entry[2]
        inflight = channel._inflight
        inflight.append(entry)
        try:
            if self._send:
                entry[0] = _PH_EXIT_WRITING
                channel._reserve_exit(s, self._n, etype is not None)
            else:
                entry[0] = _PH_EXIT_READING
                channel._view_exit(s)
        except BaseException:
            channel._recover(entry)
            raise
        finally:
            inflight.pop()

    def __del__(self) -> None:
        # Entered, never exited (a dropped ExitStack, a manual __enter__()): give the slot back
        # without waiting - MUTEX may be this very thread's, held in the code the collector
        # interrupted - or leave it to this channel's next operation.
        try:
            if self._exits and self._pid == os.getpid():
                self._exits.pop()
                self._channel._held -= 1
                self._channel._orphan(self._entry[2])
        except BaseException:
            pass


class Channel(object):
    """A many-producer, many-consumer FIFO of messages in one shared memory segment and one
    semaphore set at the same key; C and Go programs join through examples/sysvshm_channel.h.

    ``send``/``receive`` copy; ``reserve`` and ``receive_view`` work in place (zero-copy);
    ``receive_into`` fills a caller's buffer.  No process death wedges the channel: a process
    killed at any point costs at most the message it held.  ``close()`` ends the channel for
    every producer; consumers drain what was sent, then get ChannelClosedError."""

    _shm = None     # type: Optional[SharedMemory]
    _semid = -1
    _held = 0       # slots this object holds in reserve() / receive_view() blocks

    def __init__(self, key: "Optional[int]", flags: int = 0, mode: int = 0o600,
                 slots: "Optional[int]" = None, slot_size: "Optional[int]" = None) -> None:
        self._orphans = []  # type: List[Tuple[int, int]]
        flags = _check_flags(flags, IPC_CREX, "Channel")
        mode = _check_mode(mode)
        want_slots = None if slots is None else _index(slots, "slots")
        want_size = None if slot_size is None else _index(slot_size, "slot_size")
        if want_slots is not None and not 1 <= want_slots <= _CH_MAX_SLOTS:
            raise ValueError("slots must be between 1 and %d, not %d" % (_CH_MAX_SLOTS, want_slots))
        if want_size is not None and not 1 <= want_size <= _CH_MAX_SLOT_SIZE:
            raise ValueError("slot_size must be between 1 and %d, not %d"
                             % (_CH_MAX_SLOT_SIZE, want_size))
        if key is None and flags & IPC_CREX != IPC_CREX:
            raise ValueError("key=None (a random unused key) needs flags=IPC_CREX")
        if key is not None:     # converted once: an __index__ may answer differently next time
            key = _index(key, "key")
        if key is not None and _key_t(key) == IPC_PRIVATE:
            raise ValueError("a channel needs a key (IPC_PRIVATE objects cannot be opened by "
                             "another program); key=None with IPC_CREX picks a random one")
        if "sem" not in _checked:
            _selfcheck("sem")
        new_slots = 16 if want_slots is None else want_slots
        new_size = 65536 if want_size is None else want_size
        values = [0, new_slots, 0, 0]     # MUTEX held by the creator until the header is written
        size = _ch_geometry(new_slots, new_size)[2]
        creator = False
        # Creating defers asynchronous signals (as the other constructors do), so that no
        # handler's exception falls between making the set or the segment and the code that
        # removes them if a later step fails.
        mask = _signal_mask()
        try:
            _defer_signals()
            for _ in range(100):
                if key is None:
                    ident, ckey = _create_at_random_key(lambda k: int(_semget(k, 4, IPC_CREX | mode)))
                    _check(ident, lambda: "semget(random key, 4, IPC_CREX)", gone=False)
                    creator = True
                else:
                    ckey = _key_t(key)
                    ident = -1
                    if flags & IPC_CREAT:
                        ident = _semget(ckey, 4, IPC_CREX | mode)
                        creator = ident >= 0
                        if not creator and (_get_errno() != _errno.EEXIST or flags & IPC_EXCL):
                            _check(-1, lambda: "semget(key=%s, 4, %#o)" % (key, flags), gone=False)
                    if not creator:
                        ident = _semget(ckey, 0, mode if flags & IPC_CREAT else 0)
                        if ident < 0:
                            if flags & IPC_CREAT and _get_errno() == _errno.ENOENT:
                                continue    # removed between our two semget calls
                            _check(-1, lambda: "semget(key=%s, 0, 0)" % (key,), gone=False)
                if not creator:
                    self._semid = ident
                    self._key = key if key is not None else ckey
                    deferred, mask = mask, None
                    _restore_signals(deferred)     # (nothing made: opening waits, interruptible)
                    self._open(ckey, want_slots, want_size)
                    return
                _initialise_new(ident, values)
                try:
                    shm = SharedMemory(ckey, IPC_CREX, mode, size, init_character=None)
                except ExistsError:
                    _semctl(ident, 0, _IPC_RMID)
                    if key is None:
                        continue    # the segment key is taken: another random key
                    raise _ch_error(ExistsError, _errno.EEXIST, "a segment exists at this key but "
                                    "no channel semaphore set", "Channel(key=%s)" % _fmt_key(ckey)
                                    ) from None
                except BaseException:
                    _semctl(ident, 0, _IPC_RMID)
                    raise
                try:
                    self._semid, self._key = ident, (key if key is not None else ckey)
                    self._bind(shm, new_slots, new_size)
                    h = self._h
                    h.version, h.header_size, h.slots, h.slot_size = (_CH_VERSION, _CH_HEADER,
                                                                      new_slots, new_size)
                    h.order_offset = _CH_HEADER
                    h.slots_offset, h.slot_stride = _ch_geometry(new_slots, new_size)[:2]
                    h.magic = _CH_MAGIC
                    self._final(self._op_unlock_plain)
                    deferred, mask = mask, None
                    _restore_signals(deferred)     # a handler's exception here still removes both
                except BaseException:
                    self._drop()
                    _shmctl(shm.id, _IPC_RMID, None)
                    _semctl(ident, 0, _IPC_RMID)
                    raise
                return
            raise _error(_errno.EAGAIN, "Channel(key=%r): the key kept changing hands" % (key,))
        finally:
            if mask is not None:
                _restore_signals(mask)

    # -- opening and layout ---------------------------------------------------------------------
    def _open(self, ckey: int, want_slots: "Optional[int]", want_size: "Optional[int]") -> None:
        """Open an existing channel: wait for its creator (MUTEX), check the layout."""
        call = "Channel(key=%s)" % _fmt_key(ckey)
        nsems = _stat("sem", self._semid)["nsems"]
        if nsems != 4:
            raise _ch_error(ChannelLayoutError, _errno.EINVAL, "the semaphore set at this key has "
                            "%d semaphores, a channel's has 4" % nsems, call)
        self._make_ops()
        entry = [_PH_MUTEX, -1, -1]
        inflight = self._inflight
        inflight.append(entry)
        try:
            self._open_locked(ckey, want_slots, want_size, call)
        except BaseException:
            self._recover(entry)
            raise
        finally:
            inflight.pop()

    def _open_locked(self, ckey: int, want_slots: "Optional[int]", want_size: "Optional[int]",
                     call: str) -> None:
        try:
            _semop_wait(self._semid, self._op_lock, 1, _CH_OPEN_WAIT,
                        lambda: call + ": semop(MUTEX)")
        except TimedOutError:
            raise _ch_error(ChannelLayoutError, _errno.ETIMEDOUT, "the channel's creator did not "
                            "finish initialising it (died?); remove it with ipcrm", call) from None
        try:
            shm = SharedMemory(ckey)
            try:
                self._check_layout(shm, want_slots, want_size, call)
            except BaseException:
                shm.detach()
                raise
            h = _ChHeader.from_buffer_copy(shm.buf[:_CH_HEADER])
            self._bind(shm, h.slots, h.slot_size)
            self._settle()
        finally:
            self._final(self._op_unlock)

    @staticmethod
    def _check_layout(shm: SharedMemory, want_slots: "Optional[int]",
                      want_size: "Optional[int]", call: str) -> None:
        def refuse(text: str) -> None:
            raise _ch_error(ChannelLayoutError, _errno.EINVAL, text, call)
        if shm.size < _CH_HEADER:
            refuse("the segment (%d bytes) is too small for a channel header" % shm.size)
        h = _ChHeader.from_buffer_copy(shm.buf[:_CH_HEADER])
        if h.magic != _CH_MAGIC:
            refuse("not a channel: magic %#010x, expected %#010x" % (h.magic, _CH_MAGIC))
        if h.version != _CH_VERSION:
            refuse("channel layout version %d, this module reads version %d"
                   % (h.version, _CH_VERSION))
        if not 1 <= h.slots <= _CH_MAX_SLOTS or not 1 <= h.slot_size <= _CH_MAX_SLOT_SIZE:
            refuse("bad geometry: %d slots of %d bytes" % (h.slots, h.slot_size))
        offset, stride, size = _ch_geometry(h.slots, h.slot_size)
        if (h.header_size, h.order_offset, h.slots_offset, h.slot_stride) != (
                _CH_HEADER, _CH_HEADER, offset, stride):
            refuse("bad geometry: header_size %d, order_offset %d, slots_offset %d, slot_stride "
                   "%d" % (h.header_size, h.order_offset, h.slots_offset, h.slot_stride))
        if shm.size < size:
            refuse("the segment (%d bytes) is smaller than %d slots of %d bytes need (%d)"
                   % (shm.size, h.slots, h.slot_size, size))
        if want_slots is not None and want_slots != h.slots or \
                want_size is not None and want_size != h.slot_size:
            refuse("the channel has %d slots of %d bytes; asked for %s" % (
                h.slots, h.slot_size, ", ".join("%s=%d" % (name, value) for name, value in
                                                (("slots", want_slots), ("slot_size", want_size))
                                                if value is not None)))

    def _make_ops(self) -> None:
        def ops(*triples: "Tuple[int, int, int]") -> "Any":
            return (_sembuf * len(triples))(*(_sembuf(*t) for t in triples))
        U, P = SEM_UNDO, _CH_POISON
        self._op_lock = ops((_CH_MUTEX, -1, U))
        N = U | IPC_NOWAIT
        self._op_lock_try = ops((_CH_MUTEX, -1, N))
        self._op_free_lock_try = ops((_CH_FREE, -1, N), (_CH_MUTEX, -1, N))
        self._op_ready_lock_try = ops((_CH_READY, -1, N), (_CH_MUTEX, -1, N))
        self._op_unlock = ops((_CH_MUTEX, 1, U))
        self._op_unlock_plain = ops((_CH_MUTEX, 1, 0))
        self._op_free_give = ops((_CH_FREE, 1, U))
        self._inflight = _CH_INFLIGHT.setdefault(self._semid, [])
        self._op_free_lock = ops((_CH_FREE, -1, U), (_CH_MUTEX, -1, U))
        self._op_free_unlock = ops((_CH_FREE, 1, U), (_CH_MUTEX, 1, U))
        self._op_ready_lock = ops((_CH_READY, -1, U), (_CH_MUTEX, -1, U))
        self._op_ready_unlock = ops((_CH_READY, 1, U), (_CH_MUTEX, 1, U))
        self._op_done_down = ops((_CH_DONE, -1, IPC_NOWAIT))
        self._op_commit = ops((_CH_FREE, 1, U), (_CH_FREE, -1, 0), (_CH_READY, 1, 0),
                              (_CH_DONE, 1, 0), (_CH_MUTEX, 1, U))
        self._op_take_free = ops((_CH_READY, 1, U), (_CH_READY, -1, 0), (_CH_FREE, 1, 0),
                                 (_CH_DONE, 1, 0), (_CH_MUTEX, 1, U))
        self._op_take = ops((_CH_READY, 1, U), (_CH_READY, -1, 0), (_CH_FREE, 1, 0),
                            (_CH_FREE, -1, U), (_CH_DONE, 1, 0), (_CH_MUTEX, 1, U))
        self._op_close = ops((_CH_FREE, P, 0), (_CH_READY, P, 0), (_CH_DONE, 1, 0),
                             (_CH_MUTEX, 1, U))

    def _bind(self, shm: SharedMemory, slots: int, slot_size: int) -> None:
        self._shm = shm
        self._slots_n, self._slot_size = slots, slot_size
        offset, stride, _ = _ch_geometry(slots, slot_size)
        self._h = shm.as_ctypes(_ChHeader)
        self._order = shm.as_ctypes(ctypes.c_uint32 * slots, _CH_HEADER)
        self._slot = [shm.as_ctypes(_ChSlot, offset + i * stride) for i in range(slots)]
        self._payload = [offset + i * stride + _CH_SLOT_HEADER for i in range(slots)]
        self._buf = shm.buf
        self._views = [None] * slots  # type: List[Optional[memoryview]]
        self._hint = 0
        if not hasattr(self, "_op_lock"):
            self._make_ops()

    def _drop(self) -> None:
        """Forget our views of the segment (so that it can be detached)."""
        for view in self.__dict__.get("_views", ()):
            if view is not None:
                try:
                    view.release()
                except BufferError:
                    pass    # the caller holds an export of it: detach() refuses (BufferError)
        for name in ("_h", "_order", "_slot", "_buf", "_views"):
            self.__dict__.pop(name, None)

    # -- the protocol's building blocks (sysvshm_channel.h) -------------------------------------
    def _describe(self, what: str) -> "Callable[[], str]":
        return lambda: "Channel(key=%s).%s" % (_fmt_key(_key_t(self._key)), what)

    def _final(self, ops: "Any") -> None:
        """A semop that never blocks (the protocol's "final" ones)."""
        if _semop_fast(self._semid, ops, len(ops)) != 0:
            err = _get_errno()
            raise _error(err, "semop(id=%d, %d operations)" % (self._semid, len(ops)),
                         RemovedError if err in (_errno.EINVAL, _errno.EIDRM) else None)

    def _wait(self, ops: "Any", tries: "Any", timeout: "Optional[float]", what: str,
              need: int = 0) -> None:
        """A blocking semop, tried with IPC_NOWAIT first while the header says it could succeed
        (need 1: a free slot, 2: a message; 0: MUTEX only) for up to _CH_SPIN_TIME seconds:
        MUTEX is held for microseconds, and sleeping on it costs a wake-up (tens of
        microseconds, more on a busy machine) - the adaptive mutex's reasoning.  Looking costs
        a memory read; a failed try, a system call that takes the set's lock the holder needs
        to give MUTEX back."""
        if timeout != 0:
            semid, n, h = self._semid, len(tries), self._h
            full = self._slots_n
            start = _monotonic()
            spin = _CH_SPIN_TIME if timeout is None else min(_CH_SPIN_TIME, timeout)
            while True:
                for _ in range(16):
                    if need and not h.closed and (h.head - h.tail >= full if need == 1
                                                  else h.head == h.tail):
                        continue
                    if _semop_fast(semid, tries, n) == 0:
                        return
                spent = _monotonic() - start
                if spent > spin:
                    break
            if timeout is not None:
                timeout = max(0.0, timeout - spent)     # the whole wait stays within timeout
        _semop_wait(self._semid, ops, len(ops), timeout, self._describe(what))

    def _lock(self) -> None:
        self._wait(self._op_lock, self._op_lock_try, None, "lock")

    def _settle(self) -> None:
        """Finish or roll back the previous MUTEX holder's journal (SETTLE); then give back
        the slots of this object's dropped in-place blocks."""
        self._settle_journal()
        if self._orphans:
            self._settle_orphans()

    def _settle_journal(self) -> None:
        h = self._h
        if h.j_op == _J_NONE:
            return
        v = _check(_semctl(self._semid, _CH_DONE, _GETVAL),
                   lambda: "semctl(id=%d, DONE, GETVAL)" % self._semid)
        if not h.j_done:
            if v == 0:
                self._rollback()
                h.j_op = _J_NONE
                return
            h.j_done = 1
        if v:
            self._final(self._op_done_down)
        h.j_op = _J_NONE

    def _rollback(self) -> None:
        h = self._h
        op, slot = h.j_op, self._slot[h.j_slot % self._slots_n]
        if op == _J_COMMIT:
            h.head = h.j_counter
            slot.pid = 0
            slot.state = _CH_SLOT_FREE
        elif op in (_J_TAKE, _J_TAKE_FREE):
            h.tail = h.j_counter
            slot.state = _CH_READY_STATE
        elif op == _J_CLOSE:
            h.closed = 0

    def _journal(self, op: int, slot: int, counter: int) -> None:
        h = self._h
        h.j_done = 0
        h.j_slot = slot
        h.j_counter = counter
        h.j_pid = os.getpid()
        h.j_op = op

    def _journal_pending(self, op: int, counter: int) -> bool:
        """After an exception: is our journal still open (its final semop not run)?"""
        h = self._h
        return (h.j_op == op and h.j_counter == counter and h.j_pid == os.getpid()
                and not h.j_done and _semctl(self._semid, _CH_DONE, _GETVAL) == 0)

    def _journaled(self, op: int, slot: int, counter: int, body: "Callable[[], None]",
                   final: "Any", give_back: "Any") -> None:
        """JOURNAL, the memory steps (body), the final semop; rolled back on an exception."""
        self._journal(op, slot, counter)
        try:
            body()
            self._final(final)
        except BaseException:
            if self._journal_pending(op, counter):
                self._rollback()
                self._h.j_op = _J_NONE
                self._final(give_back)
            raise

    def _find(self) -> "Optional[int]":
        """A FREE slot, searching from the one after the last we took (the header allows any)."""
        slots, n = self._slot, self._slots_n
        i = self._hint
        for _ in range(n):
            if slots[i].state == _CH_SLOT_FREE:
                self._hint = i + 1 if i + 1 < n else 0
                return i
            i = i + 1 if i + 1 < n else 0
        return None

    def _reclaim(self) -> None:
        me = os.getpid()
        for slot in self._slot:
            if slot.state in (_CH_WRITING, _CH_READING) and slot.pid != me \
                    and not _pid_alive(slot.pid):
                slot.pid = 0
                slot.state = _CH_SLOT_FREE
                self._h.reclaimed += 1

    def _closed_error(self, what: str) -> ChannelClosedError:
        return _ch_error(ChannelClosedError, _errno.EPIPE, "the channel is closed",  # type: ignore
                         self._describe(what)())

    def _producer_slot(self, timeout: "Optional[float]", what: str) -> int:
        """Take a FREE unit and MUTEX, SETTLE, FIND (RECLAIM): a slot index, MUTEX held."""
        deadline = None if timeout is None else _monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - _monotonic())
            self._wait(self._op_free_lock, self._op_free_lock_try, remaining, what, 1)
            try:
                self._settle()
                if self._h.closed:
                    raise self._closed_error(what)
                s = self._find()
                if s is None:
                    self._reclaim()
                    s = self._find()
            except BaseException:
                self._final(self._op_free_unlock)
                raise
            if s is not None:
                return s
            # An owner exited (its undo ran) but is not yet a zombie: try again shortly.
            self._final(self._op_free_unlock)
            if deadline is not None and _monotonic() >= deadline:
                raise _error(_errno.EAGAIN, self._describe(what)(), TimedOutError)
            time.sleep(0.001)

    def _consumer_slot(self, timeout: "Optional[float]", what: str) -> int:
        """Take a READY unit and MUTEX, SETTLE: the next message's slot, MUTEX held."""
        self._wait(self._op_ready_lock, self._op_ready_lock_try, _timeout(timeout), what, 2)
        try:
            self._settle()
            h = self._h
            if h.tail == h.head:
                if h.closed:
                    raise self._closed_error(what)
                raise _error(_errno.EPROTO, self._describe(what)() + ": a READY unit without a "
                             "message (a peer broke the protocol)", InternalError)
            s = int(self._order[h.tail % self._slots_n]) % self._slots_n
            if self._slot[s].length > self._slot_size:
                raise _error(_errno.EPROTO, self._describe(what)() + ": the next message's "
                             "length (%d) is over slot_size (%d): a peer broke the protocol; "
                             "it stays queued" % (self._slot[s].length, self._slot_size),
                             InternalError)
            return s
        except BaseException:
            self._final(self._op_ready_unlock)
            raise

    def _check_length(self, n: int) -> None:
        if n > self._slot_size:
            raise _ch_error(MessageTooLongError, _errno.EMSGSIZE, "a message of %d bytes does not "
                            "fit in a slot of %d bytes" % (n, self._slot_size),
                            self._describe("send")())

    # -- sending --------------------------------------------------------------------------------
    def send(self, data: "Any", timeout: "Optional[float]" = None) -> None:
        """Copy ``data`` (bytes-like) into a free slot and commit it (waits for a free slot at
        most ``timeout`` seconds: None forever, 0 not at all).  MessageTooLongError (before
        anything is taken) when it does not fit in a slot; ChannelClosedError once closed."""
        if isinstance(data, str):
            raise TypeError("send() needs bytes or a bytes-like object, not str (encode it)")
        with memoryview(data) as view, view.cast("B") as flat:
            n = flat.nbytes
            self._check_length(n)
            timeout = _timeout(timeout)
            entry = [_PH_PRODUCER, -1, -1]
            inflight = self._inflight
            inflight.append(entry)
            try:
                s = self._producer_slot(timeout, "send")
                try:
                    start = self._payload[s]
                    self._buf[start:start + n] = flat
                    self._slot[s].length = n
                except BaseException:
                    self._final(self._op_free_unlock)
                    raise
                self._commit_locked(s)
            except BaseException:
                self._recover(entry)
                raise
            finally:
                inflight.pop()

    def _commit_locked(self, s: int) -> None:
        h, slot = self._h, self._slot[s]
        head = int(h.head)

        def body() -> None:
            self._order[head % self._slots_n] = s
            h.head = head + 1
            slot.pid = 0
            slot.state = _CH_READY_STATE
            h.sent += 1
        self._journaled(_J_COMMIT, s, head, body, self._op_commit, self._op_free_unlock)

    def reserve(self, nbytes: int, timeout: "Optional[float]" = None) -> _InPlace:
        """``with ch.reserve(nbytes, timeout) as buf:`` - a free slot's first ``nbytes`` bytes to
        fill in place; a clean exit commits them as one message, an exception abandons the slot
        (and propagates).  The arguments are checked at the call, the slot is taken when the
        block starts (waiting at most ``timeout`` seconds).  ``buf`` is the slot itself, reused
        for later messages: it must not be used after the block (never a crash, but no longer
        your message).  Each slot's view is made once and
        handed out again."""
        n = _index(nbytes, "nbytes")
        if n < 0:
            raise ValueError("nbytes must be >= 0, not %d" % n)
        self._check_length(n)
        return _InPlace(self, True, n, _timeout(timeout))

    def _view(self, s: int, n: int) -> memoryview:
        """The first n bytes of slot s: one view per slot, made again only when n changes (or
        the caller released it); the view it replaces is released."""
        views = self._views
        view = views[s]
        try:
            if view is not None and view.nbytes == n:
                return view
        except ValueError:
            view = None                 # released by the caller
        start = self._payload[s]
        new = views[s] = self._buf[start:start + n]
        if view is not None:
            try:
                view.release()          # (a caller's export of it keeps it: BufferError)
            except BufferError:
                pass
        return new

    def _reserve_enter(self, entry: "List[int]", n: int,
                       timeout: "Optional[float]") -> memoryview:
        s = self._producer_slot(timeout, "reserve")
        entry[1] = s
        slot = self._slot[s]
        view = self._view(s, n)
        slot.pid = os.getpid()
        slot.state = _CH_WRITING
        self._final(self._op_unlock)
        entry[2] = s
        return view

    def _orphan(self, s: int) -> None:
        """Give back slot s, held by an in-place block that will never end, at once if MUTEX is
        free, else at this object's next lock (SETTLE does it)."""
        if s < 0:
            return
        self._orphans.append((os.getpid(), s))
        entry = [_PH_MUTEX, -1, -1]
        inflight = self._inflight
        inflight.append(entry)          # (a thread that would _recover must count this one)
        try:
            if _semop_fast(self._semid, self._op_lock_try, 1) == 0:
                try:
                    self._settle()
                finally:
                    self._final(self._op_unlock)
        except BaseException:
            self._recover(entry)
            raise
        finally:
            inflight.pop()

    def _settle_orphans(self) -> None:
        """MUTEX held: slots of dropped in-place blocks are FREE again, each with its unit."""
        me = os.getpid()
        while self._orphans:
            pid, s = self._orphans.pop()
            if pid != me:
                continue        # a forked child's copy of the parent's list: the parent's
            slot = self._slot[s]
            slot.pid = 0
            slot.state = _CH_SLOT_FREE
            self._final(self._op_free_give)

    def _recover(self, entry: "List[int]") -> None:
        """After an exception in an operation of this thread (a signal handler's, most often,
        which can land between a semop and the code that gives it back): if MUTEX is left
        taken - 0, this process's last, and no other thread of this process inside an
        operation on the channel - settle, and give back what the operation held."""
        if isinstance(sys.exc_info()[1], Error):
            return      # the module's own: raised where nothing was taken, or after giving back
        try:
            semid = self._semid
            inflight = self._inflight
            if _semctl(semid, _CH_MUTEX, _GETVAL) != 0 \
                    or _semctl(semid, _CH_MUTEX, _GETPID) != os.getpid() \
                    or len(inflight) != 1 or inflight[0] is not entry:
                return
            phase, s = entry[0], entry[1] if entry[0] == _PH_PRODUCER else entry[2]
            if "_h" in self.__dict__:       # (not yet, while Channel(key) opens it)
                self._settle()
            if phase == _PH_CONSUMER:
                self._final(self._op_ready_unlock)
            elif phase == _PH_MUTEX:
                self._final(self._op_unlock)
            else:       # our FREE unit goes back with MUTEX, and our slot (if any) is FREE
                if s >= 0:
                    slot = self._slot[s]
                    if phase != _PH_PRODUCER or (slot.state == _CH_WRITING
                                                 and slot.pid == os.getpid()):
                        slot.pid = 0
                        slot.state = _CH_SLOT_FREE
                self._final(self._op_free_unlock)
        except BaseException:
            pass        # best effort: the caller raises the exception that brought us here

    def _reserve_exit(self, s: int, n: int, failed: bool) -> None:
        slot = self._slot[s]
        self._lock()
        try:
            self._settle()
            closed = failed or bool(self._h.closed)
            if closed:
                slot.pid = 0
                slot.state = _CH_SLOT_FREE
            else:
                slot.length = n
        except BaseException:
            slot.pid = 0                    # abandoned, as an exception in the block would
            slot.state = _CH_SLOT_FREE
            self._final(self._op_free_unlock)
            raise
        if closed:
            self._final(self._op_free_unlock)
            if not failed:
                raise self._closed_error("reserve")
            return
        self._commit_locked(s)

    # -- receiving ------------------------------------------------------------------------------
    def _take_free_locked(self, s: int) -> None:
        h, slot = self._h, self._slot[s]
        tail = int(h.tail)

        def body() -> None:
            h.tail = tail + 1
            slot.pid = 0
            slot.state = _CH_SLOT_FREE
            h.received += 1
        self._journaled(_J_TAKE_FREE, s, tail, body, self._op_take_free, self._op_ready_unlock)

    def receive(self, timeout: "Optional[float]" = None) -> bytes:
        """The next message, copied out (waits at most ``timeout`` seconds: None forever, 0 not
        at all: TimedOutError).  ChannelClosedError once the channel is closed and drained."""
        entry = [_PH_CONSUMER, -1, -1]
        inflight = self._inflight
        inflight.append(entry)
        try:
            s = self._consumer_slot(timeout, "receive")
            try:
                start = self._payload[s]
                data = self._buf[start:start + self._slot[s].length].tobytes()
            except BaseException:
                self._final(self._op_ready_unlock)
                raise
            self._take_free_locked(s)
        except BaseException:
            self._recover(entry)
            raise
        finally:
            inflight.pop()
        return data

    def receive_into(self, buffer: "Any", timeout: "Optional[float]" = None) -> int:
        """Copy the next message into the writable ``buffer``; returns its length.  A message
        longer than the buffer stays first in the channel (MessageTooLongError)."""
        with memoryview(buffer) as dest:
            if dest.readonly:
                raise TypeError("receive_into() needs a writable buffer")
            with dest.cast("B") as flat:
                entry = [_PH_CONSUMER, -1, -1]
                inflight = self._inflight
                inflight.append(entry)
                try:
                    return self._receive_into(flat, timeout)
                except BaseException:
                    self._recover(entry)
                    raise
                finally:
                    inflight.pop()

    def _receive_into(self, flat: memoryview, timeout: "Optional[float]") -> int:
        s = self._consumer_slot(timeout, "receive_into")
        try:
            n = int(self._slot[s].length)
            if n > flat.nbytes:
                raise _ch_error(MessageTooLongError, _errno.EMSGSIZE, "the message (%d "
                                "bytes) is longer than the buffer (%d bytes); it stays "
                                "queued" % (n, flat.nbytes),
                                self._describe("receive_into")())
            start = self._payload[s]
            flat[:n] = self._buf[start:start + n]
        except BaseException:
            self._final(self._op_ready_unlock)
            raise
        self._take_free_locked(s)
        return n

    def receive_view(self, timeout: "Optional[float]" = None) -> _InPlace:
        """``with ch.receive_view(timeout) as view:`` - the next message in place (zero-copy);
        the slot is freed when the block ends.  ``view`` is the slot itself, reused for later
        messages: it must not be used after the block (never a crash, but it then shows
        whatever the slot holds next).  Each slot's view is made once and
        handed out again."""
        return _InPlace(self, False, 0, _timeout(timeout))

    def _view_enter(self, entry: "List[int]", timeout: "Optional[float]") -> memoryview:
        s = self._consumer_slot(timeout, "receive_view")
        h, slot = self._h, self._slot[s]
        tail = int(h.tail)
        n = slot.length
        view = self._view(s, n)

        def body() -> None:
            h.tail = tail + 1
            slot.pid = os.getpid()
            slot.state = _CH_READING
            h.received += 1
        self._journaled(_J_TAKE, s, tail, body, self._op_take, self._op_ready_unlock)
        entry[2] = s
        return view

    def _view_exit(self, s: int) -> None:
        slot = self._slot[s]
        self._lock()
        try:
            self._settle()
        finally:
            slot.pid = 0
            slot.state = _CH_SLOT_FREE
            self._final(self._op_free_unlock)

    # -- control --------------------------------------------------------------------------------
    def close(self) -> None:
        """No more messages, for every producer (final): waiting and later send()/reserve()
        raise ChannelClosedError; consumers receive what was sent, then ChannelClosedError."""
        entry = [_PH_MUTEX, -1, -1]
        inflight = self._inflight
        inflight.append(entry)
        try:
            self._close()
        except BaseException:
            self._recover(entry)
            raise
        finally:
            inflight.pop()

    def _close(self) -> None:
        self._lock()
        try:
            self._settle()
            already = bool(self._h.closed)
        except BaseException:
            self._final(self._op_unlock)
            raise
        if already:
            self._final(self._op_unlock)
            return
        give_back = self._op_unlock
        self._journaled(_J_CLOSE, 0, 0, lambda: setattr(self._h, "closed", 1), self._op_close,
                        give_back)

    def remove(self) -> None:
        """Remove the semaphore set and the segment (IPC_RMID): waiters get an error; the
        segment goes at its last detach."""
        assert self._shm is not None
        _check(_semctl(self._semid, 0, _IPC_RMID), lambda: "semctl(id=%d, IPC_RMID)" % self._semid)
        self._shm.remove()

    def detach(self) -> None:
        """Detach the segment (the channel stays; views into it must be gone: BufferError,
        and the channel stays usable)."""
        if self._shm is not None:
            shm = self._shm
            if not shm.attached:
                return
            if self._held:
                raise BufferError("cannot detach: this channel holds %d slot(s) in reserve() or "
                                  "receive_view() blocks; leave them first" % self._held)
            self._drop()
            try:
                shm.detach()
            except BaseException:
                if shm.attached:    # still attached (BufferError): views of our own again
                    self._bind(shm, self._slots_n, self._slot_size)
                raise

    def __getattr__(self, name: str) -> "Any":
        # Only reached for what is missing: the segment's views after detach().
        if name in ("_h", "_order", "_slot", "_buf", "_views"):
            exc = NotAttachedError(_errno.EINVAL, "not attached")
            exc.call = "Channel(key=%s): detached" % _fmt_key(_key_t(self._key))
            raise exc
        raise AttributeError("'Channel' object has no attribute %r" % name)

    def __reduce_ex__(self, protocol: "Any") -> "Any":
        raise TypeError("a Channel cannot be copied or pickled; open it again: Channel(key)")

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc: "Any") -> None:
        self.detach()

    def __repr__(self) -> str:
        return "<Channel key=%s slots=%d slot_size=%d>" % (
            _fmt_key(_key_t(self._key)), self._slots_n, self._slot_size)

    key = _ReadOnly(lambda self: self._key, "The key of the segment and of the set.")
    id = _ReadOnly(lambda self: self._shm.id, "The segment's id (shmid).")
    semid = _ReadOnly(lambda self: self._semid, "The semaphore set's id (semid).")
    slots = _ReadOnly(lambda self: self._slots_n, "The number of slots.")
    slot_size = _ReadOnly(lambda self: self._slot_size, "The longest message, in bytes.")
    closed = _ReadOnly(lambda self: bool(self._h.closed), "True once close() ran.")
    pending = _ReadOnly(lambda self: int(self._h.head - self._h.tail),
                        "Messages committed and not yet taken (a snapshot).")
    waiting_producers = _ReadOnly(lambda self: _check(
        _semctl(self._semid, _CH_FREE, _GETNCNT), lambda: "semctl(GETNCNT)"),
        "Processes waiting for a free slot (GETNCNT of FREE).")
    waiting_consumers = _ReadOnly(lambda self: _check(
        _semctl(self._semid, _CH_READY, _GETNCNT), lambda: "semctl(GETNCNT)"),
        "Processes waiting for a message (GETNCNT of READY).")


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


# `python3 -m sysvshm ls|info|rm|mk|limits|summary|dump`: ipcs, ipcrm, ipcmk and lsipc for hosts
# that have Python but not util-linux.  Layouts, messages and exit statuses are util-linux 2.38's
# word for word (typos included), so scripts written against those tools keep working; the
# deviations are deliberate and named where they happen.  The source of truth is the kernel's own
# table, /proc/sysvipc/* (every object, whatever its permissions; keys in signed decimal); without
# it, the SHM_INFO/SHM_STAT loops (SEM_*, MSG_*).  Tests point these two paths elsewhere.
_cli_sysvipc = "/proc/sysvipc"
_cli_sysctl = "/proc/sys/kernel"

_CLI_KINDS = ("msg", "shm", "sem")     # ipcs prints queues, then segments, then semaphore arrays
_CLI_IPC_INFO = 3
_CLI_INFO = {"shm": 14, "sem": 19, "msg": 12}                   # SHM_INFO, SEM_INFO, MSG_INFO
_CLI_STAT = {"shm": (15, 13), "sem": (20, 18), "msg": (13, 11)}  # *_STAT_ANY (4.17+), *_STAT
_CLI_PROC_NAMES = {"shmid": "id", "semid": "id", "msqid": "id", "perms": "mode"}
_CLI_FIELDS = {   # what the commands read; /proc/sysvipc has had more columns over the years
    "shm": {"size", "cpid", "lpid", "nattch", "atime", "dtime"},
    "sem": {"nsems", "otime"},
    "msg": {"cbytes", "qnum", "lspid", "lrpid", "stime", "rtime"},
}
_CLI_WHAT = {"shm": "shared memory segment", "sem": "semaphore", "msg": "message queue"}
_CLI_JSON_KIND = {"shm": "sharedmemory", "sem": "semaphores", "msg": "messages"}
_CLI_ID_NAME = {"shm": "shmid", "sem": "semid", "msg": "msqid"}
_CLI_TITLES = {
    "shm": {"": "Shared Memory Segments", "time": "Shared Memory Attach/Detach/Change Times",
            "pid": "Shared Memory Creator/Last-op PIDs",
            "creator": "Shared Memory Segment Creators/Owners"},
    "sem": {"": "Semaphore Arrays", "time": "Semaphore Operation/Change Times",
            "creator": "Semaphore Arrays Creators/Owners"},      # ipcs -p has no semaphore table
    "msg": {"": "Message Queues", "time": "Message Queues Send/Recv/Change Times",
            "pid": "Message Queues PIDs", "creator": "Message Queues Creators/Owners"},
}
_CLI_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))
if TYPE_CHECKING:
    _CliRecord = Dict[str, int]


class _CliError(Exception):
    """One line for stderr (after "sysvshm CMD: ") and exit status 1."""


# -- where the records come from ------------------------------------------------------------------
def _cli_proc_records(kind: str) -> "Optional[List[_CliRecord]]":
    """/proc/sysvipc/KIND parsed by its header line (perms in octal); None if unreadable or
    without a column the commands need."""
    try:
        with open(os.path.join(_cli_sysvipc, kind)) as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    if not lines:
        return None
    names = [_CLI_PROC_NAMES.get(name, name) for name in lines[0].split()]
    if not _CLI_FIELDS[kind] | {"key", "id", "mode", "uid", "gid", "cuid", "cgid",
                                "ctime"} <= set(names):
        return None
    records = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != len(names):
            continue
        try:
            records.append(dict((name, int(value, 8 if name == "mode" else 10))
                                for name, value in zip(names, fields)))
        except ValueError:
            continue
    return records


def _cli_scan_records(kind: str) -> "List[_CliRecord]":
    """The fallback without /proc/sysvipc: *_INFO gives the highest index in use, *_STAT_ANY
    (or *_STAT before Linux 4.17, which skips objects we may not read) each slot's object."""
    if kind not in _checked:
        _selfcheck(kind)
    buf = ctypes.create_string_buffer(max(_LAYOUT[kind][0], 128))
    highest = _ctl(kind, 0, _CLI_INFO[kind], buf)
    if highest < 0:
        raise _error(_get_errno(), "%sctl(0, %s_INFO)" % (kind, kind.upper()))
    records = []
    for index in range(highest + 1):
        ident = -1
        for cmd in _CLI_STAT[kind]:
            ident = _ctl(kind, index, cmd, buf)
            if ident >= 0 or _get_errno() != _errno.EINVAL:
                break
        if ident >= 0:
            record = _unpack(kind, buf.raw)
            record["id"] = ident
            records.append(record)
    return records


def _cli_records(kind: str) -> "List[_CliRecord]":
    records = _cli_proc_records(kind)
    return _cli_scan_records(kind) if records is None else records


def _cli_find(kind: str, ident: int) -> "_CliRecord":
    for record in _cli_records(kind):
        if record["id"] == ident:
            return record
    raise _CliError("id %d not found" % ident)


def _cli_info_struct(kind: str, cmd: int, info: str) -> "Dict[str, int]":
    """The struct `info` (shminfo, shm_info, seminfo, msginfo) that the *ctl command `cmd`
    (IPC_INFO, SHM_INFO, ...) writes, decoded with the ABI's declared layout."""
    buf = ctypes.create_string_buffer(max(_LAYOUT[kind][0], _LAYOUT[info][0], 128))
    if _ctl(kind, 0, cmd, buf) < 0:
        raise _error(_get_errno(), "%sctl(0, %d)" % (kind, cmd))
    return _unpack(info, buf.raw)


def _cli_sysctl_ints(name: str, count: int) -> "Optional[List[int]]":
    try:
        with open(os.path.join(_cli_sysctl, name)) as value:
            numbers = [int(word) for word in value.read().split()]
    except (OSError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _cli_limits(kind: str) -> "Dict[str, int]":
    """ipcs -l's numbers: /proc/sys/kernel/* (as ipcs reads them), else IPC_INFO."""
    if kind == "shm":
        found = [_cli_sysctl_ints(name, 1) for name in ("shmmax", "shmall", "shmmni")]
        if all(found):
            shmmax, shmall, shmmni = [numbers[0] for numbers in found if numbers]
        else:
            # A 32-bit process on a 64-bit kernel is told shmmax clamped to INT_MAX and shmall
            # cut to 32 bits (the kernel's compat_shminfo64); qemu-user cuts both to 32 bits.
            info = _cli_info_struct("shm", _CLI_IPC_INFO, "shminfo")
            shmmax, shmmni, shmall = info["shmmax"], info["shmmni"], info["shmall"]
        return {"shmmax": shmmax, "shmall": shmall, "shmmni": shmmni, "shmmin": 1}
    if kind == "sem":
        sem = _cli_sysctl_ints("sem", 4)
        if sem:
            semmsl, semmns, semopm, semmni = sem
        else:
            info = _cli_info_struct("sem", _CLI_IPC_INFO, "seminfo")
            semmni, semmns, semmsl, semopm = (info["semmni"], info["semmns"], info["semmsl"],
                                              info["semopm"])
        return {"semmni": semmni, "semmsl": semmsl, "semmns": semmns, "semopm": semopm,
                "semvmx": SEMAPHORE_VALUE_MAX}
    found = [_cli_sysctl_ints(name, 1) for name in ("msgmni", "msgmnb", "msgmax")]
    if all(found):
        msgmni, msgmnb, msgmax = [numbers[0] for numbers in found if numbers]
    else:
        info = _cli_info_struct("msg", _CLI_IPC_INFO, "msginfo")
        msgmni, msgmnb, msgmax = info["msgmni"], info["msgmnb"], info["msgmax"]
    return {"msgmni": msgmni, "msgmax": msgmax, "msgmnb": msgmnb}


# -- formatting helpers ---------------------------------------------------------------------------
_cli_name_cache = {}  # type: Dict[Tuple[str, int], Optional[str]]


def _cli_name(database: str, number: int) -> "Optional[str]":
    """The user (database "user") or group name of a number, or None (ipcs prints the number)."""
    import grp
    import pwd
    key = (database, number)
    if key not in _cli_name_cache:
        try:
            _cli_name_cache[key] = (pwd.getpwuid(number).pw_name if database == "user"
                                    else grp.getgrgid(number).gr_name)
        except (KeyError, OverflowError):
            _cli_name_cache[key] = None
    return _cli_name_cache[key]


def _cli_who(database: str, number: int) -> str:
    name = _cli_name(database, number)
    return str(number) if name is None else name


def _cli_owner(record: "_CliRecord", id_width: int) -> str:
    """ipcs's "%-10d %-10.10s" (id, owner name) or "%-10d %-10u" (id, uid without a name)."""
    name = _cli_name("user", record["uid"])
    owner = "%-10u" % record["uid"] if name is None else "%-10.10s" % name
    return "%-*d %s" % (id_width, record["id"], owner)


def _cli_ctime(seconds: int) -> str:
    """ctime(3) without its newline, in local time: "Fri Nov 27 12:29:44 2026"."""
    try:
        return time.ctime(seconds)
    except (ValueError, OverflowError, OSError):
        return str(seconds)


def _cli_when(seconds: int, short: bool) -> str:
    if not seconds:
        return "Not set"
    return _cli_ctime(seconds)[4:] if short else _cli_ctime(seconds)


def _cli_iso(seconds: int) -> "Optional[str]":
    """lsipc --time-format=iso: "2026-11-27T12:31:18+00:00"; None (null) for "Not set"."""
    import datetime
    if not seconds:
        return None
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat()


def _cli_c_octal(mode: int) -> str:
    """C's "%#o": 0644 -> "0644", 0 -> "0" (Python's "%#o" says "0o644")."""
    return "0%o" % mode if mode else "0"


def _cli_command(pid: int) -> "Optional[str]":
    """lsipc's COMMAND: the creator's command line, if that process still exists."""
    if pid <= 0:
        return None
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            text = cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


# -- ls: ipcs [-m|-s|-q] [-t|-p|-c], lsipc --json --------------------------------------------------
def _cli_table(kind: str, fmt: str, records: "List[_CliRecord]") -> "List[str]":
    """One ipcs table: its title, header and rows (ipcs's printf formats, trailing blanks too)."""
    title = _CLI_TITLES[kind].get(fmt)
    if title is None:
        return []
    idname = _CLI_ID_NAME[kind]
    lines = ["------ %s --------" % title]
    if fmt == "creator":
        lines.append("%-10s %-10s %-10s %-10s %-10s %-10s"
                     % (idname, "perms", "cuid", "cgid", "uid", "gid"))
        lines.extend("%-10d %-10o %-10s %-10s %-10s %-10s"
                     % (r["id"], r["mode"] & 0o777, _cli_who("user", r["cuid"]),
                        _cli_who("group", r["cgid"]), _cli_who("user", r["uid"]),
                        _cli_who("group", r["gid"])) for r in records)
    elif fmt == "time":
        if kind == "sem":
            lines.append("%-8s %-10s %-26.24s %-26.24s" % (idname, "owner", "last-op",
                                                          "last-changed"))
            lines.extend("%s  %-26.24s %-26.24s" % (_cli_owner(r, 8), _cli_when(r["otime"], False),
                                                    _cli_when(r["ctime"], False)) for r in records)
        else:
            names = ("attached", "detached", "changed", "atime", "dtime") if kind == "shm" \
                else ("send", "recv", "change", "stime", "rtime")
            width = 10 if kind == "shm" else 8
            lines.append("%-*s %-10s %-20s %-20s %-20s" % ((width, idname, "owner") + names[:3]))
            lines.extend("%s %-20.16s %-20.16s %-20.16s"
                         % (_cli_owner(r, width), _cli_when(r[names[3]], True),
                            _cli_when(r[names[4]], True), _cli_when(r["ctime"], True))
                         for r in records)
    elif fmt == "pid":
        if kind == "shm":
            lines.append("%-10s %-10s %-10s %-10s" % (idname, "owner", "cpid", "lpid"))
            lines.extend("%s %-10u %-10u" % (_cli_owner(r, 10), r["cpid"], r["lpid"])
                         for r in records)
        else:
            lines.append("%-10s %-10s %-10s %-10s" % (idname, "owner", "lspid", "lrpid"))
            lines.extend("%s  %5d     %5d" % (_cli_owner(r, 8), r["lspid"], r["lrpid"])
                         for r in records)
    elif kind == "shm":
        lines.append("%-10s %-10s %-10s %-10s %-10s %-10s %-12s"
                     % ("key", idname, "owner", "perms", "bytes", "nattch", "status"))
        lines.extend("0x%08x %s %-10o %-10d %-10d %-6s %-6s"
                     % (r["key"] & 0xFFFFFFFF, _cli_owner(r, 10), r["mode"] & 0o777, r["size"],
                        r["nattch"], "dest" if r["mode"] & _SHM_DEST else " ",
                        "locked" if r["mode"] & _SHM_LOCKED else " ") for r in records)
    elif kind == "sem":
        lines.append("%-10s %-10s %-10s %-10s %-10s" % ("key", idname, "owner", "perms", "nsems"))
        lines.extend("0x%08x %s %-10o %-10d" % (r["key"] & 0xFFFFFFFF, _cli_owner(r, 10),
                                                r["mode"] & 0o777, r["nsems"]) for r in records)
    else:
        lines.append("%-10s %-10s %-10s %-10s %-12s %-12s"
                     % ("key", idname, "owner", "perms", "used-bytes", "messages"))
        lines.extend("0x%08x %s %-10o %-12d %-12d" % (r["key"] & 0xFFFFFFFF, _cli_owner(r, 10),
                                                      r["mode"] & 0o777, r["cbytes"], r["qnum"])
                     for r in records)
    return lines


def _cli_json_record(kind: str, r: "_CliRecord") -> "Dict[str, Any]":
    """A record under lsipc's column names (lsipc -b -P --time-format=iso), numbers as numbers."""
    out = {}  # type: Dict[str, Any]
    out.update([("key", "0x%08x" % (r["key"] & 0xFFFFFFFF)), ("id", r["id"]),
                ("owner", _cli_who("user", r["uid"])), ("perms", _cli_c_octal(r["mode"] & 0o777)),
                ("cuid", r["cuid"]), ("cuser", _cli_name("user", r["cuid"])), ("cgid", r["cgid"]),
                ("cgroup", _cli_name("group", r["cgid"])), ("uid", r["uid"]),
                ("user", _cli_name("user", r["uid"])), ("gid", r["gid"]),
                ("group", _cli_name("group", r["gid"])), ("ctime", _cli_iso(r["ctime"]))])
    if kind == "shm":
        status = [word for bit, word in ((_SHM_DEST, "dest"), (_SHM_LOCKED, "locked"))
                  if r["mode"] & bit]
        out.update([("size", r["size"]), ("nattch", r["nattch"]),
                    ("status", ",".join(status) or None), ("attach", _cli_iso(r["atime"])),
                    ("detach", _cli_iso(r["dtime"])), ("command", _cli_command(r["cpid"])),
                    ("cpid", r["cpid"]), ("lpid", r["lpid"])])
    elif kind == "sem":
        out.update([("nsems", r["nsems"]), ("otime", _cli_iso(r["otime"]))])
    else:
        out.update([("usedbytes", r["cbytes"]), ("msgs", r["qnum"]), ("send", _cli_iso(r["stime"])),
                    ("recv", _cli_iso(r["rtime"])), ("lspid", r["lspid"]), ("lrpid", r["lrpid"])])
    return out


def _cli_kinds(args: "Any") -> "List[str]":
    """The kinds -m/-s/-q chose, in ipcs's order; all three without them or with -a (ipcs's
    -a wins over -m/-s/-q wherever it stands)."""
    chosen = [kind for kind in _CLI_KINDS if getattr(args, kind, False)]
    return list(_CLI_KINDS) if getattr(args, "all_kinds", False) else chosen or list(_CLI_KINDS)


def _cli_print(lines: "Iterable[str]") -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))


def _cli_print_json(value: "Any") -> None:
    import json
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _cli_ls(args: "Any") -> int:
    kinds = _cli_kinds(args)
    if args.json:
        _cli_print_json(dict((_CLI_JSON_KIND[kind], [_cli_json_record(kind, r)
                                                     for r in _cli_records(kind)])
                             for kind in kinds))
        return 0
    lines = [""]
    for kind in kinds:
        lines.extend(_cli_table(kind, args.format, _cli_records(kind)))
        lines.append("")
    _cli_print(lines)
    return 0


# -- info: ipcs -m|-s|-q -i ID --------------------------------------------------------------------
def _cli_parse_int32(text: str, what: str) -> int:
    """util-linux's strtos32_or_err(): a signed 32-bit decimal number, or a one-line error."""
    import re
    if not re.match(r"\s*[-+]?[0-9]+\Z", text):
        raise _CliError("%s: '%s'" % (what, text))
    value = int(text)
    if not -2 ** 31 <= value < 2 ** 31:
        raise _CliError("%s: '%s': %s" % (what, text, os.strerror(_errno.ERANGE)))
    return value


def _cli_sem_elements(semid: int, nsems: int) -> "List[Dict[str, int]]":
    """semnum, value, ncount, zcount, pid of every semaphore (semctl GETVAL, GETNCNT, ...)."""
    elements = []
    for semnum in range(nsems):
        element = {"semnum": semnum}
        for name, cmd, cname in (("value", _GETVAL, "GETVAL"), ("ncount", _GETNCNT, "GETNCNT"),
                                 ("zcount", _GETZCNT, "GETZCNT"), ("pid", _GETPID, "GETPID")):
            result = _semctl(semid, semnum, cmd)
            if result < 0:
                raise _CliError("semctl(%s) failed: %s" % (cname, os.strerror(_get_errno())))
            element[name] = result
        elements.append(element)
    return elements


def _cli_info(args: "Any") -> int:
    kind = args.kind
    ident = _cli_parse_int32(args.id, "failed to parse id argument")
    r = _cli_find(kind, ident)
    elements = []  # type: List[Dict[str, int]]
    if kind == "msg" and "qbytes" not in r:    # not in /proc/sysvipc/msg: IPC_STAT, as ipcs
        try:
            r["qbytes"] = _stat("msg", ident)["qbytes"]
        except Error:
            r["qbytes"] = 0
    if kind == "sem":
        elements = _cli_sem_elements(ident, r["nsems"])
    channel = _cli_channel(kind, r) if kind in ("shm", "sem") else None
    if args.json:
        record = _cli_json_record(kind, r)
        if kind == "msg":
            record["qbytes"] = r["qbytes"]
        if kind == "sem":
            record["elements"] = elements
        if channel is not None:
            record["channel"] = channel
        _cli_print_json({_CLI_JSON_KIND[kind]: [record]})
        return 0
    mode = _cli_c_octal(r["mode"]), _cli_c_octal(r["mode"] & 0o777)
    if kind == "shm":
        lines = ["", "Shared memory Segment shmid=%d" % ident,
                 "uid=%u\tgid=%u\tcuid=%u\tcgid=%u" % (r["uid"], r["gid"], r["cuid"], r["cgid"]),
                 "mode=%s\taccess_perms=%s" % mode,
                 "bytes=%d\tlpid=%d\tcpid=%d\tnattch=%d" % (r["size"], r["lpid"], r["cpid"],
                                                             r["nattch"]),
                 "att_time=%-26.24s" % _cli_when(r["atime"], False),
                 "det_time=%-26.24s" % _cli_when(r["dtime"], False),
                 "change_time=%-26.24s" % _cli_ctime(r["ctime"]), ""]
    elif kind == "sem":
        lines = ["", "Semaphore Array semid=%d" % ident,
                 "uid=%u\t gid=%u\t cuid=%u\t cgid=%u" % (r["uid"], r["gid"], r["cuid"], r["cgid"]),
                 "mode=%s, access_perms=%s" % mode, "nsems = %d" % r["nsems"],
                 "otime = %-26.24s" % _cli_when(r["otime"], False),
                 "ctime = %-26.24s" % _cli_ctime(r["ctime"]),
                 "%-10s %-10s %-10s %-10s %-10s" % ("semnum", "value", "ncount", "zcount", "pid")]
        lines.extend("%-10d %-10d %-10d %-10d %-10d" % (e["semnum"], e["value"], e["ncount"],
                                                        e["zcount"], e["pid"]) for e in elements)
        lines.append("")
    else:
        lines = ["", "Message Queue msqid=%d" % ident,
                 "uid=%u\tgid=%u\tcuid=%u\tcgid=%u\tmode=%s" % (r["uid"], r["gid"], r["cuid"],
                                                               r["cgid"], mode[0]),
                 "cbytes=%d\tqbytes=%d\tqnum=%d\tlspid=%d\tlrpid=%d"
                 % (r["cbytes"], r["qbytes"], r["qnum"], r["lspid"], r["lrpid"]),
                 "send_time=%-26.24s" % _cli_when(r["stime"], False),
                 "rcv_time=%-26.24s" % _cli_when(r["rtime"], False),
                 "change_time=%-26.24s" % _cli_when(r["ctime"], False), ""]
    if channel is not None:
        lines[-1:] = ["sysvshm Channel (layout version %d): %d slots of %d bytes; %d pending; %s"
                      % (channel["version"], channel["slots"], channel["slot_size"],
                         channel["pending"], "closed" if channel["closed"] else "open"),
                      "sent=%d\treceived=%d\treclaimed=%d\tfree slots=%d" % (
                          channel["sent"], channel["received"], channel["reclaimed"],
                          channel["free"]),
                      "waiting producers=%d\twaiting consumers=%d\tsegment shmid=%d\t"
                      "semaphore semid=%d" % (channel["waiting_producers"],
                                              channel["waiting_consumers"], channel["shmid"],
                                              channel["semid"]), ""]
    _cli_print(lines)
    return 0


def _cli_channel(kind: str, r: "_CliRecord") -> "Optional[Dict[str, int]]":
    """If `r` is a Channel's segment or set (a set of 4 and a segment with a channel header at
    the same key), its geometry and counters; else None.  Reads the header through a read-only
    attach (which updates the segment's shm_atime/lpid, as any reader's would)."""
    ckey = r["key"]
    if ckey == IPC_PRIVATE:
        return None
    semid = int(_semget(ckey, 0, 0)) if kind == "shm" else r["id"]
    shmid = int(_shmget(ckey, 0, 0)) if kind == "sem" else r["id"]
    if semid < 0 or shmid < 0:
        return None
    try:
        if _stat("sem", semid)["nsems"] != 4 or _stat("shm", shmid)["size"] < _CH_HEADER:
            return None
        with attach(shmid, None, SHM_RDONLY) as shm:
            h = _ChHeader.from_buffer_copy(shm.buf[:_CH_HEADER])
        if h.magic != _CH_MAGIC:
            return None
        counts = [_semctl(semid, i, _GETNCNT) for i in (_CH_FREE, _CH_READY)]
        free = _semctl(semid, _CH_FREE, _GETVAL)
    except Error:
        return None
    return {"version": h.version, "slots": h.slots, "slot_size": h.slot_size,
            "pending": h.head - h.tail, "closed": h.closed, "sent": h.sent,
            "received": h.received, "reclaimed": h.reclaimed,
            "free": max(0, free - (_CH_POISON if h.closed else 0)),
            "waiting_producers": counts[0], "waiting_consumers": counts[1],
            "shmid": shmid, "semid": semid}


# -- rm: ipcrm ------------------------------------------------------------------------------------
def _cli_parse_key(text: str) -> int:
    """A key as ipcrm reads it (strtoul base 0: 0x1f, 017, 31), or signed decimal as
    /proc/sysvipc prints it; returned as key_t.  Beyond 32 bits is an error, not truncated."""
    import re
    match = re.match(r"\s*([-+]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z", text)
    if not match:
        raise _CliError("failed to parse argument: '%s'" % text)
    sign, digits = match.groups()
    base = 16 if digits[:2] in ("0x", "0X") else 8 if digits.startswith("0") else 10
    value = int(digits, base) * (-1 if sign == "-" else 1)
    if not KEY_MIN <= value <= KEY_MAX:
        raise _CliError("failed to parse argument: '%s': %s" % (text, os.strerror(_errno.ERANGE)))
    return _key_t(value)


def _cli_rmid(kind: str, ident: int) -> int:
    if kind == "shm":
        return int(_shmctl(ident, _IPC_RMID, None))
    if kind == "sem":
        return int(_semctl(ident, 0, _IPC_RMID))
    return int(_libc.msgctl(ident, _IPC_RMID, None))


def _cli_get(kind: str, ckey: int, flags: int, size: int = 0) -> int:
    """shmget / semget / msgget: size is a segment's size or a set's number of semaphores."""
    if kind == "shm":
        return int(_shmget(ckey, size, flags))
    if kind == "sem":
        return int(_semget(ckey, size, flags))
    return int(_libc.msgget(ckey, flags))


def _cli_warn(text: str) -> None:
    sys.stderr.write("%s: %s\n" % (_cli_prog, text))
    sys.stderr.flush()


def _cli_remove(kind: str, ident: int, key_text: "Optional[str]", verbose: bool) -> bool:
    """ipcrm's remove_id(): IPC_RMID and its messages; quirk kept: a key's message shows the id."""
    if verbose:
        print("removing %s id `%d'" % (_CLI_WHAT[kind], ident))
    if _cli_rmid(kind, ident) == 0:
        return True
    err = _get_errno()
    what = "key" if key_text is not None else "id"
    if err in (_errno.EACCES, _errno.EPERM):
        message = "permission denied for %s" % what
    elif err == _errno.EINVAL:
        message = "invalid %s" % what
    elif err == _errno.EIDRM:
        message = "already removed %s" % what
    else:
        raise _CliError("%s failed: %s" % (what, os.strerror(err)))
    _cli_warn("%s (%d)" % (message, ident))
    return False


def _cli_remove_all(kind: str) -> int:
    """rm --all KIND: every object of that kind we may remove; prints each one removed.
    Segments already marked for removal (dest) are left as they are, not removed twice."""
    failures = 0
    for r in _cli_records(kind):
        if kind == "shm" and r["mode"] & _SHM_DEST:
            continue
        if _cli_rmid(kind, r["id"]) == 0:
            print("removed %s id %d (key 0x%08x)" % (_CLI_WHAT[kind], r["id"],
                                                    r["key"] & 0xFFFFFFFF))
            continue
        err = _get_errno()
        if err in (_errno.EINVAL, _errno.EIDRM):
            continue                            # removed by someone else meanwhile
        if err not in (_errno.EACCES, _errno.EPERM):
            raise _CliError("id failed: %s" % os.strerror(err))
        _cli_warn("permission denied for id (%d)" % r["id"])
        failures += 1
    return failures


def _cli_parse_old_id(text: str) -> int:
    """An id of ipcrm's historical form (`ipcrm shm ID...`): decimal, as its strtoul(base 10)
    reads it, but refused (not folded into an int) beyond 32 bits, and refused when empty."""
    import re
    if not re.match(r"\s*[-+]?[0-9]+\Z", text) or not -2 ** 31 <= int(text) < 2 ** 31:
        raise _CliError("invalid id: %s" % text)
    return int(text)


def _cli_rm_old(kind: str, texts: "List[str]") -> int:
    """`rm shm|msg|sem ID...`, ipcrm's historical form: removes each id in turn, with ipcrm's
    messages, and says "resource(s) deleted" when all went.  Every id is checked first."""
    ids = [_cli_parse_old_id(text) for text in texts]
    failures = 0
    for ident in ids:
        if not _cli_remove(kind, ident, None, False):
            failures += 1
    if failures:
        return 1
    print("resource(s) deleted")
    return 0


def _cli_rm(args: "Any") -> int:
    if args.old_form is not None:
        return _cli_rm_old(*args.old_form)
    targets = args.targets or []
    if not targets and not args.all:
        raise _CliError("nothing to remove: give -m/-s/-q ID, -M/-S/-Q KEY, or -a [KIND]")
    # Every argument is checked before anything is removed (ipcrm stops half-way instead).
    parsed = [(kind, text, _cli_parse_key(text) if by_key
               else _cli_parse_int32(text, "failed to parse argument"), by_key)
              for kind, by_key, text in targets]
    failures = 0
    for kind, text, value, by_key in parsed:
        ident = value
        if by_key:
            if value == IPC_PRIVATE:
                _cli_warn("illegal key (%s)" % text)
                failures += 1
                continue
            ident = _cli_get(kind, value, 0)
            if ident < 0:
                err = _get_errno()
                message = {_errno.EACCES: "permission denied for key", _errno.ENOENT: "invalid key",
                           _errno.EIDRM: "already removed key"}.get(err)
                if message is None:
                    raise _CliError("key failed: %s" % os.strerror(err))
                _cli_warn("%s (%s)" % (message, text))
                failures += 1
                continue
        if not _cli_remove(kind, ident, text if by_key else None, args.verbose):
            failures += 1
    for kind in ("shm", "msg", "sem"):
        if kind in (args.all or []) or None in (args.all or []):
            failures += _cli_remove_all(kind)
    return 1 if failures else 0


# -- mk: ipcmk ------------------------------------------------------------------------------------
def _cli_parse_size(text: str, what: str) -> int:
    """util-linux's strtosize(): an integer as strtoumax(base 0) reads it (4096, 0x1000, 010 is
    8), optionally with a fraction and a suffix K, M, G, T, P, E (KiB = K = 1024, KB = Kb =
    1000); fractions are exact here (util-linux reads 1.25KiB as 1279).  Fits in size_t."""
    import re
    match = re.match(r"\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(?:\.([0-9]+))?"
                     r"(?:([KMGTPEZYkmgtpezy])(i[Bb]|[Bb])?)?\Z", text)
    if not match or (match.group(2) and not match.group(3)):
        raise _CliError("failed to parse %s: '%s': %s" % (what, text, os.strerror(_errno.EINVAL)))
    whole, fraction, unit, tail = match.groups()
    base = 16 if whole[:2] in ("0x", "0X") else 8 if whole.startswith("0") else 10
    scale = (1000 if tail in ("B", "b") else 1024) ** ("KMGTPEZY".index(unit.upper()) + 1) \
        if unit else 1
    value = int(whole, base) * scale
    if fraction:
        value += int(fraction) * scale // 10 ** len(fraction)
    if value >= 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)):
        raise _CliError("failed to parse %s: '%s': %s" % (what, text, os.strerror(_errno.ERANGE)))
    return value


def _cli_parse_mode(text: str) -> int:
    """Octal, 0..0777.  (ipcmk 2.38 says "failed to parse mode: Success" for what is not octal,
    and passes bits above 0777 on as flags: its -p 01000 is IPC_CREAT and mode 0.)"""
    import re
    match = re.match(r"\s*([0-7]+)\Z", text)
    if not match or int(match.group(1), 8) > 0o777:
        raise _CliError("failed to parse mode: '%s'" % text)
    return int(match.group(1), 8)


def _cli_create(kind: str, ckey: "Optional[int]", mode: int, size: int) -> int:
    """Create with IPC_CREX: at `ckey`, or at a random unused key (ipcmk takes a random key
    with IPC_CREAT alone, and so may open someone else's object instead of creating one)."""
    if ckey is not None:
        ident = _cli_get(kind, ckey, IPC_CREX | mode, size)
    else:
        ident = _create_at_random_key(lambda k: _cli_get(kind, k, IPC_CREX | mode, size))[0]
    if ident < 0:
        return -_get_errno()
    if kind == "sem":
        # Mark the set initialised (sem_otime, FACTS §6) so that sysvshm's openers do not wait
        # for it; a creator that may not alter its own set (mode 0400) leaves it unmarked.
        try:
            _sem_initialise(ident, [0] * size)
        except PermissionsError:
            pass
    return ident


def _cli_mk(args: "Any") -> int:
    if args.shmem is None and args.semaphore is None and not args.queue:
        raise _CliError("nothing to create: give -M SIZE, -S NSEMS and/or -Q")
    mode = _cli_parse_mode(args.mode)
    ckey = None if args.key is None else _cli_parse_key(args.key)
    size = 0 if args.shmem is None else _cli_parse_size(args.shmem, "size")
    nsems = 0 if args.semaphore is None else _cli_parse_int32(args.semaphore,
                                                               "failed to parse elements")
    for kind, asked, count, failed, made in (
            ("shm", args.shmem is not None, size, "create share memory failed",
             "Shared memory id: %d"),
            ("msg", args.queue, 0, "create message queue failed", "Message queue id: %d"),
            ("sem", args.semaphore is not None, nsems, "create semaphore failed",
             "Semaphore id: %d")):
        if asked:
            ident = _cli_create(kind, ckey, mode, count)
            if ident < 0:
                raise _CliError("%s: %s" % (failed, os.strerror(-ident)))
            print(made % ident)
            sys.stdout.flush()
    return 0


# -- limits (ipcs -l, lsipc -g) and summary (ipcs -u) ---------------------------------------------
def _cli_limits_cmd(args: "Any") -> int:
    kinds = _cli_kinds(args)
    limits = dict((kind, _cli_limits(kind)) for kind in kinds)
    if args.json:
        rows = []   # lsipc --global's rows: resource, description, limit, used
        for kind in kinds:
            lim, records = limits[kind], _cli_records(kind)
            if kind == "msg":
                rows += [("MSGMNI", "Number of message queues", lim["msgmni"], len(records)),
                         ("MSGMAX", "Max size of message (bytes)", lim["msgmax"], None),
                         ("MSGMNB", "Default max size of queue (bytes)", lim["msgmnb"], None)]
            elif kind == "shm":
                pages = sum(r["size"] for r in records) // PAGE_SIZE
                rows += [("SHMMNI", "Shared memory segments", lim["shmmni"], len(records)),
                         ("SHMALL", "Shared memory pages", lim["shmall"], pages),
                         ("SHMMAX", "Max size of shared memory segment (bytes)", lim["shmmax"],
                          None),
                         ("SHMMIN", "Min size of shared memory segment (bytes)", lim["shmmin"],
                          None)]
            else:
                rows += [("SEMMNI", "Number of semaphore identifiers", lim["semmni"],
                          len(records)),
                         ("SEMMNS", "Total number of semaphores", lim["semmns"],
                          sum(r["nsems"] for r in records)),
                         ("SEMMSL", "Max semaphores per semaphore set.", lim["semmsl"], None),
                         ("SEMOPM", "Max number of operations per semop(2)", lim["semopm"], None),
                         ("SEMVMX", "Semaphore max value", lim["semvmx"], None)]
        _cli_print_json({"ipclimits": [
            {"resource": resource, "description": text, "limit": limit, "used": used}
            for resource, text, limit, used in rows]})
        return 0
    unit = "bytes" if args.bytes else "kbytes"
    lines = [""]
    for kind in kinds:
        lim = limits[kind]
        if kind == "msg":
            lines += ["------ Messages Limits --------",
                      "max queues system wide = %d" % lim["msgmni"],
                      "max size of message (bytes) = %d" % lim["msgmax"],
                      "default max size of queue (bytes) = %d" % lim["msgmnb"]]
        elif kind == "shm":
            # ipcs multiplies in uint64_t and, on overflow, prints the largest multiple of the
            # unit instead (shmall's default is "unlimited", close to 2**64).
            step = PAGE_SIZE // 1024 if unit == "kbytes" else PAGE_SIZE
            total = lim["shmall"] * step
            if total >= 2 ** 64:
                total = 2 ** 64 - 1 - (2 ** 64 - 1) % step
            lines += ["------ Shared Memory Limits --------",
                      "max number of segments = %d" % lim["shmmni"],
                      "max seg size (%s) = %d" % (unit, lim["shmmax"] // (1024 if unit == "kbytes"
                                                                          else 1)),
                      "max total shared memory (%s) = %d" % (unit, total),
                      "min seg size (bytes) = %d" % lim["shmmin"]]
        else:
            lines += ["------ Semaphore Limits --------",
                      "max number of arrays = %d" % lim["semmni"],
                      "max semaphores per array = %d" % lim["semmsl"],
                      "max semaphores system wide = %d" % lim["semmns"],
                      "max ops per semop call = %d" % lim["semopm"],
                      "semaphore max value = %d" % lim["semvmx"]]
        lines.append("")
    _cli_print(lines)
    return 0


def _cli_summary(args: "Any") -> int:
    """ipcs -u: the kernel's SHM_INFO / SEM_INFO / MSG_INFO counters."""
    kinds = _cli_kinds(args)
    found = {}  # type: Dict[str, Dict[str, int]]
    for kind in kinds:
        if kind == "msg":   # MSG_INFO fills msginfo with counts instead of limits
            info = _cli_info_struct("msg", _CLI_INFO["msg"], "msginfo")
            found[kind] = {"allocated_queues": info["msgpool"], "used_headers": info["msgmap"],
                           "used_space": info["msgtql"]}
        elif kind == "shm":
            info = _cli_info_struct("shm", _CLI_INFO["shm"], "shm_info")
            found[kind] = dict((name, info[field]) for name, field in (
                ("segments_allocated", "used_ids"), ("pages_allocated", "shm_tot"),
                ("pages_resident", "shm_rss"), ("pages_swapped", "shm_swp"),
                ("swap_attempts", "swap_attempts"), ("swap_successes", "swap_successes")))
        else:               # SEM_INFO: semusz = sets in use, semaem = semaphores
            info = _cli_info_struct("sem", _CLI_INFO["sem"], "seminfo")
            found[kind] = {"used_arrays": info["semusz"], "allocated_semaphores": info["semaem"]}
    if args.json:
        _cli_print_json(dict((_CLI_JSON_KIND[kind], found[kind]) for kind in kinds))
        return 0
    lines = [""]
    for kind in kinds:
        n = found[kind]
        if kind == "msg":
            lines += ["------ Messages Status --------",
                      "allocated queues = %d" % n["allocated_queues"],
                      "used headers = %d" % n["used_headers"],
                      "used space = %d bytes" % n["used_space"]]
        elif kind == "shm":
            lines += ["------ Shared Memory Status --------",
                      "segments allocated %d" % n["segments_allocated"],
                      "pages allocated %d" % n["pages_allocated"],
                      "pages resident  %d" % n["pages_resident"],
                      "pages swapped   %d" % n["pages_swapped"],
                      "Swap performance: %d attempts\t %d successes"
                      % (n["swap_attempts"], n["swap_successes"])]
        else:
            lines += ["------ Semaphore Status --------",
                      "used arrays = %d" % n["used_arrays"],
                      "allocated semaphores = %d" % n["allocated_semaphores"]]
        lines.append("")
    _cli_print(lines)
    return 0


# -- dump: xxd of a segment -----------------------------------------------------------------------
def _cli_hexdump(data: bytes, address: int) -> "List[str]":
    """xxd's default layout: offset, eight groups of two bytes, the printable characters."""
    import binascii
    lines = []
    for start in range(0, len(data), 16):
        row = data[start:start + 16]
        digits = binascii.hexlify(row).decode("ascii")
        groups = " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))
        lines.append("%08x: %-39s  %s" % (address + start, groups,
                                          row.translate(_CLI_PRINTABLE).decode("ascii")))
    return lines


def _cli_dump(args: "Any") -> int:
    ident = _cli_parse_int32(args.id, "failed to parse id argument")
    offset = _cli_parse_size(args.offset, "offset")
    length = None if args.length is None else _cli_parse_size(args.length, "length")
    try:
        mem = attach(ident, None, SHM_RDONLY)
    except (NotFoundError, RemovedError):
        raise _CliError("id %d not found" % ident) from None
    try:
        size = mem.size
        if offset > size:
            raise _CliError("offset %d is beyond the end of segment %d (%d bytes)"
                            % (offset, ident, size))
        end = size if length is None else min(size, offset + length)
        position = offset
        while position < end:
            count = min(end - position, 1 << 16)
            _cli_print(_cli_hexdump(mem.read(count, position), position))
            position += count
    finally:
        mem.detach()
    return 0


# -- main -----------------------------------------------------------------------------------------
_cli_prog = "sysvshm"


def _cli_parser() -> "Any":
    import argparse
    from typing import NoReturn

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            # util-linux style: one line on stderr, exit status 1 (argparse: usage text and 2).
            self.exit(1, "%s: %s (see '%s --help')\n" % (self.prog, message, self.prog))

    class Target(argparse.Action):
        """rm's -m/-M/-s/-S/-q/-Q, kept in command-line order in one list."""

        def __call__(self, parser: "Any", namespace: "Any", values: "Any", option: "Any" = None) -> None:
            targets = getattr(namespace, "targets", None) or []
            targets.append((self.const[0], self.const[1], values))
            namespace.targets = targets

    def kinds(command: "Any", help_suffix: str) -> None:
        command.add_argument("-m", "--shm", dest="shm", action="store_true",
                             help="shared memory segments" + help_suffix)
        command.add_argument("-s", "--sem", dest="sem", action="store_true",
                             help="semaphore sets" + help_suffix)
        command.add_argument("-q", "--msg", dest="msg", action="store_true",
                             help="message queues" + help_suffix)
        command.add_argument("-a", "--all", dest="all_kinds", action="store_true",
                             help="all three kinds (the default; as in ipcs, it wins over "
                             "-m/-s/-q)")

    parser = Parser(prog="sysvshm", description="System V IPC from Python: ipcs, ipcrm, ipcmk "
                    "and lsipc for hosts without util-linux.  Without a command: ls.",
                    epilog="'sysvshm COMMAND --help' describes each command.")
    parser.add_argument("-V", "--version", action="version", version="sysvshm " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ls = commands.add_parser("ls", help="list segments, semaphore sets and queues (ipcs, lsipc)",
                             description="List the IPC namespace's objects as ipcs prints them "
                             "(all kinds unless -m/-s/-q), or as JSON with lsipc's field names.")
    kinds(ls, " only")
    form = ls.add_mutually_exclusive_group()
    for short, name, text in (("-t", "time", "attach/detach/change times (ipcs -t)"),
                              ("-p", "pid", "creator and last-operation pids (ipcs -p)"),
                              ("-c", "creator", "creator and owner (ipcs -c)")):
        form.add_argument(short, "--" + name, dest="format", action="store_const", const=name,
                          help=text)
    form.add_argument("--json", action="store_true",
                      help="JSON, every field, under lsipc's names (lsipc --json -b -P)")
    ls.add_argument("-b", "--bytes", action="store_true",
                    help="sizes in bytes: accepted as ipcs accepts it; listings always show "
                    "bytes")
    ls.set_defaults(format="", handler=_cli_ls)

    info = commands.add_parser("info", help="one object in detail (ipcs -m|-s|-q -i ID)",
                               description="Show one object in detail, as 'ipcs -m|-s|-q -i ID' "
                               "does; a semaphore set with its semaphores' value, ncount, "
                               "zcount and pid.")
    which = info.add_mutually_exclusive_group(required=True)
    for short, kind, text in (("-m", "shm", "a shared memory segment"),
                              ("-s", "sem", "a semaphore set"), ("-q", "msg", "a message queue")):
        which.add_argument(short, "--" + kind, dest="kind", action="store_const", const=kind,
                           help=text)
    info.add_argument("id", metavar="ID", help="its id (not its key)")
    info.add_argument("--json", action="store_true", help="JSON under lsipc's names")
    info.set_defaults(handler=_cli_info)

    rm = commands.add_parser("rm", help="remove objects by id or key (ipcrm)",
                             usage="%(prog)s [-h] [-v] [-m ID] [-M KEY] [-s ID] [-S KEY] "
                             "[-q ID] [-Q KEY] [-a [KIND]]\n       %(prog)s shm|msg|sem ID...",
                             description="Remove objects by id or key, as ipcrm does (same "
                             "messages and exit status).  Options may repeat; every argument "
                             "is checked before anything is removed.  ipcrm's historical "
                             "form 'rm shm|msg|sem ID...' removes objects of one kind by id "
                             "and says 'resource(s) deleted' when all went.")
    for short, name, kind, by_key, metavar, text in (
            ("-m", "--shmem-id", "shm", False, "ID", "a shared memory segment by id"),
            ("-M", "--shmem-key", "shm", True, "KEY", "a shared memory segment by key"),
            ("-s", "--semaphore-id", "sem", False, "ID", "a semaphore set by id"),
            ("-S", "--semaphore-key", "sem", True, "KEY", "a semaphore set by key"),
            ("-q", "--queue-id", "msg", False, "ID", "a message queue by id"),
            ("-Q", "--queue-key", "msg", True, "KEY", "a message queue by key")):
        rm.add_argument(short, name, action=Target, const=(kind, by_key), metavar=metavar,
                        help=text)
    rm.add_argument("-a", "--all", action="append", nargs="?", const=None,
                    choices=("shm", "sem", "msg"), metavar="KIND",
                    help="remove EVERY object of KIND (shm, sem or msg), or of every kind "
                    "without KIND, that you may remove, printing each one removed; repeat for "
                    "several kinds.  '-a shm' is shm only, as '-ashm' and '--all=shm' (ipcrm "
                    "2.38 removes every kind for '-a shm', then rejects 'shm')")
    rm.add_argument("-v", "--verbose", action="store_true", help="say what is being removed")
    rm.set_defaults(targets=None, old_form=None, handler=_cli_rm)

    mk = commands.add_parser("mk", help="create a segment, set or queue (ipcmk)",
                             description="Create objects as ipcmk does and print their ids; "
                             "at a random unused key unless --key (always IPC_CREAT|IPC_EXCL, "
                             "so an existing object is never opened instead).")
    mk.add_argument("-M", "--shmem", metavar="SIZE",
                    help="a shared memory segment of SIZE bytes (suffixes K, M, G, ...: "
                    "KiB = K = 1024, KB = 1000)")
    mk.add_argument("-S", "--semaphore", metavar="NSEMS",
                    help="a set of NSEMS semaphores (values 0)")
    mk.add_argument("-Q", "--queue", action="store_true", help="a message queue")
    mk.add_argument("-p", "--mode", default="0644", metavar="MODE",
                    help="permissions, octal (default 0644, as ipcmk)")
    mk.add_argument("-k", "--key", metavar="KEY",
                    help="create at this key (0x1f, 017, 31, or signed decimal); fails if "
                    "taken.  Key 0 is IPC_PRIVATE: a new object every time, which no key "
                    "finds (use the id printed)")
    mk.set_defaults(handler=_cli_mk)

    limits = commands.add_parser("limits", help="system limits (ipcs -l)",
                                 description="System-wide limits as 'ipcs -l' prints them, "
                                 "from /proc/sys/kernel (else IPC_INFO).")
    kinds(limits, " only")
    limits.add_argument("-b", "--bytes", action="store_true", help="sizes in bytes (ipcs -l -b)")
    limits.add_argument("--json", action="store_true",
                        help="JSON: lsipc --global's rows (resource, description, limit, used)")
    limits.set_defaults(handler=_cli_limits_cmd)

    summary = commands.add_parser("summary", help="current usage (ipcs -u)",
                                  description="Current usage as 'ipcs -u' prints it (the "
                                  "kernel's SHM_INFO, SEM_INFO and MSG_INFO counters).")
    kinds(summary, " only")
    summary.add_argument("--json", action="store_true", help="JSON")
    summary.set_defaults(handler=_cli_summary)

    dump = commands.add_parser("dump", help="hexdump of a segment (xxd), attached read-only",
                               description="Print a segment's bytes as xxd does, attaching it "
                               "read-only (SHM_RDONLY): offsets are the segment's.")
    dump.add_argument("id", metavar="ID", help="the segment's id")
    dump.add_argument("--offset", default="0", metavar="N",
                      help="start at byte N (decimal, 0x hex, or K/M/G suffixes)")
    dump.add_argument("--length", metavar="N", help="at most N bytes (default: to the end)")
    dump.set_defaults(handler=_cli_dump)

    commands.add_parser("demo", help="run the A/B scenario: segment + semaphore set, two "
                        "processes, timings; removes what it made")
    parser.set_defaults(command_parsers=commands.choices)
    return parser


def main(argv: "Optional[List[str]]" = None) -> int:
    """``python3 -m sysvshm [COMMAND]``; see --help.  Returns the exit status."""
    global _cli_prog
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _cli_parser()
    try:
        if argv[:1] == ["rm"] and argv[1:2] in (["shm"], ["msg"], ["sem"]):
            # ipcrm's historical form: every word after the kind is an id (as in ipcrm).
            args = parser.parse_args(["rm"])
            if len(argv) < 3:
                args.command_parsers["rm"].error("not enough arguments")
            args.old_form = (argv[1], argv[2:])
        else:
            args, unknown = parser.parse_known_args(argv)
            if unknown:
                # Report it against the command it follows ("sysvshm ls: ..."), unless it
                # came before the command.
                where = parser if args.command is None or argv.index(args.command) > 0 \
                    else args.command_parsers[args.command]
                where.error("unrecognized arguments: %s" % " ".join(unknown))
    except SystemExit as exc:          # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if args.command is None:
        args = parser.parse_args(["ls"])
    _cli_prog = "sysvshm " + args.command
    try:
        status = _demo() if args.command == "demo" else int(args.handler(args))
        sys.stdout.flush()       # a closed pipe shows here, not at interpreter exit
        return status
    except _CliError as exc:
        _cli_warn(str(exc))
    except Error as exc:
        _cli_warn("%s: %s" % (exc.call, exc.strerror) if exc.call else str(exc))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            # `sysvshm dump ID | head`: stop quietly; stdout goes nowhere from now on.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            return 1
        _cli_warn(exc.strerror or str(exc))
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
