// Program B of the README's first example, in Go: opens program A's segment and semaphore set
// by key, takes A's lock, reads and updates the struct in place, and tells A it is done.
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o counter_b examples/counter_b.go
//
// golang.org/x/sys/unix has the shared memory calls (SysvShmGet, SysvShmAttach, SysvShmDetach)
// but no semaphore functions, so semget and semop are made as raw system calls.
// (Debian: apt-get install golang-go golang-golang-x-sys-dev.)
package main

import (
	"bytes"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// counter is struct counter of examples/counter.c.
type counter struct {
	Magic uint32
	Count int32
	Note  [24]byte
}

// sembuf is struct sembuf of <sys/sem.h>.
type sembuf struct {
	Num uint16
	Op  int16
	Flg int16
}

const key = 0x5eed // the key program A used
const semUndo = 0x1000

func semop(semid int, op sembuf) error {
	_, _, errno := unix.Syscall(unix.SYS_SEMOP, uintptr(semid), uintptr(unsafe.Pointer(&op)), 1)
	if errno != 0 {
		return errno
	}
	return nil
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	shmid, err := unix.SysvShmGet(key, 0, 0) // open A's segment by key (size 0: as it is)
	if err != nil {
		fail("shmget", err)
	}
	data, err := unix.SysvShmAttach(shmid, 0, 0)
	if err != nil {
		fail("shmat", err)
	}
	defer unix.SysvShmDetach(data)
	semid, _, errno := unix.Syscall(unix.SYS_SEMGET, key, 0, 0) // open A's semaphore set
	if errno != 0 {
		fail("semget", errno)
	}

	c := (*counter)(unsafe.Pointer(&data[0]))                         // the struct, in place
	if err := semop(int(semid), sembuf{0, -1, semUndo}); err != nil { // A's lock
		fail("lock", err)
	}
	note := c.Note[:]
	if end := bytes.IndexByte(note, 0); end >= 0 { // a C string ends at its NUL
		note = note[:end]
	}
	fmt.Printf("B: A left count %d, note '%s'\n", c.Count, note)
	c.Count++
	c.Note = [24]byte{}
	copy(c.Note[:], "written by B")
	if err := semop(int(semid), sembuf{0, 1, semUndo}); err != nil { // unlock
		fail("unlock", err)
	}
	if err := semop(int(semid), sembuf{1, 1, 0}); err != nil { // tell A that B is done
		fail("release", err)
	}
}
