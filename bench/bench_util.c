/* bench_util.c: the benchmark's plumbing - clocks, the latency recorder,
 * starting and stopping the daemon under test, reading its CPU and memory
 * from /proc, and reading the store's figures with LMDB's own statistics.
 *
 * The daemon's stderr goes to a file in the run's directory, not a pipe: a
 * pipe nobody drains would block the daemon's logging, and the file is there
 * to read when a run fails.  Its endpoints come from the start line
 * (docs/protocol.md), so the run binds free ports and never collides.
 *
 * Store figures are read with a second, read-only LMDB environment on the
 * same directory - LMDB allows that while the daemon writes - so the
 * benchmark needs nothing from the daemon but its protocol.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* =============================================================== time === */

const char *const bench_kind_names[BENCH_K__COUNT] = {
    "create", "attach", "consent", "decide", "treat", "inquiry", "read",
};

double bench_self_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ============================================================ latency === */

void bench_lat_add(bench_lat_t *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return; /* a lost sample, not a lost run */
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ns;
    l->sorted = false;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t bench_lat_q(bench_lat_t *l, double q)
{
    if (l->n == 0)
        return 0;
    if (!l->sorted) {
        qsort(l->v, l->n, sizeof *l->v, s_cmp_u64);
        l->sorted = true;
    }
    /* Nearest rank: the smallest value with at least q of the samples at
     * or below it. */
    size_t rank = (size_t)(q * (double)l->n + 0.999999);
    if (rank == 0)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return l->v[rank - 1];
}

uint64_t bench_lat_max(bench_lat_t *l)
{
    return bench_lat_q(l, 1.0);
}

void bench_lat_free(bench_lat_t *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ============================================================ helpers === */

void bench_rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            bench_rmrf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

int bench_mkdtemp(const bench_opts_t *o, const char *tag, char *buf, size_t len)
{
    snprintf(buf, len, "%s/cf-bench-%s-XXXXXX", o->tmpdir, tag);
    if (!mkdtemp(buf)) {
        fprintf(stderr, "claimflow-bench: cannot create a directory in %s: %s\n", o->tmpdir,
                strerror(errno));
        return -1;
    }
    return 0;
}

void bench_cpr(uint64_t n, char out[12])
{
    /* 28 days x 12 months x 100 years x 4000 serials: every n below 134
     * million gets its own number.  Serials 0000-3999 put the year in the
     * 1900s (CPR's 7th digit 0-3), so every date is real. */
    unsigned day = 1 + (unsigned)(n % 28);
    unsigned month = 1 + (unsigned)(n / 28 % 12);
    unsigned yy = (unsigned)(n / 336 % 100);
    unsigned serial = (unsigned)(n / 33600 % 4000);
    snprintf(out, 12, "%02u%02u%02u-%04u", day, month, yy, serial);
}

uint64_t bench_rand(uint64_t *s)
{
    /* xorshift64*: reproducible mixes from --seed. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ============================================================ msgpack === */

void bench_mp_kv(msgpack_packer *pk, const char *k, const char *v)
{
    cf_pack_str(pk, k);
    cf_pack_str(pk, v);
}

void bench_mp_copy(const msgpack_object *o, char *out, size_t len)
{
    out[0] = '\0';
    if (o && o->type == MSGPACK_OBJECT_STR)
        snprintf(out, len, "%.*s", (int)o->via.str.size, o->via.str.ptr);
}

bool bench_mp_ok(const msgpack_object *rep, char *err, size_t len)
{
    const msgpack_object *ok = cf_mp_get(rep, "ok");
    if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean)
        return true;
    if (err) {
        char code[64], msg[400];
        const msgpack_object *e = cf_mp_get(rep, "error");
        bench_mp_copy(cf_mp_get(e, "code"), code, sizeof code);
        bench_mp_copy(cf_mp_get(e, "message"), msg, sizeof msg);
        snprintf(err, len, "%s: %s", code[0] ? code : "(no ok: true)", msg);
    }
    return false;
}

/* ============================================================= daemon === */

/* The value of key=... in the start line, into out. */
static void s_field(const char *line, const char *key, char *out, size_t len)
{
    const char *p = strstr(line, key);
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(key);
    size_t n = strcspn(p, " \n");
    snprintf(out, len, "%.*s", (int)n, p);
}

int bench_daemon_start(const bench_opts_t *o, const char *dir, const char *data,
                       const char *manual_clock, bench_daemon_t *d)
{
    return bench_daemon_start_cfg(o, dir, data, manual_clock, NULL, d);
}

int bench_daemon_start_cfg(const bench_opts_t *o, const char *dir, const char *data,
                           const char *manual_clock, const char *cfg_extra, bench_daemon_t *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    if (data)
        snprintf(d->data, sizeof d->data, "%s", data);
    else
        snprintf(d->data, sizeof d->data, "%s/data", dir);
    snprintf(d->log, sizeof d->log, "%s/claimflowd.log", dir);
    char cfg[600], clock[128];
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    FILE *f = fopen(cfg, "w");
    if (!f) {
        fprintf(stderr, "claimflow-bench: cannot write %s: %s\n", cfg, strerror(errno));
        return -1;
    }
    fputs("operators:\n  - id: hanne\n    role: handler\n  - id: aud\n    role: auditor\n", f);
    if (cfg_extra)
        fputs(cfg_extra, f);
    if (fclose(f) != 0) {
        fprintf(stderr, "claimflow-bench: cannot write %s: %s\n", cfg, strerror(errno));
        return -1;
    }
    snprintf(clock, sizeof clock, "%s%s", manual_clock ? "manual:" : "real",
             manual_clock ? manual_clock : "");
    if (access(o->daemon, X_OK) != 0) {
        fprintf(stderr, "claimflow-bench: the daemon %s is not there (build it, or pass "
                "--daemon)\n", o->daemon);
        return -1;
    }
    int logfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "claimflow-bench: cannot write %s: %s\n", d->log, strerror(errno));
        return -1;
    }
    const char *ep = "tcp://127.0.0.1:*";
    char *argv[16 + 8] = {(char *)o->daemon, (char *)"--data", d->data,
                          (char *)"--workflows", (char *)o->workflows, (char *)"--config", cfg,
                          (char *)"--portal", (char *)ep, (char *)"--operator", (char *)ep,
                          (char *)"--events", (char *)ep, (char *)"--clock", clock, NULL};
    for (int i = 0; i < o->ndaemon_args; i++)
        argv[15 + i] = (char *)o->daemon_args[i];
    argv[15 + o->ndaemon_args] = NULL;
    d->started_at = bench_now();
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        fprintf(stderr, "claimflow-bench: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        dup2(logfd, 2);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(logfd);
    d->pid = pid;
    /* Wait for the start line (the store is open, the sockets bound). */
    char buf[8192];
    for (int i = 0; i < 60000; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            d->pid = 0;
            FILE *lf = fopen(d->log, "r");
            size_t n = lf ? fread(buf, 1, sizeof buf - 1, lf) : 0;
            if (lf)
                fclose(lf);
            buf[n] = '\0';
            fprintf(stderr, "claimflow-bench: claimflowd exited at start (status %d):\n%s", status,
                    buf);
            return -1;
        }
        FILE *lf = fopen(d->log, "r");
        if (lf) {
            size_t n = fread(buf, 1, sizeof buf - 1, lf);
            fclose(lf);
            buf[n] = '\0';
            const char *line = strstr(buf, "claimflowd: started");
            if (line && strchr(line, '\n')) {
                d->ready_at = bench_now();
                s_field(line, "portal=", d->portal, sizeof d->portal);
                s_field(line, "operator=", d->operator, sizeof d->operator);
                s_field(line, "events=", d->events, sizeof d->events);
                if (!d->portal[0] || !d->operator[0]) {
                    fprintf(stderr, "claimflow-bench: cannot read the endpoints from: %s", line);
                    bench_daemon_stop(d);
                    return -1;
                }
                return 0;
            }
        }
        usleep(500);
    }
    fprintf(stderr, "claimflow-bench: claimflowd did not start within 30 s (log: %s)\n", d->log);
    bench_daemon_stop(d);
    return -1;
}

/* The last "loop us:" line of the log, and how many there are. */
static int s_last_profile(const char *log, char *line, size_t len)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return 0;
    char buf[4096];
    int n = 0;
    while (fgets(buf, sizeof buf, f))
        if (strstr(buf, "claimflowd: loop us: ")) {
            snprintf(line, len, "%s", buf);
            n++;
        }
    fclose(f);
    return n;
}

double bench_hist_q_us(const uint64_t hist[CF_STORE_HIST], double q)
{
    uint64_t n = 0;
    for (int b = 0; b < CF_STORE_HIST; b++)
        n += hist[b];
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999), seen = 0;
    if (rank < 1)
        rank = 1;
    for (int b = 0; b < CF_STORE_HIST; b++) {
        seen += hist[b];
        if (seen >= rank)
            return (double)cf_store_hist_lower_us(b + 1);
    }
    return (double)cf_store_hist_lower_us(CF_STORE_HIST);
}

int bench_daemon_profile(const bench_daemon_t *d, double out[7], uint64_t *batches,
                         uint64_t hist[CF_STORE_HIST])
{
    char line[4096];
    int before = s_last_profile(d->log, line, sizeof line);
    if (d->pid <= 0 || kill(d->pid, SIGUSR1) != 0)
        return -1;
    for (int i = 0; i < 200; i++) {
        if (s_last_profile(d->log, line, sizeof line) > before) {
            long long v[7];
            unsigned long long b;
            if (sscanf(strstr(line, "loop us: "),
                       "loop us: poll=%lld recv=%lld run=%lld commit=%lld stage=%lld fire=%lld "
                       "other=%lld batches=%llu",
                       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &b) != 8)
                return -1;
            for (int k = 0; k < 7; k++)
                out[k] = (double)v[k];
            *batches = b;
            memset(hist, 0, CF_STORE_HIST * sizeof hist[0]);
            const char *c = strstr(line, " commits=");
            for (c = c ? c + 9 : NULL; c && *c >= '0' && *c <= '9';) {
                char *e;
                long bucket = strtol(c, &e, 10);
                if (*e != ':')
                    break;
                unsigned long long count = strtoull(e + 1, &e, 10);
                if (bucket >= 0 && bucket < CF_STORE_HIST)
                    hist[bucket] = count;
                c = *e == ',' ? e + 1 : NULL;
            }
            return 0;
        }
        const struct timespec tick = {0, 10 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    return -1;
}

int bench_daemon_stop(bench_daemon_t *d)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 3000; i++) { /* 30 s, then SIGKILL */
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
        usleep(10000);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
    return -1;
}

int bench_cpu_read(uint64_t *total, uint64_t *steal)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *steal = v[7];
    return 0;
}

int bench_proc_read(pid_t pid, bench_proc_t *p)
{
    memset(p, 0, sizeof *p);
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command (which may hold spaces): state is field 3;
     * utime and stime are fields 14 and 15. */
    const char *q = strrchr(buf, ')');
    if (!q)
        return -1;
    unsigned long ut = 0, st = 0;
    if (sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    double hz = (double)sysconf(_SC_CLK_TCK);
    p->utime = (double)ut / hz;
    p->stime = (double)st / hz;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) != NULL) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "VmHWM:", 6) == 0)
                p->hwm_kib = strtol(line + 6, NULL, 10);
            else if (strncmp(line, "VmRSS:", 6) == 0)
                p->rss_kib = strtol(line + 6, NULL, 10);
        }
        fclose(f);
    }
    return 0;
}

/* ============================================================== store === */

static int s_env_open(const char *dir, MDB_env **ret)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc != 0)
        return -1;
    mdb_env_set_maxdbs(env, 64);
    mdb_env_set_maxreaders(env, 126);
    /* Map size 0: LMDB takes the file's current size. */
    rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc != 0) {
        fprintf(stderr, "claimflow-bench: cannot open the store %s: %s\n", dir, mdb_strerror(rc));
        mdb_env_close(env);
        return -1;
    }
    *ret = env;
    return 0;
}

int bench_store_txnid(const char *dir, uint64_t *txnid)
{
    MDB_env *env;
    if (s_env_open(dir, &env) != 0)
        return -1;
    MDB_envinfo info;
    mdb_env_info(env, &info);
    *txnid = info.me_last_txnid;
    mdb_env_close(env);
    return 0;
}

int bench_store_read(const char *dir, bool scan, bench_store_t *s)
{
    memset(s, 0, sizeof *s);
    MDB_env *env;
    if (s_env_open(dir, &env) != 0)
        return -1;
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    s->psize = st.ms_psize;
    s->last_pgno = info.me_last_pgno;
    s->last_txnid = info.me_last_txnid;
    s->map_size = info.me_mapsize;
    char path[700];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat fs;
    if (stat(path, &fs) == 0)
        s->file_bytes = (uint64_t)fs.st_size;
    MDB_txn *txn;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0) {
        mdb_env_close(env);
        return -1;
    }
    /* The main database's keys name the sub-databases. */
    MDB_dbi main;
    MDB_cursor *cur;
    if (mdb_dbi_open(txn, NULL, 0, &main) == 0 && mdb_cursor_open(txn, main, &cur) == 0) {
        MDB_val k, v;
        int op = MDB_FIRST;
        char names[BENCH_MAX_DBS][32];
        int n = 0;
        while (n < BENCH_MAX_DBS && mdb_cursor_get(cur, &k, &v, op) == 0) {
            op = MDB_NEXT;
            if (k.mv_size == 0 || k.mv_size >= sizeof names[0])
                continue;
            snprintf(names[n++], sizeof names[0], "%.*s", (int)k.mv_size, (char *)k.mv_data);
        }
        mdb_cursor_close(cur);
        for (int i = 0; i < n; i++) {
            MDB_dbi dbi;
            if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0)
                continue;
            bench_dbstat_t *d = &s->dbs[s->ndbs++];
            memcpy(d->name, names[i], sizeof d->name);
            if (mdb_stat(txn, dbi, &st) == 0) {
                d->entries = st.ms_entries;
                d->pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
            }
            if (scan && d->entries) {
                double ks = 0, vs = 0;
                uint64_t cnt = 0;
                if (mdb_cursor_open(txn, dbi, &cur) == 0) {
                    int o2 = MDB_FIRST;
                    while (mdb_cursor_get(cur, &k, &v, o2) == 0) {
                        o2 = MDB_NEXT;
                        ks += (double)k.mv_size;
                        vs += (double)v.mv_size;
                        cnt++;
                    }
                    mdb_cursor_close(cur);
                }
                if (cnt) {
                    d->avg_key = ks / (double)cnt;
                    d->avg_val = vs / (double)cnt;
                }
            }
        }
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return 0;
}

const bench_dbstat_t *bench_store_db(const bench_store_t *s, const char *name)
{
    for (int i = 0; i < s->ndbs; i++)
        if (strcmp(s->dbs[i].name, name) == 0)
            return &s->dbs[i];
    return NULL;
}

uint64_t bench_store_bytes(const bench_store_t *s, const char *const *exclude)
{
    uint64_t pages = 0;
    for (int i = 0; i < s->ndbs; i++) {
        bool skip = false;
        for (size_t j = 0; exclude && exclude[j]; j++)
            if (strcmp(exclude[j], s->dbs[i].name) == 0)
                skip = true;
        if (!skip)
            pages += s->dbs[i].pages;
    }
    return pages * s->psize;
}
