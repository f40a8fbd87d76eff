/* keyfile.c: reading, checking and making CURVE key files.
 *
 * Z85 is decoded here rather than with zmq_z85_decode so that a key is
 * checked the same way whichever libzmq is installed: older releases accept
 * a 5-character group whose value overflows 32 bits and decode it to a
 * different key than the one written.  A key that passes here is exactly
 * the key libzmq will use.
 *
 * Secret keys are kept in as few buffers as possible and wiped
 * (explicit_bzero) when done; the permission check follows ssh: a secret
 * key that group or others can read is refused, not silently used, because
 * by then it must be presumed copied.
 */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static const char s_z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            ".-:+=^!/*?&<>()[]{}@%$#";

/* The largest key file read: a key, CRLF and some slack for white space. */
#define S_MAX_FILE 128

bool cf_key_z85_decode(const char *s, size_t len, uint8_t ret[CF_KEY_BIN_LEN])
{
    if (len != CF_KEY_Z85_LEN)
        return false;
    uint8_t out[CF_KEY_BIN_LEN];
    for (size_t g = 0; g < CF_KEY_Z85_LEN / 5; g++) {
        uint64_t v = 0;
        for (size_t i = 0; i < 5; i++) {
            char ch = s[g * 5 + i];
            const char *p = ch ? strchr(s_z85, ch) : NULL;
            if (!p)
                return false;
            v = v * 85 + (uint64_t)(p - s_z85);
        }
        if (v > UINT32_MAX)
            return false;
        out[g * 4 + 0] = (uint8_t)(v >> 24);
        out[g * 4 + 1] = (uint8_t)(v >> 16);
        out[g * 4 + 2] = (uint8_t)(v >> 8);
        out[g * 4 + 3] = (uint8_t)v;
    }
    if (ret)
        memcpy(ret, out, sizeof out);
    explicit_bzero(out, sizeof out);
    return true;
}

void cf_key_wipe(char key[CF_KEY_BUFLEN])
{
    explicit_bzero(key, CF_KEY_BUFLEN);
}

int cf_key_read(const char *path, bool secret, char ret[CF_KEY_BUFLEN], cf_error_t *reterr)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cf_error_set(reterr, CF_EBADREQ, "%s: cannot open the key file: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return cf_error_set(reterr, CF_EBADREQ, "%s: cannot read the key file: %s", path,
                            strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cf_error_set(reterr, CF_EBADREQ, "%s: not a regular file", path);
    }
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        close(fd);
        return cf_error_set(reterr, CF_EBADREQ,
                            "%s: the secret key file is accessible by group or others "
                            "(mode %04o); it must be readable by its owner only "
                            "(chmod 600 %s)",
                            path, (unsigned)(st.st_mode & 07777), path);
    }
    char buf[S_MAX_FILE + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            explicit_bzero(buf, sizeof buf);
            return cf_error_set(reterr, CF_EBADREQ, "%s: cannot read the key file: %s", path,
                                strerror(err));
        }
        if (n == 0 || (len += (size_t)n) == sizeof buf)
            break;
    }
    close(fd);
    size_t end = len;
    while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' ' ||
                       buf[end - 1] == '\t'))
        end--;
    int rc = 0;
    if (len > S_MAX_FILE || !cf_key_z85_decode(buf, end, NULL)) {
        rc = cf_error_set(reterr, CF_EBADREQ,
                          "%s: not a key file (expected one CURVE key: 40 Z85 characters, "
                          "as 'claimctl keygen' writes)",
                          path);
    } else {
        memcpy(ret, buf, CF_KEY_Z85_LEN);
        ret[CF_KEY_Z85_LEN] = '\0';
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

int cf_key_public(const char *secret, char ret[CF_KEY_BUFLEN])
{
    if (!cf_key_z85_decode(secret, strlen(secret), NULL) || zmq_curve_public(ret, secret) != 0)
        return CF_EBADREQ;
    return 0;
}

/* Write text and a newline to a new file (O_EXCL) of the given mode.
 * 0, or -1 with errno; a half-written file is removed. */
static int s_write_new(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    char line[CF_KEY_BUFLEN + 1];
    size_t n = strlen(text);
    memcpy(line, text, n);
    line[n++] = '\n';
    /* fchmod, not the umask, decides a secret key's mode: exactly 0600. */
    bool done = (mode != 0600 || fchmod(fd, 0600) == 0) && write(fd, line, n) == (ssize_t)n &&
                fsync(fd) == 0;
    int err = errno;
    explicit_bzero(line, sizeof line);
    if (close(fd) != 0 && done) {
        err = errno;
        done = false;
    }
    if (!done) {
        unlink(path);
        errno = err;
        return -1;
    }
    return 0;
}

int cf_key_generate(const char *base, char ret_public[CF_KEY_BUFLEN], cf_error_t *reterr)
{
    char key_path[PATH_MAX], pub_path[PATH_MAX];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", base) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", base) >= sizeof pub_path)
        return cf_error_set(reterr, CF_EBADREQ, "%s: the name is too long", base);
    struct stat st;
    if (lstat(key_path, &st) == 0)
        return cf_error_set(reterr, CF_EBADREQ, "%s exists: a key file is never overwritten",
                            key_path);
    if (lstat(pub_path, &st) == 0)
        return cf_error_set(reterr, CF_EBADREQ, "%s exists: a key file is never overwritten",
                            pub_path);
    char pub[CF_KEY_BUFLEN], sec[CF_KEY_BUFLEN];
    if (zmq_curve_keypair(pub, sec) != 0)
        return cf_error_set(reterr, CF_EINTERNAL, "this libzmq has no CURVE support: %s",
                            zmq_strerror(errno));
    int rc = 0;
    if (s_write_new(key_path, sec, 0600) != 0) {
        rc = cf_error_set(reterr, CF_EBADREQ, "%s: cannot write: %s", key_path, strerror(errno));
    } else if (s_write_new(pub_path, pub, 0644) != 0) {
        rc = cf_error_set(reterr, CF_EBADREQ, "%s: cannot write: %s", pub_path, strerror(errno));
        unlink(key_path);
    } else {
        memcpy(ret_public, pub, CF_KEY_BUFLEN);
    }
    cf_key_wipe(sec);
    return rc;
}
