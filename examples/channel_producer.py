import sysvshm

ch = sysvshm.Channel(0x5CA1AB1E, sysvshm.IPC_CREAT, slots=8, slot_size=4096)
for i in range(3):
    ch.send(b"reading %d" % i)              # copies into a free slot
with ch.reserve(8) as buf:                  # zero-copy: fill the slot in place
    buf[:] = (12345).to_bytes(8, "little")  # committed when the block ends
ch.close()                                  # no more messages
