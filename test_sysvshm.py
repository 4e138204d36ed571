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

import contextlib
import ctypes
import errno
import gc
import hashlib
import inspect
import io
import json
import os
import random
import re
import select
import shlex
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
import unittest.mock
from unittest import mock

import sysvshm
from sysvshm import IPC_CREAT, IPC_CREX, IPC_PRIVATE, MSG_EXCEPT, MSG_NOERROR

SCALE = float(os.environ.get("SYSVSHM_TIME_SCALE", "1"))
DEADLINE = 20.0 * SCALE          # for waits that must end quickly when things work
HERE = os.path.dirname(os.path.abspath(__file__))
CPYTHON = sys.implementation.name == "cpython"
CREATED = {"shm": set(), "sem": set(), "msg": set()}   # ids this run created
# Under qemu-user (.ci/cross-arch), a 32-bit guest's address space is one range qemu reserves
# on the host (reserved_va): a range the guest unmapped is still mapped PROT_NONE on the host
# (seen in the host's /proc/PID/maps), and qemu 7.2 passes an explicit shmat() address on
# without SHM_REMAP, so the host refuses it (EINVAL) even where the guest sees nothing mapped.
EMULATOR = os.environ.get("SYSVSHM_EMULATOR")      # the qemu-user binary, under .ci/cross-arch
QEMU_RESERVED_VA = bool(EMULATOR) and ctypes.sizeof(ctypes.c_void_p) == 4
# qemu-user 7.2 writes msg_lspid/msg_lrpid as 64-bit longs on 64-bit guests (fixed upstream in
# 2025): under it, those two fields are wrong whatever the layout says.  Raw IPC_STAT bytes
# 96..111 after a send and a receive by pid 0x75fe, s390x: 00000000000075fe 00000000000075fe
# (the kernel's layout, x86_64: fe750000fe750000 0000000000000000).
QEMU_MSG_PIDS_WRONG = bool(EMULATOR) and ctypes.sizeof(ctypes.c_void_p) == 8

try:
    import numpy
except ImportError:
    numpy = None


def random_key(high=False):
    """A random key: positive, or (high) one that key_t stores negative, as ipcs prints it."""
    return random.randint(0x80000000, 0xFFFFFFFF) if high else random.randint(0x10000, 0x7FFFFFFF)


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
        for name in ("_shmget", "_shmget_fast", "_semget", "_semctl", "_semop_fast",
                     "_semtimedop_fast", "_msgsnd_fast", "_msgrcv_fast", "_selfcheck"):
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
            (ValueError, lambda: sysvshm.SharedMemory(1, sysvshm.IPC_EXCL)),
            (ValueError, lambda: sysvshm.MessageQueue(None, IPC_CREAT)),
            (ValueError, lambda: sysvshm.MessageQueue(2 ** 32)),
            (TypeError, lambda: sysvshm.MessageQueue("1")),
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
        with self.assertRaises(FileNotFoundError) as caught:
            sysvshm.ftok(os.path.join(HERE, "does-not-exist"), 1, silence_warning=True)
        self.assertIn("ftok(", str(caught.exception))

    def test_limits_of_one_kind_do_not_block_the_others(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for a private IPC namespace")

        def child():
            with open("/proc/sys/kernel/shmmni", "w") as f:   # this namespace only
                f.write("0")
            sem = sysvshm.Semaphore(IPC_PRIVATE, IPC_CREX, initial_value=3)
            queue = sysvshm.MessageQueue(IPC_PRIVATE, IPC_CREX)
            queue.send(b"x")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = sysvshm.main(["demo"])      # cannot create its segment: one line
            return [sem.value, queue.receive()[0].decode(), status, err.getvalue()]
        value, message, status, err = in_child(child, unshare_ipc=True)
        self.assertEqual((value, message, status), (3, "x", 1))
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("shmget", err)
        self.assertNotIn("Traceback", err)

    def test_layout_self_check(self):
        for kind in ("shm", "sem", "msg"):
            sysvshm._selfcheck(kind)
            self.assertIn(kind, sysvshm._checked)
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
class TestPublicApiDocumented(Base):
    """__all__ names every public class (every exception the README says to catch among them),
    help(sysvshm) shows them, and every public attribute says what it is."""

    CAUGHT = ("TimedOutError", "WouldBlockError", "MessageTooLongError", "NotFoundError",
              "ExistsError", "RemovedError", "AccessError", "OutOfRangeError",
              "InterruptedCallError", "Error", "BusyError", "ExistentialError",
              "PermissionsError", "NotAttachedError", "InternalError")

    def test_all_has_every_public_class(self):
        for name in self.CAUGHT + ("SemaphoreMember", "SharedMemory", "Semaphore",
                                   "SemaphoreSet", "MessageQueue"):
            self.assertIn(name, sysvshm.__all__)
        classes = [name for name, value in vars(sysvshm).items()
                   if isinstance(value, type) and not name.startswith("_")
                   and value.__module__ == "sysvshm"]
        self.assertGreaterEqual(len(classes), 20)
        self.assertEqual(sorted(set(classes) - set(sysvshm.__all__)), [])
        self.assertEqual(len(sysvshm.__all__), len(set(sysvshm.__all__)))
        namespace = {}
        exec("from sysvshm import *", namespace)
        self.assertIn("TimedOutError", namespace)

    def test_help_shows_the_exceptions(self):
        import pydoc
        text = pydoc.render_doc(sysvshm, renderer=pydoc.plaintext)
        for name in self.CAUGHT + ("SemaphoreMember",):
            self.assertTrue("class %s(" % name in text, name)
        for attribute in ("key", "size", "address", "attached", "readonly", "id", "mode", "uid"):
            self.assertTrue(re.search(r"\|  %s\n +\|      \w" % attribute, text), attribute)

    def undocumented(self, cls, instance=None):
        """The public attributes of a sysvshm class (and of one of its instances) that have
        no docstring: a descriptor, function or property needs its own; a plain value (a
        class or instance attribute) must be named as ``name`` in its class's docstring."""
        missing = []
        names = set(dir(cls)) | set(vars(instance) if instance is not None else ())
        for name in sorted(n for n in names if not n.startswith("_")):
            owner = next((c for c in cls.__mro__ if name in vars(c)), None)
            if owner is None:                            # an instance attribute
                owner, value = cls, None
            elif owner.__module__ != "sysvshm":
                continue                                 # OSError's errno, strerror, ...
            else:
                value = vars(owner)[name]
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if value is not None and (callable(value) or hasattr(value, "__get__")) and \
                    not isinstance(value, (int, str, bytes)):
                doc = getattr(value, "__doc__", None)
                if not doc or not doc.strip() or doc == type(value).__doc__:
                    missing.append("%s.%s" % (cls.__name__, name))
            elif "``%s``" % name not in (owner.__doc__ or ""):
                missing.append("%s.%s (not in the class docstring)" % (cls.__name__, name))
        return missing

    def test_every_public_name_and_attribute_has_a_docstring(self):
        mem = self.new_shm(4096)
        self.addCleanup(mem.detach)
        sems = self.new_set(2)
        mq = sysvshm.MessageQueue(None, IPC_CREX)
        self.addCleanup(remove_quietly, sysvshm.remove_message_queue, mq.id)
        CREATED["msg"].add(mq.id)
        instances = {sysvshm.SharedMemory: mem, sysvshm.SemaphoreSet: sems,
                     sysvshm.SemaphoreMember: sems[1], sysvshm.MessageQueue: mq,
                     sysvshm.Semaphore: self.new_sem(1)}
        missing = []
        for name in sysvshm.__all__:
            value = getattr(sysvshm, name)
            if isinstance(value, type):
                if not (value.__doc__ or "").strip():
                    missing.append(name)
                missing.extend(self.undocumented(value, instances.get(value)))
            elif callable(value) and not (value.__doc__ or "").strip():
                missing.append(name)
        self.assertEqual(missing, [])
        # The attributes the README lists, on each class that has them, by their own text.
        for cls, names in ((sysvshm.SharedMemory, ("key", "id", "size", "address", "attached",
                                                   "readonly", "mode", "uid", "gid", "cuid",
                                                   "creator_pid", "last_pid", "number_attached")),
                           (sysvshm.Semaphore, ("key", "id", "value", "pid", "last_pid", "ncnt",
                                                "zcnt", "undo", "block", "o_time")),
                           (sysvshm.SemaphoreMember, ("index", "value", "pid")),
                           (sysvshm.MessageQueue, ("key", "id", "max_size", "max_message_size",
                                                   "current_messages"))):
            for name in names:
                with self.subTest(cls=cls.__name__, name=name):
                    self.assertGreater(len(inspect.getdoc(inspect.getattr_static(cls, name))),
                                       20)

    def test_readonly_attributes_still_refuse_assignment(self):
        mem = self.new_shm(4096)
        self.addCleanup(mem.detach)
        sems = self.new_set(2)
        for obj, name in ((mem, "size"), (mem, "key"), (mem, "attached"), (mem, "address"),
                          (sems[0], "index"), (sems[0], "pid"), (sems, "key")):
            with self.subTest(name=name), self.assertRaises(AttributeError) as caught:
                setattr(obj, name, 1)
            self.assertIn("is not writable", str(caught.exception))
        with self.assertRaises(AttributeError) as caught:
            mem.id = 5
        self.assertEqual(str(caught.exception), "readonly attribute")   # sysv_ipc's text
        self.assertIs(type(sysvshm.SharedMemory.size), sysvshm._ReadOnly)
        self.assertEqual(mem.size, 4096)
        # The `with` target is the semaphore itself (typed as such for checkers).
        sem = self.new_sem(1)
        with sem as held:
            self.assertIs(held, sem)
            self.assertEqual(sem.value, 0)


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
        for bad in (-1, 2 ** 32 - 1, 2 ** 32):
            with self.assertRaises(ValueError):
                mem.uid = bad
            with self.assertRaises(ValueError):
                mem.gid = bad
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

    def test_init_character_without_write_permission(self):
        def create():
            if os.geteuid() == 0:                      # root may write anyway: be nobody
                os.setgid(65534)
                os.setuid(65534)
            mem = sysvshm.SharedMemory(IPC_PRIVATE, IPC_CREX, 0o400, 1000, b"X")
            try:
                return [mem.readonly, mem.read().decode(), mem.mode]
            finally:
                mem.remove()
        readonly, data, mode = in_child(create)
        self.assertTrue(readonly)                      # we may only read it...
        self.assertEqual(data, "X" * 1000)             # ...but it was filled as asked
        self.assertEqual(mode, 0o400)

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
        other = mem.buf                       # each access: a new view of the same memory
        other[12] = ord("Y")
        self.assertEqual(buf[12], ord("Y"))
        del buf, other

    def test_releasing_a_view_of_buf_affects_nothing_else(self):
        mem = self.new_shm(3333)
        with mem.buf as view:
            view[0:2] = b"ok"
        self.assertEqual(mem.read(2), b"ok")
        mem.write(b"fine")
        self.assertEqual(mem.buf[0:4].tobytes(), b"fine")
        self.assertEqual(mem.read_into(bytearray(4)), 4)
        mem.detach()                          # the released view holds nothing

    def test_leaving_with_on_an_exception_keeps_that_exception(self):
        mem = self.new_shm(3333)
        view = mem.buf[0:4]
        with self.assertRaises(KeyError):
            with mem:
                raise KeyError("the real error")     # a live view: detach cannot happen now
        if CPYTHON:
            self.assertTrue(mem.attached)
            self.assertEqual(view.tobytes(), b"    ")
            with self.assertRaises(BufferError):     # no exception on its way: this one shows
                with mem:
                    pass
        del view
        gc.collect()
        if mem.attached:
            mem.detach()

    @unittest.skipUnless(sys.version_info >= (3, 12) or not CPYTHON,
                         "PEP 688 buffer protocol needs 3.12")
    def test_memoryview_of_shared_memory(self):
        mem = self.new_shm(3333)
        view = memoryview(mem)
        self.assertEqual((view.format, len(view), view.readonly), ("B", 3333, False))
        view[0] = ord("q")
        self.assertEqual(mem.read(1), b"q")
        self.assertEqual(len(bytearray(mem)), 3333)
        if CPYTHON:
            with self.assertRaises(BufferError):
                mem.detach()
            view.release()
            mem.detach()
        else:                   # PyPy: private zero memory replaces the segment under the view
            mem.detach()
            self.assertEqual(view[0], 0)

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

        class Linked(ctypes.Structure):
            _fields_ = [("count", ctypes.c_int), ("name", ctypes.c_char_p)]
        for pointerish in (ctypes.c_char_p, ctypes.c_wchar_p, ctypes.py_object, ctypes.c_void_p,
                           ctypes.POINTER(ctypes.c_int), ctypes.CFUNCTYPE(None), Linked,
                           ctypes.c_char_p * 2, Linked * 3):
            with self.assertRaises(TypeError) as caught:   # ctypes would follow what is there
                mem.as_ctypes(pointerish)
            self.assertIn("c_size_t", str(caught.exception))
        pointer = ctypes.sizeof(ctypes.c_size_t)  # the words at 8, read as an address-sized int
        self.assertEqual(mem.as_ctypes(ctypes.c_size_t, 8).value,
                         int.from_bytes(mem.read(pointer, 8), sys.byteorder))
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

    def test_attach_reserves_on_the_shmlba_boundary(self):
        # shmat() takes only multiples of SHMLBA (4 pages on 32-bit ARM): the reservation is
        # aligned to it at page granularity, not retried at huge-page alignment (2 MiB).
        mem = self.new_shm(3333)
        page, lba = sysvshm.PAGE_SIZE, sysvshm._SHMLBA
        self.assertEqual((mem.address % lba, mem._align), (0, page))
        # The segment's pages, room to round up to SHMLBA and to step off a huge-page boundary.
        self.assertLessEqual(len(mem._owner), page + 2 * lba)
        mem.detach()      # the address was read: only detach() ends the attachment

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

        lba = sysvshm._SHMLBA             # shmat's boundary: 4 pages on 32-bit ARM

        def free_address():
            probe = mmap.mmap(-1, 3 * sysvshm.PAGE_SIZE + lba)
            address = -(-sysvshm._address_of(probe) // lba) * lba
            probe.close()                    # a range that is free now: attach exactly there
            return address
        mem = self.new_shm(3 * sysvshm.PAGE_SIZE)
        mem.write(b"where")
        mem.detach()
        with self.assertRaises(ValueError):
            mem.attach(None, sysvshm.SHM_REMAP)
        with self.assertRaises(ValueError):      # it would replace what is mapped there
            mem.attach(free_address(), sysvshm.SHM_REMAP)
        self.assertFalse(mem.attached)
        for off in ((1, sysvshm.PAGE_SIZE) if lba > sysvshm.PAGE_SIZE else (1,)):
            address = free_address()          # (PyPy's detach leaves the old range mapped)
            with self.assertRaises(sysvshm.Error) as caught:
                mem.attach(address + off)     # off the boundary: EINVAL, and the error says why
            self.assertEqual(caught.exception.errno, errno.EINVAL)
            self.assertIn("multiple of SHMLBA, %d" % lba, str(caught.exception))
            if not QEMU_RESERVED_VA:
                mem.attach(address + off, sysvshm.SHM_RND)      # rounded down to the boundary
                self.assertEqual(mem.address, address)
                mem.detach()
        address = free_address()
        if QEMU_RESERVED_VA:
            with self.assertRaises(sysvshm.Error) as caught:
                mem.attach(address)           # free and on the boundary, yet refused there
            self.assertEqual(caught.exception.errno, errno.EINVAL)
            self.skipTest("qemu-user with a 32-bit guest refuses every explicit shmat() address "
                          "(QEMU_RESERVED_VA); checked: the SHMLBA errors, and that refusal")
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
        # Again at the same address (on PyPy the detach left private memory there: replaced).
        if CPYTHON and sys.version_info >= (3, 12):
            mem.attach(address, sysvshm.SHM_RDONLY)
            self.assertEqual(mem.address, address)
            self.assertTrue(mem.buf.readonly)
            with self.assertRaises(TypeError):       # nothing writable behind it
                memoryview(mem.buf.obj)[0] = 1
            with self.assertRaises(PermissionError):
                mem.write(b"x")
            mem.detach()
        else:   # a read-only buffer over raw memory needs PEP 688
            with self.assertRaises(NotImplementedError):
                mem.attach(address, sysvshm.SHM_RDONLY)
        mem.attach(address)
        self.assertEqual((mem.address, mem.read(5)), (address, b"where"))
        mem.detach()

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

    @unittest.skipIf(QEMU_RESERVED_VA, "qemu-user with a 32-bit guest refuses every explicit "
                     "shmat() address (QEMU_RESERVED_VA)")
    def test_views_of_an_explicit_address_attach_outlive_it(self):
        out = self.assertPythonOk("""
            import atexit, gc, mmap, sys, sysvshm
            views = []                         # registered first, so it runs after the others
            atexit.register(lambda: sys.stdout.write("at exit: %r\\n" % views[0][0:4].tobytes()))
            mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, size=8192)
            mem.write(b"kept")
            mem.detach()
            lba = sysvshm._SHMLBA              # shmat's boundary: 4 pages on 32-bit ARM
            probe = mmap.mmap(-1, 8192 + lba)
            address = -(-sysvshm._address_of(probe) // lba) * lba
            probe.close()
            mem.attach(address)
            mem.remove()                       # destroyed with the last attachment
            view, cast = mem.buf[0:16], mem.buf.cast("c")
            views.append(view)
            del mem
            for _ in range(3):
                gc.collect()
            seen = view[0:4].tobytes()         # CPython: still the segment; PyPy: zeros
            assert seen in (b"kept", bytes(4)), seen
            assert cast[0] in (b"k", b"\\x00")
            print("ok")
        """)
        self.assertTrue(out.startswith("ok\n"), out)
        self.assertIn("at exit:", out)

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


# A script prefix for the memory-safety subprocesses: attach(kind) gives a fresh segment holding
# b"payload", attached without an address ("reserved") or at a free address ("explicit").
ATTACH_PRELUDE = """
import ctypes, gc, mmap, sys, threading, sysvshm
CPYTHON = sys.implementation.name == "cpython"
segments = []

def free_address(length):
    lba = sysvshm._SHMLBA
    probe = mmap.mmap(-1, length + lba)
    address = -(-sysvshm._address_of(probe) // lba) * lba
    probe.close()
    return address

def attach(kind, size=8192, flags=0):
    mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, size=size)
    segments.append(mem.id)
    mem.write(b"payload")
    if kind == "explicit":
        address = free_address(size)
        mem.attach(address, flags)
        assert mem.address == address
    elif flags:
        mem.attach(None, flags)
    return mem

def done():
    for ident in segments:
        sysvshm.remove_shared_memory(ident)
    print("ok")
"""


class TestMemorySafety(Base):
    """The mechanism behind detach(): nothing a caller can reach is ever unmapped under it - on
    every interpreter, for both attach paths, whatever runs during detach()."""

    kinds = ("reserved",) if QEMU_RESERVED_VA else ("reserved", "explicit")

    def run_safety(self, body, timeout=DEADLINE):
        out = self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent(body) + "\ndone()\n", timeout)
        self.assertTrue(out.endswith("ok\n"), out)
        return out

    def test_detach_under_every_kind_of_view(self):
        # CPython 3.14 segfaulted here (explicit address: the refcount check passed with a view
        # alive); read-only explicit attaches gave a writable .obj before.
        self.run_safety("""
            VIEWS = {
                "buf": lambda m: m.buf,
                "slice": lambda m: m.buf[1:5][1:],
                "obj": lambda m: memoryview(m.buf.obj if m.buf.obj is not None else m.buf),
                "cast": lambda m: m.buf.cast("c"),
                "as_ctypes": lambda m: m.as_ctypes(ctypes.c_char * 7),
                "from_buffer": lambda m: (ctypes.c_char * 7).from_buffer(m.buf),
            }
            if sys.version_info >= (3, 12) and CPYTHON:
                VIEWS["memoryview(shm)"] = lambda m: memoryview(m)
            try:
                import numpy
                VIEWS["numpy"] = lambda m: numpy.frombuffer(m.buf, numpy.uint8)
            except ImportError:
                pass
            for kind in %r:
                for name, make in sorted(VIEWS.items()):
                    mem = attach(kind)
                    address = mem.address
                    view = make(mem)
                    try:
                        mem.detach()
                    except BufferError:
                        assert CPYTHON, "BufferError on PyPy"
                        assert mem.attached and mem.read(7) == b"payload"
                        # (an mmap's whole view starts where the reservation does: the
                        # segment may lie a page or a boundary into it)
                        seen = bytes(view)
                        assert seen[:3] in b"payload" or b"payload" in seen, (name, seen[:8])
                        view = None
                        gc.collect()
                        mem.detach()
                    else:
                        assert not CPYTHON, "%%s %%s: detached under a live view" %% (kind, name)
                        assert set(bytes(view)) == {0}, (kind, name, bytes(view)[:8])
                        try:
                            view[0] = view[0]       # private memory: writable or not, no crash
                        except TypeError:
                            pass
                    # The same address again (PyPy: over the private memory left there).
                    mem.attach(address if kind == "explicit" else None)
                    assert mem.read(7) == b"payload"
                    view = None
                    gc.collect()
                    mem.detach()
        """ % (self.kinds,))

    def test_read_only_attach_exposes_nothing_writable(self):
        kinds = [kind for kind in self.kinds
                 if kind == "reserved" or (CPYTHON and sys.version_info >= (3, 12))]
        self.run_safety("""
            for kind in %r:
                mem = attach(kind, flags=sysvshm.SHM_RDONLY)
                view = mem.buf
                writes = [lambda: view.__setitem__(0, 1),
                          lambda: memoryview(view.obj).__setitem__(0, 1),
                          lambda: view.obj.write(b"x"),
                          lambda: view.obj.__setitem__(0, 1)]
                if CPYTHON:   # PyPy's from_buffer() takes read-only buffers (README: PyPy)
                    writes += [lambda: (ctypes.c_char * 2).from_buffer(view.obj),
                               lambda: (ctypes.c_char * 2).from_buffer(view)]
                if sys.version_info >= (3, 12) and CPYTHON:
                    writes.append(lambda: (ctypes.c_char * 2).from_buffer(mem))
                for write in writes:
                    try:
                        write()
                    except (TypeError, AttributeError, BufferError):
                        pass
                    else:
                        raise SystemExit("%%s: a write went through" %% kind)
                assert mem.read(7) == b"payload"
                del view
                mem.detach()
        """ % (kinds,))

    def test_the_mapping_cannot_be_closed_behind_the_segment(self):
        # PyPy's mmap.close() unmaps under live views: refused for the segment's reservation.
        mem = self.new_shm(4096)
        owner = mem.buf.obj
        for call in (owner.close, lambda: owner.resize(8192), lambda: owner.__exit__(None, None, None)):
            with self.assertRaises(BufferError):
                call()
        self.assertTrue(mem.attached)
        mem.write(b"fine")
        self.assertEqual(mem.read(4), b"fine")

    def test_threads_and_signals_during_detach(self):
        # A second thread and a signal handler take views while the main thread attaches and
        # detaches (the ctypes calls release the GIL): each view is valid or refused, never a
        # view of a range being unmapped.
        self.run_safety("""
            import signal
            errors = (sysvshm.NotAttachedError, ValueError, BufferError)
            for kind in %r:
                mem = attach(kind)
                address = mem.address
                stop = []
                seen = []

                def use():
                    try:
                        view = mem.buf
                        seen.append(bytes(view[0:7]))
                        view.release()
                    except errors:
                        pass

                def spin():
                    while not stop:
                        use()
                thread = threading.Thread(target=spin)
                thread.start()
                signal.signal(signal.SIGALRM, lambda *a: use())
                signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
                try:
                    for _ in range(300):
                        try:
                            mem.detach()
                        except BufferError:
                            continue
                        mem.attach(address if kind == "explicit" else None)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    stop.append(1)
                    thread.join(30)
                assert not thread.is_alive()
                assert set(seen) <= {b"payload", bytes(7)}, set(seen)
                while True:
                    try:
                        mem.detach()
                        break
                    except BufferError:
                        gc.collect()
        """ % (self.kinds,), timeout=6 * DEADLINE)   # a spinning thread: slow GIL hand-offs

    def test_address_read_keeps_the_mapping_after_garbage_collection(self):
        # A C hook handed shm.address: dropping the object must not unmap under it (sysv_ipc
        # never detaches on collection; this module did, and the hook crashed).
        self.run_safety("""
            for kind in %r:
                mem = attach(kind)
                address, ident = mem.address, mem.id
                del mem
                for _ in range(3):
                    gc.collect()
                assert ctypes.string_at(address, 7) == b"payload"
                assert sysvshm._stat("shm", ident)["nattch"] == 1
            mem = attach("reserved")       # the address never read: collection detaches
            ident = mem.id
            del mem
            for _ in range(3):
                gc.collect()
            assert sysvshm._stat("shm", ident)["nattch"] == 0
        """ % (self.kinds,))

    def test_address_read_then_detach(self):
        mem = self.new_shm(4096)
        address = mem.address
        self.assertIsInstance(address, int)
        mem.detach()                  # an explicit detach still ends it
        self.assertEqual(sysvshm._stat("shm", mem.id)["nattch"], 0)
        self.assertEqual(sysvshm._PINNED, {})

    def test_hostile_index_cannot_detach_under_a_copy(self):
        # __index__ runs before the segment is touched: it may detach; the call then says so.
        self.run_safety("""
            class Evil(int):
                def __index__(self):
                    if mem.attached:
                        mem.detach()
                    return int(self)
            for kind in %r:
                calls = [lambda: mem.write(b"xy", Evil(1)), lambda: mem.read(2, Evil(1)),
                         lambda: mem.read(Evil(2)), lambda: mem.read_into(bytearray(2), Evil(1)),
                         lambda: mem.as_ctypes(None, Evil(1)),
                         lambda: mem.as_ctypes(ctypes.c_char * 2, Evil(1))]
                for call in calls:
                    mem = attach(kind)
                    address = mem.address
                    try:
                        call()
                    except sysvshm.NotAttachedError:
                        pass
                    else:
                        raise SystemExit("no NotAttachedError")
        """ % (self.kinds,))

    def test_pointers_anywhere_in_the_layout_are_refused(self):
        mem = self.new_shm(4096)

        class Base(ctypes.Structure):
            _fields_ = [("name", ctypes.c_char_p)]

        class Derived(Base):
            _fields_ = [("count", ctypes.c_int)]

        class Inner(ctypes.Union):
            _fields_ = [("n", ctypes.c_long), ("p", ctypes.POINTER(ctypes.c_int))]

        class Outer(ctypes.Structure):
            _fields_ = [("x", ctypes.c_int), ("inner", Inner * 2)]

        class Plain(ctypes.Structure):
            _fields_ = [("a", ctypes.c_int)]

        class PlainDerived(Plain):
            _fields_ = [("b", ctypes.c_double * 2)]
        for ctype in (Derived, Outer, Derived * 2, ctypes.c_wchar_p * 1):
            with self.assertRaises(TypeError) as caught:
                mem.as_ctypes(ctype)
            self.assertIn("pointers", str(caught.exception))
        self.assertEqual(mem.as_ctypes(PlainDerived).a, 0x20202020)   # init_character b" "

    def test_arguments_are_named_in_errors(self):
        mem = self.new_shm(4096)
        for call, words in ((lambda: mem.read("5"), "byte_count"),
                            (lambda: mem.read(5.0), "byte_count"),
                            (lambda: mem.read(4, None), "offset"),
                            (lambda: mem.write(123), "bytes"),
                            (lambda: mem.as_ctypes(int), "ctypes type"),
                            (lambda: mem.as_ctypes(ctypes.c_int(3)), "ctypes type")):
            with self.assertRaises(TypeError) as caught:
                call()
            self.assertIn(words, str(caught.exception))

    def test_integers_that_ctypes_would_wrap_are_refused(self):
        mem = self.new_shm(4096)
        address = mem.address
        mem.detach()
        for call in (lambda: mem.attach(2 ** 64 + address), lambda: mem.attach(-1),
                     lambda: sysvshm.SharedMemory(None, IPC_CREX, size=2 ** 64 + 4096),
                     lambda: sysvshm.SharedMemory(None, IPC_CREX, size=-1)):
            with self.assertRaises(OverflowError):
                call()
            with self.assertRaises(ValueError):
                call()
        self.assertFalse(mem.attached)

    def test_shm_rdonly_in_the_constructor_is_refused(self):
        # Its bit is SHM_NORESERVE to shmget(): it used to give a writable attach.
        mem = self.new_shm(4096)
        for flags in (sysvshm.SHM_RDONLY, IPC_CREAT | sysvshm.SHM_RDONLY,
                      sysvshm.SHM_RDONLY | IPC_CREAT):
            with self.assertRaises(ValueError) as caught:
                sysvshm.SharedMemory(mem.key, flags)
            self.assertIn("readonly=True", str(caught.exception))
        ro = sysvshm.SharedMemory(mem.key, readonly=True)
        self.assertTrue(ro.readonly and ro.buf.readonly)
        with self.assertRaises(PermissionError):
            ro.write(b"x")
        ro.detach()
        made = self.new_shm(4096, key=None, flags=IPC_CREX | sysvshm.SHM_NORESERVE,
                            readonly=True, init_character=b"z")
        self.assertEqual((made.readonly, made.read(2)), (True, b"zz"))
        with self.assertRaises(TypeError):
            sysvshm.SharedMemory(mem.key, readonly=1)

    @unittest.skipIf(os.environ.get("SYSVSHM_EMULATOR"), "huge pages under qemu-user")
    def test_unbacked_huge_pages_raise_instead_of_sigbus(self):
        code = ATTACH_PRELUDE + textwrap.dedent("""
            import os
            print(os.getpid())
            flags = sysvshm.IPC_CREX | sysvshm.SHM_HUGETLB | sysvshm.SHM_NORESERVE
            size = sysvshm._hugepage_size()
            try:
                mem = sysvshm.SharedMemory(None, flags, size=size)
            except sysvshm.Error as exc:
                print("refused", exc.errno, exc)
            else:
                print("created")          # huge pages were free: it is backed
                mem.remove()
            try:
                mem = sysvshm.SharedMemory(None, flags, size=size, init_character=None)
            except sysvshm.Error as exc:
                print("refused", exc.errno, exc)
            else:
                try:
                    mem.prefault()
                    print("prefaulted")
                except sysvshm.Error as exc:
                    print("prefault refused", exc.errno, exc)
                mem.remove()
            # Made by another program (raw shmget): opening it, by id, at an address of ours,
            # and reading, must never touch an unbacked page.
            libc = ctypes.CDLL(None, use_errno=True)
            ident = libc.shmget(0, ctypes.c_size_t(size), 0o1600 | flags & ~sysvshm.IPC_CREX)
            if ident >= 0:
                try:
                    for how in ("attach", "explicit"):
                        try:
                            if how == "attach":
                                mem = sysvshm.attach(ident)
                            else:
                                mem = sysvshm.attach(ident, free_address(4 * size))
                            mem.read(1)
                            mem.detach()
                            print(how, "backed")
                        except sysvshm.Error as exc:
                            print(how, "refused", exc.errno)
                finally:
                    sysvshm.remove_shared_memory(ident)
        """)
        result = self.run_python(code)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        lines = result.stdout.splitlines()
        pid = lines[0]
        if any("errno 1]" in line.lower() or line.startswith("refused 1 ") for line in lines):
            self.skipTest("SHM_HUGETLB not permitted here")
        with open("/proc/sysvipc/shm") as table:
            rows = [line.split() for line in table][1:]
        self.assertEqual([row for row in rows if row[6] == pid], [], "left behind")
        self.assertEqual(len(lines), 5, lines)



class TestArguments(Base):
    """Module-level calls and SharedMemory: what crosses into C is checked first, and what cannot
    be honoured is refused with a message that names it."""

    def test_ids_that_ctypes_would_wrap_never_reach_another_object(self):
        # remove_*(2**32 + id) used to destroy object `id`; attach(2**32 + id) attached `id`.
        mem = self.new_shm(4096)
        sem = self.new_sem()
        mq = sysvshm.MessageQueue(None, IPC_CREX)
        self.addCleanup(remove_quietly, sysvshm.remove_message_queue, mq.id)
        CREATED["msg"].add(mq.id)
        calls = ((sysvshm.remove_shared_memory, mem.id), (sysvshm.remove_semaphore, sem.id),
                 (sysvshm.remove_message_queue, mq.id), (sysvshm.attach, mem.id))
        for call, ident in calls:
            for wrapped in (2 ** 32 + ident, 2 ** 64 + ident, ident - 2 ** 32, -1):
                with self.assertRaises(OverflowError) as caught:
                    call(wrapped)
                self.assertIsInstance(caught.exception, ValueError)
                self.assertIn("id must be between 0 and 2147483647", str(caught.exception))
        # All three are still there and still attached where they were.
        self.assertEqual((mem.size, sem.value, mq.current_messages), (4096, 0, 0))
        self.assertTrue(mem.attached)

    def test_attach_with_a_key_says_an_id_is_expected(self):
        mem = self.new_shm(4096, key=random_key())
        other_ids = live_ids("shm")
        if mem.key in other_ids:
            self.skipTest("the key is also a live id")
        with self.assertRaises(sysvshm.ExistentialError) as caught:
            sysvshm.attach(mem.key)
        self.assertIn("takes an id", str(caught.exception))

    def test_ftok_refuses_ids_it_would_fold(self):
        key = sysvshm.ftok(HERE, 255, silence_warning=True)
        self.assertEqual(key, sysvshm.ftok(HERE, 255, True))
        self.assertNotEqual(sysvshm.ftok(HERE, 0, True), sysvshm.ftok(HERE, 1, True))
        for bad in (256, -1, 2 ** 32):   # C uses the low 8 bits: 256 would be 0
            with self.assertRaises(ValueError) as caught:
                sysvshm.ftok(HERE, bad, True)
            self.assertIn("0 and 255", str(caught.exception))
        with self.assertRaises(TypeError) as caught:
            sysvshm.ftok(HERE, "A", True)
        self.assertIn("ord('A')", str(caught.exception))

    def test_huge_page_size_bits_need_shm_hugetlb(self):
        # 0x10000000 is SHM_HUGE_* size bits: without SHM_HUGETLB the kernel ignores them.
        before = live_ids("shm")
        for bits in (0x10000000, 21 << 26):
            with self.assertRaises(ValueError) as caught:
                sysvshm.SharedMemory(None, IPC_CREX | bits, size=4096)
            self.assertIn("SHM_HUGETLB", str(caught.exception))
        self.assertEqual(live_ids("shm") - before, set())

    def test_layouts_that_lie_about_pointers(self):
        # _type_ / _fields_ changed after ctypes fixed the layout: segfaults before.
        out = self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent("""
            mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=4096, init_character=b"A")
            mem.remove()
            class Sub(ctypes.c_char_p):
                pass
            Sub._type_ = "B"
            Arr = ctypes.c_char_p * 4
            Arr._type_ = ctypes.c_int
            class Hidden(list):
                def __iter__(self):
                    return iter([])
            class Listed(ctypes.Structure):
                _fields_ = Hidden([("p", ctypes.c_char_p)])
            class Deleted(ctypes.Structure):
                _fields_ = [("p", ctypes.c_char_p)]
            del Deleted._fields_
            class Lying(ctypes.Structure):
                _fields_ = [("p", ctypes.c_char_p)]
                def __getattribute__(self, name):
                    return 0
            for ctype, read in ((Sub, lambda o: o.value), (Arr, lambda o: o[0]),
                                (Listed, lambda o: o.p), (Deleted, lambda o: o.p),
                                (Lying, lambda o: ctypes.Structure.__getattribute__(o, "p"))):
                try:
                    obj = mem.as_ctypes(ctype)
                except TypeError:
                    continue
                try:
                    read(obj)        # a pointer would be followed here
                except AttributeError:
                    pass             # PyPy builds Listed from what __iter__ gives: no field
                del obj
            print("ok")
        """))
        self.assertEqual(out, "ok\n")

    def test_address_zero_and_rounding_to_page_zero(self):
        mem = self.new_shm(4096, init_character=b"z")
        mem.detach()
        mem.attach(0)                     # shmat(id, NULL): the system's choice, as None
        self.assertTrue(mem.address)
        self.assertEqual(mem.read(1), b"z")
        for address in (1, sysvshm._SHMLBA - 1):
            with self.assertRaises(ValueError) as caught:
                mem.attach(address, sysvshm.SHM_RND)
            self.assertIn("rounds down", str(caught.exception))
        other = sysvshm.attach(mem.id, 0, sysvshm.SHM_RDONLY)   # every version: reserved path
        self.assertTrue(other.readonly)
        other.detach()
        mem.detach()                      # .address was read: only detach() ends the mapping

    def test_flags_and_keys_are_converted_once(self):
        class Flag(object):
            def __index__(self):
                return sysvshm.SHM_NORESERVE       # the same bit as SHM_RDONLY
        mem = self.new_shm(4096)
        for flags in (Flag(), IPC_CREAT ^ sysvshm.SHM_RDONLY):
            with self.assertRaises(ValueError) as caught:
                sysvshm.SharedMemory(mem.key, flags)
            self.assertIn("readonly=True", str(caught.exception))
        calls = []

        class Key(object):
            def __index__(self):
                calls.append(1)
                return mem.key + len(calls) - 1
        opened = sysvshm.SharedMemory(Key())
        self.assertEqual((opened.id, calls), (mem.id, [1]))
        self.assertIs(type(opened.key), int)
        self.assertEqual(repr(opened), repr(opened))
        opened.detach()
        mem.detach()

    def test_ftok_refuses_an_embedded_nul(self):
        for path in (HERE + "\0/elsewhere", os.fsencode(HERE) + b"\0z"):
            with self.assertRaises(ValueError):
                sysvshm.ftok(path, 1, True)

    def test_write_settles_its_source_before_touching_memory(self):
        mem = self.new_shm(4096, init_character=b"a")
        other = sysvshm.attach(mem.id)
        self.addCleanup(other.detach)

        class Payload(bytearray):
            def __len__(self):
                if mem.attached:
                    mem.detach()
                return bytearray.__len__(self)
        mem.write(Payload(b"HELLO"))      # __len__ is not called: a flat view of it is used
        self.assertEqual(other.read(5), b"HELLO")

    @unittest.skipIf(EMULATOR, "qemu-user does not apply the guest's RLIMIT_AS")
    def test_a_failed_open_with_ipc_creat_removes_what_it_created(self):
        # IPC_CREAT without IPC_EXCL made a segment, then attaching failed: it stayed behind.
        key = random_key()
        result = self.run_python("""
            import resource, sysvshm
            resource.setrlimit(resource.RLIMIT_AS, (1 << 31, resource.RLIM_INFINITY))
            try:
                sysvshm.SharedMemory(%d, sysvshm.IPC_CREAT, size=3 << 30)
            except sysvshm.Error as exc:
                print("refused", exc.errno)
        """ % key)
        self.assertEqual(result.stdout.split()[:1], ["refused"], result.stdout + result.stderr)
        with self.assertRaises(sysvshm.NotFoundError):
            sysvshm.SharedMemory(key)

    @unittest.skipUnless(CPYTHON and sys.version_info >= (3, 10),
                         "before 3.10 (and on PyPy) a signal's handler may run at any "
                         "instruction, also where no cleanup can follow (README)")
    def test_interrupted_constructors_leave_nothing(self):
        # A signal handler's exception anywhere inside the module while it creates a segment
        # must not leave the segment behind, key or no key: one timer per constructor, at a
        # random moment inside it.
        out = self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent("""
            import os, random, signal, sysvshm
            class Boom(Exception):
                pass
            def handler(signum, frame):
                if frame is not None and frame.f_code.co_filename == sysvshm.__file__:
                    raise Boom()
            signal.signal(signal.SIGALRM, handler)
            made = interrupted = 0
            for i in range(400):
                key = None if i % 2 else 0x5000000 + os.getpid() * 8 % 0x1000000 + i
                flags = sysvshm.IPC_CREX if key is None else sysvshm.IPC_CREAT
                signal.setitimer(signal.ITIMER_REAL, random.uniform(1e-6, 3e-4))
                try:
                    mem = sysvshm.SharedMemory(key, flags, size=1 << 20)
                except Boom:
                    interrupted += 1
                    continue
                signal.setitimer(signal.ITIMER_REAL, 0)
                made += 1
                mem.remove()
                mem.detach()
            signal.setitimer(signal.ITIMER_REAL, 0)
            print(os.getpid(), made, interrupted)
        """), timeout=120)
        pid, made, interrupted = out.split()[:3]
        with open("/proc/sysvipc/shm") as table:
            rows = [line.split() for line in table][1:]
        self.assertEqual([row for row in rows if row[4] == pid], [],
                         "left behind (%s made, %s interrupted)" % (made, interrupted))
        self.assertGreater(int(interrupted), 0)

    def test_two_threads_attaching_and_detaching_one_object(self):
        # PyPy reached "attached, address None", then mapped page 0 on detach().
        self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent("""
            import sys, threading
            if hasattr(sys, "setswitchinterval"):
                sys.setswitchinterval(1e-6)
            mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=8192)
            import atexit
            atexit.register(sysvshm.remove_shared_memory, mem.id)
            errors = []
            def loop(call):
                for _ in range(2000):
                    try:
                        call()
                    except (sysvshm.NotAttachedError, sysvshm.BusyError):
                        pass
                    except Exception as exc:
                        errors.append(exc)
            threads = [threading.Thread(target=loop, args=(call,))
                       for call in (mem.detach, mem.attach, mem.detach, mem.attach)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors, errors[:3]
            assert mem.attached == (mem._address is not None), (mem.attached, mem._address)
            maps = [line for line in open("/proc/self/maps") if "SYSV" in line]
            assert len(maps) <= 1, maps
            assert not any(line.startswith("00000000-") for line in open("/proc/self/maps"))
            if mem.attached:
                mem.detach()
            done()
        """), timeout=120)

    def test_hostile_ctypes_classes_cannot_reach_a_pointer(self):
        # A metaclass answering __eq__/__hash__/__mro__, a from_buffer of the class's own, a
        # huge type before the size check: each crashed or cost memory before.
        out = self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent("""
            mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=4096, init_character=b"A")
            mem.remove()
            class Meta(type(ctypes.Structure)):
                def __eq__(a, b):
                    return True
                def __hash__(a):
                    return 1
            class Safe(ctypes.Structure, metaclass=Meta):
                _fields_ = [("n", ctypes.c_size_t)]
            class Evil(ctypes.Structure, metaclass=Meta):
                _fields_ = [("p", ctypes.c_char_p)]
            class Own(ctypes.Structure):
                _fields_ = [("p", ctypes.c_char_p)]
                @classmethod
                def from_buffer(cls, source, offset=0):
                    return ctypes.c_int.from_buffer(source)
            refused = 0
            for ctype in (Safe, Evil, Own):
                try:
                    obj = mem.as_ctypes(ctype)
                    print(getattr(obj, "p", None))
                except TypeError:
                    refused += 1
            try:
                mem.as_ctypes(ctypes.c_uint8 * (sys.maxsize // 2))   # refused before any probe
            except ValueError:
                refused += 1
            assert refused == 4, refused
            T = ctypes.c_size_t * 2
            mem.as_ctypes(T)
            T._type_ = ctypes.c_char_p          # PyPy honours this later; CPython ignores it
            try:
                print(mem.as_ctypes(T)[0])
            except TypeError:
                pass
            done()
        """))
        self.assertTrue(out.endswith("ok\n"), out)

    def test_init_character_and_reinit_cannot_reach_the_mapping(self):
        # init_character's __getitem__ ran after memset's address was taken (segfault), and
        # __init__ again on an attached object described another segment.
        out = self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent("""
            class Byte(bytes):
                def __getitem__(self, index):
                    frame = sys._getframe(1)
                    frame.f_locals["self"].detach()
                    return 65
            mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=1 << 20,
                                       init_character=Byte(b"A"))
            segments.append(mem.id)
            assert mem.read(2) == b"AA"
            other = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=8192)
            segments.append(other.id)
            view = mem.buf
            try:
                mem.__init__(other.key)
            except TypeError:
                pass
            assert (mem.id, mem.size) == (segments[0], 1 << 20), (mem.id, mem.size)
            try:
                mem.buf.obj.madvise(mmap.MADV_DONTFORK)
                raise AssertionError("madvise allowed")
            except (BufferError, AttributeError):
                pass
            del view
            mem.detach()
            other.detach()
            done()
        """))
        self.assertTrue(out.endswith("ok\n"), out)

    @unittest.skipUnless(CPYTHON and sys.version_info >= (3, 10),
                         "before 3.10 (and on PyPy) a signal's handler may run at any "
                         "instruction, also where no cleanup can follow (README)")
    def test_interrupted_attach_and_detach_keep_the_object_usable(self):
        # A handler's exception right after the lock was taken wedged the object (BusyError
        # forever); one after shmat() left an attachment nobody owned.
        out = self.assertPythonOk(ATTACH_PRELUDE + textwrap.dedent("""
            import random, signal
            mem = attach("reserved")
            other = sysvshm.attach(mem.id)        # keeps the segment alive through detaches
            address = free_address(8192)
            class Boom(Exception):
                pass
            def handler(signum, frame):
                if frame is not None and frame.f_code.co_filename == sysvshm.__file__:
                    raise Boom()
            signal.signal(signal.SIGALRM, handler)
            interrupted = 0
            for i in range(3000):
                signal.setitimer(signal.ITIMER_REAL, random.uniform(1e-6, 1e-4))
                try:
                    if mem.attached:
                        mem.detach()
                    else:
                        mem.attach(address if i % 4 == 1 else None)
                except Boom:
                    interrupted += 1
                except sysvshm.Error as exc:
                    if exc.errno != 22:           # EINVAL: the address was taken meanwhile
                        raise
                signal.setitimer(signal.ITIMER_REAL, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_IGN)   # one may still be due
            if mem.attached:
                mem.detach()
            gc.collect()        # PyPy: reservations a handler's exception dropped
            gc.collect()
            assert not mem._busy and mem._lock.acquire(False)    # never left held
            mem._lock.release()
            assert other.number_attached == 1, other.number_attached
            mem.attach()
            assert mem.read(7) == b"payload"
            mem.detach()
            other.detach()
            print(interrupted)
            done()
        """), timeout=120)
        self.assertTrue(out.endswith("ok\n"), out)

    def test_copies_and_pickles_are_refused(self):
        import copy
        import pickle
        mem = self.new_shm(4096)
        for make in (copy.copy, copy.deepcopy, pickle.dumps, lambda m: m.__reduce__(),
                     lambda m: pickle.dumps(m, 2)):
            with self.assertRaises(TypeError) as caught:
                make(mem)
            self.assertIn("cannot be copied", str(caught.exception))

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
                             "The semaphore's value must remain between 0 and SEMVMX (32767), "
                             "not %d" % bad)
        with self.assertRaises(ValueError) as caught:     # above SEMVMX: ERANGE, as sysv_ipc
            sem.release()
        self.assertIsInstance(caught.exception, sysvshm.Error)
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
        sem.value = 2
        sem.acquire(float("inf"))                  # forever, as None
        sem.acquire(1e19)                          # longer than a C long of seconds
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
#define _GNU_SOURCE             /* semtimedop */
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
    if (argc != 5) return 2;
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


# The C programs below are built for the running interpreter's architecture: with SYSVSHM_CC
# (default cc) and run behind SYSVSHM_RUN_PREFIX (default nothing), which .ci/cross-arch sets to
# the target's cross compiler and its qemu-user binary.  A program from SYSVSHM_CC is linked
# -static: the host has no shared libc of the target's for it.
C_COMPILER = shlex.split(os.environ.get("SYSVSHM_CC") or "cc")
C_LINK = ["-static"] if os.environ.get("SYSVSHM_CC") else []
C_RUN_PREFIX = shlex.split(os.environ.get("SYSVSHM_RUN_PREFIX", ""))
# Every C program here (the interop programs, the layout probe) declares what it uses and builds
# without a warning with GCC 12 to 16 (Debian 12, 13 and sid, their cross compilers and musl-gcc).
C_WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def elf_ident(path):
    """(ELF class, byte order, e_machine) of an executable, or None."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] not in (1, 2):
        return None
    return header[4], header[5], struct.unpack_from("<H" if header[5] == 1 else ">H", header,
                                                      18)[0]


def build_c_program(folder, name, text, flags=()):
    """Compile `text` into folder/name for this interpreter's architecture (raises SkipTest
    where no such compiler is at hand), with extra compiler `flags`; returns the command line
    that runs it."""
    if not shutil.which(C_COMPILER[0]):
        raise unittest.SkipTest("no C compiler: %s not installed%s" % (
            C_COMPILER[0], " (SYSVSHM_CC)" if C_LINK else ""))
    source, program = os.path.join(folder, name + ".c"), os.path.join(folder, name)
    with open(source, "w") as f:
        f.write(text)
    proc = subprocess.run(C_COMPILER + C_LINK + C_WARNINGS + list(flags)
                          + ["-O2", "-DTIMEOUT=%d" % int(DEADLINE), "-o", program, source],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120 * SCALE)
    if proc.returncode != 0:
        if C_LINK:          # SYSVSHM_CC: a cross toolchain without its libc, for example
            raise unittest.SkipTest("SYSVSHM_CC=%s cannot build the C program: %s" % (
                os.environ["SYSVSHM_CC"], proc.stdout.strip()[-300:]))
        raise AssertionError("%s failed:\n%s" % (" ".join(C_COMPILER), proc.stdout))
    ours, theirs = elf_ident("/proc/self/exe"), elf_ident(program)
    if ours != theirs:
        raise unittest.SkipTest("%s builds (ELF class, data, machine) %s, this interpreter is %s: "
                                "set SYSVSHM_CC to a compiler for it" % (" ".join(C_COMPILER),
                                                                          theirs, ours))
    return C_RUN_PREFIX + [program]


class Shared(ctypes.Structure):
    _fields_ = [("status", ctypes.c_uint32), ("magic", ctypes.c_uint32),
                ("length", ctypes.c_uint64)]


def pattern(length):
    unit = bytes((i * 7 + 3) & 0xFF for i in range(256))
    return (unit * (length // 256 + 1))[:length]


class WithCProgram(object):
    """A TestCase mixin: setUpClass builds the class's C program (C_NAME from C_SOURCE)."""

    C_NAME = C_SOURCE = ""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        try:
            cls.program = build_c_program(cls.tmp, cls.C_NAME, cls.C_SOURCE)
        except BaseException:
            shutil.rmtree(cls.tmp)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)


class TestInteropWithC(WithCProgram, Base):
    SIZE = 16 * 1024 * 1024 + 24
    C_NAME, C_SOURCE = "program_a", C_PROGRAM

    def test_c_creates_python_attaches(self):
        key, semkey = random_key(), random_key()
        proc = subprocess.Popen(self.program + ["create", str(key), str(semkey), str(self.SIZE)],
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
        proc = subprocess.Popen(self.program + ["attach", str(mem.key), str(semset.key),
                                                str(self.SIZE)],
                                stdout=subprocess.PIPE, universal_newlines=True)
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


# --- Every code block of README.md and docs/*.md runs ------------------------------------------
# A block is preceded (on the line before its fence) by a directive, or takes its language's
# default:
#   python   run in a fresh interpreter inside a private IPC namespace (`run`, the default);
#            `peer=examples/X.c|X.py` starts that program first (C compiled here) and waits for
#            its first line; `file=PATH` says the block is that file, word for word.  A ```text
#            block right after it (no directive) is the expected output: with a peer, the peer's
#            first line, then the block's output, then the rest of the peer's.  Where
#            interpreters differ, one such block per `on=cpython` / `on=pypy`.
#   console  `$ ` lines run in order, each file's transcripts in one private IPC namespace;
#            what follows a command is its output (stdout and stderr), `[exit status N]` when
#            not 0.  Times are compared as <time>, `...` in an expected line matches anything.
#            The PID namespace makes pids the same on every run, except under qemu-user, whose
#            threads take pids too: there, outputs that show pids are compared without numbers.
#   c        `excerpt=PATH`: the block is a part of that file (which the peers compile).
#   any      `not-run=NAME`: not run; NAME must be in NOT_RUN below, with the reason.
# A block must leave no IPC object behind.
DOC_NOT_RUN = {
    "pip-install": "installs from the network; TestInstall builds the wheel and installs it "
                   "into a throwaway venv, then runs `sysvshm ls` and `python -m sysvshm ls`",
    "peer-of-next-block": "runs as the peer of the block after it (its file= check still holds)",
    "demo-timings": "its timings and random keys differ on every run; TestDemo runs the demo "
                    "and checks what it prints, and these tests are the second command",
    "benchmark-output": "a benchmark's figures differ on every run (and a full run takes ~45 s); "
                        "TestBenchmarkScript runs --quick and checks the table's rows",
    "needs-sysv-ipc": "needs the sysv_ipc sdist from the network; TestSysvIpcSuite does this",
    "illustration": "not a program: a layout or a format shown for reading",
    "the-suite": "it is the test run itself",
    "host-limits": "prints the host kernel's settings, which differ between machines; LimitsTest "
                   "compares `limits` with `ipcs -l` and lsipc",
}
_DIRECTIVE = re.compile(r"^<!--\s*test:(.*?)-->\s*$")
_TIMES = [re.compile(p) for p in (
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}",
    r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d",
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z)")]


def doc_blocks(path):
    """The fenced blocks of a Markdown file: dicts of line, lang, text, directive."""
    with open(path) as f:
        blocks, lines = [], f.read().split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start, j = i, i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        before = [x for x in lines[:start] if x.strip()]
        directive = {}
        match = _DIRECTIVE.match(before[-1]) if before else None
        if match:
            for word in match.group(1).split():
                name, _, value = word.partition("=")
                directive[name] = value
        blocks.append({"line": start + 1, "lang": fence.group(1), "directive": directive,
                       "text": "\n".join(lines[start + 1:j]) + "\n"})
        i = j + 1
    return blocks


def normalised(text):
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    text = "\n".join(lines)
    for pattern in _TIMES:
        text = pattern.sub("<time>", text)
    return text


def output_matches(expected, actual):
    expected, actual = normalised(expected), normalised(actual)
    if "..." not in expected:
        return expected == actual
    pattern = "\n".join(".*?".join(re.escape(part) for part in line.split("..."))
                        for line in expected.split("\n"))
    return re.match(pattern + r"\Z", actual) is not None


def _private_ipc_namespace():
    """In a forked child: a private IPC namespace (as root; else inside a new user namespace).
    None, or why not."""
    if _libc.unshare(CLONE_NEWIPC) == 0:
        return None
    if _libc.unshare(CLONE_NEWIPC | 0x10000000) == 0:     # CLONE_NEWUSER
        return None
    return "cannot unshare the IPC namespace: %s" % os.strerror(ctypes.get_errno())


def _doc_env():
    return dict(os.environ, PYTHONPATH=HERE, COLUMNS="80", PYTHONDONTWRITEBYTECODE="1")


def _objects_left():
    return {kind: sorted(live_ids(kind)) for kind in ("shm", "sem", "msg") if live_ids(kind)}


def _run_python_block(text, peer):
    """In a forked child: the block (and its peer) in a private IPC namespace."""
    return _run_with_peer([sys.executable, "-c", text], peer)


def _run_with_peer(argv, peer):
    """In a forked child: argv (after its peer, if any) in a private IPC namespace."""
    why = _private_ipc_namespace()
    if why:
        return {"skip": why}
    env, proc = _doc_env(), None
    first = ""
    if peer:
        proc = subprocess.Popen(peer, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=HERE, env=env, universal_newlines=True)
        try:
            first = read_line(proc.stdout.fileno())
        except AssertionError as exc:
            proc.kill()
            out, err = proc.communicate()
            return {"error": "the peer %s printed no first line (%s): %s%s"
                             % (peer, exc, out, err)}
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=HERE, env=env,
                              universal_newlines=True, timeout=DEADLINE * 3)
    finally:
        peer_out = peer_err = ""
        status = None
        if proc is not None:
            try:
                peer_out, peer_err = proc.communicate(timeout=DEADLINE * 3)
            except subprocess.TimeoutExpired:
                proc.kill()
                peer_out, peer_err = proc.communicate()
            status = proc.returncode
    return {"status": done.returncode, "stderr": done.stderr, "peer_status": status,
            "peer_stderr": peer_err, "output": first + done.stdout + peer_out,
            "left": _objects_left()}


def _command(line):
    argv = shlex.split(line, comments=True)
    if argv and argv[0] == "python3":
        argv[0] = sys.executable
    return argv


def _run_transcripts(commands):
    """In a forked child: each command in one private IPC and PID namespace, so that ids and
    pids are the same on every run (the runner is pid 1, the n-th command pid n + 1);
    (status, output) of each."""
    if _libc.unshare(CLONE_NEWIPC | CLONE_NEWPID) != 0:
        return {"skip": "cannot unshare the IPC and PID namespaces: %s"
                        % os.strerror(ctypes.get_errno())}

    def runner():
        results = []
        for line in commands:
            done = subprocess.run(_command(line), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, cwd=HERE, env=_doc_env(),
                                  universal_newlines=True, timeout=DEADLINE * 3)
            results.append([done.returncode, done.stdout])
        return {"results": results, "left": _objects_left(), "pid": os.getpid()}
    result = in_child(runner, timeout=DEADLINE * 10)       # pid 1 of the new namespace
    if result["pid"] != 1:
        return {"error": "the transcript runner is pid %d, not 1" % result["pid"]}
    return result


class TestDocs(Base):
    """Every code block of README.md and docs/*.md is run, compared or checked (see above)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.built, cls.not_built = {}, {}
        for name in sorted(os.listdir(os.path.join(HERE, "examples"))):
            if name.endswith(".c"):
                with open(os.path.join(HERE, "examples", name)) as f:
                    source = f.read()
                try:
                    cls.built["examples/" + name] = build_c_program(
                        cls.tmp, name[:-2], source, ["-I", os.path.join(HERE, "examples")])
                except unittest.SkipTest as exc:
                    cls.not_built["examples/" + name] = str(exc)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def read(self, path):
        with open(os.path.join(HERE, path)) as f:
            return f.read()

    def peer_command(self, path):
        if path.endswith(".py"):
            return [sys.executable, os.path.join(HERE, path)]
        if path in self.not_built:
            self.skipTest("%s: %s" % (path, self.not_built[path]))
        self.assertIn(path, self.built, "no such example to run as a peer")
        return self.built[path]

    def check_document(self, path):
        blocks = doc_blocks(os.path.join(HERE, path))
        transcripts = []          # (block, [(command, expected output)])
        previous = None           # the last python block that ran: its result
        for block in blocks:
            where, directive, lang = "%s:%d" % (path, block["line"]), block["directive"], block["lang"]
            with self.subTest(block=where):
                if "file" in directive:
                    self.assertEqual(block["text"], self.read(directive["file"]),
                                     "%s is not %s word for word" % (where, directive["file"]))
                if "excerpt" in directive:
                    self.assertIn(block["text"], self.read(directive["excerpt"]),
                                  "%s is not a part of %s" % (where, directive["excerpt"]))
                if "not-run" in directive:
                    self.assertIn(directive["not-run"], DOC_NOT_RUN,
                                  "%s: not-run=%s has no reason in DOC_NOT_RUN"
                                  % (where, directive["not-run"]))
                    previous = None
                    continue
                if lang == "text" and set(directive) <= {"on"}:
                    self.assertIsNotNone(previous, "%s: an output block after no block that "
                                         "ran (mark it not-run=NAME)" % where)
                    on = directive.get("on", sys.implementation.name)
                    self.assertIn(on, ("cpython", "pypy"), where)
                    if on == sys.implementation.name:
                        self.assertTrue(output_matches(block["text"], previous),
                                        "%s: the output differs.\nexpected:\n%s\nactual:\n%s"
                                        % (where, block["text"], previous))
                    if "on" not in directive:
                        previous = None
                elif lang == "python":
                    previous = self.run_python(where, block, directive)
                elif lang == "console":
                    commands, expected = [], None
                    for line in block["text"].rstrip("\n").split("\n"):
                        if line.startswith("$ "):
                            commands.append([line[2:], ""])
                        else:
                            self.assertTrue(commands, "%s: output before any $ command" % where)
                            commands[-1][1] += line + "\n"
                    transcripts.append((where, commands))
                    previous = expected
                else:
                    self.assertTrue("file" in directive or "excerpt" in directive,
                                    "%s: a %r block that is neither run nor checked against a "
                                    "file (mark it not-run=NAME)" % (where, lang))
                    previous = None
        if transcripts:
            with self.subTest(transcripts=path):
                self.run_transcripts(path, transcripts)

    def run_python(self, where, block, directive):
        peer = self.peer_command(directive["peer"]) if "peer" in directive else None
        result = in_child(lambda: _run_python_block(block["text"], peer),
                          timeout=DEADLINE * 10)
        if "skip" in result:
            self.skipTest(result["skip"])
        self.assertNotIn("error", result, "%s: %s" % (where, result.get("error")))
        self.assertEqual(result["status"], 0, "%s failed:\n%s%s"
                         % (where, result["output"], result["stderr"]))
        if peer:
            self.assertEqual(result["peer_status"], 0, "%s: its peer %s failed:\n%s"
                             % (where, directive["peer"], result["peer_stderr"]))
        self.assertEqual(result["left"], {}, "%s leaves IPC objects behind" % where)
        return result["output"]

    def run_transcripts(self, path, transcripts):
        if not ROOT:
            self.skipTest("the transcripts show root's objects: run as root")
        commands = [command for _, block in transcripts for command, _ in block]
        result = in_child(lambda: _run_transcripts(commands), timeout=DEADLINE * 12)
        if "skip" in result:
            self.skipTest(result["skip"])
        self.assertNotIn("error", result, result.get("error"))
        outputs = iter(result["results"])
        for where, block in transcripts:
            for command, expected in block:
                status, output = next(outputs)
                if status:
                    output += "[exit status %d]\n" % status
                if EMULATOR and "pid" in expected:
                    # qemu-user's own threads take pids too: the numbers differ, not the form.
                    expected, output = (re.sub(r"[ \t]+", " ", re.sub(r"\d+", "N", text))
                                        for text in (expected, output))
                self.assertTrue(output_matches(expected, output),
                                "%s: $ %s\nexpected:\n%s\nactual:\n%s"
                                % (where, command, expected, output))
        self.assertEqual(result["left"], {}, "the transcripts of %s leave IPC objects behind"
                         % path)

    def test_readme(self):
        self.check_document("README.md")

    def test_docs(self):
        pages = sorted(name for name in os.listdir(os.path.join(HERE, "docs"))
                       if name.endswith(".md"))
        self.assertTrue(pages)
        for name in pages:
            self.check_document("docs/" + name)

    def test_links_resolve(self):
        """Every relative link of the documents names a file that exists, and an anchor that
        is one of that file's headings (GitHub's slugs)."""
        def anchors(path):
            with open(path) as f:
                text = re.sub(r"^```.*?^```", "", f.read(), flags=re.M | re.S)
            return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
                    for title in re.findall(r"^#+ (.*)$", text, re.M)}
        pages = ["README.md"] + ["docs/" + name for name in
                                 sorted(os.listdir(os.path.join(HERE, "docs")))
                                 if name.endswith(".md")]
        for page in pages:
            with open(os.path.join(HERE, page)) as f:
                text = re.sub(r"^```.*?^```", "", f.read(), flags=re.M | re.S)
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"\w+:", target):
                    continue
                with self.subTest(page=page, link=target):
                    name, _, anchor = target.partition("#")
                    path = os.path.normpath(os.path.join(HERE, os.path.dirname(page),
                                                         name or os.path.basename(page)))
                    self.assertTrue(os.path.exists(path), "%s: %s does not exist" % (page, name))
                    if anchor:
                        self.assertIn(anchor, anchors(path), "%s: no heading #%s in %s"
                                      % (page, anchor, name or page))

    def test_c_examples_build_without_warnings(self):
        if not shutil.which(C_COMPILER[0]) or C_LINK:
            self.skipTest("no native C compiler (cc)")
        for name in sorted(os.listdir(os.path.join(HERE, "examples"))):
            if name.endswith(".c"):
                with self.subTest(example=name):
                    done = subprocess.run(
                        C_COMPILER + ["-std=c99", "-Wall", "-Wextra", "-Werror", "-o",
                                      os.path.join(self.tmp, "warnings-" + name[:-2]),
                                      os.path.join(HERE, "examples", name)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        universal_newlines=True, timeout=120 * SCALE)
                    self.assertEqual(done.returncode, 0, done.stdout)

    def test_directive_checks_fail(self):
        """The checks above can fail: a wrong output, a broken block, a stale excerpt."""
        self.assertFalse(output_matches("True b'x'\n", "True b'y'\n"))
        self.assertTrue(output_matches("lpid=... at <time>\n", "lpid=77 at <time>\n"))
        self.assertTrue(output_matches("at Fri Nov 27 12:43:19 2026  \n\n",
                                       "at Mon Dec  4 09:01:02 2026\n"))
        self.assertFalse(output_matches("a\n...\n", "a\nb\nc\n"))   # ... stays within a line
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        with open(os.path.join(folder, "page.md"), "w") as f:
            f.write("x\n<!-- test: excerpt=a.c -->\n```c\nint x;\n```\n\n```python\nprint(1)\n"
                    "```\nprints\n```text\n2\n```\n")
        blocks = doc_blocks(os.path.join(folder, "page.md"))
        self.assertEqual([(b["line"], b["lang"], b["directive"], b["text"]) for b in blocks],
                         [(3, "c", {"excerpt": "a.c"}, "int x;\n"), (7, "python", {}, "print(1)\n"),
                          (11, "text", {}, "2\n")])
        result = in_child(lambda: _run_python_block("import sysvshm\nprint(1)\n"
                                                    "sysvshm.MessageQueue(None, sysvshm.IPC_CREX)\n"
                                                    "raise SystemExit(3)\n", None))
        if "skip" in result:
            self.skipTest(result["skip"])
        self.assertEqual((result["status"], result["output"], list(result["left"])),
                         (3, "1\n", ["msg"]))


class TestExamples(Base):
    """Each program A of the README's first example (C, Python) with each program B (Python,
    Go): they agree on the struct, the lock and the key, and print what the README shows."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.programs, cls.missing = {}, {}
        examples = os.path.join(HERE, "examples")
        with open(os.path.join(examples, "counter.c")) as f:
            source = f.read()
        try:
            cls.programs["counter.c"] = build_c_program(cls.tmp, "counter", source)
        except unittest.SkipTest as exc:
            cls.missing["counter.c"] = str(exc)
        cls.programs["counter_a.py"] = [sys.executable, os.path.join(examples, "counter_a.py")]
        cls.programs["counter_b.py"] = [sys.executable, os.path.join(examples, "counter_b.py")]
        go = shutil.which("go")
        if C_LINK or EMULATOR:
            cls.missing["counter_b.go"] = "cross-architecture run: the Go pairing runs natively"
        elif not go or not os.path.isdir("/usr/share/gocode/src/golang.org/x/sys/unix"):
            cls.missing["counter_b.go"] = ("needs go and golang.org/x/sys/unix (Debian: golang-go "
                                           "golang-golang-x-sys-dev)")
        else:
            program = os.path.join(cls.tmp, "counter_b")
            env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off",
                       GOCACHE=os.path.join(tempfile.gettempdir(), "sysvshm-go-cache"))
            done = subprocess.run([go, "build", "-o", program,
                                   os.path.join(examples, "counter_b.go")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cls.tmp,
                                  universal_newlines=True, env=env, timeout=600 * SCALE)
            if done.returncode:
                shutil.rmtree(cls.tmp)
                raise AssertionError("go build examples/counter_b.go:\n" + done.stdout)
            cls.programs["counter_b.go"] = [program]
        blocks = doc_blocks(os.path.join(HERE, "README.md"))
        shown = [i for i, b in enumerate(blocks)
                 if b["directive"].get("file") == "examples/counter_b.py"]
        cls.expected = blocks[shown[0] + 1]["text"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def pair(self, a, b):
        for name in (a, b):
            if name in self.missing:
                self.skipTest("%s: %s" % (name, self.missing[name]))
        result = in_child(lambda: _run_with_peer(self.programs[b], self.programs[a]),
                          timeout=DEADLINE * 10)
        if "skip" in result:
            self.skipTest(result["skip"])
        self.assertNotIn("error", result, result.get("error"))
        self.assertEqual((result["status"], result["peer_status"]), (0, 0),
                         "%s with %s:\n%s%s%s" % (a, b, result["output"], result["stderr"],
                                                  result["peer_stderr"]))
        self.assertEqual(result["output"], self.expected)
        self.assertEqual(result["left"], {}, "objects left behind")

    def test_c_a_python_b(self):
        self.pair("counter.c", "counter_b.py")

    def test_c_a_go_b(self):
        self.pair("counter.c", "counter_b.go")

    def test_python_a_python_b(self):
        self.pair("counter_a.py", "counter_b.py")

    def test_python_a_go_b(self):
        self.pair("counter_a.py", "counter_b.go")


class TestInstall(unittest.TestCase):
    """`pip install` of the checkout into a throwaway venv gives the `sysvshm` command and
    `python -m sysvshm`, from any directory (pyproject.toml; the build backend comes from the
    package index, so this skips without one)."""

    NETWORK = ("Could not find a version", "No matching distribution", "Failed to establish",
               "Temporary failure in name resolution", "Network is unreachable",
               "ConnectionError", "ReadTimeoutError", "Max retries exceeded")

    def pip(self, python, *args):
        done = subprocess.run([python, "-m", "pip", "--disable-pip-version-check"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=600 * SCALE, env=self.env)
        if done.returncode and any(text in done.stdout for text in self.NETWORK):
            self.skipTest("the package index cannot be reached: %s" % done.stdout[-300:])
        self.assertEqual(done.returncode, 0, done.stdout[-3000:])
        return done.stdout

    def test_pip_install_gives_the_command(self):
        self.env = dict((k, v) for k, v in os.environ.items()
                        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"))
        folder = tempfile.mkdtemp(prefix="sysvshm-venv-")
        self.addCleanup(shutil.rmtree, folder)
        venv = os.path.join(folder, "venv")
        made = subprocess.run([sys.executable, "-m", "venv", venv], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=300 * SCALE, env=self.env)
        if made.returncode:
            self.skipTest("no venv with pip here: %s" % made.stdout[-300:])
        python = os.path.join(venv, "bin", "python")
        version = re.search(r"pip (\d+)", self.pip(python, "--version"))
        if int(version.group(1)) < 19:          # Python 3.6's bundled pip 18 has no PEP 517
            self.pip(python, "install", "-q", "pip>=19,<22")
        # A copy of the checkout's files (pip must not write into the checkout).
        source = os.path.join(folder, "src")
        os.mkdir(source)
        for name in ("pyproject.toml", "sysvshm.py", "README.md", "LICENSE"):
            shutil.copy(os.path.join(HERE, name), source)
        self.pip(python, "install", "-q", source)
        elsewhere = os.path.join(folder, "elsewhere")
        os.mkdir(elsewhere)
        for argv in ([os.path.join(venv, "bin", "sysvshm"), "--version"],
                     [python, "-m", "sysvshm", "--version"],
                     [os.path.join(venv, "bin", "sysvshm"), "ls", "-m"],
                     [python, "-m", "sysvshm", "ls", "-q"],
                     [python, "-c", "import sysvshm; print(sysvshm.__file__)"]):
            with self.subTest(argv=argv[1:]):
                done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      universal_newlines=True, cwd=elsewhere, env=self.env,
                                      timeout=60 * SCALE)
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
                if "--version" in argv:
                    self.assertIn(sysvshm.__version__, done.stdout + done.stderr)
                elif "ls" in argv:
                    self.assertIn("------ ", done.stdout)
                else:
                    self.assertTrue(done.stdout.startswith(venv), done.stdout)


# --- Command line (python3 -m sysvshm ls|info|rm|mk|limits|summary|dump) ---------------------
# Tests of sysvshm's command line (python3 -m sysvshm ls|info|rm|mk|limits|summary|dump).
#
# Every command is compared with the util-linux tool it mirrors (ipcs, ipcrm, ipcmk, lsipc, xxd;
# each comparison is skipped where that tool is not installed):
# - in the shared IPC namespace, only on the objects a test created (other processes' objects
#   come and go concurrently), field by field and line by line, from both sources (/proc/sysvipc
#   and the SHM_INFO/SHM_STAT... fallback);
# - as root, whole outputs byte for byte inside a private IPC namespace (unshare(CLONE_NEWIPC) in
#   a forked child), where nothing but the test's objects exists - and `rm --all` can be tried.
# Every object is removed by a cleanup registered on the line after its creation; a module
# teardown checks that none of the ids this run created still exists.
#
# Not tested: `demo` (test_sysvshm.py runs it); the IPC_INFO/*_STAT fallbacks on a kernel without
# /proc/sysvipc or *_STAT_ANY (forced here by pointing the paths elsewhere and by a bogus first
# command, which the kernel refuses with EINVAL as an old kernel refuses *_STAT_ANY).

PAGE = sysvshm.PAGE_SIZE
ROOT = os.geteuid() == 0
NOBODY = 65534
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MSG_STAT_ANY = 13

_libc = ctypes.CDLL(None, use_errno=True)
_libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]



def have(tool):
    return shutil.which(tool) is not None


def needs(*tools):
    missing = [tool for tool in tools if not have(tool)]
    return unittest.skipIf(missing, "not installed: %s" % ", ".join(missing))


def exists(kind, ident):
    """IPC_STAT by id: does the object still exist? (as root nothing is unreadable)"""
    try:
        sysvshm._stat(kind, ident)
    except sysvshm.RemovedError:
        return False
    except sysvshm.PermissionsError:
        return True
    return True




def cli(*argv, **patches):
    """main(argv) in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        for name, value in patches.items():
            stack.enter_context(mock.patch.object(sysvshm, name, value))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        status = sysvshm.main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


FALLBACK = {"_cli_sysvipc": "/nonexistent/sysvipc", "_cli_sysctl": "/nonexistent/sysctl"}
if QEMU_MSG_PIDS_WRONG:
    # The fallback decodes msqid_ds as the emulator wrote it: there, the two pids are 8-byte
    # longs at lspid's offset (see QEMU_MSG_PIDS_WRONG), so read them there and compare them
    # with util-linux's like every other field.
    _msg_size, _msg_fields = sysvshm._LAYOUT["msg"]
    _lspid = _msg_fields["lspid"][0]
    FALLBACK["_LAYOUT"] = dict(sysvshm._LAYOUT, msg=(_msg_size, dict(
        _msg_fields, lspid=(_lspid, "q"), lrpid=(_lspid + 8, "q"))))
SOURCES = (("proc", {}), ("fallback", FALLBACK),
           # *_STAT_ANY refused (as by Linux < 4.17): the loop must go on with *_STAT.
           ("fallback-stat", dict(FALLBACK, _CLI_STAT={"shm": (999, 13), "sem": (999, 18),
                                                       "msg": (999, 11)})))


def shm_limits_through_ipc_info(limits):
    """The kernel's shm limits (shmmax, shmall, shmmni) as IPC_INFO tells them to this process.

    A 64-bit process gets the kernel's words.  A 32-bit one on a 64-bit kernel gets the
    kernel's compat_shminfo64: shmmax clamped to INT_MAX, shmall cut to 32 bits (seen on i386:
    IPC_INFO writes ffffff7f 01000000 00100000 00100000 fffffffe and 16 zero bytes).  Under
    qemu-user its struct target_shminfo of five 32-bit words gets both cut to 32 bits (seen on
    armhf: fffffffe 01000000 00100000 00100000 fffffffe).  On a 32-bit kernel they fit."""
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        return dict(limits)
    cut = dict(limits, shmmax=limits["shmmax"] & 0xFFFFFFFF, shmall=limits["shmall"] & 0xFFFFFFFF)
    if EMULATOR:
        return cut
    machine = os.uname().machine
    if "64" in machine or machine == "s390x":
        return dict(cut, shmmax=min(limits["shmmax"], 2 ** 31 - 1))
    return dict(limits)


def ipc_info_sysctl():
    """A copy of /proc/sys/kernel's IPC limits with the shm ones as IPC_INFO tells them to this
    process (a folder to point _cli_sysctl at), or None where IPC_INFO tells them unchanged.
    ls/limits from the IPC_INFO fallback must then print what they print from that folder."""
    names = ("shmmax", "shmall", "shmmni", "sem", "msgmni", "msgmnb", "msgmax")
    values = {}
    for name in names:
        with open("/proc/sys/kernel/" + name) as f:
            values[name] = f.read()
    real = dict((name, int(values[name])) for name in ("shmmax", "shmall", "shmmni"))
    seen = shm_limits_through_ipc_info(real)
    if seen == real:
        return None
    directory = tempfile.mkdtemp(prefix="sysvshm-sysctl-")
    for name in names:
        with open(os.path.join(directory, name), "w") as f:
            f.write("%d\n" % seen[name] if name in seen else values[name])
    return directory


def run(argv, user=None):
    """A program: (exit status, stdout, stderr); user=NOBODY runs it as nobody."""
    def drop():
        os.setgroups([])
        os.setgid(user)
        os.setuid(user)
    proc = subprocess.Popen([str(arg) for arg in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, cwd=HERE,
                            preexec_fn=drop if user is not None else None)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


# `limits --json` prints util-linux 2.38's `lsipc -g` rows word for word, whatever util-linux is
# installed (one fixed text, like the rest of the command line).  Later lsipc versions say
# "System V" in the three queue descriptions and add rows for POSIX message queues (MQUMNI,
# MQUMAX, MQUMNB: not System V, no counterpart here).  The comparisons map the wordings of the
# versions checked here back to 2.38's and compare descriptions for those versions only;
# resources, limits and use are compared whatever the version, so a newer util-linux cannot fail
# a test by rewording a description.
LSIPC_CHECKED = {(2, 38), (2, 41), (2, 42)}
LSIPC_238_WORDING = {
    "Number of System V message queues": "Number of message queues",
    "Max size of System V message (bytes)": "Max size of message (bytes)",
    "Default max size of System V queue (bytes)": "Default max size of queue (bytes)",
}


def lsipc_limits():
    """`lsipc -g --json -b`'s System V rows, descriptions in 2.38's words (None where this
    lsipc's version was not checked)."""
    version = re.search(r"(\d+)\.(\d+)", run(["lsipc", "--version"])[1])
    checked = version is not None and tuple(map(int, version.groups())) in LSIPC_CHECKED
    rows = json.loads(run(["lsipc", "-g", "--json", "-b"])[1])["ipclimits"]
    return [dict(row, description=LSIPC_238_WORDING.get(row["description"], row["description"])
                 if checked else None)
            for row in rows if row["resource"][:3] in ("MSG", "SHM", "SEM")]


def as_tool(status_out_err, tool):
    """Our stderr with the tool's prefix ("sysvshm rm: " -> "ipcrm: ")."""
    status, out, err = status_out_err
    return status, out, re.sub(r"^sysvshm \w+: ", tool + ": ", err, flags=re.M)


def in_child(func, unshare_ipc=False, user=None, timeout=120):
    """func() in a forked child (in a new IPC namespace, or as `user`): its JSON-able result.

    The child always leaves through os._exit; the parent reads with a deadline and kills the
    child if it overstays."""
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            try:
                if unshare_ipc and _libc.unshare(CLONE_NEWIPC) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWIPC)")
                if user is not None:
                    os.setgroups([])
                    os.setgid(user)
                    os.setuid(user)
                payload = json.dumps({"result": func()})
                code = 0
            except BaseException:
                payload = json.dumps({"error": traceback.format_exc()})
            data = payload.encode()
            while data:
                data = data[os.write(wfd, data):]
        finally:
            os._exit(code)
    os.close(wfd)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError("child %d timed out" % pid)
            ready, _, _ = select.select([rfd], [], [], remaining)
            if ready:
                chunk = os.read(rfd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(rfd)
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline + 5:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
    answer = json.loads(b"".join(chunks).decode() or '{"error": "child sent nothing"}')
    if "error" in answer:
        raise AssertionError("in the child:\n" + answer["error"])
    return answer["result"]


def root_namespace(test):
    """Decorator: needs root (to unshare the IPC namespace)."""
    return unittest.skipUnless(ROOT, "needs root for a private IPC namespace")(test)


# -- objects ---------------------------------------------------------------------------------------
def reap(pid, timeout=30):
    """waitpid with a deadline (the child is killed past it); its exit status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def hold(*mems):
    """Keep the segments attached in an idle child and detach them here: (its pid, the pipe
    end whose closing lets it go).  A fork of a process with segments attached changes their
    lpid and times (subprocess forks on 3.6 and PyPy), which would move them between ours and
    util-linux's snapshot."""
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(wfd)
            select.select([rfd], [], [], 300)
        finally:
            os._exit(0)
    os.close(rfd)
    for mem in mems:
        mem.detach()
    return pid, wfd


def release(pid, wfd):
    os.close(wfd)
    return reap(pid)




def msg_send(msqid, mtype, text):
    buf = ctypes.create_string_buffer(struct.pack("l", mtype) + text)
    if _libc.msgsnd(msqid, buf, len(text), sysvshm.IPC_NOWAIT) != 0:
        raise OSError(ctypes.get_errno(), "msgsnd")


class Objects(object):
    """Creation helpers for TestCase subclasses: each registers its cleanup at once."""

    def make_shm(self, size, mode=0o600, key=None, attached=False):
        while True:
            try:
                mem = sysvshm.SharedMemory(random_key(high=True) if key is None else key,
                                           sysvshm.IPC_CREX, mode, size, init_character=None)
                break
            except sysvshm.ExistsError:
                if key is not None:
                    raise
        self.addCleanup(self.drop_shm, mem)
        CREATED["shm"].add(mem.id)
        if not attached:
            mem.detach()
        return mem

    def hold(self, *mems):
        self.addCleanup(release, *hold(*mems))

    @staticmethod
    def drop_shm(mem):
        if mem.attached:
            mem.detach()
        try:
            mem.remove()
        except sysvshm.RemovedError:
            pass

    def make_sem(self, nsems, mode=0o600, values=None):
        sems = sysvshm.SemaphoreSet(None, nsems, sysvshm.IPC_CREX, mode, values)
        self.addCleanup(self.drop, "sem", sems.id)
        CREATED["sem"].add(sems.id)
        return sems

    def make_msg(self, mode=0o600, key=None):
        while True:
            ident = _libc.msgget(random_key() if key is None else key, sysvshm.IPC_CREX | mode)
            if ident >= 0 or ctypes.get_errno() != errno.EEXIST or key is not None:
                break
        self.assertGreaterEqual(ident, 0, os.strerror(ctypes.get_errno()))
        self.addCleanup(self.drop, "msg", ident)
        CREATED["msg"].add(ident)
        return ident

    def adopt(self, kind, ident):
        """Register the cleanup of an object a command made."""
        self.addCleanup(self.drop, kind, ident)
        CREATED[kind].add(ident)

    @staticmethod
    def drop(kind, ident):
        sysvshm._cli_rmid(kind, ident)    # EINVAL (already removed by the test) is fine

    def busy_objects(self):
        """One object of each kind in non-trivial states: (shm ids, sem id, msg id).

        A segment at a key above 0x7fffffff (negative key_t: /proc prints it signed) with odd
        size, attached; a segment locked (as root) and removed while attached (key 0, dest);
        a set with values and a semop done; a queue with two messages."""
        mem = self.make_shm(3 * PAGE + 123, 0o640, attached=True)
        mem.write(b"busy")
        dest = self.make_shm(5000, 0o604, key=sysvshm.IPC_PRIVATE, attached=True)
        if ROOT:
            dest.lock()
        dest.remove()
        self.hold(mem, dest)
        sems = self.make_sem(3, 0o660, [1, 0, 5])
        sems.op([(2, -1)])
        msqid = self.make_msg(0o620)
        msg_send(msqid, 1, b"hello")
        msg_send(msqid, 2, b"world, again")
        return [mem.id, dest.id], sems.id, msqid


def table_rows(text, id_column):
    """{section title: {id: line}} of an ipcs-style listing."""
    sections, title, header = {}, None, False
    for line in text.splitlines():
        if line.startswith("------"):
            title, header = line, True
            sections[title] = {}
        elif line.strip() and title is not None:
            if header:
                header = False
            else:
                sections[title][int(line.split()[id_column])] = line
    return sections


# -- ls / info against ipcs and lsipc, shared namespace, our objects only --------------------------
class ListingTest(Objects, unittest.TestCase):

    def setUp(self):
        self.shm_ids, self.sem_id, self.msg_id = self.busy_objects()
        self.ours = {"shm": self.shm_ids, "sem": [self.sem_id], "msg": [self.msg_id]}

    def assert_rows(self, ours_text, theirs_text, id_column, ids):
        ours, theirs = table_rows(ours_text, id_column), table_rows(theirs_text, id_column)
        self.assertEqual(sorted(ours), sorted(theirs), "section titles")
        compared = 0
        for title in theirs:
            for ident in ids:
                if ident in theirs[title]:
                    self.assertIn(ident, ours[title], "%s: id %d missing" % (title, ident))
                    self.assertEqual(ours[title][ident].split(), theirs[title][ident].split(),
                                     "%s: fields of id %d" % (title, ident))
                    self.assertEqual(ours[title][ident], theirs[title][ident],
                                     "%s: layout of id %d" % (title, ident))
                    compared += 1
        return compared

    @needs("ipcs")
    def test_ls_matches_ipcs(self):
        ids = self.shm_ids + [self.sem_id, self.msg_id]
        for fmt, column, rows in (("", 1, 4), ("-t", 0, 4), ("-p", 0, 3), ("-c", 0, 4)):
            theirs = run(["ipcs"] + ([fmt] if fmt else []))
            self.assertEqual(theirs[0], 0, theirs[2])
            for source, patches in SOURCES:
                with self.subTest(format=fmt or "default", source=source):
                    status, out, err = cli("ls", *([fmt] if fmt else []), **patches)
                    self.assertEqual((status, err), (0, ""))
                    # Same tables in the same order, with the same header lines.
                    self.assertEqual([x for x in out.splitlines() if not x.startswith("0x")
                                      and not x[:1].isdigit()],
                                     [x for x in theirs[1].splitlines() if not x.startswith("0x")
                                      and not x[:1].isdigit()])
                    # ipcs -p has no semaphore table: 3 of our 4 objects have a row there.
                    self.assertEqual(self.assert_rows(out, theirs[1], column, ids), rows)

    @needs("ipcs")
    def test_ls_kind_filters(self):
        for options, expected in ((["-m"], ["Shared Memory Segments"]),
                                  (["--sem"], ["Semaphore Arrays"]),
                                  (["-q", "--shm"], ["Message Queues", "Shared Memory Segments"]),
                                  (["-s", "-t"], ["Semaphore Operation/Change Times"])):
            with self.subTest(options=options):
                status, out, _ = cli("ls", *options)
                self.assertEqual(status, 0)
                titles = [line.strip("- ") for line in out.splitlines() if line.startswith("---")]
                self.assertEqual(titles, expected)
                ipcs_options = [{"--sem": "-s", "--shm": "-m"}.get(o, o) for o in options]
                theirs = run(["ipcs"] + ipcs_options)[1]
                self.assertEqual([line for line in out.splitlines() if line.startswith("---")],
                                 [line for line in theirs.splitlines() if line.startswith("---")])

    @needs("ipcs")
    def test_info_matches_ipcs(self):
        for kind, flag, ident in (("shm", "-m", self.shm_ids[0]), ("shm", "-m", self.shm_ids[1]),
                                  ("sem", "-s", self.sem_id), ("msg", "-q", self.msg_id)):
            theirs = run(["ipcs", flag, "-i", ident])
            self.assertEqual(theirs[0], 0, theirs[2])
            for source, patches in SOURCES:
                with self.subTest(kind=kind, id=ident, source=source):
                    self.assertEqual(cli("info", flag, ident, **patches), theirs)

    def test_info_values(self):
        status, out, _ = cli("info", "--sem", self.sem_id)
        self.assertEqual(status, 0)
        rows = [line.split() for line in out.splitlines() if re.match(r"\d+ ", line)]
        self.assertEqual([[int(x) for x in row[:4]] for row in rows],
                         [[0, 1, 0, 0], [1, 0, 0, 0], [2, 4, 0, 0]])
        self.assertEqual(int(rows[2][4]), os.getpid())      # last semop: this process
        status, out, _ = cli("info", "-q", self.msg_id)
        self.assertIn("cbytes=17\tqbytes=", out)
        self.assertIn("qnum=2\tlspid=%d\tlrpid=0" % os.getpid(), out)

    @needs("ipcs")
    def test_info_with_waiters_matches_ipcs(self):
        """ncount and zcount are non-zero while processes wait: one child waits to take
        semaphore 0 (value 0), another waits for semaphore 1 (value 1) to become zero."""
        sems = self.make_sem(3, 0o600, [0, 1, 2])
        children = []
        for index, operation in ((0, -1), (1, 0)):
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    sems.op([(index, operation)], timeout=60)
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
            self.addCleanup(reap, pid)
        deadline = time.monotonic() + 30
        while (sems[0].waiting_for_nonzero, sems[1].waiting_for_zero) != (1, 1):
            self.assertLess(time.monotonic(), deadline, "the children never blocked")
            time.sleep(0.005)
        theirs = run(["ipcs", "-s", "-i", sems.id])
        self.assertEqual(cli("info", "-s", sems.id), theirs)
        rows = [line.split()[:4] for line in theirs[1].splitlines() if re.match(r"\d+ ", line)]
        self.assertEqual(rows, [["0", "0", "1", "0"], ["1", "1", "0", "1"], ["2", "2", "0", "0"]])
        sems.op([(0, 1), (1, -1)])
        for pid in children:
            self.assertEqual(reap(pid), 0)

    def test_info_json(self):
        status, out, _ = cli("info", "-s", self.sem_id, "--json")
        self.assertEqual(status, 0)
        (record,) = json.loads(out)["semaphores"]
        self.assertEqual([e["value"] for e in record["elements"]], [1, 0, 4])
        self.assertEqual((record["id"], record["nsems"], record["perms"]), (self.sem_id, 3, "0660"))
        status, out, _ = cli("info", "-q", self.msg_id, "--json")
        (record,) = json.loads(out)["messages"]
        self.assertEqual((record["msgs"], record["usedbytes"]), (2, 17))
        self.assertEqual(record["qbytes"], sysvshm._stat("msg", self.msg_id)["qbytes"])
        status, out, _ = cli("info", "-m", self.shm_ids[1], "--json")
        (record,) = json.loads(out)["sharedmemory"]
        self.assertEqual((record["key"], record["size"], record["nattch"]), ("0x00000000", 5000, 1))
        self.assertEqual(record["status"], "dest,locked" if ROOT else "dest")

    @needs("lsipc")
    def test_ls_json_matches_lsipc(self):
        columns = {
            "shm": "SIZE,NATTCH,STATUS,ATTACH,DETACH,COMMAND,CPID,LPID",
            "msg": "USEDBYTES,MSGS,SEND,RECV,LSPID,LRPID",
            "sem": "NSEMS,OTIME"}
        common = "KEY,ID,OWNER,PERMS,CUID,CUSER,CGID,CGROUP,UID,USER,GID,GROUP,CTIME,"
        # lsipc 2.38 prints null for a queue's numeric PERMS (-P); nothing else is null there.
        lsipc_nulls = {("msg", "perms")}
        for kind, flag in (("shm", "-m"), ("sem", "-s"), ("msg", "-q")):
            status, out, err = run(["lsipc", flag, "--json", "-b", "-P", "--time-format=iso",
                                    "-o", common + columns[kind]])
            self.assertEqual(status, 0, err)
            (theirs,) = json.loads(out).values()
            theirs = dict((int(r["id"]), r) for r in theirs)
            for source, patches in SOURCES:
                with self.subTest(kind=kind, source=source):
                    status, out, err = cli("ls", flag, "--json", **patches)
                    self.assertEqual((status, err), (0, ""))
                    (name,) = json.loads(out)
                    self.assertEqual(name, sysvshm._CLI_JSON_KIND[kind])
                    ours = dict((r["id"], r) for r in json.loads(out)[name])
                    for ident in self.ours[kind]:
                        self.assertEqual(sorted(ours[ident]), sorted(theirs[ident]))
                        for field, value in theirs[ident].items():
                            if value is None and (kind, field) in lsipc_nulls:
                                continue
                            if field == "command" and EMULATOR and \
                                    ours[ident]["cpid"] == os.getpid():
                                self.assert_qemu_own_command(ours[ident][field], value)
                                continue
                            self.assertEqual(None if ours[ident][field] is None
                                             else str(ours[ident][field]), value,
                                             "%s id %d: %s" % (kind, ident, field))

    def assert_qemu_own_command(self, ours, theirs):
        """qemu-user shows an emulated process its *own* /proc/PID/cmdline as the guest's argv
        (`ARGV0 ARGS...`); every other process, lsipc on the host included, reads the real one
        (`qemu-ARCH -L ROOT -0 ARGV0 EXE ARGS...`).  So for a segment this process created,
        ours is what we see, and theirs is that with qemu's own words in front."""
        with open("/proc/%d/cmdline" % os.getpid(), "rb") as cmdline:
            seen = cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        self.assertEqual(ours, seen)
        real, fake = theirs.split(), seen.split()
        self.assertEqual(os.path.basename(real[0]), os.path.basename(EMULATOR), theirs)
        argv0 = real.index("-0") + 1
        self.assertEqual([real[argv0]] + real[argv0 + 2:], fake, theirs)

    def test_sources_agree(self):
        for kind in ("shm", "sem", "msg"):
            proc = dict((r["id"], r) for r in sysvshm._cli_proc_records(kind))
            for name, patches in SOURCES[1:]:
                with mock.patch.object(sysvshm, "_CLI_STAT", patches.get("_CLI_STAT",
                                                                         sysvshm._CLI_STAT)), \
                        mock.patch.object(sysvshm, "_LAYOUT", patches.get("_LAYOUT",
                                                                          sysvshm._LAYOUT)):
                    scanned = dict((r["id"], r) for r in sysvshm._cli_scan_records(kind))
                for ident in self.ours[kind]:
                    with self.subTest(kind=kind, source=name, id=ident):
                        fields = set(proc[ident]) & set(scanned[ident])
                        self.assertTrue({"key", "id", "mode", "uid", "gid", "cuid", "cgid",
                                         "ctime"} < fields, fields)
                        self.assertEqual(dict((f, proc[ident][f]) for f in fields),
                                         dict((f, scanned[ident][f]) for f in fields))
        # A key above 0x7fffffff is negative in /proc and printed unsigned by ls.
        key = sysvshm._cli_proc_records("shm")
        (record,) = [r for r in key if r["id"] == self.shm_ids[0]]
        self.assertLess(record["key"], 0)
        self.assertIn("0x%08x %-10d" % (record["key"] & 0xFFFFFFFF, self.shm_ids[0]),
                      cli("ls", "-m")[1])


class ProcFormatTest(Objects, unittest.TestCase):
    """/proc/sysvipc files as other kernels print them, read from a directory of our own."""

    def write_tables(self, tables):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        for kind, text in tables.items():
            with open(os.path.join(directory, kind), "w") as table:
                table.write(text)
        return directory

    def test_fewer_columns_and_bad_lines(self):
        # Linux 2.6.32 printed 14 shm columns (no rss, swap); a line that does not parse is
        # skipped, as util-linux skips it.
        directory = self.write_tables({"shm": (
            "       key      shmid perms       size  cpid  lpid nattch   uid   gid  cuid  cgid"
            "      atime      dtime      ctime\n"
            "        -1      32769  1600       4096   100   200      3     0     0     0     0"
            "          5          6          7\n"
            "garbage\n")})
        (record,) = self.records(directory, "shm")
        self.assertEqual((record["key"], record["id"], record["mode"], record["size"],
                          record["nattch"], record["ctime"]), (-1, 32769, 0o1600, 4096, 3, 7))
        status, out, err = cli("ls", "-m", _cli_sysvipc=directory)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("0xffffffff 32769      root       600        4096       3          dest",
                      out)

    @staticmethod
    def records(directory, kind):
        with mock.patch.object(sysvshm, "_cli_sysvipc", directory):
            return sysvshm._cli_proc_records(kind)

    def test_missing_column_falls_back_to_the_syscalls(self):
        msqid = self.make_msg()
        directory = self.write_tables({"msg": "key msqid perms cbytes uid gid cuid cgid\n"
                                              "1 2 600 0 0 0 0 0\n"})
        self.assertIsNone(self.records(directory, "msg"))
        status, out, err = cli("ls", "-q", _cli_sysvipc=directory)
        self.assertEqual((status, err), (0, ""))
        self.assertIn(" %-10d " % msqid, out)


# -- whole outputs, byte for byte, in a private namespace ------------------------------------------
def _private_scenario():
    """Runs in a fresh IPC namespace: objects of every kind and state, then every listing
    command from each source next to its util-linux counterpart."""
    made = cli("mk", "-M", "10K", "-S", "3", "-Q")
    assert made[0] == 0, made
    mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, 0o640, 3 * PAGE + 123)
    dest = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, sysvshm.IPC_CREX, 0o600, 5000)
    dest.lock()
    dest.remove()
    holder = hold(mem, dest)
    sems = sysvshm.SemaphoreSet(None, 4, sysvshm.IPC_CREX, 0o666, [3, 2, 1, 0])
    msqid = _libc.msgget(random_key(), sysvshm.IPC_CREX | 0o600)
    msg_send(msqid, 7, b"payload")
    results = []
    pairs = [(["ls"], ["ipcs"]), (["ls", "-t"], ["ipcs", "-t"]), (["ls", "-p"], ["ipcs", "-p"]),
             (["ls", "-c"], ["ipcs", "-c"]), (["ls", "-m", "-q"], ["ipcs", "-m", "-q"]),
             (["summary"], ["ipcs", "-u"]), (["summary", "-s"], ["ipcs", "-u", "-s"]),
             (["limits"], ["ipcs", "-l"]), (["limits", "-b"], ["ipcs", "-l", "-b"]),
             (["info", "-m", mem.id], ["ipcs", "-m", "-i", mem.id]),
             (["info", "-m", dest.id], ["ipcs", "-m", "-i", dest.id]),
             (["info", "-s", sems.id], ["ipcs", "-s", "-i", sems.id]),
             (["info", "-q", msqid], ["ipcs", "-q", "-i", msqid])]
    narrowed = ipc_info_sysctl()        # None where IPC_INFO tells the limits unchanged
    for source, patches in SOURCES:
        for ours, theirs in pairs:
            tool = " ".join(map(str, theirs))
            if ours[0] == "limits" and source != "proc" and narrowed:
                # ours from proc (== ipcs, above) with the values IPC_INFO gives us
                expected = cli(*ours, _cli_sysctl=narrowed)
                tool += ", limits as IPC_INFO tells them"
            else:
                expected = run(theirs)
            results.append([source, ours[0], tool, list(cli(*ours, **patches)), list(expected)])
    if narrowed:
        shutil.rmtree(narrowed)
    mine = json.loads(cli("limits", "--json")[1])["ipclimits"]
    used = dict((r["resource"], r["used"]) for r in mine)
    # ipcs -u's "allocated semaphores" is the kernel's count (SEM_INFO semaem).
    semaem = re.search(r"allocated semaphores = (\d+)", run(["ipcs", "-u", "-s"])[1]).group(1)
    results.append(["proc", "limits --json: SEMMNS used", "ipcs -u -s", [str(used["SEMMNS"])],
                    [semaem]])
    if have("lsipc"):
        theirs = lsipc_limits()
        # lsipc 2.38 adds the first set's nsems once per set (semds for semdsp in
        # do_sem_global), so its SEMMNS "used" is wrong for sets of different sizes.
        results.append(["proc", "limits --json", "lsipc -g --json -b",
                        [[r["resource"], str(r["limit"]), "-" if r["used"] is None
                          or r["resource"] == "SEMMNS" else str(r["used"])] for r in mine],
                        [[r["resource"], r["limit"], "-" if r["resource"] == "SEMMNS"
                          else r["used"]] for r in theirs]])
    assert release(*holder) == 0
    return results


class PrivateNamespaceTest(unittest.TestCase):

    @root_namespace
    @needs("ipcs")
    def test_whole_outputs_match_util_linux(self):
        results = in_child(_private_scenario, unshare_ipc=True)
        self.assertGreaterEqual(len(results), 3 * 13)
        for source, command, tool, ours, theirs in results:
            with self.subTest(source=source, command=command, tool=tool):
                if len(theirs) == 3:            # (status, stdout, stderr) of ipcs
                    self.assertEqual(theirs[0], 0, theirs[2])
                self.assertEqual(ours, theirs)

    @root_namespace
    def test_rm_all(self):
        def scenario():
            out = []
            for argv in (["mk", "-M", "4K", "-S", "2", "-Q"], ["mk", "-M", "8K"]):
                out.append(list(cli(*argv)))
            kept = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, 0o600, 100)
            kept.remove()                       # dest, still attached: not removed again
            out.append([len(sysvshm._cli_records(kind)) for kind in ("shm", "sem", "msg")])
            out.append(list(cli("rm", "--all", "shm")))
            out.append([len(sysvshm._cli_records(kind)) for kind in ("shm", "sem", "msg")])
            # Objects of root, mode 0600, seen by nobody: permission denied, all kept.
            out.append(in_child(lambda: list(cli("rm", "--all", "sem", "--all", "msg")),
                                user=NOBODY))
            out.append([len(sysvshm._cli_records(kind)) for kind in ("shm", "sem", "msg")])
            out.append(list(cli("rm", "--all=sem", "--all=msg", "--all=shm")))
            out.append([len(sysvshm._cli_records(kind)) for kind in ("shm", "sem", "msg")])
            kept.detach()
            out.append([len(sysvshm._cli_records(kind)) for kind in ("shm", "sem", "msg")])
            return out
        made1, made2, before, removed, after, denied, still, rest, end, gone = in_child(
            scenario, unshare_ipc=True)
        self.assertEqual(made1[0], 0)
        self.assertEqual(before, [3, 1, 1])
        self.assertEqual(removed[0], 0)
        ids = [int(line.split()[-1]) for line in made1[1].splitlines() + made2[1].splitlines()
               if line.startswith("Shared")]
        self.assertEqual([int(re.search(r"id (\d+)", line).group(1))
                          for line in removed[1].splitlines()], ids)
        for line in removed[1].splitlines():
            self.assertRegex(line, r"^removed shared memory segment id \d+ \(key 0x[0-9a-f]{8}\)$")
        self.assertEqual(after, [1, 1, 1])           # the dest segment stays until detached
        self.assertEqual(denied[0], 1)
        self.assertEqual(denied[1], "")
        self.assertEqual(len(denied[2].splitlines()), 2)
        for line in denied[2].splitlines():
            self.assertRegex(line, r"^sysvshm rm: permission denied for id \(\d+\)$")
        self.assertEqual(still, [1, 1, 1])
        self.assertEqual(rest[0], 0)
        self.assertEqual([line.split()[1:3] for line in rest[1].splitlines()],
                         [["message", "queue"], ["semaphore", "id"]])
        self.assertEqual(end, [1, 0, 0])
        self.assertEqual(gone, [0, 0, 0])


# -- rm --------------------------------------------------------------------------------------------
class RemoveTest(Objects, unittest.TestCase):

    def test_rm_by_id_and_key(self):
        for kind, by_id, by_key in (("shm", "-m", "-M"), ("sem", "-s", "-S"), ("msg", "-q", "-Q")):
            for option in (by_id, by_key):
                with self.subTest(kind=kind, option=option):
                    key = random_key(high=option == by_key)
                    if kind == "shm":
                        ident = self.make_shm(100, key=key).id
                    elif kind == "sem":
                        ident = sysvshm.SemaphoreSet(key, 1, sysvshm.IPC_CREX).id
                        self.adopt("sem", ident)
                    else:
                        ident = self.make_msg(key=key)
                    arg = ident if option == by_id else "0x%08x" % key
                    self.assertEqual(cli("rm", option, arg), (0, "", ""))
                    self.assertFalse(exists(kind, ident))

    def test_key_forms(self):
        key = random_key()
        for text in ("0x%x" % key, "0X%X" % key, "%d" % key, "0%o" % key, " +%d" % key):
            self.assertEqual(sysvshm._cli_parse_key(text), key, text)
        self.assertEqual(sysvshm._cli_parse_key("0xffffffff"), -1)
        self.assertEqual(sysvshm._cli_parse_key("-1"), -1)          # /proc's signed decimal
        self.assertEqual(sysvshm._cli_parse_key("-2147483648"), -2 ** 31)
        for bad in ("0x100000000", "-2147483649", "zz", "", "0x", "08", "1_000", "12 "):
            self.assertRaises(sysvshm._CliError, sysvshm._cli_parse_key, bad)
        # A queue at a key above 0x7fffffff removed by /proc's signed decimal spelling.
        high = random_key(high=True)
        ident = self.make_msg(key=high)
        self.assertEqual(cli("rm", "-Q", str(high - 2 ** 32)), (0, "", ""))
        self.assertFalse(exists("msg", ident))

    def test_verbose(self):
        ident = self.make_shm(10).id
        sems = self.make_sem(1)
        self.assertEqual(cli("rm", "-v", "-m", ident, "-s", sems.id),
                         (0, "removing shared memory segment id `%d'\nremoving semaphore id "
                          "`%d'\n" % (ident, sems.id), ""))

    @needs("ipcrm")
    def test_errors_match_ipcrm(self):
        dead = {"shm": self.make_shm(10).id, "sem": self.make_sem(1).id, "msg": self.make_msg()}
        dead_key = random_key()
        for kind, ident in dead.items():
            sysvshm._cli_rmid(kind, ident)
        cases = [["-m", dead["shm"]], ["-s", dead["sem"]], ["-q", dead["msg"]],
                 ["-M", "0x%08x" % dead_key], ["-S", str(dead_key)], ["-Q", "0%o" % dead_key],
                 ["-M", "0"], ["-m", "abc"], ["-M", "zz"], ["-s", "99999999999"],
                 ["-m", dead["shm"], "-q", dead["msg"]], ["-m", "-1"]]
        for argv in cases:
            with self.subTest(argv=argv):
                theirs = run(["ipcrm"] + argv)
                self.assertEqual(as_tool(cli("rm", *argv), "ipcrm"), theirs)
                self.assertEqual(theirs[0], 1)
                self.assertTrue(theirs[2])

    @unittest.skipUnless(ROOT, "needs root to create objects another user may not remove")
    @needs("ipcrm")
    def test_rm_of_another_users_object_fails_as_ipcrm(self):
        mem = self.make_shm(4096, 0o600, key=random_key())
        sems = self.make_sem(2, 0o600)
        msqid = self.make_msg(0o600, key=random_key())
        shm_key = "0x%08x" % (sysvshm._stat("shm", mem.id)["key"] & 0xFFFFFFFF)
        msg_key = "0x%08x" % (sysvshm._stat("msg", msqid)["key"] & 0xFFFFFFFF)
        for argv in (["-m", mem.id], ["-s", sems.id], ["-q", msqid], ["-M", shm_key],
                     ["-Q", msg_key], ["-m", mem.id, "-s", sems.id]):
            with self.subTest(argv=argv):
                ours = in_child(lambda argv=argv: list(cli("rm", *argv)), user=NOBODY)
                theirs = run(["ipcrm"] + argv, user=NOBODY)
                self.assertEqual(tuple(as_tool(ours, "ipcrm")), theirs)
                self.assertEqual(theirs[0], 1)
                self.assertIn("permission denied for", theirs[2])
        for kind, ident in (("shm", mem.id), ("sem", sems.id), ("msg", msqid)):
            self.assertTrue(exists(kind, ident))

    def test_arguments_checked_before_removing(self):
        ident = self.make_shm(10).id
        status, out, err = cli("rm", "-m", ident, "-M", "zz")
        self.assertEqual((status, out, err), (1, "", "sysvshm rm: failed to parse argument: "
                                                     "'zz'\n"))
        self.assertTrue(exists("shm", ident))
        status, out, err = cli("rm")
        self.assertEqual(status, 1)
        self.assertEqual(len(err.splitlines()), 1)
        status, out, err = cli("rm", "-a", "5")           # not a kind: refused, not "all"
        self.assertEqual(status, 1)
        self.assertIn("invalid choice", err)
        self.assertTrue(exists("shm", ident))
        status, out, err = cli("rm", "--all", "everything")
        self.assertEqual(status, 1)
        self.assertIn("invalid choice", err)


# -- mk --------------------------------------------------------------------------------------------
class MakeTest(Objects, unittest.TestCase):

    def made(self, out):
        """{kind: id} from mk's (ipcmk's) output, each adopted for cleanup."""
        kinds = {"Shared memory id": "shm", "Message queue id": "msg", "Semaphore id": "sem"}
        ids = {}
        for line in out.splitlines():
            label, _, ident = line.rpartition(": ")
            ids[kinds[label]] = int(ident)
            self.adopt(kinds[label], int(ident))
        return ids

    def test_mk_all_kinds(self):
        status, out, err = cli("mk", "-M", "10K", "-S", "3", "-Q")
        ids = self.made(out)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual([line.split(":")[0] for line in out.splitlines()],
                         ["Shared memory id", "Message queue id", "Semaphore id"])
        shm, sem, msg = (sysvshm._stat(k, ids[k]) for k in ("shm", "sem", "msg"))
        self.assertEqual((shm["size"], shm["mode"] & 0o777, shm["cpid"], shm["nattch"]),
                         (10240, 0o644, os.getpid(), 0))
        self.assertEqual((sem["nsems"], sem["mode"] & 0o777), (3, 0o644))
        self.assertNotEqual(sem["otime"], 0)    # marked initialised for sysvshm's openers
        self.assertEqual(msg["mode"] & 0o777, 0o644)
        self.assertEqual(sysvshm.SemaphoreSet(sem["key"]).values, [0, 0, 0])

    def test_mode_and_key(self):
        status, out, err = cli("mk", "-M", "1K", "-S", "1", "-Q", "-p", "640")
        ids = self.made(out)
        self.assertEqual((status, err), (0, ""))
        for kind, ident in ids.items():
            self.assertEqual(sysvshm._stat(kind, ident)["mode"] & 0o777, 0o640, kind)
        key = random_key(high=True)
        status, out, err = cli("mk", "-S", "2", "-p", "0600", "--key", "0x%08x" % key)
        ids = self.made(out)
        self.assertEqual((status, err), (0, ""))
        stat = sysvshm._stat("sem", ids["sem"])
        self.assertEqual((stat["mode"] & 0o777, stat["key"] & 0xFFFFFFFF), (0o600, key))
        status, out, err = cli("mk", "-S", "2", "-k", str(key))     # taken: IPC_EXCL
        self.made(out)
        self.assertEqual((status, out, err), (1, "", "sysvshm mk: create semaphore failed: File "
                                                     "exists\n"))

    @needs("ipcmk")
    def test_sizes_match_ipcmk(self):
        for size in ("4096", "10K", "1.5K", "1KiB", "1KB", "1kb", "2M", "0x10", "010", "0x10K"):
            with self.subTest(size=size):
                status, out, err = cli("mk", "-M", size)
                ours = self.made(out)["shm"]
                theirs = run(["ipcmk", "-M", size])
                theirs = self.made(theirs[1])["shm"]
                self.assertEqual(sysvshm._stat("shm", ours)["size"],
                                 sysvshm._stat("shm", theirs)["size"])

    @needs("ipcmk")
    def test_errors_match_ipcmk(self):
        for argv in (["-M", "10X"], ["-M", "-5"], ["-M", "1 K"], ["-M", "2.5"], ["-M", "0"],
                     ["-S", "0"], ["-S", "x"], ["-S", "99999999999"]):
            with self.subTest(argv=argv):
                ours = as_tool(cli("mk", *argv), "ipcmk")
                theirs = run(["ipcmk"] + argv)
                self.made(ours[1])
                self.made(theirs[1])
                self.assertEqual(ours, theirs)
                self.assertEqual(theirs[0], 1)

    @needs("ipcmk")
    def test_modes_as_ipcmk(self):
        for mode in ("0600", "600", " 640", "0"):
            with self.subTest(mode=mode):
                ours = self.made(cli("mk", "-Q", "-p", mode)[1])["msg"]
                theirs = self.made(run(["ipcmk", "-Q", "-p", mode])[1])["msg"]
                # From /proc: a non-root owner may not IPC_STAT a mode 0 queue.
                self.assertEqual(sysvshm._cli_find("msg", ours)["mode"],
                                 sysvshm._cli_find("msg", theirs)["mode"])
        # Not octal: both refuse (ipcmk 2.38's message is "failed to parse mode: Success").
        # Above 0777: ipcmk passes the bits on as flags (01000 is IPC_CREAT, mode 0); refused.
        for mode in ("999", "rw", "0o600", "01000", ""):
            with self.subTest(mode=mode):
                self.assertEqual(cli("mk", "-Q", "-p", mode),
                                 (1, "", "sysvshm mk: failed to parse mode: '%s'\n" % mode))
                if mode in ("999", "rw", "0o600"):
                    theirs = run(["ipcmk", "-Q", "-p", mode])
                    self.made(theirs[1])
                    self.assertEqual(theirs[0], 1)


# -- limits / summary ------------------------------------------------------------------------------
class LimitsTest(unittest.TestCase):

    def test_sources_agree(self):
        for kind in ("shm", "sem", "msg"):
            with self.subTest(kind=kind):
                with mock.patch.object(sysvshm, "_cli_sysctl", "/nonexistent"):
                    fallback = sysvshm._cli_limits(kind)
                expected = sysvshm._cli_limits(kind)
                if kind == "shm":       # unchanged for a 64-bit process
                    expected = shm_limits_through_ipc_info(expected)
                self.assertEqual(expected, fallback)

    @needs("ipcs")
    def test_limits_match_ipcs(self):
        narrowed = ipc_info_sysctl()    # None where IPC_INFO tells the limits unchanged
        if narrowed:
            self.addCleanup(shutil.rmtree, narrowed)
        for options in ([], ["-b"], ["-m"], ["-s", "-q"]):
            for source, patches in SOURCES[:2]:
                with self.subTest(options=options, source=source):
                    if source == "proc" or not narrowed:
                        expected = run(["ipcs", "-l"] + options)
                    else:               # from proc (== ipcs) with the values IPC_INFO gives
                        expected = cli("limits", *options, _cli_sysctl=narrowed)
                    self.assertEqual(cli("limits", *options, **patches), expected)

    @needs("lsipc")
    def test_limits_json_matches_lsipc(self):
        mine = json.loads(cli("limits", "--json")[1])["ipclimits"]
        theirs = lsipc_limits()
        # "used" moves with other processes' objects here; compared in a private namespace.
        self.assertEqual([(r["resource"], r["description"] if theirs[0]["description"] else None,
                           str(r["limit"])) for r in mine],
                         [(r["resource"], r["description"], r["limit"]) for r in theirs])

    def test_shmall_overflow(self):
        def limits(shmall, options=()):
            with mock.patch.object(sysvshm, "_cli_limits",
                                   lambda kind: {"shmmax": 2 ** 64 - 1, "shmall": shmall,
                                                 "shmmni": 4096, "shmmin": 1}):
                return cli("limits", "-m", *options)[1].splitlines()[4]
        self.assertEqual(limits(1000), "max total shared memory (kbytes) = %d" % (1000 * PAGE
                                                                                  // 1024))
        self.assertEqual(limits(2 ** 63), "max total shared memory (kbytes) = %d"
                         % (2 ** 64 - 1 - (2 ** 64 - 1) % (PAGE // 1024)))
        self.assertEqual(limits(2 ** 63, ["-b"]), "max total shared memory (bytes) = %d"
                         % (2 ** 64 - 1 - (2 ** 64 - 1) % PAGE))

    def test_summary(self):
        status, out, err = cli("summary", "--json")
        self.assertEqual((status, err), (0, ""))
        counts = json.loads(out)
        self.assertEqual(sorted(counts), ["messages", "semaphores", "sharedmemory"])
        self.assertGreaterEqual(counts["semaphores"]["used_arrays"], 0)
        status, out, err = cli("summary")
        self.assertEqual([line for line in out.splitlines() if line.startswith("---")],
                         ["------ Messages Status --------", "------ Shared Memory Status --------",
                          "------ Semaphore Status --------"])


# -- dump ------------------------------------------------------------------------------------------
class DumpTest(Objects, unittest.TestCase):

    def setUp(self):
        self.size = 2 * PAGE + 77
        self.data = (b"Hello, world!\n" + bytes(range(256)) * 64)[:self.size]
        mem = self.make_shm(self.size, 0o600, attached=True)
        mem.write(self.data)
        mem.detach()
        self.id = mem.id

    @staticmethod
    def undump(text):
        """The bytes an xxd listing shows, and the offset of its first line."""
        lines = text.splitlines()
        data = b"".join(bytes.fromhex(line[10:49].replace(" ", "")) for line in lines)
        return data, int(lines[0][:8], 16) if lines else None

    def test_dump_matches_bytes_written(self):
        for options, start, end in (([], 0, self.size), (["--offset", "100"], 100, self.size),
                                    (["--offset", "0x20", "--length", "333"], 32, 365),
                                    (["--length", "1K"], 0, 1024),
                                    (["--offset", self.size - 5, "--length", "100"], self.size - 5,
                                     self.size),
                                    (["--offset", self.size], 0, 0)):
            with self.subTest(options=options):
                status, out, err = cli("dump", self.id, *options)
                self.assertEqual((status, err), (0, ""))
                data, first = self.undump(out)
                self.assertEqual(data, self.data[start:end])
                if data:
                    self.assertEqual(first, start)
        self.assertEqual(sysvshm._stat("shm", self.id)["nattch"], 0)   # detached again

    @needs("xxd")
    def test_dump_matches_xxd(self):
        with tempfile.NamedTemporaryFile() as copy:
            copy.write(self.data)
            copy.flush()
            for ours, theirs in (([], []), (["--offset", "5", "--length", "4000"],
                                            ["-s", "5", "-l", "4000"])):
                with self.subTest(options=ours):
                    self.assertEqual(cli("dump", self.id, *ours),
                                     run(["xxd"] + theirs + [copy.name]))

    def test_dump_errors(self):
        gone = self.make_shm(10).id
        sysvshm._cli_rmid("shm", gone)
        for argv, message in (([gone], "id %d not found" % gone),
                              (["abc"], "failed to parse id argument: 'abc'"),
                              ([self.id, "--offset", self.size + 1],
                               "offset %d is beyond the end of segment %d (%d bytes)"
                               % (self.size + 1, self.id, self.size)),
                              ([self.id, "--length", "x"],
                               "failed to parse length: 'x': Invalid argument")):
            with self.subTest(argv=argv):
                self.assertEqual(cli("dump", *argv), (1, "", "sysvshm dump: %s\n" % message))

    @unittest.skipUnless(ROOT, "needs root to make a segment nobody may read")
    def test_dump_without_permission(self):
        status, out, err = in_child(lambda: list(cli("dump", self.id)), user=NOBODY)
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, "sysvshm dump: shmctl(id=%d, IPC_STAT): Permission denied\n"
                         % self.id)


# -- the program as users run it -------------------------------------------------------------------
class ProgramTest(Objects, unittest.TestCase):

    def program(self, *argv):
        return run([sys.executable, "-m", "sysvshm"] + list(argv))

    def test_help_for_every_command(self):
        for command in ([], ["ls"], ["info"], ["rm"], ["mk"], ["limits"], ["summary"], ["dump"],
                        ["demo"]):
            with self.subTest(command=command):
                status, out, err = self.program(*(command + ["--help"]))
                self.assertEqual((status, err), (0, ""))
                self.assertTrue(out.startswith("usage: sysvshm " + " ".join(command)), out)
        status, out, err = run([sys.executable, "sysvshm.py", "--help"])
        self.assertEqual((status, err), (0, ""))
        for command in ("ls", "info", "rm", "mk", "limits", "summary", "dump", "demo"):
            self.assertIn(command, out)
        self.assertEqual(self.program("--version")[1], "sysvshm %s\n" % sysvshm.__version__)

    def test_default_is_ls(self):
        ident = self.make_shm(1234).id
        status, out, err = self.program()
        self.assertEqual((status, err), (0, ""))
        self.assertIn(" %-10d " % ident, out)
        self.assertEqual([line for line in out.splitlines() if line.startswith("---")],
                         [line for line in cli("ls")[1].splitlines() if line.startswith("---")])

    def test_bad_input_is_one_line_never_a_traceback(self):
        gone = self.make_shm(10).id
        sysvshm._cli_rmid("shm", gone)
        for argv in (["info", "-m", "abc"], ["info", "-m", gone], ["info", "5"],
                     ["info", "-m", "-s", "5"], ["rm", "-M", "zz"], ["rm", "-m", "99999999999"],
                     ["rm", "-m", gone], ["mk", "-M", "10X"], ["mk", "-M", "-5"],
                     ["mk", "-S", "x"], ["mk", "-Q", "-p", "999"],
                     ["mk", "-Q", "-k", "0x1ffffffff"],
                     ["dump", gone], ["dump", "abc"], ["dump", gone, "--offset", "huge"],
                     ["ls", "--bogus"], ["ls", "-t", "-p"], ["bogus"], ["rm", "--all", "5"]):
            with self.subTest(argv=argv):
                status, out, err = self.program(*argv)
                self.assertEqual(status, 1)
                self.assertEqual(out, "")
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertTrue(err.startswith("sysvshm"), err)
                self.assertNotIn("Traceback", err)

    def test_broken_pipe(self):
        mem = self.make_shm(1 << 20)
        proc = subprocess.Popen("%s -m sysvshm dump %d | head -1" % (sys.executable, mem.id),
                                shell=True, cwd=HERE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(out, "00000000: 0000 0000 0000 0000 0000 0000 0000 0000  "
                              "................\n")
        self.assertNotIn("Traceback", err)
        # A short output into a pipe already closed: quiet, status 1.
        rfd, wfd = os.pipe()
        os.close(rfd)
        try:
            proc = subprocess.Popen([sys.executable, "-m", "sysvshm", "limits"], cwd=HERE,
                                    stdout=wfd, stderr=subprocess.PIPE, universal_newlines=True)
        finally:
            os.close(wfd)
        _, err = proc.communicate(timeout=60)
        self.assertEqual((proc.returncode, err), (1, ""))


# -- the util-linux 2.38 forms: ipcs -a/-b, ipcrm's historical form and bare -a, ipcmk -----------
def _ipcs_forms_scenario():
    """In a fresh IPC namespace: objects of each kind (never attached, so that no fork moves
    their times or pids), then ls/limits/summary with -a and -b next to ipcs."""
    for argv in (["mk", "-M", "10K", "-S", "3", "-Q"], ["mk", "-M", "1K", "-k", "0"],
                 ["mk", "-S", "1", "-p", "600"]):
        made = cli(*argv)
        assert made[0] == 0, made
    pairs = [(["ls", "-a"], ["ipcs", "-a"]), (["ls", "-b"], ["ipcs", "-b"]),
             (["ls", "-a", "-m"], ["ipcs", "-a", "-m"]),
             (["ls", "-m", "-a", "-q"], ["ipcs", "-m", "-a", "-q"]),
             (["ls", "-b", "-t"], ["ipcs", "-b", "-t"]), (["ls", "-a", "-p"], ["ipcs", "-a", "-p"]),
             (["ls", "--all", "--bytes", "-c"], ["ipcs", "--all", "--bytes", "-c"]),
             (["ls", "-s", "-b"], ["ipcs", "-s", "-b"]),
             (["limits", "-a"], ["ipcs", "-l", "-a"]),
             (["limits", "-m", "-a", "-b"], ["ipcs", "-l", "-m", "-a", "-b"]),
             (["summary", "-a"], ["ipcs", "-u", "-a"]), (["summary", "-q", "-a"], ["ipcs", "-u", "-q", "-a"])]
    return [[ours, theirs, list(cli(*ours)), list(run(theirs))] for ours, theirs in pairs]


def _rm_historical_scenario():
    """In a fresh IPC namespace: `rm shm|msg|sem ID...` next to `ipcrm shm|msg|sem ID...`,
    each on objects of its own (the messages name no live id, so they compare)."""
    def make(kind):
        option = {"shm": "-M", "sem": "-S", "msg": "-Q"}[kind]
        status, out, err = cli("mk", option, *(["1K"] if kind == "shm" else ["1"] if kind == "sem"
                                               else []))
        assert status == 0, err
        return int(out.split()[-1])

    def dead(kind):
        ident = make(kind)
        sysvshm._cli_rmid(kind, ident)
        return ident

    def gone(kind, *ids):
        return [not any(r["id"] == ident for r in sysvshm._cli_records(kind)) for ident in ids]

    results = []
    for kind in ("shm", "sem", "msg"):
        mine, theirs = [make(kind), make(kind)], [make(kind), make(kind)]
        results.append(["%s: two live ids" % kind, list(cli("rm", kind, *mine)),
                        list(run(["ipcrm", kind] + theirs)), gone(kind, *mine + theirs)])
        lost = dead(kind)
        results.append(["%s: a removed id" % kind, list(cli("rm", kind, lost)),
                        list(run(["ipcrm", kind, lost])), []])
        mine, theirs = make(kind), make(kind)
        results.append(["%s: a live id and a removed one" % kind, list(cli("rm", kind, mine, lost)),
                        list(run(["ipcrm", kind, theirs, lost])), gone(kind, mine, theirs)])
    results.append(["not an id", list(cli("rm", "sem", "abc")), list(run(["ipcrm", "sem", "abc"])),
                    []])
    # Where ours differs, on purpose: every id is checked before anything is removed, and an
    # id beyond 32 bits is refused (ipcrm's strtoul folds 2**32 + N into id N).
    kept = make("shm")
    extra = {"bad second": list(cli("rm", "shm", kept, "x1")),
             "folded": list(cli("rm", "shm", kept + 2 ** 32)),
             "negative": list(cli("rm", "msg", "-1")),
             "empty": list(cli("rm", "msg", "")),
             "no ids": list(cli("rm", "shm")),
             "kept": gone("shm", kept), "kept id": kept}
    return results, extra


def _rm_all_scenario():
    """In a fresh IPC namespace: rm -a (every kind), -a KIND spelled each way, a word that is no
    kind.  Counts of (shm, sem, msg) after each step.  (No `ipcrm -a` next to it: from
    util-linux 2.42 on it also removes the POSIX objects in /dev/shm, which an IPC namespace
    does not isolate.)"""
    def make():
        for argv in (["mk", "-M", "4K", "-S", "2", "-Q"], ["mk", "-Q"]):
            assert cli(*argv)[0] == 0
        return counts()

    def counts():
        return [len(sysvshm._cli_records(kind)) for kind in ("shm", "sem", "msg")]

    steps = [["made", [], make()]]
    for argv in (["rm", "-a"], "make", ["rm", "-a", "shm"], ["rm", "-asem"], "make",
                 ["rm", "--all", "sem", "-a", "msg"], ["rm", "-a", "5"], ["rm", "--all=bogus"],
                 ["rm", "-v", "--all"]):
        if argv == "make":
            steps.append(["made", [], make()])
        else:
            steps.append([argv, list(cli(*argv)), counts()])
    return steps


class UtilLinuxFormsTest(Objects, unittest.TestCase):
    """ipcs's -a and -b, ipcrm's `shm|msg|sem ID...` form and bare -a, ipcmk-style creation at
    key 0, and usage errors reported against the command they follow.  Whatever removes by
    kind runs in a fresh IPC namespace, never in the shared one."""

    @root_namespace
    @needs("ipcs")
    def test_ls_limits_summary_accept_a_and_b_as_ipcs(self):
        results = in_child(_ipcs_forms_scenario, unshare_ipc=True)
        self.assertEqual(len(results), 12)
        for ours_argv, theirs_argv, ours, theirs in results:
            with self.subTest(command=ours_argv, tool=theirs_argv):
                self.assertEqual(theirs[0], 0, theirs[2])
                self.assertEqual(ours, theirs)
        # -a wins over -m/-s/-q wherever it stands, as in ipcs: all three tables.
        titles = [line for line in results[2][2][1].splitlines() if line.startswith("------")]
        self.assertEqual(len(titles), 3)

    @root_namespace
    @needs("ipcrm")
    def test_rm_historical_form_as_ipcrm(self):
        results, extra = in_child(_rm_historical_scenario, unshare_ipc=True)
        self.assertEqual(len(results), 10)
        for case, ours, theirs, gone in results:
            with self.subTest(case=case):
                self.assertEqual(tuple(as_tool(ours, "ipcrm")), tuple(theirs))
                self.assertTrue(all(gone), gone)
        self.assertEqual(results[0][1], [0, "resource(s) deleted\n", ""])
        self.assertEqual(results[1][1][:2], [1, ""])
        self.assertRegex(results[1][1][2], r"^sysvshm rm: invalid id \(\d+\)\n$")
        self.assertEqual(results[-1][1], [1, "", "sysvshm rm: invalid id: abc\n"])
        self.assertEqual(extra["bad second"], [1, "", "sysvshm rm: invalid id: x1\n"])
        self.assertEqual(extra["folded"], [1, "", "sysvshm rm: invalid id: %d\n"
                                           % (extra["kept id"] + 2 ** 32)])
        self.assertEqual(extra["kept"], [False])          # neither call removed it
        self.assertEqual(extra["negative"], [1, "", "sysvshm rm: invalid id (-1)\n"])
        self.assertEqual(extra["empty"], [1, "", "sysvshm rm: invalid id: \n"])
        self.assertEqual(extra["no ids"], [1, "", "sysvshm rm: not enough arguments (see "
                                                  "'sysvshm rm --help')\n"])

    @root_namespace
    def test_rm_all_removes_what_was_asked(self):
        steps = in_child(_rm_all_scenario, unshare_ipc=True)
        counts = [step[2] for step in steps]
        self.assertEqual(counts, [[1, 1, 2],
                                  [0, 0, 0],          # rm -a: every kind
                                  [1, 1, 2],
                                  [0, 1, 2],          # -a shm: segments only
                                  [0, 0, 2],          # -asem
                                  [1, 1, 4],
                                  [1, 0, 0],          # --all sem -a msg
                                  [1, 0, 0],          # -a 5: refused, nothing removed
                                  [1, 0, 0],          # --all=bogus: refused
                                  [0, 0, 0]])         # -v --all
        bare = steps[1][1]
        self.assertEqual((bare[0], bare[2]), (0, ""))
        self.assertEqual(len(bare[1].splitlines()), 4)
        for line in bare[1].splitlines():
            self.assertRegex(line, r"^removed (shared memory segment|semaphore|message queue) "
                                   r"id \d+ \(key 0x[0-9a-f]{8}\)$")
        for step in steps[7], steps[8]:
            self.assertEqual(step[1][:2], [1, ""])
            self.assertIn("invalid choice", step[1][2])
            self.assertEqual(len(step[1][2].splitlines()), 1)

    def test_unknown_option_is_reported_against_its_command(self):
        for argv in (["ls", "--bogus"], ["ls", "-m", "-x"], ["info", "-m", "5", "--bogus"],
                     ["rm", "--bogus"], ["rm", "-m", "5", "extra"], ["mk", "-Q", "--bogus"],
                     ["limits", "-z"], ["summary", "--bogus"], ["dump", "5", "--bogus"],
                     ["demo", "--bogus"]):
            with self.subTest(argv=argv):
                status, out, err = cli(*argv)
                unknown = " ".join(a for a in argv[1:] if a in ("--bogus", "-x", "extra", "-z"))
                self.assertEqual((status, out, err), (1, "", "sysvshm %s: unrecognized arguments: "
                                                      "%s (see 'sysvshm %s --help')\n"
                                                      % (argv[0], unknown, argv[0])))
        # Before the command it is the top level's.
        self.assertEqual(cli("--bogus", "ls"), (1, "", "sysvshm: unrecognized arguments: --bogus "
                                                       "(see 'sysvshm --help')\n"))
        self.assertEqual(cli("--bogus")[2], "sysvshm: unrecognized arguments: --bogus (see "
                                            "'sysvshm --help')\n")
        # The same through the program users run.
        status, out, err = run([sys.executable, "-m", "sysvshm", "mk", "-M", "1K", "--bogus"])
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, "sysvshm mk: unrecognized arguments: --bogus (see 'sysvshm mk "
                              "--help')\n")

    def test_mk_key_zero_is_ipc_private_as_help_says(self):
        ids = []
        for spelling in ("0", "0x0", "00"):
            status, out, err = cli("mk", "-Q", "-k", spelling)
            self.assertEqual((status, err), (0, ""))
            ident = int(out.split()[-1])
            self.adopt("msg", ident)
            ids.append(ident)
            self.assertEqual(sysvshm._stat("msg", ident)["key"], sysvshm.IPC_PRIVATE)
        self.assertEqual(len(set(ids)), 3)        # a new queue each time: key 0 is never taken
        status, out, err = cli("mk", "--help")
        self.assertEqual(status, 0)
        self.assertIn("fails if taken.  Key 0 is IPC_PRIVATE: a new object every time",
                      " ".join(out.split()).replace("taken. Key", "taken.  Key"))
        # A non-zero key is refused when taken (IPC_EXCL), as the help says.
        key = random_key()
        self.make_msg(key=key)
        self.assertEqual(cli("mk", "-Q", "-k", str(key)),
                         (1, "", "sysvshm mk: create message queue failed: File exists\n"))

    def test_help_shows_the_ipcrm_forms(self):
        status, out, err = cli("rm", "--help")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("sysvshm rm shm|msg|sem ID...", out)
        self.assertRegex(out, r"\n  -a( \[KIND\])?, --all \[KIND\]\s")
        for command in ("ls", "limits", "summary"):
            self.assertIn("-a, --all", cli(command, "--help")[1])
        self.assertIn("-b, --bytes", cli("ls", "--help")[1])


if __name__ == "__main__":
    unittest.main()


# --- Message queues, and the sysv_ipc drop-in proof --------------------------------------------
# Tests for sysvshm.MessageQueue and the sysv_ipc drop-in proof: python3 -m unittest -v test_mq
#
# Same rules as test_sysvshm.py (whose helpers are repeated here until the two files are folded
# together): cross-process behaviour runs in real processes (os.fork(), the child leaves through
# os._exit(), the parent reaps it with a deadline); processes synchronise through pipes, the queue
# under test, or the kernel's own state (/proc/PID/wchan says a process sleeps in msgrcv/msgsnd),
# never through sleep; every blocking call is bounded (a timeout, or SIGALRM).  Every queue is
# created with IPC_PRIVATE or a random key with IPC_CREX, its removal is registered on the next
# line, and tearDownModule checks that none remains.
#
# - TestSysvIpcSuite downloads sysv_ipc 1.2.0's sdist with pip (skipped when the index cannot be
#   reached), runs its 137 unittest tests against sysvshm registered as sys.modules['sysv_ipc']
#   in a subprocess inside a private IPC namespace (unshare --ipc), and compares each outcome
#   with SUITE_EXPECTED (every failure listed with its reason).  Nothing of that suite is kept.
# - TestLiveInterop runs when sysv_ipc itself is importable: one process uses sysv_ipc, the other
#   sysvshm, sharing a segment, a semaphore and a queue, in both directions.
#
# SYSVSHM_TIME_SCALE (default 1) multiplies every deadline, for runs under emulation.
#
# # Not tested --
# # - MSG_COPY (not offered: it needs CONFIG_CHECKPOINT_RESTORE and is a debugging interface).
# # - Raising max_size above kernel.msgmnb as a non-root user (EPERM): the tests run as root.

LONG_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1





def detach_quietly(mem):
    try:
        mem.detach()
    except Exception:          # not attached (any more), in either module
        pass




def wchan(pid):
    with open("/proc/%d/wchan" % pid) as f:
        return f.read().strip()


class MQBase(Base):
    """Base, with every blocking call of a test bounded by SIGALRM, and queues."""

    def setUp(self):
        self.bounded()

    def new_mq(self, key=None, flags=IPC_CREX, **kwargs):
        mq = sysvshm.MessageQueue(key, flags, **kwargs)
        self.addCleanup(remove_quietly, sysvshm.remove_message_queue, mq.id)
        CREATED["msg"].add(mq.id)
        return mq

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
class TestMessageQueue(MQBase):
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
        if not QEMU_MSG_PIDS_WRONG:         # qemu-user 7.2 garbles these two on 64-bit guests
            self.assertEqual(mq.last_send_pid, os.getpid())
        self.assertGreater(mq.last_send_time, 0)
        mq.receive()
        self.assertEqual(mq.current_messages, 1)
        if not QEMU_MSG_PIDS_WRONG:
            self.assertEqual(mq.last_receive_pid, os.getpid())
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

    def test_layout_self_check_refuses_a_wrong_msqid_ds(self):
        sysvshm.MessageQueue(IPC_PRIVATE).remove()      # the real layout passes
        fields = sysvshm._LAYOUT["msg"][1]
        wrong = [{"lspid": fields["lrpid"], "lrpid": fields["lspid"]},    # pids swapped
                 {"qnum": fields["cbytes"], "cbytes": fields["qnum"]},
                 {"qbytes": (fields["qbytes"][0] + 8, fields["qbytes"][1])}]
        if not QEMU_MSG_PIDS_WRONG:     # (qemu's own pid placement is accepted there)
            wrong.append({"lrpid": (fields["lrpid"][0] + 4, fields["lrpid"][1])})  # a zero
        for change in wrong:
            with self.subTest(change=change), mock.patch.dict(fields, change), \
                    mock.patch.object(sysvshm, "_checked", sysvshm._checked - {"msg"}):
                with self.assertRaises(sysvshm.InternalError) as caught:
                    self.new_mq(IPC_PRIVATE)
                self.assertIn("self-check failed", str(caught.exception))

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
class TestMessageQueueAcrossProcesses(MQBase):
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
        if not QEMU_MSG_PIDS_WRONG:
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
MQ_C_PROGRAM = r"""
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/msg.h>

struct record { int32_t seq; int32_t flags; double value; char name[16]; };
/* The text starts right after the long, as msgsnd/msgrcv read it: a `struct record r` member
   would be padded to double's alignment where that exceeds long's (8 vs 4 on 32-bit ARM). */
struct message { long mtype; char mtext[sizeof(struct record)]; };

int main(int argc, char **argv) {
    int qid, i, n;
    struct message m;
    struct record r;
    if (argc != 4) return 2;
    alarm(TIMEOUT);
    qid = msgget((key_t)strtol(argv[2], NULL, 0), 0);
    n = atoi(argv[3]);
    if (qid < 0) { perror("msgget"); return 3; }
    if (strcmp(argv[1], "send") == 0) {
        for (i = 0; i < n; i++) {
            memset(&r, 0, sizeof r);
            m.mtype = 1 + i % 3;
            r.seq = i; r.flags = -i; r.value = i * 0.5;
            snprintf(r.name, sizeof r.name, "c-%d", i);
            memcpy(m.mtext, &r, sizeof r);
            if (msgsnd(qid, &m, sizeof r, 0) != 0) { perror("msgsnd"); return 4; }
        }
        printf("sent %d\n", n);
        return 0;
    }
    for (i = 0; i < n; i++) {
        char name[16];
        ssize_t got = msgrcv(qid, &m, sizeof m.mtext, 0, 0);
        if (got != (ssize_t)sizeof r) { perror("msgrcv"); return 5; }
        memcpy(&r, m.mtext, sizeof r);
        snprintf(name, sizeof name, "py-%d", i);
        if (m.mtype != 10 + i || r.seq != i || r.flags != 2 * i || r.value != i * 1.5
                || strcmp(r.name, name) != 0) {
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


class TestMessageQueueInteropWithC(WithCProgram, MQBase):
    C_NAME, C_SOURCE = "mq", MQ_C_PROGRAM

    def run_c(self, *args):
        return subprocess.run(self.program + [str(a) for a in args], stdout=subprocess.PIPE,
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
    "test_semaphores.TestSemaphorePropertiesAndAttributes.test_attribute_value": (
        True, "deliberate: the range error keeps sysv_ipc's sentence and adds SEMVMX's value and "
              "the value given ('... between 0 and SEMVMX (32767), not -1'); the suite compares "
              "the whole text"),
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
        outcomes[test.id()] = ["fail", (str(err[1]).splitlines() or ["assert"])[0][:300]]
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
class TestLiveInterop(MQBase):
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


# --- Struct layouts and values across architectures -------------------------------------------
# Struct layouts and values across architectures (run: python3 -m unittest -v test_layouts).
#
# LayoutProbeTest compiles a small C program for each target (x86_64 glibc and musl, i386, armhf,
# arm64, s390x) with that target's compiler, runs it (natively, or under qemu-user), and compares
# what it prints with ``sysvshm._LAYOUTS``: struct sizes, the offset, width and signedness of every
# declared field, and a real IPC_STAT made through the target's libc, decoded with the declared
# layout in the target's byte order and compared with what the kernel must have said (our pid, the
# size asked for, the mode set, one attachment, ...).  A target whose compiler or emulator is
# missing is skipped, not passed.
#
# AbiRoundTripTest checks, through the public API of the interpreter that runs it, that values set
# by every path read back exactly; `.ci/cross-arch` runs it on i386, armhf, arm64 and s390x.
#
# Not tested here: the time fields after 2038 on 32-bit ABIs (the high words are checked to be
# where they are, not to carry a value), musl on anything but x86_64, x32, riscv64, loongarch64.

_PROBE_C = r"""
#define _GNU_SOURCE
/* sysvshm calls the legacy shmctl/semctl/msgctl symbols, which keep 32-bit times (and their
   "_high" words) on 32-bit ABIs.  Debian 13's armhf compilers default to -D_TIME_BITS=64, which
   swaps in the 64-bit-time structs and calls: probe the legacy ones that sysvshm uses. */
#undef _TIME_BITS
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/sem.h>
#include <sys/msg.h>

#ifdef __GLIBC__
# define PERM_KEY __key
# define MSG_CBYTES __msg_cbytes
# define TIME32 (__TIMESIZE == 32)
# define SHM_USED_IDS used_ids
# define SHM_SWAP_ATTEMPTS swap_attempts
# define SHM_SWAP_SUCCESSES swap_successes
#else
# define PERM_KEY __ipc_perm_key
# define MSG_CBYTES msg_cbytes
# define TIME32 0
# define SHM_USED_IDS __used_ids
# define SHM_SWAP_ATTEMPTS __swap_attempts
# define SHM_SWAP_SUCCESSES __swap_successes
#endif
#define SIGNED(x) ((__typeof__(x))-1 < (__typeof__(x))1)   /* not "< 0": -Wtype-limits */
#define FIELD(kind, name, type, member) do { type s_; memset(&s_, 0, sizeof s_); \
    printf("field %s %s %u %u %d\n", kind, name, (unsigned)offsetof(type, member), \
           (unsigned)sizeof(s_.member), (int)SIGNED(s_.member)); } while (0)
#define PERM(kind, type, perm) do { FIELD(kind, "key", type, perm.PERM_KEY); \
    FIELD(kind, "uid", type, perm.uid); FIELD(kind, "gid", type, perm.gid); \
    FIELD(kind, "cuid", type, perm.cuid); FIELD(kind, "cgid", type, perm.cgid); \
    FIELD(kind, "mode", type, perm.mode); } while (0)
#if TIME32
# define TIME(kind, name, type, member) do { FIELD(kind, name, type, member); \
    FIELD(kind, name "_high", type, __##member##_high); } while (0)
# define TVAL(s, member) ((unsigned long long)(s).__##member##_high << 32 \
                          | (unsigned long)(s).member)
#else
# define TIME(kind, name, type, member) FIELD(kind, name, type, member)
# define TVAL(s, member) ((unsigned long long)(s).member)
#endif
#define VAL(kind, name, v) printf("value %s %s %llu\n", kind, name, (unsigned long long)(v))
#define PERMVALS(kind, p) do { VAL(kind, "key", (unsigned)(p).PERM_KEY); \
    VAL(kind, "uid", (p).uid); VAL(kind, "gid", (p).gid); VAL(kind, "cuid", (p).cuid); \
    VAL(kind, "cgid", (p).cgid); } while (0)

union semun { int val; struct semid_ds *buf; unsigned short *array; struct seminfo *info; };
#define INFO(kind, type, member) FIELD(kind, #member, type, member)
#define INFOVAL(kind, s, member) VAL(kind, #member, (s).member)

static void raw(const char *kind, const void *p, size_t n) {
    const unsigned char *b = p;
    printf("raw %s ", kind);
    while (n--) printf("%02x", *b++);
    printf("\n");
}

int main(void) {
    int one = 1;
    printf("facts %u %s %d %u\n", (unsigned)sizeof(void *), *(char *)&one ? "little" : "big",
           (int)getpid(), (unsigned)SHM_BYTES);
    printf("size shm %u\nsize sem %u\nsize msg %u\n", (unsigned)sizeof(struct shmid_ds),
           (unsigned)sizeof(struct semid_ds), (unsigned)sizeof(struct msqid_ds));
    PERM("shm", struct shmid_ds, shm_perm);
    FIELD("shm", "size", struct shmid_ds, shm_segsz);
    TIME("shm", "atime", struct shmid_ds, shm_atime);
    TIME("shm", "dtime", struct shmid_ds, shm_dtime);
    TIME("shm", "ctime", struct shmid_ds, shm_ctime);
    FIELD("shm", "cpid", struct shmid_ds, shm_cpid);
    FIELD("shm", "lpid", struct shmid_ds, shm_lpid);
    FIELD("shm", "nattch", struct shmid_ds, shm_nattch);
    PERM("sem", struct semid_ds, sem_perm);
    TIME("sem", "otime", struct semid_ds, sem_otime);
    TIME("sem", "ctime", struct semid_ds, sem_ctime);
    FIELD("sem", "nsems", struct semid_ds, sem_nsems);
#ifndef __GLIBC__
    printf("field sem nsems_pad %u %u 0\n", (unsigned)offsetof(struct semid_ds, __sem_nsems_pad),
           (unsigned)sizeof(((struct semid_ds *)0)->__sem_nsems_pad));
#endif
    PERM("msg", struct msqid_ds, msg_perm);
    TIME("msg", "stime", struct msqid_ds, msg_stime);
    TIME("msg", "rtime", struct msqid_ds, msg_rtime);
    TIME("msg", "ctime", struct msqid_ds, msg_ctime);
    FIELD("msg", "cbytes", struct msqid_ds, MSG_CBYTES);
    FIELD("msg", "qnum", struct msqid_ds, msg_qnum);
    FIELD("msg", "qbytes", struct msqid_ds, msg_qbytes);
    FIELD("msg", "lspid", struct msqid_ds, msg_lspid);
    FIELD("msg", "lrpid", struct msqid_ds, msg_lrpid);
    /* What IPC_INFO, SHM_INFO, SEM_INFO and MSG_INFO write. */
    printf("size shminfo %u\nsize shm_info %u\nsize seminfo %u\nsize msginfo %u\n",
           (unsigned)sizeof(struct shminfo), (unsigned)sizeof(struct shm_info),
           (unsigned)sizeof(struct seminfo), (unsigned)sizeof(struct msginfo));
    INFO("shminfo", struct shminfo, shmmax); INFO("shminfo", struct shminfo, shmmin);
    INFO("shminfo", struct shminfo, shmmni); INFO("shminfo", struct shminfo, shmseg);
    INFO("shminfo", struct shminfo, shmall);
    FIELD("shm_info", "used_ids", struct shm_info, SHM_USED_IDS);
    INFO("shm_info", struct shm_info, shm_tot); INFO("shm_info", struct shm_info, shm_rss);
    INFO("shm_info", struct shm_info, shm_swp);
    FIELD("shm_info", "swap_attempts", struct shm_info, SHM_SWAP_ATTEMPTS);
    FIELD("shm_info", "swap_successes", struct shm_info, SHM_SWAP_SUCCESSES);
    INFO("seminfo", struct seminfo, semmap); INFO("seminfo", struct seminfo, semmni);
    INFO("seminfo", struct seminfo, semmns); INFO("seminfo", struct seminfo, semmnu);
    INFO("seminfo", struct seminfo, semmsl); INFO("seminfo", struct seminfo, semopm);
    INFO("seminfo", struct seminfo, semume); INFO("seminfo", struct seminfo, semusz);
    INFO("seminfo", struct seminfo, semvmx); INFO("seminfo", struct seminfo, semaem);
    INFO("msginfo", struct msginfo, msgpool); INFO("msginfo", struct msginfo, msgmap);
    INFO("msginfo", struct msginfo, msgmax); INFO("msginfo", struct msginfo, msgmnb);
    INFO("msginfo", struct msginfo, msgmni); INFO("msginfo", struct msginfo, msgssz);
    INFO("msginfo", struct msginfo, msgtql);
    fflush(stdout);

    /* Real objects, stat'ed through this libc into zeroed buffers (as sysvshm does). */
    long t0 = (long)time(NULL);
    struct shmid_ds sd; struct semid_ds md; struct msqid_ds qd;
    memset(&sd, 0, sizeof sd); memset(&md, 0, sizeof md); memset(&qd, 0, sizeof qd);
    int shmid = shmget(IPC_PRIVATE, SHM_BYTES, IPC_CREAT | 0640);
    if (shmid < 0) { perror("shmget"); return 2; }
    void *addr = shmat(shmid, NULL, 0);
    int rc = addr == (void *)-1 ? -1 : shmctl(shmid, IPC_STAT, &sd);
    if (addr != (void *)-1) shmdt(addr);
    shmctl(shmid, IPC_RMID, NULL);
    if (rc) { perror("shmat/shmctl"); return 2; }

    int semid = semget(IPC_PRIVATE, 3, IPC_CREAT | 0604);
    if (semid < 0) { perror("semget"); return 2; }
    struct sembuf op = {1, 2, 0};
    union semun arg; arg.buf = &md;
    rc = semop(semid, &op, 1) || semctl(semid, 0, IPC_STAT, arg);
    semctl(semid, 0, IPC_RMID);
    if (rc) { perror("semop/semctl"); return 2; }

    int msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0620);
    if (msqid < 0) { perror("msgget"); return 2; }
    struct { long mtype; char mtext[17]; } msg = {5, "sixteen chars..."};
    rc = msgsnd(msqid, &msg, sizeof msg.mtext, 0) || msgctl(msqid, IPC_STAT, &qd);
    msgctl(msqid, IPC_RMID, NULL);
    if (rc) { perror("msgsnd/msgctl"); return 2; }
    printf("window %ld %ld\n", t0, (long)time(NULL));

    raw("shm", &sd, sizeof sd); raw("sem", &md, sizeof md); raw("msg", &qd, sizeof qd);
    PERMVALS("shm", sd.shm_perm); VAL("shm", "size", sd.shm_segsz);
    VAL("shm", "atime", TVAL(sd, shm_atime)); VAL("shm", "dtime", TVAL(sd, shm_dtime));
    VAL("shm", "ctime", TVAL(sd, shm_ctime)); VAL("shm", "cpid", sd.shm_cpid);
    VAL("shm", "lpid", sd.shm_lpid); VAL("shm", "nattch", sd.shm_nattch);
    PERMVALS("sem", md.sem_perm); VAL("sem", "otime", TVAL(md, sem_otime));
    VAL("sem", "ctime", TVAL(md, sem_ctime)); VAL("sem", "nsems", md.sem_nsems);
    PERMVALS("msg", qd.msg_perm); VAL("msg", "stime", TVAL(qd, msg_stime));
    VAL("msg", "rtime", TVAL(qd, msg_rtime)); VAL("msg", "ctime", TVAL(qd, msg_ctime));
    VAL("msg", "cbytes", qd.MSG_CBYTES); VAL("msg", "qnum", qd.msg_qnum);
    VAL("msg", "qbytes", qd.msg_qbytes); VAL("msg", "lspid", qd.msg_lspid);
    VAL("msg", "lrpid", qd.msg_lrpid);

    struct shminfo si; struct shm_info su; struct seminfo ei; struct msginfo mi;
    memset(&si, 0, sizeof si); memset(&su, 0, sizeof su);
    memset(&ei, 0, sizeof ei); memset(&mi, 0, sizeof mi);
    union semun info; info.info = &ei;
    if (shmctl(0, IPC_INFO, (struct shmid_ds *)&si) < 0 || shmctl(0, SHM_INFO,
            (struct shmid_ds *)&su) < 0 || semctl(0, 0, IPC_INFO, info) < 0
            || msgctl(0, IPC_INFO, (struct msqid_ds *)&mi) < 0) { perror("*_INFO"); return 2; }
    raw("shminfo", &si, sizeof si); raw("shm_info", &su, sizeof su);
    raw("seminfo", &ei, sizeof ei); raw("msginfo", &mi, sizeof mi);
    INFOVAL("shminfo", si, shmmax); INFOVAL("shminfo", si, shmmin);
    INFOVAL("shminfo", si, shmmni); INFOVAL("shminfo", si, shmseg);
    INFOVAL("shminfo", si, shmall); VAL("shm_info", "used_ids", su.SHM_USED_IDS);
    INFOVAL("shm_info", su, shm_tot); INFOVAL("shm_info", su, shm_rss);
    INFOVAL("shm_info", su, shm_swp); VAL("shm_info", "swap_attempts", su.SHM_SWAP_ATTEMPTS);
    VAL("shm_info", "swap_successes", su.SHM_SWAP_SUCCESSES);
    INFOVAL("seminfo", ei, semmap); INFOVAL("seminfo", ei, semmni);
    INFOVAL("seminfo", ei, semmns); INFOVAL("seminfo", ei, semmnu);
    INFOVAL("seminfo", ei, semmsl); INFOVAL("seminfo", ei, semopm);
    INFOVAL("seminfo", ei, semume); INFOVAL("seminfo", ei, semusz);
    INFOVAL("seminfo", ei, semvmx); INFOVAL("seminfo", ei, semaem);
    INFOVAL("msginfo", mi, msgpool); INFOVAL("msginfo", mi, msgmap);
    INFOVAL("msginfo", mi, msgmax); INFOVAL("msginfo", mi, msgmnb);
    INFOVAL("msginfo", mi, msgmni); INFOVAL("msginfo", mi, msgssz);
    INFOVAL("msginfo", mi, msgtql);
    return 0;
}
"""
_SHM_BYTES = 3 * 4096 + 123      # not a multiple of the page size, nor a power of two
_MODES = {"shm": 0o640, "sem": 0o604, "msg": 0o620}

# name: (compiler command lines to try, ELF e_machine, multiarch, qemu-user binaries, ABI)
_TARGETS = {
    "x86_64": ([["x86_64-linux-gnu-gcc"], ["gcc"]], 62, "x86_64-linux-gnu",
               ["qemu-x86_64-static", "qemu-x86_64"], "x86_64"),
    "x86_64-musl": ([["musl-gcc"]], 62, "x86_64-linux-musl",
                    ["qemu-x86_64-static", "qemu-x86_64"], "x86_64"),
    "i386": ([["i686-linux-gnu-gcc"], ["gcc", "-m32"]], 3, "i386-linux-gnu",
             ["qemu-i386-static", "qemu-i386"], "generic32"),
    "armhf": ([["arm-linux-gnueabihf-gcc"], ["gcc"]], 40, "arm-linux-gnueabihf",
              ["qemu-arm-static", "qemu-arm"], "generic32"),
    "arm64": ([["aarch64-linux-gnu-gcc"], ["gcc"]], 183, "aarch64-linux-gnu",
              ["qemu-aarch64-static", "qemu-aarch64"], "generic64"),
    "s390x": ([["s390x-linux-gnu-gcc"], ["gcc"]], 22, "s390x-linux-gnu",
              ["qemu-s390x-static", "qemu-s390x"], "s390x"),
}
_CODES = {"q": (8, True), "Q": (8, False), "i": (4, True), "I": (4, False), "h": (2, True),
          "H": (2, False), "M": (4, False)}


def _elf_machine(path):
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        return None
    return struct.unpack_from("<H" if header[5] == 1 else ">H", header, 18)[0]


def _decode(raw, fields, byteorder):
    """Decode an IPC_STAT buffer with declared fields, independently of sysvshm._unpack."""
    order = "<" if byteorder == "little" else ">"
    out = {}
    for name, (offset, code) in fields.items():
        if code == "T":
            low, high = struct.unpack_from(order + "II", raw, offset)
            out[name] = high << 32 | low
        elif code == "M":
            value = struct.unpack_from(order + "I", raw, offset)[0]
            out[name] = value >> 16 if value > 0xFFFF else value
        else:
            out[name] = struct.unpack_from(order + code, raw, offset)[0]
    return out


class _Probe(object):
    def __init__(self, text):
        self.fields, self.sizes, self.raw, self.values = {}, {}, {}, {}
        for line in text.splitlines():
            words = line.split()
            if words[0] == "facts":
                self.bits = int(words[1]) * 8
                self.byteorder, self.pid, self.shm_bytes = words[2], int(words[3]), int(words[4])
            elif words[0] == "size":
                self.sizes[words[1]] = int(words[2])
            elif words[0] == "field":
                self.fields.setdefault(words[1], {})[words[2]] = (
                    int(words[3]), int(words[4]), words[5] == "1")
            elif words[0] == "raw":
                self.raw[words[1]] = bytes.fromhex(words[2])
            elif words[0] == "value":
                self.values.setdefault(words[1], {})[words[2]] = int(words[3])
            elif words[0] == "window":
                self.window = (int(words[1]), int(words[2]))


class LayoutProbeTest(unittest.TestCase):
    """Every declared layout against what the target's compiler and libc say."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sysvshm-probe-")
        with open(os.path.join(cls.tmp, "probe.c"), "w") as f:
            f.write(_PROBE_C)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def _build(self, target):
        compilers, machine, multiarch = _TARGETS[target][:3]
        out = os.path.join(self.tmp, "probe-" + target)
        tried = []
        for command in compilers:
            if not shutil.which(command[0]):
                tried.append("%s: not installed" % command[0])
                continue
            proc = subprocess.run(command + C_WARNINGS + [
                "-std=gnu99", "-static", "-O1", "-DSHM_BYTES=%d" % _SHM_BYTES, "-o", out,
                os.path.join(self.tmp, "probe.c")], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, universal_newlines=True, timeout=120 * SCALE)
            # The target's own compiler must build the probe cleanly; a fallback (gcc -m32
            # without i386 headers, for example) may not be able to.
            self.assertFalse(proc.returncode != 0 and command is compilers[0],
                             "%s: %s" % (" ".join(command), proc.stdout.strip()[-2000:]))
            if proc.returncode != 0:
                tried.append("%s: %s" % (" ".join(command), proc.stdout.strip()[-300:]))
                continue
            if _elf_machine(out) != machine:
                tried.append("%s builds for ELF machine %s" % (" ".join(command),
                                                                _elf_machine(out)))
                continue
            return out
        self.skipTest("no compiler for %s (%s)" % (target, "; ".join(tried)))

    def _run(self, target, binary):
        """Run the probe natively if the kernel can, else under qemu-user; (probe, emulated)."""
        attempts = [[binary]] + [[q, binary] for q in _TARGETS[target][3] if shutil.which(q)]
        errors = []
        for command in attempts:
            try:
                proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      universal_newlines=True, timeout=60 * SCALE)
            except OSError as exc:
                if exc.errno != errno.ENOEXEC:
                    raise
                errors.append("%s: %s" % (" ".join(command), exc))
                continue
            self.assertEqual(proc.returncode, 0, "%s failed: %s" % (" ".join(command),
                                                                     proc.stderr))
            return _Probe(proc.stdout), len(command) > 1
        self.skipTest("cannot run a %s program here (%s; no qemu-user for it)"
                      % (target, "; ".join(errors)))

    def _check(self, target):
        binary = self._build(target)
        probe, emulated = self._run(target, binary)
        machine, multiarch, abi = _TARGETS[target][1], _TARGETS[target][2], _TARGETS[target][4]
        # The choice: what _detect_abi makes of this target's interpreter facts.
        self.assertEqual(sysvshm._detect_abi(multiarch, probe.bits, probe.byteorder), abi)
        self.assertEqual(sysvshm._ELF_MACHINES[machine], multiarch.split("-")[0])
        layout = sysvshm._LAYOUTS[abi]
        for kind in ("shm", "sem", "msg"):
            size, fields = layout[kind]
            probed = probe.fields[kind]
            self.assertEqual(size, probe.sizes[kind], "%s: sizeof(%s)" % (target, kind))
            expected_names = {n for n in probed if not n.endswith(("_high", "_pad"))}
            self.assertEqual(set(fields), expected_names, "%s: %s fields declared" % (target, kind))
            for name, (offset, code) in sorted(fields.items()):
                where = "%s: %s.%s" % (target, kind, name)
                c_offset, c_size, c_signed = probed[name]
                self.assertEqual(offset, c_offset, where + " offset")
                if code == "T":
                    self.assertEqual(c_size, 4, where + ": 'T' is for a 32-bit time")
                    self.assertEqual(probed[name + "_high"][:2], (offset + 4, 4),
                                     where + ": its high word must follow it")
                elif c_size == 2 and name == "nsems" and "nsems_pad" in probed:
                    # musl: unsigned short + padding filling the kernel's unsigned long.
                    pad_offset, pad_size = probed["nsems_pad"][:2]
                    self.assertEqual(_CODES[code][0], c_size + pad_size, where + " width")
                    self.assertEqual({c_offset, pad_offset}, {offset, offset + (
                        c_size if probe.byteorder == "little" else pad_size)}, where)
                else:
                    self.assertEqual(_CODES[code], (c_size, c_signed),
                                     where + " (width, signed) of %r" % code)
            # A real IPC_STAT through the target's libc, decoded with the declaration.
            got = _decode(probe.raw[kind], fields, probe.byteorder)
            for name, value in probe.values[kind].items():
                if name in got:
                    self.assertEqual(got[name], value, "%s: %s.%s decoded" % (target, kind, name))
            uid, gid = got["uid"], got["gid"]
            self.assertEqual((got["key"], got["cuid"], got["cgid"], got["mode"]),
                             (0, uid, gid, _MODES[kind]), "%s: %s perm" % (target, kind))
            self.assertEqual((uid, gid), (os.geteuid(), os.getegid()), target)
        # The kernel stamps IPC times from its coarse clock, which may still be a tick behind
        # the second that a precise time() (musl) already reads: allow one second below.
        low, high = probe.window[0] - 1, probe.window[1]
        shm, sem, msg = (_decode(probe.raw[k], layout[k][1], probe.byteorder)
                         for k in ("shm", "sem", "msg"))
        self.assertEqual((shm["size"], shm["cpid"], shm["lpid"], shm["nattch"], shm["dtime"]),
                         (_SHM_BYTES, probe.pid, probe.pid, 1, 0), target + ": shm")
        times = [("shm.atime", shm["atime"]), ("shm.ctime", shm["ctime"]),
                 ("sem.otime", sem["otime"]), ("sem.ctime", sem["ctime"]),
                 ("msg.stime", msg["stime"]), ("msg.ctime", msg["ctime"])]
        if emulated and probe.bits == 32 and (msg["qnum"], msg["stime"]) == (17, 0):
            # qemu-user 10.0 and 11.1 (Debian 13, sid; 7.2 is right) answer a 32-bit ARM
            # guest's IPC_STAT of a queue with the times zeroed and every later field 4 bytes
            # further on (the same static probe reads the real values under 7.2).  Accept
            # exactly that: the layout itself was checked against the compiler above.
            msg = _decode(probe.raw["msg"][:36] + probe.raw["msg"][40:], layout["msg"][1],
                          probe.byteorder)
            self.assertEqual((msg["stime"], msg["rtime"], msg["ctime"]), (0, 0, 0),
                             target + ": qemu's zeroed msg times")
            times = times[:4]
        self.assertEqual((sem["nsems"], msg["qnum"], msg["cbytes"], msg["rtime"]), (3, 1, 17, 0),
                         target + ": sem/msg")
        if emulated and probe.bits == 64 and (msg["lspid"], msg["lrpid"]) != (probe.pid, 0):
            # qemu-user before its 2025 fix (7.2 here; Debian 13's 10.0 and sid's 11.1 are
            # right) writes msg_lspid/msg_lrpid as 64-bit longs: the pid lands as one 8-byte
            # value at lspid's offset.  Accept exactly that.
            order = "<" if probe.byteorder == "little" else ">"
            self.assertEqual(struct.unpack_from(order + "Q", probe.raw["msg"],
                                                layout["msg"][1]["lspid"][0])[0], probe.pid,
                             target + ": qemu's msg_lspid")
        else:
            self.assertEqual((msg["lspid"], msg["lrpid"]), (probe.pid, 0), target + ": msg pids")
        self.assertGreater(msg["qbytes"], 17, target)
        # The *_INFO structs: each field's offset, width and signedness, and a real IPC_INFO
        # (SHM_INFO for shm_info) through the target's libc, decoded in its byte order.
        for kind in ("shminfo", "shm_info", "seminfo", "msginfo"):
            size, fields = layout[kind]
            self.assertEqual(size, probe.sizes[kind], "%s: sizeof(struct %s)" % (target, kind))
            self.assertEqual(dict((name, (offset,) + _CODES[code])
                                  for name, (offset, code) in fields.items()),
                             dict((name, (o, w, signed)) for name, (o, w, signed)
                                  in probe.fields[kind].items()), "%s: %s" % (target, kind))
            self.assertEqual(_decode(probe.raw[kind], fields, probe.byteorder),
                             probe.values[kind], "%s: %s decoded" % (target, kind))
        self.assertEqual(probe.values["seminfo"]["semvmx"], sysvshm.SEMAPHORE_VALUE_MAX, target)
        for name, value in times:
            self.assertTrue(low <= value <= high, "%s: %s = %d outside [%d, %d]"
                            % (target, name, value, low, high))

    def test_x86_64(self):
        self._check("x86_64")

    def test_x86_64_musl(self):
        self._check("x86_64-musl")

    def test_i386(self):
        self._check("i386")

    def test_armhf(self):
        self._check("armhf")

    def test_arm64(self):
        self._check("arm64")

    def test_s390x(self):
        self._check("s390x")

    def test_every_declared_layout_has_a_probe(self):
        self.assertEqual(set(sysvshm._LAYOUTS), {t[4] for t in _TARGETS.values()})


class InterpreterFactsTest(unittest.TestCase):
    """The layout comes from the running interpreter, never from the kernel's machine name."""

    def test_abi_of_this_interpreter(self):
        multiarch = getattr(sys.implementation, "_multiarch", None)
        if not multiarch:
            self.skipTest("this interpreter has no sys.implementation._multiarch")
        facts = (multiarch, ctypes.sizeof(ctypes.c_void_p) * 8, sys.byteorder)
        self.assertEqual(sysvshm.ABI, sysvshm._detect_abi(*facts))
        if "SYSVSHM_CROSS_ARCH" in os.environ:
            expected = {"i386": "generic32", "armhf": "generic32", "arm64": "generic64",
                        "s390x": "s390x"}[os.environ["SYSVSHM_CROSS_ARCH"]]
            self.assertEqual(sysvshm.ABI, expected)
            pages = 4 if os.environ["SYSVSHM_CROSS_ARCH"] == "armhf" else 1   # bits/shmlba.h
            self.assertEqual(sysvshm._SHMLBA, pages * sysvshm.PAGE_SIZE)

    def test_elf_header_agrees_with_multiarch(self):
        multiarch = getattr(sys.implementation, "_multiarch", None)
        if not multiarch:
            self.skipTest("this interpreter has no sys.implementation._multiarch")
        saved = sys.implementation._multiarch
        try:
            sys.implementation._multiarch = None
            from_elf = sysvshm._interpreter_arch()
        finally:
            sys.implementation._multiarch = saved
        if multiarch.startswith("x86_64") and "x32" in multiarch:
            self.assertEqual(from_elf, "x86_64-linux-gnux32")
        else:
            self.assertEqual(from_elf, multiarch.split("-")[0])

    def test_kernel_machine_name_is_not_consulted(self):
        real_uname = os.uname

        def lying_uname():
            raise AssertionError("_detect_abi asked the kernel for its machine name")
        os.uname = lying_uname
        try:
            abi = sysvshm._detect_abi()
        finally:
            os.uname = real_uname
        self.assertEqual(abi, sysvshm.ABI)

    def test_32bit_interpreter_on_64bit_kernel(self):
        # uname says x86_64 / aarch64 there; the interpreter's own facts say 32-bit.
        self.assertEqual(sysvshm._detect_abi("i386-linux-gnu", 32, "little"), "generic32")
        self.assertEqual(sysvshm._detect_abi("arm-linux-gnueabihf", 32, "little"), "generic32")
        self.assertEqual(sysvshm._detect_abi("s390x-linux-gnu", 64, "big"), "s390x")
        for facts in (("powerpc64-linux-gnu", 64, "big"), ("mips64el-linux-gnuabi64", 64,
                                                         "little"), ("s390x-linux-gnu", 64,
                                                                     "little")):
            with self.assertRaises(ImportError):
                sysvshm._detect_abi(*facts)


def _proc_sysvipc(kind, ident):
    """The kernel's own row for an object (/proc/sysvipc/shm|sem|msg), as a dict of ints."""
    with open("/proc/sysvipc/" + kind) as f:
        header = f.readline().split()
        for line in f:
            fields = {name: int(word, 8 if name == "perms" else 10)     # perms is octal
                      for name, word in zip(header, line.split())}
            if fields[{"shm": "shmid", "sem": "semid", "msg": "msqid"}[kind]] == ident:
                return fields
    raise AssertionError("%s id %d is not in /proc/sysvipc/%s" % (kind, ident, kind))


class AbiRoundTripTest(unittest.TestCase):
    """Values set through every path read back exactly, here, on whatever ABI this is.

    Values chosen so that a byte-order or width mistake changes them: 1 and 7 land in the wrong
    half of a 64-bit union as 0, 256 and 258 swap to 1 and 513 in 16 bits."""

    VALUES = [0, 1, 7, 255, 256, 258, 32767]

    def _sem(self, value):
        sem = sysvshm.Semaphore(sysvshm.IPC_PRIVATE, sysvshm.IPC_CREX, 0o600, initial_value=value)
        self.addCleanup(sem.remove)
        return sem

    def _count_down(self, member, expected):
        """What the kernel really holds: exactly `expected` non-blocking decrements succeed."""
        member.block = False
        if expected:
            member.acquire(delta=expected)
        with self.assertRaises(sysvshm.BusyError):
            member.acquire(delta=1)

    def test_semaphore_initial_value(self):
        for value in self.VALUES:
            sem = self._sem(value)
            self.assertEqual(sem.value, value)
            self._count_down(sem, value)

    def test_semaphore_value_setter(self):
        sem = self._sem(0)
        for value in self.VALUES + [5, 0]:
            sem.value = value
            self.assertEqual(sem.value, value)
        sem.value = 258
        self._count_down(sem, 258)

    def test_semaphore_value_max(self):
        sem = self._sem(0)
        sem.value = sysvshm.SEMAPHORE_VALUE_MAX
        self.assertEqual(sem.value, sysvshm.SEMAPHORE_VALUE_MAX)

    def test_semaphore_set_initial_values_and_setall(self):
        values = [7, 0, 256, 258, 32767, 1]
        semset = sysvshm.SemaphoreSet(sysvshm.IPC_PRIVATE, len(values), sysvshm.IPC_CREX, 0o600,
                                      initial_values=values)
        self.addCleanup(semset.remove)
        self.assertEqual(len(semset), len(values))
        self.assertEqual(semset.values, values)
        self.assertEqual([m.value for m in semset], values)
        semset.values = list(reversed(values))                   # SETALL
        self.assertEqual(semset.values, list(reversed(values)))  # GETALL
        self.assertEqual([m.value for m in semset], list(reversed(values)))   # GETVAL
        semset[2].value = 5                                      # SETVAL on a member
        self.assertEqual(semset.values[2], 5)
        self._count_down(semset[2], 5)
        self._count_down(semset[5], 7)

    def test_semaphore_set_single_initial_value(self):
        semset = sysvshm.SemaphoreSet(sysvshm.IPC_PRIVATE, 4, sysvshm.IPC_CREX, 0o600,
                                      initial_values=258)
        self.addCleanup(semset.remove)
        self.assertEqual(semset.values, [258] * 4)

    def test_semaphore_stat_attributes(self):
        semset = sysvshm.SemaphoreSet(sysvshm.IPC_PRIVATE, 5, sysvshm.IPC_CREX, 0o640)
        self.addCleanup(semset.remove)
        kernel = _proc_sysvipc("sem", semset.id)
        self.assertEqual(len(semset), kernel["nsems"])
        self.assertEqual(len(semset), 5)
        self.assertEqual(semset.mode, kernel["perms"] & 0o777)
        self.assertEqual(semset.mode, 0o640)
        self.assertEqual((semset.uid, semset.gid, semset.cuid, semset.cgid),
                         (kernel["uid"], kernel["gid"], kernel["cuid"], kernel["cgid"]))
        sem = self._sem(3)
        kernel = _proc_sysvipc("sem", sem.id)
        self.assertEqual((sem.o_time, sem.last_change_time), (kernel["otime"], kernel["ctime"]))
        self.assertNotEqual(sem.o_time, 0)    # the creator's initialisation mark (FACTS §6)
        self.assertEqual(sem.last_pid, os.getpid())

    def test_mode_setter(self):
        sem = self._sem(0)
        for mode in (0o640, 0o604, 0o600, 0o777, 0o400):
            sem.mode = mode
            self.assertEqual(sem.mode, mode)
            self.assertEqual(_proc_sysvipc("sem", sem.id)["perms"] & 0o777, mode)
        sem.mode = 0o600

    def test_shared_memory_stat_attributes(self):
        size = 3 * sysvshm.PAGE_SIZE + 123
        mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, sysvshm.IPC_CREX, 0o640, size)
        removed = []
        self.addCleanup(lambda: removed or mem.remove())
        self.addCleanup(mem.detach)
        kernel = _proc_sysvipc("shm", mem.id)
        self.assertEqual((mem.size, mem.creator_pid, mem.last_pid, mem.number_attached),
                         (size, os.getpid(), os.getpid(), 1))
        self.assertEqual((mem.size, mem.creator_pid, mem.last_pid, mem.number_attached),
                         (kernel["size"], kernel["cpid"], kernel["lpid"], kernel["nattch"]))
        self.assertEqual((mem.mode, kernel["perms"] & 0o777), (0o640, 0o640))
        self.assertEqual((mem.last_attach_time, mem.last_detach_time, mem.last_change_time),
                         (kernel["atime"], kernel["dtime"], kernel["ctime"]))
        self.assertEqual((mem.uid, mem.gid, mem.cuid, mem.cgid),
                         (kernel["uid"], kernel["gid"], kernel["cuid"], kernel["cgid"]))
        mem.mode = 0o604
        self.assertEqual((mem.mode, _proc_sysvipc("shm", mem.id)["perms"] & 0o777),
                         (0o604, 0o604))
        second = sysvshm.attach(mem.id)
        self.addCleanup(second.detach)
        self.assertEqual(mem.number_attached, 2)
        self.assertFalse(mem.removed)
        mem.remove()
        removed.append(True)
        self.assertTrue(mem.removed)     # SHM_DEST, a status bit of the mode word

    def _queue_with_messages(self):
        """A private queue holding three messages, sent through libc; (id, total bytes)."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.msgget.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        msqid = libc.msgget(sysvshm.IPC_PRIVATE, sysvshm.IPC_CREX | 0o620)
        self.assertGreaterEqual(msqid, 0, os.strerror(ctypes.get_errno()))
        self.addCleanup(libc.msgctl, msqid, 0, None)            # IPC_RMID

        class Message(ctypes.Structure):
            _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 300)]
        sizes = (1, 17, 258)
        for mtype, size in zip((1, 258, 2 ** 31 - 1), sizes):
            message = Message(mtype, b"x" * size)
            self.assertEqual(libc.msgsnd(msqid, ctypes.byref(message), size, 0), 0,
                             os.strerror(ctypes.get_errno()))
        return msqid, sum(sizes)

    def test_message_queue_layout(self):
        # Through the declared layout directly, until MessageQueue exists in the module.
        msqid, total = self._queue_with_messages()
        stat = sysvshm._stat("msg", msqid)
        kernel = _proc_sysvipc("msg", msqid)
        self.assertEqual((stat["qnum"], stat["cbytes"], stat["mode"] & 0o777), (3, total, 0o620))
        self.assertEqual((stat["qnum"], stat["cbytes"], stat["stime"], stat["rtime"],
                          stat["ctime"], stat["mode"] & 0o777, stat["uid"], stat["cgid"]),
                         (kernel["qnum"], kernel["cbytes"], kernel["stime"], kernel["rtime"],
                          kernel["ctime"], kernel["perms"] & 0o777, kernel["uid"],
                          kernel["cgid"]))
        with open("/proc/sys/kernel/msgmnb") as f:
            self.assertEqual(stat["qbytes"], int(f.read()))

    @unittest.skipIf(QEMU_MSG_PIDS_WRONG, "qemu-user 7.2 garbles msg pids of 64-bit guests")
    def test_message_queue_pids(self):
        msqid, _ = self._queue_with_messages()
        stat = sysvshm._stat("msg", msqid)
        kernel = _proc_sysvipc("msg", msqid)
        self.assertEqual((stat["lspid"], stat["lrpid"]), (os.getpid(), 0))
        self.assertEqual((stat["lspid"], stat["lrpid"]), (kernel["lspid"], kernel["lrpid"]))

    @unittest.skipUnless(hasattr(sysvshm, "MessageQueue"), "sysvshm has no MessageQueue yet")
    def test_message_queue_types_and_sizes(self):
        mq = sysvshm.MessageQueue(sysvshm.IPC_PRIVATE, sysvshm.IPC_CREX, 0o600)
        self.addCleanup(mq.remove)
        sent = [(b"a", 1), (b"b" * 17, 258), (b"c" * 258, 2 ** 31 - 1), (b"", 7)]
        for message, mtype in sent:
            mq.send(message, True, mtype)
        self.assertEqual(mq.current_messages, len(sent))
        kernel = _proc_sysvipc("msg", mq.id)
        self.assertEqual(mq.current_messages, kernel["qnum"])
        if not QEMU_MSG_PIDS_WRONG:
            self.assertEqual(mq.last_send_pid, kernel["lspid"])
        self.assertEqual(mq.receive(True, 258), (b"b" * 17, 258))
        self.assertEqual(mq.receive(True, 2 ** 31 - 1), (b"c" * 258, 2 ** 31 - 1))
        self.assertEqual(mq.receive(), (b"a", 1))
        self.assertEqual(mq.receive(), (b"", 7))
        if not QEMU_MSG_PIDS_WRONG:
            self.assertEqual(mq.last_receive_pid, os.getpid())
        mq.max_size = 4097
        self.assertEqual(mq.max_size, 4097)


if __name__ == "__main__":
    unittest.main()


# --- The benchmark script keeps working (no timing assertions) ---------------------------------
class TestBenchmarkScript(unittest.TestCase):
    """`benchmarks/bench_sysvshm.py --quick` runs to the end and prints its table."""

    BENCH = os.path.join(HERE, "benchmarks", "bench_sysvshm.py")

    def test_quick_run_prints_the_table(self):
        try:
            done = subprocess.run([sys.executable, self.BENCH, "--quick"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=180 * SCALE)
        except subprocess.TimeoutExpired as exc:
            self.fail("bench_sysvshm.py --quick did not finish in %d s" % exc.timeout)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        out = done.stdout
        for title in ("uncontended acquire+release pair", "64-byte read at an offset",
                      "copy into a segment", "create+attach+detach+remove", "import time",
                      "Targets"):
            self.assertIn(title, out)
        # sysvshm's own rows were measured (not skipped, not failed) on every interpreter.
        for row in ("sysvshm Semaphore ", "sysvshm read(64, o)", "sysvshm buf[:] = src",
                    "sysvshm SharedMemory(IPC_PRIVATE, IPC_CREAT)", "import sysvshm "):
            line = [x for x in out.splitlines() if x.strip().startswith(row.strip())]
            self.assertTrue(line, "no row %r in:\n%s" % (row, out))
            self.assertNotIn("error:", line[0], line[0])
            self.assertNotIn("skipped:", line[0], line[0])
        self.assertNotIn("error:", out, out)


# --- Channel (issue 12) ----------------------------------------------------------------------------
CHANNEL_ROUNDS = int(os.environ.get("SYSVSHM_CHANNEL_ROUNDS", "100" if EMULATOR else "1000"))


class TestChannel(Base):
    """sysvshm.Channel: copy and in-place paths, limits, timeouts, close/drain, layout checks,
    race-free creation, N x M processes, and SIGKILL at random points."""

    def new_channel(self, slots=4, slot_size=100, key=None, flags=IPC_CREX):
        ch = sysvshm.Channel(key, flags, slots=slots, slot_size=slot_size)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, ch.semid)
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, ch.id)
        CREATED["sem"].add(ch.semid)
        CREATED["shm"].add(ch.id)
        return ch

    def values(self, ch):
        return sysvshm.SemaphoreSet(ch.key).values

    def assertIdle(self, ch, pending=0):
        """Nobody holds anything: after a lock/settle, MUTEX 1, FREE + READY == slots."""
        ch._lock()
        ch._settle()
        ch._final(ch._op_unlock)
        if pending is None:
            pending = ch.pending
        mutex, free, ready, done = self.values(ch)
        self.assertEqual((mutex, free + ready, ready, done), (1, ch.slots, pending, 0))
        self.assertEqual(ch.pending, pending)

    def test_copy_and_in_place_paths(self):
        ch = self.new_channel()
        ch.send(b"one")
        ch.send(bytearray(b"two"))
        ch.send(memoryview(b"xthreex")[1:-1])
        self.assertEqual(ch.pending, 3)
        self.assertEqual([ch.receive(), ch.receive()], [b"one", b"two"])
        buf = bytearray(10)
        self.assertEqual(ch.receive_into(buf), 5)
        self.assertEqual(buf[:5], b"three")
        with ch.reserve(4) as out:
            self.assertEqual(len(out), 4)
            out[:] = b"\x01\x02\x03\x04"
        with ch.receive_view() as view:
            self.assertEqual(bytes(view), b"\x01\x02\x03\x04")
        ch.send(b"")
        self.assertEqual(ch.receive(), b"")
        self.assertRaises(TypeError, ch.send, "text")
        self.assertIdle(ch)

    def test_zero_copy_is_the_segment(self):
        ch = self.new_channel()
        with ch.reserve(8) as out:
            out[:] = b"inplace!"
            raw = sysvshm.attach(ch.id)
            self.addCleanup(raw.detach)
            self.assertIn(b"inplace!", raw.read())
        with ch.receive_view() as view:
            raw.write(b"CHANGED!", raw.read().index(b"inplace!"))
            self.assertEqual(bytes(view), b"CHANGED!")

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_numpy_on_reserved_and_received(self):
        ch = self.new_channel(slot_size=800)
        with ch.reserve(800) as out:
            numpy.frombuffer(out, dtype=numpy.float64)[:] = numpy.arange(100.0)
        with ch.receive_view() as view:
            self.assertEqual(numpy.frombuffer(view, dtype=numpy.float64).sum(), 4950.0)

    def test_exception_abandons_a_reservation(self):
        ch = self.new_channel(slots=1)
        for _ in range(3):      # the one slot comes back each time
            with self.assertRaises(KeyError):
                with ch.reserve(5) as out:
                    out[:] = b"lost!"
                    raise KeyError
        self.assertIdle(ch)
        self.assertRaises(sysvshm.BusyError, ch.receive, 0)

    def test_in_place_reuses_each_slot_s_view(self):
        """reserve() and receive_view() hand out each slot's own view, made once per slot (and
        length): a stream of same-sized messages makes no new view."""
        ch = self.new_channel(slots=2, slot_size=64)
        views = []
        for i in range(20):
            with ch.reserve(8) as out:
                out[:] = b"%08d" % i
            views.append(out)
            with ch.receive_view() as view:
                self.assertEqual(bytes(view), b"%08d" % i)
            views.append(view)
        self.assertLessEqual(len(set(map(id, views))), 2)        # held alive: one per slot
        self.assertIdle(ch)

    def test_in_place_manager_is_entered_and_exited_once(self):
        ch = self.new_channel(slots=2)
        ch.send(b"one")
        manager = ch.receive_view(0)
        with manager as view:
            self.assertEqual(bytes(view), b"one")
            self.assertRaises(RuntimeError, manager.__enter__)   # no second slot taken
        self.assertRaises(RuntimeError, manager.__exit__, None, None, None)  # no double free
        self.assertRaises(RuntimeError, manager.__enter__)
        self.assertIdle(ch)
        ch.send(b"two")
        stale = ch.reserve(3)
        with stale as out:
            out[:] = b"abc"
        fresh = ch.receive_view(0)           # a new manager: the stale one cannot act for it
        self.assertRaises(RuntimeError, stale.__enter__)
        with fresh as view:
            self.assertEqual(bytes(view), b"two")
        self.assertEqual(ch.receive(0), b"abc")
        unused = ch.reserve(3)                                # never entered: nothing taken
        del unused
        self.assertIdle(ch)

    def test_a_released_view_costs_nothing(self):
        """The caller may release the view it was given (`with view:`): the slot's next user
        gets a new one, and nothing is lost."""
        ch = self.new_channel(slots=1, slot_size=64)
        for _ in range(3):
            with ch.reserve(3) as out, out:
                out[:] = b"one"
            with ch.receive_view(0) as view:
                self.assertEqual(bytes(view), b"one")
                view.release()
            self.assertIdle(ch)

    def test_a_dropped_block_gives_its_slot_back(self):
        """An entered block that is never exited (a dropped ExitStack) gives its slot back when
        its context manager is collected."""
        ch = self.new_channel(slots=2)
        for make in (lambda: ch.receive_view(0), lambda: ch.reserve(2)):
            ch.send(b"m1")
            stack = contextlib.ExitStack()
            stack.enter_context(make())
            self.assertRaises(BufferError, ch.detach)
            del stack
            gc.collect()
            ch.receive(0) if ch.pending else None
            self.assertIdle(ch)
        ch.detach()

    def test_a_forked_child_never_gives_back_its_parent_s_slot(self):
        """A child that drops its inherited copy of an entered block (and exits) leaves the
        parent's slot alone: the parent's message and a later one both arrive intact."""
        ch = self.new_channel(slots=2, slot_size=16)
        manager = ch.reserve(1)
        out = manager.__enter__()

        def child():
            del globals_holder[:]
            gc.collect()
            return 0
        globals_holder = [manager, out]
        del manager, out
        pid = self.fork(child)
        self.assertEqual(self.reap(pid), 0)
        manager, out = globals_holder
        ch.send(b"x")
        self.assertEqual(ch.receive(0), b"x")
        ch.send(b"yyyy")                    # (would land in the parent's slot, were it freed)
        out[0] = 65
        manager.__exit__(None, None, None)
        self.assertEqual([ch.receive(0), ch.receive(0)], [b"yyyy", b"A"])
        self.assertIdle(ch)

    def test_detach_releases_a_replaced_view(self):
        ch = self.new_channel()
        ch.send(b"short")
        with ch.receive_view() as kept:
            pass
        ch.send(b"longer message")          # (ring order: it may land in the same slot)
        for _ in range(ch.slots):
            ch.send(b"longer message")
            with ch.receive_view() as view:
                self.assertEqual(bytes(view)[:6], b"longer")
        ch.receive(0)
        ch.detach()                         # the replaced views were released
        self.assertRaises(ValueError, bytes, kept)

    def test_an_exception_that_lands_holding_mutex_gives_everything_back(self):
        """A signal handler's exception can land between a semop and the code that would give
        it back: the operation notices that it left MUTEX taken and gives back MUTEX and the
        unit it took (the channel does not wait for this process to exit)."""
        class Boom(Exception):
            pass

        def arm(ch):
            real = ch._settle_journal
            armed = [1]

            def settle():
                if armed:
                    armed.pop()
                    raise Boom     # as if it came right after the lock's semop
                real()
            ch._settle_journal = settle

        def reserve_exit(ch):
            with ch.reserve(2, 0) as out:
                out[:] = b"rx"
                arm(ch)

        def view_exit(ch):
            with ch.receive_view(0):
                arm(ch)
        cases = [("send", lambda ch: ch.send(b"s", 0), False),
                 ("receive", lambda ch: ch.receive(0), True),
                 ("receive_into", lambda ch: ch.receive_into(bytearray(9), 0), True),
                 ("reserve", lambda ch: ch.reserve(1, 0).__enter__(), False),
                 ("receive_view", lambda ch: ch.receive_view(0).__enter__(), True),
                 ("close", lambda ch: ch.close(), False)]
        for name, action, queued in cases:
            with self.subTest(name=name):
                ch = self.new_channel(slots=2)
                if queued:
                    ch.send(b"m")
                arm(ch)
                self.assertRaises(Boom, action, ch)
                mutex, free, ready, done = self.values(ch)
                self.assertEqual(mutex, 1)
                self.assertEqual(free + ready, ch.slots)
                self.assertEqual((ready, ch.pending), (int(queued), int(queued)))
                self.assertFalse(ch.closed)
                self.assertEqual(ch._held, 0)
        for name, action in (("reserve exit", reserve_exit), ("receive_view exit", view_exit)):
            with self.subTest(name=name):
                ch = self.new_channel(slots=2)
                ch.send(b"m")
                self.assertRaises(Boom, action, ch)
                mutex, free, ready, done = self.values(ch)
                self.assertEqual((mutex, free + ready), (1, ch.slots))
                self.assertEqual(ch._held, 0)
                while ch.pending:
                    ch.receive(0)
                self.assertIdle(ch)
        with self.subTest(name="Channel(key)"):
            ch = self.new_channel(slots=2)
            real = sysvshm.Channel._settle_journal
            armed = [1]

            def settle(self_):
                if armed:
                    armed.pop()
                    raise Boom
                real(self_)
            sysvshm.Channel._settle_journal = settle
            try:
                self.assertRaises(Boom, sysvshm.Channel, ch.key)
            finally:
                sysvshm.Channel._settle_journal = real
            self.assertEqual(self.values(ch)[0], 1)
            self.assertIdle(ch)

    def test_in_place_on_a_temporary_channel_object(self):
        ch = self.new_channel()
        with sysvshm.Channel(ch.key).reserve(4) as out:     # the block keeps its channel
            gc.collect()
            out[:] = b"temp"
        with sysvshm.Channel(ch.key).receive_view() as view:
            gc.collect()
            self.assertEqual(bytes(view), b"temp")
        self.assertIdle(ch)

    def test_a_length_over_slot_size_is_refused(self):
        """A peer that writes a length over slot_size broke the protocol: every way of receiving
        refuses the message (InternalError) and leaves it queued, rather than return the next
        slot's bytes."""
        ch = self.new_channel(slots=2, slot_size=64)
        ch.send(b"x")
        slot = ch._slot[ch._order[ch._h.tail % ch.slots]]
        slot.length = 65
        for receive in (lambda: ch.receive(0), lambda: ch.receive_into(bytearray(200), 0),
                        lambda: ch.receive_view(0).__enter__()):
            with self.assertRaises(sysvshm.InternalError) as caught:
                receive()
            self.assertIn("over slot_size", str(caught.exception))
            self.assertEqual(ch.pending, 1)
        slot.length = 1
        self.assertEqual(ch.receive(0), b"x")
        self.assertIdle(ch)

    def test_in_place_arguments_are_checked_at_the_call(self):
        ch = self.new_channel(slots=2, slot_size=100)
        self.assertRaises(ValueError, ch.reserve, -1)
        self.assertRaises(sysvshm.MessageTooLongError, ch.reserve, 101)
        self.assertRaises(TypeError, ch.reserve, 1.0)
        self.assertRaises(ValueError, ch.receive_view, -1)
        self.assertRaises(TypeError, ch.receive_view, "1")
        self.assertIdle(ch)

    def test_detach_releases_the_reused_views(self):
        ch = self.new_channel()
        ch.send(b"kept")
        with ch.receive_view() as view:
            pass
        ch.detach()
        self.assertRaises(ValueError, bytes, view)     # released: not a view of unmapped memory
        with sysvshm.Channel(ch.key) as again:
            self.assertEqual(again.pending, 0)

    def test_view_outliving_its_block_never_crashes(self):
        ch = self.new_channel()
        ch.send(b"first")
        with ch.receive_view() as view:
            kept = view[:]      # a slice of the view outlives it
        ch.send(b"second")
        self.assertEqual(len(bytes(kept)), 5)   # whatever the slot holds now: no crash
        self.assertEqual(ch.receive(), b"second")

    def test_too_large_refused_before_anything_is_taken(self):
        ch = self.new_channel(slots=2, slot_size=100)
        before = self.values(ch)
        with self.assertRaises(sysvshm.MessageTooLongError):
            ch.send(b"x" * 101)
        with self.assertRaises(sysvshm.MessageTooLongError):
            with ch.reserve(101):
                pass
        self.assertRaises(ValueError, ch.reserve, -1)
        self.assertEqual(self.values(ch), before)
        ch.send(b"y" * 100)
        with self.assertRaises(sysvshm.MessageTooLongError):
            ch.receive_into(bytearray(99))
        self.assertEqual(ch.pending, 1)          # it stays first
        self.assertEqual(ch.receive(), b"y" * 100)

    def test_timeouts(self):
        ch = self.new_channel(slots=2)
        for timeout in (0, 0.05):
            with self.assertRaises(sysvshm.BusyError) as caught:
                ch.receive(timeout)
            self.assertIsInstance(caught.exception, TimeoutError)
            with self.assertRaises(sysvshm.BusyError):
                with ch.receive_view(timeout):
                    pass
        ch.send(b"a")
        ch.send(b"b")
        start = time.monotonic()
        with self.assertRaises(TimeoutError):
            ch.send(b"c", timeout=0.05)
        self.assertGreaterEqual(time.monotonic() - start, 0.04)
        with self.assertRaises(TimeoutError):
            with ch.reserve(1, timeout=0):
                pass
        self.assertRaises(ValueError, ch.send, b"c", -1)
        self.assertIdle(ch, pending=2)

    def test_signal_handler_interrupts_and_ctrl_c_propagates(self):
        ch = self.new_channel()
        r, w = os.pipe()
        self.addCleanup(os.close, r)

        def child():
            os.close(r)
            seen = []
            signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
            os.write(w, b"ready\n")
            data = ch.receive(DEADLINE)          # EINTR is retried
            if data != b"after" or not seen:
                return 2
            signal.signal(signal.SIGUSR2, lambda *a: 1 / 0)
            os.write(w, b"again\n")
            try:
                ch.receive(DEADLINE)
            except ZeroDivisionError:           # the handler's exception propagates
                return 0
            return 3
        pid = self.fork(child)
        os.close(w)
        self.assertEqual(read_line(r), "ready\n")
        while not ch.waiting_consumers:
            time.sleep(0.001)
        os.kill(pid, signal.SIGUSR1)
        ch.send(b"after")
        self.assertEqual(read_line(r), "again\n")
        while not ch.waiting_consumers:
            time.sleep(0.001)
        os.kill(pid, signal.SIGUSR2)
        self.assertChildOk(pid)
        self.assertIdle(ch)

    def test_close(self):
        ch = self.new_channel(slots=4)
        other = sysvshm.Channel(ch.key)
        for i in range(3):
            ch.send(b"%d" % i)
        with self.assertRaises(sysvshm.ChannelClosedError):
            with ch.reserve(1) as late:
                late[:] = b"L"
                other.close()
        other.close()                           # idempotent
        self.assertTrue(ch.closed)
        self.assertRaises(sysvshm.ChannelClosedError, ch.send, b"x")
        self.assertEqual([other.receive(0) for _ in range(3)], [b"0", b"1", b"2"])
        for _ in range(3):
            self.assertRaises(sysvshm.ChannelClosedError, other.receive, 0)
            self.assertRaises(EOFError, other.receive_into, bytearray(10))
        self.assertIsInstance(sysvshm.ChannelClosedError(1, "x"), EOFError)

    def test_close_wakes_waiting_producers_and_consumers(self):
        ch = self.new_channel(slots=1)
        ch.send(b"full")
        r, w = os.pipe()
        self.addCleanup(os.close, r)

        def waiter(call):
            def child():
                os.close(r)
                os.write(w, b"go\n")
                try:
                    call()
                except sysvshm.ChannelClosedError:
                    return 0
                return 2
            return child
        producer = self.fork(waiter(lambda: ch.send(b"more", DEADLINE)))
        self.assertEqual(read_line(r), "go\n")
        while ch.waiting_producers < 1:
            time.sleep(0.001)
        self.assertEqual(ch.receive(0), b"full")
        # now the producer's message goes in; take it, then wait with an empty channel
        self.assertEqual(ch.receive(DEADLINE), b"more")
        self.assertEqual(self.reap(producer), 2)
        consumers = [self.fork(waiter(lambda: ch.receive(DEADLINE))) for _ in range(2)]
        for _ in consumers:
            self.assertEqual(read_line(r), "go\n")
        os.close(w)
        while ch.waiting_consumers < 2:
            time.sleep(0.001)
        ch.close()
        for pid in consumers:
            self.assertChildOk(pid)

    def test_open_by_key_reads_the_geometry(self):
        key = random_key()
        ch = self.new_channel(slots=7, slot_size=333, key=key)
        other = sysvshm.Channel(key)
        self.assertEqual((other.slots, other.slot_size, other.id, other.semid),
                         (7, 333, ch.id, ch.semid))
        same = sysvshm.Channel(key, IPC_CREAT, slots=7, slot_size=333)
        self.assertEqual(same.semid, ch.semid)
        self.assertRaises(sysvshm.ExistsError, sysvshm.Channel, key, IPC_CREX)
        self.assertRaises(sysvshm.NotFoundError, sysvshm.Channel, random_key())
        self.assertRaises(ValueError, sysvshm.Channel, IPC_PRIVATE, IPC_CREX)
        self.assertRaises(ValueError, sysvshm.Channel, None, IPC_CREAT)
        self.assertRaises(ValueError, sysvshm.Channel, None, IPC_CREX, slots=0)
        self.assertRaises(ValueError, sysvshm.Channel, None, IPC_CREX, slots=4097)
        self.assertRaises(ValueError, sysvshm.Channel, None, IPC_CREX, slot_size=0)
        other.send(b"via other")
        self.assertEqual(ch.receive(0), b"via other")
        self.assertIn("slots=7", repr(ch))
        import copy
        import pickle
        self.assertRaises(TypeError, copy.copy, ch)
        self.assertRaises(TypeError, pickle.dumps, ch)

    def test_wrong_layout_is_refused(self):
        ch = self.new_channel(slots=4, slot_size=100)
        raw = sysvshm.attach(ch.id)
        self.addCleanup(raw.detach)
        header = raw.read(128)

        def refused(offset, value, text):
            raw.write(struct.pack("=I", value), offset)
            try:
                with self.assertRaises(sysvshm.ChannelLayoutError) as caught:
                    sysvshm.Channel(ch.key)
                self.assertIn(text, str(caught.exception))
                self.assertIsInstance(caught.exception, ValueError)
            finally:
                raw.write(header)
        refused(0, 0x12345678, "magic")
        refused(4, 2, "version 2")
        refused(12, 5, "smaller")           # 5 slots do not fit the segment
        refused(20, 4096, "slot_stride")
        refused(12, 0, "geometry")
        with self.assertRaises(sysvshm.ChannelLayoutError) as caught:
            sysvshm.Channel(ch.key, slots=5)
        self.assertIn("slots=5", str(caught.exception))
        with self.assertRaises(sysvshm.ChannelLayoutError):
            sysvshm.Channel(ch.key, IPC_CREAT, slot_size=99)
        sysvshm.Channel(ch.key, slots=4, slot_size=100).send(b"still fine")
        # a set of another size, a plain segment: not channels
        key = random_key()
        self.new_set(3, key=key)
        self.new_shm(4096, key=key)
        with self.assertRaises(sysvshm.ChannelLayoutError) as caught:
            sysvshm.Channel(key)
        self.assertIn("3 semaphores", str(caught.exception))
        key = random_key()
        self.new_shm(4096, key=key)
        self.assertRaises(sysvshm.ExistsError, sysvshm.Channel, key, IPC_CREAT)
        with open("/proc/sysvipc/sem") as table:
            self.assertNotIn(key, [int(line.split()[0]) for line in table.read().splitlines()[1:]])

    def test_creators_racing_get_one_channel(self):
        key = random_key()
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        gate = self.new_sem()
        pids = []
        for _ in range(4):
            def child():
                gate.acquire(DEADLINE)
                gate.release()
                c = sysvshm.Channel(key, IPC_CREAT, slots=3, slot_size=64)
                os.write(w, ("%d %d\n" % (c.semid, c.id)).encode())
                c.send(b"%d" % os.getpid(), DEADLINE)
                return 0
            pids.append(self.fork(child))
        os.close(w)
        gate.release()
        ids = {read_line(r) for _ in pids}
        self.assertEqual(len(ids), 1, ids)
        semid, shmid = map(int, ids.pop().split())
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, semid)
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, shmid)
        CREATED["sem"].add(semid)
        CREATED["shm"].add(shmid)
        ch = sysvshm.Channel(key)
        got = [int(ch.receive(DEADLINE)) for _ in pids]     # one waited for a slot
        self.assertEqual(sorted(got), sorted(pids))
        for pid in pids:
            self.assertChildOk(pid)

    def run_many(self, producers, consumers, count, slots=4, mode="copy"):
        """producers x consumers processes; every message exactly once, in each producer's order."""
        ch = self.new_channel(slots=slots, slot_size=64)
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)

        def producer(p):
            def run():
                for i in range(count):
                    message = b"%d:%d" % (p, i)
                    if mode == "copy" or i % 2:
                        ch.send(message, DEADLINE)
                    else:
                        with ch.reserve(len(message), DEADLINE) as out:
                            out[:] = message
                return 0
            return run

        def consumer(c):
            def run():
                got = []
                buf = bytearray(64)
                while True:
                    try:
                        if mode == "copy" or len(got) % 3 == 0:
                            got.append(ch.receive(DEADLINE))
                        elif len(got) % 3 == 1:
                            with ch.receive_view(DEADLINE) as view:
                                got.append(bytes(view))
                        else:
                            got.append(bytes(buf[:ch.receive_into(buf, DEADLINE)]))
                    except sysvshm.ChannelClosedError:
                        break
                with open(os.path.join(folder, str(c)), "wb") as out:
                    out.write(b"\n".join(got))
                return 0
            return run
        cons = [self.fork(consumer(c)) for c in range(consumers)]
        prods = [self.fork(producer(p)) for p in range(producers)]
        for pid in prods:
            self.assertChildOk(pid, DEADLINE * 3)
        ch.close()
        for pid in cons:
            self.assertChildOk(pid, DEADLINE * 3)
        seen = []
        for c in range(consumers):
            with open(os.path.join(folder, str(c)), "rb") as f:
                lines = [tuple(map(int, x.split(b":"))) for x in f.read().split(b"\n") if x]
            for p in range(producers):
                mine = [i for q, i in lines if q == p]
                self.assertEqual(mine, sorted(mine), "consumer %d: producer %d out of order"
                                 % (c, p))
            seen.extend(lines)
        self.assertEqual(sorted(seen), [(p, i) for p in range(producers) for i in range(count)])

    def test_one_to_one(self):
        self.run_many(1, 1, 500)

    def test_four_producers_four_consumers(self):
        self.run_many(4, 4, 300)

    def test_four_by_four_in_place(self):
        self.run_many(4, 4, 300, slots=3, mode="mixed")

    def test_two_by_three_one_slot(self):
        self.run_many(2, 3, 200, slots=1, mode="mixed")

    def test_cli_info_recognises_a_channel(self):
        ch = self.new_channel(slots=5, slot_size=200)
        ch.send(b"a")
        ch.send(b"b")
        ch.receive()
        plain = self.new_set(4)
        env = dict(os.environ, PYTHONPATH=HERE)
        for option, ident in (("--shm", ch.id), ("--sem", ch.semid)):
            out = subprocess.run([sys.executable, "-m", "sysvshm", "info", option, str(ident)],
                                 env=env, stdout=subprocess.PIPE, universal_newlines=True,
                                 timeout=DEADLINE).stdout
            self.assertIn("sysvshm Channel (layout version 1): 5 slots of 200 bytes; 1 pending; "
                          "open", out)
            self.assertIn("sent=2\treceived=1\treclaimed=0\tfree slots=4", out)
            self.assertIn("waiting producers=0\twaiting consumers=0", out)
        out = subprocess.run([sys.executable, "-m", "sysvshm", "info", "--json", "--sem",
                              str(ch.semid)], env=env, stdout=subprocess.PIPE,
                             universal_newlines=True, timeout=DEADLINE).stdout
        channel = json.loads(out)["semaphores"][0]["channel"]
        self.assertEqual((channel["slots"], channel["pending"], channel["shmid"]),
                         (5, 1, ch.id))
        out = subprocess.run([sys.executable, "-m", "sysvshm", "info", "--sem", str(plain.id)],
                             env=env, stdout=subprocess.PIPE, universal_newlines=True,
                             timeout=DEADLINE).stdout
        self.assertNotIn("Channel", out)

    def test_threads_of_one_process(self):
        """Producers and consumers as threads of one process (they share SEM_UNDO and pid)."""
        ch = self.new_channel(slots=2, slot_size=32)
        got = [[], []]
        errors = []

        def produce(p):
            try:
                for i in range(300):
                    ch.send(b"%d:%d" % (p, i), DEADLINE)
            except BaseException as exc:
                errors.append(exc)

        def consume(c):
            try:
                while True:
                    with ch.receive_view(DEADLINE) as view:
                        got[c].append(tuple(map(int, bytes(view).split(b":"))))
            except sysvshm.ChannelClosedError:
                pass
            except BaseException as exc:
                errors.append(exc)
        threads = [threading.Thread(target=consume, args=(c,)) for c in range(2)]
        producers = [threading.Thread(target=produce, args=(p,)) for p in range(2)]
        for t in threads + producers:
            t.start()
        for t in producers:
            t.join(DEADLINE)
        ch.close()
        for t in threads:
            t.join(DEADLINE)
        self.assertFalse(any(t.is_alive() for t in threads + producers))
        self.assertEqual(errors, [])
        for mine in got:
            for p in range(2):
                order = [i for q, i in mine if q == p]
                self.assertEqual(order, sorted(order))
        self.assertEqual(sorted(got[0] + got[1]), [(p, i) for p in range(2) for i in range(300)])

    def test_detach(self):
        ch = self.new_channel()
        ch.send(b"kept")
        with ch.receive_view() as view:
            self.assertRaises(BufferError, ch.detach)       # a view is alive: still usable
            self.assertEqual(bytes(view), b"kept")
        ch.send(b"again")
        ch.detach()
        ch.detach()                                         # idempotent
        self.assertRaises(sysvshm.NotAttachedError, ch.send, b"x")
        self.assertRaises(sysvshm.NotAttachedError, ch.receive, 0)
        self.assertRaises(sysvshm.NotAttachedError, lambda: ch.pending)
        self.assertEqual(sysvshm.Channel(ch.key).receive(0), b"again")
        with sysvshm.Channel(ch.key) as other:
            self.assertEqual(other.slots, 4)

    # -- deaths -------------------------------------------------------------------------------
    def check_after_death(self, ch, expect_lost_at_most=1):
        """The channel still works at full capacity: every slot comes back."""
        self.assertIdle(ch, pending=None)
        got = []
        while True:
            try:
                got.append(ch.receive(0))
            except sysvshm.BusyError:
                break
        for i in range(ch.slots):
            ch.send(b"cap%d" % i, DEADLINE)
        self.assertEqual([ch.receive(0) for _ in range(ch.slots)],
                         [b"cap%d" % i for i in range(ch.slots)])
        self.assertIdle(ch)
        return got

    def test_death_at_each_final_semop(self):
        """A process that dies just before a final semop (MUTEX held, memory changed, journal
        open) costs at most its own message: SETTLE rolls it back for the next MUTEX holder."""
        def send(ch):
            ch.send(b"dead", 1)

        def reserve(ch):
            with ch.reserve(4, 1) as out:
                out[:] = b"dead"

        def abandon(ch):
            with ch.reserve(4, 1):
                raise KeyError

        def receive(ch):
            ch.receive(1)

        def view(ch):
            with ch.receive_view(1):
                pass
        cases = [("_op_commit", send, False, []), ("_op_commit", reserve, False, []),
                 ("_op_free_unlock", abandon, False, []),
                 ("_op_take_free", receive, True, [b"m"]),      # put back: nothing lost
                 ("_op_take", view, True, [b"m"]),
                 ("_op_free_unlock", view, True, []),            # the viewer's own message
                 ("_op_close", lambda ch: ch.close(), False, [])]
        for name, action, queued, expect in cases:
            with self.subTest(name=name, action=action.__name__):
                ch = self.new_channel(slots=2)
                if queued:
                    ch.send(b"m")

                def child(name=name, action=action, ch=ch):
                    real = ch._final

                    def final(ops):
                        if ops is getattr(ch, name):
                            os._exit(0)
                        real(ops)
                    ch._final = final
                    action(ch)
                    return 3
                self.assertEqual(self.reap(self.fork(child)), 0)
                self.assertEqual(self.check_after_death(ch), expect)
                self.assertFalse(ch.closed)

    def test_death_holding_slots_reclaims_them(self):
        """SIGKILL while holding a reserved slot, or a received view: the slot comes back."""
        ch = self.new_channel(slots=2)
        ch.send(b"viewed")
        r, w = os.pipe()
        self.addCleanup(os.close, r)

        def child():
            os.close(r)
            with ch.reserve(5, 1) as out:
                out[:] = b"held!"
                with ch.receive_view(1) as view:
                    os.write(w, bytes(view) + b"\n")
                    os.read(os.open("/dev/null", os.O_RDONLY), 1)
                    signal.pause()
            return 3
        pid = self.fork(child)
        os.close(w)
        self.assertEqual(read_line(r), "viewed\n")
        self.assertRaises(sysvshm.BusyError, ch.send, b"x", 0)   # both slots held
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(self.reap(pid), -signal.SIGKILL)
        self.assertEqual(self.check_after_death(ch), [])
        self.assertGreaterEqual(ch._h.reclaimed, 2)

    def test_sigkills_while_others_keep_going(self):
        """Two producers and one consumer run throughout while victims (producers and
        consumers) are SIGKILLed at random points around them: the steady ones finish, every
        message arrives at most once and in its producer's order, and each killed consumer
        costs at most one message."""
        rng = random.Random(os.environ.get("SYSVSHM_SEED"))
        ch = self.new_channel(slots=4, slot_size=32)
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        count = 400

        def steady_producer(p):
            def run():
                for i in range(count):
                    ch.send(b"S%d:%d" % (p, i), DEADLINE)
            return run

        def steady_consumer():
            got = []
            while True:
                try:
                    got.append(ch.receive(DEADLINE))
                except sysvshm.ChannelClosedError:
                    break
            with open(os.path.join(folder, "steady"), "wb") as f:
                f.write(b"\n".join(got))
        consumer = self.fork(steady_consumer)
        producers = [self.fork(steady_producer(p)) for p in range(2)]
        victims_taken, consumer_kills, victim_sent = [], 0, {}
        for round_ in range(60):
            role = rng.choice(["send", "receive", "view"])
            r, w = os.pipe()

            def victim(role=role, r=r, w=w, round_=round_):
                os.close(r)
                i = 0
                while True:
                    if role == "send":
                        ch.send(b"V%d:%d" % (round_, i), DEADLINE)
                        os.write(w, b"%d\n" % i)
                        i += 1
                    elif role == "receive":
                        os.write(w, ch.receive(DEADLINE) + b"\n")
                    else:
                        with ch.receive_view(DEADLINE) as view:
                            data = bytes(view)
                        os.write(w, data + b"\n")
            pid = self.fork(victim)
            os.close(w)
            ready, _, _ = select.select([r], [], [], 0.05 * rng.random())
            for _ in range(rng.randint(0, 2000)):
                pass
            os.kill(pid, signal.SIGKILL)
            self.assertEqual(self.reap(pid), -signal.SIGKILL)
            chunks = []
            while True:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(r)
            lines = [x for x in b"".join(chunks).split(b"\n") if x]
            if role == "send":
                victim_sent[round_] = len(lines)
            else:
                consumer_kills += 1
                victims_taken.append(lines)
        for pid in producers:
            self.assertChildOk(pid, DEADLINE * 2)
        # Victim producers may have left messages; the steady consumer drains them, then ends.
        ch.close()
        self.assertChildOk(consumer, DEADLINE * 2)
        with open(os.path.join(folder, "steady"), "rb") as f:
            steady = [x for x in f.read().split(b"\n") if x]
        everything = steady + [x for lines in victims_taken for x in lines]
        self.assertEqual(len(everything), len(set(everything)), "a message came twice")
        for lines in [steady] + victims_taken:
            by_producer = {}
            for x in lines:
                tag, i = x.split(b":")
                by_producer.setdefault(tag, []).append(int(i))
            for tag, numbers in by_producer.items():
                self.assertEqual(numbers, sorted(numbers), tag)
        expected = {b"S%d:%d" % (p, i) for p in range(2) for i in range(count)}
        for round_, sent in victim_sent.items():
            expected |= {b"V%d:%d" % (round_, i) for i in range(sent)}   # reported sent
        missing = expected - set(everything)
        self.assertLessEqual(len(missing), consumer_kills, sorted(missing))
        ch._lock()
        ch._settle()
        ch._final(ch._op_unlock)
        self.assertEqual((self.values(ch)[0], ch.pending), (1, 0))
        for slot in ch._slot:       # free, or held by a dead victim (reclaimed when needed)
            self.assertTrue(slot.state == 0 or not sysvshm._pid_alive(slot.pid),
                            (slot.state, slot.pid))

    def test_random_sigkills(self):
        """SIGKILL of producers and consumers at random points, CHANNEL_ROUNDS rounds: each
        death costs at most the victim's in-flight message, none is duplicated or reordered,
        and after each round every slot works again."""
        rng = random.Random(os.environ.get("SYSVSHM_SEED"))
        ch = self.new_channel(slots=3, slot_size=32)
        serial = 0
        lost = 0
        for round_ in range(CHANNEL_ROUNDS):
            role = rng.choice(["send", "reserve", "receive", "view", "into"])
            queued = []
            if role in ("receive", "view", "into"):
                for _ in range(rng.randint(1, 3)):
                    queued.append(b"P%d" % serial)
                    ch.send(queued[-1], 0)
                    serial += 1
            r, w = os.pipe()

            def victim(role=role, r=r, w=w):
                os.close(r)
                i = 0
                buf = bytearray(32)
                while True:
                    if role == "send":
                        ch.send(b"V%d" % i, DEADLINE)
                        os.write(w, b"%d\n" % i)
                    elif role == "reserve":
                        with ch.reserve(8, DEADLINE) as out:
                            out[:] = b"V%07d" % i
                        os.write(w, b"%d\n" % i)
                    elif role == "receive":
                        os.write(w, ch.receive(DEADLINE) + b"\n")
                    elif role == "into":
                        os.write(w, bytes(buf[:ch.receive_into(buf, DEADLINE)]) + b"\n")
                    else:
                        with ch.receive_view(DEADLINE) as view:
                            data = bytes(view)
                        os.write(w, data + b"\n")
                    i += 1
            pid = self.fork(victim)
            os.close(w)
            # Kill it after a random amount of work: after 0-2 reports, plus a random spin.
            reported = []
            want = rng.randint(0, len(queued) if queued else 2)
            while b"".join(reported).count(b"\n") < want:
                ready, _, _ = select.select([r], [], [], DEADLINE)
                if not ready:
                    break
                reported.append(os.read(r, 64))
            for _ in range(rng.randint(0, 3000)):
                pass
            os.kill(pid, signal.SIGKILL)
            self.assertEqual(self.reap(pid), -signal.SIGKILL)
            while True:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                reported.append(chunk)
            os.close(r)
            reported = b"".join(reported).split(b"\n")
            left = self.check_after_death(ch)
            if role in ("send", "reserve"):
                numbers = [int(x[1:]) for x in left]
                self.assertEqual(numbers, list(range(len(numbers))), (round_, role, left))
            else:
                taken = [x for x in reported if x]   # what the victim reported (maybe partly)
                together = [x for x in taken if x.startswith(b"P")] + left
                self.assertEqual(len(together), len(set(together)), (round_, role))
                self.assertLessEqual(len(queued) - len(together), 1, (round_, role, queued,
                                                                      together))
                self.assertEqual(left, queued[len(queued) - len(left):], (round_, role))
                lost += len(queued) - len(together)
        self.assertIdle(ch)


def build_go_program(folder, name, source):
    """Build the Go program `source` offline (Debian's golang-go and golang-golang-x-sys-dev,
    GOPATH=/usr/share/gocode); SkipTest where go is missing or builds another architecture."""
    go = shutil.which("go")
    if not go:
        raise unittest.SkipTest("go is not installed (apt-get install golang-go "
                                "golang-golang-x-sys-dev)")
    program = os.path.join(folder, name)
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off",
               GOCACHE=os.path.join(folder, "gocache"), GOFLAGS="")
    proc = subprocess.run([go, "build", "-o", program, source], env=env, cwd=folder,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300 * SCALE)
    if proc.returncode != 0:
        raise AssertionError("go build failed:\n%s" % proc.stdout)
    ours, theirs = elf_ident("/proc/self/exe"), elf_ident(program)
    if ours != theirs:
        raise unittest.SkipTest("go builds %s, this interpreter is %s" % (theirs, ours))
    return [program]


class TestChannelInterop(Base):
    """examples/channel.c and examples/channel.go (built here) against sysvshm.Channel, every
    direction: C->Python, Python->C, Go->Python, Python->Go, mixed producers and consumers."""

    EXAMPLES = os.path.join(HERE, "examples")

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        with open(os.path.join(cls.EXAMPLES, "channel.c")) as f:
            text = f.read()
        cls.c_error = cls.go_error = None
        try:
            cls.c_program = build_c_program(cls.folder, "channel", text, [
                "-Wall", "-Wextra", "-Werror", "-I", cls.EXAMPLES])
        except unittest.SkipTest as exc:
            cls.c_error = exc
        try:
            cls.go_program = build_go_program(cls.folder, "channel-go",
                                              os.path.join(cls.EXAMPLES, "channel.go"))
        except unittest.SkipTest as exc:
            cls.go_error = exc

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def peer(self, lang):
        error = self.c_error if lang == "c" else self.go_error
        if error is not None:
            raise error
        return self.c_program if lang == "c" else self.go_program

    new_channel = TestChannel.new_channel

    def start(self, lang, *args):
        proc = subprocess.Popen(self.peer(lang) + [str(a) for a in args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(self._stop, proc)
        return proc

    def _stop(self, proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()

    def finish(self, proc):
        try:
            out, err = proc.communicate(timeout=DEADLINE * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.fail("%s did not finish" % proc.args)
        self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))
        return [line for line in out.decode().split("\n") if line]

    def check(self, lines, counts, *more):
        """Every message of every producer exactly once (over all consumers' lines), in each
        producer's order (within each consumer)."""
        pairs = []
        for consumer in (lines,) + more:
            got = [(tag, int(i)) for tag, i in (line.split(":") for line in consumer)]
            for tag in counts:
                mine = [i for t, i in got if t == tag]
                self.assertEqual(mine, sorted(mine), "%s out of order" % tag)
            pairs += got
        self.assertEqual(sorted(pairs), sorted((tag, i) for tag, n in counts.items()
                                               for i in range(n)))

    def refuses_a_length_over_slot_size(self, lang, *mode):
        self.peer(lang)
        ch = self.new_channel(slots=2, slot_size=64)
        ch.send(b"x")
        ch._slot[ch._order[ch._h.tail % ch.slots]].length = 65     # a peer broke the protocol
        proc = self.start(lang, *(list(mode) + ["consumer", ch.key, 1, DEADLINE]))
        try:
            out, err = proc.communicate(timeout=DEADLINE * 2)
        except subprocess.TimeoutExpired:
            self.fail("%s did not finish" % proc.args)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"over slot_size", err)
        self.assertEqual(ch.pending, 1)                            # it stays queued
        mutex, free, ready, done = sysvshm.SemaphoreSet(ch.key).values   # all given back
        self.assertEqual((mutex, free, ready), (1, ch.slots - 1, 1))

    def test_c_refuses_a_length_over_slot_size(self):
        self.refuses_a_length_over_slot_size("c")
        self.refuses_a_length_over_slot_size("c", "--in-place")

    def test_go_refuses_a_length_over_slot_size(self):
        self.refuses_a_length_over_slot_size("go")
        self.refuses_a_length_over_slot_size("go", "--in-place")

    def to_python(self, lang):
        self.peer(lang)     # (a skip before anything is created: a skip's traceback keeps locals)
        ch = self.new_channel(slots=3, slot_size=64)
        proc = self.start(lang, "producer", ch.key, 500, lang.upper(), DEADLINE)
        lines = [ch.receive(DEADLINE).decode() for _ in range(500)]
        self.finish(proc)
        self.check(lines, {lang.upper(): 500})
        self.assertEqual(ch.pending, 0)

    def from_python(self, lang):
        self.peer(lang)
        ch = self.new_channel(slots=3, slot_size=64)
        proc = self.start(lang, "consumer", ch.key, -1, DEADLINE)
        for i in range(500):
            if i % 2:
                ch.send(b"P:%d" % i, DEADLINE)
            else:
                message = b"P:%d" % i
                with ch.reserve(len(message), DEADLINE) as out:
                    out[:] = message
        ch.close()
        self.check(self.finish(proc), {"P": 500})

    def test_c_to_python(self):
        self.to_python("c")

    def test_python_to_c(self):
        self.from_python("c")

    def test_go_to_python(self):
        self.to_python("go")

    def test_python_to_go(self):
        self.from_python("go")

    def test_c_to_go(self):
        self.peer("c")
        self.peer("go")
        ch = self.new_channel(slots=2, slot_size=64)
        consumer = self.start("go", "consumer", ch.key, 300, DEADLINE)
        producer = self.start("c", "producer", ch.key, 300, "C", DEADLINE)
        self.finish(producer)
        self.check(self.finish(consumer), {"C": 300})

    def test_mixed_producers_and_consumers(self):
        self.peer("c")
        self.peer("go")
        ch = self.new_channel(slots=3, slot_size=64)
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)

        def python_consumer():
            got = []
            while True:
                try:
                    with ch.receive_view(DEADLINE) as view:
                        got.append(bytes(view))
                except sysvshm.ChannelClosedError:
                    break
            with open(os.path.join(folder, "py"), "wb") as f:
                f.write(b"\n".join(got))
        consumers = [self.start("c", "consumer", ch.key, -1, DEADLINE),
                     self.start("go", "consumer", ch.key, -1, DEADLINE)]
        pycons = self.fork(python_consumer)
        producers = [self.start("c", "producer", ch.key, 300, "C", DEADLINE),
                     self.start("go", "producer", ch.key, 300, "G", DEADLINE)]
        for i in range(300):
            ch.send(b"P:%d" % i, DEADLINE)
        for proc in producers:
            self.finish(proc)
        closer = self.start("c", "close", ch.key)
        self.finish(closer)
        c_lines, go_lines = [self.finish(proc) for proc in consumers]
        self.assertChildOk(pycons, DEADLINE * 2)
        with open(os.path.join(folder, "py")) as f:
            mine = [x for x in f.read().split("\n") if x]
        self.check(mine, {"C": 300, "G": 300, "P": 300}, c_lines, go_lines)


def ids_at_key(kind, key):
    """The ids of `kind` objects ("sem", "shm") whose key is `key` (from /proc/sysvipc)."""
    signed = key - (1 << 32) if key >= 1 << 31 else key
    with open("/proc/sysvipc/" + kind) as table:
        next(table)
        return [int(line.split()[1]) for line in table if line.split()
                and int(line.split()[0]) == signed]


def shm_creator(shmid):
    """The pid that created segment `shmid` (cpid, /proc/sysvipc/shm)."""
    with open("/proc/sysvipc/shm") as table:
        fields = next(table).split()
        for line in table:
            row = line.split()
            if row and int(row[1]) == shmid:
                return int(row[fields.index("cpid")])
    raise AssertionError("no segment %d" % shmid)


class ChannelPeers(Base):
    """What the peer tests share with TestChannelInterop: the C and Go programs it builds, and
    a random key, free of channels, whose objects are removed (and checked) at cleanup."""

    setUpClass = classmethod(TestChannelInterop.setUpClass.__func__)
    tearDownClass = classmethod(TestChannelInterop.tearDownClass.__func__)
    EXAMPLES = TestChannelInterop.EXAMPLES
    peer = TestChannelInterop.peer
    start = TestChannelInterop.start
    _stop = TestChannelInterop._stop
    finish = TestChannelInterop.finish
    check = TestChannelInterop.check
    new_channel = TestChannel.new_channel
    values = TestChannel.values
    assertIdle = TestChannel.assertIdle

    def free_key(self):
        """A random key with no segment and no set; whatever a test creates there (a peer
        program, a race) is removed at cleanup (registered here, before anything exists)."""
        while True:
            key = random_key()
            if not ids_at_key("sem", key) and not ids_at_key("shm", key):
                break
        self.addCleanup(self._remove_at_key, key)
        return key

    def _remove_at_key(self, key):
        for semid in ids_at_key("sem", key):
            CREATED["sem"].add(semid)
            remove_quietly(sysvshm.remove_semaphore, semid)
        for shmid in ids_at_key("shm", key):
            CREATED["shm"].add(shmid)
            remove_quietly(sysvshm.remove_shared_memory, shmid)

    def created_by(self, lang, key, slots, slot_size):
        """Run `lang create KEY SLOTS SLOT_SIZE`: (word, semid, shmid) from its output line."""
        lines = self.finish(self.start(lang, "create", key, slots, slot_size))
        self.assertEqual(len(lines), 1, lines)
        word, semid, shmid = lines[0].split()
        CREATED["sem"].add(int(semid))
        CREATED["shm"].add(int(shmid))
        return word, int(semid), int(shmid)

    def exchange(self, ch, lang, count=200):
        """`lang` -> Python and Python -> `lang` on `ch`, every message once and in order."""
        producer = self.start(lang, "producer", ch.key, count, lang.upper(), DEADLINE)
        lines = [ch.receive(DEADLINE).decode() for _ in range(count)]
        self.finish(producer)
        self.check(lines, {lang.upper(): count})
        consumer = self.start(lang, "consumer", ch.key, count, DEADLINE)
        for i in range(count):
            ch.send(b"P:%d" % i, DEADLINE)
        self.check(self.finish(consumer), {"P": count})
        self.assertIdle(ch)


class TestChannelPeerCreate(ChannelPeers):
    """The C and Go peers create channels (CREATE OR OPEN of examples/sysvshm_channel.h) that
    Python opens, open what they or Python created, and race Python to create one."""

    def creates(self, lang):
        self.peer(lang)
        key = self.free_key()
        word, semid, shmid = self.created_by(lang, key, 3, 100)
        self.assertEqual(word, "created")
        self.assertEqual(sysvshm.SemaphoreSet(key).values, [1, 3, 0, 0])   # MUTEX released
        ch = sysvshm.Channel(key)                   # Python opens it: geometry from the segment
        self.assertEqual((ch.semid, ch.id, ch.slots, ch.slot_size), (semid, shmid, 3, 100))
        self.addCleanup(ch.detach)
        self.exchange(ch, lang)
        # Create-or-open finds it: same objects; another geometry is refused, nothing removed.
        self.assertEqual(self.created_by(lang, key, 3, 100), ("opened", semid, shmid))
        proc = self.start(lang, "create", key, 4, 100)
        proc.wait(DEADLINE)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"3 slots of 100 bytes", proc.stderr.read())
        self.assertEqual((ids_at_key("sem", key), ids_at_key("shm", key)), ([semid], [shmid]))
        self.exchange(ch, lang, 20)
        # IPC_PRIVATE: refused (nobody could open it), nothing created.
        before = live_ids("sem"), live_ids("shm")
        proc = self.start(lang, "create", 0, 2, 64)
        proc.wait(DEADLINE)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"needs a key", proc.stderr.read())
        self.assertEqual((live_ids("sem"), live_ids("shm")), before)

    def test_c_creates_python_opens(self):
        self.creates("c")

    def test_go_creates_python_opens(self):
        self.creates("go")

    def opens_python_channel(self, lang):
        self.peer(lang)
        ch = self.new_channel(slots=2, slot_size=64)
        self.assertEqual(self.created_by(lang, ch.key, 2, 64), ("opened", ch.semid, ch.id))
        producer = self.start(lang, "--create", 2, 64, "producer", ch.key, 50, "X", DEADLINE)
        self.check([ch.receive(DEADLINE).decode() for _ in range(50)], {"X": 50})
        self.finish(producer)
        self.assertIdle(ch)

    def test_c_create_opens_python_channel(self):
        self.opens_python_channel("c")

    def test_go_create_opens_python_channel(self):
        self.opens_python_channel("go")

    def refuses_a_bare_segment(self, lang):
        """A segment but no set at the key: creating fails and removes the set it made."""
        self.peer(lang)
        key = self.free_key()
        shm = self.new_shm(4096, key=key)
        proc = self.start(lang, "create", key, 2, 64)
        proc.wait(DEADLINE)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"segment exists", proc.stderr.read())
        self.assertEqual((ids_at_key("sem", key), ids_at_key("shm", key)), ([], [shm.id]))

    def test_c_create_refuses_a_bare_segment_and_leaves_nothing(self):
        self.refuses_a_bare_segment("c")

    def test_go_create_refuses_a_bare_segment_and_leaves_nothing(self):
        self.refuses_a_bare_segment("go")

    def races(self, lang, rounds=15):
        """`lang create` and Python's Channel(key, IPC_CREAT) on one fresh key at once: one
        channel, one creator, both work."""
        self.peer(lang)
        creators = set()
        for round_ in range(rounds):
            key = self.free_key()
            proc = self.start(lang, "create", key, 2, 64)
            # Jitter (not synchronisation): the program's start-up (~1 ms) against ours, so
            # that either may create first.
            until = time.perf_counter() + random.random() * 0.003
            while time.perf_counter() < until:
                pass
            ch = sysvshm.Channel(key, IPC_CREAT, slots=2, slot_size=64)
            self.addCleanup(ch.detach)
            word, semid, shmid = self.created_by_proc(proc)
            self.assertEqual((ch.semid, ch.id), (semid, shmid), round_)
            self.assertEqual((ids_at_key("sem", key), ids_at_key("shm", key)),
                             ([semid], [shmid]), round_)
            creator = shm_creator(shmid)
            self.assertEqual(word == "created", creator == proc.pid, (round_, word, creator))
            self.assertIn(creator, (proc.pid, os.getpid()), round_)
            creators.add(word)
            producer = self.start(lang, "producer", key, 5, "R", DEADLINE)
            self.check([ch.receive(DEADLINE).decode() for _ in range(5)], {"R": 5})
            self.finish(producer)
            self.assertIdle(ch)
        return creators

    def created_by_proc(self, proc):
        lines = self.finish(proc)
        self.assertEqual(len(lines), 1, lines)
        word, semid, shmid = lines[0].split()
        CREATED["sem"].add(int(semid))
        CREATED["shm"].add(int(shmid))
        return word, int(semid), int(shmid)

    def test_c_and_python_race_to_create(self):
        self.races("c")

    def test_go_and_python_race_to_create(self):
        self.races("go")


class TestChannelPeerInPlace(ChannelPeers):
    """The C and Go peers' zero-copy operations (--in-place): RESERVE/COMMIT/ABANDON and
    RECEIVE IN PLACE/RELEASE against Python, and a reader killed while it holds a slot."""

    def to_python(self, lang):
        self.peer(lang)
        ch = self.new_channel(slots=3, slot_size=64)
        proc = self.start(lang, "--in-place", "--abandon", 7, "producer", ch.key, 500,
                          lang.upper(), DEADLINE)
        lines = [ch.receive(DEADLINE).decode() for _ in range(500)]
        self.finish(proc)
        self.check(lines, {lang.upper(): 500})      # no "ABANDONED", every slot came back
        self.assertIdle(ch)

    def from_python(self, lang):
        self.peer(lang)
        ch = self.new_channel(slots=3, slot_size=64)
        proc = self.start(lang, "--in-place", "consumer", ch.key, -1, DEADLINE)
        for i in range(500):
            if i % 2:
                ch.send(b"P:%d" % i, DEADLINE)
            else:
                message = b"P:%d" % i
                with ch.reserve(len(message), DEADLINE) as out:
                    out[:] = message
        ch.close()
        self.check(self.finish(proc), {"P": 500})
        ch._lock()
        ch._settle()
        ch._final(ch._op_unlock)
        poison = 16384          # SVSHM_CH_POISON: added to FREE and READY by CLOSE
        self.assertEqual(self.values(ch), [1, 3 + poison, poison, 0])   # every slot back

    def test_c_in_place_to_python(self):
        self.to_python("c")

    def test_go_in_place_to_python(self):
        self.to_python("go")

    def test_python_to_c_in_place(self):
        self.from_python("c")

    def test_python_to_go_in_place(self):
        self.from_python("go")

    def test_c_in_place_producer_and_consumer(self):
        self.peer("c")
        ch = self.new_channel(slots=2, slot_size=64)
        consumer = self.start("c", "--in-place", "consumer", ch.key, 300, DEADLINE)
        producer = self.start("c", "--in-place", "--abandon", 5, "producer", ch.key, 300, "C",
                              DEADLINE)
        self.finish(producer)
        self.check(self.finish(consumer), {"C": 300})
        self.assertIdle(ch)

    def killed_holding(self, lang):
        self.peer(lang)
        ch = self.new_channel(slots=2, slot_size=64)
        ch.send(b"P:0", DEADLINE)
        ch.send(b"P:1", DEADLINE)
        reader = self.start(lang, "--in-place", "--hold", 1, "consumer", ch.key, -1, DEADLINE)
        lines = [read_line(reader.stdout.fileno()) for _ in range(3)]
        self.assertEqual(lines, ["P:0\n", "P:1\n", "holding\n"])
        # It holds P:1's slot in place (READING, its pid), and the slot's FREE unit is its own
        # (SEM_UNDO).
        self.assertEqual(sorted((slot.state, slot.pid) for slot in ch._slot),
                         [(0, 0), (3, reader.pid)])
        self.assertEqual(self.values(ch)[:3], [1, 1, 0])
        reader.kill()
        reader.wait(DEADLINE)
        self.assertEqual(self.values(ch)[:3], [1, 2, 0])    # the kernel gave the unit back
        # Both slots again: the second send needs the dead reader's slot (RECLAIM).
        ch.send(b"P:2", DEADLINE)
        ch.send(b"P:3", DEADLINE)
        self.assertRaises(sysvshm.BusyError, ch.send, b"P:x", 0)
        other = self.start(lang, "--in-place", "consumer", ch.key, 2, DEADLINE)
        self.assertEqual(self.finish(other), ["P:2", "P:3"])      # P:1 died with its reader
        for i in range(4, 10):
            ch.send(b"P:%d" % i, DEADLINE)
            self.assertEqual(ch.receive(DEADLINE), b"P:%d" % i)
        self.assertIdle(ch)
        self.assertEqual((ch._h.reclaimed, ch._h.sent, ch._h.received), (1, 10, 10))

    def test_c_in_place_reader_killed_holding_a_slot(self):
        self.killed_holding("c")

    def test_go_in_place_reader_killed_holding_a_slot(self):
        self.killed_holding("go")


# --- Hardening: semaphores and message queues (issue 10 items 4, 5, 8-13; issue 11 item 5) -----
def _limited(code, limit=1 << 30):
    """`code` preceded by an address-space limit, so that an allocation the module must not
    make fails fast (MemoryError) instead of eating the machine."""
    return ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (%d, %d))\n" % (limit, limit)
            + textwrap.dedent(code))


def _sem_limits():
    with open("/proc/sys/kernel/sem") as limits:
        semmsl, _, semopm = [int(x) for x in limits.read().split()[:3]]
    return semmsl, semopm


class TestSemMsgRanges(MQBase):
    """Every integer that crosses into C is range-checked first, naming the argument and its
    range; limits are checked before anything is allocated."""

    def test_nsems_beyond_c_int_and_semmsl(self):
        before = live_ids("sem")
        # Before the fix, 2**32 + 1 built a list of 2**32 + 1 initial values (MemoryError
        # here), and semget's c_int then received 1: a set of ONE semaphore.
        out = self.assertPythonOk(_limited("""
            import sysvshm
            for nsems, key in ((2**32 + 1, sysvshm.IPC_PRIVATE), (10**8, None), (2**31, None)):
                try:
                    sysvshm.SemaphoreSet(key, nsems, sysvshm.IPC_CREX)
                except ValueError as exc:
                    assert isinstance(exc, OverflowError), exc
                    print(exc)
                else:
                    raise SystemExit("accepted nsems=%d" % nsems)
            """))
        lines = out.splitlines()
        self.assertEqual(len(lines), 3, out)
        semmsl = _sem_limits()[0]
        for line in lines[:2]:
            self.assertIn("nsems", line)
        self.assertIn("SEMMSL (%d" % semmsl, lines[1])
        self.assertIn(str(10 ** 8), lines[1])
        self.assertIn("between 0 and 2147483647", lines[2])
        self.assertEqual(live_ids("sem") - before, set())

    def test_values_and_deltas_name_value_and_limit(self):
        sem = self.new_sem(0)
        with self.assertRaises(OverflowError) as caught:
            sem.value = 40000
        self.assertIn("SEMVMX (32767), not 40000", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            sem.acquire(0, 40000)
        self.assertIn("32767", str(caught.exception))
        self.assertIn("40000", str(caught.exception))
        semset = self.new_set(2)
        with self.assertRaises(OverflowError) as caught:
            semset.op([(0, 1), (1, -2 ** 16)])
        self.assertIn("operation 1", str(caught.exception))
        self.assertIn(str(-2 ** 16), str(caught.exception))
        with self.assertRaises(ValueError):
            semset.op([(0, 1, 2 ** 32)])
        with self.assertRaises(IndexError):
            semset.op([(2 ** 16, 1)])
        # A release above SEMVMX (the kernel's ERANGE) says what the limit is.
        sem.value = 32767
        with self.assertRaises(sysvshm.OutOfRangeError) as caught:
            sem.release()
        self.assertIn("SEMVMX (32767)", str(caught.exception))
        self.assertEqual(semset.values, [0, 0])

    def test_op_with_too_many_operations_names_the_count_and_semopm(self):
        semopm = _sem_limits()[1]
        semset = self.new_set(2)
        with self.assertRaises(ValueError) as caught:
            semset.op([(0, 1), (0, -1)] * ((semopm + 2) // 2))
        text = str(caught.exception)
        self.assertIn("%d operations" % (2 * ((semopm + 2) // 2)), text)
        self.assertIn("SEMOPM (%d" % semopm, text)
        self.assertLess(len(text), 300, text)        # not the whole list of operations

    def test_max_size_refuses_what_the_kernel_would_truncate(self):
        mq = self.new_mq()
        before = mq.max_size
        for bad in (2 ** 32, 2 ** 32 + 5, 2 ** 64, -1):
            with self.assertRaises(ValueError) as caught:
                mq.max_size = bad
            self.assertIsInstance(caught.exception, OverflowError)
            self.assertIn("max_size", str(caught.exception))
            self.assertEqual(mq.max_size, before)
        mq.send(b"still works")
        self.assertEqual(mq.receive(), (b"still works", 1))

    def test_huge_max_message_size_allocates_at_most_msgmax(self):
        # Before the fix the first receive() allocated max_message_size bytes: MemoryError.
        out = self.assertPythonOk(_limited("""
            import sys, sysvshm
            mq = sysvshm.MessageQueue(None, sysvshm.IPC_CREX,
                                       max_message_size=min(2**40, sys.maxsize - 8))
            try:
                mq.send(b"x" * 100)
                print(mq.receive())
                try:
                    sysvshm.MessageQueue(None, sysvshm.IPC_CREX, max_message_size=2**64)
                except OverflowError as exc:
                    print("refused", "max_message_size" in str(exc))
            finally:
                mq.remove()
            """))
        self.assertEqual(out.splitlines(), [repr((b"x" * 100, 1)), "refused True"])


class TestSemMsgErrnoFromHandlers(MQBase):
    """A signal handler that makes a failing call (a non-blocking try) while a blocking call is
    interrupted must not turn the blocking call's EINTR into the handler's errno."""

    def run_child(self, body):
        def child():
            signal.signal(signal.SIGALRM, lambda *a: None)
            try:
                return body()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        self.assertChildOk(self.fork(child), timeout=DEADLINE + 10)

    def interrupting(self, failing_try, finish, times=5):
        """A SIGALRM handler: every 10 ms a failing non-blocking try; the `times`-th call then
        finish()es the wait."""
        calls = []

        def handler(signum, frame):
            calls.append(1)
            failing_try()
            if len(calls) == times:
                finish()
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
        return calls

    def test_acquire_and_op_survive_a_handler_s_failing_try(self):
        def body():
            sem = sysvshm.Semaphore(IPC_PRIVATE, IPC_CREAT)
            other = sysvshm.Semaphore(IPC_PRIVATE, IPC_CREAT)
            semset = sysvshm.SemaphoreSet(IPC_PRIVATE, 2, IPC_CREAT)
            try:
                def busy():
                    try:
                        other.acquire(0)            # EAGAIN replaces the saved EINTR
                    except sysvshm.BusyError:
                        pass
                def values(sem_value, set_values):
                    return lambda: (setattr(sem, "value", sem_value),
                                    setattr(semset, "values", set_values))
                for prepare, wait, finish in (
                        (values(0, [0, 0]), sem.acquire, sem.release),
                        (values(0, [0, 0]), lambda: sem.acquire(DEADLINE), sem.release),
                        (values(1, [0, 0]), sem.Z, lambda: setattr(sem, "value", 0)),
                        (values(0, [0, 1]), lambda: semset.op([(0, -1), (1, -1)]),
                         semset[0].release),
                        (values(0, [0, 1]), lambda: semset.op([(0, -1)], DEADLINE),
                         semset[0].release)):
                    prepare()
                    calls = self.interrupting(busy, finish)
                    wait()
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    assert len(calls) >= 5, calls
                return 0
            finally:
                sem.remove()
                other.remove()
                semset.remove()
        self.run_child(body)

    def test_receive_and_send_survive_a_handler_s_failing_try(self):
        def body():
            mq = sysvshm.MessageQueue(IPC_PRIVATE, IPC_CREAT)
            other = sysvshm.MessageQueue(IPC_PRIVATE, IPC_CREAT)
            try:
                def empty():
                    try:
                        other.receive(block=False)      # ENOMSG replaces the saved EINTR
                    except sysvshm.BusyError:
                        pass
                message = (1).to_bytes(ctypes.sizeof(ctypes.c_long), sys.byteorder) + b"hi"
                self.interrupting(empty, lambda: _libc.msgsnd(mq.id, message, 2, 0))
                assert mq.receive() == (b"hi", 1)
                signal.setitimer(signal.ITIMER_REAL, 0)
                # A full queue: a blocking send, while the handler's non-blocking sends fail.
                mq.max_size = other.max_size = 16
                mq.send(b"x" * 16)
                other.send(b"y" * 16)

                def full():
                    try:
                        other.send(b"z", block=False)   # EAGAIN replaces the saved EINTR
                    except sysvshm.BusyError:
                        pass
                self.interrupting(full, lambda: mq.receive())
                mq.send(b"w" * 16)
                signal.setitimer(signal.ITIMER_REAL, 0)
                assert mq.receive() == (b"w" * 16, 1)
                return 0
            finally:
                mq.remove()
                other.remove()
        self.run_child(body)

    def test_a_real_error_is_still_reported(self):
        sem = self.new_sem(0)
        semset = self.new_set(2)
        sem.remove()
        with self.assertRaises(sysvshm.RemovedError):
            sem.acquire()
        with self.assertRaises(sysvshm.RemovedError):
            sem.acquire(DEADLINE)
        with self.assertRaises(sysvshm.WouldBlockError):
            semset.op([(0, -1, sysvshm.IPC_NOWAIT), (1, -1)], DEADLINE)
        with self.assertRaises(sysvshm.TimedOutError):
            semset.op([(0, -1)], 0.05)


@unittest.skipUnless(os.geteuid() == 0, "needs root to become another user")
class TestSemMsgRightsAndCleanup(MQBase):
    """Never ask for a right the system call does not need; a failed constructor leaves
    nothing behind."""

    def test_write_only_queue_and_set(self):
        mq = self.new_mq(key=random_key(), mode=0o622)
        semset = self.new_set(3, [0, 5, 0], key=random_key(), mode=0o622)
        sem = self.new_sem(0, key=random_key(), mode=0o622)

        def child():
            queue = sysvshm.MessageQueue(mq.key)
            queue.send(b"to the mailbox")          # before: AccessError from IPC_STAT
            queue.send(b"again", type=3)
            try:
                queue.receive(block=False)
            except sysvshm.PermissionsError:
                pass
            else:
                return "receive needs read permission"
            opened = sysvshm.SemaphoreSet(semset.key)   # before: AccessError from IPC_STAT
            if len(opened) != 3:
                return "len %d" % len(opened)
            opened[1].acquire(0, 2)
            opened[2].release()
            opened.op([(0, 1), (2, 1)])
            try:
                opened[3]
            except IndexError:
                pass
            else:
                return "index 3 accepted"
            sysvshm.Semaphore(sem.key).release()
            return None
        self.assertIsNone(in_child(child, user=65534))
        self.assertEqual(mq.receive(), (b"to the mailbox", 1))
        self.assertEqual(mq.receive(), (b"again", 3))
        self.assertEqual(semset.values, [1, 3, 2])
        self.assertEqual(sem.value, 1)

    def test_failed_constructor_leaves_nothing(self):
        def nobody_s():
            with open("/proc/sysvipc/sem") as table:
                next(table)
                return {int(line.split()[1]) for line in table
                        if line.strip() and int(line.split()[6]) == 65534}

        def child():
            made = []
            # 0o200: the creator may alter but not read its set - before, the constructor
            # failed reading the size and left the set behind.
            semset = sysvshm.SemaphoreSet(None, 3, IPC_CREX, mode=0o200)
            made.append(semset.id)
            semset[2].release()
            ok = len(semset) == 3
            semset.remove()
            for attempt in (lambda: sysvshm.SemaphoreSet(None, 2, IPC_CREX, mode=0o400,
                                                         initial_values=[1, 2]),
                            lambda: sysvshm.Semaphore(None, IPC_CREX, mode=0o400,
                                                      initial_value=1)):
                try:
                    made.append(attempt().id)
                except sysvshm.PermissionsError:
                    pass
            return [ok, sorted(nobody_s())]
        before = nobody_s()
        result = in_child(child, user=65534)
        leftover = nobody_s() - before
        for ident in leftover:
            remove_quietly(sysvshm.remove_semaphore, ident)
        self.assertEqual(result, [True, sorted(before)])
        self.assertEqual(leftover, set())

    def test_failure_after_creation_removes_the_set(self):
        before = live_ids("sem")
        with mock.patch.object(sysvshm, "_sem_initialise", side_effect=KeyboardInterrupt):
            with self.assertRaises(KeyboardInterrupt):
                sysvshm.SemaphoreSet(None, 2, IPC_CREX)
            with self.assertRaises(KeyboardInterrupt):
                sysvshm.Semaphore(None, IPC_CREX)
        self.assertEqual(live_ids("sem") - before, set())


class TestSemMsgCopiesAndOpening(MQBase):
    def test_copies_are_refused(self):
        import copy
        import pickle
        sem = self.new_sem(1)
        semset = self.new_set(2)
        mq = self.new_mq()
        for obj in (sem, semset, semset[1], mq):
            for how in (copy.copy, copy.deepcopy, pickle.dumps):
                with self.assertRaises(TypeError) as caught:
                    how(obj)
                self.assertIn("a %s cannot be copied or pickled" % type(obj).__name__,
                              str(caught.exception))
        sem.undo = True
        self.assertTrue(sem.undo)

    def test_nsems_0_with_ipc_creat_opens_an_existing_set(self):
        semset = self.new_set(3, [1, 2, 3], key=random_key())
        opened = sysvshm.SemaphoreSet(semset.key, 0, IPC_CREAT)   # before: ValueError
        self.assertEqual((opened.id, len(opened), opened.values), (semset.id, 3, [1, 2, 3]))
        before = live_ids("sem")
        key = random_key()
        with self.assertRaises(ValueError) as caught:
            sysvshm.SemaphoreSet(key, 0, IPC_CREAT)
        self.assertIn("nsems >= 1", str(caught.exception))
        with self.assertRaises(ValueError):
            sysvshm.SemaphoreSet(None, 0, IPC_CREX)
        self.assertEqual(live_ids("sem") - before, set())

    def test_flags_passed_as_nsems_are_named(self):
        key = random_key()
        with self.assertRaises(sysvshm.NotFoundError) as caught:
            sysvshm.SemaphoreSet(key, IPC_CREAT)
        self.assertIn("nsems=512 is IPC_CREAT: the flags come third", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            sysvshm.SemaphoreSet(None, IPC_CREX)
        self.assertIn("nsems=1536 is IPC_CREX", str(caught.exception))

    def test_acquire_takes_the_absolute_value_of_delta(self):
        sem = self.new_sem(5)
        sem.acquire(0, -2)               # sysv_ipc: "decreases by abs(delta)"
        sem.release(-1)
        self.assertEqual(sem.value, 4)


class TestSemMsgFastPathsKeepChecks(MQBase):
    """The fast paths (issue 13) take no shortcut through a check: every argument the general
    path refuses is refused there too, and their results are the general path's."""

    def test_tries_and_timed_first_tries(self):
        sem = self.new_sem(1)
        for bad_timeout, error in ((False, TypeError), (-1, ValueError), (-0.5, ValueError),
                                   (float("nan"), ValueError), ("1", TypeError)):
            with self.assertRaises(error):
                sem.acquire(bad_timeout)          # the semaphore is free: still refused
            with self.assertRaises(error):
                sem.Z(bad_timeout)
        for bad_delta in (True, 1.0):
            with self.assertRaises(TypeError):
                sem.acquire(0, bad_delta)
            with self.assertRaises(TypeError):
                sem.release(bad_delta)
        self.assertEqual(sem.value, 1)
        sem.acquire(0)
        with self.assertRaises(sysvshm.TimedOutError):
            sem.acquire(0)                        # timeout 0: "timed out", as before
        start = time.monotonic()
        with self.assertRaises(sysvshm.TimedOutError):
            sem.acquire(0.1)                      # the first try fails: then a real wait
        self.assertGreaterEqual(time.monotonic() - start, 0.09)
        sem.Z(0)
        sem.release()
        with self.assertRaises(sysvshm.TimedOutError):
            sem.Z(0)
        sem.block = False
        with self.assertRaises(sysvshm.WouldBlockError):
            sem.Z()
        sem.acquire()
        with self.assertRaises(sysvshm.WouldBlockError):
            sem.acquire()
        sem.block = True
        sem.undo = True                           # flags change the prebuilt sembufs used
        sem.release()

        def child():
            opened = sysvshm.Semaphore(sem.key)
            opened.undo = True
            opened.acquire(0)                     # undone when this process exits
            return 0 if opened.value == 0 else 3
        self.assertChildOk(self.fork(child))
        self.assertEqual(sem.value, 1)
        other = sysvshm.Semaphore(sem.key)        # a fresh handle: no undo
        self.assertFalse(other.undo)

    def test_op_with_a_prebuilt_list(self):
        semset = self.new_set(2, [1, 1])
        take, give = [(0, -1), (1, -1)], [(0, 1), (1, 1)]
        for _ in range(3):
            semset.op(take)
            self.assertEqual(semset.values, [0, 0])
            semset.op(give)
        take[1] = (1, True)                       # replaced item: checked again
        with self.assertRaises(TypeError):
            semset.op(take)
        take[1] = (5, -1)
        with self.assertRaises(IndexError):
            semset.op(take)
        take[1] = (1, -1)
        take.append((0, -1))
        with self.assertRaises(sysvshm.TimedOutError):
            semset.op(take, 0)                    # three operations now: 0 would go below 0
        del take[2]
        semset.op(take, DEADLINE)
        self.assertEqual(semset.values, [0, 0])
        with self.assertRaises(ValueError):
            semset.op(give, -1)                   # a cached list with a bad timeout

    def test_opening_by_key(self):
        sem = self.new_sem(2, key=random_key())
        semset = self.new_set(3, [1, 2, 3], key=random_key())
        mq = self.new_mq(key=random_key())
        for bad in (dict(mode=0o1000), dict(mode=True), dict(initial_value=40000),
                    dict(initial_value=True), dict(flags=False)):
            with self.assertRaises((TypeError, ValueError)):
                sysvshm.Semaphore(sem.key, **bad)
        with self.assertRaises((TypeError, ValueError)):
            sysvshm.SemaphoreSet(semset.key, mode=-1)
        with self.assertRaises((TypeError, ValueError)):
            sysvshm.SemaphoreSet(semset.key, False)
        for bad in (dict(max_message_size=-1), dict(max_message_size=2 ** 64),
                    dict(mode=0o1000)):
            with self.assertRaises((TypeError, ValueError)):
                sysvshm.MessageQueue(mq.key, **bad)
        opened = sysvshm.Semaphore(sem.key)
        self.assertEqual((opened.id, opened.key, opened.value), (sem.id, sem.key, 2))
        opened_set = sysvshm.SemaphoreSet(semset.key)
        self.assertEqual((opened_set.id, len(opened_set), opened_set.values),
                         (semset.id, 3, [1, 2, 3]))
        opened_mq = sysvshm.MessageQueue(mq.key, max_message_size=10)
        mq.send(b"x" * 11)
        with self.assertRaises(sysvshm.MessageTooLongError):
            opened_mq.receive()
        self.assertEqual(opened_mq.receive(flags=MSG_NOERROR), (b"x" * 10, 1))
        missing = random_key()
        with self.assertRaises(sysvshm.NotFoundError):
            sysvshm.Semaphore(missing)
        with self.assertRaises(sysvshm.NotFoundError):
            sysvshm.SemaphoreSet(missing)
        with self.assertRaises(sysvshm.NotFoundError):
            sysvshm.MessageQueue(missing)


class TestMsgBufferBoundedByMsgmax(MQBase):
    @root_namespace
    def test_a_raised_msgmax_grows_the_receive_buffer(self):
        def scenario():
            with open("/proc/sys/kernel/msgmax", "w") as limit:
                limit.write("4096")
            with open("/proc/sys/kernel/msgmnb", "w") as limit:     # a new queue's max_size
                limit.write("65536")
            q = sysvshm.MessageQueue(None, IPC_CREX, max_message_size=min(10 ** 12, sys.maxsize - 8))
            try:
                q.send(b"a" * 10)
                first = q.receive()                 # a buffer of msgmax (4096) bytes
                with open("/proc/sys/kernel/msgmax", "w") as limit:
                    limit.write("20000")
                q.send(b"1" * 10000, type=1)
                q.send(b"2" * 12000, type=2)
                second = q.receive(type=2)          # E2BIG on the small buffer: it grows
                third = q.receive()
                return [first[0].decode(), len(second[0]), second[1], len(third[0]), third[1]]
            finally:
                q.remove()
        self.assertEqual(in_child(scenario, unshare_ipc=True), ["a" * 10, 12000, 2, 10000, 1])


class TestSemMsgInterruptedConstructors(MQBase):
    @unittest.skipUnless(CPYTHON and sys.version_info >= (3, 11),
                         "before 3.10 (and on PyPy) a signal's handler may run at any "
                         "instruction, also where no cleanup can follow (README)")
    @root_namespace
    def test_interrupted_constructors_leave_nothing(self):
        # A signal handler's exception at a random moment inside a constructor that creates
        # (key None, IPC_PRIVATE, IPC_CREAT at a new key) must leave nothing behind.  In a
        # private IPC namespace, so that anything left is ours to count.
        def scenario():
            import random

            class Boom(Exception):
                pass

            def handler(signum, frame):
                if frame is not None and frame.f_code.co_filename == sysvshm.__file__:
                    raise Boom()
            signal.signal(signal.SIGALRM, handler)
            made = interrupted = 0
            makers = (lambda k: sysvshm.Semaphore(k, IPC_CREAT, initial_value=1),
                      lambda k: sysvshm.SemaphoreSet(k, 3, IPC_CREAT, initial_values=[1, 2, 3]),
                      lambda k: sysvshm.MessageQueue(k, IPC_CREAT))
            for i in range(600):
                key = (None, IPC_PRIVATE, 0x6000000 + i)[i % 3]
                make = makers[i // 3 % 3]
                if key is None:
                    make = (lambda k: sysvshm.Semaphore(None, IPC_CREX),
                            lambda k: sysvshm.SemaphoreSet(None, 2, IPC_CREX),
                            lambda k: sysvshm.MessageQueue(None, IPC_CREX))[i // 3 % 3]
                signal.setitimer(signal.ITIMER_REAL, random.uniform(1e-6, 4e-4))
                try:
                    obj = make(key)
                except Boom:
                    interrupted += 1
                    continue
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                made += 1
                obj.remove()
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            return [made, interrupted, sorted(live_ids("sem")), sorted(live_ids("msg"))]
        made, interrupted, sems, queues = in_child(scenario, unshare_ipc=True)
        self.assertEqual((sems, queues), ([], []),
                         "left behind (%d made, %d interrupted)" % (made, interrupted))
        self.assertGreater(interrupted, 0)
        self.assertGreater(made, 0)


class TestChannelHostile(Base):
    """Channel's arguments from .ci/fuzz.py's hostile values: each converted once, never
    reinterpreted, and nothing a refused call made is left behind."""

    def new_objects(self):
        """Register the removal of every object made since the call (whatever the outcome)."""
        before = {kind: live_ids(kind) for kind in ("shm", "sem")}

        def made():
            found = {}
            for kind, remove in (("shm", sysvshm.remove_shared_memory),
                                 ("sem", sysvshm.remove_semaphore)):
                found[kind] = live_ids(kind) - before[kind]
                for ident in found[kind]:
                    CREATED[kind].add(ident)
                    self.addCleanup(remove_quietly, remove, ident)
            return found
        return made

    def test_key_is_converted_once(self):
        # A key whose __index__ gives another value the second time: the channel was made at the
        # first value's check and the second value's key - IPC_PRIVATE here, which the
        # constructor refuses - and `key` returned the object itself.
        key = random_key()
        calls = []

        class Flip(object):
            def __index__(self):
                calls.append(1)
                return key if len(calls) == 1 else IPC_PRIVATE
        made = self.new_objects()
        try:
            ch = sysvshm.Channel(Flip(), IPC_CREX, slots=2, slot_size=64)
        finally:
            found = made()
        self.assertIs(type(ch.key), int)
        self.assertEqual(ch.key, key)
        self.assertEqual(sysvshm.SharedMemory(key).id, ch.id)
        self.assertEqual(sysvshm.SemaphoreSet(key).id, ch.semid)
        self.assertEqual(found, {"shm": {ch.id}, "sem": {ch.semid}})
        self.assertEqual(len(calls), 1)
        self.assertIn("0x%08x" % key, repr(ch))

    def test_index_must_return_an_int(self):
        # __index__ returning a float or a str was passed through int(): 5.7 became 5 slots.
        class Returns(object):
            def __init__(self, value):
                self.value = value

            def __index__(self):
                return self.value
        for bad in (5.7, "7", None, 2.0):
            made = self.new_objects()
            with self.assertRaises(TypeError):
                sysvshm.Channel(None, IPC_CREX, slots=Returns(bad), slot_size=64)
            with self.assertRaises(TypeError):
                sysvshm.Channel(None, IPC_CREX, slots=2, slot_size=Returns(bad))
            with self.assertRaises(TypeError):
                sysvshm.SharedMemory(None, IPC_CREX, size=Returns(bad))
            self.assertEqual(made(), {"shm": set(), "sem": set()})
        ch = sysvshm.Channel(None, IPC_CREX, slots=Returns(True and 3), slot_size=64)
        self.addCleanup(remove_quietly, sysvshm.remove_semaphore, ch.semid)
        self.addCleanup(remove_quietly, sysvshm.remove_shared_memory, ch.id)
        CREATED["sem"].add(ch.semid)
        CREATED["shm"].add(ch.id)
        self.assertEqual(ch.slots, 3)


if __name__ == "__main__":
    unittest.main()
