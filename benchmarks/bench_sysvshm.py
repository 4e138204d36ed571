#!/usr/bin/env python3
# sysvshm benchmarks.
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The sysvshm authors
"""Measure sysvshm against sysv_ipc, multiprocessing and the C floor, and print one table.

    python3 benchmarks/bench_sysvshm.py            # full run (about a minute)
    python3 benchmarks/bench_sysvshm.py --quick    # short run (a few seconds)
    python3 benchmarks/bench_sysvshm.py --only pair,pingpong

Standard library only.  sysv_ipc, numpy, multiprocessing.shared_memory, sysvshm.MessageQueue and a
C compiler (``cc``; the C rows are compiled at run time into a temporary directory) are used when
present; their rows say "skipped" otherwise.

Method: every row of a section is timed in several rounds, the rows interleaved (and rotated)
within each round so that the machine's noise spreads over all of them; the table shows the median
time per operation, the spread of the rounds ((max - min) / 2 / median) and the ratio to the
section's reference row, all measured side by side in this one run.  Python rows include the
interpreter's loop overhead (~10-20 ns per iteration); C rows loop in C.  The garbage collector is
off while a row is timed.

Every IPC object made here is created with IPC_PRIVATE or a random key with IPC_CREX, and removed
in a ``finally`` (or by an ExitStack callback) even when a row fails.
"""

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import sysvshm  # noqa: E402

try:
    import sysv_ipc  # type: ignore
except ImportError:
    sysv_ipc = None

_perf = time.perf_counter


def _affinity_functions():
    """(sched_getaffinity, sched_setaffinity): the os module's, or the same libc calls through
    ctypes where os lacks them (PyPy 3.9), or (None, None)."""
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity, os.sched_setaffinity
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        c_get, c_set = libc.sched_getaffinity, libc.sched_setaffinity
    except (OSError, AttributeError):
        return None, None
    bits = 8 * ctypes.sizeof(ctypes.c_ulong)
    words = 1024 // bits                       # a cpu_set_t: 1024 CPUs, in unsigned longs
    for func in (c_get, c_set):
        func.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p]
        func.restype = ctypes.c_int

    def check(result):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def getaffinity(pid):
        mask = (ctypes.c_ulong * words)()
        check(c_get(pid, ctypes.sizeof(mask), mask))
        return set(i for i in range(words * bits) if mask[i // bits] >> (i % bits) & 1)

    def setaffinity(pid, cpus):
        mask = (ctypes.c_ulong * words)()
        for cpu in cpus:
            if not 0 <= cpu < words * bits:
                raise ValueError("CPU %r is out of range" % (cpu,))
            mask[cpu // bits] |= 1 << (cpu % bits)
        check(c_set(pid, ctypes.sizeof(mask), mask))
    return getaffinity, setaffinity


sched_getaffinity, sched_setaffinity = _affinity_functions()
MiB = 1024 * 1024
WATCHDOG = 60.0      # seconds a forked ping-pong may take before both sides give up

# --- The C floor ---------------------------------------------------------------------------------
C_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/msg.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Every function returns the elapsed nanoseconds of its timed part, or -errno. */
static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long sem_pairs(int semid, long n) {
    struct sembuf p = {0, -1, 0}, v = {0, 1, 0};
    long long t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (semop(semid, &p, 1) != 0 || semop(semid, &v, 1) != 0)
            return -errno;
    return now_ns() - t0;
}

/* Parent: V(ping) P(pong); child: P(ping) V(pong).  EINTR returns (the caller's watchdog). */
long long sem_pingpong(int ping, int pong, long warmup, long n, int child) {
    struct sembuf p = {0, -1, 0}, v = {0, 1, 0};
    long long t0 = now_ns();
    for (long i = 0; i < warmup + n; i++) {
        if (i == warmup)
            t0 = now_ns();
        if (child ? (semop(ping, &p, 1) != 0 || semop(pong, &v, 1) != 0)
                  : (semop(ping, &v, 1) != 0 || semop(pong, &p, 1) != 0))
            return -errno;
    }
    return now_ns() - t0;
}

long long copy(void *dst, const void *src, size_t len, long reps) {
    long long t0 = now_ns();
    for (long i = 0; i < reps; i++) {
        memcpy(dst, src, len);
        __asm__ volatile("" : : "r"(dst) : "memory");
    }
    return now_ns() - t0;
}

/* What read() must do: a new buffer (fresh pages: malloc of 64 MiB is an mmap), then the copy. */
long long malloc_copy(const void *src, size_t len, long reps) {
    long long t0 = now_ns();
    for (long i = 0; i < reps; i++) {
        char *d = malloc(len);
        if (!d)
            return -ENOMEM;
        memcpy(d, src, len);
        __asm__ volatile("" : : "r"(d) : "memory");
        free(d);
    }
    return now_ns() - t0;
}

/* touch: 0 nothing, 1 memset (sysv_ipc's init_character fill), 2 MADV_POPULATE_WRITE,
   3 nothing, but attached as sysvshm does it: into an anonymous mapping reserved for it
   (SHM_REMAP) on an SHMLBA boundary (4 pages on 32-bit ARM, else a page), and detached by
   unmapping that range. */
long long shm_cycle(size_t size, long n, int touch) {
    long page = sysconf(_SC_PAGESIZE);
    size_t lba = SHMLBA, reserved = size + lba - page;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
        if (id < 0)
            return -errno;
        char *a;
        void *r = MAP_FAILED;
        if (touch == 3) {
            r = mmap(NULL, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            a = r == MAP_FAILED ? (void *)-1
                : shmat(id, (void *)(((uintptr_t)r + lba - 1) / lba * lba), SHM_REMAP);
        } else
            a = shmat(id, NULL, 0);
        if (a == (void *)-1) {
            int e = errno;
            if (r != MAP_FAILED)
                munmap(r, reserved);
            shmctl(id, IPC_RMID, NULL);
            return -e;
        }
        if (touch == 1)
            memset(a, ' ', size);
        else if (touch == 2 && madvise(a, size, MADV_POPULATE_WRITE) != 0)
            for (size_t o = 0; o < size; o += page)
                (void)*(volatile char *)(a + o);
        if (touch == 3)
            munmap(r, reserved);
        else
            shmdt(a);
        if (shmctl(id, IPC_RMID, NULL) != 0)
            return -errno;
    }
    return now_ns() - t0;
}

struct msg64 { long mtype; char mtext[64]; };

long long msg_roundtrip(int msqid, long n) {
    struct msg64 m;
    memset(&m, 'x', sizeof m);
    m.mtype = 1;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (msgsnd(msqid, &m, sizeof m.mtext, 0) != 0 ||
            msgrcv(msqid, &m, sizeof m.mtext, 0, 0) < 0)
            return -errno;
    return now_ns() - t0;
}
"""


def load_c_floor():
    """Compile C_SOURCE into a temporary directory and load it; (library, None) or (None, why).

    SYSVSHM_CC names a compiler for this interpreter's architecture (.ci/cross-arch sets it)."""
    if os.environ.get("SYSVSHM_CC"):
        cc = shlex.split(os.environ["SYSVSHM_CC"])
        if not shutil.which(cc[0]):
            return None, "SYSVSHM_CC=%s: not installed" % os.environ["SYSVSHM_CC"]
    else:
        found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if found is None:
            return None, "no C compiler (cc)"
        cc = [found]
    tmp = tempfile.mkdtemp(prefix="sysvshm-bench-")
    try:
        source, library = os.path.join(tmp, "floor.c"), os.path.join(tmp, "floor.so")
        with open(source, "w") as f:
            f.write(C_SOURCE)
        done = subprocess.run(cc + ["-O2", "-shared", "-fPIC", "-o", library, source],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if done.returncode != 0:
            return None, "cc failed: %s" % done.stdout.strip().splitlines()[-1:]
        try:
            lib = ctypes.CDLL(library)     # stays mapped after the file is removed below
        except OSError as exc:             # e.g. the host's cc under another architecture
            return None, "cannot load the C library: %s" % exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c_int, c_long = ctypes.c_int, ctypes.c_long
    c_size_t, c_void_p = ctypes.c_size_t, ctypes.c_void_p
    for name, argtypes in (("sem_pairs", [c_int, c_long]),
                           ("sem_pingpong", [c_int, c_int, c_long, c_long, c_int]),
                           ("copy", [c_void_p, c_void_p, c_size_t, c_long]),
                           ("malloc_copy", [c_void_p, c_size_t, c_long]),
                           ("shm_cycle", [c_size_t, c_long, c_int]),
                           ("msg_roundtrip", [c_int, c_long])):
        func = getattr(lib, name)
        func.argtypes, func.restype = argtypes, ctypes.c_longlong
    return lib, None


def c_seconds(result):
    """A C function's result (ns, or -errno) as seconds."""
    if result < 0:
        raise OSError(-result, os.strerror(-result))
    return result / 1e9


# --- Harness -------------------------------------------------------------------------------------
class Row(object):
    """One line of the table: a timer(count) -> seconds for `count` operations, or a skip reason."""

    def __init__(self, label, timer=None, skip=None, scale=1.0, ref=False):
        self.label, self.timer, self.skip, self.scale, self.ref = label, timer, skip, scale, ref
        self.samples = []    # seconds per operation, one per round
        self.error = None

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else None


class Section(object):
    """A titled group of rows measured together; `mode` is how rows compare with the reference:
    "time" (ratio = time / reference time), "speed" (ratio = reference time / time, for
    throughput) or "delta" (difference in ms, for import time)."""

    def __init__(self, key, title, mode="time", nbytes=0):
        self.key, self.title, self.mode, self.nbytes = key, title, mode, nbytes
        self.rows = []
        self.rounds = 0

    def add(self, label, timer=None, skip=None, scale=1.0, ref=False):
        row = Row(label, timer, skip, scale, ref)
        self.rows.append(row)
        return row

    def reference(self):
        for row in self.rows:
            if row.ref and row.samples:
                return row
        for row in self.rows:
            if row.samples:
                return row
        return None

    def find(self, label):
        for row in self.rows:
            if row.label == label and row.samples:
                return row
        return None

    def ratio(self, row, reference=None):
        reference = reference or self.reference()
        if reference is None or not row.samples:
            return None
        if self.mode == "speed":
            return reference.median / row.median
        if self.mode == "delta":
            return (row.median - reference.median) * 1e3
        return row.median / reference.median


def measure(section, count, rounds):
    """Time every live row of `section` in `rounds` interleaved, rotated rounds."""
    live = [row for row in section.rows if row.timer is not None]
    for row in list(live):           # warm up (caches, lazy imports, specialisation)
        try:
            row.timer(max(1, int(count * row.scale) // 10))
        except Exception as exc:    # a failing row is reported, the others go on
            row.error = "%s: %s" % (type(exc).__name__, exc)
            live.remove(row)
    for r in range(rounds):
        order = live[r % len(live):] + live[:r % len(live)] if live else []
        for row in order:
            if row.error:
                continue
            n = max(1, int(count * row.scale))
            gc.collect()
            gc.disable()
            try:
                row.samples.append(row.timer(n) / n)
            except Exception as exc:
                row.error = "%s: %s" % (type(exc).__name__, exc)
                row.samples = []
            finally:
                gc.enable()


def compiled_timer(stmt, namespace, setup=""):
    """A timer(n) running `stmt` n times in a compiled for-loop (as timeit does: no extra call)."""
    source = ("def _timer(_n, _perf=_perf):\n"
              "    %s\n"
              "    _t0 = _perf()\n"
              "    for _ in _range(_n):\n"
              "        %s\n"
              "    return _perf() - _t0\n") % (setup or "pass", stmt)
    # The namespace is the function's globals, not a copy: clearing it (an ExitStack callback)
    # drops every view the timer holds, so that detach() can succeed afterwards.
    namespace["_perf"], namespace["_range"] = _perf, range
    exec(compile(source, "<bench %r>" % stmt, "exec"), namespace)
    return namespace.pop("_timer")


# --- Sections ------------------------------------------------------------------------------------
def section_pair(stack, c_lib, c_skip):
    s = Section("pair", "uncontended acquire+release pair (one process)")
    sem = sysvshm.Semaphore(None, sysvshm.IPC_CREX, initial_value=1)
    stack.callback(sem.remove)
    s.add("sysvshm Semaphore", compiled_timer("sem.acquire(); sem.release()", {"sem": sem}))
    semset = sysvshm.SemaphoreSet(None, 2, sysvshm.IPC_CREX, initial_values=[1, 1])
    stack.callback(semset.remove)
    s.add("sysvshm SemaphoreSet member", compiled_timer("m.acquire(); m.release()",
                                                        {"m": semset[1]}))
    s.add("sysvshm Semaphore, with-statement", compiled_timer("with sem: pass", {"sem": sem}))
    if sysv_ipc is not None:
        other = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, initial_value=1)
        stack.callback(other.remove)
        s.add("sysv_ipc Semaphore", compiled_timer("sem.acquire(); sem.release()", {"sem": other}),
              ref=True)
    else:
        s.add("sysv_ipc Semaphore", skip="sysv_ipc not installed", ref=True)
    try:
        import multiprocessing
        lock = multiprocessing.get_context("fork").Lock()
        s.add("multiprocessing.Lock (futex)", compiled_timer("lock.acquire(); lock.release()",
                                                             {"lock": lock}))
    except (ImportError, OSError, ValueError) as exc:
        s.add("multiprocessing.Lock (futex)", skip=str(exc))
    floor = _Floor()
    p, p_ref = floor.ops((0, -1, 0))
    v, v_ref = floor.ops((0, 1, 0))
    s.add("ctypes floor: semop + semop", compiled_timer(
        "semop(i, p, 1); semop(i, v, 1)", {"semop": floor.semop, "i": sem.id, "p": p_ref,
                                           "v": v_ref}))
    if c_lib is not None:
        csem = sysvshm.Semaphore(None, sysvshm.IPC_CREX, initial_value=1)
        stack.callback(csem.remove)
        s.add("C semop", lambda n: c_seconds(c_lib.sem_pairs(csem.id, n)))
    else:
        s.add("C semop", skip=c_skip)
    return s


class _Watchdog(Exception):
    pass


def _alarm(signum, frame):
    raise _Watchdog("no progress for %.0f s" % WATCHDOG)


def _exit_status(status):
    """A waitpid status as an exit code (128 + the signal's number for a killed process)."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _reap(pid, deadline):
    """Wait for child `pid` until `deadline` (monotonic), then kill it; its exit status."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return _exit_status(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.001)


def forked(parent_side, child_side, cpus):
    """Run child_side() in a forked child pinned to cpus[1] and parent_side() here, pinned to
    cpus[0]; parent_side's result (seconds).  Both sides have a watchdog; the child always leaves
    through os._exit()."""
    previous = sched_getaffinity(0)
    sched_setaffinity(0, {cpus[0]})
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
                sched_setaffinity(0, {cpus[1]})
                child_side()
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        try:
            signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
            elapsed = parent_side()
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            _reap(pid, time.monotonic() + 5)
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        status = _reap(pid, time.monotonic() + 10)
        if status != 0:
            raise RuntimeError("ping-pong child exited with status %d" % status)
        return elapsed
    finally:
        sched_setaffinity(0, previous)


PINGPONG_WARMUP = 200


def pingpong_rows(s, stack, cpus, c_lib, c_skip):
    warm = PINGPONG_WARMUP

    def sem_row(label, make, ref=False):
        a, b = make(), make()
        parent_loop = compiled_timer("a.release(); b.acquire()", {"a": a, "b": b},
                                     setup="for _ in range(%d): a.release(); b.acquire()" % warm)

        def child_loop(n):
            for _ in range(warm + n):
                a.acquire()
                b.release()
        s.add(label, lambda n: forked(lambda: parent_loop(n), lambda: child_loop(n), cpus),
              ref=ref)

    def new_sysvshm():
        sem = sysvshm.Semaphore(None, sysvshm.IPC_CREX)
        stack.callback(sem.remove)
        return sem
    sem_row("sysvshm Semaphore", new_sysvshm)
    if sysv_ipc is not None:
        def new_sysv_ipc():
            sem = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX)
            stack.callback(sem.remove)
            return sem
        sem_row("sysv_ipc Semaphore", new_sysv_ipc, ref=True)
    else:
        s.add("sysv_ipc Semaphore", skip="sysv_ipc not installed", ref=True)
    if c_lib is not None:
        ping, pong = new_sysvshm(), new_sysvshm()

        def c_side(n, child):
            return lambda: c_seconds(c_lib.sem_pingpong(ping.id, pong.id, warm, n, child))
        s.add("C semop", lambda n: forked(c_side(n, 0), c_side(n, 1), cpus))
    else:
        s.add("C semop", skip=c_skip)

    import multiprocessing

    def mp_pipe(n):
        here, there = multiprocessing.Pipe()
        try:
            parent_loop = compiled_timer("c.send_bytes(b'x'); c.recv_bytes()", {"c": here},
                                         setup="for _ in range(%d): c.send_bytes(b'x'); "
                                               "c.recv_bytes()" % warm)

            def child_loop():
                for _ in range(warm + n):
                    there.recv_bytes()
                    there.send_bytes(b"x")
            return forked(lambda: parent_loop(n), child_loop, cpus)
        finally:
            here.close()
            there.close()
    s.add("multiprocessing.Pipe", mp_pipe)

    def os_pipe(n):
        fds = os.pipe() + os.pipe()
        try:
            down_r, down_w, up_r, up_w = fds
            parent_loop = compiled_timer("write(w, b'x'); read(r, 1)",
                                         {"write": os.write, "read": os.read, "w": down_w,
                                          "r": up_r},
                                         setup="for _ in range(%d): write(w, b'x'); read(r, 1)"
                                               % warm)

            def child_loop():
                read, write = os.read, os.write
                for _ in range(warm + n):
                    read(down_r, 1)
                    write(up_w, b"x")
            return forked(lambda: parent_loop(n), child_loop, cpus)
        finally:
            for fd in fds:
                os.close(fd)
    s.add("os.pipe (two pipes)", os_pipe)


def section_pingpong(stack, c_lib, c_skip, across):
    if across:
        s = Section("pingpong", "ping-pong round trip, two processes on two CPUs "
                                "(two semaphores)")
    else:
        s = Section("pingpong1", "ping-pong round trip, two processes on one CPU")
    if sched_setaffinity is None:
        s.add("sysvshm Semaphore", skip="no sched_setaffinity (os or libc) to pin CPUs")
        return s
    cpus = sorted(sched_getaffinity(0))
    if across:
        if len(cpus) < 2:
            s.add("sysvshm Semaphore", skip="needs two CPUs (this process may use %s)" % cpus)
            return s
        pair = (cpus[0], cpus[1])
    else:
        pair = (cpus[0], cpus[0])
    pingpong_rows(s, stack, pair, c_lib, c_skip)
    return s


def sections_small(stack):
    size, offset = 64 * 1024 + 123, 1000
    mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=size)
    stack.callback(mem.remove)
    stack.callback(mem.detach)
    data = bytes(range(64))
    ns = {"mem": mem, "buf": mem.buf, "o": offset, "e": offset + 64, "data": data}
    stack.callback(ns.clear)       # runs before detach: drops the views the timers hold
    read = Section("read64", "64-byte read at an offset (-> bytes)")
    write = Section("write64", "64-byte write at an offset (from bytes)")
    read.add("sysvshm buf[o:o+64].tobytes()", compiled_timer("buf[o:e].tobytes()", ns))
    read.add("sysvshm bytes(buf[o:o+64])", compiled_timer("bytes(buf[o:e])", ns))
    read.add("sysvshm read(64, o)", compiled_timer("mem.read(64, o)", ns))
    write.add("sysvshm buf[o:o+64] = data", compiled_timer("buf[o:e] = data", ns))
    write.add("sysvshm write(data, o)", compiled_timer("mem.write(data, o)", ns))
    if sysv_ipc is not None:
        other = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=size)
        stack.callback(other.remove)
        stack.callback(other.detach)
        ns2 = {"mem": other, "o": offset, "data": data}
        read.add("sysv_ipc read(64, o)", compiled_timer("mem.read(64, o)", ns2), ref=True)
        write.add("sysv_ipc write(data, o)", compiled_timer("mem.write(data, o)", ns2), ref=True)
    else:
        read.add("sysv_ipc read(64, o)", skip="sysv_ipc not installed", ref=True)
        write.add("sysv_ipc write(data, o)", skip="sysv_ipc not installed", ref=True)
    return [read, write]


def _numpy():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # no idle BLAS threads beside the rows
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import numpy  # type: ignore
        return numpy, None
    except ImportError:
        return None, "numpy not installed"


def sections_copy(stack, c_lib, c_skip, size):
    into = Section("copyin", "%d MiB copy into a segment (throughput)" % (size // MiB), "speed",
                   size)
    out = Section("copyout", "%d MiB copy out of a segment (throughput)" % (size // MiB), "speed",
                  size)
    src = bytearray(b"\x5a" * size)
    dest = bytearray(size)
    mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=size)   # filled: every page touched
    stack.callback(mem.remove)
    stack.callback(mem.detach)
    buf = mem.buf
    if c_lib is not None:
        keep = [ctypes.c_char.from_buffer(src), ctypes.c_char.from_buffer(dest)]
        src_at, dest_at = ctypes.addressof(keep[0]), ctypes.addressof(keep[1])
        stack.callback(keep.clear)
        into.add("C memcpy", lambda n: c_seconds(c_lib.copy(mem.address, src_at, size, n)),
                 ref=True)
        out.add("C memcpy", lambda n: c_seconds(c_lib.copy(dest_at, mem.address, size, n)),
                ref=True)
    else:
        into.add("C memcpy", skip=c_skip, ref=True)
        out.add("C memcpy", skip=c_skip, ref=True)
    ns = {"mem": mem, "buf": buf, "src": src, "dest": dest, "dview": memoryview(dest)}
    stack.callback(ns.clear)       # runs before detach: drops the views the timers hold
    into.add("sysvshm buf[:] = src", compiled_timer("buf[:] = src", ns))
    into.add("sysvshm write(src)", compiled_timer("mem.write(src)", ns))
    out.add("sysvshm read_into(dest)", compiled_timer("mem.read_into(dest)", ns))
    out.add("sysvshm memoryview(dest)[:] = buf", compiled_timer("dview[:] = buf", ns))
    out.add("sysvshm read() (new bytes each time)", compiled_timer("mem.read()", ns))
    if c_lib is not None:
        out.add("C malloc+memcpy+free (as read() must)",
                lambda n: c_seconds(c_lib.malloc_copy(mem.address, size, n)))
    numpy, why = _numpy()
    if numpy is not None:
        np_ns = {"np": numpy, "seg": numpy.frombuffer(buf, dtype=numpy.uint8),
                 "a": numpy.frombuffer(src, dtype=numpy.uint8),
                 "b": numpy.frombuffer(dest, dtype=numpy.uint8)}
        stack.callback(np_ns.clear)    # the arrays go before detach
        into.add("numpy copyto(array on buf, src)", compiled_timer("np.copyto(seg, a)", np_ns))
        out.add("numpy copyto(dest, array on buf)", compiled_timer("np.copyto(b, seg)", np_ns))
    else:
        into.add("numpy copyto", skip=why)
    if sysv_ipc is not None:
        other = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=size)
        stack.callback(other.remove)
        stack.callback(other.detach)
        ns2 = {"mem": other, "src": src}
        into.add("sysv_ipc write(src)", compiled_timer("mem.write(src)", ns2))
        out.add("sysv_ipc read() (new bytes each time)", compiled_timer("mem.read()", ns2))
    else:
        into.add("sysv_ipc", skip="sysv_ipc not installed")
    try:
        from multiprocessing import shared_memory
    except ImportError:
        into.add("multiprocessing.shared_memory", skip="Python < 3.8")
    else:
        shm = shared_memory.SharedMemory(create=True, size=size)
        stack.callback(shm.unlink)
        stack.callback(shm.close)
        stack.callback(ns.pop, "shm", None)
        ns["shm"] = shm.buf
        ns["shm"][:] = src
        into.add("multiprocessing.shared_memory buf[:] = src", compiled_timer("shm[:] = src", ns))
        out.add("multiprocessing.shared_memory memoryview(dest)[:] = buf",
                compiled_timer("dview[:] = shm", ns))
    return [into, out]


def sections_create(stack, c_lib, c_skip, size):
    untouched = Section("create", "create+attach+detach+remove a %d MiB segment, untouched"
                        % (size // MiB))
    faulted = Section("createfault", "create+attach+detach+remove a %d MiB segment, every page "
                      "touched" % (size // MiB))
    PRIVATE, CREAT, CREX = sysvshm.IPC_PRIVATE, sysvshm.IPC_CREAT, sysvshm.IPC_CREX
    ns = {"SM": sysvshm.SharedMemory, "size": size, "PRIVATE": PRIVATE, "CREAT": CREAT,
          "CREX": CREX}
    cycle = ("m = SM(%s, size=size%s)\n        try:\n            %sm.detach()\n"
             "        finally:\n            m.remove()")
    untouched.add("sysvshm SharedMemory(IPC_PRIVATE, IPC_CREAT)",
                  compiled_timer(cycle % ("PRIVATE, CREAT", "", ""), ns))
    faulted.add("sysvshm prefault() (MADV_POPULATE_WRITE)",
                compiled_timer(cycle % ("PRIVATE, CREAT", "", "m.prefault(); "), ns))
    faulted.add("sysvshm IPC_CREX, init_character fill",
                compiled_timer(cycle % ("None, CREX", "", ""), ns))
    if sysv_ipc is not None:
        ns2 = dict(ns, SM=sysv_ipc.SharedMemory)
        untouched.add("sysv_ipc SharedMemory(IPC_PRIVATE, IPC_CREAT)",
                      compiled_timer(cycle % ("PRIVATE, CREAT", "", ""), ns2), ref=True)
        faulted.add("sysv_ipc IPC_CREX, init_character fill",
                    compiled_timer(cycle % ("None, CREX", "", ""), ns2), ref=True)
    else:
        untouched.add("sysv_ipc", skip="sysv_ipc not installed", ref=True)
        faulted.add("sysv_ipc", skip="sysv_ipc not installed", ref=True)
    untouched.add(FLOOR_CREATE, _create_floor(size))
    if c_lib is not None:
        untouched.add("C shmget+shmat+shmdt+IPC_RMID",
                      lambda n: c_seconds(c_lib.shm_cycle(size, n, 0)))
        untouched.add("C the same the sysvshm way (mmap, SHM_REMAP, munmap)",
                      lambda n: c_seconds(c_lib.shm_cycle(size, n, 3)))
        faulted.add("C ... + memset", lambda n: c_seconds(c_lib.shm_cycle(size, n, 1)))
        faulted.add("C ... + MADV_POPULATE_WRITE", lambda n: c_seconds(c_lib.shm_cycle(size, n, 2)))
    else:
        untouched.add("C", skip=c_skip)
    return [untouched, faulted]


FLOOR_CREATE = ("ctypes floor: sysvshm's 8 system calls (3 sigprocmask, shmget, mmap, "
                "shmat, munmap, IPC_RMID)")


def _create_floor(size):
    """A timer(n) making the system calls sysvshm makes for a create + attach + detach + remove
    (strace shows them: read the signal mask, block asynchronous signals, shmget, reserve the
    range with mmap, shmat(SHM_REMAP) into it, restore the mask, munmap, IPC_RMID) through
    prebound ctypes calls with prebuilt arguments, errno never read."""
    libc = ctypes.CDLL(None)
    cpython = platform.python_implementation() == "CPython"
    c_int, c_void_p, c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
    protos = {"pthread_sigmask": ([c_int, c_void_p, c_void_p], c_int),
              "shmget": ([c_int, c_size_t, c_int], c_int),
              "mmap": ([c_void_p, c_size_t, c_int, c_int, c_int, ctypes.c_long], c_void_p),
              "shmat": ([c_int, c_void_p, c_int], c_void_p),
              "munmap": ([c_void_p, c_size_t], c_int),
              "shmctl": ([c_int, c_int, c_void_p], c_int)}
    funcs = {}
    for name, (argtypes, restype) in protos.items():
        func = libc[name]
        func.restype = restype
        if not cpython or name in ("mmap", "shmat", "munmap"):   # pointers, sizes: declared
            func.argtypes = argtypes
        funcs[name] = func
    blocked, old, none = ctypes.create_string_buffer(128), ctypes.create_string_buffer(128), None
    ctypes.memset(blocked, 0xFF, 128)
    sizes = c_size_t(size)
    span = size + 2 * 4096
    PROT, FLAGS, REMAP = 3, 0x22, 0o40000          # RW, MAP_PRIVATE|MAP_ANONYMOUS, SHM_REMAP
    mask, shmget, mmap, shmat, munmap, shmctl = (funcs[name] for name in protos)
    blocked_ref, old_ref = ctypes.byref(blocked), ctypes.byref(old)

    def timer(n):
        t0 = _perf()
        for _ in range(n):
            mask(0, none, old_ref)                     # SIG_BLOCK, nothing: read the mask
            mask(0, blocked_ref, none)                 # block them
            ident = shmget(0, sizes, 0o1600)           # IPC_PRIVATE, IPC_CREAT | 0600
            address = mmap(None, span, PROT, FLAGS, -1, 0)
            shmat(ident, address, REMAP)
            mask(2, old_ref, none)                     # SIG_SETMASK: back
            munmap(address, span)
            shmctl(ident, 0, none)                     # IPC_RMID
        return _perf() - t0
    return timer


def section_queue(stack, c_lib, c_skip):
    s = Section("queue", "message queue send+receive round trip, 64 bytes (one process)")
    message = b"m" * 64
    if hasattr(sysvshm, "MessageQueue"):
        q = sysvshm.MessageQueue(None, sysvshm.IPC_CREX)
        stack.callback(q.remove)
        s.add("sysvshm MessageQueue", compiled_timer("q.send(msg); q.receive()",
                                                     {"q": q, "msg": message}))
    else:
        s.add("sysvshm MessageQueue", skip="sysvshm has no MessageQueue yet")
    if sysv_ipc is not None:
        other = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX)
        stack.callback(other.remove)
        s.add("sysv_ipc MessageQueue", compiled_timer("q.send(msg); q.receive()",
                                                      {"q": other, "msg": message}), ref=True)
        if c_lib is not None:
            s.add("C msgsnd+msgrcv", lambda n: c_seconds(c_lib.msg_roundtrip(other.id, n)))
        else:
            s.add("C msgsnd+msgrcv", skip=c_skip)
    else:
        s.add("sysv_ipc MessageQueue", skip="sysv_ipc not installed", ref=True)
    fq = sysvshm.MessageQueue(None, sysvshm.IPC_CREX)
    stack.callback(fq.remove)
    ns = _Floor().queue_namespace(message)
    s.add(FLOOR_QUEUE, compiled_timer(FLOOR_QUEUE_STMT % ("q", "q"), dict(ns, q=fq.id)))
    import multiprocessing
    mq = multiprocessing.get_context("fork").Queue()

    def close_queue():
        mq.close()
        mq.join_thread()
    stack.callback(close_queue)
    s.add("multiprocessing.Queue put+get", compiled_timer("q.put(msg); q.get()",
                                                          {"q": mq, "msg": message}), scale=0.1)
    return s


_CHANNEL_C = []


def _channel_c_program(stack):
    """examples/channel.c built once with cc: (path, None) or (None, why not)."""
    if not _CHANNEL_C:
        folder = tempfile.mkdtemp()
        stack.callback(shutil.rmtree, folder, True)
        stack.callback(_CHANNEL_C.clear)
        program = os.path.join(folder, "channel")
        try:
            subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", program,
                            os.path.join(ROOT, "examples", "channel.c")], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            with open(program, "rb") as built, open("/proc/self/exe", "rb") as ours:
                theirs, mine = built.read(20), ours.read(20)
                if (theirs[4:6], theirs[18:20]) != (mine[4:6], mine[18:20]):  # class, data, machine
                    raise OSError("cc builds for another architecture than this interpreter")
            _CHANNEL_C.append((program, None))
        except (OSError, subprocess.SubprocessError) as exc:
            _CHANNEL_C.append((None, "cannot build examples/channel.c: %s" % exc))
    return _CHANNEL_C[0]


def run_programs(commands):
    """Start every (argv, cpu) program at once, each pinned to its CPU, and wait for them all;
    seconds from the first start to the last exit.  The waits block in waitpid (Popen.wait with
    a timeout polls with growing sleeps, which rounds the time up) under the SIGALRM watchdog;
    every child is reaped, and killed first on any failure (a failed start, the watchdog)."""
    previous = sched_getaffinity(0)
    children = []
    try:
        t0 = _perf()
        for argv, cpu in commands:
            sched_setaffinity(0, {cpu})     # inherited by the child (no preexec_fn)
            children.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        sched_setaffinity(0, previous)
        signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
        codes = [child.wait() for child in children]
        elapsed = _perf() - t0
    except BaseException:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(OSError):
                    child.kill()
        for child in children:
            child.wait()
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sched_setaffinity(0, previous)
    if any(codes):
        raise RuntimeError("examples/channel.c exited with status %s" % codes)
    return elapsed


def _without_start_up(short, full):
    """full() - short(): the time of the messages only, when both runs start the same programs
    and `short` sends fewer messages.  Tried three times when the noise of the start-up is larger
    than the difference, then an error (rather than a meaningless time)."""
    for _ in range(3):
        start_up = short()
        elapsed = full() - start_up
        if elapsed > 0:
            return elapsed
    raise RuntimeError("the start-up's noise is larger than the run (%.2f ms)" % (start_up * 1e3))


def _c_messages(n, size):
    """At least as many messages as make the C run ~10x longer than the programs' start-up
    (their noise would swamp the difference otherwise): the full run's counts."""
    return max(n, 200 if size >= MiB else 4000)


C_CHANNEL = "C examples/channel.c (start-up, 20 msgs subtracted)"
C_CHANNEL_2 = "C examples/channel.c (start-up of 4 execs subtracted)"
PIPE_INTO = "multiprocessing.Pipe send_bytes/recv_bytes_into"


CHANNEL_SIZES = ((64, 4000), (4096, 2000), (1024 * 1024, 200))
CHANNEL_SLOTS = 64       # ring depth for small messages (a pipe buffers 64 KiB); 8 for 1 MiB


def section_channel(stack, size):
    """One producer (a forked child on one CPU) streams `size`-byte messages to one consumer
    (this process, on the other CPU): sysvshm.Channel against the usual alternatives."""
    s = Section("channel%d" % size, "stream of %s messages, producer -> consumer on two CPUs"
                % ("%d B" % size if size < 1024 else "%d KiB" % (size // 1024) if size < MiB
                   else "%d MiB" % (size // MiB)), mode="speed", nbytes=size)
    if sched_setaffinity is None or len(sched_getaffinity(0)) < 2:
        s.add("sysvshm Channel send/receive_into", skip="needs two CPUs and sched_setaffinity")
        return s
    cpus = sorted(sched_getaffinity(0))[:2]
    warm = 20
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    dest = bytearray(size)
    if not hasattr(sysvshm, "Channel"):
        s.add("sysvshm Channel send/receive_into", skip="sysvshm has no Channel")
    else:
        ch = sysvshm.Channel(None, sysvshm.IPC_CREX, slots=8 if size >= MiB else CHANNEL_SLOTS,
                             slot_size=size)
        stack.callback(ch.remove)

        def channel_copy(n):
            def consumer():
                receive_into = ch.receive_into
                for _ in range(warm):
                    receive_into(dest)
                t0 = _perf()
                for _ in range(n):
                    receive_into(dest)
                return _perf() - t0

            def producer():
                send = ch.send
                for _ in range(warm + n):
                    send(payload)
            return forked(consumer, producer, cpus)
        s.add("sysvshm Channel send/receive_into", channel_copy)

        def channel_bytes(n):
            def consumer():
                receive = ch.receive
                for _ in range(warm):
                    receive()
                t0 = _perf()
                for _ in range(n):
                    receive()
                return _perf() - t0

            def producer():
                for _ in range(warm + n):
                    ch.send(payload)
            return forked(consumer, producer, cpus)
        s.add("sysvshm Channel send/receive (bytes)", channel_bytes)

        def channel_in_place(n):
            def consumer():
                view = ch.receive_view
                for _ in range(warm):
                    with view() as v:
                        dest[:len(v)] = v
                t0 = _perf()
                for _ in range(n):
                    with view() as v:
                        dest[:len(v)] = v
                return _perf() - t0

            def producer():
                reserve = ch.reserve
                for _ in range(warm + n):
                    with reserve(size) as buf:
                        buf[:] = payload
            return forked(consumer, producer, cpus)
        s.add("sysvshm Channel reserve/receive_view", channel_in_place)

        def one_slot(n):
            # The hand-made pairing: one buffer, "empty" and "full" semaphores (as people build
            # with sysv_ipc); the length travels in the first 8 bytes.
            empty = sysvshm.Semaphore(None, sysvshm.IPC_CREX, initial_value=1)
            full = sysvshm.Semaphore(None, sysvshm.IPC_CREX)
            mem = sysvshm.SharedMemory(None, sysvshm.IPC_CREX, size=size + 8)
            try:
                def consumer():
                    buf = mem.buf
                    for i in range(warm + n):
                        if i == warm:
                            t0 = _perf()
                        full.acquire()
                        length = int.from_bytes(buf[:8], "little")
                        dest[:length] = buf[8:8 + length]
                        empty.release()
                    return _perf() - t0

                def producer():
                    buf = mem.buf
                    for _ in range(warm + n):
                        empty.acquire()
                        buf[:8] = size.to_bytes(8, "little")
                        buf[8:8 + size] = payload
                        full.release()
                return forked(consumer, producer, cpus)
            finally:
                empty.remove()
                full.remove()
                mem.remove()
                mem.detach()
        s.add("two semaphores + one segment (hand-made)", one_slot)

    program, why = _channel_c_program(stack)
    if program is None or not hasattr(sysvshm, "Channel"):
        s.add(C_CHANNEL, skip=why or "no Channel")
    else:
        c_channel = sysvshm.Channel(None, sysvshm.IPC_CREX, slots=8 if size >= MiB
                                    else CHANNEL_SLOTS, slot_size=size)
        stack.callback(c_channel.remove)

        def c_stream(n):
            # The programs' start-up (2 execs, attach) and the first `warm` messages are not
            # counted, as in the Python rows: the time of a run of `warm` messages is subtracted
            # from that of a run of warm + m, both measured here.
            m = _c_messages(n, size)
            key = str(c_channel.key)

            def run(count):
                return run_programs([
                    ([program, "consumer", key, str(count), "60"], cpus[0]),
                    ([program, "producer", key, str(count), "C", "60", str(size)], cpus[1])])
            return _without_start_up(lambda: run(warm), lambda: run(warm + m)) * n / m
        s.add(C_CHANNEL, c_stream)

    import multiprocessing

    def mp_queue(n):
        q = multiprocessing.get_context("fork").Queue(8)
        try:
            def consumer():
                for _ in range(warm):
                    q.get()
                t0 = _perf()
                for _ in range(n):
                    q.get()
                return _perf() - t0

            def producer():
                for _ in range(warm + n):
                    q.put(payload)
                q.close()
                q.join_thread()
            return forked(consumer, producer, cpus)
        finally:
            q.close()
            q.join_thread()
    s.add("multiprocessing.Queue put/get", mp_queue, ref=True)

    def mp_pipe(n):
        here, there = multiprocessing.Pipe(duplex=False)
        try:
            def consumer():
                for _ in range(warm):
                    here.recv_bytes()
                t0 = _perf()
                for _ in range(n):
                    here.recv_bytes()
                return _perf() - t0

            def producer():
                for _ in range(warm + n):
                    there.send_bytes(payload)
            return forked(consumer, producer, cpus)
        finally:
            here.close()
            there.close()
    s.add("multiprocessing.Pipe send_bytes/recv_bytes", mp_pipe)

    def mp_pipe_into(n):
        here, there = multiprocessing.Pipe(duplex=False)
        try:
            def consumer():
                recv_bytes_into = here.recv_bytes_into
                for _ in range(warm):
                    recv_bytes_into(dest)
                t0 = _perf()
                for _ in range(n):
                    recv_bytes_into(dest)
                return _perf() - t0

            def producer():
                for _ in range(warm + n):
                    there.send_bytes(payload)
            return forked(consumer, producer, cpus)
        finally:
            here.close()
            there.close()
    s.add(PIPE_INTO, mp_pipe_into)

    def os_pipe(n):
        r, w = os.pipe()
        try:
            def consumer():
                for i in range(warm + n):
                    if i == warm:
                        t0 = _perf()
                    _read_exactly(r, dest)
                return _perf() - t0

            def producer():
                for _ in range(warm + n):
                    _write_all(w, payload)
            return forked(consumer, producer, cpus)
        finally:
            os.close(r)
            os.close(w)
    s.add("os.pipe write/readinto (fixed-size messages)", os_pipe)

    fits, why = _queue_fits(size)
    if fits:
        mq = sysvshm.MessageQueue(None, sysvshm.IPC_CREX, max_message_size=size)
        stack.callback(mq.remove)

        def message_queue(n):
            def consumer():
                receive = mq.receive
                for _ in range(warm):
                    receive()
                t0 = _perf()
                for _ in range(n):
                    receive()
                return _perf() - t0

            def producer():
                for _ in range(warm + n):
                    mq.send(payload)
            return forked(consumer, producer, cpus)
        s.add("sysvshm MessageQueue send/receive", message_queue)
    else:
        s.add("sysvshm MessageQueue send/receive", skip=why)

    if hasattr(sysvshm, "Channel"):
        s.add(CHANNEL_FLOOR, lambda n: _channel_floor(size, n, cpus, warm))
        s.add(CHANNEL_FLOOR_2, lambda n: _channel_floor(size, n, cpus, warm, two_locks=True))
    return s


CHANNEL_FLOOR = "floor: the protocol's system calls, bare ctypes, no Python logic"
CHANNEL_FLOOR_2 = "floor of a two-lock design (not the protocol; 2 semop a side)"


def _read_exactly(fd, dest):
    """Fill `dest` from the pipe (a pipe returns at most what is there)."""
    view, got = memoryview(dest), 0
    readv = getattr(os, "readv", None)
    while got < len(dest):
        if readv is not None:
            done = readv(fd, [view[got:]])
        else:                     # PyPy 3.9 has no os.readv: read, then copy
            data = os.read(fd, len(dest) - got)
            done = len(data)
            view[got:got + done] = data
        if not done:
            raise EOFError("the pipe was closed")
        got += done


def _write_all(fd, data):
    view, done = memoryview(data), 0
    while done < len(view):
        done += os.write(fd, view[done:])


def _queue_fits(size):
    """(True, None) when a message of `size` bytes fits in a MessageQueue here."""
    try:
        with open("/proc/sys/kernel/msgmax") as f:
            msgmax = int(f.read())
    except (OSError, ValueError):
        msgmax = 8192
    if size > msgmax:
        return False, "a message of %d bytes is over msgmax (%d)" % (size, msgmax)
    return True, None


def _channel_floor(size, n, cpus, warm, pairs=1, two_locks=False):
    """What the channel's protocol costs without any Python logic: for each message, the system
    calls a send and a receive make (version 1: the wait for a unit and MUTEX, SETTLE's GETVAL
    and DONE decrement, the final semop; IPC_NOWAIT tries before sleeping, as sysvshm does) and
    the copy, through prebound ctypes calls with prebuilt arguments, on a private set and
    segment of the same geometry.  `pairs` producers and as many consumers.  Seconds.

    two_locks: the same for a design the channel does not have - producers and consumers each
    with their own mutex, and no SETTLE system calls (two semop calls a side): the bound of a
    possible version 2 of the protocol."""
    floor = _Floor()
    U, NW = sysvshm.SEM_UNDO, sysvshm.IPC_NOWAIT
    MUTEX, FREE, READY, DONE, MUTEX2 = 0, 1, 2, 3, 4
    slots = 8 if size >= MiB else CHANNEL_SLOTS
    with contextlib.ExitStack() as cleanup:     # each removal registered as soon as created
        sems = sysvshm.SemaphoreSet(sysvshm.IPC_PRIVATE, 5, sysvshm.IPC_CREX,
                                    initial_values=[1, slots, 0, 1, 1])
        cleanup.callback(sems.remove)
        mem = sysvshm.SharedMemory(sysvshm.IPC_PRIVATE, sysvshm.IPC_CREX, size=slots * size)
        cleanup.callback(mem.detach)
        cleanup.callback(mem.remove)
        semid = sems.id
        base = mem.address
        GETVAL = 12
        getval = ctypes.CDLL(None)["semctl"]
        memmove = ctypes.memmove
        payload = ctypes.create_string_buffer(size)
        dest = ctypes.create_string_buffer(size)
        done_down = floor.ops((DONE, -1, NW))[1]

        def side(unit, give, copy_in):
            mutex = MUTEX2 if two_locks and not copy_in else MUTEX
            lock_try = floor.ops((unit, -1, U | NW), (mutex, -1, U | NW))[1]
            lock = floor.ops((unit, -1, U), (mutex, -1, U))[1]
            if two_locks:
                final, nfinal = floor.ops((unit, 1, U), (unit, -1, 0), (give, 1, 0),
                                          (mutex, 1, U))[1], 4
            else:
                final, nfinal = floor.ops((unit, 1, U), (unit, -1, 0), (give, 1, 0),
                                          (DONE, 1, 0), (mutex, 1, U))[1], 5
            semop = floor.semop

            def run(start, stop):
                for i in range(start, stop):
                    for _ in range(50):
                        if semop(semid, lock_try, 2) == 0:
                            break
                    else:
                        semop(semid, lock, 2)
                    if not two_locks and getval(semid, DONE, GETVAL) == 1:
                        semop(semid, done_down, 1)
                    slot = base + (i % slots) * size
                    if copy_in:
                        memmove(slot, payload, size)
                    else:
                        memmove(dest, slot, size)
                    semop(semid, final, nfinal)
            return run
        per = (warm + n) // pairs
        producers = [side(FREE, READY, True) for _ in range(pairs)]
        consumers = [side(READY, FREE, False) for _ in range(pairs)]
        if pairs == 1:
            # As the Python rows: `warm` messages first, then the clock (the producer has started).
            def consumer():
                consumers[0](0, warm)
                t0 = _perf()
                consumers[0](warm, warm + n)
                return _perf() - t0
            return forked(consumer, lambda: producers[0](0, warm + n), cpus)
        # As the Python rows of several producers and consumers: from the start signal on.
        return forked_group([lambda run=run: run(0, per) for run in producers],
                            [lambda run=run: run(0, per) for run in consumers],
                            cpus) * n / (warm + n)


def forked_group(producers, consumers, cpus):
    """Run every producer and consumer callable in its own forked child (alternately pinned to
    the two CPUs), all started at once through a pipe; seconds from the start until the last
    one exits.  Each child has a watchdog and leaves through os._exit(); the parent waits in a
    blocking waitpid (no polling) under its own watchdog, and kills and reaps every child left
    on any failure."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pids = []
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for i, side in enumerate(list(producers) + list(consumers)):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
                    sched_setaffinity(0, {cpus[i % 2]})
                    os.write(ready_w, b"r")
                    os.read(r, 1)
                    side()
                    code = 0
                except BaseException:
                    pass
                finally:
                    os._exit(code)
            pids.append(pid)
        for _ in pids:
            os.read(ready_r, 1)
        signal.setitimer(signal.ITIMER_REAL, WATCHDOG + 10)
        t0 = _perf()
        os.write(w, b"g" * len(pids))
        statuses = []
        while pids:
            statuses.append(_exit_status(os.waitpid(pids[0], 0)[1]))
            pids.pop(0)
        elapsed = _perf() - t0
        signal.setitimer(signal.ITIMER_REAL, 0)
        if any(statuses):
            raise RuntimeError("a producer or consumer exited with status %s" % statuses)
        return elapsed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            with contextlib.suppress(ChildProcessError):    # reaped just before an interrupt
                os.waitpid(pid, 0)
        for fd in (r, w, ready_r, ready_w):
            os.close(fd)


def section_channel_many(stack, size):
    """Two producers and two consumers (four forked processes on the two CPUs) stream `size`-byte
    messages: sysvshm.Channel against the alternatives that allow several of each."""
    s = Section("channel2x%d" % size, "stream of %s messages, 2 producers -> 2 consumers"
                % _size_name(size), mode="speed", nbytes=size)
    if sched_setaffinity is None or len(sched_getaffinity(0)) < 2:
        s.add("sysvshm Channel send/receive_into", skip="needs two CPUs and sched_setaffinity")
        return s
    cpus = sorted(sched_getaffinity(0))[:2]
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    slots = 8 if size >= MiB else CHANNEL_SLOTS

    def halves(n):
        return max(1, n // 2)
    if hasattr(sysvshm, "Channel"):
        ch = sysvshm.Channel(None, sysvshm.IPC_CREX, slots=slots, slot_size=size)
        stack.callback(ch.remove)

        def channel(n):
            per = halves(n)

            def producer():
                send = ch.send
                for _ in range(per):
                    send(payload)

            def consumer():
                dest = bytearray(size)
                receive_into = ch.receive_into
                for _ in range(per):
                    receive_into(dest)
            return forked_group([producer] * 2, [consumer] * 2, cpus) / (2 * per) * n
        s.add("sysvshm Channel send/receive_into", channel)

        def in_place(n):
            per = halves(n)

            def producer():
                reserve = ch.reserve
                for _ in range(per):
                    with reserve(size) as buf:
                        buf[:] = payload

            def consumer():
                dest = bytearray(size)
                view = ch.receive_view
                for _ in range(per):
                    with view() as v:
                        dest[:len(v)] = v
            return forked_group([producer] * 2, [consumer] * 2, cpus) / (2 * per) * n
        s.add("sysvshm Channel reserve/receive_view", in_place)
        s.add(CHANNEL_FLOOR, lambda n: _channel_floor(size, halves(n) * 2, cpus, 0, pairs=2)
              / (2 * halves(n)) * n)

    program, why = _channel_c_program(stack)
    if program is None or not hasattr(sysvshm, "Channel"):
        s.add(C_CHANNEL_2, skip=why or "no Channel")
    else:
        c_channel = sysvshm.Channel(None, sysvshm.IPC_CREX, slots=slots, slot_size=size)
        stack.callback(c_channel.remove)

        def c_stream(n):
            # The Python rows count from the moment the forked children start (no fork, no
            # warm-up): the time of a run of the same 4 programs with 0 messages (exec, attach,
            # exit) is subtracted from that of the run with m messages, both measured here.
            per = halves(n)
            m = max(per, _c_messages(n, size) // 2)
            key = str(c_channel.key)

            def run(count):
                return run_programs(
                    [([program, "consumer", key, str(count), "60"], cpus[i]) for i in range(2)]
                    + [([program, "producer", key, str(count), "C%d" % i, "60", str(size)],
                        cpus[i]) for i in range(2)])
            return _without_start_up(lambda: run(0), lambda: run(m)) / (2 * m) * n
        s.add(C_CHANNEL_2, c_stream)

    import multiprocessing

    def mp_queue(n):
        per = halves(n)
        q = multiprocessing.get_context("fork").Queue(8)
        try:
            def producer():
                for _ in range(per):
                    q.put(payload)
                q.close()
                q.join_thread()

            def consumer():
                for _ in range(per):
                    q.get()
            return forked_group([producer] * 2, [consumer] * 2, cpus) / (2 * per) * n
        finally:
            q.close()
            q.join_thread()
    s.add("multiprocessing.Queue put/get", mp_queue, ref=True)
    s.add("multiprocessing.Pipe", skip="not for several writers or readers (no locking)")
    if size <= select_pipe_buf():
        def os_pipe(n):
            per = halves(n)
            r, w = os.pipe()
            try:
                def producer():
                    for _ in range(per):
                        os.write(w, payload)      # <= PIPE_BUF: one atomic write

                def consumer():
                    dest = bytearray(size)
                    for _ in range(per):
                        _read_exactly(r, dest)    # every message is whole in the pipe
                return forked_group([producer] * 2, [consumer] * 2, cpus) / (2 * per) * n
            finally:
                os.close(r)
                os.close(w)
        s.add("os.pipe (messages <= PIPE_BUF: atomic writes)", os_pipe)
    else:
        s.add("os.pipe", skip="messages over PIPE_BUF (%d) are not written atomically"
              % select_pipe_buf())
    fits, why = _queue_fits(size)
    if fits:
        mq = sysvshm.MessageQueue(None, sysvshm.IPC_CREX, max_message_size=size)
        stack.callback(mq.remove)

        def message_queue(n):
            per = halves(n)

            def producer():
                for _ in range(per):
                    mq.send(payload)

            def consumer():
                for _ in range(per):
                    mq.receive()
            return forked_group([producer] * 2, [consumer] * 2, cpus) / (2 * per) * n
        s.add("sysvshm MessageQueue send/receive", message_queue)
    else:
        s.add("sysvshm MessageQueue send/receive", skip=why)
    return s


def select_pipe_buf():
    return getattr(select, "PIPE_BUF", 4096)


def _size_name(size):
    return ("%d B" % size if size < 1024 else "%d KiB" % (size // 1024) if size < MiB
            else "%d MiB" % (size // MiB))


# --- Where real programs spend their time (issue 13): tries, opening by key, op(), queues -------
class _Floor(object):
    """The least ctypes can do for the same system calls: prebound libc functions called with
    prebuilt arguments, errno never read (every call here succeeds).  Undeclared functions on
    CPython (each declared argument costs a from_param call); declared ones on PyPy, whose JIT
    makes those the fast ones."""

    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        cpython = platform.python_implementation() == "CPython"
        c_int, c_void_p, c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        protos = {"semop": [c_int, c_void_p, c_size_t], "semget": [c_int, c_int, c_int],
                  "msgget": [c_int, c_int], "msgsnd": [c_int, c_void_p, c_size_t, c_int],
                  "msgrcv": [c_int, c_void_p, c_size_t, ctypes.c_long, c_int]}
        for name, argtypes in protos.items():
            func = libc[name]
            if not cpython:
                func.argtypes = argtypes
            func.restype = ctypes.c_ssize_t if name == "msgrcv" else c_int
            setattr(self, name, func)

        class sembuf(ctypes.Structure):
            _fields_ = [("num", ctypes.c_ushort), ("op", ctypes.c_short),
                        ("flg", ctypes.c_short)]
        self.sembuf = sembuf

    def queue_namespace(self, message):
        """The names of FLOOR_QUEUE_STMT: a prebuilt msgbuf (type 1) to copy the message into,
        another to receive into - the work any send and receive of a message does: copy it in,
        msgsnd, msgrcv, take the text out as bytes."""
        word = ctypes.sizeof(ctypes.c_long)
        out_buf = ctypes.create_string_buffer(word + len(message))
        ctypes.c_long.from_buffer(out_buf).value = 1
        in_buf = ctypes.create_string_buffer(word + 2048)
        return {"snd": self.msgsnd, "rcv": self.msgrcv, "o": ctypes.byref(out_buf),
                "i": ctypes.byref(in_buf), "m": message, "size": len(message),
                "ot": memoryview(out_buf).cast("B")[word:],
                "it": memoryview(in_buf).cast("B")[word:]}

    def ops(self, *triples):
        array = (self.sembuf * len(triples))(*[self.sembuf(*t) for t in triples])
        return array, ctypes.byref(array)


def _new_sem(stack, module, value=0):
    sem = module.Semaphore(None, module.IPC_CREX, initial_value=value)
    stack.callback(sem.remove)
    return sem


FLOOR_QUEUE = "ctypes floor: copy in, msgsnd, msgrcv, bytes out"
FLOOR_QUEUE_STMT = ("ot[:size] = m; snd(%s, o, size, 0); n = rcv(%s, i, 2048, 0, 0); "
                    "it[:n].tobytes()")


def sections_hot(stack):
    """Try-lock, open by key, open+try+release, op() on two members: sysvshm, sysv_ipc and the
    ctypes floor of the same system calls, side by side."""
    floor = _Floor()
    NOWAIT = sysvshm.IPC_NOWAIT
    tries = Section("trylock", "try-lock: acquire(0) + release(), value 1 (one process)")
    opens = Section("open", "open an existing object by key")
    opentry = Section("opentry", "open a semaphore by key + acquire(0) + release()")
    op2 = Section("op2", "op() on two members: take both, give both back (two semop calls)")

    sem = _new_sem(stack, sysvshm, 1)
    tries.add("sysvshm Semaphore", compiled_timer("s.acquire(0); s.release()", {"s": sem}))
    blocking = sysvshm.Semaphore(sem.key)
    blocking.block = False
    tries.add("sysvshm Semaphore, block=False", compiled_timer("s.acquire(); s.release()",
                                                               {"s": blocking}))
    tries.add("sysvshm acquire(timeout=5) whose first try succeeds",
              compiled_timer("s.acquire(5.0); s.release()", {"s": sem}))
    p, p_ref = floor.ops((0, -1, NOWAIT))
    v, v_ref = floor.ops((0, 1, 0))
    tries.add("ctypes floor: semop(IPC_NOWAIT) + semop", compiled_timer(
        "semop(i, p, 1); semop(i, v, 1)", {"semop": floor.semop, "i": sem.id, "p": p_ref,
                                           "v": v_ref}))
    semset = sysvshm.SemaphoreSet(None, 2, sysvshm.IPC_CREX, initial_values=[1, 1])
    stack.callback(semset.remove)
    mq = sysvshm.MessageQueue(None, sysvshm.IPC_CREX)
    stack.callback(mq.remove)
    opens.add("sysvshm Semaphore(key)", compiled_timer("S(k)", {"S": sysvshm.Semaphore,
                                                                "k": sem.key}))
    opens.add("sysvshm SemaphoreSet(key)", compiled_timer("S(k)", {"S": sysvshm.SemaphoreSet,
                                                                   "k": semset.key}))
    opens.add("sysvshm MessageQueue(key)", compiled_timer("Q(k)", {"Q": sysvshm.MessageQueue,
                                                                   "k": mq.key}))
    opens.add("ctypes floor: semget(key, 1, 0)", compiled_timer(
        "semget(k, 1, 0)", {"semget": floor.semget, "k": sem.key}))
    opens.add("ctypes floor: msgget(key, 0)", compiled_timer(
        "msgget(k, 0)", {"msgget": floor.msgget, "k": mq.key}))
    opentry.add("sysvshm", compiled_timer("s = S(k); s.acquire(0); s.release()",
                                          {"S": sysvshm.Semaphore, "k": sem.key}))
    opentry.add("ctypes floor: semget + 2 semop", compiled_timer(
        "i = semget(k, 1, 0); semop(i, p, 1); semop(i, v, 1)",
        {"semget": floor.semget, "semop": floor.semop, "k": sem.key, "p": p_ref, "v": v_ref}))
    take, give = [(0, -1), (1, -1)], [(0, 1), (1, 1)]
    op2.add("sysvshm op(take); op(give)", compiled_timer(
        "s.op(take); s.op(give)", {"s": semset, "take": take, "give": give}))
    op2.add("sysvshm two members: acquire x2, release x2 (not atomic)", compiled_timer(
        "a.acquire(); b.acquire(); a.release(); b.release()", {"a": semset[0], "b": semset[1]}))
    tk, tk_ref = floor.ops((0, -1, 0), (1, -1, 0))
    gv, gv_ref = floor.ops((0, 1, 0), (1, 1, 0))
    op2.add("ctypes floor: 2 semop of 2 operations", compiled_timer(
        "semop(i, t, 2); semop(i, g, 2)", {"semop": floor.semop, "i": semset.id, "t": tk_ref,
                                           "g": gv_ref}))
    if sysv_ipc is not None:
        other = _new_sem(stack, sysv_ipc, 1)
        tries.add("sysv_ipc Semaphore", compiled_timer("s.acquire(0); s.release()",
                                                       {"s": other}), ref=True)
        other_q = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX)
        stack.callback(other_q.remove)
        opens.add("sysv_ipc Semaphore(key)", compiled_timer(
            "S(k)", {"S": sysv_ipc.Semaphore, "k": other.key}), ref=True)
        opens.add("sysv_ipc MessageQueue(key)", compiled_timer(
            "Q(k)", {"Q": sysv_ipc.MessageQueue, "k": other_q.key}))
        opentry.add("sysv_ipc", compiled_timer("s = S(k); s.acquire(0); s.release()",
                                               {"S": sysv_ipc.Semaphore, "k": other.key}),
                    ref=True)
        a, b = _new_sem(stack, sysv_ipc, 1), _new_sem(stack, sysv_ipc, 1)
        op2.add("sysv_ipc two Semaphores: acquire x2, release x2 (no sets in sysv_ipc)",
                compiled_timer("a.acquire(); b.acquire(); a.release(); b.release()",
                               {"a": a, "b": b}), ref=True)
    else:
        for s in (tries, opens, opentry, op2):
            s.add("sysv_ipc", skip="sysv_ipc not installed", ref=True)
    return [tries, opens, opentry, op2]


def section_queue_pingpong(stack, c_lib, c_skip):
    """A 64-byte message there and back between two processes (two queues), on two CPUs."""
    s = Section("queue2", "message queue round trip, 64 bytes, two processes on two CPUs")
    if sched_setaffinity is None or len(sched_getaffinity(0)) < 2:
        s.add("sysvshm MessageQueue", skip="needs two CPUs and sched_setaffinity")
        return s
    cpus = sorted(sched_getaffinity(0))[:2]
    warm = PINGPONG_WARMUP
    message = b"m" * 64

    def queue_row(label, module, ref=False):
        there = module.MessageQueue(None, module.IPC_CREX)
        stack.callback(there.remove)
        back = module.MessageQueue(None, module.IPC_CREX)
        stack.callback(back.remove)
        parent_loop = compiled_timer("a.send(m); b.receive()", {"a": there, "b": back,
                                                                "m": message},
                                     setup="for _ in range(%d): a.send(m); b.receive()" % warm)

        def child_loop(n):
            for _ in range(warm + n):
                back.send(there.receive()[0])
        s.add(label, lambda n: forked(lambda: parent_loop(n), lambda: child_loop(n), cpus),
              ref=ref)
    queue_row("sysvshm MessageQueue", sysvshm)
    if sysv_ipc is not None:
        queue_row("sysv_ipc MessageQueue", sysv_ipc, ref=True)
    else:
        s.add("sysv_ipc MessageQueue", skip="sysv_ipc not installed", ref=True)
    there = sysvshm.MessageQueue(None, sysvshm.IPC_CREX)
    stack.callback(there.remove)
    back = sysvshm.MessageQueue(None, sysvshm.IPC_CREX)
    stack.callback(back.remove)
    ns = dict(_Floor().queue_namespace(message), a=there.id, b=back.id)
    parent_loop = compiled_timer(FLOOR_QUEUE_STMT % ("a", "b"), ns,
                                 setup="for _ in range(%d): %s" % (warm, FLOOR_QUEUE_STMT
                                                                    % ("a", "b")))
    child_ns = dict(_Floor().queue_namespace(message), a=there.id, b=back.id)
    child_loop = compiled_timer(FLOOR_QUEUE_STMT % ("b", "a"), child_ns)

    def floor_child(n):
        # The same statement with the queues swapped sends before it receives: one receive
        # first and one send last make it receive-then-send, warm + n times.
        child_ns["rcv"](there.id, child_ns["i"], 2048, 0, 0)
        child_loop(warm + n - 1)
        child_ns["snd"](back.id, child_ns["o"], len(message), 0)
    s.add(FLOOR_QUEUE, lambda n: forked(lambda: parent_loop(n), lambda: floor_child(n), cpus))
    return s


def section_import():
    """Import time measured inside fresh interpreters (python -I -S: no site, so that .pth files
    of this machine cannot preload modules such as typing or re for one row and not the other)."""
    s = Section("import", "import time in a fresh interpreter (python -I -S)", "delta")

    def timer_for(statement, before=""):
        code = ("import sys, time; sys.path.insert(0, %r); %s; t0 = time.perf_counter(); %s; "
                "sys.stdout.write(repr(time.perf_counter() - t0))" % (ROOT, before or "pass",
                                                                     statement))
        argv = [sys.executable, "-I", "-S", "-c", code]

        def timer(n):
            total = 0.0
            for _ in range(n):
                out = subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout
                total += float(out)
            return total
        return timer
    s.add("import ctypes", timer_for("import ctypes"), ref=True)
    s.add("import sysvshm", timer_for("import sysvshm"))
    s.add("import sysvshm (ctypes imported before)", timer_for("import sysvshm", "import ctypes"))
    return s


def _cache_from_source(path):
    try:
        import importlib.util
        return importlib.util.cache_from_source(path)
    except (ImportError, NotImplementedError):
        return ""


# --- Report --------------------------------------------------------------------------------------
def describe_machine():
    model, virtual = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
        virtual = " (virtual machine)" if " hypervisor" in cpuinfo else ""
    except OSError:
        pass
    impl = "%s %s" % (platform.python_implementation(), platform.python_version())
    libc = " ".join(platform.libc_ver()).strip()
    extras = []
    extras.append("sysv_ipc %s" % sysv_ipc.VERSION if sysv_ipc is not None else "no sysv_ipc")
    numpy, _ = _numpy()
    extras.append("numpy %s" % numpy.__version__ if numpy is not None else "no numpy")
    return ("%s; %s, %d CPUs%s; Linux %s %s, %s; sysvshm %s; %s"
            % (impl, model, os.cpu_count() or 0, virtual, platform.release(), platform.machine(),
               libc or "libc ?", sysvshm.__version__, ", ".join(extras)))


def _fmt_time(seconds):
    if seconds >= 1e-3:
        return "%.2f ms" % (seconds * 1e3)
    if seconds >= 1e-6:
        return "%.2f us" % (seconds * 1e6)
    return "%.0f ns" % (seconds * 1e9)


def render(sections, header):
    width = 62
    lines = [header, ""]
    for s in sections:
        reference = s.reference()
        if s.mode == "speed":
            how = "ratio = throughput / reference's (higher is better)"
        elif s.mode == "delta":
            how = "difference from the reference row"
        else:
            how = "ratio = time / reference's (lower is better)"
        lines.append("%s  [%d rounds; %s]" % (s.title, s.rounds, how))
        for row in s.rows:
            label = "  " + row.label + ("  (reference)" if row is reference else "")
            if row.samples:
                med = row.median
                spread = (max(row.samples) - min(row.samples)) / 2 / med * 100
                extra = ""
                if s.nbytes:
                    extra = "  %6.2f GB/s" % (s.nbytes / med / 1e9)
                ratio = s.ratio(row, reference)
                if s.mode == "delta":
                    shown = "%+8.2f ms" % ratio
                else:
                    shown = "%8.2fx" % ratio
                lines.append("%-*s %10s  +-%3.0f%%  %s%s" % (width, label, _fmt_time(med), spread,
                                                           shown, extra))
            else:
                lines.append("%-*s %s" % (width, label, "error: " + row.error if row.error
                                          else "skipped: " + (row.skip or "?")))
        lines.append("")
    return "\n".join(lines)


TARGETS = [
    # (section key, row label, comparison, limit, description)
    ("pair", "sysvshm Semaphore", "<=", 2.0, "uncontended pair <= 2.0x sysv_ipc"),
    ("pair", "sysvshm SemaphoreSet member", "<=", 2.0, "uncontended pair (set member) <= 2.0x"),
    ("pingpong", "sysvshm Semaphore", "<=", 1.15, "ping-pong across CPUs <= 1.15x sysv_ipc"),
    ("pingpong1", "sysvshm Semaphore", "<=", 1.5, "ping-pong on one CPU <= 1.5x sysv_ipc"),
    ("read64", "sysvshm read(64, o)", "<=", 0.5, "64-byte read() <= 0.5x sysv_ipc"),
    ("read64", "sysvshm buf[o:o+64].tobytes()", "<=", 0.5, "64-byte buf slice read <= 0.5x"),
    ("write64", "sysvshm write(data, o)", "<=", 0.5, "64-byte write() <= 0.5x sysv_ipc"),
    ("write64", "sysvshm buf[o:o+64] = data", "<=", 0.5, "64-byte buf slice write <= 0.5x"),
    ("copyin", "sysvshm buf[:] = src", ">=", 0.95, "64 MiB in (buf[:] =) >= 0.95x C memcpy"),
    ("copyin", "sysvshm write(src)", ">=", 0.95, "64 MiB in (write) >= 0.95x C memcpy"),
    ("copyout", "sysvshm read_into(dest)", ">=", 0.95, "64 MiB out (read_into) >= 0.95x memcpy"),
    ("create", "sysvshm SharedMemory(IPC_PRIVATE, IPC_CREAT)", "<=", 1.6,
     "create+attach+detach+remove <= 1.6x sysv_ipc"),
    ("createfault", "sysvshm prefault() (MADV_POPULATE_WRITE)", "<=", 1.6,
     "... every page touched (prefault) <= 1.6x"),
    ("import", "import sysvshm", "<=", 1.0, "import <= import ctypes + 1 ms"),
    # Where real programs spend their time (issue 13).
    ("trylock", "sysvshm Semaphore", "<=", 2.0, "try-lock acquire(0)+release <= 2.0x"),
    ("trylock", "sysvshm Semaphore, block=False", "<=", 2.0, "try-lock with block=False <= 2.0x"),
    ("open", "sysvshm Semaphore(key)", "<=", 3.0, "open an existing semaphore <= 3x"),
    ("opentry", "sysvshm", "<=", 2.5, "open + try + release <= 2.5x sysv_ipc"),
    ("queue", "sysvshm MessageQueue", "<=", 1.5, "queue round trip, one process <= 1.5x"),
    ("queue2", "sysvshm MessageQueue", "<=", 1.5, "queue round trip, two processes <= 1.5x"),
    ("channel1048576", "sysvshm Channel send/receive_into", ">=", 5.0,
     "Channel 1 MiB >= 5x multiprocessing.Queue"),
    ("channel1048576", "sysvshm Channel reserve/receive_view", ">=", 5.0,
     "Channel 1 MiB in place >= 5x multiprocessing.Queue"),
    ("channel1048576", "sysvshm Channel send/receive_into", ">=", 2.0,
     "Channel 1 MiB >= 2x multiprocessing.Pipe", PIPE_INTO),
    ("channel1048576", "sysvshm Channel send/receive_into", ">=", 0.8,
     "Channel 1 MiB >= 0.8x the C implementation",
     C_CHANNEL),
    ("channel64", "sysvshm Channel send/receive_into", ">=", 3.0,
     "Channel 64 B >= 3x multiprocessing.Queue"),
]

# The ctypes floor of a row: the same system calls through a minimal ctypes call, measured in
# the same run (target: within 1.25x of it).
FLOOR_LIMIT = 1.25
TARGET_FLOOR = {("pair", "sysvshm Semaphore"): "ctypes floor: semop + semop",
                ("pair", "sysvshm SemaphoreSet member"): "ctypes floor: semop + semop",
                ("trylock", "sysvshm Semaphore"): "ctypes floor: semop(IPC_NOWAIT) + semop",
                ("trylock", "sysvshm Semaphore, block=False"):
                    "ctypes floor: semop(IPC_NOWAIT) + semop",
                ("open", "sysvshm Semaphore(key)"): "ctypes floor: semget(key, 1, 0)",
                ("opentry", "sysvshm"): "ctypes floor: semget + 2 semop",
                ("queue", "sysvshm MessageQueue"): FLOOR_QUEUE,
                ("create", "sysvshm SharedMemory(IPC_PRIVATE, IPC_CREAT)"): FLOOR_CREATE,
                ("queue2", "sysvshm MessageQueue"): FLOOR_QUEUE,
                ("channel64", "sysvshm Channel send/receive_into"): CHANNEL_FLOOR,
                ("channel1048576", "sysvshm Channel send/receive_into"): CHANNEL_FLOOR}

# The reference each target is measured against: (section key, row label).
TARGET_REFERENCE = {"pair": "sysv_ipc Semaphore", "pingpong": "sysv_ipc Semaphore",
                    "pingpong1": "sysv_ipc Semaphore", "read64": "sysv_ipc read(64, o)",
                    "write64": "sysv_ipc write(data, o)", "copyin": "C memcpy",
                    "copyout": "C memcpy",
                    "create": "sysv_ipc SharedMemory(IPC_PRIVATE, IPC_CREAT)",
                    "createfault": "sysv_ipc IPC_CREX, init_character fill",
                    "import": "import ctypes", "trylock": "sysv_ipc Semaphore",
                    "open": "sysv_ipc Semaphore(key)", "opentry": "sysv_ipc",
                    "queue": "sysv_ipc MessageQueue", "queue2": "sysv_ipc MessageQueue",
                    "channel1048576": "multiprocessing.Queue put/get",
                    "channel64": "multiprocessing.Queue put/get"}


def render_targets(sections):
    by_key = dict((s.key, s) for s in sections)
    lines = ["Targets (set for CPython 3.11; this run: %s %s)"
             % (platform.python_implementation(), platform.python_version())]
    for target in TARGETS:
        key, label, op, limit, text = target[:5]
        s = by_key.get(key)
        row = s.find(label) if s else None
        reference = s.find(target[5] if len(target) > 5 else TARGET_REFERENCE[key]) if s else None
        if row is None or reference is None:
            lines.append("  %-48s %10s  not measured" % (text, ""))
            continue
        value = s.ratio(row, reference)
        met = value <= limit if op == "<=" else value >= limit
        shown = "%+.2f ms" % value if s.mode == "delta" else "%.2fx" % value
        floor_label = TARGET_FLOOR.get((key, label))
        floor = s.find(floor_label) if floor_label else None
        extra = ""
        if floor is not None:
            to_floor = row.median / floor.median     # time / the floor's time
            extra = "   %.2fx its ctypes floor (<= %.2fx: %s)" % (
                to_floor, FLOOR_LIMIT, "met" if to_floor <= FLOOR_LIMIT else "NOT MET")
        lines.append("  %-48s %10s  %-7s%s" % (text, shown, "met" if met else "NOT MET", extra))
    return "\n".join(lines)


# --- Main ----------------------------------------------------------------------------------------
SECTION_KEYS = ("pair", "pingpong", "small", "copy", "create", "queue", "hot", "queue2",
                "channel", "import")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (seconds), for tests")
    parser.add_argument("--rounds", type=int, help="interleaved rounds for every section "
                        "(default: 7 to 40 depending on the section, 3 with --quick)")
    parser.add_argument("--only", help="comma-separated sections: %s" % ",".join(SECTION_KEYS))
    args = parser.parse_args(argv)
    quick = args.quick
    only = set(args.only.split(",")) if args.only else set(SECTION_KEYS)
    unknown = only - set(SECTION_KEYS)
    if unknown:
        parser.error("unknown sections: %s" % ", ".join(sorted(unknown)))
    scale = 0.05 if quick else 1.0
    big = 8 * MiB if quick else 64 * MiB

    previous_handler = signal.signal(signal.SIGALRM, _alarm)
    c_lib, c_skip = load_c_floor()
    sections = []
    started = _perf()
    try:
        with contextlib.ExitStack() as stack:
            def run(section, count, rounds):
                """Measure `section`: `count` operations per row and round (scaled down with
                --quick), `rounds` rounds (3 with --quick, or --rounds)."""
                rounds = args.rounds or (min(rounds, 3) if quick else rounds)
                section.rounds = rounds
                sections.append(section)
                measure(section, max(1, int(count * scale)), rounds)
                print("  measured %-12s %5.1f s" % (section.key, _perf() - started),
                      file=sys.stderr)
            if "pair" in only:
                run(section_pair(stack, c_lib, c_skip), 50000, 9)
            if "pingpong" in only:
                run(section_pingpong(stack, c_lib, c_skip, across=True), 2000, 21)
                run(section_pingpong(stack, c_lib, c_skip, across=False), 10000, 15)
            if "small" in only:
                for s in sections_small(stack):
                    run(s, 200000, 9)
            if "copy" in only:
                for s in sections_copy(stack, c_lib, c_skip, big):
                    run(s, 1 / scale, 25)
            if "create" in only:
                untouched, faulted = sections_create(stack, c_lib, c_skip, big)
                run(untouched, 1000, 11)
                run(faulted, 1 / scale, 15)
            if "queue" in only:
                run(section_queue(stack, c_lib, c_skip), 20000, 9)
            if "hot" in only:
                for s in sections_hot(stack):
                    run(s, 50000, 9)
            if "queue2" in only:
                run(section_queue_pingpong(stack, c_lib, c_skip), 5000, 15)
            if "channel" in only:
                for size, count in CHANNEL_SIZES:
                    run(section_channel(stack, size), count, 7)
                for size, count in CHANNEL_SIZES:
                    run(section_channel_many(stack, size), count, 5)
            if "import" in only:
                section = section_import()
                run(section, 1 / scale if quick else 1, 8 if quick else 40)
                if not os.path.exists(_cache_from_source(os.path.join(ROOT, "sysvshm.py"))):
                    section.title += " - no bytecode cache could be written: includes compiling"
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
    header = ("sysvshm benchmark%s: %s\nInterleaved rounds, medians; total %.0f s"
              % (" (--quick)" if quick else "", describe_machine(), _perf() - started))
    print(render(sections, header))
    print(render_targets(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
