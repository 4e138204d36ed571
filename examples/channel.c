/* channel.c - a C peer of sysvshm.Channel, following examples/sysvshm_channel.h step by step.
 * SPDX-License-Identifier: MIT
 * Copyright (c) 2026 The sysvshm authors
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -o channel channel.c
 * Use:   channel [OPTIONS] producer KEY COUNT TAG [TIMEOUT [SIZE]]
 *                              sends "TAG:0" ... "TAG:COUNT-1" (padded with zero bytes to SIZE
 *                              bytes)
 *        channel [OPTIONS] consumer KEY COUNT [TIMEOUT]
 *                              receives COUNT messages (COUNT -1: until the channel is closed
 *                              and drained), one per line
 *        channel close KEY
 *        channel create KEY SLOTS SLOT_SIZE [MODE]
 *                              creates the channel, or opens it if it exists (race-free: two
 *                              creators at once get one channel); prints "created SEMID SHMID"
 *                              or "opened SEMID SHMID"
 * OPTIONS:
 *   --create SLOTS SLOT_SIZE   create the channel if it does not exist (as "create", mode 0600)
 *   --in-place                 zero-copy: the producer fills a RESERVEd slot in place and COMMITs
 *                              it; the consumer RECEIVEs IN PLACE, writes the slot's bytes out,
 *                              then RELEASEs it
 *   --hold N                   (consumer, with --in-place) after taking message N (0 = the first)
 *                              in place, print it and a line "holding", then wait forever
 *                              without RELEASE (for tests that kill a reader)
 *   --abandon K                (producer, with --in-place) before every Kth message, also
 *                              RESERVE a slot, fill it with "ABANDONED" and ABANDON it
 * KEY is a number (0x... for hex).  Without --create the channel must exist.
 * Exit status: 0 done, 3 the channel was closed, 4 timed out, 1 any other error, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sysvshm_channel.h"

#define CLOSED (-3)
#define TIMEDOUT (-4)

struct channel {
    int semid;
    unsigned char *base;
    volatile struct svshm_ch_header *h;
    volatile uint32_t *order;
    uint32_t slots, slot_size;
    uint64_t slots_offset, stride;
    double timeout;                 /* seconds; < 0: forever */
    pid_t pid;                      /* getpid(), once (it is a system call each time) */
};

static volatile struct svshm_ch_slot *slot_at(struct channel *c, uint32_t i)
{
    return (volatile struct svshm_ch_slot *)(c->base + c->slots_offset + i * c->stride);
}

static unsigned char *payload_at(struct channel *c, uint32_t i)
{
    return c->base + c->slots_offset + i * c->stride + SVSHM_CH_SLOT_HEADER;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

#ifndef SPIN_US
#define SPIN_US 100     /* how long a wait spins before sleeping in the kernel (microseconds) */
#endif

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

enum wait_for { FOR_MUTEX, FOR_FREE, FOR_READY };

/* Could a wait for `what` succeed now?  A hint read from the header without the lock (the
 * semaphores decide): a consumer needs a committed message, a producer a slot not holding one. */
static int maybe(struct channel *c, enum wait_for what)
{
    uint64_t pending;
    if (what == FOR_MUTEX || c->h->closed)
        return 1;
    pending = c->h->head - c->h->tail;
    return what == FOR_READY ? pending != 0 : pending < c->slots;
}

/* A semop that may wait: semtimedop on the remaining time, EINTR retried. 0, TIMEDOUT or -1.
 * First it spins for up to SPIN_US: MUTEX is held for microseconds and a message is often
 * microseconds away, while sleeping costs a wake-up (tens of microseconds on a virtual
 * machine).  The spin tries the semop (IPC_NOWAIT) only when the header says it may succeed,
 * and backs off between tries: a failed try takes the set's lock, which the holder needs to
 * give MUTEX back (test-and-test-and-set). */
static int wait_ops(struct channel *c, struct sembuf *ops, size_t n, enum wait_for what)
{
    double start = now(), deadline = start + c->timeout;
    struct sembuf tries[4];
    size_t i;
    unsigned backoff = 1, k;
    if (n <= 4 && c->timeout != 0) {
        for (i = 0; i < n; i++) {
            tries[i] = ops[i];
            tries[i].sem_flg |= IPC_NOWAIT;
        }
        for (;;) {
            if (maybe(c, what)) {
                if (semop(c->semid, tries, n) == 0)
                    return 0;
                if (errno != EAGAIN)
                    break;                  /* the blocking call below reports it */
                if (backoff < 256)
                    backoff *= 2;
            }
            for (k = 0; k < backoff; k++)
                relax();
            if (now() - start >= SPIN_US / 1e6)
                break;
        }
    }
    for (;;) {
        int rc;
        if (c->timeout < 0) {
            rc = semop(c->semid, ops, n);
        } else {
            double left = deadline - now();
            struct timespec t;
            if (left < 0)
                left = 0;
            t.tv_sec = (time_t)left;
            t.tv_nsec = (long)((left - (double)t.tv_sec) * 1e9);
            rc = semtimedop(c->semid, ops, n, &t);
        }
        if (rc == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return TIMEDOUT;
        perror("semop");
        return -1;
    }
}

/* The protocol's "final" semops never block. */
static void final_ops(struct channel *c, struct sembuf *ops, size_t n)
{
    if (semop(c->semid, ops, n) != 0) {
        perror("semop (final)");
        exit(1);
    }
}

#define OPS(...) ((struct sembuf[]){__VA_ARGS__}), (sizeof((struct sembuf[]){__VA_ARGS__}) / sizeof(struct sembuf))
#define U SEM_UNDO

static void rollback(struct channel *c)
{
    volatile struct svshm_ch_header *h = c->h;
    volatile struct svshm_ch_slot *s = slot_at(c, h->j_slot % c->slots);
    switch (h->j_op) {
    case SVSHM_CH_J_COMMIT: h->head = h->j_counter; s->pid = 0; s->state = SVSHM_CH_SLOT_FREE; break;
    case SVSHM_CH_J_TAKE:
    case SVSHM_CH_J_TAKE_FREE: h->tail = h->j_counter; s->state = SVSHM_CH_SLOT_READY; break;
    case SVSHM_CH_J_CLOSE: h->closed = 0; break;
    }
}

static void settle(struct channel *c)
{
    volatile struct svshm_ch_header *h = c->h;
    int v;
    if (h->j_op == SVSHM_CH_J_NONE)
        return;
    v = semctl(c->semid, SVSHM_CH_DONE, GETVAL);
    if (v < 0) {
        perror("semctl(GETVAL)");
        exit(1);
    }
    if (!h->j_done) {
        if (v == 0) {
            rollback(c);
            h->j_op = SVSHM_CH_J_NONE;
            return;
        }
        h->j_done = 1;
    }
    if (v)
        final_ops(c, OPS({SVSHM_CH_DONE, -1, IPC_NOWAIT}));
    h->j_op = SVSHM_CH_J_NONE;
}

static void journal(struct channel *c, uint32_t op, uint32_t slot, uint64_t counter)
{
    c->h->j_done = 0;
    c->h->j_slot = slot;
    c->h->j_counter = counter;
    c->h->j_pid = c->pid;
    c->h->j_op = op;
}

static int alive(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *paren;
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return errno != ENOENT;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    paren = strrchr(buf, ')');
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

static int find_slot(struct channel *c)
{
    uint32_t i;
    for (i = 0; i < c->slots; i++)
        if (slot_at(c, i)->state == SVSHM_CH_SLOT_FREE)
            return (int)i;
    return -1;
}

static void reclaim(struct channel *c)
{
    uint32_t i;
    for (i = 0; i < c->slots; i++) {
        volatile struct svshm_ch_slot *s = slot_at(c, i);
        if ((s->state == SVSHM_CH_SLOT_WRITING || s->state == SVSHM_CH_SLOT_READING)
                && s->pid != c->pid && !alive(s->pid)) {
            s->pid = 0;
            s->state = SVSHM_CH_SLOT_FREE;
            c->h->reclaimed++;
        }
    }
}

/* The common start of SEND and RESERVE: a FREE unit and MUTEX taken, SETTLEd, a FREE slot
 * found (RECLAIM if needed).  The slot's index with MUTEX held, or CLOSED, TIMEDOUT, -1. */
static int producer_slot(struct channel *c)
{
    double deadline = now() + c->timeout;
    int s, rc;
    for (;;) {
        rc = wait_ops(c, OPS({SVSHM_CH_FREE, -1, U}, {SVSHM_CH_MUTEX, -1, U}), FOR_FREE);
        if (rc)
            return rc;
        settle(c);
        if (c->h->closed) {
            final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
            return CLOSED;
        }
        s = find_slot(c);
        if (s < 0) {
            reclaim(c);
            s = find_slot(c);
        }
        if (s >= 0)
            return s;
        final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        if (c->timeout >= 0 && now() >= deadline)
            return TIMEDOUT;
        usleep(1000);
    }
}

/* COMMIT from JOURNAL on, MUTEX held, slot s's payload and length written. */
static void commit_locked(struct channel *c, uint32_t s)
{
    volatile struct svshm_ch_header *h = c->h;
    uint64_t head = h->head;
    journal(c, SVSHM_CH_J_COMMIT, s, head);
    c->order[head % c->slots] = s;
    h->head = head + 1;
    slot_at(c, s)->pid = 0;
    slot_at(c, s)->state = SVSHM_CH_SLOT_READY;
    h->sent++;
    final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_FREE, -1, 0}, {SVSHM_CH_READY, 1, 0},
                     {SVSHM_CH_DONE, 1, 0}, {SVSHM_CH_MUTEX, 1, U}));
}

static int too_long(struct channel *c, uint32_t n)
{
    if (n <= c->slot_size)
        return 0;
    fprintf(stderr, "message of %u bytes does not fit a slot of %u\n", n, c->slot_size);
    return 1;
}

/* SEND: 0, CLOSED, TIMEDOUT or -1. */
static int send_message(struct channel *c, const void *data, uint32_t n)
{
    int s;
    if (too_long(c, n))
        return -1;
    s = producer_slot(c);
    if (s < 0)
        return s;
    memcpy(payload_at(c, (uint32_t)s), data, n);
    slot_at(c, (uint32_t)s)->length = n;
    commit_locked(c, (uint32_t)s);
    return 0;
}

/* "lock": MUTEX (SEM_UNDO), then SETTLE.  Held for microseconds by anyone alive, and given
 * back by the kernel for anyone dead: no timeout. */
static void lock(struct channel *c)
{
    double timeout = c->timeout;
    c->timeout = -1;
    if (wait_ops(c, OPS({SVSHM_CH_MUTEX, -1, U}), FOR_MUTEX) != 0)
        exit(1);
    c->timeout = timeout;
    settle(c);
}

/* RESERVE: the slot's index (WRITING by us, MUTEX given back; fill payload_at() in place, then
 * commit_slot() or abandon_slot()), or CLOSED, TIMEDOUT, -1. */
static int reserve_slot(struct channel *c)
{
    int s = producer_slot(c);
    if (s < 0)
        return s;
    slot_at(c, (uint32_t)s)->pid = c->pid;
    slot_at(c, (uint32_t)s)->state = SVSHM_CH_SLOT_WRITING;
    final_ops(c, OPS({SVSHM_CH_MUTEX, 1, U}));
    return s;
}

/* ABANDON a reserved slot. */
static void abandon_slot(struct channel *c, uint32_t s)
{
    lock(c);
    slot_at(c, s)->pid = 0;
    slot_at(c, s)->state = SVSHM_CH_SLOT_FREE;
    final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
}

/* COMMIT a reserved slot as a message of n bytes: 0, or CLOSED (the slot is abandoned). */
static int commit_slot(struct channel *c, uint32_t s, uint32_t n)
{
    lock(c);
    if (c->h->closed) {
        slot_at(c, s)->pid = 0;
        slot_at(c, s)->state = SVSHM_CH_SLOT_FREE;
        final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        return CLOSED;
    }
    slot_at(c, s)->length = n;
    commit_locked(c, s);
    return 0;
}

/* The common start of RECEIVE and RECEIVE IN PLACE: a READY unit and MUTEX taken, SETTLEd;
 * the next message's slot with MUTEX held, or CLOSED, TIMEDOUT, -1. */
static long consumer_slot(struct channel *c)
{
    volatile struct svshm_ch_header *h = c->h;
    uint32_t s;
    int rc = wait_ops(c, OPS({SVSHM_CH_READY, -1, U}, {SVSHM_CH_MUTEX, -1, U}), FOR_READY);
    if (rc)
        return rc;
    settle(c);
    if (h->tail == h->head) {
        final_ops(c, OPS({SVSHM_CH_READY, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        if (h->closed)
            return CLOSED;
        fprintf(stderr, "a READY unit without a message (a peer broke the protocol)\n");
        return -1;
    }
    s = c->order[h->tail % c->slots] % c->slots;
    if (slot_at(c, s)->length > c->slot_size) {
        final_ops(c, OPS({SVSHM_CH_READY, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        fprintf(stderr, "the next message's length (%u) is over slot_size (%u): a peer broke "
                "the protocol; it stays queued\n", (unsigned)slot_at(c, s)->length,
                c->slot_size);
        return -1;
    }
    return (long)s;
}

/* RECEIVE (copy): the length, CLOSED, TIMEDOUT or -1. */
static long receive_message(struct channel *c, void *buf, uint32_t cap)
{
    volatile struct svshm_ch_header *h = c->h;
    uint32_t s, n;
    uint64_t tail;
    long rc = consumer_slot(c);
    if (rc < 0)
        return rc;
    s = (uint32_t)rc;
    tail = h->tail;
    n = slot_at(c, s)->length;
    if (n > cap) {
        final_ops(c, OPS({SVSHM_CH_READY, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        fprintf(stderr, "message of %u bytes is longer than the buffer\n", n);
        return -1;
    }
    memcpy(buf, payload_at(c, s), n);
    journal(c, SVSHM_CH_J_TAKE_FREE, s, tail);
    h->tail = tail + 1;
    slot_at(c, s)->pid = 0;
    slot_at(c, s)->state = SVSHM_CH_SLOT_FREE;
    h->received++;
    final_ops(c, OPS({SVSHM_CH_READY, 1, U}, {SVSHM_CH_READY, -1, 0}, {SVSHM_CH_FREE, 1, 0},
                     {SVSHM_CH_DONE, 1, 0}, {SVSHM_CH_MUTEX, 1, U}));
    return (long)n;
}

/* RECEIVE IN PLACE: the slot's index (READING by us; *length bytes at payload_at(), until
 * release_slot()), or CLOSED, TIMEDOUT, -1. */
static long receive_in_place(struct channel *c, uint32_t *length)
{
    volatile struct svshm_ch_header *h = c->h;
    uint32_t s, n;
    uint64_t tail;
    long rc = consumer_slot(c);
    if (rc < 0)
        return rc;
    s = (uint32_t)rc;
    tail = h->tail;
    n = slot_at(c, s)->length;
    journal(c, SVSHM_CH_J_TAKE, s, tail);
    h->tail = tail + 1;
    slot_at(c, s)->pid = c->pid;
    slot_at(c, s)->state = SVSHM_CH_SLOT_READING;
    h->received++;
    final_ops(c, OPS({SVSHM_CH_READY, 1, U}, {SVSHM_CH_READY, -1, 0}, {SVSHM_CH_FREE, 1, 0},
                     {SVSHM_CH_FREE, -1, U}, {SVSHM_CH_DONE, 1, 0}, {SVSHM_CH_MUTEX, 1, U}));
    *length = n > c->slot_size ? c->slot_size : n;
    return (long)s;
}

/* RELEASE a slot received in place. */
static void release_slot(struct channel *c, uint32_t s)
{
    lock(c);
    slot_at(c, s)->pid = 0;
    slot_at(c, s)->state = SVSHM_CH_SLOT_FREE;
    final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
}

static int close_channel(struct channel *c)
{
    int rc = wait_ops(c, OPS({SVSHM_CH_MUTEX, -1, U}), FOR_MUTEX);
    if (rc)
        return rc;
    settle(c);
    if (c->h->closed) {
        final_ops(c, OPS({SVSHM_CH_MUTEX, 1, U}));
        return 0;
    }
    journal(c, SVSHM_CH_J_CLOSE, 0, 0);
    c->h->closed = 1;
    final_ops(c, OPS({SVSHM_CH_FREE, SVSHM_CH_POISON, 0}, {SVSHM_CH_READY, SVSHM_CH_POISON, 0},
                     {SVSHM_CH_DONE, 1, 0}, {SVSHM_CH_MUTEX, 1, U}));
    return 0;
}

/* Map `size` bytes at `address` (page-aligned) now, in one system call, rather than one page
 * fault per page while messages flow (a fault costs microseconds on a virtual machine, and a
 * 1 MiB message touches 256 pages in each process).  Only a hint: errors are ignored. */
static void prefault(void *address, size_t size, int write)
{
#ifdef MADV_POPULATE_WRITE
    (void)madvise(address, size, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
#else
    (void)address;
    (void)size;
    (void)write;
#endif
}

#define PREFAULT_MAX ((size_t)256 << 20)    /* segments up to this size are mapped at once */

/* A page-aligned buffer of `size` bytes (zeroed if asked), mapped at once when it is not
 * huge; NULL if out of memory. */
static void *buffer(size_t size, int zeroed)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size ? size : 1) != 0)
        return NULL;
    if (size <= PREFAULT_MAX)
        prefault(p, size, 1);
    if (zeroed)
        memset(p, 0, size);
    return p;
}

/* The header check of an opener (MUTEX held): 0, or -1 with the reason printed. */
static int check_header(struct channel *c, size_t segsz)
{
    volatile struct svshm_ch_header *h = c->h;
    if (segsz < SVSHM_CH_HEADER_SIZE || h->magic != SVSHM_CH_MAGIC)
        fprintf(stderr, "not a channel (magic)\n");
    else if (h->version != SVSHM_CH_VERSION)
        fprintf(stderr, "channel layout version %u, this program reads %u\n", h->version,
                SVSHM_CH_VERSION);
    else if (h->slots < 1 || h->slots > SVSHM_CH_MAX_SLOTS || h->slot_size < 1
             || h->slot_size > 0x7fffffffu || h->header_size != SVSHM_CH_HEADER_SIZE
             || h->order_offset != SVSHM_CH_HEADER_SIZE
             || h->slots_offset != svshm_ch_slots_offset(h->slots)
             || h->slot_stride != svshm_ch_stride(h->slot_size)
             || segsz < svshm_ch_size(h->slots, h->slot_size))
        fprintf(stderr, "bad channel geometry\n");
    else
        return 0;
    return -1;
}

static void bind_geometry(struct channel *c)
{
    c->slots = c->h->slots;
    c->slot_size = c->h->slot_size;
    c->slots_offset = c->h->slots_offset;
    c->stride = c->h->slot_stride;
    c->order = (volatile uint32_t *)(c->base + SVSHM_CH_HEADER_SIZE);
}

/* OPEN (c->semid set): shmget, shmat, then the header is checked under MUTEX, which is 0
 * until the creator has written the header: a bounded wait (5 s, as sysvshm's). */
static int open_segment(struct channel *c, key_t key)
{
    struct semid_ds ds;
    struct shmid_ds sds;
    union { int val; struct semid_ds *buf; } arg;
    int shmid, rc;
    void *base;
    double timeout = c->timeout;
    arg.buf = &ds;
    if (semctl(c->semid, 0, IPC_STAT, arg) != 0 || ds.sem_nsems != SVSHM_CH_NSEMS) {
        fprintf(stderr, "not a channel's semaphore set\n");
        return -1;
    }
    c->timeout = 5.0;
    rc = wait_ops(c, OPS({SVSHM_CH_MUTEX, -1, U}), FOR_MUTEX);
    c->timeout = timeout;
    if (rc) {
        if (rc == TIMEDOUT)
            fprintf(stderr, "the channel's creator did not finish initialising it (died?); "
                            "remove it with ipcrm\n");
        return -1;
    }
    rc = -1;
    shmid = shmget(key, 0, 0);
    if (shmid < 0 || shmctl(shmid, IPC_STAT, &sds) != 0) {
        perror("shmget");
    } else if ((base = shmat(shmid, NULL, 0)) == (void *)-1) {
        perror("shmat");
    } else {
        c->base = base;
        c->h = base;
        settle(c);
        rc = check_header(c, sds.shm_segsz);
        if (rc == 0) {
            bind_geometry(c);
            if (sds.shm_segsz <= PREFAULT_MAX)
                prefault(base, sds.shm_segsz, 1);
        }
    }
    final_ops(c, OPS({SVSHM_CH_MUTEX, 1, U}));
    return rc;
}

static int open_channel(struct channel *c, key_t key)
{
    c->semid = semget(key, 0, 0);
    if (c->semid < 0) {
        perror("semget");
        return -1;
    }
    return open_segment(c, key);
}

/* CREATE OR OPEN (step 1 and 2 of the header): 1 created, 0 opened (with the same geometry),
 * -1 failed (with nothing left behind that this call created). */
static int create_channel(struct channel *c, key_t key, long slots, long slot_size, int mode)
{
    unsigned short values[SVSHM_CH_NSEMS] = {0, 0, 0, 0};
    union { int val; unsigned short *array; } arg;
    int shmid = -1, tries;
    uint64_t size;
    void *base;
    volatile struct svshm_ch_header *h;
    if (slots < 1 || slots > (long)SVSHM_CH_MAX_SLOTS || slot_size < 1 || slot_size > 0x7fffffffL) {
        fprintf(stderr, "slots must be 1..%u and slot_size 1..%ld\n", SVSHM_CH_MAX_SLOTS,
                0x7fffffffL);
        return -1;
    }
    if (key == IPC_PRIVATE) {
        fprintf(stderr, "a channel needs a key (IPC_PRIVATE objects cannot be opened by another "
                        "program)\n");
        return -1;
    }
    size = svshm_ch_size((uint32_t)slots, (uint32_t)slot_size);
    for (tries = 0; ; tries++) {
        c->semid = semget(key, SVSHM_CH_NSEMS, IPC_CREAT | IPC_EXCL | mode);
        if (c->semid >= 0)
            break;
        if (errno != EEXIST) {
            perror("semget(IPC_CREAT|IPC_EXCL)");
            return -1;
        }
        c->semid = semget(key, 0, 0);           /* 2. EEXIST: open it */
        if (c->semid >= 0) {
            if (open_segment(c, key) != 0)
                return -1;
            if (c->slots != (uint32_t)slots || c->slot_size != (uint32_t)slot_size) {
                fprintf(stderr, "the channel has %u slots of %u bytes, not %ld of %ld\n",
                        c->slots, c->slot_size, slots, slot_size);
                return -1;
            }
            return 0;
        }
        if (errno != ENOENT || tries >= 100) {  /* ENOENT: removed between the two semgets */
            perror("semget");
            return -1;
        }
    }
    /* 1. We are the creator: MUTEX 0 (held) until the header is written. */
    values[SVSHM_CH_FREE] = (unsigned short)slots;
    arg.array = values;
    if (semctl(c->semid, 0, SETALL, arg) != 0) {
        perror("semctl(SETALL)");
        goto fail;
    }
    if (semop(c->semid, OPS({SVSHM_CH_MUTEX, 1, IPC_NOWAIT}, {SVSHM_CH_MUTEX, -1, IPC_NOWAIT}))
            != 0) {
        perror("semop (sem_otime)");
        goto fail;
    }
    if (size > (size_t)-1) {
        fprintf(stderr, "a channel of %llu bytes does not fit this address space\n",
                (unsigned long long)size);
        goto fail;
    }
    shmid = shmget(key, (size_t)size, IPC_CREAT | IPC_EXCL | mode);
    if (shmid < 0) {
        perror(errno == EEXIST ? "shmget: a segment exists at this key but no channel "
                                 "semaphore set" : "shmget(IPC_CREAT|IPC_EXCL)");
        goto fail;
    }
    base = shmat(shmid, NULL, 0);
    if (base == (void *)-1) {
        perror("shmat");
        goto fail;
    }
    c->base = base;
    c->h = h = base;                           /* a new segment is zero-filled */
    h->version = SVSHM_CH_VERSION;
    h->header_size = SVSHM_CH_HEADER_SIZE;
    h->slots = (uint32_t)slots;
    h->slot_size = (uint32_t)slot_size;
    h->slot_stride = (uint32_t)svshm_ch_stride((uint32_t)slot_size);
    h->order_offset = SVSHM_CH_HEADER_SIZE;
    h->slots_offset = (uint32_t)svshm_ch_slots_offset((uint32_t)slots);
    __atomic_store_n(&h->magic, SVSHM_CH_MAGIC, __ATOMIC_RELEASE);     /* magic last */
    bind_geometry(c);
    if (size <= PREFAULT_MAX)
        prefault(base, (size_t)size, 1);
    if (semop(c->semid, OPS({SVSHM_CH_MUTEX, 1, 0})) != 0) {
        perror("semop (release MUTEX)");
        goto fail;
    }
    return 1;
fail:
    if (shmid >= 0)
        shmctl(shmid, IPC_RMID, NULL);
    semctl(c->semid, 0, IPC_RMID);
    return -1;
}

static int status(int rc)
{
    return rc == CLOSED ? 3 : rc == TIMEDOUT ? 4 : 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: channel [--create SLOTS SLOT_SIZE] [--in-place] [--abandon K] "
                    "producer KEY COUNT TAG [TIMEOUT [SIZE]]\n"
                    "       channel [--create SLOTS SLOT_SIZE] [--in-place] [--hold N] "
                    "consumer KEY COUNT [TIMEOUT]\n"
                    "       channel close KEY\n"
                    "       channel create KEY SLOTS SLOT_SIZE [MODE]\n");
    return 2;
}

static int number(const char *text, long *value)
{
    char *end;
    errno = 0;
    *value = strtol(text, &end, 0);
    return errno == 0 && end != text && *end == 0;
}

static int producer(struct channel *c, long count, const char *tag, long size, int in_place,
                    long abandon)
{
    char *text = buffer((size_t)(size > 256 ? size : 256), 1);
    long i;
    if (!text)
        return 1;
    for (i = 0; i < count; i++) {
        int n = snprintf(text, 256, "%s:%ld", tag, i), rc;
        uint32_t length = size > 0 ? (uint32_t)size : (uint32_t)n;
        if (!in_place) {
            rc = send_message(c, text, length);
        } else if (too_long(c, length)) {
            rc = -1;
        } else {                            /* RESERVE, fill in place, COMMIT */
            if (abandon > 0 && i % abandon == 0) {
                rc = reserve_slot(c);
                if (rc < 0)
                    return status(rc);
                memcpy(payload_at(c, (uint32_t)rc), "ABANDONED",
                       9 < c->slot_size ? 9 : c->slot_size);
                abandon_slot(c, (uint32_t)rc);
            }
            rc = reserve_slot(c);
            if (rc >= 0) {
                unsigned char *out = payload_at(c, (uint32_t)rc);
                memset(out, 0, length);
                memcpy(out, text, (size_t)n < length ? (size_t)n : length);
                rc = commit_slot(c, (uint32_t)rc, length);
            }
        }
        if (rc)
            return status(rc);
    }
    return 0;
}

static int consumer(struct channel *c, long count, int in_place, long hold)
{
    unsigned char *buf = in_place ? NULL : buffer((size_t)c->slot_size + 1, 0);
    long i;
    if (!in_place && !buf)
        return 1;
    for (i = 0; count < 0 || i < count; i++) {
        uint32_t length = 0;
        long n = in_place ? receive_in_place(c, &length) : receive_message(c, buf, c->slot_size);
        if (n < 0) {
            fflush(stdout);
            return (n == CLOSED && count < 0) ? 0 : status((int)n);
        }
        if (!in_place) {
            fwrite(buf, 1, (size_t)n, stdout);
            fputc('\n', stdout);
            continue;
        }
        fwrite(payload_at(c, (uint32_t)n), 1, length, stdout);       /* read in place */
        fputc('\n', stdout);
        if (i == hold) {                    /* a test kills us here, holding the slot */
            fputs("holding\n", stdout);
            fflush(stdout);
            for (;;)
                pause();
        }
        release_slot(c, (uint32_t)n);
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    struct channel c;
    long count, slots = 0, slot_size = 0, hold = -1, abandon = 0, mode = 0600, size = 0;
    int in_place = 0, create = 0, a = 1, rc;
    key_t key;
    memset(&c, 0, sizeof c);
    c.timeout = -1;
    c.pid = getpid();
    while (a < argc && strncmp(argv[a], "--", 2) == 0) {
        if (strcmp(argv[a], "--create") == 0 && a + 2 < argc && number(argv[a + 1], &slots)
                && number(argv[a + 2], &slot_size)) {
            create = 1;
            a += 3;
        } else if (strcmp(argv[a], "--in-place") == 0) {
            in_place = 1;
            a += 1;
        } else if (strcmp(argv[a], "--hold") == 0 && a + 1 < argc && number(argv[a + 1], &hold)) {
            a += 2;
        } else if (strcmp(argv[a], "--abandon") == 0 && a + 1 < argc
                   && number(argv[a + 1], &abandon)) {
            a += 2;
        } else {
            return usage();
        }
    }
    if (argc - a < 2 || ((hold >= 0 || abandon > 0) && !in_place))
        return usage();
    {
        long long k;
        char *end;
        errno = 0;
        k = strtoll(argv[a + 1], &end, 0);
        if (errno || end == argv[a + 1] || *end || k < -0x80000000LL || k > 0xffffffffLL) {
            fprintf(stderr, "bad key %s\n", argv[a + 1]);
            return 2;
        }
        key = (key_t)(int32_t)(uint32_t)k;
    }
    if (strcmp(argv[a], "create") == 0) {
        if (argc - a < 4 || !number(argv[a + 2], &slots) || !number(argv[a + 3], &slot_size)
                || (argc - a >= 5 && !number(argv[a + 4], &mode)))
            return usage();
        rc = create_channel(&c, key, slots, slot_size, (int)(mode & 0777));
        if (rc < 0)
            return 1;
        printf("%s %d %d\n", rc ? "created" : "opened", c.semid, shmget(key, 0, 0));
        return 0;
    }
    if (create ? create_channel(&c, key, slots, slot_size, 0600) < 0 : open_channel(&c, key) != 0)
        return 1;
    if (strcmp(argv[a], "close") == 0)
        return close_channel(&c) ? 1 : 0;
    if (argc - a < 3 || !number(argv[a + 2], &count))
        return usage();
    if (strcmp(argv[a], "producer") == 0 && argc - a >= 4) {
        if (argc - a >= 5)
            c.timeout = atof(argv[a + 4]);
        if (argc - a >= 6 && (!number(argv[a + 5], &size) || size < 0 || size > 0x7fffffffL))
            return usage();
        return producer(&c, count, argv[a + 3], size, in_place, abandon);
    }
    if (strcmp(argv[a], "consumer") == 0) {
        if (argc - a >= 4)
            c.timeout = atof(argv[a + 3]);
        return consumer(&c, count, in_place, hold);
    }
    fprintf(stderr, "unknown mode %s\n", argv[a]);
    return usage();
}
