// channel.go - a Go peer of sysvshm.Channel, following examples/sysvshm_channel.h step by step:
// golang.org/x/sys/unix for the segment, raw semop/semtimedop/semget/semctl system calls for
// the semaphores (x/sys/unix has no semaphore functions).  Linux amd64/arm64 (the direct
// sem* system calls; i386 multiplexes them through ipc(2)).
//
// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The sysvshm authors
//
// Build (offline, Debian's golang-go and golang-golang-x-sys-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o channel-go channel.go
//
// Use (as examples/channel.c: exit 0 done, 3 closed, 4 timed out, 1 other errors, 2 usage):
//
//	channel-go [OPTIONS] producer KEY COUNT TAG [TIMEOUT [SIZE]]
//	channel-go [OPTIONS] consumer KEY COUNT [TIMEOUT]
//	channel-go close KEY
//	channel-go create KEY SLOTS SLOT_SIZE [MODE]   create or open; prints "created SEMID SHMID"
//	                                               or "opened SEMID SHMID"
//
// OPTIONS: --create SLOTS SLOT_SIZE (create the channel if it does not exist), --in-place
// (RESERVE/COMMIT and RECEIVE IN PLACE/RELEASE instead of copies), --abandon K (in-place
// producer: also RESERVE and ABANDON a slot before every Kth message), --hold N (in-place
// consumer: after taking message N, print it and "holding", then wait forever without RELEASE).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	chMagic      = 0x48435653
	chVersion    = 1
	chHeaderSize = 128
	chSlotHeader = 64
	chMaxSlots   = 4096
	chPoison     = 16384

	semMutex = 0
	semFree  = 1
	semReady = 2
	semDone  = 3

	stFree    = 0
	stWriting = 1
	stReady   = 2
	stReading = 3

	jNone     = 0
	jCommit   = 1
	jTake     = 2
	jTakeFree = 3
	jClose    = 4

	semUndo   = 0x1000
	ipcNowait = 0o4000
	ipcCreat  = 0o1000
	ipcExcl   = 0o2000
	ipcRmid   = 0
	getVal    = 12
	setAll    = 17
)

// header mirrors struct svshm_ch_header (128 bytes).
type header struct {
	Magic, Version, HeaderSize, Slots, SlotSize, SlotStride, OrderOffset, SlotsOffset uint32
	Head, Tail                                                                        uint64
	Closed, JOp, JDone, JSlot                                                         uint32
	JCounter                                                                          uint64
	JPid                                                                              int32
	Reserved0                                                                         uint32
	Sent, Received, Reclaimed                                                         uint64
	Reserved                                                                          [24]byte
}

// slotHeader mirrors struct svshm_ch_slot (64 bytes).
type slotHeader struct {
	State    uint32
	Pid      int32
	Length   uint32
	Reserved [13]uint32
}

type sembuf struct {
	Num uint16
	Op  int16
	Flg int16
}

var errClosed = errors.New("the channel is closed")
var errTimedOut = errors.New("timed out")

type channel struct {
	semid            uintptr
	mem              []byte
	h                *header
	slots, slotSize  uint32
	slotsOff, stride uint64
	timeout          time.Duration // < 0: forever
	pid              int32         // os.Getpid(), once
}

func (c *channel) slot(i uint32) *slotHeader {
	return (*slotHeader)(unsafe.Pointer(&c.mem[c.slotsOff+uint64(i)*c.stride]))
}

func (c *channel) payload(i uint32, n uint32) []byte {
	start := c.slotsOff + uint64(i)*c.stride + chSlotHeader
	return c.mem[start : start+uint64(n)]
}

func (c *channel) order(i uint64) *uint32 {
	return (*uint32)(unsafe.Pointer(&c.mem[chHeaderSize+4*(i%uint64(c.slots))]))
}

// spinTime is how long a wait spins before sleeping in the kernel: MUTEX is held for
// microseconds and a message is often microseconds away, while a wake-up costs tens of
// microseconds on a virtual machine.
const spinTime = 100 * time.Microsecond

var spinCounter uint32

// maybe says whether the wait for ops could succeed now: a hint read from the header without
// the lock (the semaphores decide).  A consumer needs a committed message, a producer a slot
// that holds none.
func (c *channel) maybe(ops []sembuf) bool {
	if c.h == nil || ops[0].Num == semMutex || atomic.LoadUint32(&c.h.Closed) != 0 {
		return true
	}
	pending := atomic.LoadUint64(&c.h.Head) - atomic.LoadUint64(&c.h.Tail)
	if ops[0].Num == semReady {
		return pending != 0
	}
	return pending < uint64(c.slots)
}

// wait runs a semop that may block: semtimedop on the remaining time, EINTR retried.  It
// spins first (up to spinTime), trying the semop with IPC_NOWAIT only when the header says it
// may succeed, and backing off between tries: a failed try takes the set's lock, which the
// holder needs to give MUTEX back.
func (c *channel) wait(ops ...sembuf) error {
	deadline := time.Now().Add(c.timeout)
	if c.timeout != 0 && len(ops) <= 4 {
		var tries [4]sembuf
		n := copy(tries[:], ops)
		for i := 0; i < n; i++ {
			tries[i].Flg |= ipcNowait
		}
		start, backoff := time.Now(), 1
		for {
			if c.maybe(ops) {
				_, _, errno := unix.RawSyscall(unix.SYS_SEMOP, c.semid,
					uintptr(unsafe.Pointer(&tries[0])), uintptr(n))
				if errno == 0 {
					return nil
				}
				if errno != unix.EAGAIN {
					break // the blocking call below reports it
				}
				if backoff < 256 {
					backoff *= 2
				}
			}
			for k := 0; k < backoff; k++ {
				atomic.AddUint32(&spinCounter, 1)
			}
			if time.Since(start) >= spinTime {
				break
			}
		}
	}
	for {
		var errno syscall.Errno
		if c.timeout < 0 {
			_, _, errno = unix.Syscall(unix.SYS_SEMOP, c.semid, uintptr(unsafe.Pointer(&ops[0])),
				uintptr(len(ops)))
		} else {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			ts := unix.NsecToTimespec(left.Nanoseconds())
			_, _, errno = unix.Syscall6(unix.SYS_SEMTIMEDOP, c.semid,
				uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		}
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return errTimedOut
		default:
			return fmt.Errorf("semop: %v", errno)
		}
	}
}

// final runs one of the protocol's "final" semops, which never block.
func (c *channel) final(ops ...sembuf) {
	_, _, errno := unix.Syscall(unix.SYS_SEMOP, c.semid, uintptr(unsafe.Pointer(&ops[0])),
		uintptr(len(ops)))
	if errno != 0 {
		fmt.Fprintln(os.Stderr, "semop (final):", errno)
		os.Exit(1)
	}
}

func (c *channel) getval(index uintptr) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_SEMCTL, c.semid, index, getVal, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

func (c *channel) rollback() {
	h := c.h
	s := c.slot(atomic.LoadUint32(&h.JSlot) % c.slots)
	switch atomic.LoadUint32(&h.JOp) {
	case jCommit:
		atomic.StoreUint64(&h.Head, atomic.LoadUint64(&h.JCounter))
		atomic.StoreInt32(&s.Pid, 0)
		atomic.StoreUint32(&s.State, stFree)
	case jTake, jTakeFree:
		atomic.StoreUint64(&h.Tail, atomic.LoadUint64(&h.JCounter))
		atomic.StoreUint32(&s.State, stReady)
	case jClose:
		atomic.StoreUint32(&h.Closed, 0)
	}
}

func (c *channel) settle() {
	h := c.h
	if atomic.LoadUint32(&h.JOp) == jNone {
		return
	}
	v, err := c.getval(semDone)
	if err != nil {
		fmt.Fprintln(os.Stderr, "semctl(GETVAL):", err)
		os.Exit(1)
	}
	if atomic.LoadUint32(&h.JDone) == 0 {
		if v == 0 {
			c.rollback()
			atomic.StoreUint32(&h.JOp, jNone)
			return
		}
		atomic.StoreUint32(&h.JDone, 1)
	}
	if v != 0 {
		c.final(sembuf{semDone, -1, ipcNowait})
	}
	atomic.StoreUint32(&h.JOp, jNone)
}

func (c *channel) journal(op, slot uint32, counter uint64) {
	h := c.h
	atomic.StoreUint32(&h.JDone, 0)
	atomic.StoreUint32(&h.JSlot, slot)
	atomic.StoreUint64(&h.JCounter, counter)
	atomic.StoreInt32(&h.JPid, c.pid)
	atomic.StoreUint32(&h.JOp, op)
}

func alive(pid int32) bool {
	if pid <= 0 {
		return false
	}
	if unix.Kill(int(pid), 0) == unix.ESRCH {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	i := bytes.LastIndexByte(data, ')')
	return !(i >= 0 && i+2 < len(data) && (data[i+2] == 'Z' || data[i+2] == 'X'))
}

func (c *channel) find() int {
	for i := uint32(0); i < c.slots; i++ {
		if atomic.LoadUint32(&c.slot(i).State) == stFree {
			return int(i)
		}
	}
	return -1
}

func (c *channel) reclaim() {
	me := c.pid
	for i := uint32(0); i < c.slots; i++ {
		s := c.slot(i)
		st := atomic.LoadUint32(&s.State)
		pid := atomic.LoadInt32(&s.Pid)
		if (st == stWriting || st == stReading) && pid != me && !alive(pid) {
			atomic.StoreInt32(&s.Pid, 0)
			atomic.StoreUint32(&s.State, stFree)
			atomic.AddUint64(&c.h.Reclaimed, 1)
		}
	}
}

// producerSlot is the common start of SEND and RESERVE: a FREE unit and MUTEX taken, SETTLEd,
// a FREE slot found (RECLAIM if needed); returns its index with MUTEX held.
func (c *channel) producerSlot() (uint32, error) {
	deadline := time.Now().Add(c.timeout)
	for {
		if err := c.wait(sembuf{semFree, -1, semUndo}, sembuf{semMutex, -1, semUndo}); err != nil {
			return 0, err
		}
		c.settle()
		if atomic.LoadUint32(&c.h.Closed) != 0 {
			c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
			return 0, errClosed
		}
		s := c.find()
		if s < 0 {
			c.reclaim()
			s = c.find()
		}
		if s >= 0 {
			return uint32(s), nil
		}
		c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
		if c.timeout >= 0 && time.Now().After(deadline) {
			return 0, errTimedOut
		}
		time.Sleep(time.Millisecond)
	}
}

// commitLocked is COMMIT from JOURNAL on: MUTEX held, slot s's payload and length written.
func (c *channel) commitLocked(s uint32) {
	h, slot := c.h, c.slot(s)
	head := atomic.LoadUint64(&h.Head)
	c.journal(jCommit, s, head)
	atomic.StoreUint32(c.order(head), s)
	atomic.StoreUint64(&h.Head, head+1)
	atomic.StoreInt32(&slot.Pid, 0)
	atomic.StoreUint32(&slot.State, stReady)
	atomic.AddUint64(&h.Sent, 1)
	c.final(sembuf{semFree, 1, semUndo}, sembuf{semFree, -1, 0}, sembuf{semReady, 1, 0},
		sembuf{semDone, 1, 0}, sembuf{semMutex, 1, semUndo})
}

func (c *channel) tooLong(n int) error {
	if uint64(n) > uint64(c.slotSize) {
		return fmt.Errorf("a message of %d bytes does not fit a slot of %d", n, c.slotSize)
	}
	return nil
}

// send is SEND of the header: copy data into a free slot and commit it.
func (c *channel) send(data []byte) error {
	if err := c.tooLong(len(data)); err != nil {
		return err
	}
	s, err := c.producerSlot()
	if err != nil {
		return err
	}
	copy(c.payload(s, uint32(len(data))), data)
	atomic.StoreUint32(&c.slot(s).Length, uint32(len(data)))
	c.commitLocked(s)
	return nil
}

// lock is the header's "lock": MUTEX (SEM_UNDO), then SETTLE.  MUTEX is held for microseconds
// by anyone alive and given back by the kernel for anyone dead: no timeout.
func (c *channel) lock() {
	timeout := c.timeout
	c.timeout = -1
	if err := c.wait(sembuf{semMutex, -1, semUndo}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.timeout = timeout
	c.settle()
}

// reserve is RESERVE: a slot WRITING by us (MUTEX given back) whose payload the caller fills in
// place (c.payload(s, n)), then commit(s, n) or abandon(s).
func (c *channel) reserve(n int) (uint32, error) {
	if err := c.tooLong(n); err != nil {
		return 0, err
	}
	s, err := c.producerSlot()
	if err != nil {
		return 0, err
	}
	slot := c.slot(s)
	atomic.StoreInt32(&slot.Pid, c.pid)
	atomic.StoreUint32(&slot.State, stWriting)
	c.final(sembuf{semMutex, 1, semUndo})
	return s, nil
}

// abandon is ABANDON of a reserved slot.
func (c *channel) abandon(s uint32) {
	c.lock()
	slot := c.slot(s)
	atomic.StoreInt32(&slot.Pid, 0)
	atomic.StoreUint32(&slot.State, stFree)
	c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
}

// commit is COMMIT of a reserved slot as a message of n bytes (errClosed: abandoned).
func (c *channel) commit(s uint32, n int) error {
	c.lock()
	slot := c.slot(s)
	if atomic.LoadUint32(&c.h.Closed) != 0 {
		atomic.StoreInt32(&slot.Pid, 0)
		atomic.StoreUint32(&slot.State, stFree)
		c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
		return errClosed
	}
	atomic.StoreUint32(&slot.Length, uint32(n))
	c.commitLocked(s)
	return nil
}

// consumerSlot is the common start of RECEIVE and RECEIVE IN PLACE: a READY unit and MUTEX
// taken, SETTLEd; the next message's slot, MUTEX held.
func (c *channel) consumerSlot() (uint32, error) {
	h := c.h
	if err := c.wait(sembuf{semReady, -1, semUndo}, sembuf{semMutex, -1, semUndo}); err != nil {
		return 0, err
	}
	c.settle()
	tail := atomic.LoadUint64(&h.Tail)
	if tail == atomic.LoadUint64(&h.Head) {
		c.final(sembuf{semReady, 1, semUndo}, sembuf{semMutex, 1, semUndo})
		if atomic.LoadUint32(&h.Closed) != 0 {
			return 0, errClosed
		}
		return 0, errors.New("a READY unit without a message")
	}
	s := atomic.LoadUint32(c.order(tail)) % c.slots
	if n := atomic.LoadUint32(&c.slot(s).Length); n > c.slotSize {
		c.final(sembuf{semReady, 1, semUndo}, sembuf{semMutex, 1, semUndo})
		return 0, fmt.Errorf("the next message's length (%d) is over slot_size (%d): "+
			"a peer broke the protocol; it stays queued", n, c.slotSize)
	}
	return s, nil
}

func (c *channel) length(s uint32) uint32 {
	n := atomic.LoadUint32(&c.slot(s).Length)
	if n > c.slotSize {
		n = c.slotSize
	}
	return n
}

// receive is RECEIVE of the header: the next message, copied out.
func (c *channel) receive() ([]byte, error) {
	h := c.h
	s, err := c.consumerSlot()
	if err != nil {
		return nil, err
	}
	tail := atomic.LoadUint64(&h.Tail)
	slot := c.slot(s)
	data := append([]byte(nil), c.payload(s, c.length(s))...)
	c.journal(jTakeFree, s, tail)
	atomic.StoreUint64(&h.Tail, tail+1)
	atomic.StoreInt32(&slot.Pid, 0)
	atomic.StoreUint32(&slot.State, stFree)
	atomic.AddUint64(&h.Received, 1)
	c.final(sembuf{semReady, 1, semUndo}, sembuf{semReady, -1, 0}, sembuf{semFree, 1, 0},
		sembuf{semDone, 1, 0}, sembuf{semMutex, 1, semUndo})
	return data, nil
}

// receiveInPlace is RECEIVE IN PLACE: the slot (READING by us) and its message, a slice of the
// segment valid until release(s).
func (c *channel) receiveInPlace() (uint32, []byte, error) {
	h := c.h
	s, err := c.consumerSlot()
	if err != nil {
		return 0, nil, err
	}
	tail := atomic.LoadUint64(&h.Tail)
	slot := c.slot(s)
	n := c.length(s)
	c.journal(jTake, s, tail)
	atomic.StoreUint64(&h.Tail, tail+1)
	atomic.StoreInt32(&slot.Pid, c.pid)
	atomic.StoreUint32(&slot.State, stReading)
	atomic.AddUint64(&h.Received, 1)
	c.final(sembuf{semReady, 1, semUndo}, sembuf{semReady, -1, 0}, sembuf{semFree, 1, 0},
		sembuf{semFree, -1, semUndo}, sembuf{semDone, 1, 0}, sembuf{semMutex, 1, semUndo})
	return s, c.payload(s, n), nil
}

// release is RELEASE of a slot received in place.
func (c *channel) release(s uint32) {
	c.lock()
	slot := c.slot(s)
	atomic.StoreInt32(&slot.Pid, 0)
	atomic.StoreUint32(&slot.State, stFree)
	c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
}

func (c *channel) close() error {
	if err := c.wait(sembuf{semMutex, -1, semUndo}); err != nil {
		return err
	}
	c.settle()
	if atomic.LoadUint32(&c.h.Closed) != 0 {
		c.final(sembuf{semMutex, 1, semUndo})
		return nil
	}
	c.journal(jClose, 0, 0)
	atomic.StoreUint32(&c.h.Closed, 1)
	c.final(sembuf{semFree, chPoison, 0}, sembuf{semReady, chPoison, 0}, sembuf{semDone, 1, 0},
		sembuf{semMutex, 1, semUndo})
	return nil
}

func round64(n uint64) uint64 { return (n + 63) &^ 63 }

// openSegment is OPEN once c.semid is known: the set's size is checked, MUTEX taken with a
// bounded wait (5 s, as sysvshm's: it is 0 until the creator has written the header), then
// shmget, shmat, SETTLE and the header's checks.
func (c *channel) openSegment(key int) error {
	if _, err := c.getval(3); err != nil {
		return fmt.Errorf("not a channel's semaphore set: %v", err)
	}
	if _, err := c.getval(4); err == nil {
		return errors.New("not a channel's semaphore set: more than 4 semaphores")
	}
	timeout := c.timeout
	c.timeout = 5 * time.Second
	err := c.wait(sembuf{semMutex, -1, semUndo})
	c.timeout = timeout
	if err == errTimedOut {
		return errors.New("the channel's creator did not finish initialising it (died?); " +
			"remove it with ipcrm")
	} else if err != nil {
		return err
	}
	defer c.final(sembuf{semMutex, 1, semUndo})
	id, err := unix.SysvShmGet(key, 0, 0)
	if err != nil {
		return fmt.Errorf("shmget: %v", err)
	}
	c.mem, err = unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return fmt.Errorf("shmat: %v", err)
	}
	if len(c.mem) < chHeaderSize {
		return errors.New("not a channel: the segment is too small")
	}
	c.h = (*header)(unsafe.Pointer(&c.mem[0]))
	c.settle()
	h := c.h
	switch {
	case h.Magic != chMagic:
		return fmt.Errorf("not a channel: magic %#x", h.Magic)
	case h.Version != chVersion:
		return fmt.Errorf("channel layout version %d, this program reads %d", h.Version, chVersion)
	case h.Slots < 1 || h.Slots > chMaxSlots || h.SlotSize < 1 || h.SlotSize > 0x7fffffff ||
		h.HeaderSize != chHeaderSize || h.OrderOffset != chHeaderSize ||
		uint64(h.SlotsOffset) != round64(chHeaderSize+4*uint64(h.Slots)) ||
		uint64(h.SlotStride) != chSlotHeader+round64(uint64(h.SlotSize)) ||
		uint64(len(c.mem)) < uint64(h.SlotsOffset)+uint64(h.Slots)*uint64(h.SlotStride):
		return errors.New("bad channel geometry")
	}
	c.bindGeometry()
	return nil
}

func (c *channel) bindGeometry() {
	h := c.h
	c.slots, c.slotSize = h.Slots, h.SlotSize
	c.slotsOff, c.stride = uint64(h.SlotsOffset), uint64(h.SlotStride)
}

func newChannel() *channel {
	return &channel{timeout: -1, pid: int32(os.Getpid())}
}

// open opens an existing channel.
func open(key int) (*channel, error) {
	r, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("semget: %v", errno)
	}
	c := newChannel()
	c.semid = r
	if err := c.openSegment(key); err != nil {
		return nil, err
	}
	return c, nil
}

// create is CREATE OR OPEN of the header: the channel and whether this call created it.  A
// failure leaves nothing behind that this call created.
func create(key int, slots, slotSize int64, mode int) (*channel, bool, error) {
	if slots < 1 || slots > chMaxSlots || slotSize < 1 || slotSize > 0x7fffffff {
		return nil, false, fmt.Errorf("slots must be 1..%d and slot_size 1..%d", chMaxSlots,
			0x7fffffff)
	}
	if key == 0 {
		return nil, false, errors.New("a channel needs a key (IPC_PRIVATE objects cannot be " +
			"opened by another program)")
	}
	c := newChannel()
	for tries := 0; ; tries++ {
		r, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 4,
			uintptr(ipcCreat|ipcExcl|mode))
		if errno == 0 {
			c.semid = r
			break
		}
		if errno != unix.EEXIST {
			return nil, false, fmt.Errorf("semget(IPC_CREAT|IPC_EXCL): %v", errno)
		}
		r, _, errno = unix.Syscall(unix.SYS_SEMGET, uintptr(key), 0, 0) // EEXIST: open it
		if errno == 0 {
			c.semid = r
			if err := c.openSegment(key); err != nil {
				return nil, false, err
			}
			if int64(c.slots) != slots || int64(c.slotSize) != slotSize {
				return nil, false, fmt.Errorf("the channel has %d slots of %d bytes, not %d of %d",
					c.slots, c.slotSize, slots, slotSize)
			}
			return c, false, nil
		}
		if errno != unix.ENOENT || tries >= 100 { // ENOENT: removed between the two semgets
			return nil, false, fmt.Errorf("semget: %v", errno)
		}
	}
	// We are the creator: MUTEX 0 (held) until the header is written.
	shmid := -1
	fail := func(err error) (*channel, bool, error) {
		if c.mem != nil {
			unix.SysvShmDetach(c.mem)
		}
		if shmid >= 0 {
			unix.SysvShmCtl(shmid, unix.IPC_RMID, nil)
		}
		unix.Syscall6(unix.SYS_SEMCTL, c.semid, 0, ipcRmid, 0, 0, 0)
		return nil, false, err
	}
	values := [4]uint16{0, uint16(slots), 0, 0}
	if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, c.semid, 0, setAll,
		uintptr(unsafe.Pointer(&values[0])), 0, 0); errno != 0 {
		return fail(fmt.Errorf("semctl(SETALL): %v", errno))
	}
	ops := [2]sembuf{{semMutex, 1, ipcNowait}, {semMutex, -1, ipcNowait}} // marks sem_otime
	if _, _, errno := unix.Syscall(unix.SYS_SEMOP, c.semid, uintptr(unsafe.Pointer(&ops[0])),
		2); errno != 0 {
		return fail(fmt.Errorf("semop (sem_otime): %v", errno))
	}
	offset := round64(chHeaderSize + 4*uint64(slots))
	stride := chSlotHeader + round64(uint64(slotSize))
	size := offset + uint64(slots)*stride
	id, err := unix.SysvShmGet(key, int(size), ipcCreat|ipcExcl|mode)
	if err == unix.EEXIST {
		return fail(errors.New("shmget: a segment exists at this key but no channel semaphore set"))
	} else if err != nil {
		return fail(fmt.Errorf("shmget(IPC_CREAT|IPC_EXCL): %v", err))
	}
	shmid = id
	if c.mem, err = unix.SysvShmAttach(id, 0, 0); err != nil {
		return fail(fmt.Errorf("shmat: %v", err))
	}
	c.h = (*header)(unsafe.Pointer(&c.mem[0])) // a new segment is zero-filled
	h := c.h
	h.Version, h.HeaderSize, h.Slots, h.SlotSize = chVersion, chHeaderSize, uint32(slots),
		uint32(slotSize)
	h.SlotStride, h.OrderOffset, h.SlotsOffset = uint32(stride), chHeaderSize, uint32(offset)
	atomic.StoreUint32(&h.Magic, chMagic) // magic last
	c.bindGeometry()
	unlock := [1]sembuf{{semMutex, 1, 0}}
	if _, _, errno := unix.Syscall(unix.SYS_SEMOP, c.semid, uintptr(unsafe.Pointer(&unlock[0])),
		1); errno != 0 {
		return fail(fmt.Errorf("semop (release MUTEX): %v", errno))
	}
	return c, true, nil
}

func status(err error) int {
	switch err {
	case errClosed:
		return 3
	case errTimedOut:
		return 4
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: channel-go [--create SLOTS SLOT_SIZE] [--in-place] "+
		"[--abandon K] producer KEY COUNT TAG [TIMEOUT [SIZE]]\n"+
		"       channel-go [--create SLOTS SLOT_SIZE] [--in-place] [--hold N] consumer KEY "+
		"COUNT [TIMEOUT]\n"+
		"       channel-go close KEY\n"+
		"       channel-go create KEY SLOTS SLOT_SIZE [MODE]")
	os.Exit(2)
}

func number(text string) int64 {
	n, err := strconv.ParseInt(text, 0, 64)
	if err != nil {
		usage()
	}
	return n
}

func producer(c *channel, count int64, tag string, size int64, inPlace bool, abandon int64) {
	text := make([]byte, 0, 256)
	for i := int64(0); i < count; i++ {
		text = strconv.AppendInt(append(append(text[:0], tag...), ':'), i, 10)
		n := len(text)
		if size > 0 {
			n = int(size)
		}
		if !inPlace {
			message := text
			if size > 0 {
				message = make([]byte, n)
				copy(message, text)
			}
			if err := c.send(message); err != nil {
				os.Exit(status(err))
			}
			continue
		}
		if abandon > 0 && i%abandon == 0 { // RESERVE, fill, ABANDON
			s, err := c.reserve(n)
			if err != nil {
				os.Exit(status(err))
			}
			copy(c.payload(s, c.slotSize), "ABANDONED")
			c.abandon(s)
		}
		s, err := c.reserve(n) // RESERVE, fill in place, COMMIT
		if err != nil {
			os.Exit(status(err))
		}
		out := c.payload(s, uint32(n))
		for j := range out {
			out[j] = 0
		}
		copy(out, text)
		if err := c.commit(s, n); err != nil {
			os.Exit(status(err))
		}
	}
}

func consumer(c *channel, count int64, inPlace bool, hold int64) {
	out := make([]byte, 0, 1<<16)
	for i := int64(0); count < 0 || i < count; i++ {
		var data []byte
		var s uint32
		var err error
		if inPlace {
			s, data, err = c.receiveInPlace()
		} else {
			data, err = c.receive()
		}
		if err != nil {
			os.Stdout.Write(out)
			if err == errClosed && count < 0 {
				return
			}
			os.Exit(status(err))
		}
		out = append(append(out, data...), '\n') // read in place with --in-place
		if len(out) >= 1<<16 {
			os.Stdout.Write(out)
			out = out[:0]
		}
		if !inPlace {
			continue
		}
		if i == hold { // a test kills us here, holding the slot
			os.Stdout.Write(append(out, "holding\n"...))
			for {
				time.Sleep(time.Hour)
			}
		}
		c.release(s)
	}
	os.Stdout.Write(out)
}

func main() {
	args := os.Args[1:]
	var slots, slotSize, abandon int64
	hold := int64(-1)
	inPlace, doCreate := false, false
	for len(args) > 0 && len(args[0]) > 2 && args[0][:2] == "--" {
		switch {
		case args[0] == "--create" && len(args) >= 3:
			slots, slotSize, doCreate = number(args[1]), number(args[2]), true
			args = args[3:]
		case args[0] == "--in-place":
			inPlace = true
			args = args[1:]
		case args[0] == "--hold" && len(args) >= 2:
			hold = number(args[1])
			args = args[2:]
		case args[0] == "--abandon" && len(args) >= 2:
			abandon = number(args[1])
			args = args[2:]
		default:
			usage()
		}
	}
	if len(args) < 2 || ((hold >= 0 || abandon > 0) && !inPlace) {
		usage()
	}
	k := number(args[1])
	if k < -0x80000000 || k > 0xffffffff {
		usage()
	}
	key := int(int32(uint32(k)))
	var c *channel
	var err error
	if args[0] == "create" {
		if len(args) < 4 {
			usage()
		}
		mode := int64(0o600)
		if len(args) >= 5 {
			mode = number(args[4])
		}
		c, created, err := create(key, number(args[2]), number(args[3]), int(mode&0o777))
		if err != nil {
			os.Exit(status(err))
		}
		shmid, _ := unix.SysvShmGet(key, 0, 0)
		word := "opened"
		if created {
			word = "created"
		}
		fmt.Printf("%s %d %d\n", word, c.semid, shmid)
		return
	}
	if doCreate {
		c, _, err = create(key, slots, slotSize, 0o600)
	} else {
		c, err = open(key)
	}
	if err != nil {
		os.Exit(status(err))
	}
	if args[0] == "close" {
		if err := c.close(); err != nil {
			os.Exit(status(err))
		}
		return
	}
	if len(args) < 3 {
		usage()
	}
	count := number(args[2])
	timeoutArg := 4
	if args[0] == "consumer" {
		timeoutArg = 3
	}
	if len(args) > timeoutArg {
		seconds, err := strconv.ParseFloat(args[timeoutArg], 64)
		if err != nil {
			usage()
		}
		c.timeout = time.Duration(seconds * float64(time.Second))
	}
	switch args[0] {
	case "producer":
		if len(args) < 4 {
			usage()
		}
		size := int64(0)
		if len(args) >= 6 {
			size = number(args[5])
		}
		producer(c, count, args[3], size, inPlace, abandon)
	case "consumer":
		consumer(c, count, inPlace, hold)
	default:
		usage()
	}
}
