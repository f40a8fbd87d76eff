/* proto.c: replies (proto.h). */
#include "proto.h"

#include "mp.h"
#include "mpcheck.h"

void cf_reply_init(cf_reply_t *r)
{
    msgpack_sbuffer_init(&r->body);
    r->code = 0;
    r->wrote = false;
    r->op = NULL;
}

void cf_reply_fini(cf_reply_t *r)
{
    msgpack_sbuffer_destroy(&r->body);
    msgpack_sbuffer_init(&r->body);
}

void cf_reply_error_id(cf_reply_t *r, int code, const char *message, const msgpack_object *id)
{
    msgpack_sbuffer_clear(&r->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, id ? 3 : 2);
    cf_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    if (id) {
        cf_pack_str(&pk, "id");
        msgpack_pack_object(&pk, *id);
    }
    cf_pack_str(&pk, "error");
    msgpack_pack_map(&pk, 2);
    cf_pack_str(&pk, "code");
    cf_pack_str(&pk, cf_errname(code));
    cf_pack_str(&pk, "message");
    cf_pack_str(&pk, message);
    r->code = code;
}

void cf_reply_error_req(cf_reply_t *r, int code, const char *message, const cf_request_t *req)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *id = NULL;
    if (cf_mpcheck(req->frame, req->len, NULL) == 0 &&
        msgpack_unpack_next(&up, req->frame, req->len, &off) == MSGPACK_UNPACK_SUCCESS) {
        id = cf_mp_get(&up.data, "id");
        if (id && (id->type != MSGPACK_OBJECT_STR || id->via.str.size < 1 ||
                   id->via.str.size > 128))
            id = NULL;
    }
    cf_reply_error_id(r, code, message, id);
    r->wrote = false;
    msgpack_unpacked_destroy(&up);
}

int cf_reply_error(cf_reply_t *r, int code, const char *message)
{
    cf_reply_error_id(r, code, message, NULL);
    r->wrote = false;
    return r->body.data ? 0 : CF_EINTERNAL;
}
