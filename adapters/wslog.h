/* wslog.h: a write-set log - every committed batch's write set appended to
 * a file, for the write-set test and for inspecting what a batch wrote
 * (claimflowd --record-writesets FILE; docs/storage.md "Write sets").
 *
 * File format: records, each a tag byte then its body:
 *   'W' len(be32) encoded write set (store.h cf_wset_encoded)
 *   'A' seq(be64)   the batch seq recorded last did not commit: drop it
 * Written with write(2) as each batch commits, so a killed daemon leaves
 * every committed batch in the file (a record cut short at the end is the
 * batch being written when it died: it did not commit either).
 */
#ifndef CF_WSLOG_H
#define CF_WSLOG_H

#include "store.h"

typedef struct cf_wslog cf_wslog_t;

/* Open path for appending (created 0600).  NULL with errno on failure. */
cf_wslog_t *cf_wslog_open(const char *path);
void cf_wslog_close(cf_wslog_t **l_p);

/* The commit hook (store.h) that appends to the log given as ctx. */
int cf_wslog_hook(void *ctx, uint64_t seq, const cf_wset_t *ws);

#endif
