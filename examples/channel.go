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
// Use: channel-go producer KEY COUNT TAG [TIMEOUT] | consumer KEY COUNT [TIMEOUT] | close KEY
// (as examples/channel.c: exit 0 done, 3 closed, 4 timed out, 1 other errors).
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
	getVal    = 12
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

// wait runs a semop that may block: semtimedop on the remaining time, EINTR retried.
func (c *channel) wait(ops ...sembuf) error {
	deadline := time.Now().Add(c.timeout)
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
	atomic.StoreInt32(&h.JPid, int32(os.Getpid()))
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
	me := int32(os.Getpid())
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

// send is SEND of the header: copy data into a free slot and commit it.
func (c *channel) send(data []byte) error {
	if uint64(len(data)) > uint64(c.slotSize) {
		return fmt.Errorf("a message of %d bytes does not fit a slot of %d", len(data), c.slotSize)
	}
	deadline := time.Now().Add(c.timeout)
	h := c.h
	var s int
	for {
		if err := c.wait(sembuf{semFree, -1, semUndo}, sembuf{semMutex, -1, semUndo}); err != nil {
			return err
		}
		c.settle()
		if atomic.LoadUint32(&h.Closed) != 0 {
			c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
			return errClosed
		}
		if s = c.find(); s < 0 {
			c.reclaim()
			s = c.find()
		}
		if s >= 0 {
			break
		}
		c.final(sembuf{semFree, 1, semUndo}, sembuf{semMutex, 1, semUndo})
		if c.timeout >= 0 && time.Now().After(deadline) {
			return errTimedOut
		}
		time.Sleep(time.Millisecond)
	}
	slot := c.slot(uint32(s))
	copy(c.payload(uint32(s), uint32(len(data))), data)
	atomic.StoreUint32(&slot.Length, uint32(len(data)))
	head := atomic.LoadUint64(&h.Head)
	c.journal(jCommit, uint32(s), head)
	atomic.StoreUint32(c.order(head), uint32(s))
	atomic.StoreUint64(&h.Head, head+1)
	atomic.StoreInt32(&slot.Pid, 0)
	atomic.StoreUint32(&slot.State, stReady)
	atomic.AddUint64(&h.Sent, 1)
	c.final(sembuf{semFree, 1, semUndo}, sembuf{semFree, -1, 0}, sembuf{semReady, 1, 0},
		sembuf{semDone, 1, 0}, sembuf{semMutex, 1, semUndo})
	return nil
}

// receive is RECEIVE of the header: the next message, copied out.
func (c *channel) receive() ([]byte, error) {
	h := c.h
	if err := c.wait(sembuf{semReady, -1, semUndo}, sembuf{semMutex, -1, semUndo}); err != nil {
		return nil, err
	}
	c.settle()
	tail := atomic.LoadUint64(&h.Tail)
	if tail == atomic.LoadUint64(&h.Head) {
		c.final(sembuf{semReady, 1, semUndo}, sembuf{semMutex, 1, semUndo})
		if atomic.LoadUint32(&h.Closed) != 0 {
			return nil, errClosed
		}
		return nil, errors.New("a READY unit without a message")
	}
	s := atomic.LoadUint32(c.order(tail)) % c.slots
	slot := c.slot(s)
	n := atomic.LoadUint32(&slot.Length)
	if n > c.slotSize {
		n = c.slotSize
	}
	data := append([]byte(nil), c.payload(s, n)...)
	c.journal(jTakeFree, s, tail)
	atomic.StoreUint64(&h.Tail, tail+1)
	atomic.StoreInt32(&slot.Pid, 0)
	atomic.StoreUint32(&slot.State, stFree)
	atomic.AddUint64(&h.Received, 1)
	c.final(sembuf{semReady, 1, semUndo}, sembuf{semReady, -1, 0}, sembuf{semFree, 1, 0},
		sembuf{semDone, 1, 0}, sembuf{semMutex, 1, semUndo})
	return data, nil
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

// open: semget, shmget, shmat (x/sys/unix), then the header is checked under MUTEX.
func open(key int) (*channel, error) {
	r, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("semget: %v", errno)
	}
	c := &channel{semid: r, timeout: -1}
	if _, err := c.getval(3); err != nil {
		return nil, fmt.Errorf("not a channel's semaphore set: %v", err)
	}
	if _, err := c.getval(4); err == nil {
		return nil, errors.New("not a channel's semaphore set: more than 4 semaphores")
	}
	id, err := unix.SysvShmGet(key, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmget: %v", err)
	}
	c.mem, err = unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmat: %v", err)
	}
	if len(c.mem) < chHeaderSize {
		return nil, errors.New("not a channel: the segment is too small")
	}
	c.h = (*header)(unsafe.Pointer(&c.mem[0]))
	if err := c.wait(sembuf{semMutex, -1, semUndo}); err != nil {
		return nil, err
	}
	defer c.final(sembuf{semMutex, 1, semUndo})
	c.settle()
	h := c.h
	switch {
	case h.Magic != chMagic:
		return nil, fmt.Errorf("not a channel: magic %#x", h.Magic)
	case h.Version != chVersion:
		return nil, fmt.Errorf("channel layout version %d, this program reads %d", h.Version, chVersion)
	case h.Slots < 1 || h.Slots > chMaxSlots || h.SlotSize < 1 || h.SlotSize > 0x7fffffff ||
		h.HeaderSize != chHeaderSize || h.OrderOffset != chHeaderSize ||
		uint64(h.SlotsOffset) != round64(chHeaderSize+4*uint64(h.Slots)) ||
		uint64(h.SlotStride) != chSlotHeader+round64(uint64(h.SlotSize)) ||
		uint64(len(c.mem)) < uint64(h.SlotsOffset)+uint64(h.Slots)*uint64(h.SlotStride):
		return nil, errors.New("bad channel geometry")
	}
	c.slots, c.slotSize = h.Slots, h.SlotSize
	c.slotsOff, c.stride = uint64(h.SlotsOffset), uint64(h.SlotStride)
	return c, nil
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

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: channel-go producer KEY COUNT TAG [TIMEOUT] | consumer KEY COUNT [TIMEOUT] | close KEY")
		os.Exit(2)
	}
	key, err := strconv.ParseInt(os.Args[2], 0, 64)
	if err != nil {
		os.Exit(2)
	}
	c, err := open(int(int32(uint32(key))))
	if err != nil {
		os.Exit(status(err))
	}
	if os.Args[1] == "close" {
		if err := c.close(); err != nil {
			os.Exit(status(err))
		}
		return
	}
	if len(os.Args) < 4 {
		os.Exit(2)
	}
	count, _ := strconv.Atoi(os.Args[3])
	timeoutArg := 5
	if os.Args[1] == "consumer" {
		timeoutArg = 4
	}
	if len(os.Args) > timeoutArg {
		seconds, _ := strconv.ParseFloat(os.Args[timeoutArg], 64)
		c.timeout = time.Duration(seconds * float64(time.Second))
	}
	switch os.Args[1] {
	case "producer":
		for i := 0; i < count; i++ {
			if err := c.send([]byte(fmt.Sprintf("%s:%d", os.Args[4], i))); err != nil {
				os.Exit(status(err))
			}
		}
	case "consumer":
		out := make([]byte, 0, 1<<16)
		for i := 0; count < 0 || i < count; i++ {
			data, err := c.receive()
			if err != nil {
				os.Stdout.Write(out)
				if err == errClosed && count < 0 {
					return
				}
				os.Exit(status(err))
			}
			out = append(append(out, data...), '\n')
		}
		os.Stdout.Write(out)
	default:
		os.Exit(2)
	}
}
