import sysvshm

KEY = 0x5EED
queue = sysvshm.MessageQueue(KEY, sysvshm.IPC_CREX)   # create it (ExistsError if the key is taken)
print("receiver: queue %d ready at key %#x" % (queue.id, KEY), flush=True)
try:
    while True:
        message, kind = queue.receive()                # waits for the next message
        if message == b"quit":
            break
        print("receiver: type %d: %s" % (kind, message.decode()))
finally:
    queue.remove()                                     # the creator removes the queue
