/* backup.c: claimctl backup - a consistent, compacted copy of the live
 * store while claimflowd keeps serving.
 *
 * LMDB lets a second process read an environment another process writes:
 * this process opens the daemon's environment read-only and runs
 * mdb_env_copy2(MDB_CP_COMPACT), which copies one read transaction's
 * snapshot - every claim committed (acknowledged) before the copy began, and
 * nothing half-written - while the daemon's writers go on.  The copy
 * registers as a reader, so the daemon cannot reuse the pages it is copying;
 * the cost is that the daemon's file may grow during a long copy.
 *
 * If the daemon grows its map while we hold the environment, our mapping is
 * too small for the new pages and LMDB says MDB_MAP_RESIZED: adopt the new
 * size (mdb_env_set_mapsize 0) and copy again from the start of the file.
 *
 * The copy is written to DIR/data.mdb.partial, synced, opened again to check
 * it, and only then renamed to DIR/data.mdb (and the directory synced): a
 * backup killed part-way leaves a file whose name says so, never a
 * data.mdb that looks complete and makes the daemon that opens it die of
 * SIGBUS past its end (issue 18, item 10).  mdb_env_copy2, which writes
 * data.mdb itself, was replaced by mdb_env_copyfd2 for that.
 *
 * A protocol op (`backup`, the daemon copying itself with cf_engine_backup)
 * was rejected: the copy would hold the daemon's single engine thread, or
 * need a thread of its own in it, for the minutes a large store takes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
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

#define S_MAXDBS 32
#define S_RETRIES 5
#define S_PARTIAL "data.mdb.partial"

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

/* The compacted copy of env into fd, from its start; MDB_MAP_RESIZED is
 * retried with the daemon's new map size.  0 or an LMDB error (an errno). */
static int s_copy(MDB_env *env, int fd)
{
    int mrc;
    for (int attempt = 0;; attempt++) {
        mrc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
        if (mrc != MDB_MAP_RESIZED || attempt == S_RETRIES)
            break;
        /* The daemon grew its map under us: adopt the size, start over. */
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
            return errno;
        if ((mrc = mdb_env_set_mapsize(env, 0)) != 0)
            break;
    }
    if (mrc == 0 && fsync(fd) != 0)
        mrc = errno;
    return mrc;
}

/* Make the rename of a file in dir durable. */
static int s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------- progress --- */
/* mdb_env_copy2 has no callback: a thread watches the copy's file grow. */
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

/* ---------------------------------------------------------------- verify --- */
/* Open the copy (the file itself) read-only, without a lock file, and count
 * its claims.  0 and *claims (-1 when the copy has no `claims` database), or
 * an LMDB error. */
static int s_verify(const char *file, long long *claims)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    int rc = mdb_env_create(&env);
    if (rc)
        return rc;
    if ((rc = mdb_env_set_maxdbs(env, S_MAXDBS)) ||
        (rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600)) ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
        goto out_env;
    *claims = -1;
    rc = mdb_dbi_open(txn, "claims", 0, &dbi);
    if (rc == 0 && (rc = mdb_stat(txn, dbi, &st)) == 0)
        *claims = (long long)st.ms_entries;
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    mdb_txn_abort(txn);
out_env:
    mdb_env_close(env);
    return rc;
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
    char why[PATH_MAX + 128], src_file[PATH_MAX], dst_file[PATH_MAX], tmp_file[PATH_MAX];
    snprintf(src_file, sizeof src_file, "%s/data.mdb", data);
    snprintf(dst_file, sizeof dst_file, "%s/data.mdb", dir);
    snprintf(tmp_file, sizeof tmp_file, "%s/" S_PARTIAL, dir);

    if (s_file_size(src_file) < 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: no claimflow store in %s (%s: %s)", data,
                         src_file, strerror(errno));
        goto out_cli;
    }
    if (s_prepare_dir(dir, why, sizeof why) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: %s", why);
        goto out_cli;
    }

    MDB_env *env = NULL;
    int mrc = mdb_env_create(&env);
    if (mrc == 0 && (mrc = mdb_env_set_maxdbs(env, S_MAXDBS)) == 0)
        mrc = mdb_env_open(env, data, MDB_RDONLY, 0600);
    if (mrc) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: cannot open the store in %s: %s", data,
                         mdb_strerror(mrc));
        goto out_env;
    }

    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    int fd = open(tmp_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: cannot create %s: %s", tmp_file,
                         strerror(errno));
        goto out_env;
    }
    s_progress_t prog = {tmp_file, (double)(info.me_last_pgno + 1) * st.ms_psize / 1048576.0, false};
    pthread_t thr;
    bool progress = isatty(STDERR_FILENO) &&
                    pthread_create(&thr, NULL, s_progress_run, &prog) == 0;
    mrc = s_copy(env, fd);
    if (progress) {
        atomic_store(&prog.done, true);
        pthread_join(thr, NULL);
        cf_cli_progress(NULL);
    }
    if (close(fd) != 0 && mrc == 0)
        mrc = errno;
    if (mrc) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: copy failed: %s", mdb_strerror(mrc));
        goto out_unlink;
    }

    long long claims;
    if ((mrc = s_verify(tmp_file, &claims)) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: the copy in %s does not open: %s", dir,
                         mdb_strerror(mrc));
        goto out_unlink;
    }
    /* Complete and checked: only now does it get the name a store has. */
    if (rename(tmp_file, dst_file) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: cannot rename %s to data.mdb: %s",
                         tmp_file, strerror(errno));
        goto out_unlink;
    }
    int err = s_sync_dir(dir);
    if (err) {
        /* data.mdb is complete; only its name may not survive a power cut. */
        rc = cf_cli_fail(CF_EXIT_REFUSED, "backup: cannot sync %s: %s", dir, strerror(err));
        goto out_env;
    }
    off_t size = s_file_size(dst_file);
    printf("backup: %s: %.1f MiB (%lld bytes)", dir, (double)size / 1048576.0, (long long)size);
    if (claims >= 0)
        printf(", %lld claims", claims);
    printf("\n");
    rc = CF_EXIT_OK;
    goto out_env;
out_unlink:
    /* A failed copy leaves nothing behind; a killed one leaves data.mdb.partial. */
    unlink(tmp_file);
out_env:
    mdb_env_close(env);
out_cli:
    cf_cli_fini(&cli);
    return rc;
}
