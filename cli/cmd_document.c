/* cmd_document.c: claimctl document - one document of a claim, fetched in
 * ranges and written to a file (or stdout), checked against its SHA-256.
 *
 * The daemon's `document` op takes `offset` and `length` (at most 256 KiB,
 * docs/protocol.md): claimctl asks for one range after another and writes
 * each as it comes, so neither the daemon nor claimctl ever holds more than
 * one range of a document of up to 10 MiB, and a reply is never bigger than
 * the other ops' (~1 MiB).  The whole body in one reply was rejected: a
 * client that asks for 10 MiB documents and does not read makes the daemon
 * queue 10 MiB a reply (docs/RELIABILITY.md, "Bounds").
 *
 * A file is written as FILE.partial and renamed to FILE only when every
 * byte arrived and the SHA-256 of what was written is the one asked for,
 * so a FILE that exists is the document; on a mismatch or a failure the
 * partial file is removed.  On stdout (`-o -`, or no -o when stdout is not
 * a terminal) bytes go out as they come: the exit code says whether they
 * were the document.  Each range is an access-log entry (op `document`).
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"

#define S_RANGE (256 * 1024)     /* the daemon's largest range */

static bool s_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int cf_cmd_document(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "document", "CLAIM SHA256",
        "A claim's document, fetched in ranges of 256 KiB, checked against its SHA-256.",
        "The document is written to FILE (created as FILE.partial and renamed once\n"
        "complete and checked) or, with -o - or when stdout is not a terminal, to\n"
        "stdout.  SHA256 is the document's, as `show` lists it.\n\n"
        "examples:\n"
        "  claimctl document 01JDX3M4QK8Z6V1N2B3C4D5E6F 9f86d0...0f00a08 -o referral.pdf\n"
        "  claimctl document 01JDX3M4QK8Z6V1N2B3C4D5E6F 9f86d0...0f00a08 > referral.pdf\n",
        CF_CO_DAEMON, 2, 2};
    const char *out = NULL;
    const cf_opt_t opts[] = {
        {"output", "FILE", "write the document to FILE (- for stdout); also -o FILE", CF_OPT_STR,
         &out, false},
    };
    /* -o is --output: the one short option of claimctl, as curl and cc
     * spell it.  (argv is ours to change; the strings stay argv's.) */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = (char *)"--output";
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    const char *claim = cli.args[0], *sha = cli.args[1];
    if (!s_hex64(sha)) {
        rc = cf_cli_usage_error(&cli, "SHA256 must be 64 lower-case hex digits");
        cf_cli_fini(&cli);
        return rc;
    }
    cf_req_t base;
    cf_req_init(&base, "document");
    cf_req_str(&base, "claim", claim);
    cf_req_str(&base, "sha256", sha);
    rc = cf_cli_fetch_document(&cli, "document", &base, sha, out);
    cf_cli_fini(&cli);
    return rc;
}

int cf_cli_fetch_document(cf_cli_t *cli, const char *what, const cf_req_t *base,
                          const char *sha, const char *out)
{
    int rc;
    FILE *f = NULL;
    char *partial = NULL;
    char want[65] = "";
    if (sha)
        snprintf(want, sizeof want, "%s", sha);
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    bool to_stdout = !out || strcmp(out, "-") == 0;
    if (!out && isatty(STDOUT_FILENO)) {
        rc = cf_cli_usage_error(cli, "stdout is a terminal: give -o FILE (or -o - to "
                                     "write the bytes there anyway)");
        goto out;
    }
    if (to_stdout) {
        f = stdout;
    } else {
        if (asprintf(&partial, "%s.partial", out) < 0) {
            partial = NULL;
            rc = cf_cli_fail(CF_EXIT_REFUSED, "%s: out of memory", what);
            goto out;
        }
        if (!(f = fopen(partial, "wb"))) {
            rc = cf_cli_fail(CF_EXIT_REFUSED, "%s: cannot write %s: %s", what, partial,
                             strerror(errno));
            goto out;
        }
    }
    if (sodium_init() < 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "%s: libsodium cannot start", what);
        goto out_partial;
    }
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    uint64_t offset = 0, size = 0;
    for (;;) {
        cf_req_t req = *base;
        cf_req_int(&req, "offset", (int64_t)offset);
        cf_req_int(&req, "length", S_RANGE);
        msgpack_unpacked_destroy(&rep);
        msgpack_unpacked_init(&rep);
        if ((rc = cf_cli_call(cli, &req, &rep)) != CF_EXIT_OK)
            goto out_partial;
        const msgpack_object *d = cf_mp_get(&rep.data, "document");
        const msgpack_object *body = d ? cf_mp_get(d, "body") : NULL;
        const msgpack_object *sz = d ? cf_mp_get(d, "size") : NULL;
        const msgpack_object *dsha = d ? cf_mp_get(d, "sha256") : NULL;
        if (!body || body->type != MSGPACK_OBJECT_BIN || !sz ||
            sz->type != MSGPACK_OBJECT_POSITIVE_INTEGER || body->via.bin.size > S_RANGE) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "%s: claimflowd's reply holds no range of the "
                                              "document", what);
            goto out_partial;
        }
        if (offset == 0) {
            size = sz->via.u64;
            /* Without a SHA-256 to ask for, the one the daemon names is
             * what the bytes must have. */
            if (!want[0] && dsha && dsha->type == MSGPACK_OBJECT_STR &&
                dsha->via.str.size == 64)
                snprintf(want, sizeof want, "%.64s", dsha->via.str.ptr);
        }
        if (sz->via.u64 != size || offset + body->via.bin.size > size) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "%s: claimflowd's ranges do not add up to one "
                                              "document", what);
            goto out_partial;
        }
        uint32_t n = body->via.bin.size;
        if (n && fwrite(body->via.bin.ptr, 1, n, f) != n) {
            rc = cf_cli_fail(CF_EXIT_REFUSED, "%s: cannot write %s: %s", what,
                             to_stdout ? "stdout" : partial, strerror(errno));
            goto out_partial;
        }
        crypto_hash_sha256_update(&h, (const unsigned char *)body->via.bin.ptr, n);
        offset += n;
        if (offset == size)
            break;
        if (n == 0) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "%s: claimflowd's range is empty before the "
                                              "document's end", what);
            goto out_partial;
        }
    }
    unsigned char dig[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof dig + 1];
    crypto_hash_sha256_final(&h, dig);
    sodium_bin2hex(hex, sizeof hex, dig, sizeof dig);
    if (strcmp(hex, want) != 0) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "%s: the bytes received have SHA-256 %s, not the "
                                          "document's", what, hex);
        goto out_partial;
    }
    if (fflush(f) != 0 || (!to_stdout && fsync(fileno(f)) != 0)) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "%s: cannot write %s: %s", what,
                         to_stdout ? "stdout" : partial, strerror(errno));
        goto out_partial;
    }
    if (!to_stdout) {
        int cl = fclose(f);
        f = NULL;
        if (cl != 0 || rename(partial, out) != 0) {
            rc = cf_cli_fail(CF_EXIT_REFUSED, "%s: cannot write %s: %s", what, out,
                             strerror(errno));
            goto out_partial;
        }
        fprintf(stderr, "claimctl: %s: %llu bytes written to %s, SHA-256 checked\n", what,
                (unsigned long long)size, out);
    }
    rc = CF_EXIT_OK;
    goto out;
out_partial:
    if (!to_stdout && partial)
        unlink(partial);
out:
    if (f && f != stdout)
        fclose(f);
    free(partial);
    msgpack_unpacked_destroy(&rep);
    return rc;
}
