# Tests for sysvshm.py.
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The sysvshm authors
"""Tests for sysvshm: python3 -m unittest -v

Cross-process behaviour runs in real processes: os.fork(), the child always leaves through
os._exit(), the parent reaps it with a deadline (and kills it past that).  Processes synchronise
through pipes or the semaphores under test, never through sleep.  Anything that could crash the
interpreter runs in a subprocess, so that a segfault fails one test instead of the run.

Every IPC object is created with IPC_PRIVATE or a random key with IPC_CREX, its removal is
registered on the next line, and tearDownModule checks that none of them remains.

SYSVSHM_TIME_SCALE (default 1) multiplies every deadline, for runs under emulation.

# Not tested --
# - SHM_HUGETLB with huge pages available: this machine has none configured (nr_hugepages is 0);
#   the failure path (a clear error naming shmget) is tested instead.
# - SHM_LOCK beyond RLIMIT_MEMLOCK for a non-root user (root may always lock).
"""

import ctypes
import errno
import gc
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import unittest
import unittest.mock

import sysvshm
from sysvshm import IPC_CREAT, IPC_CREX, IPC_PRIVATE

SCALE = float(os.environ.get("SYSVSHM_TIME_SCALE", "1"))
DEADLINE = 20.0 * SCALE          # for waits that must end quickly when things work
HERE = os.path.dirname(os.path.abspath(__file__))
CPYTHON = sys.implementation.name == "cpython"
CREATED = {"shm": set(), "sem": set(), "msg": set()}   # ids this run created

try:
    import numpy
except ImportError:
    numpy = None


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


def tearDownModule():
    for _ in range(3):      # PyPy: attachments of dropped objects go when the GC runs
        gc.collect()
    for kind in ("shm", "sem", "msg"):
        left = CREATED[kind] & live_ids(kind)
        if left:
            raise AssertionError("IPC objects this run created are left behind: %s %s"
                                 % (kind, sorted(left)))


class Base(unittest.TestCase):
    """Creation helpers that register removal at once, and fork/reap with deadlines."""

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

    def new_set(self, nsems, initial_values=None, key=None, flags=IPC_CREX, **kwargs):
        semset = sysvshm.SemaphoreSet(key, nsems, flags, initial_values=initial_values, **kwargs)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, semset.id)
        CREATED["sem"].add(semset.id)
        return semset

    def fork(self, child):
        """Run child() in a forked process; its return value (or 1 on an exception) is the exit
        code.  Returns the pid; a cleanup kills the child if the test did not reap it."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
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

    def run_python(self, code, timeout=DEADLINE):
        """Run code in a fresh interpreter (crash isolation); returns CompletedProcess."""
        env = dict(os.environ, PYTHONPATH=HERE)
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout)

    def assertPythonOk(self, code, timeout=DEADLINE):
        result = self.run_python(code, timeout)
        self.assertEqual(result.returncode, 0, "subprocess failed (%d):\n%s%s"
                         % (result.returncode, result.stdout, result.stderr))
        return result.stdout


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


# --- Module, constants, errors, arguments ------------------------------------------------------
class TestModule(Base):
    def test_constants(self):
        self.assertEqual(sysvshm.IPC_CREX, sysvshm.IPC_CREAT | sysvshm.IPC_EXCL)
        self.assertEqual(sysvshm.PAGE_SIZE, os.sysconf("SC_PAGE_SIZE"))
        self.assertEqual(sysvshm.SEMAPHORE_VALUE_MAX, 32767)
        self.assertIs(sysvshm.SEMAPHORE_TIMEOUT_SUPPORTED, True)
        self.assertEqual((sysvshm.KEY_MIN, sysvshm.KEY_MAX), (-2 ** 31, 2 ** 32 - 1))
        self.assertEqual(sysvshm.VERSION, sysvshm.__version__)
        for name in sysvshm.__all__:
            self.assertTrue(hasattr(sysvshm, name), name)

    def test_error_classes_are_oserrors_and_sysv_ipc_classes(self):
        pairs = [(sysvshm.ExistsError, FileExistsError, sysvshm.ExistentialError),
                 (sysvshm.NotFoundError, FileNotFoundError, sysvshm.ExistentialError),
                 (sysvshm.AccessError, PermissionError, sysvshm.PermissionsError),
                 (sysvshm.WouldBlockError, BlockingIOError, sysvshm.BusyError),
                 (sysvshm.TimedOutError, TimeoutError, sysvshm.BusyError)]
        for cls, std, ours in pairs:
            self.assertTrue(issubclass(cls, std) and issubclass(cls, ours), cls)
            self.assertTrue(issubclass(cls, sysvshm.Error) and issubclass(cls, OSError))
        for cls in (sysvshm.InternalError, sysvshm.PermissionsError, sysvshm.ExistentialError,
                    sysvshm.BusyError, sysvshm.NotAttachedError):
            self.assertTrue(issubclass(cls, sysvshm.Error))

    def test_exists_error_names_the_call_and_key(self):
        key = random_key()
        mem = self.new_shm(4096, key=key)
        with self.assertRaises(FileExistsError) as caught:
            sysvshm.SharedMemory(key, IPC_CREX, size=4096)
        exc = caught.exception
        self.assertIsInstance(exc, sysvshm.ExistentialError)
        self.assertEqual(exc.errno, errno.EEXIST)
        self.assertEqual(str(exc), "shmget(key=0x%08x, size=4096, flags=0o3000): [Errno 17] %s"
                         % (key, os.strerror(errno.EEXIST)))
        self.assertTrue(mem.attached)

    def test_not_found(self):
        key = random_key()
        while key in self._keys_in_use():
            key = random_key()
        with self.assertRaises(FileNotFoundError) as caught:
            sysvshm.SharedMemory(key)
        self.assertIsInstance(caught.exception, sysvshm.ExistentialError)
        self.assertIn("0x%08x" % key, str(caught.exception))
        with self.assertRaises(sysvshm.NotFoundError):
            sysvshm.Semaphore(key)
        with self.assertRaises(sysvshm.NotFoundError):
            sysvshm.SemaphoreSet(key)

    def _keys_in_use(self):
        keys = set()
        for kind in ("shm", "sem", "msg"):
            with open("/proc/sysvipc/" + kind) as table:
                next(table)
                keys.update(int(line.split()[0]) & 0xFFFFFFFF for line in table if line.strip())
        return keys

    def test_keys_are_never_truncated(self):
        for key in (2 ** 32, -2 ** 31 - 1, 0x12345678901):
            with self.assertRaises(ValueError):
                sysvshm.SharedMemory(key, IPC_CREX)
            with self.assertRaises(ValueError):
                sysvshm.Semaphore(key, IPC_CREX)
        for bad in ("0x1234", 1.5, True, b"1"):
            with self.assertRaises(TypeError):
                sysvshm.SharedMemory(bad)

    def test_unsigned_key_as_ipcs_prints_it(self):
        key = random.randint(0x80000000, 0xFFFFFFFF)
        mem = self.new_shm(4096, key=key)
        self.assertEqual(mem.key, key)
        again = sysvshm.SharedMemory(key)      # the same object, reached by the same spelling
        self.assertEqual(again.id, mem.id)
        again.detach()
        signed = key - 2 ** 32                 # ... and by key_t's signed spelling
        self.assertEqual(sysvshm.SharedMemory(signed).id, mem.id)
        self.assertEqual(sysvshm.attach(mem.id).key, signed)
        with open("/proc/sysvipc/shm") as table:
            self.assertIn((signed, mem.id), [tuple(int(f) for f in line.split()[:2])
                                             for line in list(table)[1:]])

    def test_bad_arguments_fail_before_any_system_call(self):
        def forbidden(*args):
            raise AssertionError("a system call was made")
        for name in ("_shmget", "_semget", "_semctl", "_semop_fast", "_semtimedop_fast"):
            patcher = unittest.mock.patch.object(sysvshm, name, forbidden)
            patcher.start()
            self.addCleanup(patcher.stop)
        cases = [
            (TypeError, lambda: sysvshm.SharedMemory("key")),
            (ValueError, lambda: sysvshm.SharedMemory(1, size=-1)),
            (ValueError, lambda: sysvshm.SharedMemory(1, flags=0o777777)),
            (ValueError, lambda: sysvshm.SharedMemory(1, mode=0o1777)),
            (ValueError, lambda: sysvshm.SharedMemory(None, IPC_CREAT)),
            (ValueError, lambda: sysvshm.SharedMemory(1, init_character=b"ab")),
            (ValueError, lambda: sysvshm.Semaphore(1, initial_value=-1)),
            (ValueError, lambda: sysvshm.Semaphore(1, initial_value=32768)),
            (TypeError, lambda: sysvshm.Semaphore(1, initial_value=1.0)),
            (ValueError, lambda: sysvshm.SemaphoreSet(1, 2, initial_values=[1])),
            (ValueError, lambda: sysvshm.SemaphoreSet(1, 0, IPC_CREX)),
            (ValueError, lambda: sysvshm.SemaphoreSet(1, -1)),
        ]
        for exc, call in cases:
            with self.assertRaises(exc):
                call()

    def test_ftok(self):
        with self.assertWarns(UserWarning):
            key = sysvshm.ftok(HERE, 42)
        st = os.stat(HERE)
        expected = (st.st_ino & 0xFFFF) | ((st.st_dev & 0xFF) << 16) | (42 << 24)
        self.assertEqual(key & 0xFFFFFFFF, expected)
        with unittest.mock.patch("warnings.warn") as warn:
            sysvshm.ftok(HERE, 42, silence_warning=True)
        warn.assert_not_called()
        with self.assertRaises(FileNotFoundError):
            sysvshm.ftok(os.path.join(HERE, "does-not-exist"), 1, silence_warning=True)

    def test_layout_self_check(self):
        sysvshm._selfcheck()
        self.assertTrue(sysvshm._selfchecked)
        # A wrong layout must be refused, not read as plausible garbage.
        self.assertPythonOk("""
            import sysvshm
            size, fields = sysvshm._LAYOUT["shm"]
            fields["nattch"] = (fields["nattch"][0] + 8, fields["nattch"][1])
            try:
                sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, size=4096)   # checks before creating
            except sysvshm.InternalError as exc:
                assert "self-check failed" in str(exc), exc
            else:
                raise SystemExit("a wrong layout was accepted")
        """)


# --- Shared memory, one process ----------------------------------------------------------------
class TestSharedMemory(Base):
    def test_create_open_and_attributes(self):
        mem = self.new_shm(3333)
        self.assertEqual(mem.size, 3333)
        self.assertTrue(mem.attached)
        self.assertEqual(mem.creator_pid, os.getpid())
        self.assertEqual(mem.last_pid, os.getpid())
        self.assertEqual(mem.number_attached, 1)
        self.assertEqual((mem.uid, mem.gid, mem.cuid, mem.cgid),
                         (os.geteuid(), os.getegid(), os.geteuid(), os.getegid()))
        self.assertEqual(mem.mode, 0o600)
        self.assertFalse(mem.removed)
        self.assertFalse(mem.locked)
        self.assertGreater(mem.last_attach_time, 0)
        self.assertEqual(mem.buf.tobytes(), b" " * 3333)     # sysv_ipc's init_character
        other = sysvshm.SharedMemory(mem.key)
        self.assertEqual((other.id, other.size), (mem.id, 3333))
        self.assertEqual(mem.number_attached, 2)
        other.detach()
        self.assertEqual(mem.number_attached, 1)
        mem.mode = 0o640
        self.assertEqual(mem.mode, 0o640)
        with self.assertRaises(ValueError):
            mem.mode = 0o1000
        with self.assertRaises(AttributeError):
            mem.size = 1
        self.assertIn("size=3333", repr(mem))

    def test_open_with_creat_and_size_zero(self):
        mem = self.new_shm(5000, key=random_key())
        same = sysvshm.SharedMemory(mem.key, IPC_CREAT)
        self.assertEqual((same.id, same.size), (mem.id, 5000))
        same.detach()
        with self.assertRaises(sysvshm.Error) as caught:      # larger than the segment: EINVAL
            sysvshm.SharedMemory(mem.key, size=5001)
        self.assertEqual(caught.exception.errno, errno.EINVAL)

    def test_private_and_default_size(self):
        mem = self.new_shm(key=IPC_PRIVATE, flags=IPC_CREAT, size=100)
        self.assertEqual(mem.key, IPC_PRIVATE)
        self.assertEqual(mem.size, 100)
        fresh = self.new_shm(key=IPC_PRIVATE, flags=0, size=100, mode=0o640)  # always creates
        self.assertNotEqual(fresh.id, mem.id)
        self.assertEqual(fresh.mode, 0o640)
        default = self.new_shm(size=0)        # IPC_CREX and size 0: PAGE_SIZE, as sysv_ipc
        self.assertEqual(default.size, sysvshm.PAGE_SIZE)

    def test_init_character_and_no_implicit_fill(self):
        self.assertEqual(self.new_shm(1000, init_character=b"@").read(), b"@" * 1000)
        self.assertEqual(self.new_shm(1000, init_character=None).read(), bytes(1000))
        mem = self.new_shm(1000, init_character=None)
        mem.write(b"keep")
        opened = sysvshm.SharedMemory(mem.key, IPC_CREAT, init_character=b"x")
        self.assertEqual(opened.read(4), b"keep")           # opening never fills
        opened.detach()

    def test_read_write(self):
        mem = self.new_shm(3333)
        mem.write(b"abcdefg")
        self.assertEqual(mem.read(7), b"abcdefg")
        self.assertEqual(mem.read(5, 2), b"cdefg")
        self.assertEqual(mem.read(byte_count=2, offset=1), b"bc")
        self.assertEqual(len(mem.read()), 3333)
        self.assertEqual(mem.read(10000, 3330), b"   ")       # clipped at the end
        mem.write("Göteborg", offset=100)                   # str is encoded UTF-8
        self.assertEqual(mem.read(9, 100), "Göteborg".encode())
        mem.write(memoryview(b"xy"), 3331)
        self.assertEqual(mem.read(0, 3331), b"xy")
        import array
        mem.write(array.array("i", [1, 2]), 200)            # any buffer, counted in bytes
        self.assertEqual(mem.read(8, 200), struct.pack("=ii", 1, 2))
        for offset in (3333, 3334, -1):
            with self.assertRaises(ValueError):
                mem.read(1, offset)
        with self.assertRaises(ValueError):
            mem.read(-1)
        with self.assertRaises(ValueError):
            mem.write(b"x" * 3334)
        with self.assertRaises(ValueError):
            mem.write(b"x" * 10, 3330)
        with self.assertRaises(ValueError):
            mem.write(b"x", -1)
        self.assertEqual(mem.read(3, 3330), b" xy")        # nothing was written by the failures

    def test_buf_is_zero_copy(self):
        mem = self.new_shm(3333)
        buf = mem.buf
        self.assertEqual((buf.format, buf.itemsize, buf.ndim, len(buf), buf.readonly),
                         ("B", 1, 1, 3333, False))
        buf[10:13] = b"abc"
        self.assertEqual(mem.read(3, 10), b"abc")
        mem.write(b"Z", 11)
        self.assertEqual(buf[11], ord("Z"))
        self.assertIs(mem.buf, buf)
        del buf

    @unittest.skipUnless(sys.version_info >= (3, 12), "PEP 688 buffer protocol needs 3.12")
    def test_memoryview_of_shared_memory(self):
        mem = self.new_shm(3333)
        view = memoryview(mem)
        self.assertEqual((view.format, len(view), view.readonly), ("B", 3333, False))
        view[0] = ord("q")
        self.assertEqual(mem.read(1), b"q")
        self.assertEqual(len(bytearray(mem)), 3333)
        with self.assertRaises(BufferError):
            mem.detach()
        view.release()
        mem.detach()

    def test_read_into(self):
        mem = self.new_shm(3333)
        mem.write(bytes(range(256)) * 13)
        dest = bytearray(100)
        self.assertEqual(mem.read_into(dest, 50), 100)
        self.assertEqual(bytes(dest), (bytes(range(256)) * 13)[50:150])
        big = bytearray(5000)
        self.assertEqual(mem.read_into(big), 3333)
        self.assertEqual(bytes(big[:3333]), mem.read())
        self.assertEqual(mem.read_into(bytearray(10), 3333), 0)
        import array
        doubles = array.array("d", [0.0] * 4)
        self.assertEqual(mem.read_into(doubles), 32)
        with self.assertRaises(TypeError):
            mem.read_into(b"readonly")
        with self.assertRaises(ValueError):
            mem.read_into(bytearray(1), 3334)
        with self.assertRaises(ValueError):
            mem.read_into(bytearray(1), -1)
        mem.detach()          # read_into holds no export once it returns

    def test_as_ctypes(self):
        mem = self.new_shm(3333)

        class Header(ctypes.Structure):
            _fields_ = [("status", ctypes.c_uint32), ("count", ctypes.c_uint32),
                        ("length", ctypes.c_uint64)]
        header = mem.as_ctypes(Header, 8)
        header.status, header.count, header.length = 0xDEADBEEF, 7, 2 ** 40
        self.assertEqual(mem.read(16, 8), struct.pack("=IIQ", 0xDEADBEEF, 7, 2 ** 40))
        words = mem.as_ctypes(ctypes.c_uint32 * 4, 100)
        mem.write(struct.pack("=I", 12345), 104)
        self.assertEqual(words[1], 12345)
        everything = mem.as_ctypes()
        self.assertEqual(len(everything), 3333)
        tail = mem.as_ctypes(None, 3000)
        self.assertEqual(len(tail), 333)
        with self.assertRaises(ValueError):
            mem.as_ctypes(ctypes.c_uint64, 3326)
        with self.assertRaises(ValueError):
            mem.as_ctypes(ctypes.c_uint8, -1)
        with self.assertRaises(TypeError):
            mem.as_ctypes(int)
        del header, words, everything, tail

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_numpy(self):
        mem = self.new_shm(8 * 1000)
        array = numpy.frombuffer(mem.buf, dtype=numpy.float64)
        array[:] = numpy.arange(1000)
        self.assertEqual(struct.unpack_from("=d", mem.buf, 8 * 999)[0], 999.0)
        if CPYTHON:
            with self.assertRaises(BufferError):
                mem.detach()
        del array
        mem.detach()

    def test_context_manager_detaches_and_never_removes(self):
        mem = self.new_shm(4096)
        with sysvshm.SharedMemory(mem.key) as other:
            self.assertEqual(mem.number_attached, 2)
        self.assertFalse(other.attached)
        self.assertEqual(mem.number_attached, 1)
        self.assertFalse(mem.removed)
        with mem:
            pass
        self.assertFalse(mem.attached)
        self.assertEqual(sysvshm.SharedMemory(mem.key).id, mem.id)   # still there

    def test_detach_and_reattach(self):
        mem = self.new_shm(3333)
        mem.write(b"data")
        address = mem.address
        mem.detach()
        self.assertFalse(mem.attached)
        self.assertIsNone(mem.address)
        self.assertEqual(mem.number_attached, 0)
        self.assertGreater(mem.last_detach_time, 0)
        for call in (lambda: mem.read(1), lambda: mem.write(b"x"), lambda: mem.buf,
                     lambda: mem.as_ctypes(), lambda: mem.read_into(bytearray(1)), mem.detach):
            with self.assertRaises(sysvshm.NotAttachedError):
                call()
        mem.attach()
        self.assertEqual(mem.read(4), b"data")
        mem.attach()                        # attaching again replaces the attachment
        self.assertEqual(mem.number_attached, 1)
        self.assertIsInstance(address, int)

    def test_read_only_attach(self):
        mem = self.new_shm(3333)
        mem.write(b"hello")
        mem.attach(None, sysvshm.SHM_RDONLY)
        self.assertTrue(mem.readonly)
        self.assertTrue(mem.buf.readonly)
        self.assertEqual(mem.read(5), b"hello")
        with self.assertRaises(PermissionError) as caught:
            mem.write(b"x")
        self.assertIsInstance(caught.exception, sysvshm.PermissionsError)
        with self.assertRaises(TypeError):
            mem.buf[0] = 1
        with self.assertRaises(TypeError):
            mem.as_ctypes()
        self.assertEqual(mem.read(5), b"hello")
        mem.detach()
        mem.attach()
        self.assertFalse(mem.buf.readonly)

    def test_module_attach_by_id(self):
        mem = self.new_shm(3333, key=random_key())
        mem.write(b"by id")
        other = sysvshm.attach(mem.id)
        self.assertEqual(other.key, mem.key)           # sysv_ipc gives garbage here
        self.assertEqual(other.size, 3333)
        self.assertEqual(other.read(5), b"by id")
        other.detach()
        ro = sysvshm.attach(mem.id, flags=sysvshm.SHM_RDONLY)
        self.assertTrue(ro.buf.readonly)
        ro.detach()
        with self.assertRaises(sysvshm.ExistentialError):
            sysvshm.attach(2 ** 31 - 1)

    def test_explicit_address(self):
        import mmap

        def free_address():
            probe = mmap.mmap(-1, 3 * sysvshm.PAGE_SIZE)
            address = sysvshm._address_of(probe)
            probe.close()                    # a range that is free now: attach exactly there
            return address
        mem = self.new_shm(3 * sysvshm.PAGE_SIZE)
        mem.write(b"where")
        mem.detach()
        address = free_address()
        mem.attach(address)
        self.assertEqual(mem.address, address)
        self.assertEqual(mem.read(5), b"where")
        view = mem.buf[1:3]
        if CPYTHON:
            with self.assertRaises(BufferError):
                mem.detach()
        del view
        mem.detach()
        self.assertEqual(mem.number_attached, 0)
        if hasattr(memoryview, "toreadonly"):
            # (on PyPy the old range still holds the private memory of the detach)
            mem.attach(address if CPYTHON else free_address(), sysvshm.SHM_RDONLY)
            self.assertTrue(mem.buf.readonly)
            with self.assertRaises(PermissionError):
                mem.write(b"x")
            mem.detach()
        with self.assertRaises(ValueError):
            mem.attach(None, sysvshm.SHM_REMAP)

    def test_remove_marks_for_destruction(self):
        mem = sysvshm.SharedMemory(None, IPC_CREX, size=4096)
        CREATED["shm"].add(mem.id)
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, mem.id)
        mem.remove()
        self.assertTrue(mem.removed)        # attached: marked (ipcs shows "dest")
        mem.write(b"still usable")
        self.assertEqual(mem.read(12), b"still usable")
        mem.detach()
        self.assertNotIn(mem.id, live_ids("shm"))
        with self.assertRaises(sysvshm.ExistentialError):
            sysvshm.attach(mem.id)

    def test_prefault(self):
        mem = self.new_shm(64 * 4096 + 5)
        mem.write(b"abc", 4096 * 10)
        mem.prefault()
        self.assertEqual(mem.read(3, 4096 * 10), b"abc")
        self.assertEqual(mem.read(5, 64 * 4096), b"     ")
        mem.attach(None, sysvshm.SHM_RDONLY)
        mem.prefault()
        self.assertEqual(mem.read(3, 4096 * 10), b"abc")

    def test_lock_unlock(self):
        mem = self.new_shm(4096)
        try:
            mem.lock()
        except sysvshm.PermissionsError:
            self.assertNotEqual(os.geteuid(), 0)
            return
        self.assertTrue(mem.locked)
        mem.unlock()
        self.assertFalse(mem.locked)

    def test_hugetlb_is_passed_through(self):
        try:
            mem = self.new_shm(2 * 1024 * 1024, flags=IPC_CREX | sysvshm.SHM_HUGETLB,
                               init_character=None)
        except sysvshm.Error as exc:     # no huge pages configured here: a clear error
            self.assertIn(exc.errno, (errno.ENOMEM, errno.EINVAL, errno.EPERM))
            self.assertTrue(str(exc).startswith("shmget(key=0x"), str(exc))
        else:
            mem.write(b"huge")
            self.assertEqual(mem.read(4), b"huge")

    def test_read_permission_only_falls_back_to_read_only(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to drop to another user")
        mem = self.new_shm(4096, mode=0o644)
        mem.write(b"public")

        def child():
            os.setgid(65534)
            os.setuid(65534)
            other = sysvshm.SharedMemory(mem.key)
            assert other.buf.readonly and other.read(6) == b"public"
            try:
                other.write(b"x")
            except PermissionError:
                return 0
            return 3
        self.assertChildOk(self.fork(child))


# --- Views and detach: memory safety ------------------------------------------------------------
class TestDetachWithLiveViews(Base):
    """detach() while a view is alive raises BufferError and keeps everything valid (CPython);
    on PyPy it succeeds and stale views reach private memory, never the segment."""

    def setUp(self):
        self.mem = self.new_shm(3333)
        self.mem.write(b"payload")

    def check_busy_then_free(self, make_view, check_view):
        view = make_view()
        if not CPYTHON:
            self.mem.detach()
            self.assertEqual(self.mem_count(), 0)
            return
        with self.assertRaises(BufferError):
            self.mem.detach()
        self.assertTrue(self.mem.attached)
        self.assertEqual(self.mem_count(), 1)
        check_view(view)                            # still valid
        self.assertEqual(self.mem.read(7), b"payload")
        del view
        gc.collect()
        self.mem.detach()
        self.assertEqual(self.mem_count(), 0)

    def mem_count(self):
        return sysvshm._stat("shm", self.mem.id)["nattch"]

    def test_buf_alive(self):
        self.check_busy_then_free(lambda: self.mem.buf,
                                  lambda view: self.assertEqual(view[:7].tobytes(), b"payload"))

    def test_slice_alive(self):
        self.check_busy_then_free(lambda: self.mem.buf[2:5],
                                  lambda view: self.assertEqual(view.tobytes(), b"ylo"))

    def test_slice_of_a_slice_alive(self):
        self.check_busy_then_free(lambda: self.mem.buf[1:][1:4],
                                  lambda view: self.assertEqual(view.tobytes(), b"ylo"))

    def test_memoryview_of_buf_alive(self):
        self.check_busy_then_free(lambda: memoryview(self.mem.buf).cast("c"),
                                  lambda view: self.assertEqual(view[0], b"p"))

    def test_as_ctypes_alive(self):
        self.check_busy_then_free(lambda: self.mem.as_ctypes(ctypes.c_char * 7),
                                  lambda view: self.assertEqual(view.raw, b"payload"))

    def test_from_buffer_of_buf_alive(self):
        self.check_busy_then_free(lambda: (ctypes.c_char * 3).from_buffer(self.mem.buf, 1),
                                  lambda view: self.assertEqual(view.raw, b"ayl"))

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_numpy_alive(self):
        self.check_busy_then_free(lambda: numpy.frombuffer(self.mem.buf, numpy.uint8)[:7],
                                  lambda view: self.assertEqual(view.tobytes(), b"payload"))

    def test_garbage_collected_object_detaches(self):
        mem = sysvshm.SharedMemory(self.mem.key)
        self.assertEqual(self.mem_count(), 2)
        del mem
        gc.collect()
        gc.collect()
        self.assertEqual(self.mem_count(), 1)

    def test_views_outliving_the_object_keep_the_mapping(self):
        mem = sysvshm.SharedMemory(self.mem.key)
        view = mem.buf[0:7]
        del mem
        gc.collect()
        self.assertEqual(self.mem_count(), 2)
        self.assertEqual(view.tobytes(), b"payload")
        self.mem.write(b"changed")
        self.assertEqual(view.tobytes(), b"changed")
        del view
        gc.collect()
        gc.collect()
        self.assertEqual(self.mem_count(), 1)


class TestCrashIsolation(Base):
    """Every path that could touch unmapped or read-only memory, in a fresh interpreter:
    a segfault there fails this test (returncode -11) instead of killing the run."""

    def test_use_after_detach(self):
        out = self.assertPythonOk("""
            import gc, sys, sysvshm
            mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, size=8192)
            try:
                mem.write(b"secret")
                view = mem.buf[0:6]
                ctobj = mem.as_ctypes()
                if sys.implementation.name == "cpython":
                    for attempt in range(3):
                        try:
                            mem.detach()
                        except BufferError:
                            pass
                        else:
                            raise SystemExit("detach succeeded with live views")
                    assert view.tobytes() == b"secret" and ctobj[0] == ord("s")
                    del view, ctobj
                    mem.detach()
                else:
                    mem.detach()           # PyPy: private memory replaces the segment
                    assert view.tobytes() == bytes(6), view.tobytes()
                    view[0:6] = b"XXXXXX"
                    ctobj[0] = 1
                for call in (lambda: mem.read(1), lambda: mem.write(b"x"), lambda: mem.buf,
                             lambda: mem.as_ctypes(), lambda: mem.read_into(bytearray(2))):
                    try:
                        call()
                    except sysvshm.NotAttachedError:
                        pass
                    else:
                        raise SystemExit("no NotAttachedError")
                mem.attach()
                assert mem.read(6) == b"secret", mem.read(6)
                mem.detach()
            finally:
                mem.remove()
            print("ok")
        """)
        self.assertEqual(out.strip(), "ok")

    def test_writes_through_a_read_only_attach(self):
        out = self.assertPythonOk("""
            import sysvshm
            mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, size=4096)
            try:
                mem.attach(None, sysvshm.SHM_RDONLY)
                attempts = [lambda: mem.buf.__setitem__(0, 1),
                            lambda: mem.buf[0:2].__setitem__(slice(0, 2), b"xx"),
                            lambda: memoryview(mem.buf).__setitem__(0, 1),
                            lambda: mem.write(b"x"), lambda: mem.as_ctypes(),
                            lambda: mem.read_into(mem.buf)]
                try:
                    import numpy
                    array = numpy.frombuffer(mem.buf, numpy.uint8)
                    attempts.append(lambda: array.__setitem__(0, 1))
                except ImportError:
                    pass
                for attempt in attempts:
                    try:
                        attempt()
                    except (TypeError, ValueError, PermissionError):
                        pass
                    else:
                        raise SystemExit("a write was accepted")
                assert mem.read(4) == bytes(4)
            finally:
                mem.remove()
            print("ok")
        """)
        self.assertEqual(out.strip(), "ok")

    def test_out_of_range_access(self):
        out = self.assertPythonOk("""
            import ctypes, sysvshm
            mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, size=4097)
            try:
                attempts = [lambda: mem.read(1, 4097), lambda: mem.read(1, -1),
                            lambda: mem.read(1, 2 ** 63), lambda: mem.write(b"xx", 4096),
                            lambda: mem.write(b"x", 2 ** 64), lambda: mem.write(b"x", -4097),
                            lambda: mem.as_ctypes(ctypes.c_uint16, 4096),
                            lambda: mem.as_ctypes(ctypes.c_char * 5000),
                            lambda: mem.as_ctypes(None, 4098), lambda: mem.as_ctypes(None, -1),
                            lambda: mem.read_into(bytearray(1), 4098),
                            lambda: mem.read_into(bytearray(1), -5)]
                for attempt in attempts:
                    try:
                        attempt()
                    except (ValueError, OverflowError, IndexError):
                        pass
                    else:
                        raise SystemExit("out-of-range access accepted")
                assert len(mem.buf) == 4097
                try:
                    mem.buf[4097]
                except IndexError:
                    pass
                else:
                    raise SystemExit("buf[size] accepted")
            finally:
                mem.remove()
            print("ok")
        """)
        self.assertEqual(out.strip(), "ok")


# --- Semaphores, one process -------------------------------------------------------------------
class TestSemaphore(Base):
    def test_values_and_operations(self):
        sem = self.new_sem(3)
        self.assertEqual(sem.value, 3)
        sem.acquire()
        sem.P(delta=2)
        self.assertEqual(sem.value, 0)
        sem.release(5)
        sem.V()
        self.assertEqual(sem.value, 6)
        sem.acquire(None, -4)              # sysv_ipc takes abs(delta)
        self.assertEqual(sem.value, 2)
        sem.value = 0
        sem.Z()
        sem.Z(0)
        self.assertEqual(sem.last_pid, os.getpid())
        self.assertEqual((sem.waiting_for_nonzero, sem.waiting_for_zero), (0, 0))
        self.assertGreater(sem.o_time, 0)
        self.assertEqual(sem.mode, 0o600)
        sem.mode = 0o660
        self.assertEqual(sem.mode, 0o660)
        self.assertEqual((sem.uid, sem.cuid), (os.geteuid(), os.geteuid()))

    def test_private_always_creates_and_initialises(self):
        sem = self.new_sem(3, key=IPC_PRIVATE, flags=0, mode=0o640)
        self.assertEqual((sem.value, sem.mode), (3, 0o640))
        self.assertNotEqual(sem.o_time, 0)
        other = self.new_set(2, [4, 5], key=IPC_PRIVATE, flags=0)
        self.assertNotEqual(other.id, sem.id)
        self.assertEqual(other.values, [4, 5])

    def test_value_bounds(self):
        sem = self.new_sem(0)
        sem.value = sysvshm.SEMAPHORE_VALUE_MAX
        self.assertEqual(sem.value, 32767)
        for bad in (-1, 32768):
            with self.assertRaises(ValueError) as caught:
                sem.value = bad
            self.assertEqual(str(caught.exception),
                             "The semaphore's value must remain between 0 and SEMVMX")
        with self.assertRaises(sysvshm.Error) as caught:     # above SEMVMX: ERANGE from the kernel
            sem.release()
        self.assertEqual(caught.exception.errno, errno.ERANGE)
        self.assertEqual(sem.value, 32767)
        for bad in (0, 32768):
            with self.assertRaises(ValueError):
                sem.acquire(0, bad)
            with self.assertRaises(ValueError):
                sem.release(bad)
        with self.assertRaises(TypeError):
            sem.release("1")

    def test_non_blocking(self):
        sem = self.new_sem(0)
        sem.block = False
        with self.assertRaises(BlockingIOError) as caught:
            sem.acquire()
        self.assertIsInstance(caught.exception, sysvshm.BusyError)
        self.assertIn("acquire(id=%d" % sem.id, str(caught.exception))
        sem.value = 2
        with self.assertRaises(sysvshm.WouldBlockError):
            sem.Z()
        with self.assertRaises(sysvshm.WouldBlockError):
            sem.acquire(5, 3)                    # block=False wins over a timeout
        sem.acquire()
        self.assertEqual(sem.value, 1)

    def test_timeouts(self):
        sem = self.new_sem(0)
        with self.assertRaises(TimeoutError) as caught:      # 0: try once
            sem.acquire(0)
        self.assertIsInstance(caught.exception, sysvshm.BusyError)
        for timeout in (0.2, 1):
            start = time.monotonic()
            with self.assertRaises(sysvshm.TimedOutError):
                sem.acquire(timeout)
            elapsed = time.monotonic() - start
            self.assertGreaterEqual(elapsed, timeout * 0.99)
            self.assertLess(elapsed, timeout + 2 * SCALE)
        sem.value = 1
        start = time.monotonic()
        with self.assertRaises(sysvshm.TimedOutError):
            sem.Z(0.2)
        self.assertGreaterEqual(time.monotonic() - start, 0.19)
        sem.acquire(0.2)
        self.assertEqual(sem.value, 0)
        for bad in (-1, -0.001, float("nan")):
            with self.assertRaises(ValueError):
                sem.acquire(bad)
        with self.assertRaises(TypeError):
            sem.acquire("1")

    def test_timeout_fallback_without_semtimedop(self):
        sem = self.new_sem(0)
        with unittest.mock.patch.object(sysvshm, "_semtimedop_fast", None):
            start = time.monotonic()
            with self.assertRaises(sysvshm.TimedOutError):
                sem.acquire(0.2)
            elapsed = time.monotonic() - start
            self.assertGreaterEqual(elapsed, 0.19)
            self.assertLess(elapsed, 0.2 + 2 * SCALE)
            sem.value = 2
            sem.acquire(0.5, 2)
            self.assertEqual(sem.value, 0)
            sem.block = False
            with self.assertRaises(sysvshm.WouldBlockError):
                sem.acquire(1)

    def test_context_manager(self):
        sem = self.new_sem(1)
        with sem as same:
            self.assertIs(same, sem)
            self.assertEqual(sem.value, 0)
        self.assertEqual(sem.value, 1)

    def test_open_existing_never_resets_value(self):
        key = random_key()
        sem = self.new_sem(5, key=key)
        sem.acquire()
        again = sysvshm.Semaphore(key, IPC_CREAT, initial_value=9)   # sysv_ipc resets to 9
        self.assertEqual(again.id, sem.id)
        self.assertEqual(again.value, 4)
        self.assertEqual(sysvshm.Semaphore(key).value, 4)
        with self.assertRaises(FileExistsError):
            sysvshm.Semaphore(key, IPC_CREX)

    def test_creation_marks_initialised(self):
        for value in (0, 1, sysvshm.SEMAPHORE_VALUE_MAX):
            sem = self.new_sem(value)
            self.assertNotEqual(sem.o_time, 0)
            self.assertEqual(sem.value, value)
        semset = self.new_set(3, [0, 7, 32767])
        self.assertNotEqual(semset.o_time, 0)
        self.assertEqual(semset.values, [0, 7, 32767])

    def test_foreign_set_never_operated_does_not_hang(self):
        key = random_key()
        ident = sysvshm._semget(key, 2, IPC_CREX | 0o600)    # a "C program": no semop ever
        self.assertGreaterEqual(ident, 0)
        CREATED["sem"].add(ident)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, ident)
        self.assertEqual(sysvshm.SemaphoreSet(key).values, [0, 0])   # plain open: at once
        with unittest.mock.patch.object(sysvshm, "_INIT_GRACE", 0.3):
            start = time.monotonic()
            semset = sysvshm.SemaphoreSet(key, 2, IPC_CREAT, initial_values=[3, 3])
            elapsed = time.monotonic() - start
        self.assertEqual(semset.id, ident)
        self.assertEqual(semset.values, [0, 0])                    # not reset
        self.assertLess(elapsed, 0.3 + 1.0 + 2 * SCALE)            # bounded by the grace

    def test_removed_while_in_use(self):
        sem = self.new_sem(1)
        sem.remove()
        with self.assertRaises(sysvshm.ExistentialError):
            sem.acquire()
        with self.assertRaises(sysvshm.ExistentialError):
            sem.value  # noqa: B018  (the read itself must raise)
        with self.assertRaises(sysvshm.ExistentialError):
            sysvshm.remove_semaphore(sem.id)


class TestSemaphoreSet(Base):
    def test_create_and_values(self):
        semset = self.new_set(4, [1, 2, 3, 4])
        self.assertEqual(len(semset), 4)
        self.assertEqual(semset.values, [1, 2, 3, 4])
        semset.values = [0, 5, 0, 32767]
        self.assertEqual(semset.values, [0, 5, 0, 32767])
        self.assertEqual([m.value for m in semset], [0, 5, 0, 32767])
        semset[1].value = 9
        self.assertEqual(semset[-3].value, 9)
        self.assertIs(semset[1], semset[1])
        with self.assertRaises(IndexError):
            semset[4]
        with self.assertRaises(IndexError):
            semset[-5]
        with self.assertRaises(ValueError):
            semset.values = [1, 2, 3]
        with self.assertRaises(ValueError):
            semset.values = [1, 2, 3, 32768]
        self.assertEqual(semset.values, [0, 9, 0, 32767])
        self.assertEqual(self.new_set(3, 2).values, [2, 2, 2])
        self.assertEqual(self.new_set(0, [4, 5]).values, [4, 5])
        self.assertEqual(self.new_set(2).values, [0, 0])

    def test_open_existing_reads_nsems(self):
        semset = self.new_set(5, key=random_key())
        opened = sysvshm.SemaphoreSet(semset.key)
        self.assertEqual((opened.id, len(opened)), (semset.id, 5))
        with self.assertRaises(sysvshm.Error):
            sysvshm.SemaphoreSet(semset.key, 6)      # more than it has: EINVAL

    def test_member_operations(self):
        semset = self.new_set(2, [0, 1])
        member = semset[1]
        member.acquire()
        self.assertEqual(semset.values, [0, 0])
        member.release(3)
        self.assertEqual(member.value, 3)
        self.assertEqual((member.pid, member.ncnt, member.zcnt), (os.getpid(), 0, 0))
        member.block = False
        with self.assertRaises(sysvshm.WouldBlockError):
            member.acquire(None, 4)
        with self.assertRaises(sysvshm.TimedOutError):
            semset[0].acquire(0.05)
        semset[0].Z()
        member.undo = True
        self.assertTrue(member.undo)
        with member:
            self.assertEqual(member.value, 2)
        self.assertEqual(member.value, 3)

    def test_op_is_atomic(self):
        semset = self.new_set(3, [1, 0, 2])
        with self.assertRaises(sysvshm.WouldBlockError):
            semset.op([(0, -1), (1, -1, sysvshm.IPC_NOWAIT)])
        self.assertEqual(semset.values, [1, 0, 2])           # all or none
        with self.assertRaises(sysvshm.TimedOutError):
            semset.op([(0, -1), (1, -1)], timeout=0.05)
        self.assertEqual(semset.values, [1, 0, 2])
        semset.op([(0, -1), (1, 0), (2, 3)])
        self.assertEqual(semset.values, [0, 0, 5])
        semset.op([(2, -5, sysvshm.SEM_UNDO)], timeout=1)
        self.assertEqual(semset.values, [0, 0, 0])
        for bad, exc in [([], ValueError), ([(3, 1)], IndexError), ([(0,)], ValueError),
                         ([(0, 32768)], ValueError), ([(0, 1, 0o1)], ValueError),
                         ([(0, "1")], TypeError)]:
            with self.assertRaises(exc):
                semset.op(bad)


# --- Across processes ---------------------------------------------------------------------------
class TestAcrossProcesses(Base):
    def test_children_see_writes_by_key_and_by_id(self):
        mem = self.new_shm(10000, key=random_key())
        mem.write(b"from parent", 100)
        parent_read, child_write = os.pipe()
        self.addCleanup(os.close, parent_read)

        def child():
            by_key = sysvshm.SharedMemory(mem.key)
            by_id = sysvshm.attach(mem.id)
            assert by_key.read(11, 100) == b"from parent"
            assert by_id.buf[100:111].tobytes() == b"from parent"
            by_key.write(b"from child (key)", 2000)
            by_id.buf[5000:5015] = b"from child (id)"
            os.write(child_write, b"written\n")
            return 0
        pid = self.fork(child)
        os.close(child_write)
        self.assertEqual(read_line(parent_read), "written\n")
        self.assertChildOk(pid)
        self.assertEqual(mem.read(16, 2000), b"from child (key)")
        self.assertEqual(mem.buf[5000:5015].tobytes(), b"from child (id)")
        self.assertEqual(mem.number_attached, 1)       # the child's attachments went with it

    def test_producer_consumer_10000_messages(self):
        count, slot = 10000, 61                          # an odd size, as sysv_ipc's tests like
        mem = self.new_shm(slot * 2)
        semset = self.new_set(2, [1, 0])                 # 0: slot empty, 1: slot full

        def message(i):
            return struct.pack("=I", i) + bytes((i + j) & 0xFF for j in range(slot - 4))
        messages = [message(i) for i in range(count)]

        def producer():
            empty, full = semset[0], semset[1]
            buf = mem.buf
            for i in range(count):
                empty.acquire(DEADLINE)
                buf[0:slot] = messages[i]
                full.release()
            return 0
        pid = self.fork(producer)
        empty, full = semset[0], semset[1]
        buf = mem.buf
        for i in range(count):
            full.acquire(DEADLINE)
            got = buf[0:slot].tobytes()
            if got != messages[i]:
                self.fail("message %d: got %r" % (i, got[:8]))
            empty.release()
        del buf
        self.assertChildOk(pid)
        self.assertEqual(semset.values, [1, 0])

    def test_four_processes_increment_a_counter_under_the_lock(self):
        processes, increments = 4, 5000
        mem = self.new_shm(64, init_character=None)
        lock = self.new_sem(1, key=random_key())

        def worker():
            counter = mem.as_ctypes(ctypes.c_uint64, 8)
            sem = sysvshm.Semaphore(lock.key)
            for _ in range(increments):
                sem.acquire(DEADLINE)
                value = counter.value        # a read-modify-write that races without the lock
                counter.value = value + 1
                sem.release()
            return 0
        pids = [self.fork(worker) for _ in range(processes)]
        for pid in pids:
            self.assertChildOk(pid, DEADLINE * 3)
        self.assertEqual(struct.unpack_from("=Q", mem.buf, 8)[0], processes * increments)
        self.assertEqual(lock.value, 1)

    def test_undo_returns_the_lock_of_a_killed_process(self):
        lock = self.new_sem(1)
        parent_read, child_write = os.pipe()
        self.addCleanup(os.close, parent_read)

        def holder():
            lock.undo = True
            lock.acquire(DEADLINE)
            os.write(child_write, b"holding\n")
            lock.acquire(DEADLINE * 5)       # parks here until killed
            return 3
        pid = self.fork(holder)
        os.close(child_write)
        self.assertEqual(read_line(parent_read), "holding\n")
        self.assertEqual(lock.value, 0)
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(self.reap(pid), -signal.SIGKILL)
        lock.acquire(DEADLINE)               # the kernel undid the holder's -1
        self.assertEqual(lock.value, 0)

    def test_waiters_are_counted_and_woken(self):
        semset = self.new_set(2, [0, 1])
        ready_read, ready_write = os.pipe()
        self.addCleanup(os.close, ready_read)

        def waiter():
            os.write(ready_write, b"go\n")
            semset[0].acquire(DEADLINE)
            semset[1].Z(DEADLINE)
            return 0
        pid = self.fork(waiter)
        os.close(ready_write)
        read_line(ready_read)
        deadline = time.monotonic() + DEADLINE
        while semset[0].ncnt != 1:          # the kernel's own count, polled with a deadline
            self.assertLess(time.monotonic(), deadline, "the child never waited")
            time.sleep(0.001)
        semset[0].release()
        while semset[1].zcnt != 1:
            self.assertLess(time.monotonic(), deadline, "the child never waited for zero")
            time.sleep(0.001)
        semset[1].acquire()
        self.assertChildOk(pid)

    def test_removal_wakes_waiters_with_an_error(self):
        sem = self.new_sem(0)
        ready_read, ready_write = os.pipe()
        self.addCleanup(os.close, ready_read)

        def waiter():
            os.write(ready_write, b"waiting\n")
            try:
                sem.acquire(DEADLINE)
            except sysvshm.ExistentialError as exc:
                return 0 if exc.errno in (errno.EIDRM, errno.EINVAL) else 4
            return 3
        pid = self.fork(waiter)
        os.close(ready_write)
        read_line(ready_read)
        deadline = time.monotonic() + DEADLINE
        while sem.waiting_for_nonzero != 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.001)
        sem.remove()
        self.assertChildOk(pid)

    def test_concurrent_create_or_open_initialises_once(self):
        key = random_key()
        start_read, start_write = os.pipe()
        results_read, results_write = os.pipe()
        self.addCleanup(os.close, results_read)

        def contender():
            os.read(start_read, 1)
            sem = sysvshm.Semaphore(key, IPC_CREAT, initial_value=1)
            try:
                sem.acquire(0)                    # exactly one contender may get the lock
                got = 1
            except sysvshm.BusyError:
                got = 0
            os.write(results_write, ("%d %d\n" % (sem.id, got)).encode())
            return 0
        pids = [self.fork(contender) for _ in range(4)]
        os.close(start_read)
        os.close(results_write)
        os.write(start_write, b"xxxx")
        os.close(start_write)
        lines = [read_line(results_read) for _ in pids]
        for pid in pids:
            self.reap(pid)
        ids = {int(line.split()[0]) for line in lines}
        self.assertEqual(len(ids), 1)
        ident = ids.pop()
        CREATED["sem"].add(ident)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, ident)
        winners = sum(int(line.split()[1]) for line in lines)
        self.assertEqual(winners, 1, lines)


class TestSignals(Base):
    def test_eintr_is_retried_with_the_remaining_time(self):
        sem = self.new_sem(0)
        interrupts = []
        previous = signal.signal(signal.SIGALRM, lambda signum, frame: interrupts.append(1))
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        start = time.monotonic()
        with self.assertRaises(sysvshm.TimedOutError):
            sem.acquire(0.6)
        elapsed = time.monotonic() - start
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.assertGreaterEqual(len(interrupts), 3)
        self.assertGreaterEqual(elapsed, 0.59)
        self.assertLess(elapsed, 0.6 + 2 * SCALE)

    def test_eintr_without_timeout_is_retried(self):
        def child():
            sem = sysvshm.Semaphore(IPC_PRIVATE, IPC_CREAT)
            try:
                interrupts = []

                def handler(signum, frame):
                    interrupts.append(1)
                    if len(interrupts) == 3:
                        sem.release()       # the third interruption makes the wait succeed
                signal.signal(signal.SIGALRM, handler)
                signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
                sem.acquire()               # blocking, no timeout: EINTR must be retried
                signal.setitimer(signal.ITIMER_REAL, 0)
                return 0 if len(interrupts) >= 3 else 5
            finally:
                sem.remove()
        self.assertChildOk(self.fork(child))

    def test_keyboard_interrupt_ends_a_wait(self):
        def child():
            sem = sysvshm.Semaphore(IPC_PRIVATE, IPC_CREAT)
            semset = sysvshm.SemaphoreSet(IPC_PRIVATE, 2, IPC_CREAT)
            try:
                signal.signal(signal.SIGALRM, signal.default_int_handler)
                for name, wait in (("P", sem.acquire), ("P", lambda: sem.acquire(DEADLINE * 5)),
                                   ("Z", sem.Z), ("op", lambda: semset.op([(0, -1), (1, -1)]))):
                    sem.value = 1 if name == "Z" else 0
                    signal.setitimer(signal.ITIMER_REAL, 0.05)
                    try:
                        wait()
                    except KeyboardInterrupt:
                        continue
                    return 6
                return 0
            finally:
                sem.remove()
                semset.remove()
        self.assertChildOk(self.fork(child))


class TestPermissions(Base):
    def test_permission_denied_for_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to drop to another user")
        mem = self.new_shm(4096, key=random_key())
        sem = self.new_sem(1, key=random_key())
        semset = self.new_set(2, key=random_key())

        def child():
            os.setgid(65534)
            os.setuid(65534)
            failures = 0
            for attempt in (lambda: sysvshm.SharedMemory(mem.key),
                            lambda: sysvshm.attach(mem.id),
                            lambda: sysvshm.Semaphore(sem.key, IPC_CREAT),
                            lambda: sysvshm.Semaphore(sem.key).acquire(0),
                            lambda: sysvshm.Semaphore(sem.key).value,
                            lambda: sysvshm.SemaphoreSet(semset.key).values,
                            lambda: sysvshm.remove_semaphore(sem.id),
                            lambda: sysvshm.remove_shared_memory(mem.id)):
                try:
                    attempt()
                except PermissionError as exc:
                    assert isinstance(exc, sysvshm.PermissionsError)
                    assert exc.errno in (errno.EACCES, errno.EPERM)
                else:
                    failures += 1
            return failures
        self.assertChildOk(self.fork(child))
        self.assertEqual(sem.value, 1)
        self.assertFalse(mem.removed)


@unittest.skipUnless(shutil.which("ipcs"), "util-linux ipcs is not installed")
class TestIpcsAgrees(Base):
    def ipcs_row(self, flag, ident):
        out = subprocess.run(["ipcs", flag], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == str(ident):
                return fields
        self.fail("ipcs %s does not list id %d" % (flag, ident))

    def test_segment(self):
        mem = self.new_shm(12345, key=random_key(), mode=0o640)
        key, ident, owner, perms, size, nattch = self.ipcs_row("-m", mem.id)[:6]
        self.assertEqual(key, "0x%08x" % mem.key)
        self.assertEqual((int(ident), perms, int(size), int(nattch)), (mem.id, "640", 12345, 1))
        mem.remove()
        self.assertIn("dest", self.ipcs_row("-m", mem.id))
        mem.detach()

    def test_semaphore_set(self):
        semset = self.new_set(7, key=random_key())
        key, ident, owner, perms, nsems = self.ipcs_row("-s", semset.id)[:5]
        self.assertEqual((key, int(ident), perms, int(nsems)),
                         ("0x%08x" % semset.key, semset.id, "600", 7))

    @unittest.skipUnless(shutil.which("lsipc"), "lsipc is not installed")
    def test_lsipc_json(self):
        mem = self.new_shm(4096, key=random_key())
        out = subprocess.run(["lsipc", "--shmems", "--json", "-o", "KEY,ID,SIZE,NATTCH"],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        rows = [row for row in json.loads(out)["sharedmemory"] if int(row["id"]) == mem.id]
        self.assertEqual(len(rows), 1)
        self.assertEqual(int(rows[0]["key"], 16), mem.key)
        self.assertEqual(int(rows[0]["nattch"]), 1)


# --- Interop with C programs --------------------------------------------------------------------
C_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

struct shared {                 /* program A's struct; Python mirrors it with ctypes */
    uint32_t status;
    uint32_t magic;
    uint64_t length;
    uint8_t data[];
};

static int wait_sem(int semid, int index, int delta) {
    struct sembuf op = {(unsigned short)index, (short)delta, 0};
    struct timespec limit = {TIMEOUT, 0};
    return semtimedop(semid, &op, 1, &limit);
}

int main(int argc, char **argv) {
    key_t key = (key_t)strtoul(argv[2], NULL, 0), semkey = (key_t)strtoul(argv[3], NULL, 0);
    size_t size = strtoul(argv[4], NULL, 0);
    if (strcmp(argv[1], "create") == 0) {          /* A creates; Python is B */
        int shmid = shmget(key, size, IPC_CREAT | IPC_EXCL | 0600);
        int semid = semget(semkey, 2, IPC_CREAT | IPC_EXCL | 0600);
        if (shmid < 0 || semid < 0) { perror("get"); return 2; }
        struct shared *s = shmat(shmid, NULL, 0);
        if (s == (void *)-1) { perror("shmat"); return 2; }
        s->magic = 0x53595356; s->length = size - sizeof *s;
        for (uint64_t i = 0; i < s->length; i++) s->data[i] = (uint8_t)(i * 7 + 3);
        printf("ready %d %d\n", shmid, semid); fflush(stdout);
        if (wait_sem(semid, 1, -1) != 0) { perror("semtimedop"); return 3; }
        int ok = s->status == 0xDEADBEEFu;
        shmdt(s); shmctl(shmid, IPC_RMID, NULL); semctl(semid, 0, IPC_RMID);
        printf("%s %08x\n", ok ? "verified" : "bad-status", 0); return ok ? 0 : 4;
    } else {                                       /* Python is A; C attaches as B */
        int shmid = shmget(key, 0, 0), semid = semget(semkey, 0, 0);
        if (shmid < 0 || semid < 0) { perror("get"); return 2; }
        struct shared *s = shmat(shmid, NULL, 0);
        if (s == (void *)-1) { perror("shmat"); return 2; }
        if (wait_sem(semid, 0, -1) != 0) { perror("semtimedop"); return 3; }
        int ok = s->magic == 0x53595356 && s->length == size - sizeof *s;
        for (uint64_t i = 0; ok && i < s->length; i++) ok = s->data[i] == (uint8_t)(i * 7 + 3);
        s->status = ok ? 0xDEADBEEFu : 0xBAD;
        shmdt(s);
        struct sembuf wake = {1, 1, 0};
        semop(semid, &wake, 1);
        printf("%s\n", ok ? "verified" : "bad-data"); return ok ? 0 : 4;
    }
}
"""


class Shared(ctypes.Structure):
    _fields_ = [("status", ctypes.c_uint32), ("magic", ctypes.c_uint32),
                ("length", ctypes.c_uint64)]


def pattern(length):
    unit = bytes((i * 7 + 3) & 0xFF for i in range(256))
    return (unit * (length // 256 + 1))[:length]


@unittest.skipUnless(shutil.which("cc"), "no C compiler")
class TestInteropWithC(Base):
    SIZE = 16 * 1024 * 1024 + 24

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        source = os.path.join(cls.tmp, "program_a.c")
        with open(source, "w") as f:
            f.write(C_PROGRAM)
        cls.program = os.path.join(cls.tmp, "program_a")
        subprocess.run(["cc", "-O2", "-DTIMEOUT=%d" % int(DEADLINE), "-o", cls.program, source],
                       check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_c_creates_python_attaches(self):
        key, semkey = random_key(), random_key()
        proc = subprocess.Popen([self.program, "create", str(key), str(semkey), str(self.SIZE)],
                                stdout=subprocess.PIPE, universal_newlines=True)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        word, shmid, semid = read_line(proc.stdout.fileno()).split()
        CREATED["shm"].add(int(shmid))
        CREATED["sem"].add(int(semid))
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, int(shmid))
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, int(semid))
        mem = sysvshm.SharedMemory(key)
        semset = sysvshm.SemaphoreSet(semkey)              # a C-made set: nsems from the kernel
        self.assertEqual((mem.id, semset.id, len(semset)), (int(shmid), int(semid), 2))
        header = mem.as_ctypes(Shared)                     # A's struct, read in place
        self.assertEqual(header.magic, 0x53595356)
        data = mem.buf[ctypes.sizeof(Shared):ctypes.sizeof(Shared) + header.length]
        self.assertTrue(data == pattern(header.length))   # compared without copying out
        header.status = 0xDEADBEEF
        del header, data
        semset[1].release()
        self.assertEqual(proc.wait(DEADLINE), 0)
        self.assertEqual(proc.stdout.read().split()[0], "verified")
        mem.detach()

    def test_python_creates_c_attaches(self):
        mem = self.new_shm(self.SIZE, key=random_key(), init_character=None)
        semset = self.new_set(2, key=random_key())
        header = mem.as_ctypes(Shared)
        header.magic, header.length = 0x53595356, self.SIZE - ctypes.sizeof(Shared)
        mem.buf[ctypes.sizeof(Shared):] = pattern(header.length)
        proc = subprocess.Popen([self.program, "attach", str(mem.key), str(semset.key),
                                 str(self.SIZE)], stdout=subprocess.PIPE, universal_newlines=True)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        semset[0].release()
        semset[1].acquire(DEADLINE)                        # C wakes us after writing
        self.assertEqual(header.status, 0xDEADBEEF)
        self.assertEqual(proc.wait(DEADLINE), 0)
        self.assertEqual(proc.stdout.read().strip(), "verified")


class TestDemo(Base):
    def test_demo_runs_and_cleans_up(self):
        before = {kind: live_ids(kind) for kind in ("shm", "sem")}
        result = subprocess.run([sys.executable, os.path.join(HERE, "sysvshm.py"), "demo"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=DEADLINE * 3)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("status=0xdeadbeef", result.stdout)
        self.assertTrue(result.stdout.rstrip().endswith("OK"))
        for line in result.stdout.splitlines():
            if "created segment" in line:
                shmid = int(line.split("id=")[1].split()[0])
                semid = int(line.split("id=")[2].split()[0])
                self.assertNotIn(shmid, live_ids("shm") - before["shm"])
                self.assertNotIn(semid, live_ids("sem") - before["sem"])
                break
        else:
            self.fail("the demo did not print what it created")


if __name__ == "__main__":
    unittest.main()
