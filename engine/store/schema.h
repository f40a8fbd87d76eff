/* schema.h: the store's schema - every key layout and record codec, in one
 * place (docs/storage.md lists the same).  The store (store.h) moves bytes;
 * this module says what the bytes are.  A claim as the engine works on it,
 * its record (a positional msgpack array, compact) and the map the protocol
 * shows (docs/protocol.md).
 *
 * Record layout (CF_STORE_FORMAT 1), a msgpack array:
 *   [0 workflow, 1 version, 2 state, 3 prev|nil, 4 data map, 5 [flag...],
 *    6 [[timer, due, event]...], 7 [[kind, sha256 bin, size]...],
 *    8 parent|nil, 9 member hash bin|nil, 10 created, 11 updated, 12 seq,
 *    13 country, 14 owner|nil, 15 [[state, prev|nil, [[timer, due, event]...]]...]]
 * States and flags are kept by name, so a definition may reorder them; the
 * country by its code ("dk", "no").  Records written before the country
 * have 13 elements and read with the country of their workflow version's
 * default (cf_wf_resolve_fn); records written before the owner have 14 and
 * read with no owner and no frames.
 * History events: [seq, at, event, from|nil, to, actor, data|nil].
 */
#ifndef CF_SCHEMA_H
#define CF_SCHEMA_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cf_time.h"
#include "mp.h"
#include "store.h"
#include "workflow.h"

#define CF_ID_LEN 26
#define CF_NAME_MAX 64
#define CF_CLAIM_MAX_TIMERS 16
#define CF_CLAIM_MAX_DOCS 64
#define CF_MEMBER_HASH_LEN 16
/* The return stack: states a claim left, newest last, so `$previous` can
 * go back more than one step and restore what a pause kept. */
#define CF_CLAIM_MAX_FRAMES 8
#define CF_FRAME_MAX_TIMERS 4

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

/* A state the claim left (by a move that was not `$previous`): the state,
 * its own previous state, and its `on_pause: keep` timers as they were
 * (name, due, event), restored when `$previous` returns to it. */
typedef struct {
    int state, prev;             /* prev -1: none */
    size_t ntimers;
    cf_claim_timer_t timers[CF_FRAME_MAX_TIMERS];
} cf_claim_frame_t;

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
    cf_country_t country;        /* fixed at creation: its calendar, currency */
    char owner[CF_NAME_MAX + 1]; /* the operator who owns it; "" when none */
    size_t nframes;
    cf_claim_frame_t frames[CF_CLAIM_MAX_FRAMES];
    /* owned: the decoded record's bytes and msgpack zone */
    char *raw;
    msgpack_unpacked up;
    bool has_up;
    /* owned: data rewritten by an event's `record:` (cf_claim_set_data) */
    char *data_raw;
    msgpack_unpacked data_up;
    bool has_data_up;
} cf_claim_t;

/* Replace c's data with the msgpack map in bytes[0..len) (copied).  0, or
 * CF_EINTERNAL (not one msgpack object, out of memory); c->data is
 * unchanged on failure. */
int cf_claim_set_data(cf_claim_t *c, const void *bytes, size_t len);

/* Resolves a workflow name + version to its definition (the engine's
 * registry), or NULL; *ret_country: the version's default country (its
 * scalar calendar's), the country of a record from before the country was
 * kept. */
typedef const cf_wf_t *(*cf_wf_resolve_fn)(void *ctx, const char *name, size_t len,
                                           int64_t version, cf_country_t *ret_country);

/* Decode a stored record (bytes copied; the store's buffer may go away).
 * 0, or CF_EINTERNAL (corrupt record, unknown workflow version, out of
 * memory).  Free with cf_claim_fini. */
int cf_claim_decode(const void *bytes, size_t len, cf_wf_resolve_fn resolve,
                    void *ctx, cf_claim_t *ret);
void cf_claim_fini(cf_claim_t *c);

/* Encode the record into sb (cleared first). 0 or CF_EINTERNAL. */
int cf_claim_encode(const cf_claim_t *c, msgpack_sbuffer *sb);

/* The protocol's claim map, with the claim's `country` and `currency`
 * (its workflow's currency for that country) and `owner` (nil: none). */
void cf_claim_pack_reply(msgpack_packer *pk, const cf_claim_t *c);

/* The protocol's event map from a stored history record; with_workflow adds
 * `workflow` (published events), batch (non-zero) `batch`, the batch
 * sequence that committed it (published events, `changes`).  0 or
 * CF_EINTERNAL (corrupt record). */
int cf_event_pack_reply(msgpack_packer *pk, const char *claim_id, const char *workflow,
                        uint64_t batch, const void *rec, size_t len);

/* ================================================================ keys ===
 * Each returns the key's length; k must hold CF_KEY_MAX bytes. */
#define CF_KEY_MAX 512

/* idx_state: workflow \0 state \0 claim id */
size_t cf_key_state(unsigned char *k, const char *workflow, const char *state, const char *id);
/* The idx_state prefix of one workflow's state ("workflow\0state\0"). */
size_t cf_key_state_prefix(unsigned char *k, const char *workflow, const char *state);
/* idx_flag: flag \0 claim id */
size_t cf_key_flag(unsigned char *k, const char *flag, const char *id);
/* idx_member: member hash(16) + claim id */
size_t cf_key_member(unsigned char *k, const unsigned char *hash, const char *id);
/* idx_closed: the time a claim reached a final state of its own workflow
 * version (be64) + claim id: what a purge walks, oldest first. */
size_t cf_key_closed(unsigned char *k, cf_time_t at, const char *id);
/* history: claim id + seq(be32) */
size_t cf_key_history(unsigned char *k, const char *id, uint32_t seq);
/* The change feed: the n-th event of batch `batch`. */
size_t cf_key_change(unsigned char *k, uint64_t batch, uint32_t n);

/* A change record: which history event a batch committed, for `changes`
 * (the record points into history; the event is read from there). */
typedef struct {
    cf_time_t at;
    char claim[CF_ID_LEN + 1];
    uint32_t seq;                   /* the claim's history seq */
    bool has_member;
    unsigned char member[CF_MEMBER_HASH_LEN];
    char workflow[CF_NAME_MAX + 1];
} cf_change_t;

/* Encode into out (CF_CHANGE_MAX bytes): its length.  Decode: 0 or
 * CF_EINTERNAL. */
#define CF_CHANGE_MAX (8 + CF_ID_LEN + 4 + 1 + CF_MEMBER_HASH_LEN + CF_NAME_MAX)
size_t cf_change_encode(const cf_change_t *c, unsigned char *out);
int cf_change_decode(const void *v, size_t len, cf_change_t *c);

/* timers: due(be64) + kind + target + name; value: the event it sends. */
#define CF_TIMER_CLAIM  'c'   /* target: claim id (26) */
#define CF_TIMER_MEMBER 'm'   /* target: member hash (16) */
#define CF_TIMER_KEY_MAX (8 + 1 + CF_ID_LEN + CF_NAME_MAX)
#define CF_CONSENT_TIMER "consent"
/* A consent's reminder: a member timer CF_CONSENT_NOTICE before its expiry
 * that sends consent.expiring to the member's open claims. */
#define CF_CONSENT_EXPIRING_TIMER "consent_expiring"
#define CF_CONSENT_NOTICE ((cf_time_t)30 * 86400)
size_t cf_key_timer(unsigned char *k, cf_time_t due, char kind, const void *target,
                    size_t tlen, const char *name);
/* A timer key taken apart: 0, or CF_EINTERNAL when it is not one. */
typedef struct {
    cf_time_t due;
    char kind;
    char id[CF_ID_LEN + 1];                 /* kind CF_TIMER_CLAIM */
    unsigned char member[CF_MEMBER_HASH_LEN]; /* kind CF_TIMER_MEMBER */
    char name[CF_NAME_MAX + 1];
} cf_timer_key_t;
int cf_key_timer_parse(const void *k, size_t kl, cf_timer_key_t *ret);

/* idem: endpoint ('p'/'o') + actor \0 + request id;
 * idem_age: at(be64) + idem key */
#define CF_IDEM_KEY_MAX (2 + CF_NAME_MAX + 130)
size_t cf_key_idem(unsigned char *k, char endpoint, const char *actor, const char *id,
                   size_t idlen);
/* The portal's, scoped per member: 'm' + request id + \0 + member hash
 * (16).  The id first: a portal that numbers its requests appends to the
 * index instead of writing all over it (a member-first key made every
 * insert a random one: half the engine's throughput, docs/BENCHMARKS.md). */
/* A representative's request for the member (`by`, issue 15) is scoped to
 * the pair: the representative's hash (16) follows, by NULL when none. */
size_t cf_key_idem_member(unsigned char *k, const unsigned char *hash, const unsigned char *by,
                          const char *id, size_t idlen);
size_t cf_key_idem_age(unsigned char *k, cf_time_t at, const unsigned char *ikey, size_t iklen);

/* Claim ids in binary: a ULID's 26 Crockford base32 characters as its 16
 * bytes (48 bits of milliseconds, 80 random bits; big-endian), the form the
 * access log stores them in.  cf_id_to_bin: 0, or CF_EBADREQ when id is not
 * a canonical ULID (lower case, a character outside the alphabet, a first
 * character past '7'), so that cf_id_from_bin(cf_id_to_bin(id)) == id
 * always.  cf_id_from_bin writes 26 characters and a NUL. */
#define CF_ID_BIN_LEN 16
int cf_id_to_bin(const char *id, unsigned char out[CF_ID_BIN_LEN]);
void cf_id_from_bin(const unsigned char bin[CF_ID_BIN_LEN], char out[CF_ID_LEN + 1]);

/* audit: at(be64) + seq(be64).
 * audit_claim: claim id + audit key.  The id is its 16 bytes
 * (CF_AUDIT_CLAIM_BIN: 32-byte keys) when it is a ULID; an id that is not
 * one (a request naming no real claim) and every key written before the
 * binary form (format 1 stores of before issue 18) hold its 26 characters
 * (CF_AUDIT_CLAIM_TEXT: 42-byte keys).  Readers look under both; the
 * lengths tell them apart.  cf_key_audit_claim writes the form the log
 * writes now and says which in *text (may be NULL); with akey NULL it
 * writes only the id, a scan prefix.  cf_key_audit_claim_text: the text
 * form, to read (and prune) older keys.
 * audit_actor: actor \0 + audit key */
#define CF_AUDIT_KEY_LEN 16
#define CF_AUDIT_CLAIM_BIN (CF_ID_BIN_LEN + CF_AUDIT_KEY_LEN)
#define CF_AUDIT_CLAIM_TEXT (CF_ID_LEN + CF_AUDIT_KEY_LEN)
void cf_key_audit(unsigned char *k, cf_time_t at, uint64_t seq);
size_t cf_key_audit_claim(unsigned char *k, const char *id, const unsigned char *akey,
                          bool *text);
size_t cf_key_audit_claim_text(unsigned char *k, const char *id, const unsigned char *akey);
size_t cf_key_audit_actor(unsigned char *k, const char *actor, const unsigned char *akey);

/* ============================================================= records === */
/* members: the consent record: given at, valid until, withdrawn at (be64
 * times, 0: none), then the day (days since 1970, be64) and number (be64)
 * of the member's consent changes that day - the rate limit.  Records of
 * 24 bytes (before the limit) read with no changes counted.  Since issue 15
 * the 40 bytes are followed by who gave it, a msgpack array
 * [given_by pid|nil, channel, lapses_at, [involved pid...], reference|nil]:
 * records of exactly 40 bytes read as given by the member on the portal. */
#define CF_CONSENT_REC_LEN 40
#define CF_CONSENT_REC_OLD 24
#define CF_PID_LEN 12                   /* a canonical person id and its NUL */
#define CF_CONSENT_MAX_INVOLVED 4
#define CF_REFERENCE_MAX 128
typedef struct {
    cf_time_t given_at, valid_until, withdrawn_at;
    int64_t change_day;
    uint64_t changes;
    char given_by[CF_PID_LEN];          /* "": the member */
    char channel[8];                    /* "portal" or "phone" ("": portal) */
    cf_time_t lapses_at;                /* a parent's consent for a child: the
                                         * 15th birthday (= valid_until); 0 */
    size_t ninvolved;                   /* 15-17: the parents involved */
    char involved[CF_CONSENT_MAX_INVOLVED][CF_PID_LEN];
    char reference[CF_REFERENCE_MAX + 1];   /* phone: the call's reference */
} cf_consent_t;
/* Into sb (cleared first).  0 or CF_EINTERNAL. */
int cf_consent_encode(const cf_consent_t *c, msgpack_sbuffer *sb);
int cf_consent_decode(const void *rec, size_t len, cf_consent_t *ret);  /* 0 or CF_EINTERNAL */

/* reps: a representation - who may act for a member (docs/protocol.md,
 * "Members and representatives").  Key: member hash(16) + representative
 * hash(16); reps_by: representative hash(16) + member hash(16) -> "", the
 * reverse index (representation.list, and purge of a representative's
 * entries).  Record: [member pid, representative pid, kind, [scope...],
 * valid_from, valid_until|nil, evidence [kind, sha256 bin, size]|nil,
 * registered_by, revoked_at|nil, ended_at|nil]; later elements skipped. */
#define CF_REP_KEY_LEN (2 * CF_MEMBER_HASH_LEN)
#define CF_REP_KIND_MAP(XX)            \
    XX(PARENT, "parent")               \
    XX(GUARDIAN, "guardian")           \
    XX(NEXT_OF_KIN, "next_of_kin")     \
    XX(ATTORNEY, "attorney")           \
    XX(THIRD_PARTY, "third_party")
typedef enum {
    CF_REP_NONE = 0,
#define CF_XX(s, name) CF_REP_##s,
    CF_REP_KIND_MAP(CF_XX)
#undef CF_XX
} cf_rep_kind_t;
/* Scopes: what a representation lets its holder do (bits). */
#define CF_SCOPE_MAP(XX)                   \
    XX(CONSENT, 1, "consent")              \
    XX(CLAIMS, 2, "claims")                \
    XX(COMPLAINTS, 4, "complaints")        \
    XX(READ, 8, "read")
enum {
#define CF_XX(s, v, name) CF_SCOPE_##s = (v),
    CF_SCOPE_MAP(CF_XX)
#undef CF_XX
};
/* A kind's or scope's name, NULL when none; and back (0 / CF_REP_NONE when
 * the name is none). */
const char *cf_rep_kind_name(int kind);
int cf_rep_kind_find(const char *s, size_t len);
const char *cf_scope_name(unsigned bit);
unsigned cf_scope_find(const char *s, size_t len);
typedef struct {
    char member[CF_PID_LEN], rep[CF_PID_LEN];   /* canonical person ids */
    int kind;                                   /* cf_rep_kind_t */
    unsigned scope;                             /* CF_SCOPE_* bits */
    cf_time_t valid_from, valid_until;          /* valid_until 0: open-ended */
    cf_time_t revoked_at, ended_at;             /* 0: not */
    bool has_evidence;
    char ev_kind[CF_NAME_MAX + 1];
    unsigned char ev_sha[32];
    uint64_t ev_size;
    char registered_by[CF_NAME_MAX + 1];        /* an operator id, or "member" */
    /* A member of 15-17 assessed unable to appreciate a decision (seed
     * 001): this custodial parent or guardian decides, consent included,
     * and the member does not.  Element 11 of the record (older: false). */
    bool decides;
} cf_rep_t;
size_t cf_key_rep(unsigned char *k, const unsigned char *first, const unsigned char *second);
/* 0 or CF_EINTERNAL. */
int cf_rep_encode(const cf_rep_t *r, msgpack_sbuffer *sb);
int cf_rep_decode(const void *rec, size_t len, cf_rep_t *ret);

/* docs: [content_type, body bin].  Decoded views borrow rec. */
int cf_doc_encode(const char *ctype, size_t clen, const void *body, size_t blen,
                  msgpack_sbuffer *sb);
/* doc_refs: the number of claims holding a document, be32. */
#define CF_DOCREFS_LEN 4

/* idem: [hash(32) | at(be64) | reply frame] */
#define CF_IDEM_HEAD 40
int cf_idem_encode(const unsigned char hash[32], cf_time_t at, const void *reply, size_t len,
                   unsigned char **ret, size_t *ret_len);  /* *ret: free() */

/* audit: [at, actor, op, [claim id...], purpose|nil, role|nil], each claim
 * id a 16-byte bin (a ULID; cf_id_to_bin) or, for an id that is not one and
 * in records written before, its 26 characters.  The last two are written
 * when purpose or role is given; records written before them have four
 * elements and decode with both NULL.  Later elements are skipped.
 * cf_audit_decode: 0, or CF_EINTERNAL (not such a record); the views in
 * *ret borrow rec and the decoder's zone: valid until cf_audit_fini.
 * cf_audit_claim: the i-th claim id as text, 0 or CF_EINTERNAL. */
int cf_audit_encode(cf_time_t at, const char *actor, const char *op,
                    const char *const *claims, size_t n, const char *purpose,
                    const char *role, msgpack_sbuffer *sb);
typedef struct {
    cf_time_t at;
    msgpack_object actor, op;          /* strings */
    const msgpack_object *claims;      /* nclaims elements: bin 16 or str 26 */
    uint32_t nclaims;
    const msgpack_object *purpose, *role;  /* strings, or NULL (older records) */
    const msgpack_object *rest;        /* elements after the fourth */
    uint32_t nrest;
    msgpack_unpacked up;
} cf_audit_rec_t;
int cf_audit_decode(const void *rec, size_t len, cf_audit_rec_t *ret);
void cf_audit_fini(cf_audit_rec_t *r);
int cf_audit_claim(const cf_audit_rec_t *r, uint32_t i, char out[CF_ID_LEN + 1]);

/* history: [seq, at, event, from|nil, to, actor, data|nil, by|nil,
 * channel, reference|nil]; data: packed msgpack or NULL.  Records of 7
 * elements (before issue 15) read with by and reference nil and the
 * channel their actor implies.  Who acted (cf_event_who_t): by, the person
 * id of whoever acted for the member (NULL: the member, an operator on
 * their own behalf, or the engine); channel "portal", "phone", "operator"
 * or "system"; reference, a phone call's (or NULL).
 * cf_event_strip: the same record without its data, by and reference (a
 * purge); *changed false when it had none. */
typedef struct {
    const char *by, *channel, *reference;
} cf_event_who_t;
int cf_event_encode(uint32_t seq, cf_time_t at, const char *event, const char *from,
                    const char *to, const char *actor, const void *data, size_t dlen,
                    const cf_event_who_t *who, msgpack_sbuffer *sb);
int cf_event_strip(const void *rec, size_t len, msgpack_sbuffer *sb, bool *changed);

#endif
