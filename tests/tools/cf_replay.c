/* cf_replay: replay a write-set log (claimflowd --record-writesets) into an
 * empty store, the way a replica would apply the leader's log.
 *
 *   cf_replay LOG DIR [ORIGINAL]
 *                         prints "seq N" (the store's sequence after replay)
 *
 * A record whose seq was recorded before is a batch tried again after the
 * earlier try did not commit (the daemon was killed between the hook and
 * the commit): the later record wins.  With ORIGINAL (the recorded store's
 * directory), records past its sequence are left out: the last one may
 * have been recorded and not committed.
 *
 * Exit 0, or 1 with one line on stderr (a record that is not a write set,
 * a gap in the sequence, a store that refuses it).  A record cut short at
 * the end of the log is the batch being written when the daemon died: it
 * did not commit, and is ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_be.h"
#include "store.h"

typedef struct {
    unsigned char *data;
    size_t len;
    uint64_t seq;
} s_rec_t;

static unsigned char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: cf_replay LOG DIR [ORIGINAL]\n");
        return 2;
    }
    uint64_t upto = UINT64_MAX;
    cf_error_t err;
    if (argc == 4) {
        cf_store_facts_t f;
        if (cf_store_inspect(argv[3], &f, &err) != 0) {
            fprintf(stderr, "cf_replay: %s\n", err.message);
            return 1;
        }
        upto = f.seq;
    }
    size_t len;
    unsigned char *log = s_slurp(argv[1], &len);
    if (!log) {
        fprintf(stderr, "cf_replay: cannot read %s\n", argv[1]);
        return 1;
    }
    /* Collect the records; an 'A' drops the write set of its seq. */
    s_rec_t *recs = calloc(len / 5 + 1, sizeof *recs);
    size_t n = 0, at = 0;
    while (recs && at < len) {
        if (log[at] == 'W' && at + 5 <= len) {
            size_t l = cf_be32_get(log + at + 1);
            if (at + 5 + l > len)
                break;                       /* cut short: did not commit */
            /* The header: array32, fixint 1, uint64 seq (store.c). */
            uint64_t seq = l >= 15 ? cf_be64_get(log + at + 5 + 7) : 0;
            while (n && recs[n - 1].seq >= seq)
                n--;                         /* tried again: the earlier did not commit */
            s_rec_t *r = &recs[n++];
            r->data = log + at + 5;
            r->len = l;
            r->seq = seq;
            at += 5 + l;
        } else if (log[at] == 'A' && at + 9 <= len) {
            uint64_t seq = cf_be64_get(log + at + 1);
            if (n && recs[n - 1].seq == seq)
                n--;
            at += 9;
        } else {
            fprintf(stderr, "cf_replay: %s: not a write-set log at byte %zu\n", argv[1], at);
            return 1;
        }
    }
    while (n && recs[n - 1].seq > upto)
        n--;
    cf_store_opts_t o = {.bare = true};
    cf_store_t *s;
    if (cf_store_open(argv[2], &o, &s, &err) != 0) {
        fprintf(stderr, "cf_replay: %s\n", err.message);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if ((rc = cf_store_apply(s, recs[i].data, recs[i].len, &err)) != 0)
            fprintf(stderr, "cf_replay: record %zu (seq %llu): %s\n", i,
                    (unsigned long long)recs[i].seq, err.message);
    }
    printf("seq %llu\n", (unsigned long long)cf_store_seq(s));
    cf_store_destroy(&s);
    free(recs);
    free(log);
    return rc ? 1 : 0;
}
