/* arena.c: chunks in a singly linked list, newest first; an allocation that
 * does not fit the newest chunk gets a fresh one (as large as it needs, at
 * least S_CHUNK_SIZE), and the rest of the old chunk is abandoned.  That
 * wastes at most a chunk's tail per big allocation, which is fine for the
 * short-lived, mostly small objects this is for; a free list per size was
 * rejected as needless for objects that are all freed together.
 *
 * Fault injection (cf_arena_fail_after) is one process-wide countdown, as
 * SQLite's: a test sets it and walks n up until the operation succeeds, so
 * every allocation's failure path runs once. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cf_arena_chunk {
    cf_arena_chunk_t *next;
};

#define S_CHUNK_HDR  16        /* keeps the payload 16-aligned */
#define S_CHUNK_SIZE 16384

/* 0: no failures; 1: fail now (and from now on); k: k - 1 more successes */
static unsigned long s_fail_countdown;

void cf_arena_fail_after(unsigned long n)
{
    s_fail_countdown = n;
}

void *cf_arena_alloc(cf_arena_t *a, size_t n)
{
    if (s_fail_countdown == 1)
        return NULL;
    if (s_fail_countdown > 1)
        s_fail_countdown--;
    if (n > SIZE_MAX / 2)
        return NULL;
    n = n ? (n + 15) & ~(size_t)15 : 16;
    if (n > a->left) {
        size_t cap = n > S_CHUNK_SIZE ? n : S_CHUNK_SIZE;
        cf_arena_chunk_t *ch = malloc(S_CHUNK_HDR + cap);
        if (!ch)
            return NULL;
        ch->next = a->head;
        a->head = ch;
        a->p = (char *)ch + S_CHUNK_HDR;
        a->left = cap;
    }
    void *r = a->p;
    a->p += n;
    a->left -= n;
    memset(r, 0, n);
    return r;
}

char *cf_arena_strndup(cf_arena_t *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *r = cf_arena_alloc(a, len + 1);
    if (!r)
        return NULL;
    if (len)
        memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

void cf_arena_free(cf_arena_t *a)
{
    cf_arena_chunk_t *ch = a->head;
    while (ch) {
        cf_arena_chunk_t *next = ch->next;
        free(ch);
        ch = next;
    }
    a->head = NULL;
    a->p = NULL;
    a->left = 0;
}
