/* sysvshm_channel.h - the published layout and protocol of a sysvshm Channel (version 1).
 * SPDX-License-Identifier: MIT
 * Copyright (c) 2026 The sysvshm authors
 *
 * A Channel is ONE System V shared memory segment and ONE System V semaphore set of 4, both at
 * the same key (segments and sets have separate key spaces).  Every peer (Python's
 * sysvshm.Channel, examples/channel.c, examples/channel.go) follows the steps below; nothing
 * else is needed to write another one.
 *
 * Byte order and types: every field is a fixed-width integer in the machine's NATIVE byte order
 * (all peers share one machine's memory); offsets are from the start of the segment, which
 * shmat() places page-aligned.  Every u64 is 8-byte aligned, every u32 4-byte aligned; the
 * slots and their payloads are 64-byte aligned.  All peers must be in one PID namespace (owner
 * pids are compared with kill(pid, 0)).
 *
 * ---------------------------------------------------------------------------------------------
 * SEMAPHORES (semget(key, 4)):
 *   0 MUTEX  1 = free.  Taken and given with SEM_UNDO, so a holder's death gives it back.
 *            It guards every field of the segment except a slot's payload and length while the
 *            slot is WRITING or READING (those belong to the slot's owner).
 *   1 FREE   the number of slots a producer may take.  Taken with SEM_UNDO (a producer that dies
 *            holding a slot gives the unit back; the slot is reclaimed, see RECLAIM).
 *   2 READY  the number of committed messages a consumer may take.  Taken with SEM_UNDO.
 *   3 DONE   the journal's commit flag: 0 or 1 (see JOURNAL).  Never SEM_UNDO.
 *   The creator makes the set with values {0, slots, 0, 0} (MUTEX held by the creator),
 *   performs one semop so that sem_otime != 0, initialises the segment, then releases MUTEX.
 *
 * CREATE OR OPEN (race-free: two creators at once get one channel):
 *   1. semget(key, 4, IPC_CREAT|IPC_EXCL|mode).  Success: you are the creator: SETALL
 *      {0, slots, 0, 0}; semop {0,+1,IPC_NOWAIT},{0,-1,IPC_NOWAIT} (marks sem_otime); shmget(key,
 *      size, IPC_CREAT|IPC_EXCL|mode) (EEXIST: remove your set and fail); write the header
 *      (magic last); semop {MUTEX,+1,0}.  On any failure remove both objects you created.
 *   2. EEXIST: semget(key, 0, 0); take MUTEX with a bounded wait (sysvshm: 5 s) - it is 0
 *      from semget until the creator has written the header, so this also waits for the
 *      creator; then shmget(key, 0, 0), shmat, SETTLE, check the header (below), give MUTEX back.  A creator that died before releasing MUTEX leaves a channel nobody can open:
 *      the wait times out; remove it by hand (ipcrm).
 *   Openers refuse: magic != SVSHM_CH_MAGIC, version != SVSHM_CH_VERSION, a header_size,
 *   order_offset, slots_offset or slot_stride other than the formulas below, slots or
 *   slot_size outside the limits, a segment smaller than svshm_ch_size(), a set whose nsems != 4.
 *
 * SEGMENT:  [header 128 B][order ring: u32 order[slots]][pad to 64][slot 0][slot 1]...
 *   order_offset = 128
 *   slots_offset = round_up(128 + 4 * slots, 64)
 *   slot_stride  = 64 + round_up(slot_size, 64)     (slot header 64 B, then the payload)
 *   size         = slots_offset + slots * slot_stride
 *   1 <= slots <= 4096; 1 <= slot_size <= 2^31 - 1 (and size must fit the system's SHMMAX).
 *
 * ---------------------------------------------------------------------------------------------
 * PROTOCOL.  "lock" = semop {MUTEX,-1,SEM_UNDO} then SETTLE (always, before anything else).
 *   Every wait may be a semtimedop with a timeout, and is retried on EINTR with the remaining
 *   time; a peer may first try the same operations a few times with IPC_NOWAIT (MUTEX is held
 *   for microseconds; sleeping costs a wake-up).  The semops marked "final" never block (each
 *   value is raised before it is lowered).
 *
 * SETTLE (after every lock): finishes or rolls back the previous holder's journal.
 *   if j_op == 0: done.
 *   v = semctl(DONE, GETVAL)
 *   if j_done == 0:
 *       if v == 0:  the journal's final semop never ran (its writer died before it): ROLLBACK,
 *                   j_op = 0, done.
 *       j_done = 1
 *   if v == 1: semop {DONE,-1,IPC_NOWAIT}
 *   j_op = 0
 *   ROLLBACK by j_op:  COMMIT: head = j_counter; slot[j_slot]: pid = 0, state = FREE.
 *                      TAKE, TAKE_FREE: tail = j_counter; slot[j_slot].state = READY.
 *                      CLOSE: closed = 0.
 *   Every step is idempotent: a death inside SETTLE is settled by the next holder.
 *
 * JOURNAL (before changing head or tail): j_done = 0, j_slot = s, j_counter = head (COMMIT) or
 *   tail (TAKE*), j_pid = getpid(), then j_op = the kind.  The final semop of that critical
 *   section includes {DONE,+1,0}: whoever locks next knows from DONE whether it ran.
 *
 * SEND (copy) = RESERVE + fill + COMMIT without releasing MUTEX in between:
 *   semop {FREE,-1,SEM_UNDO},{MUTEX,-1,SEM_UNDO} (one call: wait for both), SETTLE,
 *   if closed: semop {FREE,+1,SEM_UNDO},{MUTEX,+1,SEM_UNDO}, report "closed"; FIND a slot s
 *   (still FREE: a death now costs nothing), copy the payload into it, length = n, then COMMIT
 *   from JOURNAL on (its memory steps and its final semop).
 *
 * RESERVE (zero-copy send): semop {FREE,-1,SEM_UNDO},{MUTEX,-1,SEM_UNDO}; SETTLE; if closed:
 *   semop {FREE,+1,SEM_UNDO},{MUTEX,+1,SEM_UNDO}, report "closed".  FIND; slot.pid = getpid();
 *   slot.state = WRITING; semop {MUTEX,+1,SEM_UNDO}.  Fill the payload (outside the lock).
 * FIND: any slot with state FREE (sysvshm searches from the one after the slot it took last;
 *   the lowest index is as good).  None: RECLAIM, then look again.  Still none
 *   (an owner is exiting but not yet gone): give back {FREE,+1,SEM_UNDO},{MUTEX,+1,SEM_UNDO},
 *   wait ~1 ms and start again (within the timeout).
 * RECLAIM: every slot in state WRITING or READING whose pid is dead (kill(pid, 0) fails with
 *   ESRCH, or /proc/PID/stat says Z or X) gets pid = 0, state = FREE.  No semaphore changes: the
 *   kernel's SEM_UNDO already gave its FREE unit back when the owner exited.
 * COMMIT (slot s WRITING by us, length set): lock; if closed: ABANDON, report "closed".
 *   JOURNAL(COMMIT, s, head); order[head % slots] = s; head = j_counter + 1;
 *   slot.state = READY; sent += 1;
 *   final semop {FREE,+1,SEM_UNDO},{FREE,-1,0},{READY,+1,0},{DONE,+1,0},{MUTEX,+1,SEM_UNDO}
 *   (cancels our FREE undo: the unit now travels with the message as READY).
 * ABANDON (slot s WRITING by us): lock; slot.pid = 0; slot.state = FREE;
 *   final semop {FREE,+1,SEM_UNDO},{MUTEX,+1,SEM_UNDO}.
 *
 * RECEIVE (copy): semop {READY,-1,SEM_UNDO},{MUTEX,-1,SEM_UNDO}; SETTLE;
 *   if tail == head (only after close, see CLOSE): semop {READY,+1,SEM_UNDO},{MUTEX,+1,SEM_UNDO},
 *   report "closed and drained".  s = order[tail % slots] (a length over
 *   slot_size: a peer broke the protocol - give back as above, report it, leave it queued); copy
 *   length bytes out;
 *   JOURNAL(TAKE_FREE, s, tail); tail = j_counter + 1; slot.pid = 0; slot.state = FREE;
 *   received += 1;
 *   final semop {READY,+1,SEM_UNDO},{READY,-1,0},{FREE,+1,0},{DONE,+1,0},{MUTEX,+1,SEM_UNDO}.
 *   (A receiver that dies before the final semop loses nothing: ROLLBACK puts the message back.)
 * RECEIVE IN PLACE (zero-copy): as RECEIVE up to s; then JOURNAL(TAKE, s, tail);
 *   tail = j_counter + 1; slot.pid = getpid(); slot.state = READING; received += 1;
 *   final semop {READY,+1,SEM_UNDO},{READY,-1,0},{FREE,+1,0},{FREE,-1,SEM_UNDO},{DONE,+1,0},
 *   {MUTEX,+1,SEM_UNDO}  (our FREE undo now returns the slot's unit if we die reading).
 *   Read the payload.  RELEASE: lock; slot.pid = 0; slot.state = FREE;
 *   final semop {FREE,+1,SEM_UNDO},{MUTEX,+1,SEM_UNDO}.
 *
 * CLOSE (final, for every producer): lock; if closed: unlock, done.  JOURNAL(CLOSE, 0, 0);
 *   closed = 1; final semop {FREE,+SVSHM_CH_POISON,0},{READY,+SVSHM_CH_POISON,0},{DONE,+1,0},
 *   {MUTEX,+1,SEM_UNDO}.  Waiting producers
 *   wake and report "closed"; consumers take the remaining messages, then find tail == head and
 *   report "closed and drained".  A reserved slot not committed before close is abandoned.
 *
 * What a death costs: a producer, the message it was writing; a consumer in RECEIVE IN PLACE,
 * the message it was reading; a consumer in RECEIVE, nothing.  Nobody else is affected.
 * Not covered: pid reuse (a dead owner's pid taken by a new process keeps that slot until the
 * new process exits); a process stopped (SIGSTOP) while holding MUTEX stops everyone.
 */
#ifndef SYSVSHM_CHANNEL_H
#define SYSVSHM_CHANNEL_H

#include <stdint.h>
#include <stddef.h>

#define SVSHM_CH_MAGIC       0x48435653u   /* the bytes "SVCH" on a little-endian machine */
#define SVSHM_CH_VERSION     1u
#define SVSHM_CH_HEADER_SIZE 128u
#define SVSHM_CH_SLOT_HEADER 64u
#define SVSHM_CH_MAX_SLOTS   4096u
#define SVSHM_CH_POISON      16384          /* added to FREE and READY by CLOSE */
#define SVSHM_CH_NSEMS       4

enum svshm_ch_sem { SVSHM_CH_MUTEX = 0, SVSHM_CH_FREE = 1, SVSHM_CH_READY = 2, SVSHM_CH_DONE = 3 };
enum svshm_ch_state { SVSHM_CH_SLOT_FREE = 0, SVSHM_CH_SLOT_WRITING = 1, SVSHM_CH_SLOT_READY = 2,
                      SVSHM_CH_SLOT_READING = 3 };
enum svshm_ch_jop { SVSHM_CH_J_NONE = 0, SVSHM_CH_J_COMMIT = 1, SVSHM_CH_J_TAKE = 2,
                    SVSHM_CH_J_TAKE_FREE = 3, SVSHM_CH_J_CLOSE = 4 };

struct svshm_ch_header {            /* at offset 0; 128 bytes */
    uint32_t magic;                 /*   0  SVSHM_CH_MAGIC, written last by the creator */
    uint32_t version;               /*   4  SVSHM_CH_VERSION */
    uint32_t header_size;           /*   8  128 */
    uint32_t slots;                 /*  12  number of slots */
    uint32_t slot_size;             /*  16  payload capacity of a slot, bytes */
    uint32_t slot_stride;           /*  20  64 + round_up(slot_size, 64) */
    uint32_t order_offset;          /*  24  128 */
    uint32_t slots_offset;          /*  28  round_up(128 + 4 * slots, 64) */
    uint64_t head;                  /*  32  messages ever committed (order[head % slots] next) */
    uint64_t tail;                  /*  40  messages ever taken */
    uint32_t closed;                /*  48  1 once CLOSE ran */
    uint32_t j_op;                  /*  52  enum svshm_ch_jop: the journal, see SETTLE */
    uint32_t j_done;                /*  56  */
    uint32_t j_slot;                /*  60  */
    uint64_t j_counter;             /*  64  head or tail before the journaled change */
    int32_t  j_pid;                 /*  72  the journal's writer (informational) */
    uint32_t reserved0;             /*  76  */
    uint64_t sent;                  /*  80  statistics: messages committed */
    uint64_t received;              /*  88  statistics: messages taken */
    uint64_t reclaimed;             /*  96  statistics: slots reclaimed from dead owners */
    uint8_t  reserved[24];          /* 104  zero */
};

struct svshm_ch_slot {              /* at slots_offset + i * slot_stride; payload follows at +64 */
    uint32_t state;                 /*   0  enum svshm_ch_state */
    int32_t  pid;                   /*   4  owner while WRITING / READING, else 0 */
    uint32_t length;                /*   8  payload bytes of the message */
    uint32_t reserved[13];          /*  12  zero */
};

_Static_assert(sizeof(struct svshm_ch_header) == 128, "header is 128 bytes");
_Static_assert(offsetof(struct svshm_ch_header, j_counter) == 64, "j_counter at 64");
_Static_assert(offsetof(struct svshm_ch_header, sent) == 80, "sent at 80");
_Static_assert(sizeof(struct svshm_ch_slot) == 64, "slot header is 64 bytes");

static inline uint64_t svshm_ch_round64(uint64_t n) { return (n + 63u) & ~(uint64_t)63u; }
static inline uint64_t svshm_ch_slots_offset(uint32_t slots)
{ return svshm_ch_round64(SVSHM_CH_HEADER_SIZE + 4u * (uint64_t)slots); }
static inline uint64_t svshm_ch_stride(uint32_t slot_size)
{ return SVSHM_CH_SLOT_HEADER + svshm_ch_round64(slot_size); }
static inline uint64_t svshm_ch_size(uint32_t slots, uint32_t slot_size)
{ return svshm_ch_slots_offset(slots) + (uint64_t)slots * svshm_ch_stride(slot_size); }

#endif
