import sysvshm

queue = sysvshm.MessageQueue(0x5EED)          # open the receiver's queue by key
for n in range(3):
    queue.send("reading %d" % n)              # a str is sent as UTF-8; type 1 by default
queue.send(b"alarm!", type=2)                 # a type of its own (receive(type=2) picks these)
queue.send(b"quit")
