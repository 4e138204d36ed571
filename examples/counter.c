/* Program A of the README's first example: a C program that keeps a struct in a System V
 * shared memory segment and guards it with a semaphore set, both at one key.
 *
 *   gcc -Wall -o counter examples/counter.c && ./counter [KEY]     (KEY defaults to 0x5eed)
 *
 * It creates the segment and a set of two semaphores (0: the lock, initially 1; 1: "B is
 * done", initially 0), fills the struct, waits (at most 60 s) for B to release semaphore 1,
 * prints what B left, and removes both objects: the creator cleans up. */
#define _GNU_SOURCE             /* semtimedop */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

struct counter {                /* what B overlays with ctypes */
    uint32_t magic;             /* 0x434f554e, "COUN" */
    int32_t count;
    char note[24];
};

union semun { int val; struct semid_ds *buf; unsigned short *array; };

static int fail(const char *what) { perror(what); return 1; }

int main(int argc, char **argv)
{
    key_t key = argc > 1 ? (key_t)strtoul(argv[1], NULL, 0) : 0x5eed;
    int shmid = shmget(key, sizeof(struct counter), IPC_CREAT | IPC_EXCL | 0600);
    if (shmid < 0)
        return fail("shmget");
    int semid = semget(key, 2, IPC_CREAT | IPC_EXCL | 0600);
    if (semid < 0) {
        shmctl(shmid, IPC_RMID, NULL);
        return fail("semget");
    }
    unsigned short initial[2] = {1, 0};
    union semun arg = {.array = initial};
    semctl(semid, 0, SETALL, arg);

    struct counter *c = shmat(shmid, NULL, 0);
    if (c == (void *)-1)
        return fail("shmat");
    c->magic = 0x434f554e;
    c->count = 41;
    strcpy(c->note, "hello from A");
    printf("A: segment and semaphore set at key %#x; waiting for B\n", key);
    fflush(stdout);

    struct sembuf wait_b = {1, -1, 0};                  /* B releases semaphore 1 when done */
    struct timespec limit = {60, 0};
    int status = 0;
    if (semtimedop(semid, &wait_b, 1, &limit) < 0) {
        status = fail("waiting for B");
    } else {
        struct sembuf lock = {0, -1, SEM_UNDO}, unlock = {0, 1, SEM_UNDO};
        semop(semid, &lock, 1);
        printf("A: B left count %d, note \"%s\"\n", c->count, c->note);
        semop(semid, &unlock, 1);
    }
    shmdt(c);
    shmctl(shmid, IPC_RMID, NULL);
    semctl(semid, 0, IPC_RMID);
    return status;
}
