import sysvshm

KEY = 0x5CA1AB1E
ch = sysvshm.Channel(KEY, sysvshm.IPC_CREAT, slots=8, slot_size=4096)   # create or open
print("consumer: channel ready at key %#x" % KEY, flush=True)
try:
    while True:
        try:
            with ch.receive_view(timeout=10) as view:     # zero-copy: read the slot in place
                print("consumer:", bytes(view))
        except sysvshm.ChannelClosedError:                # closed, and everything received
            break
finally:
    ch.remove()                                           # the segment and the semaphore set
