/* backup.c: claimctl backup - a consistent, compacted copy of the live
 * store while claimflowd keeps serving.
 *
 * LMDB lets a second process read an environment another process writes:
 * the store (cf_store_copy) opens the daemon's environment read-only and
 * makes a compacting copy of one read transaction's
 * snapshot - every claim committed (acknowledged) before the copy began, and
 * nothing half-written - while the daemon's writers go on.  The copy
 * registers as a reader, so the daemon cannot reuse the pages it is copying;
 * the cost is that the daemon's file may grow during a long copy.
 *
 * If the daemon grows its map during the copy, the store adopts the new
 * size and copies again.  The copy is written as data.mdb.partial and
 * renamed to data.mdb only when complete and synced: a killed backup never
 * leaves a complete-looking data.mdb.
 *
 * A protocol op (`backup`, the daemon copying itself with cf_engine_backup)
 * was rejected: the copy would hold the daemon's single engine thread, or
 * need a thread of its own in it, for the minutes a large store takes.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "store.h"


/* 0 when dir is (now) an empty directory, else a message in why. */
static int s_prepare_dir(const char *dir, char *why, size_t len)
{
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST) {
        snprintf(why, len, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, len, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(why, len, "%s is not empty (a backup goes into a new or empty directory)", dir);
            rc = -1;
            break;
        }
    closedir(d);
    return rc;
}

static off_t s_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ------------------------------------------------------------- progress --- */
/* The copy has no callback: a thread watches the partial file grow. */
typedef struct {
    const char *file;
    double total_mib;       /* the source's used size: the copy's upper bound */
    atomic_bool done;
} s_progress_t;

static void *s_progress_run(void *arg)
{
    s_progress_t *p = arg;
    const struct timespec tick = {0, 200 * 1000 * 1000};
    while (!atomic_load(&p->done)) {
        off_t sz = s_file_size(p->file);
        cf_cli_progress("claimctl: backup: %.1f MiB copied (of at most %.1f MiB)",
                        sz < 0 ? 0.0 : (double)sz / 1048576.0, p->total_mib);
        nanosleep(&tick, NULL);
    }
    return NULL;
}

int cf_cmd_backup(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "backup", "DIR", "A consistent, compacted copy of the live store into DIR while claimflowd keeps serving.",
        "DIR is created if missing and must be empty.  The copy holds every claim\n"
        "committed before the backup started.  Run it on the daemon's machine, as a\n"
        "user who can read (and lock) the store.  Restore: stop claimflowd, replace\n"
        "the data directory's data.mdb with DIR/data.mdb, start it again.\n\n"
        "examples:\n"
        "  claimctl backup /srv/backup/claimflow-$(date +%F) --data /var/lib/claimflow\n"
        "  mdb_stat -a /srv/backup/claimflow-2026-11-24    # inspect a copy\n",
        0, 1, 1};
    const char *data = "./var";
    const cf_opt_t opts[] = {
        {"data", "DATA_DIR", "claimflowd's data directory (its --data; default ./var)", CF_OPT_STR, &data, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    const char *dir = cli.args[0];
    char why[PATH_MAX + 128], src_file[PATH_MAX], dst_file[PATH_MAX];
    snprintf(src_file, sizeof src_file, "%s/data.mdb", data);
    snprintf(dst_file, sizeof dst_file, "%s/data.mdb", dir);

    if (s_file_size(src_file) < 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: no claimflow store in %s (%s: %s)", data,
                         src_file, strerror(errno));
        goto out_cli;
    }
    if (s_prepare_dir(dir, why, sizeof why) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: %s", why);
        goto out_cli;
    }

    cf_store_facts_t facts;
    cf_error_t err;
    if (cf_store_inspect(data, &facts, &err) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: %s", err.message);
        goto out_cli;
    }
    char part_file[PATH_MAX + 32];
    snprintf(part_file, sizeof part_file, "%s/data.mdb.partial", dir);
    s_progress_t prog = {part_file, (double)facts.used_bytes / 1048576.0, false};
    pthread_t thr;
    bool progress = isatty(STDERR_FILENO) &&
                    pthread_create(&thr, NULL, s_progress_run, &prog) == 0;
    int crc = cf_store_copy(data, dir, &err);
    if (progress) {
        atomic_store(&prog.done, true);
        pthread_join(thr, NULL);
        cf_cli_progress(NULL);
    }
    if (crc != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: %s", err.message);
        goto out_cli;
    }
    if (cf_store_inspect(dir, &facts, &err) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: the copy in %s does not open: %s", dir,
                         err.message);
        goto out_cli;
    }
    off_t size = s_file_size(dst_file);
    printf("backup: %s: %.1f MiB (%lld bytes), %llu claims\n", dir, (double)size / 1048576.0,
           (long long)size, (unsigned long long)facts.claims);
    rc = CF_EXIT_OK;
out_cli:
    cf_cli_fini(&cli);
    return rc;
}
