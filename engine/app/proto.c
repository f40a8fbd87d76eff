/* proto.c: replies (proto.h). */
#include "proto.h"

#include "cf_version.h"
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

/* {ok: false, id?, error: {code, message, ...}}: the head, with `extra`
 * more error fields for the caller to pack. */
static void s_error_head(msgpack_packer *pk, const msgpack_object *id, int code,
                         const char *message, uint32_t extra)
{
    msgpack_pack_map(pk, id ? 3 : 2);
    cf_pack_str(pk, "ok");
    msgpack_pack_false(pk);
    if (id) {
        cf_pack_str(pk, "id");
        msgpack_pack_object(pk, *id);
    }
    cf_pack_str(pk, "error");
    msgpack_pack_map(pk, 2 + extra);
    cf_pack_str(pk, "code");
    cf_pack_str(pk, cf_errname(code));
    cf_pack_str(pk, "message");
    cf_pack_str(pk, message);
}

void cf_reply_error_id(cf_reply_t *r, int code, const char *message, const msgpack_object *id)
{
    msgpack_sbuffer_clear(&r->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->body, msgpack_sbuffer_write);
    s_error_head(&pk, id, code, message, 0);
    r->code = code;
}

/* The request's map into up (NULL when the frame is not one), and its `id`
 * when it is a valid one. */
static const msgpack_object *s_request_map(msgpack_unpacked *up, const cf_request_t *req,
                                           const msgpack_object **id)
{
    size_t off = 0;
    *id = NULL;
    if (cf_mpcheck(req->frame, req->len, NULL) != 0 ||
        msgpack_unpack_next(up, req->frame, req->len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up->data.type != MSGPACK_OBJECT_MAP)
        return NULL;
    *id = cf_mp_get(&up->data, "id");
    if (*id && ((*id)->type != MSGPACK_OBJECT_STR || (*id)->via.str.size < 1 ||
                (*id)->via.str.size > 128))
        *id = NULL;
    return &up->data;
}

void cf_reply_error_req(cf_reply_t *r, int code, const char *message, const cf_request_t *req)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *id;
    (void)s_request_map(&up, req, &id);
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

/* ------------------------------------------------------------ cluster --- */
static void s_leader_pack(msgpack_packer *pk, const cf_cluster_view_t *v)
{
    if (!v->leader_node) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 4);
    cf_pack_str(pk, "node");
    cf_pack_str(pk, v->leader_node);
    cf_pack_str(pk, "portal");
    cf_pack_str(pk, v->leader_portal ? v->leader_portal : "");
    cf_pack_str(pk, "operator");
    cf_pack_str(pk, v->leader_operator ? v->leader_operator : "");
    cf_pack_str(pk, "events");
    cf_pack_str(pk, v->leader_events ? v->leader_events : "");
}

void cf_cluster_view_pack(msgpack_packer *pk, const cf_cluster_view_t *v, uint64_t seq)
{
    cf_pack_str(pk, "role");
    cf_pack_str(pk, v->role);
    cf_pack_str(pk, "seq");
    msgpack_pack_uint64(pk, seq);
    cf_pack_str(pk, "epoch");
    msgpack_pack_uint64(pk, v->epoch);
    cf_pack_str(pk, "node");
    cf_pack_str(pk, v->node);
    cf_pack_str(pk, "leader");
    s_leader_pack(pk, v);
}

void cf_reply_follower(cf_reply_t *r, const cf_request_t *req, const cf_cluster_view_t *v,
                       uint64_t seq, int64_t now)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *id, *map = s_request_map(&up, req, &id);
    const msgpack_object *op = map ? cf_mp_get(map, "op") : NULL;
    msgpack_sbuffer_clear(&r->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->body, msgpack_sbuffer_write);
    r->wrote = false;
    if (op && cf_mp_streq(op, "ping")) {
        msgpack_pack_map(&pk, (id ? 4 : 3) + CF_CLUSTER_PING_FIELDS);
        cf_pack_str(&pk, "ok");
        msgpack_pack_true(&pk);
        if (id) {
            cf_pack_str(&pk, "id");
            msgpack_pack_object(&pk, *id);
        }
        cf_pack_str(&pk, "version");
        cf_pack_str(&pk, CF_VERSION);
        cf_pack_str(&pk, "now");
        cf_pack_time(&pk, now);
        cf_cluster_view_pack(&pk, v, seq);
        r->code = 0;
        r->op = "ping";
    } else {
        s_error_head(&pk, id, CF_ENOTLEADER,
                     v->leader_node ? "this node is a follower: send requests to the leader"
                                    : "this node is a follower and no leader is known yet: "
                                      "retry shortly",
                     1);
        cf_pack_str(&pk, "leader");
        s_leader_pack(&pk, v);
        r->code = CF_ENOTLEADER;
        r->op = NULL;
    }
    msgpack_unpacked_destroy(&up);
}
