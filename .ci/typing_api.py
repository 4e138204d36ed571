# Checked by `mypy --strict` in .ci/run, never run: the API as a type checker sees it.
# SPDX-License-Identifier: MIT
"""User code that must type-check under ``mypy --strict`` (with sysvshm.py beside it).

Each ``assert_type(expression, T)`` requires exactly T (not Any).  Each line ending in
``# type: ignore[code]`` must be an error with that code: --strict reports an ignore that
silences nothing ("unused type: ignore"), so a mistake that stops being an error fails too."""

import ctypes
from typing import List, Optional, Tuple

from typing_extensions import assert_type

import sysvshm
from sysvshm import (IPC_CREX, AccessError, ExistsError, InterruptedCallError, MessageQueue,
                     MessageTooLongError, NotFoundError, OutOfRangeError, RemovedError, Semaphore,
                     SemaphoreMember, SemaphoreSet, SharedMemory, TimedOutError, WouldBlockError)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32)]


def segment_size(shm: SharedMemory) -> int:
    return shm.size            # an int, not Any: --strict refuses to return Any from -> int


def where(shm: SharedMemory) -> Optional[int]:
    return shm.address


def segment(shm: SharedMemory) -> None:
    assert_type(shm.key, int)
    assert_type(shm.id, int)
    assert_type(shm.size, int)
    assert_type(shm.address, Optional[int])
    assert_type(shm.attached, bool)
    assert_type(shm.readonly, bool)
    assert_type(shm.removed, bool)
    assert_type(shm.locked, bool)
    assert_type(shm.mode, int)
    assert_type(shm.uid, int)
    assert_type(shm.cuid, int)
    assert_type(shm.creator_pid, int)
    assert_type(shm.last_pid, int)
    assert_type(shm.number_attached, int)
    assert_type(shm.last_attach_time, int)
    assert_type(shm.as_ctypes(Point), Point)
    assert_type(shm.as_ctypes(ctypes.c_uint32 * 4), ctypes.Array[ctypes.c_uint32])
    assert_type(shm.as_ctypes(), ctypes.Array[ctypes.c_ubyte])
    assert_type(shm.read(4), bytes)
    assert_type(shm.buf, memoryview)
    shm.mode = 0o640           # settable (IPC_SET)
    with SharedMemory(None, IPC_CREX, size=4096) as mem:
        assert_type(mem, SharedMemory)
    assert_type(sysvshm.attach(shm.id), SharedMemory)


def semaphores(sem: Semaphore, sems: SemaphoreSet) -> None:
    assert_type(sem.key, int)
    assert_type(sem.value, int)
    assert_type(sem.pid, int)
    assert_type(sem.last_pid, int)
    assert_type(sem.ncnt, int)
    assert_type(sem.waiting_for_zero, int)
    assert_type(sem.o_time, int)
    assert_type(sem.block, bool)
    with sem as held:
        assert_type(held, Semaphore)
    assert_type(sems[0], SemaphoreMember)
    assert_type(sems[0].index, int)
    assert_type(sems[0].value, int)
    assert_type(sems[0].set, SemaphoreSet)
    with sems[1] as member:
        assert_type(member, SemaphoreMember)
    assert_type(sems.values, List[int])
    assert_type(len(sems), int)
    sem.value = 3
    sem.undo = True


def queue(mq: MessageQueue) -> None:
    assert_type(mq.key, int)
    assert_type(mq.max_message_size, int)
    assert_type(mq.max_size, int)
    assert_type(mq.current_messages, int)
    assert_type(mq.last_send_pid, int)
    assert_type(mq.receive(), Tuple[bytes, int])
    mq.max_size = 4096


def whole_api(path: str) -> int:
    """Every call a user makes, as a user writes it: the results are typed, never Any."""
    key = sysvshm.ftok(path, ord("A"), silence_warning=True)
    with SharedMemory(key, sysvshm.IPC_CREAT, 0o600, 4096) as shm:
        shm.write(b"hello")
        shm.write("text", offset=8)
        buffer = bytearray(16)
        assert_type(shm.read_into(buffer, 0), int)
        view = shm.as_ctypes(Point)
        view.x = 3
        shm.prefault()
    mem = sysvshm.attach(shm.id, None, sysvshm.SHM_RDONLY)
    mem.detach()
    mem.attach()
    mem.remove()
    sems = SemaphoreSet(key, 2, sysvshm.IPC_CREAT, 0o600, [1, 0])
    sems.op([(0, -1), (1, 1, sysvshm.SEM_UNDO)], timeout=1.0)
    sems.values = [1, 1]
    for member in sems:
        member.acquire(timeout=0.5)
        member.release()
    sem = Semaphore(None, IPC_CREX, initial_value=1)
    sem.acquire(0)
    sem.release(delta=1)
    sem.Z(timeout=0)
    mq = MessageQueue(None, IPC_CREX, max_message_size=64)
    mq.send(b"x", block=False, type=2)
    message, mtype = mq.receive(type=-5, flags=sysvshm.MSG_NOERROR)
    assert_type(message, bytes)
    assert_type(mq.receive_into(bytearray(64)), Tuple[int, int])
    sysvshm.remove_message_queue(mq.id)
    sysvshm.remove_semaphore(sem.id)
    sems.remove()
    return mtype + len(sems) + sysvshm.PAGE_SIZE + sysvshm.KEY_MAX


def errors() -> Optional[str]:
    try:
        Semaphore(None, IPC_CREX).acquire(timeout=0.5)
    except (TimedOutError, WouldBlockError, NotFoundError, ExistsError, RemovedError, AccessError,
            OutOfRangeError, InterruptedCallError, MessageTooLongError) as exc:
        assert_type(exc.errno, Optional[int])
        return exc.call
    return None


def rejected(shm: SharedMemory, sem: Semaphore, sems: SemaphoreSet, mq: MessageQueue) -> None:
    shm.size = 5  # type: ignore[assignment]
    shm.key = 1  # type: ignore[assignment]
    shm.id = 2  # type: ignore[assignment]
    shm.attached = False  # type: ignore[assignment]
    shm.readonly = False  # type: ignore[assignment]
    shm.address = None  # type: ignore[assignment]
    shm.number_attached = 0  # type: ignore[assignment]
    sem.pid = 0  # type: ignore[assignment]
    sems[0].index = 1  # type: ignore[assignment]
    mq.current_messages = 0  # type: ignore[assignment]
    mq.max_message_size = 10  # type: ignore[assignment]
    shm.as_ctypes(int)  # type: ignore[type-var]


def size_as_text(shm: SharedMemory) -> str:
    return shm.size  # type: ignore[return-value]
