# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The sysvshm authors
"""Tests of sysvshm's command line (python3 -m sysvshm ls|info|rm|mk|limits|summary|dump).

Every command is compared with the util-linux tool it mirrors (ipcs, ipcrm, ipcmk, lsipc, xxd;
each comparison is skipped where that tool is not installed):
- in the shared IPC namespace, only on the objects a test created (other processes' objects
  come and go concurrently), field by field and line by line, from both sources (/proc/sysvipc
  and the SHM_INFO/SHM_STAT... fallback);
- as root, whole outputs byte for byte inside a private IPC namespace (unshare(CLONE_NEWIPC) in
  a forked child), where nothing but the test's objects exists - and `rm --all` can be tried.
Every object is removed by a cleanup registered on the line after its creation; a module
teardown checks that none of the ids this run created still exists.

Not tested: `demo` (test_sysvshm.py runs it); the IPC_INFO/*_STAT fallbacks on a kernel without
/proc/sysvipc or *_STAT_ANY (forced here by pointing the paths elsewhere and by a bogus first
command, which the kernel refuses with EINVAL as an old kernel refuses *_STAT_ANY).
"""

import contextlib
import ctypes
import errno
import io
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import unittest
from unittest import mock

import sysvshm

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = sysvshm.PAGE_SIZE
ROOT = os.geteuid() == 0
NOBODY = 65534
CLONE_NEWIPC = 0x08000000
MSG_STAT_ANY = 13

_libc = ctypes.CDLL(None, use_errno=True)
_libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

CREATED = []   # (kind, id) of every object this run created, for the leak check


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


def tearDownModule():
    left = [(kind, ident) for kind, ident in CREATED if exists(kind, ident)]
    if left:
        raise AssertionError("objects created by this run still exist: %r" % left)


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
SOURCES = (("proc", {}), ("fallback", FALLBACK),
           # *_STAT_ANY refused (as by Linux < 4.17): the loop must go on with *_STAT.
           ("fallback-stat", dict(FALLBACK, _CLI_STAT={"shm": (999, 13), "sem": (999, 18),
                                                       "msg": (999, 11)})))


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


def random_key(high=False):
    return random.randint(0x80000000, 0xFFFFFFFF) if high else random.randint(1, 0x7FFFFFFF)


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
        CREATED.append(("shm", mem.id))
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
        CREATED.append(("sem", sems.id))
        return sems

    def make_msg(self, mode=0o600, key=None):
        while True:
            ident = _libc.msgget(random_key() if key is None else key, sysvshm.IPC_CREX | mode)
            if ident >= 0 or ctypes.get_errno() != errno.EEXIST or key is not None:
                break
        self.assertGreaterEqual(ident, 0, os.strerror(ctypes.get_errno()))
        self.addCleanup(self.drop, "msg", ident)
        CREATED.append(("msg", ident))
        return ident

    def adopt(self, kind, ident):
        """Register the cleanup of an object a command made."""
        self.addCleanup(self.drop, kind, ident)
        CREATED.append((kind, ident))

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
                    self.assertEqual([l for l in out.splitlines() if not l.startswith("0x")
                                      and not l[:1].isdigit()],
                                     [l for l in theirs[1].splitlines() if not l.startswith("0x")
                                      and not l[:1].isdigit()])
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
                            self.assertEqual(None if ours[ident][field] is None
                                             else str(ours[ident][field]), value,
                                             "%s id %d: %s" % (kind, ident, field))

    def test_sources_agree(self):
        for kind in ("shm", "sem", "msg"):
            proc = dict((r["id"], r) for r in sysvshm._cli_proc_records(kind))
            for name, patches in SOURCES[1:]:
                with mock.patch.object(sysvshm, "_CLI_STAT", patches.get("_CLI_STAT",
                                                                         sysvshm._CLI_STAT)):
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
    for source, patches in SOURCES:
        for ours, theirs in pairs:
            results.append([source, ours[0], " ".join(map(str, theirs)),
                            list(cli(*ours, **patches)), list(run(theirs))])
    mine = json.loads(cli("limits", "--json")[1])["ipclimits"]
    used = dict((r["resource"], r["used"]) for r in mine)
    # ipcs -u's "allocated semaphores" is the kernel's count (SEM_INFO semaem).
    semaem = re.search(r"allocated semaphores = (\d+)", run(["ipcs", "-u", "-s"])[1]).group(1)
    results.append(["proc", "limits --json: SEMMNS used", "ipcs -u -s", [str(used["SEMMNS"])],
                    [semaem]])
    if have("lsipc"):
        theirs = json.loads(run(["lsipc", "-g", "--json", "-b"])[1])["ipclimits"]
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
                ours = in_child(lambda: list(cli("rm", *argv)), user=NOBODY)
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
        status, out, err = cli("rm", "--all")             # a kind is required
        self.assertEqual(status, 1)
        self.assertIn("expected one argument", err)
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
                self.assertEqual(sysvshm._cli_limits(kind), fallback)

    @needs("ipcs")
    def test_limits_match_ipcs(self):
        for options in ([], ["-b"], ["-m"], ["-s", "-q"]):
            for source, patches in SOURCES[:2]:
                with self.subTest(options=options, source=source):
                    self.assertEqual(cli("limits", *options, **patches),
                                     run(["ipcs", "-l"] + options))

    @needs("lsipc")
    def test_limits_json_matches_lsipc(self):
        mine = json.loads(cli("limits", "--json")[1])["ipclimits"]
        theirs = json.loads(run(["lsipc", "-g", "--json", "-b"])[1])["ipclimits"]
        # "used" moves with other processes' objects here; compared in a private namespace.
        self.assertEqual([(r["resource"], r["description"], str(r["limit"])) for r in mine],
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
                     ["ls", "--bogus"], ["ls", "-t", "-p"], ["bogus"], ["rm", "--all"]):
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


if __name__ == "__main__":
    unittest.main()
