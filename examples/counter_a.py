# Program A of the README's first example, in Python: does what examples/counter.c does.
# Creates a segment and a set of two semaphores at key 0x5eed (0: the lock, initially 1;
# 1: "B is done", initially 0), fills the struct, waits (at most 60 s) for B to release
# semaphore 1, prints what B left, and removes both objects: the creator cleans up.
import ctypes
import sysvshm

class Counter(ctypes.Structure):          # struct counter of examples/counter.c
    _fields_ = [("magic", ctypes.c_uint32),
                ("count", ctypes.c_int32),
                ("note", ctypes.c_char * 24)]

KEY = 0x5EED
shm = sysvshm.SharedMemory(KEY, sysvshm.IPC_CREX, size=ctypes.sizeof(Counter),
                           init_character=None)   # a new segment is zeros, as in C
try:
    sem = sysvshm.SemaphoreSet(KEY, 2, sysvshm.IPC_CREX, initial_values=[1, 0])
    try:
        counter = shm.as_ctypes(Counter)
        counter.magic, counter.count, counter.note = 0x434F554E, 41, b"hello from A"
        print("A: segment and semaphore set at key %#x; waiting for B" % KEY, flush=True)
        sem[1].acquire(timeout=60)        # B releases semaphore 1 when done
        sem[0].undo = True
        with sem[0]:
            print('A: B left count %d, note "%s"' % (counter.count, counter.note.decode()))
        del counter
        shm.detach()
    finally:
        sem.remove()
finally:
    shm.remove()
