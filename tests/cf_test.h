/* cf_test.h: the tests' assertions and runner.
 *
 * Assertions stay on in every build (no NDEBUG) and print both values with
 * file and line, as libuv's test/task.h does.  A failing assertion ends the
 * current test case (longjmp back to the runner) and the run goes on, so one
 * bug shows as one failure, not a cascade.  main() ends with the plain
 * "N passed, N failed" line CI reads.
 *
 *   static void test_x(void) { CF_ASSERT_INT_EQ(1 + 1, 2); }
 *   int main(void) { CF_RUN(test_x); return cf_test_done(); }
 */
#ifndef CF_TEST_H
#define CF_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cf_test_passed, cf_test_failed;
static jmp_buf cf_test_jmp;
static const char *cf_test_current;

static inline void cf_test_fail_(const char *file, int line, const char *what)
{
    fprintf(stderr, "FAIL %s (%s:%d): %s\n", cf_test_current, file, line, what);
    longjmp(cf_test_jmp, 1);
}

#define CF_FAILF_(...)                                                         \
    do {                                                                       \
        char cf_buf_[4096];                                                    \
        snprintf(cf_buf_, sizeof cf_buf_, __VA_ARGS__);                        \
        cf_test_fail_(__FILE__, __LINE__, cf_buf_);                            \
    } while (0)

#define CF_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond))                                                           \
            CF_FAILF_("assertion failed: %s", #cond);                          \
    } while (0)

#define CF_ASSERT_INT_EQ(a, b)                                                 \
    do {                                                                       \
        int64_t cf_a_ = (int64_t)(a), cf_b_ = (int64_t)(b);                    \
        if (cf_a_ != cf_b_)                                                    \
            CF_FAILF_("%s == %s: %" PRId64 " != %" PRId64, #a, #b, cf_a_, cf_b_); \
    } while (0)

#define CF_ASSERT_STR_EQ(a, b)                                                 \
    do {                                                                       \
        const char *cf_a_ = (a), *cf_b_ = (b);                                 \
        if (!cf_a_ || !cf_b_ || strcmp(cf_a_, cf_b_) != 0)                     \
            CF_FAILF_("%s == %s: \"%s\" != \"%s\"", #a, #b,                    \
                      cf_a_ ? cf_a_ : "(null)", cf_b_ ? cf_b_ : "(null)");     \
    } while (0)

/* haystack contains needle */
#define CF_ASSERT_STR_HAS(hay, needle)                                         \
    do {                                                                       \
        const char *cf_h_ = (hay), *cf_n_ = (needle);                          \
        if (!cf_h_ || !strstr(cf_h_, cf_n_))                                   \
            CF_FAILF_("%s contains \"%s\": \"%s\"", #hay, cf_n_,               \
                      cf_h_ ? cf_h_ : "(null)");                               \
    } while (0)

#define CF_RUN(fn)                                                             \
    do {                                                                       \
        cf_test_current = #fn;                                                 \
        if (setjmp(cf_test_jmp) == 0) {                                        \
            fn();                                                              \
            cf_test_passed++;                                                  \
            fprintf(stderr, "ok   %s\n", #fn);                                 \
        } else {                                                               \
            cf_test_failed++;                                                  \
        }                                                                      \
    } while (0)

static inline int cf_test_done(void)
{
    printf("%d passed, %d failed\n", cf_test_passed, cf_test_failed);
    return cf_test_failed ? 1 : 0;
}

/* The source tree (set by meson as CF_SRCDIR) and a path inside it. */
static inline const char *cf_test_srcdir(void)
{
    const char *s = getenv("CF_SRCDIR");
    return s ? s : ".";
}

#endif
