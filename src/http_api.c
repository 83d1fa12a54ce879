/*
 * http_api — see http_api.h. Responses are built into c->resp and written
 * from the writable callback, the head and the body in one sendmsg each time
 * the socket takes more.
 */
#define _GNU_SOURCE
#include "http_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "hash.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "door.h"
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
    gd_server_want_write(c);
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

/* A session could not give a request what it waited for: the answer for
 * each of the session's result codes (session.h). `durable` for a wait on
 * durability, where -EIO means that the commit failed. */
static void respond_wait_failed(gd_conn *c, int rc, bool durable)
{
    switch (rc) {
    case -ENOENT:
        respond(c, 404, "{\"error\":\"Session not found\"}");
        break;
    case -EBADMSG:
        respond(c, 500,
                "{\"error\":\"Session unavailable\",\"message\":\"The session's stored data "
                "cannot be read; nothing was changed. The operator has been told.\"}");
        break;
    case -ENOMEM:
        respond(c, 503, "{\"error\":\"Out of memory\"}");
        break;
    case -EAGAIN: /* cluster mode: another node took the session meanwhile */
        respond(c, 503,
                "{\"error\":\"Session moved\",\"message\":\"Another server took this session "
                "over; retry\"}");
        break;
    default:
        respond(c, 503,
                durable ? "{\"error\":\"Storage unavailable\",\"message\":\"The change could "
                          "not be saved; it was not applied\"}"
                        : "{\"error\":\"Storage unavailable\"}");
        break;
    }
}

/* The session of the request is in memory: its route goes on (c->cont). */
static void on_loaded(gd_conn *c, gd_session *s, int rc)
{
    if (rc != 0)
        respond_wait_failed(c, rc, false);
    else
        c->cont(c, s);
}

/* c's response is set and tells of a change: it goes out once the change
 * is durable, and a 503 goes instead when its commit failed. */
static void answer_when_durable(gd_conn *c, gd_session *s, int rc)
{
    if (rc != 0)
        respond_wait_failed(c, rc, true);
    else
        gd_http_ready(c);
}

/* ---- request intake --------------------------------------------------- */

static int method_of(const char *m)
{
    static const struct {
        const char *name;
        int m;
    } t[] = {{"GET", M_GET},         {"POST", M_POST},     {"PUT", M_PUT},  {"PATCH", M_PATCH},
             {"OPTIONS", M_OPTIONS}, {"DELETE", M_DELETE}, {"HEAD", M_HEAD}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(m, t[i].name) == 0) return t[i].m;
    return M_OTHER;
}

/* The value of query argument `name` (decoded into buf), or NULL. */
static const char *query_arg(const gd_conn *c, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = c->query; *p;) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
            return gd_percent_decode(p + nl + 1, (size_t)(end - p) - nl - 1, buf, len) ? buf
                                                                                       : "\x01";
        p = amp ? amp + 1 : end;
    }
    return NULL;
}

static void reset_request(gd_conn *c)
{
    free(c->resp);
    c->resp = NULL;
    free(c->resp_head);
    c->resp_head = NULL;
    gd_buf_free(&c->out);
    c->out_off = 0;
    c->finish_pending = false;
    gd_buf_free(&c->body);
    c->body_too_large = c->body_is_json = false;
    c->if_match[0] = c->resp_headers[0] = '\0';
    c->resp_ready = c->headers_sent = c->dispatched = false;
    c->resp_len = c->resp_off = c->resp_head_len = c->resp_head_off = 0;
    c->status = 0;
}

/*
 * The door read a request head on c (consumed from the socket). Each
 * connection carries exactly one request and is answered with "connection:
 * close": whatever a client pipelines after it is read and dropped, never
 * parsed (lingering close in gd_http_on_writable).
 */
long long gd_http_begin(gd_server *srv, gd_conn *c, const gd_reqhead *h)
{
    reset_request(c);
    c->kind = GD_CONN_HTTP;
    srv->m.http_requests++;
    c->method = method_of(h->method);
    c->head_only = c->method == M_HEAD;
    if (c->head_only) c->method = M_GET; /* routed like GET; the body is not sent */
    const char *q = memchr(h->target.p, '?', h->target.len);
    size_t plen = q ? (size_t)(q - h->target.p) : h->target.len;
    size_t qlen = q ? h->target.len - plen - 1 : 0;
    c->query[0] = '\0';
    if (qlen < sizeof(c->query)) {
        memcpy(c->query, q ? q + 1 : "", qlen);
        c->query[qlen] = '\0';
    }
    if (h->if_match.len < sizeof(c->if_match)) {
        memcpy(c->if_match, h->if_match.p ? h->if_match.p : "", h->if_match.len);
        c->if_match[h->if_match.len] = '\0';
    } else {
        snprintf(c->if_match, sizeof(c->if_match), "-"); /* too long to match any ETag */
    }
    c->body_is_json = h->content_type.p && memmem(h->content_type.p, h->content_type.len,
                                                  "application/json", 16) != NULL;
    char *xff = h->xff.p ? strndup(h->xff.p, h->xff.len) : NULL;
    gd_door_client_addr(srv, &c->addr, xff, &c->client);
    free(xff);
    gd_addr_format(&c->client, c->peer, sizeof(c->peer));

    if (!gd_percent_decode(h->target.p, plen, c->path, sizeof(c->path))) {
        /* Too long for any API route, or malformed. A long path may still
         * name a file of the web root: static.c decodes it again. */
        char *all = malloc(plen + 1);
        bool malformed = !all || !gd_percent_decode(h->target.p, plen, all, plen + 1);
        free(all);
        bool long_file = !malformed && (c->method == M_GET || c->method == M_HEAD) &&
                         strncmp(h->target.p, "/api/", 5) != 0;
        c->path[0] = '\0';
        if (!long_file) {
            c->dispatched = true;
            respond(c, malformed ? 400 : 404,
                    malformed ? "{\"error\":\"Malformed path\"}" : "{\"error\":\"Not found\"}");
            return 0;
        }
    }
    if (qlen >= sizeof(c->query)) {
        c->dispatched = true;
        respond(c, 400, "{\"error\":\"Query too long\"}");
        return 0;
    }
    if (c->method == M_OPTIONS) { /* as the reference: 200, no body, no Content-Type */
        c->dispatched = true;
        gd_http_set_response(c, 200, NULL, "", 0);
        gd_http_ready(c);
        return 0;
    }
    if ((c->method == M_POST || c->method == M_PUT || c->method == M_PATCH) &&
        h->content_length > 0) {
        if (h->content_length > GD_MAX_MESSAGE) {
            c->dispatched = true; /* answered now: the body is never read */
            respond(c, 413, "{\"error\":\"Request body too large\"}");
            return 0;
        }
        return h->content_length; /* continue in gd_http_on_body_done */
    }
    c->req = h; /* for static.c, which serves GET and HEAD right away */
    dispatch(srv, c);
    c->req = NULL;
    return 0;
}

int gd_http_on_body(gd_server *srv, gd_conn *c, const void *in, size_t len)
{
    if (c->dispatched) return 0;
    if (c->body.len + len > GD_MAX_MESSAGE) c->body_too_large = true;
    if (!c->body_too_large) gd_buf_put(&c->body, in, len);
    return 0;
}

int gd_http_on_body_done(gd_server *srv, gd_conn *c)
{
    if (c->dispatched) return 0;
    if (c->body_too_large || c->body.oom) {
        c->dispatched = true;
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

const char *gd_http_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static int build_head(gd_conn *c)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_printf(&b, "HTTP/1.1 %d %s\r\n", c->status, gd_http_status_text(c->status));
    if (c->resp_type) gd_buf_printf(&b, "content-type: %s\r\n", c->resp_type);
    gd_buf_printf(&b, "content-length: %zu\r\n", c->resp_len);
    if (is_api(c) || c->method == M_OPTIONS)
        gd_buf_puts(&b, "access-control-allow-origin: *\r\n"
                        "access-control-allow-methods: GET, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
                        "access-control-allow-headers: Content-Type, If-Match\r\n");
    /* Extra headers: "name:\nvalue\n" pairs. */
    for (const char *h = c->resp_headers; *h;) {
        const char *nl = strchr(h, '\n'), *vend = nl ? strchr(nl + 1, '\n') : NULL;
        if (!vend) break;
        gd_buf_printf(&b, "%.*s %.*s\r\n", (int)(nl - h), h, (int)(vend - nl - 1), nl + 1);
        h = vend + 1;
    }
    gd_buf_puts(&b, "connection: close\r\n\r\n");
    c->resp_head = gd_buf_steal(&b, &c->resp_head_len);
    c->resp_head_off = 0;
    return c->resp_head ? 0 : -1;
}

/* Writes the response: the head and the body in one sendmsg per writable
 * callback. Once all of it is out, the connection half-closes and drains
 * what the client still sends (pipelined requests included) until it
 * closes too, or for two seconds: closing with unread input would reset
 * the connection and could destroy the response before the client read it. */
/* The response has left: the connection half-closes and drains what the
 * client still sends (pipelined requests included) until it closes too, or
 * for two seconds. Closing with unread input would reset the connection,
 * which can destroy the response before the client has read it. */
static void linger(gd_conn *c)
{
    reset_request(c);
    c->lingering = true;
    shutdown(lws_get_socket_fd(c->wsi), SHUT_WR);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, 2);
    lws_rx_flow_control(c->wsi, 1);
}

/* Sends what waits in c->out. 1 when all of it has left, 0 when the socket
 * took only part (a writable callback will come), -1 on error. */
static int flush_out(gd_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(lws_get_socket_fd(c->wsi), c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) return -1;
            gd_server_want_write(c);
            return 0;
        }
        c->out_off += (size_t)n;
    }
    gd_buf_free(&c->out);
    c->out_off = 0;
    return 1;
}

int gd_http_send(gd_conn *c, const void *data, size_t len)
{
    gd_buf_put(&c->out, data, len);
    if (c->out.oom) return -1;
    return flush_out(c) < 0 ? -1 : 0;
}

bool gd_http_sending(const gd_conn *c)
{
    return c->out_off < c->out.len;
}

void gd_http_finish(gd_conn *c)
{
    c->finish_pending = true;
    if (!gd_http_sending(c))
        linger(c);
    else
        gd_server_want_write(c);
}

/* Writes the response: the head and the body in one sendmsg per writable
 * callback, then lingers (see linger). */
int gd_http_on_writable(gd_server *srv, gd_conn *c)
{
    if (c->kind != GD_CONN_HTTP) return 0;
    if (gd_http_sending(c)) { /* what the socket did not take last time goes first */
        int rc = flush_out(c);
        if (rc <= 0) return rc;
        if (c->finish_pending) {
            linger(c);
            return 0;
        }
    }
    if (c->static_req) return gd_static_on_writable(srv->web, c);
    if (!c->resp_ready) return 0;
    if (!c->resp_head && build_head(c) != 0) return -1;
    size_t body = c->head_only ? 0 : c->resp_len;
    struct iovec iov[2] = {{c->resp_head + c->resp_head_off, c->resp_head_len - c->resp_head_off},
                           {c->resp ? c->resp + c->resp_off : NULL, body - c->resp_off}};
    struct msghdr mh = {.msg_iov = iov[0].iov_len ? iov : iov + 1,
                        .msg_iovlen = iov[0].iov_len ? 2 : 1};
    ssize_t n = sendmsg(lws_get_socket_fd(c->wsi), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) return -1;
        gd_server_want_write(c);
        return 0;
    }
    size_t done = (size_t)n, h = c->resp_head_len - c->resp_head_off;
    c->resp_head_off += done < h ? done : h;
    c->resp_off += done > h ? done - h : 0;
    if (c->resp_head_off < c->resp_head_len || c->resp_off < body) {
        gd_server_want_write(c);
        return 0;
    }
    linger(c);
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

static json_t *parse_body(gd_conn *c)
{
    json_error_t e;
    if (!c->body.len) return NULL;
    return json_loadb(c->body.p, c->body.len, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &e);
}

/* Takes one token of a per-client-address limit; when there is none,
 * answers 429 (what: "creating more sessions", ...) and returns false. */
static bool limit_allows(gd_conn *c, gd_ratelimit *rl, uint64_t *refusals, const char *what)
{
    int retry = 1;
    if (gd_ratelimit_take(rl, &c->client, gd_now_ms(), &retry)) return true;
    char body[160], ra[16];
    snprintf(body, sizeof(body),
             "{\"error\":\"Too many requests. Please wait before %s.\",\"retryAfter\":%d}", what,
             retry);
    snprintf(ra, sizeof(ra), "%d", retry);
    gd_http_set_json(c, 429, body);
    add_header(c, "retry-after:", ra);
    add_header(c, "x-ratelimit-remaining:", "0");
    gd_http_ready(c);
    (*refusals)++;
    return false;
}

/* The per-IP limit on every route that creates a session (decision #23). */
static bool creation_allowed(gd_server *srv, gd_conn *c)
{
    return limit_allows(c, &srv->create_rate, &srv->m.limited_create, "creating more sessions");
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
    gd_session *s = gd_session_create(&srv->sessions, &rec);
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
    gd_session_wait_durable(&srv->sessions, s, c, 0, answer_when_durable);
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
        /* For the page: a refused upgrade was for fullness only when the
         * session is full (docs/PROTOCOL.md, "Full sessions"). */
        char players[16], limit[16];
        snprintf(players, sizeof(players), "%d", s->nplayers);
        snprintf(limit, sizeof(limit), "%d", GD_MAX_PLAYERS);
        add_header(c, "x-grooved-players:", players);
        add_header(c, "x-grooved-player-limit:", limit);
        /* Never show state that is not yet durable. */
        gd_session_wait_durable(&srv->sessions, s, c, (int64_t)s->rec.opno, answer_when_durable);
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
    gd_session_wait_durable(&srv->sessions, s, c, opno, answer_when_durable);
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
    if (gd_session_apply_op(&srv->sessions, s, &op, NULL, NULL, &err, &opno) != 0)
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
    if (gd_session_apply_op(&srv->sessions, s, &op, NULL, NULL, &err, &opno) != 0)
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
        s = gd_session_create(&srv->sessions, &rec);
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
        if (gd_session_apply_op(&srv->sessions, src, &op, NULL, NULL, &err, &opno) != 0)
            gd_log(GD_LOG_WARN, "session %s: remix count not recorded: %s", src->id, err.message);
        snprintf(out, sizeof(out), "{\"id\":\"%s\",\"remixedFrom\":\"%s\",\"url\":\"/s/%s\"}",
                 s->id, src->id, s->id);
    }
    gd_log(GD_LOG_INFO, "session %s: %s of %s by %s", s->id, publish ? "published copy" : "remix",
           src->id, c->peer);
    gd_http_set_json(c, 201, out);
    gd_session_wait_durable(&srv->sessions, s, c, 0, answer_when_durable);
}

static void copy_remix(gd_conn *c, gd_session *src, int rc)
{
    if (rc != 0)
        respond_wait_failed(c, rc, true);
    else
        make_copy(c, src, false);
}

static void copy_publish(gd_conn *c, gd_session *src, int rc)
{
    if (rc != 0)
        respond_wait_failed(c, rc, true);
    else
        make_copy(c, src, true);
}

static void cont_remix(gd_conn *c, gd_session *src)
{
    gd_session_wait_durable(&gd_server_of(c->wsi)->sessions, src, c, (int64_t)src->rec.opno,
                            copy_remix);
}

static void cont_publish(gd_conn *c, gd_session *src)
{
    if (src->rec.immutable) {
        respond(c, 400,
                "{\"error\":\"Cannot publish from an already-published session. Remix "
                "it first to create an editable copy.\"}");
        return;
    }
    gd_session_wait_durable(&gd_server_of(c->wsi)->sessions, src, c, (int64_t)src->rec.opno,
                            copy_publish);
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

/* GET /api/sessions?limit=N&cursor=<updatedAt>.<id>: from the KV view.
 * A listing reads storage on the storage thread: limited per client. */
static void handle_list(gd_server *srv, gd_conn *c)
{
    if (!limit_allows(c, &srv->list_rate, &srv->m.limited_list, "listing sessions again")) return;
    char buf[128];
    int limit = 20;
    const char *arg = query_arg(c, "limit", buf, sizeof(buf));
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
    arg = query_arg(c, "cursor", buf, sizeof(buf));
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
    if (!gd_sessions_may_exist(&srv->sessions, id)) {
        respond(c, 404, "{\"error\":\"Session not found\"}");
        return;
    }
    gd_session *cur = gd_session_find(&srv->sessions, id);
    if ((!cur || cur->st == GD_SESS_HIBERNATED) &&
        !limit_allows(c, &srv->load_rate, &srv->m.limited_load, "opening more sessions"))
        return; /* it would load from storage */
    gd_session *s = gd_session_acquire(&srv->sessions, id);
    if (!s) {
        respond(c, 503, "{\"error\":\"Out of memory\"}");
        return;
    }
    c->cont = cont;
    gd_session_wait_load(&srv->sessions, s, c, on_loaded);
}

/* GET /metrics: the numbers other modules keep are read here; metrics.c
 * renders them with the server's own counters. */
static void handle_metrics(gd_server *srv, gd_conn *c)
{
    gd_store_stats st;
    gd_store_get_stats(srv->store, &st);
    gd_static_stats ws;
    gd_static_get_stats(srv->web, &ws);
    gd_metrics_sources in = {
        .sessions_known = srv->sessions.ids.n,
        .commits = st.commits,
        .commit_failures = st.commit_failures,
        .durable_rows = st.rows,
        .durable_bytes = st.bytes,
        .kv_writes = st.kv_puts,
        .kv_write_failures = st.kv_failures,
        .kv_behind = st.kv_behind,
        .static_responses = ws.responses,
        .static_not_modified = ws.not_modified,
        .static_body_bytes = ws.bytes_sent,
        .static_compressions_gzip = ws.compressions_gzip,
        .static_compressions_br = ws.compressions_br,
        .static_cache_hits = ws.cache_hits,
        .static_precompressed = ws.precompressed,
        .static_cache_bytes = ws.cache_bytes,
        .connections_refused = srv->door.refused,
    };
    for (size_t i = 0; i < srv->sessions.nbuckets; i++)
        for (gd_session *s = srv->sessions.buckets[i]; s; s = s->hnext) {
            in.sessions_live += s->st == GD_SESS_LIVE;
            in.sessions_loading += s->st == GD_SESS_LOADING;
            in.sessions_hibernated += s->st == GD_SESS_HIBERNATED;
            in.players += (uint64_t)s->nplayers;
        }
    gd_buf b;
    gd_buf_init(&b);
    if (gd_metrics_render(&srv->m, &in, &b) != 0)
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
        /* A stopping server is not ready: load balancers take it out of
         * rotation while it drains (server.c), and it goes on answering. */
        bool draining = gd_server_draining(srv);
        char out[160];
        snprintf(out, sizeof(out),
                 "{\"status\":\"%s\",\"sessionsInMemory\":%zu,\"storageQueue\":%d}",
                 draining ? "draining" : "ok", srv->sessions.n, gd_store_pending(srv->store));
        respond(c, draining ? 503 : 200, out);
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
