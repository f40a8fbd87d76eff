/* claim.h: a claim as the engine works on it, and its encodings - the
 * record kept in the store (a positional msgpack array, compact) and the map
 * the protocol shows (docs/protocol.md).
 *
 * Record layout (CF_STORE_FORMAT 1), a msgpack array:
 *   [0 workflow, 1 version, 2 state, 3 prev|nil, 4 data map, 5 [flag...],
 *    6 [[timer, due, event]...], 7 [[kind, sha256 bin, size]...],
 *    8 parent|nil, 9 member hash bin|nil, 10 created, 11 updated, 12 seq]
 * States and flags are kept by name, so a definition may reorder them.
 * History events: [seq, at, event, from|nil, to, actor, data|nil].
 */
#ifndef CF_CLAIM_H
#define CF_CLAIM_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cf_time.h"
#include "workflow.h"

#define CF_ID_LEN 26
#define CF_NAME_MAX 64
#define CF_CLAIM_MAX_TIMERS 16
#define CF_CLAIM_MAX_DOCS 64
#define CF_MEMBER_HASH_LEN 16

typedef struct {
    char name[CF_NAME_MAX + 1];
    char event[CF_NAME_MAX + 1];
    cf_time_t due;
} cf_claim_timer_t;

typedef struct {
    char kind[CF_NAME_MAX + 1];
    unsigned char sha[32];
    uint64_t size;
} cf_claim_doc_t;

typedef struct {
    char id[CF_ID_LEN + 1];
    const cf_wf_t *wf;
    int state, prev;             /* prev -1: none */
    uint64_t flags;              /* bit i = wf->flags[i] */
    msgpack_object data;         /* a map; borrowed from raw or a request */
    size_t ntimers;
    cf_claim_timer_t timers[CF_CLAIM_MAX_TIMERS];
    size_t ndocs;
    cf_claim_doc_t docs[CF_CLAIM_MAX_DOCS];
    char parent[CF_ID_LEN + 1];  /* "" when none */
    bool has_member;
    unsigned char member[CF_MEMBER_HASH_LEN];
    cf_time_t created, updated;
    uint32_t seq;                /* last history seq */
    /* owned: the decoded record's bytes and msgpack zone */
    char *raw;
    msgpack_unpacked up;
    bool has_up;
} cf_claim_t;

/* Resolves a workflow name + version to its definition (the engine's
 * registry). */
typedef const cf_wf_t *(*cf_wf_resolve_fn)(void *ctx, const char *name, size_t len,
                                           int64_t version);

/* Decode a stored record (bytes copied; the store's buffer may go away).
 * 0, or CF_EINTERNAL (corrupt record, unknown workflow version, out of
 * memory).  Free with cf_claim_fini. */
int cf_claim_decode(const void *bytes, size_t len, cf_wf_resolve_fn resolve,
                    void *ctx, cf_claim_t *ret);
void cf_claim_fini(cf_claim_t *c);

/* Encode the record into sb (cleared first). 0 or CF_EINTERNAL. */
int cf_claim_encode(const cf_claim_t *c, msgpack_sbuffer *sb);

/* The protocol's claim map. */
void cf_claim_pack_reply(msgpack_packer *pk, const cf_claim_t *c);

/* The protocol's event map from a stored history record; with_workflow adds
 * `workflow` (published events).  0 or CF_EINTERNAL (corrupt record). */
int cf_event_pack_reply(msgpack_packer *pk, const char *claim_id, const char *workflow,
                        const void *rec, size_t len);

/* Helpers for packing C strings. */
void cf_pack_str(msgpack_packer *pk, const char *s);
void cf_pack_strn(msgpack_packer *pk, const char *s, size_t n);
void cf_pack_time(msgpack_packer *pk, cf_time_t t);
void cf_hex(const unsigned char *in, size_t n, char *out);  /* out: 2n+1 */

/* msgpack lookups: the value of key in map (NULL when absent or not a map). */
const msgpack_object *cf_mp_get(const msgpack_object *map, const char *key);
bool cf_mp_streq(const msgpack_object *o, const char *s);

#endif
