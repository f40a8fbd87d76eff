/* cmd_ops.c: claimctl's read commands - queue, show, history, timers,
 * stats, export.  Each is one or a few protocol reads and a way to show the
 * reply: an aligned table in local time for a person, or the reply's own
 * objects as JSON (--json) for a program.
 *
 * `queue` sorts client-side: the daemon's `query` returns claims oldest
 * first, and urgency (breached first, then the soonest pending timer) is a
 * view, not an index.  It therefore pages through every open claim matching
 * the filters, up to S_QUEUE_CAP, keeping each page's reply alive because the
 * sorted pointers point into them.  A server-side "urgent first" order was
 * rejected for now: the timers index cannot be joined with the filters in
 * one LMDB scan without a second index.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "country.h"
#include "json.h"

#define S_PAGE 1000            /* query's largest page */
#define S_QUEUE_CAP 20000      /* open claims queue reads at most */
#define S_SHOW_EVENTS 10

/* ----------------------------------------------------------------- paging --- */
/* Called with each page's reply; may take the page (copy *page and
 * msgpack_unpacked_init it) to keep its objects alive.  Returns 0 to go on. */
typedef int s_page_fn(void *ctx, msgpack_unpacked *page, const msgpack_object *claims);

/* Page through `query` with base's filters until the end or cap claims.
 * Returns the exit code; *truncated when cap stopped it. */
static int s_query_pages(cf_cli_t *cli, const cf_req_t *base, size_t cap, s_page_fn *fn,
                         void *ctx, bool *truncated)
{
    msgpack_unpacked prev, page;
    msgpack_unpacked_init(&prev);
    msgpack_unpacked_init(&page);
    const msgpack_object *next = NULL;
    size_t seen = 0;
    int rc = CF_EXIT_OK;
    *truncated = false;
    for (;;) {
        cf_req_t req = *base;
        cf_req_int(&req, "limit", S_PAGE);
        if (next)
            cf_req_obj(&req, "after", *next);
        if ((rc = cf_cli_call(cli, &req, &page)) != CF_EXIT_OK)
            break;
        /* The cursor we sent lived in prev; done with it now. */
        msgpack_unpacked_destroy(&prev);
        msgpack_unpacked_init(&prev);
        const msgpack_object *claims = cf_mp_get(&page.data, "claims");
        if (!claims || claims->type != MSGPACK_OBJECT_ARRAY) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "query reply without a claims list");
            break;
        }
        seen += claims->via.array.size;
        const msgpack_object *nx = cf_mp_get(&page.data, "next");
        bool more = nx && nx->type != MSGPACK_OBJECT_NIL;
        if (more && seen >= cap) {
            *truncated = true;
            more = false;
        }
        /* The callback may take the page; keep a copy of the cursor's page
         * only when it did not (otherwise the cursor lives in the taken page,
         * which stays alive until the command ends). */
        msgpack_zone *before = page.zone;
        if ((rc = fn(ctx, &page, claims)) != 0)
            break;
        if (!more)
            break;
        next = nx;
        if (page.zone == before) {
            prev = page;
            msgpack_unpacked_init(&page);
        }
    }
    msgpack_unpacked_destroy(&page);
    msgpack_unpacked_destroy(&prev);
    return rc;
}

/* -------------------------------------------------------------- helpers --- */
static bool s_has_breach(const msgpack_object *claim)
{
    const msgpack_object *flags = cf_mp_get(claim, "flags");
    if (!flags || flags->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (uint32_t i = 0; i < flags->via.array.size; i++) {
        const msgpack_object *f = &flags->via.array.ptr[i];
        if (f->type == MSGPACK_OBJECT_STR && f->via.str.size >= 9 &&
            memcmp(f->via.str.ptr + f->via.str.size - 9, ".breached", 9) == 0)
            return true;
    }
    return false;
}

static cf_time_t s_parse_time(const msgpack_object *o)
{
    cf_time_t t;
    if (o && o->type == MSGPACK_OBJECT_STR && cf_time_parse(o->via.str.ptr, o->via.str.size, &t) == 0)
        return t;
    return INT64_MAX;
}

/* The daemon's clock, from a ping reply's `now`: ages and due times are
 * measured against the engine's time, not this machine's, which may differ
 * (and does when the daemon runs --clock manual).  This machine's clock when
 * the reply has none (a daemon from before `now`). */
static cf_time_t s_daemon_now(const msgpack_object *ping)
{
    cf_time_t t = s_parse_time(cf_mp_get(ping, "now"));
    return t == INT64_MAX ? cf_time_now() : t;
}

/* The soonest due_at of the claim's pending timers; INT64_MAX when none. */
static cf_time_t s_next_due(const msgpack_object *claim)
{
    cf_time_t best = INT64_MAX;
    const msgpack_object *timers = cf_mp_get(claim, "timers");
    if (!timers || timers->type != MSGPACK_OBJECT_ARRAY)
        return best;
    for (uint32_t i = 0; i < timers->via.array.size; i++) {
        cf_time_t t = s_parse_time(cf_mp_get(&timers->via.array.ptr[i], "due_at"));
        if (t < best)
            best = t;
    }
    return best;
}

/* The flags joined by ",", and the colour of the most alarming one. */
static cf_color_t s_flags(const msgpack_object *claim, char *buf, size_t len)
{
    const msgpack_object *flags = cf_mp_get(claim, "flags");
    cf_color_t color = CF_C_RESET;
    size_t n = 0;
    buf[0] = '\0';
    if (flags && flags->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < flags->via.array.size && n + 1 < len; i++) {
            char f[128];
            cf_cli_text(&flags->via.array.ptr[i], f, sizeof f);
            cf_color_t c = cf_cli_flag_color(f);
            if (c == CF_C_RED || (c == CF_C_YELLOW && color == CF_C_RESET))
                color = c;
            int w = snprintf(buf + n, len - n, "%s%s", i ? "," : "", f);
            n = w < 0 || (size_t)w >= len - n ? len - 1 : n + (size_t)w;
        }
    if (!buf[0])
        snprintf(buf, len, "-");
    return color;
}

/* "from → to" of an event; "→ to" for claim.created. */
static char *s_move(const msgpack_object *ev, char *buf, size_t len)
{
    char from[64], to[64];
    const msgpack_object *f = cf_mp_get(ev, "from");
    cf_cli_text(cf_mp_get(ev, "to"), to, sizeof to);
    if (!f || f->type == MSGPACK_OBJECT_NIL)
        snprintf(buf, len, "→ %s", to);
    else
        snprintf(buf, len, "%s → %s", cf_cli_text(f, from, sizeof from), to);
    return buf;
}

/* Print the reply's payload as JSON: every key but ok and id. */
static void s_json_payload(const msgpack_object *reply)
{
    msgpack_object_kv kv[32];
    uint32_t n = 0;
    for (uint32_t i = 0; i < reply->via.map.size && n < 32; i++) {
        const msgpack_object *k = &reply->via.map.ptr[i].key;
        if (!cf_mp_streq(k, "ok") && !cf_mp_streq(k, "id"))
            kv[n++] = reply->via.map.ptr[i];
    }
    msgpack_object m;
    memset(&m, 0, sizeof m);
    m.type = MSGPACK_OBJECT_MAP;
    m.via.map.size = n;
    m.via.map.ptr = kv;
    cf_cli_json(&m);
}

static msgpack_object s_array(const msgpack_object *ptr, uint32_t n)
{
    msgpack_object a;
    memset(&a, 0, sizeof a);
    a.type = MSGPACK_OBJECT_ARRAY;
    a.via.array.size = n;
    a.via.array.ptr = (msgpack_object *)ptr;
    return a;
}

/* -------------------------------------------------------------- amounts --- */
/* claimctl does not read workflow definitions, so it knows an amount by its
 * name: an event data field `amount` or `*_amount` holding an integer, in
 * minor units of the claim's currency (docs/claimctl.md). */
static bool s_is_amount(const msgpack_object_kv *kv)
{
    const msgpack_object *k = &kv->key;
    if (k->type != MSGPACK_OBJECT_STR || (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                                          kv->val.type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return false;
    uint32_t n = k->via.str.size;
    return cf_mp_streq(k, "amount") ||
           (n > 7 && memcmp(k->via.str.ptr + n - 7, "_amount", 7) == 0);
}

static bool s_has_amounts(const msgpack_object *ev, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *d = cf_mp_get(&ev[i], "data");
        for (uint32_t j = 0; d && d->type == MSGPACK_OBJECT_MAP && j < d->via.map.size; j++)
            if (s_is_amount(&d->via.map.ptr[j]))
                return true;
    }
    return false;
}

/* The currency a claim map names; -1 when it names none (a daemon from
 * before the field). */
static int s_claim_currency(const msgpack_object *claim)
{
    const msgpack_object *c = cf_mp_get(claim, "currency");
    return c && c->type == MSGPACK_OBJECT_STR ? cf_currency_parse(c->via.str.ptr, c->via.str.size)
                                              : -1;
}

/* An event's data on one line, "reason: not covered, amount: 1.500,00 kr.":
 * every field in the order the event carries them, amounts in the claim's
 * currency (the bare number of minor units when the currency is unknown),
 * member-supplied text with its control characters shown as '?'. */
static char *s_detail(const msgpack_object *ev, int currency, char *buf, size_t len)
{
    const msgpack_object *d = cf_mp_get(ev, "data");
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t j = 0; d && d->type == MSGPACK_OBJECT_MAP && j < d->via.map.size; j++) {
        const msgpack_object_kv *kv = &d->via.map.ptr[j];
        if (used >= len)
            break;
        char name[72], value[4200];
        if (s_is_amount(kv)) {
            int64_t v = kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? kv->val.via.i64
                        : kv->val.via.u64 > INT64_MAX ? INT64_MAX : (int64_t)kv->val.via.u64;
            if (currency >= 0)
                cf_currency_format((cf_currency_t)currency, v, value, sizeof value);
            else
                snprintf(value, sizeof value, "%lld", (long long)v);
        } else {
            cf_cli_text(&kv->val, value, sizeof value);
        }
        int w = snprintf(buf + used, len - used, "%s%s: %s", used ? ", " : "",
                         cf_cli_text(&kv->key, name, sizeof name), value);
        used = w < 0 || (size_t)w >= len - used ? len : used + (size_t)w;
    }
    return buf;
}

/* A table of events: seq, time, event, from → to, actor, by (who acted
 * for the member, masked), channel, and each event's data (amounts in
 * currency, -1: unknown); the data cut at the terminal's width unless
 * wide. */
static void s_print_events(const cf_cli_t *cli, const msgpack_object *ev, uint32_t n,
                           int currency, bool wide)
{
    static const char *const head[] = {"SEQ", "TIME", "EVENT", "FROM → TO", "ACTOR", "BY",
                                       "CHANNEL", "DETAIL"};
    cf_table_t t;
    cf_table_init(&t, 8, head);
    t.max_width = wide ? 0 : cf_cli_term_width();
    static char detail[16384];
    for (uint32_t i = 0; i < n; i++) {
        char seq[24], at[CF_CLI_TIMELEN], event[128], move[160], actor[96], by[32], ch[16];
        const char *cells[] = {
            cf_cli_text(cf_mp_get(&ev[i], "seq"), seq, sizeof seq),
            cf_cli_time(cli, cf_mp_get(&ev[i], "at"), at),
            cf_cli_text(cf_mp_get(&ev[i], "event"), event, sizeof event),
            s_move(&ev[i], move, sizeof move),
            cf_cli_text(cf_mp_get(&ev[i], "actor"), actor, sizeof actor),
            cf_cli_text(cf_mp_get(&ev[i], "by"), by, sizeof by),
            cf_cli_text(cf_mp_get(&ev[i], "channel"), ch, sizeof ch),
            s_detail(&ev[i], currency, detail, sizeof detail),
        };
        cf_color_t colors[] = {CF_C_DIM, CF_C_RESET, CF_C_CYAN, CF_C_RESET, CF_C_RESET,
                               CF_C_RESET, CF_C_DIM, CF_C_RESET};
        if (cf_table_add(&t, cells, colors) != 0)
            break;
    }
    cf_table_print(&t, cli);
    cf_table_fini(&t);
}

/* ------------------------------------------------------------------ queue --- */
typedef struct {
    const msgpack_object *claim;
    bool breached;
    cf_time_t due;
} s_qitem_t;

typedef struct {
    msgpack_unpacked *pages;
    size_t npages, cap;
    s_qitem_t *items;
    size_t nitems, icap;
} s_queue_t;

static int s_queue_page(void *ctx, msgpack_unpacked *page, const msgpack_object *claims)
{
    s_queue_t *q = ctx;
    if (q->npages == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        msgpack_unpacked *p = realloc(q->pages, cap * sizeof *p);
        if (!p)
            return cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
        q->pages = p, q->cap = cap;
    }
    if (q->nitems + claims->via.array.size > q->icap) {
        size_t cap = (q->nitems + claims->via.array.size) * 2;
        s_qitem_t *it = realloc(q->items, cap * sizeof *it);
        if (!it)
            return cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
        q->items = it, q->icap = cap;
    }
    for (uint32_t i = 0; i < claims->via.array.size; i++) {
        const msgpack_object *c = &claims->via.array.ptr[i];
        q->items[q->nitems++] = (s_qitem_t){c, s_has_breach(c), s_next_due(c)};
    }
    q->pages[q->npages++] = *page;     /* take it: the items point into it */
    msgpack_unpacked_init(page);
    return 0;
}

static int s_cmp_str(const msgpack_object *a, const msgpack_object *b)
{
    if (!a || a->type != MSGPACK_OBJECT_STR || !b || b->type != MSGPACK_OBJECT_STR)
        return 0;
    uint32_t n = a->via.str.size < b->via.str.size ? a->via.str.size : b->via.str.size;
    int c = memcmp(a->via.str.ptr, b->via.str.ptr, n);
    return c ? c : (a->via.str.size > b->via.str.size) - (a->via.str.size < b->via.str.size);
}

/* Breached first, then the soonest due timer, then the oldest claim (ids
 * sort by creation time). */
static int s_urgency(const void *pa, const void *pb)
{
    const s_qitem_t *a = pa, *b = pb;
    if (a->breached != b->breached)
        return a->breached ? -1 : 1;
    if (a->due != b->due)
        return a->due < b->due ? -1 : 1;
    return s_cmp_str(cf_mp_get(a->claim, "id"), cf_mp_get(b->claim, "id"));
}

int cf_cmd_queue(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "queue", "", "Open claims, most urgent first: breached SLAs, then the soonest due timer.",
        "examples:\n"
        "  claimctl queue --as hanne\n"
        "  claimctl queue --workflow health_claim --flag sla.breached --limit 20\n"
        "  claimctl queue --state in_review --json | jq -r '.claims[].id'\n"
        "  claimctl queue --mine --as sofie          # the claims sofie owns\n"
        "  claimctl queue --unowned --state complaint_review --workflow health_claim\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_LOCAL, 0, 0};
    const char *workflow = NULL, *state = NULL, *flag = NULL, *owner = NULL;
    bool mine = false, unowned = false;
    long limit = 100;
    const cf_opt_t opts[] = {
        {"workflow", "W", "only claims of workflow W (health_claim, inquiry, ...)", CF_OPT_STR, &workflow, false},
        {"state", "S", "only claims in state S", CF_OPT_STR, &state, false},
        {"flag", "F", "only claims with flag F (e.g. sla.breached)", CF_OPT_STR, &flag, false},
        {"mine", NULL, "only claims the operator (--as) owns", CF_OPT_FLAG, &mine, false},
        {"owner", "OP", "only claims operator OP owns", CF_OPT_STR, &owner, false},
        {"unowned", NULL, "only claims nobody owns", CF_OPT_FLAG, &unowned, false},
        {"limit", "N", "show at most N claims (default 100)", CF_OPT_COUNT, &limit, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    if (mine + (owner != NULL) + unowned > 1) {
        rc = cf_cli_usage_error(&cli, "--mine, --owner and --unowned exclude each other");
        cf_cli_fini(&cli);
        return rc;
    }
    if (mine && !cli.actor) {
        rc = cf_cli_usage_error(&cli, "--mine needs --as OPERATOR (or CLAIMFLOW_OPERATOR)");
        cf_cli_fini(&cli);
        return rc;
    }
    if (mine)
        owner = cli.actor;

    /* `query` takes a state only with its workflow (the index is workflow,
     * state, claim): without --workflow, ask each workflow the daemon runs. */
    s_queue_t q = {0};
    bool truncated = false;
    msgpack_unpacked ping;
    msgpack_unpacked_init(&ping);
    const msgpack_object *wfs = NULL;
    cf_req_t preq;
    cf_req_init(&preq, "ping");
    if ((rc = cf_cli_call(&cli, &preq, &ping)) != 0)
        goto out;
    cf_time_t now = s_daemon_now(&ping.data);
    if (state && !workflow) {
        wfs = cf_mp_get(&ping.data, "workflows");
        if (!wfs || wfs->type != MSGPACK_OBJECT_ARRAY) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "queue: claimflowd's ping reply has no workflows");
            goto out;
        }
    }
    for (uint32_t w = 0; w < (wfs ? wfs->via.array.size : 1); w++) {
        char name[128];
        const char *wf = workflow;
        if (wfs) {
            /* One query per name: the list has a row per version. */
            char other[128];
            bool seen = false;
            if (!(wf = cf_mp_get_str(&wfs->via.array.ptr[w], "name", name, sizeof name)))
                continue;
            for (uint32_t k = 0; k < w && !seen; k++)
                seen = cf_mp_get_str(&wfs->via.array.ptr[k], "name", other, sizeof other) &&
                       strcmp(other, name) == 0;
            if (seen)
                continue;
        }
        cf_req_t req;
        cf_req_init(&req, "query");
        cf_req_bool(&req, "open", true);
        if (wf)
            cf_req_str(&req, "workflow", wf);
        if (state)
            cf_req_str(&req, "state", state);
        if (flag)
            cf_req_str(&req, "flag", flag);
        if (owner)
            cf_req_str(&req, "owner", owner);
        if (unowned)
            cf_req_bool(&req, "unowned", true);
        bool cut;
        if ((rc = s_query_pages(&cli, &req, S_QUEUE_CAP, s_queue_page, &q, &cut)) != 0)
            goto out;
        truncated |= cut;
    }
    if (truncated)
        fprintf(stderr, "claimctl: queue: more than %d open claims match; sorted the "
                        "first %d only (narrow with --workflow/--state/--flag)\n",
                S_QUEUE_CAP, S_QUEUE_CAP);
    if (q.nitems)
        qsort(q.items, q.nitems, sizeof *q.items, s_urgency);
    size_t shown = q.nitems < (size_t)limit ? q.nitems : (size_t)limit;

    if (cli.json) {
        msgpack_object *arr = calloc(shown ? shown : 1, sizeof *arr);
        if (!arr) {
            rc = cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < shown; i++)
            arr[i] = *q.items[i].claim;
        cf_cli_json_one("claims", s_array(arr, (uint32_t)shown));
        free(arr);
        goto out;
    }
    static const char *const head[] = {"ID", "STATE", "TREATMENT", "AGE", "NEXT DUE", "OWNER",
                                       "FLAGS"};
    cf_table_t t;
    cf_table_init(&t, 7, head);
    for (size_t i = 0; i < shown; i++) {
        const msgpack_object *c = q.items[i].claim;
        char id[64], st[64], what[64], age[32], due[CF_CLI_TIMELEN], own[72], flags[256];
        const msgpack_object *tr = cf_mp_get(cf_mp_get(c, "data"), "treatment");
        if (tr)
            cf_cli_text(tr, what, sizeof what);
        else /* an inquiry has no treatment: say what it is */
            snprintf(what, sizeof what, "(%s)", cf_cli_text(cf_mp_get(c, "workflow"), id, sizeof id));
        cf_time_t created = s_parse_time(cf_mp_get(c, "created_at"));
        cf_color_t fc = s_flags(c, flags, sizeof flags);
        const char *cells[] = {
            cf_cli_text(cf_mp_get(c, "id"), id, sizeof id),
            cf_cli_text(cf_mp_get(c, "state"), st, sizeof st),
            what,
            created == INT64_MAX ? "-" : cf_cli_age((long long)(now - created), age, sizeof age),
            q.items[i].due == INT64_MAX ? "-" : cf_cli_time_at(&cli, q.items[i].due, due),
            cf_cli_text(cf_mp_get(c, "owner"), own, sizeof own),
            flags,
        };
        cf_color_t colors[] = {CF_C_RESET, CF_C_RESET, CF_C_RESET, CF_C_DIM,
                               q.items[i].due < now ? CF_C_RED : CF_C_RESET, CF_C_RESET, fc};
        if (cf_table_add(&t, cells, colors) != 0)
            break;
    }
    if (q.nitems == 0)
        printf("no open claims%s\n", workflow || state || flag || owner || unowned ? " match" : "");
    else
        cf_table_print(&t, &cli);
    if (shown < q.nitems)
        printf("... and %zu more (--limit)\n", q.nitems - shown);
    cf_table_fini(&t);

out:
    msgpack_unpacked_destroy(&ping);
    for (size_t i = 0; i < q.npages; i++)
        msgpack_unpacked_destroy(&q.pages[i]);
    free(q.pages);
    free(q.items);
    cf_cli_fini(&cli);
    return rc;
}

/* ------------------------------------------------------------------- show --- */
static void s_show_claim(const cf_cli_t *cli, const msgpack_object *c)
{
    char a[256], b[CF_CLI_TIMELEN], w[64];
    const char *bold = cf_cli_color(cli, CF_C_BOLD), *reset = cf_cli_color(cli, CF_C_RESET);
    printf("%sclaim%s      %s\n", bold, reset, cf_cli_text(cf_mp_get(c, "id"), a, sizeof a));
    printf("workflow   %s v%s\n", cf_cli_text(cf_mp_get(c, "workflow"), a, sizeof a),
           cf_cli_text(cf_mp_get(c, "version"), w, sizeof w));
    printf("state      %s%s%s\n", bold, cf_cli_text(cf_mp_get(c, "state"), a, sizeof a), reset);
    if (cf_mp_get(c, "owner"))
        printf("owner      %s\n", cf_cli_text(cf_mp_get(c, "owner"), a, sizeof a));
    if (cf_mp_get(c, "country"))
        printf("country    %s\n", cf_cli_text(cf_mp_get(c, "country"), a, sizeof a));
    if (cf_mp_get(c, "currency"))
        printf("currency   %s\n", cf_cli_text(cf_mp_get(c, "currency"), a, sizeof a));
    cf_color_t fc = s_flags(c, a, sizeof a);
    printf("flags      %s%s%s\n", cf_cli_color(cli, fc), a, fc == CF_C_RESET ? "" : reset);
    if (cf_mp_get(c, "parent"))
        printf("parent     %s\n", cf_cli_text(cf_mp_get(c, "parent"), a, sizeof a));
    printf("created    %s\n", cf_cli_time(cli, cf_mp_get(c, "created_at"), b));
    printf("updated    %s\n", cf_cli_time(cli, cf_mp_get(c, "updated_at"), b));

    const msgpack_object *data = cf_mp_get(c, "data");
    printf("\n%sdata%s\n", bold, reset);
    if (data && data->type == MSGPACK_OBJECT_MAP && data->via.map.size) {
        static const char *const head[] = {"FIELD", "VALUE"};
        cf_table_t t;
        cf_table_init(&t, 2, head);
        int currency = s_claim_currency(c);
        for (uint32_t i = 0; i < data->via.map.size; i++) {
            const msgpack_object_kv *kv = &data->via.map.ptr[i];
            char k[128], v[512];
            if (s_is_amount(kv) && currency >= 0 && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                kv->val.via.u64 <= INT64_MAX)
                cf_currency_format((cf_currency_t)currency, (int64_t)kv->val.via.u64, v, sizeof v);
            else
                cf_cli_text(&kv->val, v, sizeof v);
            const char *cells[] = {cf_cli_text(&kv->key, k, sizeof k), v};
            cf_table_add(&t, cells, NULL);
        }
        cf_table_print(&t, cli);
        cf_table_fini(&t);
    } else {
        printf("(none)\n");
    }

    const msgpack_object *timers = cf_mp_get(c, "timers");
    printf("\n%stimers%s\n", bold, reset);
    if (timers && timers->type == MSGPACK_OBJECT_ARRAY && timers->via.array.size) {
        static const char *const head[] = {"TIMER", "DUE"};
        cf_table_t t;
        cf_table_init(&t, 2, head);
        cf_time_t now = cf_time_now();
        for (uint32_t i = 0; i < timers->via.array.size; i++) {
            const msgpack_object *tm = &timers->via.array.ptr[i];
            char n[128], d[CF_CLI_TIMELEN];
            const char *cells[] = {cf_cli_text(cf_mp_get(tm, "name"), n, sizeof n),
                                   cf_cli_time(cli, cf_mp_get(tm, "due_at"), d)};
            cf_color_t colors[] = {CF_C_RESET,
                                   s_parse_time(cf_mp_get(tm, "due_at")) < now ? CF_C_RED : CF_C_RESET};
            cf_table_add(&t, cells, colors);
        }
        cf_table_print(&t, cli);
        cf_table_fini(&t);
    } else {
        printf("(none pending)\n");
    }

    const msgpack_object *docs = cf_mp_get(c, "documents");
    printf("\n%sdocuments%s\n", bold, reset);
    if (docs && docs->type == MSGPACK_OBJECT_ARRAY && docs->via.array.size) {
        static const char *const head[] = {"KIND", "SIZE", "SHA256"};
        cf_table_t t;
        cf_table_init(&t, 3, head);
        for (uint32_t i = 0; i < docs->via.array.size; i++) {
            const msgpack_object *d = &docs->via.array.ptr[i];
            char k[64], s[32], h[80];
            const char *cells[] = {cf_cli_text(cf_mp_get(d, "kind"), k, sizeof k),
                                   cf_cli_text(cf_mp_get(d, "size"), s, sizeof s),
                                   cf_cli_text(cf_mp_get(d, "sha256"), h, sizeof h)};
            cf_table_add(&t, cells, NULL);
        }
        cf_table_print(&t, cli);
        cf_table_fini(&t);
    } else {
        printf("(none)\n");
    }
}

/* ------------------------------------------------------- history pages --- */
/* A claim's whole history: `history` is paged (at most 1,000 events and
 * about 1 MiB a reply), so follow `next` to the end, keeping every page's
 * reply alive for the events that point into it. */
typedef struct {
    msgpack_unpacked *pages;
    size_t npages;
    msgpack_object *ev;
    uint32_t n;
} s_history_t;

static void s_history_fini(s_history_t *h)
{
    for (size_t i = 0; i < h->npages; i++)
        msgpack_unpacked_destroy(&h->pages[i]);
    free(h->pages);
    free(h->ev);
    memset(h, 0, sizeof *h);
}

static int s_history_all(cf_cli_t *cli, const char *claim, s_history_t *h)
{
    memset(h, 0, sizeof *h);
    const msgpack_object *next = NULL;
    for (;;) {
        msgpack_unpacked *pages = realloc(h->pages, (h->npages + 1) * sizeof *pages);
        if (!pages)
            return cf_cli_fail(CF_EXIT_REFUSED, "history: out of memory");
        h->pages = pages;
        msgpack_unpacked *page = &h->pages[h->npages++];
        msgpack_unpacked_init(page);
        cf_req_t req;
        cf_req_init(&req, "history");
        cf_req_str(&req, "claim", claim);
        if (next)
            cf_req_obj(&req, "after", *next);
        int rc = cf_cli_call(cli, &req, page);
        if (rc != CF_EXIT_OK)
            return rc;
        const msgpack_object *events = cf_mp_get(&page->data, "events");
        if (!events || events->type != MSGPACK_OBJECT_ARRAY)
            return cf_cli_fail(CF_EXIT_CONNECT, "history: claimflowd's reply has no events");
        uint32_t k = events->via.array.size;
        msgpack_object *ev = realloc(h->ev, ((size_t)h->n + k + 1) * sizeof *ev);
        if (!ev)
            return cf_cli_fail(CF_EXIT_REFUSED, "history: out of memory");
        h->ev = ev;
        memcpy(h->ev + h->n, events->via.array.ptr, k * sizeof *ev);
        h->n += k;
        next = cf_mp_get(&page->data, "next");
        if (!next || next->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return CF_EXIT_OK;
        if (k == 0)
            return cf_cli_fail(CF_EXIT_CONNECT, "history: claimflowd's reply is empty but "
                               "names a next page");
    }
}

int cf_cmd_show(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "show", "CLAIM", "A claim: data, state, flags, timers (local time), documents and its last 10 events.",
        "examples:\n"
        "  claimctl show 01JDX3M4QK8Z6V1N2B3C4D5E6F --as hanne\n"
        "  claimctl show 01JDX3M4QK8Z6V1N2B3C4D5E6F --wide   # each event's data whole\n"
        "  claimctl show 01JDX3M4QK8Z6V1N2B3C4D5E6F --json   # {\"claim\": {...}, \"events\": [...]}\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_LOCAL, 1, 1};
    bool wide = false;
    const cf_opt_t opts[] = {
        {"wide", NULL, "each event's data whole, not cut at the terminal's width", CF_OPT_FLAG,
         &wide, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, 1, argc, argv);
    if (rc >= 0)
        return rc;
    msgpack_unpacked got;
    msgpack_unpacked_init(&got);
    s_history_t hist = {0};
    cf_req_t req;
    cf_req_init(&req, "get");
    cf_req_str(&req, "claim", cli.args[0]);
    if ((rc = cf_cli_call(&cli, &req, &got)) != 0)
        goto out;
    if ((rc = s_history_all(&cli, cli.args[0], &hist)) != 0)
        goto out;

    const msgpack_object *claim = cf_mp_get(&got.data, "claim");
    if (!claim || claim->type != MSGPACK_OBJECT_MAP) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "show: claimflowd's reply has no claim");
        goto out;
    }
    uint32_t n = hist.n;
    uint32_t first = n > S_SHOW_EVENTS ? n - S_SHOW_EVENTS : 0;
    if (cli.json) {
        msgpack_object_kv kv[2] = {
            {cf_mp_str("claim"), *claim},
            {cf_mp_str("events"), s_array(hist.ev + first, n - first)},
        };
        msgpack_object m;
        memset(&m, 0, sizeof m);
        m.type = MSGPACK_OBJECT_MAP;
        m.via.map.size = 2;
        m.via.map.ptr = kv;
        cf_cli_json(&m);
        goto out;
    }
    s_show_claim(&cli, claim);
    printf("\n%slast events%s (%u of %u)\n", cf_cli_color(&cli, CF_C_BOLD),
           cf_cli_color(&cli, CF_C_RESET), n - first, n);
    s_print_events(&cli, hist.ev + first, n - first, s_claim_currency(claim), wide);
out:
    s_history_fini(&hist);
    msgpack_unpacked_destroy(&got);
    cf_cli_fini(&cli);
    return rc;
}

/* ---------------------------------------------------------------- history --- */
int cf_cmd_history(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "history", "CLAIM", "A claim's whole history, one event a line: seq, time, event, from → to, actor, data.",
        "The data (reason, text, amount, ...) is cut with … at the terminal's width;\n"
        "--wide prints it whole.\n\n"
        "examples:\n"
        "  claimctl history 01JDX3M4QK8Z6V1N2B3C4D5E6F --as aud\n"
        "  claimctl history 01JDX3M4QK8Z6V1N2B3C4D5E6F --wide\n"
        "  claimctl history 01JDX3M4QK8Z6V1N2B3C4D5E6F --json   # {\"events\": [...]}\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_LOCAL, 1, 1};
    bool wide = false;
    const cf_opt_t opts[] = {
        {"wide", NULL, "each event's data whole, not cut at the terminal's width", CF_OPT_FLAG,
         &wide, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, 1, argc, argv);
    if (rc >= 0)
        return rc;
    s_history_t hist;
    msgpack_unpacked got;
    msgpack_unpacked_init(&got);
    if ((rc = s_history_all(&cli, cli.args[0], &hist)) != 0)
        goto out;
    if (cli.json) {
        cf_cli_json_one("events", s_array(hist.ev, hist.n));
        goto out;
    }
    /* Amounts need the claim's currency: one `get` (in the access log),
     * made only when an event has an amount. */
    int currency = -1;
    if (s_has_amounts(hist.ev, hist.n)) {
        cf_req_t req;
        cf_req_init(&req, "get");
        cf_req_str(&req, "claim", cli.args[0]);
        if ((rc = cf_cli_call(&cli, &req, &got)) != 0)
            goto out;
        currency = s_claim_currency(cf_mp_get(&got.data, "claim"));
    }
    s_print_events(&cli, hist.ev, hist.n, currency, wide);
out:
    msgpack_unpacked_destroy(&got);
    s_history_fini(&hist);
    cf_cli_fini(&cli);
    return rc;
}

/* ----------------------------------------------------------------- timers --- */
int cf_cmd_timers(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "timers", "", "Pending timers (SLA warnings and deadlines, complaint windows), soonest first.",
        "DUR is a duration as in the workflows: 30m, 2h, 1d, 1w, 2bd (business days\n"
        "of the --calendar).  Without --due-within or --due-before: every pending timer.\n\n"
        "examples:\n"
        "  claimctl timers --due-within 1d --as hanne\n"
        "  claimctl timers --due-before 2026-11-27T00:00:00Z --json\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_LOCAL, 0, 0};
    const char *within = NULL, *before = NULL;
    long limit = 100;
    const cf_opt_t opts[] = {
        {"due-within", "DUR", "only timers due before now + DUR", CF_OPT_STR, &within, false},
        {"due-before", "TIME", "only timers due before TIME (RFC 3339)", CF_OPT_STR, &before, false},
        {"limit", "N", "at most N timers (default 100, at most 1000)", CF_OPT_COUNT, &limit, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    char due_before[CF_TIME_BUFLEN];
    cf_time_t now = 0, until;
    cf_req_t req;
    cf_req_init(&req, "timers");
    if (within && before) {
        rc = cf_cli_usage_error(&cli, "give --due-within or --due-before, not both");
        goto out;
    }
    if (limit > 1000) {
        rc = cf_cli_usage_error(&cli, "--limit: at most 1000");
        goto out;
    }
    cf_dur_t d;
    if (within && cf_dur_parse(within, &d) != 0) {
        rc = cf_cli_usage_error(&cli, "--due-within: '%s' is not a duration (30m, 2h, 1d, 1w, 2bd)", within);
        goto out;
    }
    /* "Due within" and "overdue" count from the daemon's now. */
    cf_req_t preq;
    cf_req_init(&preq, "ping");
    if ((rc = cf_cli_call(&cli, &preq, &rep)) != 0)
        goto out;
    now = s_daemon_now(&rep.data);
    msgpack_unpacked_destroy(&rep);
    msgpack_unpacked_init(&rep);
    if (within) {
        if (cli.cal) {
            if (cf_cal_add(cli.cal, now, d, &until) != 0) {
                rc = cf_cli_usage_error(&cli, "--due-within: '%s' is too far", within);
                goto out;
            }
        } else if (d.unit == CF_DUR_BDAYS || d.unit == CF_DUR_YEARS) {
            rc = cf_cli_usage_error(&cli, "--due-within %s needs a calendar (--workflows DIR)", within);
            goto out;
        } else {
            static const int64_t unit[] = {[CF_DUR_MINUTES] = 60, [CF_DUR_HOURS] = 3600,
                                           [CF_DUR_DAYS] = 86400, [CF_DUR_WEEKS] = 7 * 86400};
            until = now + d.n * unit[d.unit];
        }
        cf_req_str(&req, "due_before", cf_time_format(until, due_before));
    } else if (before) {
        if (cf_time_parse(before, strlen(before), &until) != 0) {
            rc = cf_cli_usage_error(&cli, "--due-before: '%s' is not an RFC 3339 time", before);
            goto out;
        }
        cf_req_str(&req, "due_before", cf_time_format(until, due_before));
    }
    cf_req_int(&req, "limit", limit);
    if ((rc = cf_cli_call(&cli, &req, &rep)) != 0)
        goto out;
    const msgpack_object *timers = cf_mp_get(&rep.data, "timers");
    if (!timers || timers->type != MSGPACK_OBJECT_ARRAY) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "timers: claimflowd's reply has no timers");
        goto out;
    }
    if (cli.json) {
        cf_cli_json_one("timers", *timers);
        goto out;
    }
    if (timers->via.array.size == 0) {
        printf("no pending timers%s\n", within || before ? " due by then" : "");
        goto out;
    }
    static const char *const head[] = {"DUE", "CLAIM", "WORKFLOW", "STATE", "TIMER", "EVENT"};
    cf_table_t t;
    cf_table_init(&t, 6, head);
    for (uint32_t i = 0; i < timers->via.array.size; i++) {
        const msgpack_object *tm = &timers->via.array.ptr[i];
        char due[CF_CLI_TIMELEN], c[64], w[64], s[64], n[64], e[64];
        const char *cells[] = {
            cf_cli_time(&cli, cf_mp_get(tm, "due_at"), due),
            cf_cli_text(cf_mp_get(tm, "claim"), c, sizeof c),
            cf_cli_text(cf_mp_get(tm, "workflow"), w, sizeof w),
            cf_cli_text(cf_mp_get(tm, "state"), s, sizeof s),
            cf_cli_text(cf_mp_get(tm, "name"), n, sizeof n),
            cf_cli_text(cf_mp_get(tm, "event"), e, sizeof e),
        };
        cf_color_t colors[] = {s_parse_time(cf_mp_get(tm, "due_at")) < now ? CF_C_RED : CF_C_RESET,
                               CF_C_RESET, CF_C_RESET, CF_C_RESET, CF_C_RESET, CF_C_CYAN};
        cf_table_add(&t, cells, colors);
    }
    cf_table_print(&t, &cli);
    cf_table_fini(&t);
out:
    msgpack_unpacked_destroy(&rep);
    cf_cli_fini(&cli);
    return rc;
}

/* ------------------------------------------------------------------ stats --- */
int cf_cmd_stats(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "stats", "", "Counts: claims per workflow and state, flags (breached SLAs), pending and overdue timers.",
        "examples:\n"
        "  claimctl stats --as sofie\n"
        "  claimctl stats --json | jq '.timers.overdue'\n",
        CF_CO_DAEMON | CF_CO_JSON, 0, 0};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    cf_req_t req;
    cf_req_init(&req, "stats");
    if ((rc = cf_cli_call(&cli, &req, &rep)) != 0)
        goto out;
    if (cli.json) {
        s_json_payload(&rep.data);
        goto out;
    }
    char a[64], b[64];
    const msgpack_object *timers = cf_mp_get(&rep.data, "timers");
    const char *bold = cf_cli_color(&cli, CF_C_BOLD), *reset = cf_cli_color(&cli, CF_C_RESET);
    printf("%sclaims%s  %s\n", bold, reset, cf_cli_text(cf_mp_get(&rep.data, "claims"), a, sizeof a));
    printf("%stimers%s  %s pending, %s overdue\n", bold, reset,
           cf_cli_text(cf_mp_get(timers, "pending"), a, sizeof a),
           cf_cli_text(cf_mp_get(timers, "overdue"), b, sizeof b));

    const msgpack_object *states = cf_mp_get(&rep.data, "states");
    if (states && states->type == MSGPACK_OBJECT_ARRAY && states->via.array.size) {
        static const char *const head[] = {"WORKFLOW", "STATE", "COUNT"};
        cf_table_t t;
        cf_table_init(&t, 3, head);
        for (uint32_t i = 0; i < states->via.array.size; i++) {
            const msgpack_object *s = &states->via.array.ptr[i];
            char w[64], st[64], n[32];
            const char *cells[] = {cf_cli_text(cf_mp_get(s, "workflow"), w, sizeof w),
                                   cf_cli_text(cf_mp_get(s, "state"), st, sizeof st),
                                   cf_cli_text(cf_mp_get(s, "count"), n, sizeof n)};
            cf_table_add(&t, cells, NULL);
        }
        printf("\n");
        cf_table_print(&t, &cli);
        cf_table_fini(&t);
    }
    const msgpack_object *flags = cf_mp_get(&rep.data, "flags");
    if (flags && flags->type == MSGPACK_OBJECT_ARRAY && flags->via.array.size) {
        static const char *const head[] = {"FLAG", "COUNT"};
        cf_table_t t;
        cf_table_init(&t, 2, head);
        for (uint32_t i = 0; i < flags->via.array.size; i++) {
            const msgpack_object *f = &flags->via.array.ptr[i];
            char fl[64], n[32];
            const char *cells[] = {cf_cli_text(cf_mp_get(f, "flag"), fl, sizeof fl),
                                   cf_cli_text(cf_mp_get(f, "count"), n, sizeof n)};
            cf_color_t colors[] = {cf_cli_flag_color(fl), CF_C_RESET};
            cf_table_add(&t, cells, colors);
        }
        printf("\n");
        cf_table_print(&t, &cli);
        cf_table_fini(&t);
    }
out:
    msgpack_unpacked_destroy(&rep);
    cf_cli_fini(&cli);
    return rc;
}

/* ----------------------------------------------------------------- export --- */
typedef struct {
    size_t n;
} s_export_t;

static int s_export_page(void *ctx, msgpack_unpacked *page, const msgpack_object *claims)
{
    s_export_t *x = ctx;
    (void)page;
    for (uint32_t i = 0; i < claims->via.array.size; i++) {
        cf_json_print(stdout, &claims->via.array.ptr[i], 0);
        fputc('\n', stdout);
    }
    x->n += claims->via.array.size;
    cf_cli_progress("claimctl: export: %zu claims", x->n);
    if (ferror(stdout))
        return cf_cli_fail(CF_EXIT_REFUSED, "export: cannot write the output");
    return 0;
}

int cf_cmd_export(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "export", "", "Every claim (open and closed), one JSON object a line, oldest first, for reports.",
        "examples:\n"
        "  claimctl export --as aud > claims.jsonl\n"
        "  claimctl export --workflow inquiry --as aud | jq -r 'select(.state==\"open\") | .id'\n"
        "  claimctl export --member 0101901234 --purpose 'written request' --reveal > member.jsonl\n"
        "      # everything held about one member (claimctl export --member X --help)\n",
        CF_CO_DAEMON, 0, 0};
    const char *workflow = NULL;
    const cf_opt_t opts[] = {
        {"workflow", "W", "only claims of workflow W", CF_OPT_STR, &workflow, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    cf_req_t req;
    cf_req_init(&req, "query");
    if (workflow)
        cf_req_str(&req, "workflow", workflow);
    s_export_t x = {0};
    bool truncated;
    rc = s_query_pages(&cli, &req, SIZE_MAX, s_export_page, &x, &truncated);
    if (x.n)
        cf_cli_progress(NULL);
    if (rc == 0 && fflush(stdout) != 0)
        rc = cf_cli_fail(CF_EXIT_REFUSED, "export: cannot write the output");
    cf_cli_fini(&cli);
    return rc;
}
