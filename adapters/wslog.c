/* wslog.c: the write-set log (wslog.h). */
#include "wslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "cf_be.h"

struct cf_wslog {
    int fd;
};

cf_wslog_t *cf_wslog_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    cf_wslog_t *l = malloc(sizeof *l);
    if (!l) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    l->fd = fd;
    return l;
}

void cf_wslog_close(cf_wslog_t **l_p)
{
    if (!l_p || !*l_p)
        return;
    close((*l_p)->fd);
    free(*l_p);
    *l_p = NULL;
}

static int s_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int cf_wslog_hook(void *ctx, uint64_t seq, const cf_wset_t *ws)
{
    cf_wslog_t *l = ctx;
    unsigned char head[9];
    if (!ws) {
        head[0] = 'A';
        cf_be64_put(head + 1, seq);
        return s_write_all(l->fd, head, 9) ? CF_EUNAVAIL : 0;
    }
    cf_bytes_t enc = cf_wset_encoded(ws);
    head[0] = 'W';
    cf_be32_put(head + 1, (uint32_t)enc.len);
    /* A log that cannot be written refuses the batch: a recorder that
     * silently missed one would make the test it serves pass wrongly. */
    if (s_write_all(l->fd, head, 5) != 0 || s_write_all(l->fd, enc.data, enc.len) != 0)
        return CF_EUNAVAIL;
    return 0;
}
