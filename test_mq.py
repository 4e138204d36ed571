# Tests for sysvshm's message queues, and for sysvshm as a drop-in for sysv_ipc.
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The sysvshm authors
"""Tests for sysvshm.MessageQueue and the sysv_ipc drop-in proof: python3 -m unittest -v test_mq

Same rules as test_sysvshm.py (whose helpers are repeated here until the two files are folded
together): cross-process behaviour runs in real processes (os.fork(), the child leaves through
os._exit(), the parent reaps it with a deadline); processes synchronise through pipes, the queue
under test, or the kernel's own state (/proc/PID/wchan says a process sleeps in msgrcv/msgsnd),
never through sleep; every blocking call is bounded (a timeout, or SIGALRM).  Every queue is
created with IPC_PRIVATE or a random key with IPC_CREX, its removal is registered on the next
line, and tearDownModule checks that none remains.

- TestSysvIpcSuite downloads sysv_ipc 1.2.0's sdist with pip (skipped when the index cannot be
  reached), runs its 137 unittest tests against sysvshm registered as sys.modules['sysv_ipc']
  in a subprocess inside a private IPC namespace (unshare --ipc), and compares each outcome
  with SUITE_EXPECTED (every failure listed with its reason).  Nothing of that suite is kept.
- TestLiveInterop runs when sysv_ipc itself is importable: one process uses sysv_ipc, the other
  sysvshm, sharing a segment, a semaphore and a queue, in both directions.

SYSVSHM_TIME_SCALE (default 1) multiplies every deadline, for runs under emulation.

# Not tested --
# - MSG_COPY (not offered: it needs CONFIG_CHECKPOINT_RESTORE and is a debugging interface).
# - Raising max_size above kernel.msgmnb as a non-root user (EPERM): the tests run as root.
"""

import ctypes
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
import traceback
import unittest

import sysvshm
from sysvshm import IPC_CREAT, IPC_CREX, IPC_PRIVATE, MSG_EXCEPT, MSG_NOERROR

SCALE = float(os.environ.get("SYSVSHM_TIME_SCALE", "1"))
DEADLINE = 20.0 * SCALE          # for waits that must end quickly when things work
HERE = os.path.dirname(os.path.abspath(__file__))
CPYTHON = sys.implementation.name == "cpython"
CREATED = {"shm": set(), "sem": set(), "msg": set()}   # ids this run created
LONG_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1


def random_key():
    return random.randint(0x10000, 0x7FFFFFFF)


def live_ids(kind):
    """The ids of every `kind` object in the namespace (from /proc/sysvipc)."""
    with open("/proc/sysvipc/" + kind) as table:
        next(table)
        return {int(line.split()[1]) for line in table if line.strip()}


def remove_quietly(remove, *args):
    try:
        remove(*args)
    except sysvshm.ExistentialError:
        pass


def detach_quietly(mem):
    try:
        mem.detach()
    except Exception:          # not attached (any more), in either module
        pass


def tearDownModule():
    for kind in ("shm", "sem", "msg"):
        left = CREATED[kind] & live_ids(kind)
        if left:
            raise AssertionError("IPC objects this run created are left behind: %s %s"
                                 % (kind, sorted(left)))


def read_line(fd, timeout=DEADLINE):
    """Read one line from a pipe, with a deadline (select), or raise."""
    import select
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError("no line from the pipe within %.1f s (got %r)" % (timeout, data))
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError("pipe closed (got %r)" % data)
        data += chunk
    return data.decode()


def wchan(pid):
    with open("/proc/%d/wchan" % pid) as f:
        return f.read().strip()


class Base(unittest.TestCase):
    """Creation helpers that register removal at once, and fork/reap with deadlines."""

    def setUp(self):
        self.bounded()

    def new_mq(self, key=None, flags=IPC_CREX, **kwargs):
        mq = sysvshm.MessageQueue(key, flags, **kwargs)
        self.addCleanup(remove_quietly, sysvshm.remove_message_queue, mq.id)
        CREATED["msg"].add(mq.id)
        return mq

    def new_shm(self, size=3333, key=None, flags=IPC_CREX, **kwargs):
        mem = sysvshm.SharedMemory(key, flags, size=size, **kwargs)
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, mem.id)
        CREATED["shm"].add(mem.id)
        return mem

    def new_sem(self, initial_value=0, key=None, flags=IPC_CREX, **kwargs):
        sem = sysvshm.Semaphore(key, flags, initial_value=initial_value, **kwargs)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, sem.id)
        CREATED["sem"].add(sem.id)
        return sem

    def fork(self, child):
        """Run child() in a forked process; its return value (or 1 on an exception) is the exit
        code.  The child dies by SIGALRM past the deadline.  Returns the pid; a cleanup kills
        the child if the test did not reap it."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(int(DEADLINE) + 1)
                code = child() or 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self.addCleanup(self._kill, pid)
        return pid

    def _kill(self, pid):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def reap(self, pid, timeout=DEADLINE):
        """waitpid with a deadline: returns the exit code; kills and fails past the deadline."""
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                self._kill(pid)
                self.fail("child %d did not finish within %.1f s" % (pid, timeout))
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        if os.WIFSIGNALED(status):
            return -os.WTERMSIG(status)
        return os.WEXITSTATUS(status)

    def assertChildOk(self, pid, timeout=DEADLINE):
        self.assertEqual(self.reap(pid, timeout), 0, "child failed (its traceback is above)")

    def bounded(self, timeout=DEADLINE):
        """Bound this process's blocking calls: SIGALRM raises AssertionError in them (the
        module retries EINTR but lets a handler's exception through).  Cancelled at cleanup."""
        def expired(signum, frame):
            raise AssertionError("a blocking call did not return within %.1f s" % timeout)
        previous = signal.signal(signal.SIGALRM, expired)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_REAL, timeout)

    def wait_sleeping_in(self, pid, function):
        """Wait (bounded) until process pid sleeps in a kernel function named like `function`
        ("msgrcv" matches do_msgrcv, the name Linux 6.18 shows)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            seen = wchan(pid)          # "0" while the process runs
            if function in seen:
                return
            self.assertLess(time.monotonic(), deadline, "process %d never slept in %s (%s)"
                            % (pid, function, seen))
            time.sleep(0.001)


# --- One process: the API --------------------------------------------------------------------
class TestMessageQueue(Base):
    def test_create_open_and_errors(self):
        key = random_key()
        mq = self.new_mq(key)
        self.assertEqual((mq.key, mq.max_message_size), (key, 2048))
        self.assertEqual(sysvshm.MessageQueue(key).id, mq.id)
        self.assertEqual(sysvshm.MessageQueue(key, IPC_CREAT).id, mq.id)
        with self.assertRaises(FileExistsError) as caught:
            sysvshm.MessageQueue(key, IPC_CREX)
        self.assertIsInstance(caught.exception, sysvshm.ExistentialError)
        self.assertEqual(caught.exception.errno, errno.EEXIST)
        self.assertIn("msgget(key=0x%08x" % key, str(caught.exception))
        mq.remove()
        with self.assertRaises(FileNotFoundError) as caught:
            sysvshm.MessageQueue(key)
        self.assertIsInstance(caught.exception, sysvshm.ExistentialError)
        with self.assertRaises(ValueError):
            sysvshm.MessageQueue(None)                 # a random key needs IPC_CREX
        with self.assertRaises(ValueError):
            sysvshm.MessageQueue(key, sysvshm.IPC_EXCL)   # as sysv_ipc: EXCL needs CREAT
        with self.assertRaises(ValueError):
            sysvshm.MessageQueue(2 ** 32, IPC_CREX)    # never truncated into key_t
        with self.assertRaises(ValueError):
            sysvshm.MessageQueue(None, IPC_CREX, max_message_size=-1)
        with self.assertRaises(ValueError):
            sysvshm.MessageQueue(None, IPC_CREX, mode=0o1000)
        private = self.new_mq(IPC_PRIVATE, IPC_CREAT, mode=0o640, max_message_size=77)
        self.assertEqual((private.key, private.mode, private.max_message_size), (0, 0o640, 77))
        self.assertIn("id=%d" % private.id, repr(private))
        another = self.new_mq(IPC_PRIVATE, 0)           # IPC_PRIVATE always creates
        self.assertNotEqual(another.id, private.id)
        self.assertEqual(another.mode, 0o600)

    def test_attributes(self):
        mq = self.new_mq()
        self.assertEqual((mq.current_messages, mq.current_bytes), (0, 0))
        self.assertEqual((mq.last_send_pid, mq.last_receive_pid), (0, 0))
        self.assertEqual((mq.last_send_time, mq.last_receive_time), (0, 0))
        self.assertLessEqual(abs(mq.last_change_time - time.time()), 5)
        self.assertEqual((mq.uid, mq.gid, mq.cuid, mq.cgid),
                         (os.geteuid(), os.getegid(), os.geteuid(), os.getegid()))
        with open("/proc/sys/kernel/msgmnb") as f:
            self.assertEqual(mq.max_size, int(f.read()))
        mq.send(b"12345")
        mq.send(b"678", type=2)
        self.assertEqual((mq.current_messages, mq.current_bytes), (2, 8))
        self.assertEqual(mq.last_send_pid, os.getpid())
        self.assertGreater(mq.last_send_time, 0)
        mq.receive()
        self.assertEqual((mq.current_messages, mq.last_receive_pid), (1, os.getpid()))
        mq.max_size = 1000
        self.assertEqual(mq.max_size, 1000)
        mq.mode = 0o604
        self.assertEqual(mq.mode, 0o604)
        with self.assertRaises(ValueError):
            mq.max_size = -1
        for name in ("key", "id", "current_messages", "last_send_pid", "max_message_size",
                     "cuid", "last_change_time"):
            with self.assertRaises(AttributeError):
                setattr(mq, name, 1)

    def test_send_accepts_bytes_like_and_str(self):
        mq = self.new_mq()

        class Point(ctypes.Structure):
            _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_double)]
        import array
        for message, expected in ((b"bytes", b"bytes"), (bytearray(b"ba"), b"ba"),
                                  (memoryview(b"0123456")[2:5], b"234"),
                                  ("G\u00f6teborg", "G\u00f6teborg".encode("utf-8")),
                                  (array.array("i", [1, 2]), array.array("i", [1, 2]).tobytes()),
                                  (Point(3, 1.5), bytes(Point(3, 1.5))), (b"", b""),
                                  (b"a\x00b", b"a\x00b")):
            mq.send(message)
            self.assertEqual(mq.receive(), (expected, 1))
        with self.assertRaises(TypeError):
            mq.send(memoryview(b"abcdef")[::2])     # not contiguous
        with self.assertRaises(TypeError):
            mq.send(12)
        self.assertEqual(mq.current_messages, 0)

    def test_type_range_is_checked_before_the_call(self):
        mq = self.new_mq()
        for bad in (0, -1, LONG_MAX + 1):
            with self.assertRaises(ValueError):
                mq.send(b"x", type=bad)
        for bad in (True, 1.0, "1", None):
            with self.assertRaises(TypeError):
                mq.send(b"x", type=bad)
        with self.assertRaises(ValueError):
            mq.receive(type=LONG_MAX + 1)
        with self.assertRaises(ValueError):
            mq.receive(type=-LONG_MAX - 2)
        self.assertEqual(mq.current_messages, 0)
        mq.send(b"big type", type=LONG_MAX)
        self.assertEqual(mq.receive(type=LONG_MAX), (b"big type", LONG_MAX))
        mq.send(b"any", type=7)
        self.assertEqual(mq.receive(type=-LONG_MAX - 1), (b"any", 7))   # LONG_MIN: <= LONG_MAX

    def test_type_selection(self):
        mq = self.new_mq()
        for t in (4, 3, 2, 1, 3, 2):
            mq.send("t%d" % t, type=t)
        self.assertEqual(mq.receive(type=-2), (b"t1", 1))     # lowest type <= 2 ...
        self.assertEqual(mq.receive(type=-2), (b"t2", 2))     # ... first of that type
        self.assertEqual(mq.receive(type=3), (b"t3", 3))      # first of type 3
        self.assertEqual(mq.receive(type=3, flags=MSG_EXCEPT), (b"t4", 4))  # first not 3
        self.assertEqual(mq.receive(type=2, flags=MSG_EXCEPT), (b"t3", 3))
        self.assertEqual(mq.receive(), (b"t2", 2))
        self.assertEqual(mq.current_messages, 0)
        mq.send(b"x", type=5)
        with self.assertRaises(sysvshm.BusyError):
            mq.receive(type=-4, block=False)
        with self.assertRaises(sysvshm.BusyError):
            mq.receive(type=5, flags=MSG_EXCEPT, block=False)
        with self.assertRaises(ValueError):
            mq.receive(type=0, flags=MSG_EXCEPT)     # the kernel would ignore MSG_EXCEPT
        with self.assertRaises(ValueError):
            mq.receive(type=-5, flags=MSG_EXCEPT)
        with self.assertRaises(ValueError):
            mq.receive(flags=0o1)
        self.assertEqual(mq.receive(type=-5), (b"x", 5))

    def test_empty_queue_without_blocking(self):
        mq = self.new_mq()
        for call in (lambda: mq.receive(block=False), lambda: mq.receive(False, 3),
                     lambda: mq.receive(flags=sysvshm.IPC_NOWAIT),
                     lambda: mq.receive_into(bytearray(10), block=False)):
            with self.assertRaises(BlockingIOError) as caught:
                call()
            self.assertIsInstance(caught.exception, sysvshm.BusyError)
            self.assertEqual(caught.exception.errno, errno.ENOMSG)
            self.assertIn("msgrcv(id=%d" % mq.id, str(caught.exception))

    def test_too_long_message_stays_queued(self):
        mq = self.new_mq(max_message_size=100)
        small = sysvshm.MessageQueue(mq.key, max_message_size=10)
        mq.send(b"0123456789ABCDEF", type=3)
        mq.send(b"second")
        for call in (small.receive, lambda: mq.receive_into(bytearray(15))):
            with self.assertRaises(sysvshm.MessageTooLongError) as caught:
                call()
            self.assertIsInstance(caught.exception, sysvshm.Error)
            self.assertEqual(caught.exception.errno, errno.E2BIG)
            self.assertIn("stays queued", str(caught.exception))
            self.assertIn("msgrcv(id=%d" % mq.id, str(caught.exception))
            self.assertEqual(mq.current_messages, 2)
        self.assertEqual(mq.receive(), (b"0123456789ABCDEF", 3))     # intact
        mq.send(b"0123456789ABCDEF", type=4)
        self.assertEqual(small.receive(type=4, flags=MSG_NOERROR), (b"0123456789", 4))
        self.assertEqual(small.receive(), (b"second", 1))
        self.assertEqual(mq.current_messages, 0)

    def test_send_limits_give_clear_errors(self):
        mq = self.new_mq(max_message_size=10)
        with self.assertRaises(ValueError) as caught:
            mq.send(b"x" * 11)
        self.assertIn("max_message_size", str(caught.exception))
        with open("/proc/sys/kernel/msgmax") as f:
            msgmax = int(f.read())
        big = self.new_mq(max_message_size=msgmax + 100)
        big.max_size = msgmax + 200
        with self.assertRaises(ValueError) as caught:
            big.send(b"x" * (msgmax + 1))
        self.assertIn("msgmax", str(caught.exception))
        big.send(b"x" * msgmax)
        self.assertEqual(big.receive()[0], b"x" * msgmax)
        big.max_size = 50
        with self.assertRaises(ValueError) as caught:
            big.send(b"x" * 51)                        # would block forever in msgsnd
        self.assertIn("msg_qbytes", str(caught.exception))
        big.send(b"x" * 50)
        self.assertEqual(big.current_messages, 1)

    def test_msgmax_lowered_later_gives_a_clear_error(self):
        unshare = shutil.which("unshare")
        if os.geteuid() != 0 or unshare is None:
            self.skipTest("needs root and unshare(1) for a private IPC namespace")
        code = textwrap.dedent("""
            import sysvshm
            mq = sysvshm.MessageQueue(sysvshm.IPC_PRIVATE)
            mq.send(b"x" * 100)                     # limits checked and cached
            with open("/proc/sys/kernel/msgmax", "w") as f:
                f.write("50")                       # this namespace's own limit
            try:
                mq.send(b"y" * 100)
            except ValueError as exc:
                print("ValueError", "msgmax" in str(exc), mq.current_messages)
        """)
        result = subprocess.run([unshare, "--ipc", sys.executable, "-c", code],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=DEADLINE,
                                env=dict(os.environ, PYTHONPATH=HERE))
        self.assertEqual((result.returncode, result.stdout), (0, "ValueError True 1\n"),
                         result.stderr)

    def test_full_queue_without_blocking(self):
        mq = self.new_mq()
        mq.max_size = 300
        for _ in range(3):
            mq.send(b"m" * 100, block=False)
        with self.assertRaises(BlockingIOError) as caught:
            mq.send(b"m" * 100, block=False)
        self.assertIsInstance(caught.exception, sysvshm.BusyError)
        self.assertEqual(caught.exception.errno, errno.EAGAIN)
        self.assertIn("msgsnd(id=%d" % mq.id, str(caught.exception))
        self.assertEqual(mq.current_messages, 3)

    def test_receive_into(self):
        mq = self.new_mq(max_message_size=64)

        class Record(ctypes.Structure):
            _fields_ = [("seq", ctypes.c_int32), ("value", ctypes.c_double),
                        ("name", ctypes.c_char * 12)]
        mq.send(bytes(Record(7, 2.5, b"seven")), type=9)
        record = Record()
        self.assertEqual(mq.receive_into(record), (ctypes.sizeof(Record), 9))
        self.assertEqual((record.seq, record.value, record.name), (7, 2.5, b"seven"))
        target = bytearray(b"." * 20)
        mq.send(b"hello", type=2)
        self.assertEqual(mq.receive_into(memoryview(target)[5:]), (5, 2))
        self.assertEqual(target, b".....hello..........")
        mem = self.new_shm(4096)
        mq.send(b"into shared memory")
        self.assertEqual(mq.receive_into(mem.buf[100:200]), (18, 1))
        self.assertEqual(mem.read(18, 100), b"into shared memory")
        sysvshm.MessageQueue(mq.key).send(b"y" * 1000, type=3)
        # a buffer beyond this handle's max_message_size is the limit instead
        large = bytearray(2000)
        self.assertEqual(mq.receive_into(large, type=3), (1000, 3))
        self.assertEqual(large[:1001], b"y" * 1000 + b"\0")
        with self.assertRaises(TypeError):
            mq.receive_into(b"read-only")
        mem.detach()                                   # no view into the segment was kept

    def test_remove(self):
        mq = self.new_mq()
        other = sysvshm.MessageQueue(mq.key)
        mq.send(b"lost with the queue")
        other.remove()
        for call in (lambda: mq.send(b"x"), mq.receive, lambda: mq.current_messages,
                     mq.remove, lambda: sysvshm.remove_message_queue(mq.id)):
            with self.assertRaises(sysvshm.ExistentialError):
                call()
        mq2 = self.new_mq()
        sysvshm.remove_message_queue(mq2.id)
        with self.assertRaises(sysvshm.ExistentialError):
            sysvshm.MessageQueue(mq2.key)
        with self.assertRaises(TypeError):
            sysvshm.remove_message_queue("1")

    def test_threads_never_share_a_buffer(self):
        # Four senders and four receivers, one per type, all at once: the GIL is released
        # inside msgsnd/msgrcv, so a buffer shared between two calls would mix their texts.
        mq = self.new_mq(max_message_size=1024)
        failures = []
        count = 400

        def text(kind, i):
            return (("%d:%d;" % (kind, i)) * 200).encode()[:200 + (i % 7) * 100]

        def sender(kind):
            try:
                for i in range(count):
                    mq.send(text(kind, i), type=kind)
            except BaseException as exc:
                failures.append(repr(exc))

        def receiver(kind):
            try:
                record = bytearray(1024)
                for i in range(count):
                    if i % 2:
                        got = mq.receive(type=kind)
                    else:
                        length, mtype = mq.receive_into(record, type=kind)
                        got = (bytes(record[:length]), mtype)
                    if got != (text(kind, i), kind):
                        failures.append((kind, i, got[0][:20]))
            except BaseException as exc:
                failures.append(repr(exc))
        threads = [threading.Thread(target=f, args=(k,)) for k in range(1, 5)
                   for f in (receiver, sender)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        self.assertFalse(any(thread.is_alive() for thread in threads))
        self.assertEqual(failures, [])
        self.assertEqual(mq.current_messages, 0)


# --- Across processes --------------------------------------------------------------------------
class TestMessageQueueAcrossProcesses(Base):
    def test_order_and_types_between_processes(self):
        mq = self.new_mq(random_key())
        types = [5, 3, 4, 1, 2, 3, 1, 5]

        def child():
            theirs = sysvshm.MessageQueue(mq.key)
            for i, t in enumerate(types):
                theirs.send(("%d/%d" % (i, t)).encode(), type=t)
            return 0
        pid = self.fork(child)
        self.assertChildOk(pid)
        self.assertEqual(mq.last_send_pid, pid)
        self.assertEqual(mq.receive(type=-2), (b"3/1", 1))      # lowest type <= 2, first one
        self.assertEqual(mq.receive(type=3), (b"1/3", 3))
        self.assertEqual(mq.receive(type=5, flags=MSG_EXCEPT), (b"2/4", 4))
        self.assertEqual(mq.receive(type=-3), (b"6/1", 1))
        rest = [mq.receive() for _ in range(4)]
        self.assertEqual(rest, [(b"0/5", 5), (b"4/2", 2), (b"5/3", 3), (b"7/5", 5)])
        self.assertEqual(mq.current_messages, 0)

    def test_blocking_receive_wakes_for_its_type_only(self):
        mq = self.new_mq(random_key())
        report_read, report_write = os.pipe()
        self.addCleanup(os.close, report_read)

        def child():
            theirs = sysvshm.MessageQueue(mq.key)
            got = theirs.receive(type=7)                # blocks: nothing of type 7 yet
            os.write(report_write, ("%r\n" % (got,)).encode())
            return 0
        pid = self.fork(child)
        os.close(report_write)
        self.wait_sleeping_in(pid, "msgrcv")
        mq.send(b"not for the child", type=5)
        mq.send(b"for the child", type=7)
        self.assertEqual(read_line(report_read).strip(), repr((b"for the child", 7)))
        self.assertChildOk(pid)
        self.assertEqual(mq.receive(block=False), (b"not for the child", 5))

    def test_full_queue_blocks_then_drains(self):
        mq = self.new_mq(random_key())
        mq.max_size = 400
        filled = 0
        while True:
            try:
                mq.send(struct.pack("<I", filled) + b"f" * 96, block=False)
            except sysvshm.BusyError:
                break
            filled += 1
        self.assertEqual(filled, 4)

        def child():
            sysvshm.MessageQueue(mq.key).send(b"c" * 100, type=9)   # blocks: queue full
            return 0
        pid = self.fork(child)
        self.wait_sleeping_in(pid, "msgsnd")
        self.assertEqual(mq.current_messages, 4)
        first = mq.receive()                            # makes room: the child's send completes
        self.assertChildOk(pid)
        drained = [first] + [mq.receive(block=False) for _ in range(4)]
        self.assertEqual([struct.unpack("<I", m[:4])[0] for m, _ in drained[:4]], [0, 1, 2, 3])
        self.assertEqual(drained[4], (b"c" * 100, 9))
        with self.assertRaises(sysvshm.BusyError):
            mq.receive(block=False)

    def test_permissions_of_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to drop to another user")
        mq = self.new_mq(random_key(), mode=0o604)     # others may receive, not send
        mq.send(b"readable by others")

        def child():
            os.setgid(65534)
            os.setuid(65534)
            theirs = sysvshm.MessageQueue(mq.key)        # opening asks for no permission bits
            if theirs.receive(block=False) != (b"readable by others", 1):
                return 3
            try:
                theirs.send(b"x")
            except PermissionError as exc:
                ok = isinstance(exc, sysvshm.PermissionsError) and "msgsnd" in str(exc)
                return 0 if ok else 4
            return 5
        self.assertChildOk(self.fork(child))
        self.assertEqual(mq.current_messages, 0)

    def test_removal_wakes_a_blocked_receiver(self):
        mq = self.new_mq(random_key())

        def child():
            try:
                sysvshm.MessageQueue(mq.key).receive()
            except sysvshm.ExistentialError as exc:
                return 0 if exc.errno == errno.EIDRM else 4
            return 3
        pid = self.fork(child)
        self.wait_sleeping_in(pid, "msgrcv")
        mq.remove()
        self.assertChildOk(pid)

    def test_ten_thousand_messages_none_lost_or_duplicated(self):
        mq = self.new_mq(random_key(), max_message_size=128)
        count = 10000

        def child():
            theirs = sysvshm.MessageQueue(mq.key)
            for seq in range(count):
                # 4..67 bytes, types 1..5; the 16 KiB queue fills, so both sides block often
                theirs.send(struct.pack("<I", seq) + bytes([seq & 0xFF]) * (seq % 64),
                            type=1 + seq % 5)
            return 0
        pid = self.fork(child)
        seen = []
        record = bytearray(128)
        for i in range(count):
            if i % 2:
                length, mtype = mq.receive_into(record)
                message = bytes(record[:length])
            else:
                message, mtype = mq.receive()
            seq = struct.unpack_from("<I", message)[0]
            self.assertEqual(message[4:], bytes([seq & 0xFF]) * (seq % 64))
            self.assertEqual(mtype, 1 + seq % 5)
            seen.append(seq)
        self.assertChildOk(pid)
        self.assertEqual(seen, list(range(count)))      # in order: none lost, none twice
        self.assertEqual(mq.current_messages, 0)

    def test_eintr_is_retried(self):
        def child():
            mq = sysvshm.MessageQueue(IPC_PRIVATE, IPC_CREAT)
            try:
                interrupts = []

                def handler(signum, frame):
                    interrupts.append(1)
                    if len(interrupts) == 3:
                        mq.send(b"from the handler", block=False)
                signal.signal(signal.SIGALRM, handler)
                signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
                got = mq.receive()                  # blocking: EINTR must be retried
                signal.setitimer(signal.ITIMER_REAL, 0)
                if got != (b"from the handler", 1) or len(interrupts) < 3:
                    return 5
                mq.max_size = 10                    # now a blocked send
                mq.send(b"0123456789")
                del interrupts[:]

                def drainer(signum, frame):
                    interrupts.append(1)
                    if len(interrupts) == 3:
                        mq.receive(block=False)
                signal.signal(signal.SIGALRM, drainer)
                signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
                mq.send(b"9876543210", type=2)
                signal.setitimer(signal.ITIMER_REAL, 0)
                return 0 if mq.receive(block=False) == (b"9876543210", 2) else 6
            finally:
                mq.remove()
        self.assertChildOk(self.fork(child))

    def test_keyboard_interrupt_ends_a_wait(self):
        def child():
            mq = sysvshm.MessageQueue(IPC_PRIVATE, IPC_CREAT)
            try:
                signal.signal(signal.SIGALRM, signal.default_int_handler)

                def full_send():
                    mq.max_size = 20
                    mq.send(b"y" * 10, block=False)
                    mq.send(b"x" * 11)                  # cannot fit: blocks
                for wait in (mq.receive, lambda: mq.receive_into(bytearray(9)), full_send):
                    signal.setitimer(signal.ITIMER_REAL, 0.05)
                    try:
                        wait()
                    except KeyboardInterrupt:
                        continue
                    return 6
                return 0 if mq.current_messages == 1 else 7
            finally:
                mq.remove()
        self.assertChildOk(self.fork(child))


# --- Interop with C ------------------------------------------------------------------------------
C_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/msg.h>

struct record { int32_t seq; int32_t flags; double value; char name[16]; };
struct message { long mtype; struct record r; };

int main(int argc, char **argv) {
    int qid, i, n;
    struct message m;
    if (argc != 4) return 2;
    alarm(TIMEOUT);
    qid = msgget((key_t)strtol(argv[2], NULL, 0), 0);
    n = atoi(argv[3]);
    if (qid < 0) { perror("msgget"); return 3; }
    if (strcmp(argv[1], "send") == 0) {
        for (i = 0; i < n; i++) {
            memset(&m, 0, sizeof m);
            m.mtype = 1 + i % 3;
            m.r.seq = i; m.r.flags = -i; m.r.value = i * 0.5;
            snprintf(m.r.name, sizeof m.r.name, "c-%d", i);
            if (msgsnd(qid, &m, sizeof m.r, 0) != 0) { perror("msgsnd"); return 4; }
        }
        printf("sent %d\n", n);
        return 0;
    }
    for (i = 0; i < n; i++) {
        char name[16];
        ssize_t got = msgrcv(qid, &m, sizeof m.r, 0, 0);
        if (got != (ssize_t)sizeof m.r) { perror("msgrcv"); return 5; }
        snprintf(name, sizeof name, "py-%d", i);
        if (m.mtype != 10 + i || m.r.seq != i || m.r.flags != 2 * i || m.r.value != i * 1.5
                || strcmp(m.r.name, name) != 0) {
            printf("mismatch at %d\n", i);
            return 6;
        }
    }
    printf("verified %d\n", n);
    return 0;
}
"""


class Record(ctypes.Structure):
    """The C program's struct record (natural alignment, as the C compiler lays it out)."""
    _fields_ = [("seq", ctypes.c_int32), ("flags", ctypes.c_int32), ("value", ctypes.c_double),
                ("name", ctypes.c_char * 16)]


@unittest.skipUnless(shutil.which("cc"), "no C compiler")
class TestMessageQueueInteropWithC(Base):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        source = os.path.join(cls.tmp, "mq.c")
        with open(source, "w") as f:
            f.write(C_PROGRAM)
        cls.program = os.path.join(cls.tmp, "mq")
        subprocess.run(["cc", "-O2", "-DTIMEOUT=%d" % int(DEADLINE), "-o", cls.program, source],
                       check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def run_c(self, *args):
        return subprocess.run([self.program] + [str(a) for a in args], stdout=subprocess.PIPE,
                              universal_newlines=True, timeout=DEADLINE)

    def test_c_sends_structs_python_receives(self):
        mq = self.new_mq(random_key())
        result = self.run_c("send", mq.key, 100)
        self.assertEqual((result.returncode, result.stdout), (0, "sent 100\n"))
        record = Record()
        for i in range(100):
            self.assertEqual(mq.receive_into(record), (ctypes.sizeof(Record), 1 + i % 3))
            self.assertEqual((record.seq, record.flags, record.value, record.name),
                             (i, -i, i * 0.5, ("c-%d" % i).encode()))
        self.assertEqual(mq.current_messages, 0)

    def test_python_sends_structs_c_receives(self):
        mq = self.new_mq(random_key())
        mq.max_size = 100 * ctypes.sizeof(Record)
        for i in range(100):
            mq.send(Record(i, 2 * i, i * 1.5, ("py-%d" % i).encode()), type=10 + i)
        result = self.run_c("recv", mq.key, 100)
        self.assertEqual((result.returncode, result.stdout), (0, "verified 100\n"))
        self.assertEqual(mq.current_messages, 0)


# --- Drop-in proof: sysv_ipc's own test suite ------------------------------------------------
SDIST = "sysv_ipc-1.2.0.tar.gz"
SDIST_SHA256 = "ef96ab33bb62e4d14142f0be0524dcc0c3c70c96442df2fc773c67b7c7514199"
SUITE_SIZE = 137
_PYPY_MESSAGE = ("the suite's PyPy branch cuts a 9-character 'sysv_ipc.' prefix off the class "
                 "name to predict the read-only attribute message; our classes are "
                 "'sysvshm.<name>' (8 characters), so it expects e.g. 'haredMemory'")
# test id (under tests.) -> (applies on this interpreter, reason).  Anything not listed must pass.
SUITE_EXPECTED = {
    "test_semaphores.TestSemaphorePropertiesAndAttributes.test_attribute_o_time": (
        True, "deliberate: a new semaphore is marked initialised by one semop (race-free "
              "creation, FACTS 6), so o_time is non-zero; sysv_ipc expects 0"),
    "test_memory.BufferProtocolTest.test_bytearray": (
        CPYTHON and sys.version_info < (3, 12), "bytearray(SharedMemory) needs the buffer "
        "protocol, which a pure-Python class exports only from Python 3.12 (PEP 688); "
        "use bytearray(mem.buf)"),
    "test_memory.BufferProtocolTest.test_memoryview": (
        CPYTHON and sys.version_info < (3, 12), "memoryview(SharedMemory) needs the buffer "
        "protocol, which a pure-Python class exports only from Python 3.12 (PEP 688); "
        "use mem.buf"),
}
for _name in ("test_memory.TestSharedMemoryPropertiesAndAttributes." + t for t in (
        "test_attribute_cgid test_attribute_cuid test_property_address test_property_attached "
        "test_property_creator_pid test_property_key test_property_last_attach_time "
        "test_property_last_change_time test_property_last_detach_time test_property_last_pid "
        "test_property_number_attached test_property_size").split()):
    SUITE_EXPECTED[_name] = (not CPYTHON, _PYPY_MESSAGE)
for _name in ("test_message_queues.TestMessageQueuePropertiesAndAttributes." + t for t in (
        "test_attribute_cgid test_attribute_cuid test_property_current_messages "
        "test_property_key test_property_last_change_time test_property_last_receive_pid "
        "test_property_last_receive_time test_property_last_send_pid "
        "test_property_last_send_time").split()):
    SUITE_EXPECTED[_name] = (not CPYTHON, _PYPY_MESSAGE)
for _name in ("test_semaphores.TestSemaphorePropertiesAndAttributes." + t for t in (
        "test_attribute_cgid test_attribute_cuid test_attribute_last_pid "
        "test_attribute_waiting_for_nonzero test_attribute_waiting_for_zero "
        "test_property_key").split()):
    SUITE_EXPECTED[_name] = (not CPYTHON, _PYPY_MESSAGE)
SUITE_SKIPPED = {
    "test_message_queues.TestMessageQueueSendReceive.test_message_type_receive_specific_order":
        "skipped by the suite itself on Linux (sysv_ipc issue #38): it expects receive(type=-2) "
        "to return the first message of type <= 2 (type 2, queued before type 1); Linux returns "
        "the lowest such type, as POSIX specifies (tested in TestMessageQueue.test_type_selection)",
}

SUITE_RUNNER = r"""
import json, os, sys, unittest
here, sdist = sys.argv[1], sys.argv[2]
sys.path.insert(0, here)
import sysvshm
sys.modules["sysv_ipc"] = sysvshm
os.chdir(sdist)
sys.path.insert(0, sdist)
outcomes = {}

class Result(unittest.TestResult):
    def addSuccess(self, test):
        outcomes[test.id()] = ["pass", ""]
    def addFailure(self, test, err):
        outcomes[test.id()] = ["fail", str(err[1]).splitlines()[0][:300]]
    def addError(self, test, err):
        outcomes[test.id()] = ["error", ("%s: %s" % (err[0].__name__, err[1]))[:300]]
    def addSkip(self, test, reason):
        outcomes[test.id()] = ["skip", reason]
    def addExpectedFailure(self, test, err):
        outcomes[test.id()] = ["fail", "expected failure"]
    def addUnexpectedSuccess(self, test):
        outcomes[test.id()] = ["pass", "unexpected success"]

unittest.defaultTestLoader.discover("tests", top_level_dir=".").run(Result())
print("OUTCOMES " + json.dumps(outcomes))
"""


class TestSysvIpcSuite(unittest.TestCase):
    """sysv_ipc 1.2.0's own tests against sysvshm (see SUITE_EXPECTED for what fails, and why)."""

    def namespace_command(self):
        unshare = shutil.which("unshare")
        if unshare is None:
            self.skipTest("no unshare(1): the suite runs only in a private IPC namespace")
        command = [unshare, "--ipc"] if os.geteuid() == 0 else \
            [unshare, "--user", "--map-root-user", "--ipc"]
        probe = subprocess.run(command + ["true"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        if probe.returncode != 0:
            self.skipTest("cannot enter a private IPC namespace: %s"
                          % probe.stderr.decode(errors="replace").strip())
        return command

    def download(self, folder):
        """pip download of the sdist (skip when pip or the index is unavailable)."""
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                   "sysv-ipc", "--disable-pip-version-check", "--timeout", "10", "--retries",
                   "1", "--dest", folder, "sysv-ipc==1.2.0"]
        try:
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    universal_newlines=True, timeout=45)
        except subprocess.TimeoutExpired:
            self.skipTest("pip download timed out (package index unreachable?)")
        path = os.path.join(folder, SDIST)
        # Old pips (3.6's pip 18) save the sdist and then fail preparing its metadata: the
        # file, checked by its hash below, is all this needs.
        if not os.path.exists(path):
            lines = result.stdout.strip().splitlines() or ["(no output)"]
            self.skipTest("pip could not download sysv-ipc 1.2.0: %s" % lines[-1])
        with open(path, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), SDIST_SHA256,
                             "the downloaded sdist is not sysv_ipc 1.2.0's")
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and "/tests/" in m.name and ".." not in m.name]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(folder, members, **safe)
        return os.path.join(folder, "sysv_ipc-1.2.0")

    def test_sysv_ipc_suite_passes_except_listed(self):
        namespace = self.namespace_command()
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        sdist = self.download(folder)
        runner = os.path.join(folder, "run_suite.py")
        with open(runner, "w") as f:
            f.write(SUITE_RUNNER)
        started = time.monotonic()
        result = subprocess.run(namespace + [sys.executable, runner, HERE, sdist],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=60 * SCALE)
        elapsed = time.monotonic() - started
        lines = [line for line in result.stdout.splitlines() if line.startswith("OUTCOMES ")]
        self.assertEqual(len(lines), 1, "the runner failed:\n%s%s"
                         % (result.stdout[-3000:], result.stderr[-3000:]))
        outcomes = {k[len("tests."):] if k.startswith("tests.") else k: v
                    for k, v in json.loads(lines[0][len("OUTCOMES "):]).items()}
        unexpected = []
        counts = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
        report = []
        for name in sorted(outcomes):
            outcome, detail = outcomes[name]
            counts[outcome] += 1
            applies, reason = SUITE_EXPECTED.get(name, (False, ""))
            if outcome == "skip":
                expected = name in SUITE_SKIPPED
                note = SUITE_SKIPPED.get(name, detail)
            elif outcome == "pass":
                expected, note = not applies, ("expected to fail: " + reason) if applies else ""
            else:
                expected, note = applies, reason if applies else detail
            if not expected:
                unexpected.append("%s %s: %s" % (outcome.upper(), name, note))
            if outcome != "pass" or not expected:
                report.append("  %-5s %s%s\n        %s" % (outcome, name,
                                                          "" if expected else " (UNEXPECTED)",
                                                          note))
        missing = [name for name in SUITE_SKIPPED if name not in outcomes]
        summary = ("sysv_ipc 1.2.0 suite on %s %s: %d tests, %d passed, %d failed, %d errors, "
                   "%d skipped (%.1f s)" % (sys.implementation.name, sys.version.split()[0],
                                            len(outcomes), counts["pass"], counts["fail"],
                                            counts["error"], counts["skip"], elapsed))
        sys.stderr.write("\n" + summary + "\n" + "\n".join(report) + "\n")
        self.assertEqual(unexpected, [], summary)
        self.assertEqual(missing, [])
        self.assertEqual(len(outcomes), SUITE_SIZE, summary)


# --- Drop-in proof: live interop with sysv_ipc -----------------------------------------------
try:
    import sysv_ipc
except ImportError:
    sysv_ipc = None


@unittest.skipIf(sysv_ipc is None, "sysv_ipc is not installed for this interpreter")
class TestLiveInterop(Base):
    """One process uses sysv_ipc, the other sysvshm: a segment, a semaphore and a queue shared
    by key, data checked both ways, wake-ups both ways (semaphore and queue)."""

    SIZE = 10000

    def run_pair(self, creator, opener):
        """`creator` (a module) makes the objects in this process; a child uses `opener`."""
        # Base.setUp bounds this process's waits by SIGALRM: sysv_ipc's wheels lack semtimedop
        mem = creator.SharedMemory(None, creator.IPC_CREX, size=self.SIZE)
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, mem.id)
        self.addCleanup(detach_quietly, mem)      # sysv_ipc never detaches by itself
        CREATED["shm"].add(mem.id)
        sem = creator.Semaphore(None, creator.IPC_CREX, initial_value=0)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, sem.id)
        CREATED["sem"].add(sem.id)
        mq = creator.MessageQueue(None, creator.IPC_CREX)
        self.addCleanup(remove_quietly, sysvshm.remove_message_queue, mq.id)
        CREATED["msg"].add(mq.id)
        data = bytes(random.getrandbits(8) for _ in range(self.SIZE - 100))
        mem.write(data, 100)

        def child():
            their_mem = opener.SharedMemory(mem.key)
            their_sem = opener.Semaphore(sem.key)
            their_mq = opener.MessageQueue(mq.key)
            their_sem.acquire()                               # wake-up 1: semaphore, A -> B
            if their_mem.read(self.SIZE - 100, 100) != data:
                return 3
            their_mem.write(b"reply from " + opener.__name__.encode(), 0)
            their_mq.send(data[:1000], type=2)                # wake-up 2: queue, B -> A
            text, mtype = their_mq.receive(type=3)            # wake-up 3: queue, A -> B
            if (text, mtype) != (b"go on", 3):
                return 4
            their_mem.detach()
            their_sem.release()                               # wake-up 4: semaphore, B -> A
            return 0
        pid = self.fork(child)
        deadline = time.monotonic() + DEADLINE
        while sem.waiting_for_nonzero != 1:                   # the kernel's count of waiters
            self.assertLess(time.monotonic(), deadline, "the child never waited")
            time.sleep(0.001)
        sem.release()
        self.assertEqual(mq.receive(type=2), (data[:1000], 2))   # blocks until the child sends
        self.assertEqual(mem.read(11 + len(opener.__name__), 0),
                         b"reply from " + opener.__name__.encode())
        self.wait_sleeping_in(pid, "msgrcv")
        mq.send(b"go on", type=3)
        sem.acquire()                                         # blocks until the child releases
        self.assertChildOk(pid)
        self.assertEqual((sem.value, mq.current_messages), (0, 0))
        mem.detach()
        for remove in (mem.remove, sem.remove, mq.remove):
            remove()

    def test_sysvshm_creates_sysv_ipc_opens(self):
        self.run_pair(sysvshm, sysv_ipc)

    def test_sysv_ipc_creates_sysvshm_opens(self):
        self.run_pair(sysv_ipc, sysvshm)


if __name__ == "__main__":
    unittest.main()
