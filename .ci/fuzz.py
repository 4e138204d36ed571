#!/usr/bin/env python3
# Hostile-input fuzzer for sysvshm (run by .ci/run, not by the unit tests).
# SPDX-License-Identifier: MIT
"""Drive every public function, method and property of sysvshm with hostile values.

    python3 .ci/fuzz.py [--seed N] [--limit N] [--deadline SECONDS] [-v]

Values: wrong types, boundary integers, int/bytes subclasses, objects whose __index__ / __len__ /
__buffer__ / __iter__ run code (detach, remove, attach again) or raise, ctypes instances.  Besides
single calls: a second thread and a signal handler (setitimer) calling the same object while the
main thread calls it, and detach/attach/view interleavings.

Each case runs in a forked child with a deadline, in a private IPC namespace (the script re-runs
itself under `unshare --ipc` when it can).  A case fails on: death by a signal, a hang past the
deadline, an exception outside the documented kinds (TypeError, ValueError, OverflowError,
IndexError, AttributeError, BufferError, NotImplementedError, KeyError, sysvshm.Error and the
fuzzer's own exceptions raised from hostile objects), and any IPC object left behind that the case
did not knowingly create.  The last line is "N passed, N failed"."""

import argparse
import ctypes
import mmap
import os
import random
import signal
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
import sysvshm  # noqa: E402
from sysvshm import IPC_CREX  # noqa: E402


class Boom(Exception):
    """Raised by hostile objects: it may propagate out of any call."""


class IntSub(int):
    pass


class BytesSub(bytes):
    pass


class Index(object):
    """An integer whose __index__ first runs `action` (which may detach or remove the object
    under test, or raise)."""

    def __init__(self, value, action=None):
        self.value, self.action = value, action

    def __index__(self):
        if self.action is not None:
            self.action()
        return self.value

    __int__ = __index__

    def __repr__(self):
        return "Index(%r, %s)" % (self.value, getattr(self.action, "__name__", None))


class Length(object):
    """A sequence whose __len__ and __iter__ run an action."""

    def __init__(self, items, action):
        self.items, self.action = items, action

    def __len__(self):
        self.action()
        return len(self.items)

    def __iter__(self):
        self.action()
        return iter(self.items)

    def __getitem__(self, i):
        self.action()
        return self.items[i]


class Buffer(object):
    """A PEP 688 buffer (3.12+) whose __buffer__ runs an action first."""

    def __init__(self, data, action):
        self.data, self.action = bytearray(data), action

    def __buffer__(self, flags):
        self.action()
        return memoryview(self.data)


class Wrapped(object):
    """Placeholder for an integer that ctypes would wrap onto a bystander's id: resolved in the
    child, once the bystanders exist."""

    def __init__(self, kind, offset):
        self.kind, self.offset = kind, offset

    def __repr__(self):
        return "%s_id%+#x" % (self.kind, self.offset)


BYSTANDERS = {}     # kind -> id of an object no case may touch (set in the child)


def boom():
    raise Boom("hostile object")


BOUNDARY = [0, 1, -1, 2, 7, 255, 256, 4095, 4096, 8192, 32767, 32768, 65535, 65536,
            2 ** 31 - 1, 2 ** 31, -2 ** 31, -2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1,
            2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1, 2 ** 64 - 1, 2 ** 64, 2 ** 64 + 1,
            10 ** 30, -10 ** 30]
OTHER = [None, True, False, 0.0, 0.5, -0.5, 1e300, float("nan"), float("inf"), float("-inf"),
         "", "5", "A", "\udcff", b"", b"x", b"\x00" * 9, bytearray(b"ab"), memoryview(b"abc"),
         BytesSub(b"zz"), IntSub(3), IntSub(-1), IntSub(2 ** 64), object(), [], [1, 2], (1, 1, 0),
         [(0, 1, 0)], [(0, -1, 2 ** 40)], {}, ctypes.c_int(3), ctypes.c_char * 4, ctypes.c_char_p,
         int, type("S", (ctypes.Structure,), {"_fields_": [("p", ctypes.c_void_p)]})]


def hostile(target):
    """Values that act on `target` (the object under test) while being converted."""
    actions = []
    for name in ("detach", "remove", "attach"):
        method = getattr(target, name, None)
        if method is not None:
            def act(method=method):
                try:
                    method()
                except Exception:
                    pass
            act.__name__ = name
            actions.append(act)
    actions.append(boom)
    values = []
    for act in actions:
        values += [Index(1, act), Index(0, act), Index(2 ** 64, act), Length([b"x"], act),
                   Length([(0, 1, 0)], act), Buffer(b"abcd", act)]
    return values


def _pointer_layouts():
    with_pointer = type("WithPointer", (ctypes.Structure,), {"_fields_": [("p", ctypes.c_char_p)]})
    derived = type("Derived", (with_pointer,), {"_fields_": [("x", ctypes.c_int)]})
    nested = type("Nested", (ctypes.Structure,), {"_fields_": [("inner", with_pointer)]})
    union = type("U", (ctypes.Union,), {"_fields_": [("f", ctypes.CFUNCTYPE(None)),
                                                     ("i", ctypes.c_long)]})
    return [with_pointer, derived, nested, union, with_pointer * 2, ctypes.POINTER(ctypes.c_int),
            ctypes.py_object, ctypes.c_wchar_p]


WRAPPED = [Wrapped(kind, offset) for kind in ("shm", "sem", "msg")
           for offset in (2 ** 32, 2 ** 64, -2 ** 32)]
OTHER += _pointer_layouts()
FLAGS = [IPC_CREX | sysvshm.SHM_HUGETLB, IPC_CREX | sysvshm.SHM_HUGETLB | sysvshm.SHM_NORESERVE,
         IPC_CREX | sysvshm.SHM_NORESERVE, sysvshm.SHM_RDONLY, IPC_CREX | sysvshm.SHM_RDONLY,
         sysvshm.IPC_EXCL, sysvshm.IPC_CREAT, sysvshm.IPC_NOWAIT, sysvshm.SEM_UNDO,
         sysvshm.SHM_RND, sysvshm.SHM_REMAP, sysvshm.SHM_EXEC, sysvshm.MSG_NOERROR,
         sysvshm.MSG_EXCEPT, 0x10000000, IPC_CREX | 0x10000000 | sysvshm.SHM_HUGETLB]
OTHER += FLAGS


def values_for(target):
    wrapped = [BYSTANDERS.get(w.kind, 0) + w.offset for w in WRAPPED]
    return BOUNDARY + OTHER + wrapped + hostile(target)


# --- fixtures: what each case starts with -------------------------------------------------------
def free_address(length):
    m = mmap.mmap(-1, length + 0x10000)
    address = sysvshm._address_of(m)
    m.close()                  # now (PyPy would unmap it only at its next collection)
    return (address + 0xFFFF) & ~0xFFFF


def fixture(kind):
    # Segments are filled with 0x41: a pointer field read from one would point nowhere.
    if kind == "shm":
        return sysvshm.SharedMemory(None, IPC_CREX, size=8192, init_character=b"A")
    if kind == "shm_explicit":
        mem = sysvshm.SharedMemory(None, IPC_CREX, size=8192, init_character=b"A")
        for attempt in range(5):    # the interpreter may map something there meanwhile
            try:
                mem.attach(free_address(8192))
                return mem
            except sysvshm.Error:
                if attempt == 4:
                    raise
        return mem
    if kind == "shm_ro":
        made = sysvshm.SharedMemory(None, IPC_CREX, size=8192, init_character=b"A")
        return sysvshm.SharedMemory(made.key, readonly=True)
    if kind == "sem":
        return sysvshm.Semaphore(None, IPC_CREX, initial_value=5)
    if kind == "zsem":
        return sysvshm.Semaphore(None, IPC_CREX, initial_value=0)
    if kind == "set":
        return sysvshm.SemaphoreSet(None, 3, IPC_CREX, initial_values=[5, 0, 5])
    if kind == "member":
        return sysvshm.SemaphoreSet(None, 3, IPC_CREX, initial_values=[5, 0, 5])[0]
    if kind == "mq":
        mq = sysvshm.MessageQueue(None, IPC_CREX)
        for t in (1, 2, 3, 1):
            mq.send(b"message %d" % t, type=t)
        return mq
    if kind == "module":
        return sysvshm
    raise AssertionError(kind)


# A call: (fixture, callable name, positional defaults, {position: name}) - the fuzzed value goes
# into one position at a time; the others keep defaults that never block.
NOWAIT = 0
CALLS = [
    ("shm", "read", [8, 0]), ("shm", "write", [b"ab", 0]), ("shm", "read_into", [bytearray(4), 0]),
    ("shm", "as_ctypes", [ctypes.c_char * 4, 0]), ("shm", "attach", [None, 0]),
    ("shm", "detach", []), ("shm", "prefault", []), ("shm", "lock", []), ("shm", "unlock", []),
    ("shm_explicit", "read", [8, 0]), ("shm_explicit", "write", [b"ab", 0]),
    ("shm_explicit", "attach", [None, 0]), ("shm_explicit", "as_ctypes", [ctypes.c_char * 4, 0]),
    ("shm_ro", "write", [b"ab", 0]), ("shm_ro", "as_ctypes", [ctypes.c_char * 4, 0]),
    ("shm_ro", "attach", [None, 0]), ("shm_ro", "read_into", [bytearray(4), 0]),
    ("sem", "acquire", [NOWAIT, 1]), ("sem", "release", [1]), ("zsem", "Z", [NOWAIT]),
    ("sem", "P", [NOWAIT, 1]), ("sem", "V", [1]),
    ("member", "acquire", [NOWAIT, 1]), ("member", "release", [1]),
    ("set", "op", [[(0, 1, 0)], NOWAIT]), ("set", "__getitem__", [0]),
    ("mq", "send", [b"hello", False, 1]), ("mq", "receive", [False, 0, 0]),
    ("mq", "receive_into", [bytearray(64), False, 0, 0]),
    ("module", "attach", [0, None, 0]), ("module", "remove_shared_memory", [0]),
    ("module", "remove_semaphore", [0]), ("module", "remove_message_queue", [0]),
    ("module", "ftok", [HERE, 1, True]),
    ("module", "SharedMemory", [None, IPC_CREX, 0o600, 4096, None]),
    ("module", "Semaphore", [None, IPC_CREX, 0o600, 0]),
    ("module", "SemaphoreSet", [None, 2, IPC_CREX, 0o600, None]),
    ("module", "MessageQueue", [None, IPC_CREX, 0o600, 2048]),
]
# Positions where the fuzzed value would legitimately block forever (None / a huge timeout):
# the default that never blocks stays there instead, for values that could block.
NO_BLOCKING_VALUE = {("sem", "acquire", 1), ("sem", "P", 1), ("member", "acquire", 1),
                     ("set", "op", 0)}
SETTABLE = {"shm": ["mode", "uid", "gid"], "sem": ["mode", "uid", "gid", "value", "block", "undo"],
            "member": ["value", "block", "undo"], "set": ["values", "mode", "uid", "gid"],
            "mq": ["mode", "uid", "gid", "max_size"]}
KINDS = ["shm", "shm_explicit", "shm_ro", "sem", "zsem", "set", "member", "mq"]
ALLOWED = (TypeError, ValueError, OverflowError, IndexError, AttributeError, BufferError,
           NotImplementedError, KeyError, sysvshm.Error, Boom)


def cases(rng):
    """Every case as (name, kind, function(target))."""
    probe_values = values_for(sysvshm)   # for counting / naming only
    out = []
    for kind, name, defaults in CALLS:
        for position in range(len(defaults)):
            for index in range(len(probe_values)):
                def run(target, kind=kind, name=name, defaults=defaults, position=position,
                        index=index):
                    value = values_for(target)[index]
                    args = list(defaults)
                    args[position] = value
                    if name == "Z" or (kind, name, position) in NO_BLOCKING_VALUE:
                        # keep the timeout finite: a None or huge timeout blocks by design
                        if value is None or (isinstance(value, (int, float)) and value > 1):
                            return
                    result = getattr(target, name)(*args)
                    if isinstance(result, (ctypes.Structure, ctypes.Union, ctypes.Array)):
                        touch_fields(result)
                    honoured(target, name, position, value, result)
                    return result
                out.append(("%s.%s(arg%d=%s)" % (kind, name, position,
                                                  _short(probe_values[index])), kind, run))
    for kind, names in sorted(SETTABLE.items()):
        for attr in names:
            for index in range(len(probe_values)):
                def setter(target, attr=attr, index=index):
                    setattr(target, attr, values_for(target)[index])
                out.append(("%s.%s = %s" % (kind, attr, _short(probe_values[index])), kind, setter))
    for kind in KINDS:
        for attr in sorted(a for a in dir(type(fixture_class(kind))) if not a.startswith("_")):
            def getter(target, attr=attr):
                value = getattr(target, attr)
                if callable(value):
                    return None
                return value
            out.append(("%s.%s" % (kind, attr), kind, getter))
    out += concurrency_cases()
    return out


def honoured(target, name, position, value, result):
    """What a call that succeeded did is what it was asked (nothing wrapped or truncated)."""
    if type(value) is not int or value == 0:   # 0: the documented default / system's choice
        return
    if name == "SharedMemory" and position == 3 and result.size != value:
        raise AssertionError("asked for size %d, made %d" % (value, result.size))
    if name == "attach" and position == 0 and isinstance(target, sysvshm.SharedMemory) \
            and target.address != value:
        raise AssertionError("asked for address %#x, attached at %#x" % (value, target.address))
    if name == "attach" and position == 0 and target is sysvshm and result.id != value:
        raise AssertionError("asked for id %d, attached %d" % (value, result.id))


def touch_fields(obj):
    """Read every field of a ctypes object, bases and nested ones included."""
    if isinstance(obj, ctypes.Array):
        for item in obj[:4]:
            touch_fields(item)
        return
    for cls in type(obj).__mro__:
        for field in getattr(cls, "_fields_", ()):
            touch_fields(getattr(obj, field[0]))


def fixture_class(kind):
    return {"shm": sysvshm.SharedMemory, "shm_explicit": sysvshm.SharedMemory,
            "shm_ro": sysvshm.SharedMemory, "sem": sysvshm.Semaphore, "zsem": sysvshm.Semaphore,
            "set": sysvshm.SemaphoreSet, "member": sysvshm.SemaphoreMember,
            "mq": sysvshm.MessageQueue}[kind]


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- concurrency: a thread and a signal handler against the main thread ------------------------
VIEW_MAKERS = [
    lambda m: m.buf, lambda m: m.buf[1:9], lambda m: m.buf.cast("B"), lambda m: m.as_ctypes(),
    lambda m: memoryview(m.buf.obj) if m.buf.obj is not None else m.buf,
]


def shm_storm(target, rounds=300):
    """Main thread: attach/detach/touch; a thread and SIGALRM take views and touch them."""
    stop = []
    errors = []

    def touch():
        try:
            view = random.choice(VIEW_MAKERS)(target)
            if hasattr(view, "__len__") and len(view):
                view[0]        # must never fault
        except ALLOWED:
            pass
        except Exception as exc:   # pragma: no cover - reported by the parent
            errors.append(exc)

    def worker():
        while not stop:
            touch()

    def handler(signum, frame):
        touch()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for _ in range(rounds):
            try:
                if target.attached:
                    target.detach()
                else:
                    target.attach()
            except ALLOWED:
                pass
            touch()
    finally:
        stop.append(1)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        thread.join()
    if errors:
        raise errors[0]


def sem_storm(target, rounds=300):
    """Blocking acquires with a timeout, while SIGALRM makes failing non-blocking tries: the
    blocking call must only ever time out (or succeed), never report another error."""
    def handler(signum, frame):
        try:
            target.acquire(0)     # fails: value 0 (WouldBlock inside the handler is fine)
        except sysvshm.BusyError:
            pass

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    try:
        for _ in range(rounds // 30):
            try:
                target.acquire(0.01)
            except sysvshm.TimedOutError:
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def mq_storm(target, rounds=300):
    """A blocking receive of a type nobody sends, while SIGALRM makes failing tries; the 100th
    handler call sends the awaited message.  The receive must return it, nothing else."""
    calls = []

    def handler(signum, frame):
        calls.append(1)
        if len(calls) == 100:
            target.send(b"wake", type=98)
            return
        try:
            target.receive(False, type=99)
        except sysvshm.BusyError:
            pass

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    try:
        message, mtype = target.receive(type=98)
        if (message, mtype) != (b"wake", 98):
            raise AssertionError("received %r" % ((message, mtype),))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def concurrency_cases():
    return [("shm.storm", "shm", shm_storm), ("shm_explicit.storm", "shm_explicit", shm_storm),
            ("shm_ro.storm", "shm_ro", shm_storm), ("zsem.storm", "zsem", sem_storm),
            ("mq.storm", "mq", mq_storm)]


# --- running ------------------------------------------------------------------------------------
def live():
    found = set()
    for kind in ("shm", "sem", "msg"):
        with open("/proc/sysvipc/" + kind) as table:
            next(table)
            found.update((kind, int(line.split()[1])) for line in table if line.strip())
    return found


def remove(kind, ident):
    try:
        {"shm": sysvshm.remove_shared_memory, "sem": sysvshm.remove_semaphore,
         "msg": sysvshm.remove_message_queue}[kind](ident)
    except sysvshm.ExistentialError:
        pass


def ids_of(obj):
    """The (kind, id) of a sysvshm object (for objects a case created on purpose)."""
    for cls, kind in ((sysvshm.SharedMemory, "shm"), (sysvshm.Semaphore, "sem"),
                      (sysvshm.SemaphoreSet, "sem"), (sysvshm.MessageQueue, "msg")):
        if isinstance(obj, cls):
            return [(kind, obj.id)]
    return []


def run_case(kind, func, deadline, pipe):
    """In the child: build the fixture, report what exists, run the case, report what it made."""
    def report(tag, items):
        os.write(pipe, ("%s %s\n" % (tag, " ".join("%s:%d" % item for item in items))).encode())

    target = fixture(kind) if kind != "module" else sysvshm
    make_bystanders()
    report("fixture", live())
    report("bystanders", BYSTANDERS.items())
    signal.alarm(int(deadline) + 1)     # a hang becomes SIGALRM's default action: death
    try:
        result = func(target)
    except ALLOWED:
        result = None
    report("made", ids_of(result))
    signal.alarm(0)
    if hasattr(result, "detach") and getattr(result, "attached", False):
        try:
            result.detach()
        except BufferError:
            pass


def make_bystanders():
    """One object of each kind whose id is none of the values the cases use: it must survive
    every case (a wrapped id must not reach it)."""
    plain = set(v for v in BOUNDARY)
    makers = {"shm": lambda: sysvshm.SharedMemory(None, IPC_CREX, size=4096, init_character=None),
              "sem": lambda: sysvshm.Semaphore(None, IPC_CREX),
              "msg": lambda: sysvshm.MessageQueue(None, IPC_CREX)}
    for kind, make in sorted(makers.items()):
        spares = []
        obj = make()
        while obj.id in plain:
            spares.append(obj)
            obj = make()
        for spare in spares:
            spare.remove()
        if kind == "shm":
            obj.detach()
        BYSTANDERS[kind] = obj.id


def parse(text):
    found = {"fixture": set(), "made": set(), "bystanders": set()}
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        found[tag].update((k, int(i)) for k, i in (w.split(":") for w in rest.split()))
    return found["fixture"], found["made"], found["bystanders"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="run a random sample of N cases")
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds per case")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if os.environ.get("SYSVSHM_FUZZ_NS") != "1" and os.geteuid() == 0:
        os.environ["SYSVSHM_FUZZ_NS"] = "1"
        try:
            os.execvp("unshare", ["unshare", "--ipc", sys.executable] + sys.argv)
        except OSError:
            pass
    rng = random.Random(args.seed)
    random.seed(args.seed)
    todo = cases(rng)
    if os.environ.get("SYSVSHM_EMULATOR") and ctypes.sizeof(ctypes.c_void_p) == 4:
        # qemu-user's 32-bit guests cannot attach at an explicit address (the tests skip it too)
        todo = [case for case in todo if case[1] != "shm_explicit"]
    if args.limit and args.limit < len(todo):
        todo = rng.sample(todo, args.limit)
    passed = failed = 0
    failures = []
    start = time.monotonic()
    baseline = live()
    for name, kind, func in todo:
        sys.stdout.flush()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            code = 0
            try:
                run_case(kind, func, args.deadline, wfd)
            except BaseException:
                traceback.print_exc()
                code = 3
            os._exit(code)
        os.close(wfd)
        chunks = []
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(rfd)
        end = time.monotonic() + args.deadline + 5
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > end:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
                break
            time.sleep(0.001)
        fixture_ids, made, bystanders = parse(b"".join(chunks).decode())
        now = live()
        destroyed = bystanders - now
        left = now - baseline
        leaked = left - fixture_ids - made
        for item in left:
            remove(*item)
        problem = None
        if status is None:
            problem = "hang (killed after %.0f s)" % (args.deadline + 5)
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            problem = "killed by signal %d (%s)" % (sig, "hang: alarm" if sig == signal.SIGALRM
                                                    else signal.Signals(sig).name)
        elif os.WEXITSTATUS(status) != 0:
            problem = "unexpected exception (traceback above)"
        elif destroyed:
            problem = "destroyed a bystander %s" % sorted(destroyed)
        elif leaked:
            problem = "left behind %s" % sorted(leaked)
        if problem:
            failed += 1
            failures.append((name, problem))
            print("FAIL %s: %s" % (name, problem))
        else:
            passed += 1
            if args.verbose:
                print("ok   %s" % name)
    print("%s %s: %d cases in %.1f s" % (sys.implementation.name, sys.version.split()[0],
                                         len(todo), time.monotonic() - start))
    for name, problem in failures[:50]:
        print("  %s: %s" % (name, problem))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
