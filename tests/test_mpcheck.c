/* test_mpcheck: the structural check every outside frame passes before
 * msgpack-c unpacks it (engine/mpcheck.c). */
#include <inttypes.h>
#include <msgpack.h>
#include <stdbool.h>

#include "cf_test.h"
#include "mpcheck.h"

#define CHECK(bytes, want)                                                     \
    do {                                                                       \
        static const unsigned char b_[] = bytes;                              \
        CF_ASSERT_INT_EQ(cf_mpcheck(b_, sizeof b_ - 1, NULL), (want));         \
    } while (0)

/* Everything msgpack-c packs is accepted, with its exact length. */
static void test_accepts_what_msgpack_packs(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "create", 6);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_int64(&pk, -1234567890123LL);
    msgpack_pack_uint64(&pk, 18446744073709551615ULL);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_float(&pk, 2.5f);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "bin", 3);
    msgpack_pack_bin_with_body(&pk, "\x25PDF", 4);
    msgpack_pack_str_with_body(&pk, "ext", 3);
    msgpack_pack_ext_with_body(&pk, "abcdefgh", 8, 1);
    msgpack_pack_str_with_body(&pk, "empty", 5);
    msgpack_pack_map(&pk, 0);
    char big[300];
    memset(big, 'x', sizeof big);
    msgpack_pack_str_with_body(&pk, big, sizeof big);
    msgpack_pack_true(&pk);
    size_t used = 0;
    CF_ASSERT_INT_EQ(cf_mpcheck(sb.data, sb.size, &used), 0);
    CF_ASSERT_INT_EQ(used, sb.size);
    /* Every proper prefix is truncated, never accepted. */
    for (size_t n = 0; n < sb.size; n++)
        CF_ASSERT_INT_EQ(cf_mpcheck(sb.data, n, NULL), 1);
    msgpack_sbuffer_destroy(&sb);
}

/* A container that declares more elements than bytes remain is refused
 * before anything is allocated: the fuzzer's ten-byte 100 GiB request. */
static void test_refuses_declared_counts_that_cannot_fit(void)
{
    CHECK("\xdd\xdd\xdd\xdd\xdd", 1);             /* array32 of 3.7e9, no elements */
    CHECK("\x83\x01\x02\x03\x04", 1);             /* map 3, two pairs */
    CHECK("\x93\x01\x02", 1);                     /* fixarray 3, two elements */
    CHECK("\x81\xa2op", 1);                       /* map 1, key only */
    CHECK("\x92\x91\x01", 1);                     /* pending elements count too */
    CHECK("\xc6\x7f\xff\xff\xff\x00", 1);         /* bin32 longer than the frame */
    CHECK("\x92\x01\x02", 0);
}

static void test_refuses_malformed_and_deep(void)
{
    CHECK("\xc1", CF_MPCHECK_MALFORMED);
    CHECK("\x91\xc1", CF_MPCHECK_MALFORMED);
    unsigned char deep[40];
    memset(deep, 0x91, sizeof deep);
    deep[39] = 0x01;
    CF_ASSERT_INT_EQ(cf_mpcheck(deep, 32 + 1, NULL), 1); /* 32 arrays, then nothing */
    deep[32] = 0x01;
    CF_ASSERT_INT_EQ(cf_mpcheck(deep, 33, NULL), 0);     /* 32 deep: accepted */
    memset(deep, 0x91, sizeof deep);
    deep[39] = 0x01;
    CF_ASSERT_INT_EQ(cf_mpcheck(deep, 40, NULL), CF_MPCHECK_TOO_DEEP); /* 39 deep */
    CF_ASSERT_STR_HAS(cf_mpcheck_strerror(CF_MPCHECK_TOO_DEEP), "32");
}

/* A map of n keys "k0".."k<n-1>", each with value nil, inside `data` of a
 * request map when nested. */
static void s_pack_keys(msgpack_sbuffer *sb, uint32_t n, bool nested)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (nested) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "op", 2);
        msgpack_pack_str_with_body(&pk, "create", 6);
        msgpack_pack_str_with_body(&pk, "data", 4);
    }
    msgpack_pack_map(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "k%" PRIu32, i);
        msgpack_pack_str_with_body(&pk, k, (size_t)kl);
        msgpack_pack_nil(&pk);
    }
}

/* Issue 18, item 3: a map of 200,000 distinct keys froze the daemon in the
 * dispatcher's duplicate-key check.  Maps over CF_MP_MAX_KEYS are refused at
 * their header, at any depth, whatever follows. */
static void test_refuses_maps_with_too_many_keys(void)
{
    static const uint32_t sizes[] = {CF_MP_MAX_KEYS, CF_MP_MAX_KEYS + 1, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int nested = 0; nested < 2; nested++) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            s_pack_keys(&sb, sizes[i], nested);
            int want = sizes[i] <= CF_MP_MAX_KEYS ? CF_MPCHECK_OK
                                                  : CF_MPCHECK_TOO_MANY_KEYS;
            CF_ASSERT_INT_EQ(cf_mpcheck(sb.data, sb.size, NULL), want);
            msgpack_sbuffer_destroy(&sb);
        }
    /* Refused from the header alone: no byte that could follow helps. */
    CHECK("\xde\x01\x01", CF_MPCHECK_TOO_MANY_KEYS);           /* map16 of 257 */
    CHECK("\xdf\xff\xff\xff\xff\x01\x02", CF_MPCHECK_TOO_MANY_KEYS); /* map32 of 4e9 */
    CHECK("\x91\xde\x01\x00", 1);        /* map16 of 256 inside an array: truncated */
    /* Arrays are not maps: their cost is bounded by the bytes. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1000);
    for (int i = 0; i < 1000; i++)
        msgpack_pack_nil(&pk);
    CF_ASSERT_INT_EQ(cf_mpcheck(sb.data, sb.size, NULL), CF_MPCHECK_OK);
    msgpack_sbuffer_destroy(&sb);
    /* The message names the bound. */
    CF_ASSERT_STR_HAS(cf_mpcheck_strerror(CF_MPCHECK_TOO_MANY_KEYS), "more than 256 keys");
}

/* Trailing bytes are the caller's business: used says where the object ends. */
static void test_reports_length_of_first_object(void)
{
    static const unsigned char b[] = "\x81\xa2op\xa4ping\xc0";
    size_t used = 0;
    CF_ASSERT_INT_EQ(cf_mpcheck(b, sizeof b - 1, &used), 0);
    CF_ASSERT_INT_EQ(used, sizeof b - 2);
}

int main(void)
{
    CF_RUN(test_accepts_what_msgpack_packs);
    CF_RUN(test_refuses_declared_counts_that_cannot_fit);
    CF_RUN(test_refuses_malformed_and_deep);
    CF_RUN(test_reports_length_of_first_object);
    CF_RUN(test_refuses_maps_with_too_many_keys);
    return cf_test_done();
}
