/*
 * http_api — see http_api.h. Responses are built into c->resp and written
 * from the writable callback: headers first, then the body in chunks, one
 * lws_write per callback.
 */
#define _GNU_SOURCE
#include "http_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "identity.h"
#include "log.h"
#include "session.h"
#include "static.h"

enum { M_OTHER = 0, M_GET, M_POST, M_PUT, M_PATCH, M_OPTIONS, M_DELETE, M_HEAD };

static const char mime_json[] = "application/json";
static const char published_put[] =
    "{\"error\":\"Session is published\",\"message\":\"This session has been published and "
    "cannot be modified. Remix it to create an editable copy.\",\"immutable\":true}";
static const char published_patch[] =
    "{\"error\":\"Session is published\",\"message\":\"This session has been published and "
    "cannot be renamed. Remix it to create an editable copy.\",\"immutable\":true}";

static void dispatch(gd_server *srv, gd_conn *c);
static void respond(gd_conn *c, int status, const char *json);

void gd_http_set_response(gd_conn *c, int status, const char *type, const char *body, size_t len)
{
    free(c->resp);
    c->resp = malloc(len + 1);
    if (c->resp) {
        memcpy(c->resp, body, len);
        c->resp[len] = '\0';
    } else {
        len = 0;
        status = 503;
    }
    c->status = status;
    c->resp_type = type;
    c->resp_len = len;
    c->resp_off = 0;
}

void gd_http_set_json(gd_conn *c, int status, const char *json)
{
    gd_http_set_response(c, status, mime_json, json, strlen(json));
}

void gd_http_ready(gd_conn *c)
{
    c->resp_ready = true;
    lws_callback_on_writable(c->wsi);
}

static void respond(gd_conn *c, int status, const char *json)
{
    gd_http_set_json(c, status, json);
    gd_http_ready(c);
}

static void respond_buf(gd_conn *c, int status, gd_buf *b)
{
    if (b->oom)
        respond(c, 503, "{\"error\":\"Out of memory\"}");
    else {
        gd_http_set_response(c, status, mime_json, b->p, b->len);
        gd_http_ready(c);
    }
}

static void add_header(gd_conn *c, const char *name, const char *value)
{
    size_t used = strlen(c->resp_headers);
    snprintf(c->resp_headers + used, sizeof(c->resp_headers) - used, "%s\n%s\n", name, value);
}

static void respond_validation(gd_conn *c, const gd_errors *errs)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"error\":\"Validation failed\",\"details\":[");
    for (int i = 0; i < errs->n; i++) {
        if (i) gd_buf_putc(&b, ',');
        gd_json_str(&b, errs->msg[i]);
    }
    gd_buf_puts(&b, "]}");
    respond_buf(c, 400, &b);
    gd_buf_free(&b);
}

/* ---- request intake --------------------------------------------------- */

static int method_of(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes tok;
        int m;
    } t[] = {{WSI_TOKEN_GET_URI, M_GET},         {WSI_TOKEN_POST_URI, M_POST},
             {WSI_TOKEN_PUT_URI, M_PUT},         {WSI_TOKEN_PATCH_URI, M_PATCH},
             {WSI_TOKEN_OPTIONS_URI, M_OPTIONS}, {WSI_TOKEN_DELETE_URI, M_DELETE},
             {WSI_TOKEN_HEAD_URI, M_HEAD}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (lws_hdr_total_length(wsi, t[i].tok) > 0) return t[i].m;
    return M_OTHER;
}

static void reset_request(gd_conn *c)
{
    free(c->resp);
    c->resp = NULL;
    gd_buf_free(&c->body);
    c->body_too_large = c->body_is_json = false;
    c->if_match[0] = c->resp_headers[0] = '\0';
    c->resp_ready = c->headers_sent = c->dispatched = false;
    c->resp_len = c->resp_off = 0;
    c->status = 0;
}

int gd_http_on_request(gd_server *srv, gd_conn *c, const char *uri)
{
    reset_request(c);
    c->kind = GD_CONN_HTTP;
    if (!c->serial) c->serial = ++srv->next_serial;
    srv->m.http_requests++;
    c->method = method_of(c->wsi);
    snprintf(c->path, sizeof(c->path), "%s", uri);
    lws_hdr_copy(c->wsi, c->if_match, sizeof(c->if_match), WSI_TOKEN_HTTP_IF_MATCH);
    char ctype[128] = "";
    lws_hdr_copy(c->wsi, ctype, sizeof(ctype), WSI_TOKEN_HTTP_CONTENT_TYPE);
    c->body_is_json = strcasestr(ctype, "application/json") != NULL;

    lws_get_peer_simple(c->wsi, c->peer, sizeof(c->peer));
    if (srv->cfg.trusted_proxy[0] && strcmp(c->peer, srv->cfg.trusted_proxy) == 0) {
        char xff[128] = "";
        if (lws_hdr_copy(c->wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR) > 0) {
            char *comma = strchr(xff, ',');
            if (comma) *comma = '\0';
            snprintf(c->peer, sizeof(c->peer), "%.63s", xff);
        }
    }

    if (c->method == M_OPTIONS) { /* as the reference: 200, no body, no Content-Type */
        gd_http_set_response(c, 200, NULL, "", 0);
        gd_http_ready(c);
        return 0;
    }
    if (c->method == M_POST || c->method == M_PUT || c->method == M_PATCH) {
        char cl[32] = "";
        long declared = 0;
        if (lws_hdr_copy(c->wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
            declared = strtol(cl, NULL, 10);
        if (declared > GD_MAX_MESSAGE) {
            c->dispatched = true; /* answered now: ignore the body lws still reads */
            respond(c, 413, "{\"error\":\"Request body too large\"}");
            add_header(c, "connection:", "close");
            return 0;
        }
        if (declared > 0) return 0; /* continue in gd_http_on_body_done */
    }
    dispatch(srv, c);
    return 0;
}

int gd_http_on_body(gd_server *srv, gd_conn *c, const void *in, size_t len)
{
    if (c->dispatched) return 0; /* lws reports an empty body for Content-Length: 0 */
    if (c->body.len + len > GD_MAX_MESSAGE) c->body_too_large = true;
    if (!c->body_too_large) gd_buf_put(&c->body, in, len);
    return 0;
}

int gd_http_on_body_done(gd_server *srv, gd_conn *c)
{
    if (c->dispatched) return 0;
    if (c->body_too_large || c->body.oom) {
        respond(c, 413, "{\"error\":\"Request body too large\"}");
        return 0;
    }
    dispatch(srv, c);
    return 0;
}

void gd_http_on_closed(gd_server *srv, gd_conn *c)
{
    if (c->list_job) c->list_job->owner = NULL; /* the job outlives us: its callback frees it */
    c->list_job = NULL;
    gd_session_unwait(c);
    gd_static_on_closed(srv->web, c);
    reset_request(c);
}

/* ---- writing ---------------------------------------------------------- */

static bool is_api(const gd_conn *c)
{
    return strncmp(c->path, "/api/", 5) == 0;
}

int gd_http_on_writable(gd_server *srv, gd_conn *c)
{
    if (c->static_req) return gd_static_on_writable(srv->web, c);
    if (!c->resp_ready) return 0;
    if (!c->headers_sent) {
        unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                           *end = buf + sizeof(buf) - 1;
        if (lws_add_http_common_headers(c->wsi, (unsigned)c->status, c->resp_type, c->resp_len, &p,
                                        end))
            return -1;
        if (is_api(c) || c->method == M_OPTIONS) {
            if (lws_add_http_header_by_name(c->wsi, (unsigned char *)"access-control-allow-origin:",
                                            (unsigned char *)"*", 1, &p, end) ||
                lws_add_http_header_by_name(
                    c->wsi, (unsigned char *)"access-control-allow-methods:",
                    (unsigned char *)"GET, POST, PUT, PATCH, DELETE, OPTIONS", 38, &p, end) ||
                lws_add_http_header_by_name(c->wsi,
                                            (unsigned char *)"access-control-allow-headers:",
                                            (unsigned char *)"Content-Type, If-Match", 22, &p, end))
                return -1;
        }
        /* Extra headers: "name:\nvalue\n" pairs. */
        char *h = c->resp_headers;
        while (*h) {
            char *nl = strchr(h, '\n');
            if (!nl) break;
            *nl = '\0';
            char *v = nl + 1, *vend = strchr(v, '\n');
            if (!vend) break;
            *vend = '\0';
            if (lws_add_http_header_by_name(c->wsi, (unsigned char *)h, (unsigned char *)v,
                                            (int)strlen(v), &p, end))
                return -1;
            h = vend + 1;
        }
        if (lws_finalize_write_http_header(c->wsi, start, &p, end)) return -1;
        c->headers_sent = true;
        if (c->resp_len) {
            lws_callback_on_writable(c->wsi);
            return 0;
        }
    } else if (c->resp_off < c->resp_len) {
        unsigned char buf[LWS_PRE + 16384];
        size_t n = c->resp_len - c->resp_off;
        if (n > sizeof(buf) - LWS_PRE) n = sizeof(buf) - LWS_PRE;
        memcpy(buf + LWS_PRE, c->resp + c->resp_off, n);
        c->resp_off += n;
        bool last = c->resp_off == c->resp_len;
        if (lws_write(c->wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
            (int)n)
            return -1;
        if (!last) {
            lws_callback_on_writable(c->wsi);
            return 0;
        }
    }
    bool close = strstr(c->resp_headers, "connection:") != NULL;
    reset_request(c);
    if (close || lws_http_transaction_completed(c->wsi)) return -1;
    return 0;
}

/* ---- routes ----------------------------------------------------------- */

typedef enum { R_NONE, R_SESSION, R_WS, R_REMIX, R_PUBLISH } route_kind;

/* Parses /api/sessions/<id>[/suffix]. Returns R_NONE when the path does not
 * match the route pattern at all (a 404), and copies the id. */
static route_kind session_route(const char *path, char id[37])
{
    static const char prefix[] = "/api/sessions/";
    size_t pl = sizeof(prefix) - 1;
    if (strncmp(path, prefix, pl) != 0 || strlen(path) < pl + 36 ||
        !gd_id_pattern_ok(path + pl, 36))
        return R_NONE;
    memcpy(id, path + pl, 36);
    id[36] = '\0';
    const char *rest = path + pl + 36;
    if (*rest == '\0') return R_SESSION;
    if (strcmp(rest, "/ws") == 0) return R_WS;
    if (strcmp(rest, "/remix") == 0) return R_REMIX;
    if (strcmp(rest, "/publish") == 0) return R_PUBLISH;
    return R_NONE;
}

/* Writes a complete response (status line, headers and body in one write)
 * from inside the upgrade callback, where lws closes the connection as soon
 * as we return; lws's header helpers would say HTTP/1.0 at this stage. */
static int write_direct(struct lws *wsi, int status, const char *type, const char *body)
{
    unsigned char buf[LWS_PRE + 1024];
    const char *reason = status == 400   ? "Bad Request"
                         : status == 404 ? "Not Found"
                                         : "Service Unavailable";
    int n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                     "access-control-allow-origin: *\r\nconnection: close\r\n\r\n%s",
                     status, reason, type, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof(buf) - LWS_PRE) return -1;
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS) != n) return -1;
    return 1;
}

int gd_http_confirm_upgrade(gd_server *srv, struct lws *wsi)
{
    char uri[160] = "", id[37];
    lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (session_route(uri, id) != R_WS)
        return write_direct(wsi, 404, mime_json, "{\"error\":\"Not found\"}");
    if (!gd_uuid_shape_ok(id, 36))
        return write_direct(wsi, 400, mime_json, "{\"error\":\"Invalid session ID format\"}");
    if (!gd_idset_has(&srv->ids, id))
        return write_direct(wsi, 404, mime_json, "{\"error\":\"Session not found\"}");
    gd_session *s = gd_session_find(srv, id);
    if (s && s->nplayers >= GD_MAX_PLAYERS) {
        gd_log(GD_LOG_INFO, "session %s: upgrade refused, %d players", id, s->nplayers);
        return write_direct(wsi, 503, "text/plain", "Session full (max 10 players)");
    }
    return 0;
}

static bool rate_allow(gd_server *srv, const char *ip, int *retry_after)
{
    /* A fixed table of token buckets keyed by IP; a colliding IP takes over
     * the slot (bounded memory, never unbounded growth). */
    if (!srv->rate) {
        srv->rate_cap = 4096;
        srv->rate = calloc(srv->rate_cap, sizeof(*srv->rate));
        if (!srv->rate) return true;
    }
    uint64_t h = 1469598103934665603ull;
    for (const char *p = ip; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    gd_rate_entry *e = &srv->rate[h % srv->rate_cap];
    int64_t now = gd_now_ms();
    double per_ms = srv->cfg.create_rate / 60000.0;
    if (strcmp(e->ip, ip) != 0) {
        snprintf(e->ip, sizeof(e->ip), "%s", ip);
        e->tokens = srv->cfg.create_rate;
    } else {
        e->tokens += (double)(now - e->at_ms) * per_ms;
        if (e->tokens > srv->cfg.create_rate) e->tokens = srv->cfg.create_rate;
    }
    e->at_ms = now;
    if (e->tokens < 1) {
        *retry_after = (int)((1 - e->tokens) / per_ms / 1000) + 1;
        return false;
    }
    e->tokens -= 1;
    return true;
}

static json_t *parse_body(gd_conn *c)
{
    json_error_t e;
    if (!c->body.len) return NULL;
    return json_loadb(c->body.p, c->body.len, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &e);
}

/* The per-IP limit on every route that creates a session (decision #23).
 * Answers 429 and returns false when it is exhausted. */
static bool creation_allowed(gd_server *srv, gd_conn *c)
{
    int retry;
    if (!rate_allow(srv, c->peer, &retry)) {
        char body[160], ra[16];
        snprintf(body, sizeof(body),
                 "{\"error\":\"Too many requests. Please wait before creating more "
                 "sessions.\",\"retryAfter\":%d}",
                 retry);
        snprintf(ra, sizeof(ra), "%d", retry);
        gd_http_set_json(c, 429, body);
        add_header(c, "retry-after:", ra);
        add_header(c, "x-ratelimit-remaining:", "0");
        gd_http_ready(c);
        return false;
    }
    return true;
}

static void handle_create(gd_server *srv, gd_conn *c)
{
    if (!creation_allowed(srv, c)) return;
    json_t *body = NULL;
    if (c->body_is_json && c->body.len) {
        body = parse_body(c);
        if (!json_is_object(body)) {
            json_decref(body);
            respond(c, 400, "{\"error\":\"Invalid request body\"}");
            return;
        }
    }
    gd_errors errs = {0};
    char *name = NULL;
    json_t *jn = json_object_get(body, "name");
    if (jn && gd_name_from_json(jn, &name, &errs) != 0) {
        json_decref(body);
        respond_validation(c, &errs);
        return;
    }
    gd_record rec;
    char id[37];
    if (gd_uuid_v4(id) != 0) {
        free(name);
        json_decref(body);
        respond(c, 500, "{\"error\":\"Failed to create session\"}");
        return;
    }
    gd_record_init(&rec, id, gd_now_ms());
    rec.name = name;
    json_t *st = json_object_get(body, "state");
    const json_t *src = json_is_object(st) ? st
                        : (json_object_get(body, "tracks") || json_object_get(body, "tempo") ||
                           json_object_get(body, "swing"))
                            ? body
                            : NULL;
    if (!src && st && !json_is_null(st)) src = st; /* reported as "State must be an object" */
    if (src && gd_state_from_json(src, &rec.state, &errs) != 0) {
        gd_record_clear(&rec);
        json_decref(body);
        respond_validation(c, &errs);
        return;
    }
    json_decref(body);
    gd_session *s = gd_session_create(srv, &rec);
    if (!s) {
        gd_record_clear(&rec);
        respond(c, 503, "{\"error\":\"Failed to create session\"}");
        return;
    }
    gd_log(GD_LOG_INFO, "session %s: created by %s (%d tracks)", s->id, c->peer,
           s->rec.state.ntracks);
    char out[128];
    snprintf(out, sizeof(out), "{\"id\":\"%s\",\"url\":\"/s/%s\"}", s->id, s->id);
    gd_http_set_json(c, 201, out);
    gd_session_wait_durable(srv, s, c, 0);
}

static void etag_of(const gd_session *s, char out[32])
{
    snprintf(out, 32, "\"%llu\"", (unsigned long long)s->rec.server_seq);
}

static void cont_get(gd_conn *c, gd_session *s)
{
    gd_server *srv = gd_server_of(c->wsi);
    s->rec.last_accessed_at = gd_now_ms();
    s->access_dirty = true;
    gd_buf b;
    gd_buf_init(&b);
    gd_record_write(&b, &s->rec, false);
    if (b.oom) {
        respond(c, 503, "{\"error\":\"Out of memory\"}");
    } else {
        char etag[32];
        etag_of(s, etag);
        gd_http_set_response(c, 200, mime_json, b.p, b.len);
        add_header(c, "etag:", etag);
        /* Never show state that is not yet durable. */
        gd_session_wait_durable(srv, s, c, (int64_t)s->rec.opno);
    }
    gd_buf_free(&b);
}

static void respond_updated(gd_server *srv, gd_conn *c, gd_session *s, int64_t opno, bool with_name)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_printf(&b, "{\"id\":\"%s\"", s->id);
    if (with_name) {
        gd_buf_puts(&b, ",\"name\":");
        if (s->rec.name)
            gd_json_str(&b, s->rec.name);
        else
            gd_buf_puts(&b, "null");
    }
    gd_buf_printf(&b, ",\"updatedAt\":%lld}", (long long)s->rec.updated_at);
    gd_http_set_response(c, 200, mime_json, b.p ? b.p : "{}", b.p ? b.len : 2);
    char etag[32];
    etag_of(s, etag);
    add_header(c, "etag:", etag);
    gd_buf_free(&b);
    gd_session_wait_durable(srv, s, c, opno);
}

static bool same_canonical(const gd_state *a, const gd_state *b)
{
    gd_buf x, y;
    gd_buf_init(&x);
    gd_buf_init(&y);
    gd_state_canonical(&x, a);
    gd_state_canonical(&y, b);
    bool same = !x.oom && !y.oom && x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
    gd_buf_free(&x);
    gd_buf_free(&y);
    return same;
}

static bool if_match_ok(const char *header, const gd_session *s)
{
    char etag[32];
    etag_of(s, etag);
    if (strcmp(header, etag) == 0) return true;
    /* Accept the bare number too. */
    return strlen(header) == strlen(etag) - 2 && strncmp(header, etag + 1, strlen(header)) == 0;
}

/* The preamble of PUT and PATCH: a published session answers 403, a body
 * that is not a JSON object 400. Returns the body (caller decrefs) or NULL
 * once it has answered. */
static json_t *editable_body(gd_conn *c, gd_session *s, const char *published)
{
    if (s->rec.immutable) {
        respond(c, 403, published);
        return NULL;
    }
    json_t *body = parse_body(c);
    if (!json_is_object(body)) {
        json_decref(body);
        respond(c, 400, "{\"error\":\"Invalid request body\"}");
        return NULL;
    }
    return body;
}

static void cont_put(gd_conn *c, gd_session *s)
{
    gd_server *srv = gd_server_of(c->wsi);
    json_t *body = editable_body(c, s, published_put);
    if (!body) return;
    gd_op op = {.type = GD_OP_REPLACE_STATE};
    gd_errors errs = {0};
    op.state = malloc(sizeof(*op.state));
    if (!op.state || gd_state_from_json(json_object_get(body, "state"), op.state, &errs) != 0) {
        json_decref(body);
        if (errs.n)
            respond_validation(c, &errs);
        else
            respond(c, 503, "{\"error\":\"Out of memory\"}");
        gd_op_clear(&op);
        return;
    }
    json_decref(body);
    if (s->nplayers > 0) {
        if (c->if_match[0] && !if_match_ok(c->if_match, s)) {
            char out[160], etag[32];
            etag_of(s, etag);
            snprintf(out, sizeof(out),
                     "{\"error\":\"Precondition failed\",\"message\":\"The session changed "
                     "since that ETag\",\"etag\":\"%llu\"}",
                     (unsigned long long)s->rec.server_seq);
            gd_http_set_json(c, 412, out);
            add_header(c, "etag:", etag);
            gd_http_ready(c);
            gd_op_clear(&op);
            return;
        }
        if (!c->if_match[0]) {
            if (same_canonical(&s->rec.state, op.state)) {
                respond_updated(srv, c, s, (int64_t)s->rec.opno, false);
            } else {
                char etag[32];
                etag_of(s, etag);
                gd_http_set_json(c, 409,
                                 "{\"error\":\"Session is live\",\"message\":\"Players are "
                                 "connected; edits go through the WebSocket, or PUT with "
                                 "If-Match set to the current ETag\"}");
                add_header(c, "etag:", etag);
                gd_http_ready(c);
            }
            gd_op_clear(&op);
            return;
        }
    }
    gd_op_err err;
    int64_t opno;
    if (gd_session_apply_op(srv, s, &op, NULL, NULL, &err, &opno) != 0)
        respond(c, 503, "{\"error\":\"Failed to update session\"}");
    else
        respond_updated(srv, c, s, opno, false);
    gd_op_clear(&op);
}

static void cont_patch(gd_conn *c, gd_session *s)
{
    gd_server *srv = gd_server_of(c->wsi);
    json_t *body = editable_body(c, s, published_patch);
    if (!body) return;
    json_t *jn = json_object_get(body, "name");
    if (!jn) {
        json_decref(body);
        respond(c, 400, "{\"error\":\"Missing name field\"}");
        return;
    }
    gd_op op = {.type = GD_OP_RENAME};
    gd_errors errs = {0};
    if (gd_name_from_json(jn, &op.str, &errs) != 0) {
        json_decref(body);
        respond_validation(c, &errs);
        return;
    }
    json_decref(body);
    gd_op_err err;
    int64_t opno;
    if (gd_session_apply_op(srv, s, &op, NULL, NULL, &err, &opno) != 0)
        respond(c, 503, "{\"error\":\"Failed to update session name\"}");
    else
        respond_updated(srv, c, s, opno, true);
    gd_op_clear(&op);
}

static const char *first_track_name(const gd_record *r)
{
    return r->state.ntracks ? r->state.tracks[0]->name : "Untitled Session";
}

/* The copy of a remix or publish: made only once the source is durable, so
 * nothing that might still be rolled back can leak into it. */
static void make_copy(gd_conn *c, gd_session *src, bool publish)
{
    gd_server *srv = gd_server_of(c->wsi);
    char id[37];
    gd_record rec;
    if (gd_uuid_v4(id) != 0) {
        respond(c, 500, "{\"error\":\"Failed to create session\"}");
        return;
    }
    gd_record_init(&rec, id, gd_now_ms());
    rec.immutable = publish;
    rec.remixed_from = strdup(src->id);
    rec.remixed_from_name = strdup(src->rec.name ? src->rec.name : first_track_name(&src->rec));
    if (publish && src->rec.name) rec.name = strdup(src->rec.name);
    gd_state_clear(&rec.state);
    gd_session *s = NULL;
    if (rec.remixed_from && rec.remixed_from_name && (!publish || !src->rec.name || rec.name) &&
        gd_state_copy(&rec.state, &src->rec.state) == 0)
        s = gd_session_create(srv, &rec);
    if (!s) {
        gd_record_clear(&rec);
        respond(c, 503,
                publish ? "{\"error\":\"Failed to publish session\"}"
                        : "{\"error\":\"Failed to remix session\"}");
        return;
    }
    char out[256];
    if (publish) {
        snprintf(out, sizeof(out),
                 "{\"id\":\"%s\",\"immutable\":true,\"url\":\"/s/%s\",\"sourceId\":\"%s\","
                 "\"remixedFrom\":\"%s\"}",
                 s->id, s->id, src->id, src->id);
    } else {
        gd_op op = {.type = GD_OP_REMIX_COUNT};
        gd_op_err err;
        int64_t opno;
        if (gd_session_apply_op(srv, src, &op, NULL, NULL, &err, &opno) != 0)
            gd_log(GD_LOG_WARN, "session %s: remix count not recorded: %s", src->id, err.message);
        snprintf(out, sizeof(out), "{\"id\":\"%s\",\"remixedFrom\":\"%s\",\"url\":\"/s/%s\"}",
                 s->id, src->id, s->id);
    }
    gd_log(GD_LOG_INFO, "session %s: %s of %s by %s", s->id, publish ? "published copy" : "remix",
           src->id, c->peer);
    gd_http_set_json(c, 201, out);
    gd_session_wait_durable(srv, s, c, 0);
}

static void copy_remix(gd_conn *c, gd_session *src)
{
    make_copy(c, src, false);
}

static void copy_publish(gd_conn *c, gd_session *src)
{
    make_copy(c, src, true);
}

static void cont_remix(gd_conn *c, gd_session *src)
{
    c->after_durable = copy_remix;
    gd_session_wait_durable(gd_server_of(c->wsi), src, c, (int64_t)src->rec.opno);
}

static void cont_publish(gd_conn *c, gd_session *src)
{
    if (src->rec.immutable) {
        respond(c, 400,
                "{\"error\":\"Cannot publish from an already-published session. Remix "
                "it first to create an editable copy.\"}");
        return;
    }
    c->after_durable = copy_publish;
    gd_session_wait_durable(gd_server_of(c->wsi), src, c, (int64_t)src->rec.opno);
}

static void cont_debug(gd_conn *c, gd_session *s)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_printf(&b,
                  "{\"id\":\"%s\",\"players\":%d,\"serverSeq\":%llu,\"opno\":%llu,"
                  "\"durableOpno\":%lld,\"checkpointOpno\":%lld,\"kvOpno\":%lld,"
                  "\"memoryEstimate\":%zu,\"playerIds\":[",
                  s->id, s->nplayers, (unsigned long long)s->rec.server_seq,
                  (unsigned long long)s->rec.opno, (long long)s->durable_opno,
                  (long long)s->ckpt_opno, (long long)s->kv_opno, s->mem_bytes);
    for (int i = 0; i < s->nplayers; i++)
        gd_buf_printf(&b, "%s\"%s\"", i ? "," : "", s->players[i]->player_id);
    char hash[9] = "";
    gd_state_hash(&s->rec.state, hash);
    gd_buf_printf(&b, "],\"stateHash\":\"%s\"}", hash);
    respond_buf(c, 200, &b);
    gd_buf_free(&b);
}

static void on_list_done(gd_job *job)
{
    gd_conn *c = job->owner;
    if (c) {
        c->list_job = NULL;
        if (job->rc == 0 && job->text)
            gd_http_set_response(c, 200, mime_json, job->text, job->len);
        else
            gd_http_set_json(c, 503, "{\"error\":\"Listing unavailable\"}");
        gd_http_ready(c);
    }
    gd_job_free(job);
}

/* GET /api/sessions?limit=N&cursor=<updatedAt>.<id>: from the KV view. */
static void handle_list(gd_server *srv, gd_conn *c)
{
    char buf[128];
    int limit = 20;
    /* lws copies "name=value" into buf and returns where the value starts. */
    const char *arg = lws_get_urlarg_by_name(c->wsi, "limit=", buf, sizeof(buf));
    if (arg) {
        char *end;
        long n = strtol(arg, &end, 10);
        if (*arg == '\0' || *end || n < 1 || n > 100) {
            respond(c, 400, "{\"error\":\"limit must be an integer from 1 to 100\"}");
            return;
        }
        limit = (int)n;
    }
    gd_job *job = gd_job_new(GD_JOB_KV_LIST);
    if (!job) {
        respond(c, 503, "{\"error\":\"Out of memory\"}");
        return;
    }
    job->updated_at = INT64_MAX;
    snprintf(job->id, sizeof(job->id), "~"); /* sorts after every id */
    arg = lws_get_urlarg_by_name(c->wsi, "cursor=", buf, sizeof(buf));
    if (arg) {
        char *dot = strchr(arg, '.');
        char *end;
        long long at = dot ? strtoll(arg, &end, 10) : 0;
        if (!dot || end != dot || !gd_uuid_shape_ok(dot + 1, (int)strlen(dot + 1))) {
            gd_job_free(job);
            respond(c, 400, "{\"error\":\"Invalid cursor\"}");
            return;
        }
        job->updated_at = at;
        snprintf(job->id, sizeof(job->id), "%s", dot + 1);
        for (char *q = job->id; *q; q++) /* ids are stored lower-case */
            if (*q >= 'A' && *q <= 'F') *q = (char)(*q - 'A' + 'a');
    }
    job->limit = limit;
    job->owner = c;
    job->arg = srv;
    job->done = on_list_done;
    c->list_job = job;
    gd_store_submit(srv->store, job);
}

static void with_session(gd_server *srv, gd_conn *c, const char *id, gd_http_cont cont)
{
    if (!gd_idset_has(&srv->ids, id)) {
        respond(c, 404, "{\"error\":\"Session not found\"}");
        return;
    }
    gd_session *s = gd_session_acquire(srv, id);
    if (!s) {
        respond(c, 503, "{\"error\":\"Out of memory\"}");
        return;
    }
    gd_session_wait_load(srv, s, c, cont);
}

static void hist_write(gd_buf *b, const char *name, const char *help, const gd_hist *h)
{
    gd_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < GD_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        gd_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, gd_hist_bounds_ms[i],
                      (unsigned long long)cum);
    }
    cum += h->counts[GD_HIST_BUCKETS];
    gd_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name,
                  (unsigned long long)cum, name, h->sum_ms, name, (unsigned long long)h->n);
}

/* Opens a metric family: its # HELP and # TYPE lines. */
static void family(gd_buf *b, const char *name, const char *type, const char *help)
{
    gd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one unlabelled sample. */
static void metric(gd_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    gd_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void handle_metrics(gd_server *srv, gd_conn *c)
{
    gd_metrics *m = &srv->m;
    gd_store_stats st;
    gd_store_get_stats(srv->store, &st);
    gd_static_stats ws;
    gd_static_get_stats(srv->web, &ws);
    size_t live = 0, players = 0, loading = 0, hibernated = 0;
    for (size_t i = 0; i < srv->sessions.nbuckets; i++)
        for (gd_session *s = srv->sessions.buckets[i]; s; s = s->hnext) {
            live += s->st == GD_SESS_LIVE;
            loading += s->st == GD_SESS_LOADING;
            hibernated += s->st == GD_SESS_HIBERNATED;
            players += (size_t)s->nplayers;
        }
    gd_buf b;
    gd_buf_init(&b);
    metric(&b, "grooved_connections", "gauge", "WebSocket players connected", players);
    family(&b, "grooved_sessions", "gauge", "sessions in memory, by state");
    gd_buf_printf(&b,
                  "grooved_sessions{state=\"live\"} %zu\n"
                  "grooved_sessions{state=\"loading\"} %zu\n"
                  "grooved_sessions{state=\"hibernated\"} %zu\n",
                  live, loading, hibernated);
    metric(&b, "grooved_sessions_known", "gauge",
           "session ids known to the durable store or the KV view", srv->ids.n);
    metric(&b, "grooved_sessions_evicted_total", "counter", "sessions evicted from memory",
           m->evictions);
    metric(&b, "grooved_memory_estimate_bytes", "gauge",
           "estimated memory of the sessions in memory, at the last tick", m->mem_estimate);
    metric(&b, "grooved_budget_evictions_total", "counter",
           "sessions evicted or hibernated to keep within --memory-budget-mb", m->budget_evictions);
    metric(&b, "grooved_sessions_hibernated_total", "counter",
           "sessions whose state left memory while players stayed connected", m->hibernations);
    metric(&b, "grooved_sessions_created_total", "counter",
           "sessions created (create, remix, publish)", m->sessions_created);
    metric(&b, "grooved_ws_connections_total", "counter", "WebSocket connections accepted",
           m->ws_connections);
    metric(&b, "grooved_http_requests_total", "counter", "HTTP requests received",
           m->http_requests);
    family(&b, "grooved_mutations_total", "counter", "mutations accepted, by message type");
    for (int t = 1; t < GD_OP__COUNT; t++)
        gd_buf_printf(&b, "grooved_mutations_total{type=\"%s\"} %llu\n", gd_op_type_name(t),
                      (unsigned long long)m->mutations[t]);
    const struct {
        const char *code;
        uint64_t v;
    } rej[] = {{GD_E_INVALID_JSON, m->rejected_invalid_json},
               {GD_E_MESSAGE_TOO_LARGE, m->rejected_too_large},
               {GD_E_UNKNOWN_TYPE, m->rejected_unknown_type},
               {GD_E_INVALID_FIELD, m->rejected_invalid_field},
               {GD_E_TRACK_NOT_FOUND, m->rejected_track_not_found},
               {GD_E_TOO_MANY_TRACKS, m->rejected_too_many_tracks},
               {GD_E_SESSION_PUBLISHED, m->rejected_published},
               {GD_E_RATE_LIMITED, m->rejected_rate_limited},
               {GD_E_STORAGE_UNAVAILABLE, m->rejected_storage},
               {GD_E_SESSION_UNAVAILABLE, m->rejected_unavailable}};
    family(&b, "grooved_rejected_total", "counter",
           "WebSocket messages rejected with an error, by error code");
    for (size_t i = 0; i < sizeof(rej) / sizeof(rej[0]); i++)
        gd_buf_printf(&b, "grooved_rejected_total{code=\"%s\"} %llu\n", rej[i].code,
                      (unsigned long long)rej[i].v);
    metric(&b, "grooved_commits_total", "counter", "group commits of the durable store",
           st.commits);
    metric(&b, "grooved_commit_failures_total", "counter",
           "group commits that failed (their ops were not acknowledged)", st.commit_failures);
    metric(&b, "grooved_durable_rows_total", "counter",
           "rows (ops and checkpoints) committed to the durable store", st.rows);
    metric(&b, "grooved_durable_bytes_total", "counter", "bytes committed to the durable store",
           st.bytes);
    metric(&b, "grooved_kv_writes_total", "counter", "sessions written to the KV view", st.kv_puts);
    metric(&b, "grooved_kv_write_failures_total", "counter",
           "KV view writes that failed (retried with backoff)", st.kv_failures);
    family(&b, "grooved_reloads_total", "counter",
           "sessions loaded into memory, by where their state came from");
    gd_buf_printf(&b,
                  "grooved_reloads_total{source=\"durable\"} %llu\n"
                  "grooved_reloads_total{source=\"kv\"} %llu\n"
                  "grooved_reloads_total{source=\"default\"} %llu\n",
                  (unsigned long long)m->loads_durable, (unsigned long long)m->loads_kv,
                  (unsigned long long)m->loads_default);
    metric(&b, "grooved_lagging_closed_total", "counter",
           "sockets closed because they fell behind --out-cap-kb", m->lagging_closed);
    metric(&b, "grooved_load_failures_total", "counter",
           "session loads that failed (unreadable or quarantined data, I/O errors)",
           m->load_failures);
    metric(&b, "grooved_kv_views_behind", "gauge",
           "sessions whose KV view is behind the durable store", st.kv_behind);
    metric(&b, "grooved_static_responses_total", "counter",
           "responses from the web root (files, index.html fallbacks, 304s, 404s)", ws.responses);
    metric(&b, "grooved_static_not_modified_total", "counter",
           "web root responses that were 304 Not Modified", ws.not_modified);
    metric(&b, "grooved_static_body_bytes_total", "counter",
           "body bytes sent from the web root, after compression", ws.bytes_sent);
    family(&b, "grooved_static_compressions_total", "counter",
           "web root files compressed (each file version once while cached), by coding");
    gd_buf_printf(&b,
                  "grooved_static_compressions_total{encoding=\"gzip\"} %llu\n"
                  "grooved_static_compressions_total{encoding=\"br\"} %llu\n",
                  (unsigned long long)ws.compressions_gzip, (unsigned long long)ws.compressions_br);
    metric(&b, "grooved_static_compressed_cache_hits_total", "counter",
           "web root responses sent from the compressed-copy cache", ws.cache_hits);
    metric(&b, "grooved_static_precompressed_total", "counter",
           "web root responses sent from a precompressed sibling (.br, .gz)", ws.precompressed);
    metric(&b, "grooved_static_cache_bytes", "gauge",
           "bytes of compressed copies held by the web root's cache", ws.cache_bytes);
    hist_write(&b, "grooved_ops_per_commit", "rows per group commit", &m->ops_per_commit);
    hist_write(&b, "grooved_commit_latency_ms", "storage commit time, milliseconds", &m->commit_ms);
    hist_write(&b, "grooved_ack_latency_ms",
               "time from an op's acceptance to its durability, milliseconds", &m->ack_ms);
    if (b.oom)
        respond(c, 503, "{\"error\":\"Out of memory\"}");
    else {
        gd_http_set_response(c, 200, "text/plain; version=0.0.4", b.p, b.len);
        gd_http_ready(c);
    }
    gd_buf_free(&b);
}

static void dispatch(gd_server *srv, gd_conn *c)
{
    const char *p = c->path;
    c->dispatched = true;
    char id[37];
    if (strcmp(p, "/healthz") == 0 && c->method == M_GET) {
        char out[160];
        snprintf(out, sizeof(out),
                 "{\"status\":\"ok\",\"sessionsInMemory\":%zu,\"storageQueue\":%d}",
                 srv->sessions.n, gd_store_pending(srv->store));
        respond(c, 200, out);
        return;
    }
    if (strcmp(p, "/metrics") == 0 && c->method == M_GET) {
        handle_metrics(srv, c);
        return;
    }
    if (strcmp(p, "/api/sessions") == 0 && c->method == M_POST) {
        handle_create(srv, c);
        return;
    }
    if (strcmp(p, "/api/sessions") == 0 && c->method == M_GET) {
        handle_list(srv, c);
        return;
    }
    static const char debug_prefix[] = "/api/debug/sessions/";
    if (srv->cfg.debug_routes && c->method == M_GET &&
        strncmp(p, debug_prefix, sizeof(debug_prefix) - 1) == 0 &&
        gd_id_pattern_ok(p + sizeof(debug_prefix) - 1, (int)strlen(p + sizeof(debug_prefix) - 1)) &&
        gd_uuid_shape_ok(p + sizeof(debug_prefix) - 1, 36)) {
        /* Lower-case only, like every session route: an upper-cased id would
         * be a second, phantom session of the same id set entry. */
        with_session(srv, c, p + sizeof(debug_prefix) - 1, cont_debug);
        return;
    }
    route_kind r = session_route(p, id);
    if (r != R_NONE) {
        bool ok = (r == R_SESSION &&
                   (c->method == M_GET || c->method == M_PUT || c->method == M_PATCH)) ||
                  ((r == R_REMIX || r == R_PUBLISH) && c->method == M_POST);
        if (!ok) {
            respond(c, 404, "{\"error\":\"Not found\"}");
            return;
        }
        if (!gd_uuid_shape_ok(id, 36)) {
            respond(c, 400, "{\"error\":\"Invalid session ID format\"}");
            return;
        }
        if ((r == R_REMIX || r == R_PUBLISH) && !creation_allowed(srv, c)) return;
        with_session(srv, c, id,
                     r == R_REMIX         ? cont_remix
                     : r == R_PUBLISH     ? cont_publish
                     : c->method == M_GET ? cont_get
                     : c->method == M_PUT ? cont_put
                                          : cont_patch);
        return;
    }
    if (strncmp(p, "/api/", 5) == 0 || (c->method != M_GET && c->method != M_HEAD)) {
        respond(c, 404, "{\"error\":\"Not found\"}");
        return;
    }
    /* Everything else is the web root's (static.c): files, and index.html
     * for /s/{id} and the single-page app's other routes. */
    if (gd_static_serve(srv->web, c, c->method == M_HEAD) != 0)
        respond(c, 503, "{\"error\":\"Out of memory\"}");
}
