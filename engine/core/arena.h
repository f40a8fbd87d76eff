/* arena.h: a bump allocator for things that die together (a YAML tree, a
 * compiled workflow).  Allocations are zeroed and 16-aligned; nothing is
 * freed alone; cf_arena_free releases everything at once.
 *
 * A cf_arena_t is a plain struct: zero-initialise it ({0}) to get an empty
 * arena, and it may be copied while no one allocates from the original (a
 * loader moves the arena into the object it hands out, which lives in that
 * same arena). */
#ifndef CF_ARENA_H
#define CF_ARENA_H

#include <stddef.h>

typedef struct cf_arena_chunk cf_arena_chunk_t;

typedef struct {
    cf_arena_chunk_t *head;   /* newest chunk first */
    char *p;                  /* free space in head */
    size_t left;
} cf_arena_t;

/* n zeroed bytes, 16-aligned, valid until cf_arena_free(a).  NULL when out
 * of memory (or when cf_arena_fail_after says so); the arena is unchanged
 * then and still usable. */
void *cf_arena_alloc(cf_arena_t *a, size_t n);

/* A copy of s[0..len) with a NUL after it (s may hold NULs); NULL when out of
 * memory.  Lifetime as cf_arena_alloc. */
char *cf_arena_strndup(cf_arena_t *a, const char *s, size_t len);

/* Free every chunk; the arena is empty afterwards and may be reused.
 * Accepts an empty arena. */
void cf_arena_free(cf_arena_t *a);

/* Fault injection, for tests: the n-th cf_arena_alloc from now on (counted
 * over every arena of the process) returns NULL, and so does every one
 * after it, until this is called again; n = 0 turns the failures off.  Not
 * thread-safe: call it from a single-threaded test only. */
void cf_arena_fail_after(unsigned long n);

#endif
