import ctypes
import sysvshm

class Counter(ctypes.Structure):          # struct counter of examples/counter.c
    _fields_ = [("magic", ctypes.c_uint32),
                ("count", ctypes.c_int32),
                ("note", ctypes.c_char * 24)]

KEY = 0x5EED                              # the key program A used
shm = sysvshm.SharedMemory(KEY)           # open A's segment by key and attach it
sem = sysvshm.SemaphoreSet(KEY)           # open A's semaphore set (2 semaphores)
sem[0].undo = True                        # should B die holding the lock, the kernel releases it

counter = shm.as_ctypes(Counter)          # the struct, in place: no copy
with sem[0]:                              # A's lock: acquire, and release at the end
    print("B: A left count %d, note %r" % (counter.count, counter.note.decode()))
    counter.count += 1
    counter.note = b"written by B"
sem[1].release()                          # tell A that B is done

del counter                               # the last view into the segment...
shm.detach()                              # ...so detach() may unmap it
