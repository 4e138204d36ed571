/* channel.c - a C peer of sysvshm.Channel, following examples/sysvshm_channel.h step by step.
 * SPDX-License-Identifier: MIT
 * Copyright (c) 2026 The sysvshm authors
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -o channel channel.c
 * Use:   channel producer KEY COUNT TAG [TIMEOUT [SIZE]]  sends "TAG:0" ... "TAG:COUNT-1"
 *                                                  (padded with zero bytes to SIZE bytes)
 *        channel consumer KEY COUNT [TIMEOUT]      receives COUNT messages (COUNT -1: until the
 *                                                  channel is closed and drained), one per line
 *        channel close KEY
 * KEY is a number (0x... for hex).  The channel must exist (sysvshm.Channel creates it).
 * Exit status: 0 done, 3 the channel was closed, 4 timed out, 1 any other error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
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

/* A semop that may wait: semtimedop on the remaining time, EINTR retried. 0, TIMEDOUT or -1.
 * A few IPC_NOWAIT tries first: MUTEX is held for microseconds, a wake-up costs more. */
static int wait_ops(struct channel *c, struct sembuf *ops, size_t n)
{
    double deadline = now() + c->timeout;
    struct sembuf tries[4];
    size_t i;
    int spin;
    if (n <= 4 && c->timeout != 0) {
        for (i = 0; i < n; i++) {
            tries[i] = ops[i];
            tries[i].sem_flg |= IPC_NOWAIT;
        }
        for (spin = 0; spin < 50; spin++)
            if (semop(c->semid, tries, n) == 0)
                return 0;
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
    c->h->j_pid = getpid();
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
                && s->pid != getpid() && !alive(s->pid)) {
            s->pid = 0;
            s->state = SVSHM_CH_SLOT_FREE;
            c->h->reclaimed++;
        }
    }
}

/* SEND: 0, CLOSED, TIMEDOUT or -1. */
static int send_message(struct channel *c, const void *data, uint32_t n)
{
    double deadline = now() + c->timeout;
    volatile struct svshm_ch_header *h = c->h;
    int s, rc;
    uint64_t head;
    if (n > c->slot_size) {
        fprintf(stderr, "message of %u bytes does not fit a slot of %u\n", n, c->slot_size);
        return -1;
    }
    for (;;) {
        rc = wait_ops(c, OPS({SVSHM_CH_FREE, -1, U}, {SVSHM_CH_MUTEX, -1, U}));
        if (rc)
            return rc;
        settle(c);
        if (h->closed) {
            final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
            return CLOSED;
        }
        s = find_slot(c);
        if (s < 0) {
            reclaim(c);
            s = find_slot(c);
        }
        if (s >= 0)
            break;
        final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        if (c->timeout >= 0 && now() >= deadline)
            return TIMEDOUT;
        usleep(1000);
    }
    memcpy(payload_at(c, (uint32_t)s), data, n);
    slot_at(c, (uint32_t)s)->length = n;
    head = h->head;
    journal(c, SVSHM_CH_J_COMMIT, (uint32_t)s, head);
    c->order[head % c->slots] = (uint32_t)s;
    h->head = head + 1;
    slot_at(c, (uint32_t)s)->pid = 0;
    slot_at(c, (uint32_t)s)->state = SVSHM_CH_SLOT_READY;
    h->sent++;
    final_ops(c, OPS({SVSHM_CH_FREE, 1, U}, {SVSHM_CH_FREE, -1, 0}, {SVSHM_CH_READY, 1, 0},
                     {SVSHM_CH_DONE, 1, 0}, {SVSHM_CH_MUTEX, 1, U}));
    return 0;
}

/* RECEIVE (copy): the length, CLOSED, TIMEDOUT or -1. */
static long receive_message(struct channel *c, void *buf, uint32_t cap)
{
    volatile struct svshm_ch_header *h = c->h;
    uint32_t s, n;
    uint64_t tail;
    int rc = wait_ops(c, OPS({SVSHM_CH_READY, -1, U}, {SVSHM_CH_MUTEX, -1, U}));
    if (rc)
        return rc;
    settle(c);
    if (h->tail == h->head) {
        final_ops(c, OPS({SVSHM_CH_READY, 1, U}, {SVSHM_CH_MUTEX, 1, U}));
        return h->closed ? CLOSED : -1;
    }
    tail = h->tail;
    s = c->order[tail % c->slots] % c->slots;
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

static int close_channel(struct channel *c)
{
    int rc = wait_ops(c, OPS({SVSHM_CH_MUTEX, -1, U}));
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

/* OPEN: semget, shmget, shmat, then the header is checked under MUTEX. */
static int open_channel(struct channel *c, key_t key)
{
    struct semid_ds ds;
    struct shmid_ds sds;
    union { int val; struct semid_ds *buf; } arg;
    int shmid, rc;
    volatile struct svshm_ch_header *h;
    void *base;
    c->semid = semget(key, 0, 0);
    if (c->semid < 0) {
        perror("semget");
        return -1;
    }
    arg.buf = &ds;
    if (semctl(c->semid, 0, IPC_STAT, arg) != 0 || ds.sem_nsems != SVSHM_CH_NSEMS) {
        fprintf(stderr, "not a channel's semaphore set\n");
        return -1;
    }
    shmid = shmget(key, 0, 0);
    if (shmid < 0 || shmctl(shmid, IPC_STAT, &sds) != 0) {
        perror("shmget");
        return -1;
    }
    base = shmat(shmid, NULL, 0);
    if (base == (void *)-1) {
        perror("shmat");
        return -1;
    }
    c->base = base;
    c->h = h = base;
    rc = wait_ops(c, OPS({SVSHM_CH_MUTEX, -1, U}));
    if (rc)
        return -1;
    settle(c);
    rc = -1;
    if (sds.shm_segsz < SVSHM_CH_HEADER_SIZE || h->magic != SVSHM_CH_MAGIC)
        fprintf(stderr, "not a channel (magic)\n");
    else if (h->version != SVSHM_CH_VERSION)
        fprintf(stderr, "channel layout version %u, this program reads %u\n", h->version,
                SVSHM_CH_VERSION);
    else if (h->slots < 1 || h->slots > SVSHM_CH_MAX_SLOTS || h->slot_size < 1
             || h->slot_size > 0x7fffffffu || h->header_size != SVSHM_CH_HEADER_SIZE
             || h->order_offset != SVSHM_CH_HEADER_SIZE
             || h->slots_offset != svshm_ch_slots_offset(h->slots)
             || h->slot_stride != svshm_ch_stride(h->slot_size)
             || sds.shm_segsz < svshm_ch_size(h->slots, h->slot_size))
        fprintf(stderr, "bad channel geometry\n");
    else
        rc = 0;
    c->slots = h->slots;
    c->slot_size = h->slot_size;
    c->slots_offset = h->slots_offset;
    c->stride = h->slot_stride;
    c->order = (volatile uint32_t *)(c->base + SVSHM_CH_HEADER_SIZE);
    final_ops(c, OPS({SVSHM_CH_MUTEX, 1, U}));
    return rc;
}

static int status(int rc)
{
    return rc == CLOSED ? 3 : rc == TIMEDOUT ? 4 : 1;
}

int main(int argc, char **argv)
{
    struct channel c;
    long count, i;
    if (argc < 3) {
        fprintf(stderr, "usage: channel producer KEY COUNT TAG [TIMEOUT] | consumer KEY COUNT "
                        "[TIMEOUT] | close KEY\n");
        return 2;
    }
    memset(&c, 0, sizeof c);
    c.timeout = -1;
    if (open_channel(&c, (key_t)strtoll(argv[2], NULL, 0)) != 0)
        return 1;
    if (strcmp(argv[1], "close") == 0)
        return close_channel(&c) ? 1 : 0;
    if (argc < 4)
        return 2;
    count = strtol(argv[3], NULL, 0);
    if (strcmp(argv[1], "producer") == 0 && argc >= 5) {
        long size = argc >= 7 ? strtol(argv[6], NULL, 0) : 0;
        char *text = calloc(1, (size_t)(size > 256 ? size : 256));
        if (argc >= 6)
            c.timeout = atof(argv[5]);
        for (i = 0; i < count; i++) {
            int n = snprintf(text, 256, "%s:%ld", argv[4], i), rc;
            rc = send_message(&c, text, size > 0 ? (uint32_t)size : (uint32_t)n);
            if (rc)
                return status(rc);
        }
        return 0;
    }
    if (strcmp(argv[1], "consumer") == 0) {
        unsigned char *buf = malloc(c.slot_size + 1);
        if (argc >= 5)
            c.timeout = atof(argv[4]);
        for (i = 0; count < 0 || i < count; i++) {
            long n = receive_message(&c, buf, c.slot_size);
            if (n < 0) {
                fflush(stdout);
                return (n == CLOSED && count < 0) ? 0 : status((int)n);
            }
            fwrite(buf, 1, (size_t)n, stdout);
            fputc('\n', stdout);
        }
        fflush(stdout);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
