# SPDX-License-Identifier: MIT
"""Struct layouts and values across architectures (run: python3 -m unittest -v test_layouts).

LayoutProbeTest compiles a small C program for each target (x86_64 glibc and musl, i386, armhf,
arm64, s390x) with that target's compiler, runs it (natively, or under qemu-user), and compares
what it prints with ``sysvshm._LAYOUTS``: struct sizes, the offset, width and signedness of every
declared field, and a real IPC_STAT made through the target's libc, decoded with the declared
layout in the target's byte order and compared with what the kernel must have said (our pid, the
size asked for, the mode set, one attachment, ...).  A target whose compiler or emulator is
missing is skipped, not passed.

AbiRoundTripTest checks, through the public API of the interpreter that runs it, that values set
by every path read back exactly; `.ci/cross-arch` runs it on i386, armhf, arm64 and s390x.

Not tested here: the time fields after 2038 on 32-bit ABIs (the high words are checked to be
where they are, not to carry a value), musl on anything but x86_64, x32, riscv64, loongarch64.
"""

import ctypes
import errno
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import sysvshm

TIME_SCALE = float(os.environ.get("SYSVSHM_TIME_SCALE") or 1)
# qemu-user 7.2 writes msg_lspid/msg_lrpid as 64-bit longs on 64-bit guests (fixed upstream in
# 2025): under it, those two fields are wrong whatever the layout says.
QEMU_MSG_PIDS_WRONG = bool(os.environ.get("SYSVSHM_EMULATOR")) and ctypes.sizeof(
    ctypes.c_void_p) == 8

_PROBE_C = r"""
#define _GNU_SOURCE
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
#else
# define PERM_KEY __ipc_perm_key
# define MSG_CBYTES msg_cbytes
# define TIME32 0
#endif
#define SIGNED(x) ((__typeof__(x))-1 < (__typeof__(x))0)
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

union semun { int val; struct semid_ds *buf; unsigned short *array; };

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
            proc = subprocess.run(command + ["-std=gnu99", "-static", "-O1", "-DSHM_BYTES=%d"
                                             % _SHM_BYTES, "-o", out, os.path.join(self.tmp,
                                                                                   "probe.c")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True, timeout=120 * TIME_SCALE)
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
                                      universal_newlines=True, timeout=60 * TIME_SCALE)
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
        self.assertEqual((sem["nsems"], msg["qnum"], msg["cbytes"], msg["rtime"]), (3, 1, 17, 0),
                         target + ": sem/msg")
        if emulated and probe.bits == 64:
            # qemu-user (7.2; fixed upstream in 2025) writes msg_lspid/msg_lrpid as 64-bit
            # longs: the pid lands as one 8-byte value at lspid's offset.  Check exactly that.
            order = "<" if probe.byteorder == "little" else ">"
            self.assertEqual(struct.unpack_from(order + "Q", probe.raw["msg"],
                                                layout["msg"][1]["lspid"][0])[0], probe.pid,
                             target + ": qemu's msg_lspid")
        else:
            self.assertEqual((msg["lspid"], msg["lrpid"]), (probe.pid, 0), target + ": msg pids")
        self.assertGreater(msg["qbytes"], 17, target)
        for name, value in (("shm.atime", shm["atime"]), ("shm.ctime", shm["ctime"]),
                            ("sem.otime", sem["otime"]), ("sem.ctime", sem["ctime"]),
                            ("msg.stime", msg["stime"]), ("msg.ctime", msg["ctime"])):
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
