/*
 * ws — see ws.h. Output leaves in one sendmsg per writable callback: the
 * frame headers and the shared message buffers go out as an iovec, so a
 * broadcast is never copied per recipient; a frame written in part is
 * finished before anything else (w_off).
 */
#define _GNU_SOURCE
#include "ws.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "door.h"
#include "log.h"
#include "op.h"
#include "session.h"
#include "store.h"

#define READ_CHUNK 32768
#define WRITE_MAX (256 * 1024)
#define CLOSE_WAIT_S 3

static int fd_of(const gd_conn *c)
{
    return lws_get_socket_fd(c->wsi);
}

/* ---- handshake -------------------------------------------------------- */

static int finish_upgrade(gd_server *srv, gd_conn *c, const char *id);
static void upgrade_loaded(gd_conn *c, gd_session *s, int rc);

static int refuse(int fd, int status, const char *type, const char *body, const char *extra)
{
    gd_door_reply(fd, status, type, body, extra);
    return -1;
}

/* /api/sessions/<36>/ws, optionally with a query string. */
static bool ws_route(const gd_span *t, char id[37])
{
    static const char prefix[] = "/api/sessions/";
    size_t pl = sizeof(prefix) - 1, len = t->len;
    const char *q = memchr(t->p, '?', len);
    if (q) len = (size_t)(q - t->p);
    if (len != pl + 36 + 3 || strncmp(t->p, prefix, pl) != 0 ||
        memcmp(t->p + pl + 36, "/ws", 3) != 0 || !gd_id_pattern_ok(t->p + pl, 36))
        return false;
    memcpy(id, t->p + pl, 36);
    id[36] = '\0';
    return true;
}

int gd_ws_upgrade(gd_server *srv, gd_conn *c, const gd_reqhead *h)
{
    int fd = fd_of(c);
    static const char json[] = "application/json";
    /* The right-most X-Forwarded-For entry is what counts: keep the tail. */
    char xff[256] = "";
    if (h->xff.p) {
        size_t n = h->xff.len < sizeof(xff) ? h->xff.len : sizeof(xff) - 1;
        memcpy(xff, h->xff.p + h->xff.len - n, n);
        xff[n] = '\0';
    }
    gd_door_client_addr(srv, &c->addr, h->xff.p ? xff : NULL, &c->client);
    gd_addr_format(&c->client, c->peer, sizeof(c->peer));
    if (strcmp(h->method, "GET") != 0 || h->minor < 1 || !h->has_host || !h->connection_upgrade ||
        !h->ws_key.p || !gd_ws_key_valid(h->ws_key.p, h->ws_key.len))
        return refuse(fd, 400, json, "{\"error\":\"Bad WebSocket handshake\"}", NULL);
    if (h->ws_version.len != 2 || memcmp(h->ws_version.p, "13", 2) != 0)
        return refuse(fd, 426, json, "{\"error\":\"Unsupported WebSocket version\"}",
                      "sec-websocket-version: 13\r\n");
    if (h->content_length > 0)
        return refuse(fd, 400, json, "{\"error\":\"Bad WebSocket handshake\"}", NULL);
    char id[37];
    if (!ws_route(&h->target, id)) return refuse(fd, 404, json, "{\"error\":\"Not found\"}", NULL);
    if (!gd_uuid_shape_ok(id, 36))
        return refuse(fd, 400, json, "{\"error\":\"Invalid session ID format\"}", NULL);
    if (!gd_sessions_may_exist(&srv->sessions, id))
        return refuse(fd, 404, json, "{\"error\":\"Session not found\"}", NULL);
    gd_session *s = gd_session_find(&srv->sessions, id);
    if (s && s->nplayers >= GD_MAX_PLAYERS) {
        gd_log(GD_LOG_INFO, "session %s: upgrade refused, %d players", id, s->nplayers);
        return refuse(fd, 503, "text/plain", "Session full (max 10 players)", NULL);
    }
    if (!s || s->st == GD_SESS_HIBERNATED) {
        /* This upgrade loads the session from storage: limited per client. */
        int retry = 1;
        if (!gd_ratelimit_take(&srv->load_rate, &c->client, gd_now_ms(), &retry)) {
            char body[160], extra[64];
            snprintf(body, sizeof(body),
                     "{\"error\":\"Too many requests. Please wait before opening more "
                     "sessions.\",\"retryAfter\":%d}",
                     retry);
            snprintf(extra, sizeof(extra), "retry-after: %d\r\n", retry);
            srv->m.limited_load++;
            return refuse(fd, 429, json, body, extra);
        }
    }
    gd_ws_accept_key(h->ws_key.p, h->ws_key.len, c->ws_accept);
    if (!gd_idset_has(&srv->sessions.ids, id)) {
        /* Cluster mode: another node may have made it. Its load says, before
         * the upgrade is answered (404 if nobody has it). */
        s = gd_session_acquire(&srv->sessions, id);
        if (!s) return refuse(fd, 503, json, "{\"error\":\"Out of memory\"}", NULL);
        c->kind = GD_CONN_UPGRADING;
        lws_rx_flow_control(c->wsi, 0); /* frames sent with the upgrade wait in the socket */
        gd_session_wait_load(&srv->sessions, s, c, upgrade_loaded);
        return 0;
    }
    return finish_upgrade(srv, c, id);
}

/* Answers the upgrade (101) and joins c to session id. */
static int finish_upgrade(gd_server *srv, gd_conn *c, const char *id)
{
    char resp[256];
    int fd = fd_of(c);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     c->ws_accept);
    if (send(fd, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) return -1;

    c->kind = GD_CONN_WS;
    gd_wsparse_init(&c->wsp, GD_MAX_MESSAGE);
    c->ws_next = srv->ws_conns;
    if (srv->ws_conns) srv->ws_conns->ws_prev = c;
    srv->ws_conns = c;
    if (gd_uuid_v4(c->player_id) != 0) return -1;
    gd_identity_derive(c->player_id, &c->ident);
    c->connected_at = c->last_message_at = c->last_rx_ms = gd_now_ms();
    srv->m.ws_connections++;
    gd_session *s = gd_session_acquire(&srv->sessions, id);
    if (!s) {
        gd_ws_close(c, 1011, "out of memory");
        return 0;
    }
    gd_session_join(&srv->sessions, s, c);
    return 0;
}

/* The load an upgrade waited for (cluster mode) is over: answer it. */
static void upgrade_loaded(gd_conn *c, gd_session *s, int rc)
{
    gd_server *srv = gd_server_of(c->wsi);
    int fd = fd_of(c);
    static const char json[] = "application/json";
    int r = -1;
    c->kind = GD_CONN_NEW;
    if (rc == -ENOENT)
        refuse(fd, 404, json, "{\"error\":\"Session not found\"}", NULL);
    else if (rc != 0)
        refuse(fd, 503, json, "{\"error\":\"Storage unavailable\"}", NULL);
    else if (s->nplayers >= GD_MAX_PLAYERS)
        refuse(fd, 503, "text/plain", "Session full (max 10 players)", NULL);
    else
        r = finish_upgrade(srv, c, s->id);
    if (r == 0) {
        lws_rx_flow_control(c->wsi, 1);
    } else { /* answered and done: close it on the next turn */
        c->answered = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
}

/* ---- holding and releasing reads ---------------------------------------- */

void gd_ws_hold(gd_conn *c, unsigned reason)
{
    if (!c->rx_hold) lws_rx_flow_control(c->wsi, 0);
    c->rx_hold |= reason;
}

void gd_ws_release(gd_conn *c, unsigned reason)
{
    if (!(c->rx_hold & reason)) return;
    c->rx_hold &= ~reason;
    if (c->rx_hold) return;
    if (c->stash.len > c->stash_off)
        lws_set_timer_usecs(c->wsi, 1); /* parse what waits first, on the next turn */
    else
        lws_rx_flow_control(c->wsi, 1);
}

static void hold_for_session(gd_conn *c)
{
    gd_ws_hold(c, GD_RX_SESSION);
}

static void release_for_session(gd_conn *c)
{
    gd_ws_release(c, GD_RX_SESSION);
}

const gd_player_ops gd_ws_player_ops = {
    .hold_reads = hold_for_session,
    .release_reads = release_for_session,
    .close = gd_ws_close,
    .want_write = gd_server_want_write,
};

static void stash(gd_conn *c, const uint8_t *p, size_t n)
{
    if (c->stash_off == c->stash.len) {
        gd_buf_reset(&c->stash);
        c->stash_off = 0;
    }
    gd_buf_put(&c->stash, (const char *)p, n);
}

/* ---- reading ---------------------------------------------------------- */

/* The per-connection message rate (--ws-rate, bursts of twice that). */
static void refill(gd_server *srv, gd_conn *c)
{
    int64_t now = gd_now_us();
    double cap = 2.0 * srv->cfg.ws_rate;
    if (c->tokens_at_us == 0)
        c->tokens = cap;
    else
        c->tokens += (double)(now - c->tokens_at_us) * srv->cfg.ws_rate / 1e6;
    if (c->tokens > cap) c->tokens = cap;
    c->tokens_at_us = now;
}

static bool take_token(gd_server *srv, gd_conn *c)
{
    refill(srv, c);
    if (c->tokens < 1) return false;
    c->tokens -= 1;
    c->rate_refused = 0;
    return true;
}

/* A message was refused for the rate. A sender that goes on regardless is
 * not read until its bucket is half full again: TCP slows it down instead
 * of the loop spending time refusing it. */
static void refused(gd_server *srv, gd_conn *c)
{
    double cap = 2.0 * srv->cfg.ws_rate;
    if (++c->rate_refused < cap) return;
    c->rate_refused = 0;
    double wait_s = (cap / 2 - c->tokens) / srv->cfg.ws_rate;
    gd_log(GD_LOG_DEBUG, "conn %llu: over its message rate; not read for %.2f s",
           (unsigned long long)c->serial, wait_s);
    gd_ws_hold(c, GD_RX_RATE);
    lws_set_timer_usecs(c->wsi, (lws_usec_t)(wait_s * 1e6) + 1);
}

static gd_msg *pong_msg(gd_server *srv)
{
    if (!srv->pong_msg && (srv->pong_msg = gd_msg_new("pong", 4))) srv->pong_msg->pong = true;
    return srv->pong_msg;
}

/* Puts a control frame in the connection's one control slot. */
static void queue_control(gd_conn *c, int opcode, const uint8_t *payload, size_t len)
{
    if (len > 125) len = 125;
    size_t h = gd_ws_frame_header(c->ctl, opcode, len);
    if (len) memcpy(c->ctl + h, payload, len);
    c->ctl_len = h + len;
    c->ctl_off = 0;
    c->ctl_opcode = opcode;
    gd_server_want_write(c);
}

static void on_text(gd_server *srv, gd_conn *c, const char *data, size_t len)
{
    bool ping = len == 4 && memcmp(data, "ping", 4) == 0;
    if (!take_token(srv, c)) {
        /* A refused `ping` is dropped: it has no seq and no error shape. */
        if (!ping) gd_session_on_rate_limited(&srv->sessions, c, data, len);
        refused(srv, c);
        return;
    }
    if (ping) {
        /* The reference's auto-response: not JSON, no seq. One at a time. */
        gd_msg *m = pong_msg(srv);
        if (m && c->pongs_queued == 0) gd_session_send(&srv->sessions, c, m, 0);
        return;
    }
    gd_session_on_message(&srv->sessions, c, data, len);
}

/* Handles one parser event. Returns -1 to close the socket now. */
static int on_event(gd_server *srv, gd_conn *c, gd_ws_event ev)
{
    gd_wsparse *p = &c->wsp;
    switch (ev) {
    case GD_WS_EV_NONE:
    case GD_WS_EV_PONG:
        return 0;
    case GD_WS_EV_TEXT:
    case GD_WS_EV_BINARY:
        if (!c->closing) on_text(srv, c, p->msg.p ? p->msg.p : "", p->msg.len);
        return 0;
    case GD_WS_EV_TOO_LARGE:
        if (c->closing) return 0;
        gd_event(GD_LOG_DEBUG, "message_too_large", c->session ? c->session->id : NULL,
                 "conn,max_bytes", "conn %llu: message over %d bytes rejected",
                 (unsigned long long)c->serial, GD_MAX_MESSAGE);

        if (take_token(srv, c))
            gd_session_send_error(&srv->sessions, c, GD_E_MESSAGE_TOO_LARGE, "Message too large",
                                  NULL);
        else
            refused(srv, c);
        return 0;
    case GD_WS_EV_PING:
        if (c->closing) return 0;
        if (!take_token(srv, c)) {
            refused(srv, c);
            return 0;
        }
        /* A pong not yet started is replaced by the newer one (RFC 6455 §5.5.3). */
        if (!c->ctl_len || (c->ctl_opcode == 10 && c->ctl_off == 0))
            queue_control(c, 10, p->ctl, p->ctl_len);
        return 0;
    case GD_WS_EV_CLOSE:
        c->close_received = true;
        if (c->close_sent) return -1; /* the answer to ours: done */
        if (!c->closing) {
            /* Echo the peer's code; what is still queued is dropped. */
            gd_conn_clear_queue(c);
            gd_ws_close(c, p->close_code == 1005 ? 1000 : p->close_code, "");
        }
        return 0;
    case GD_WS_EV_ERROR:
        srv->m.ws_protocol_errors++;
        gd_log(GD_LOG_INFO, "conn %llu session %s: closing with %u: %s",
               (unsigned long long)c->serial, c->session ? c->session->id : "-", p->close_code,
               p->error);
        gd_conn_clear_queue(c);
        c->closing = false; /* this close replaces any other */
        gd_ws_close(c, p->close_code, p->error);
        c->close_received = true; /* nothing more is read: close after sending ours */
        return 0;
    }
    return 0;
}

/* Parses bytes in order; what cannot be handled now waits in the stash. */
static int parse(gd_server *srv, gd_conn *c, const uint8_t *p, size_t n)
{
    while (n) {
        if (c->rx_hold) {
            stash(c, p, n);
            return 0;
        }
        if (c->close_received) return 0; /* nothing after the close counts */
        size_t used = 0;
        gd_ws_event ev = gd_wsparse_feed(&c->wsp, p, n, &used);
        p += used;
        n -= used;
        if (on_event(srv, c, ev) < 0) return -1;
    }
    return 0;
}

int gd_ws_on_readable(gd_server *srv, gd_conn *c)
{
    if (c->rx_hold) return 0;
    uint8_t buf[READ_CHUNK];
    ssize_t n = recv(fd_of(c), buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return -1; /* the peer closed the connection */
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (c->close_received) return 0; /* read and dropped: nothing after a close counts */
    c->last_rx_ms = gd_now_ms();
    return parse(srv, c, buf, (size_t)n);
}

int gd_ws_on_timer(gd_server *srv, gd_conn *c)
{
    if (c->kind != GD_CONN_WS) return 0;
    if (c->rx_hold & GD_RX_RATE) {
        double cap = 2.0 * srv->cfg.ws_rate;
        refill(srv, c);
        if (c->tokens < cap / 2) {
            lws_set_timer_usecs(c->wsi,
                                (lws_usec_t)((cap / 2 - c->tokens) / srv->cfg.ws_rate * 1e6) + 1);
            return 0;
        }
        c->rx_hold &= ~(unsigned)GD_RX_RATE;
    }
    if (c->rx_hold) return 0;
    /* Parse what waited, then read the socket again. */
    gd_buf held = c->stash;
    size_t off = c->stash_off;
    gd_buf_init(&c->stash);
    c->stash_off = 0;
    int rc = held.len > off ? parse(srv, c, (const uint8_t *)held.p + off, held.len - off) : 0;
    gd_buf_free(&held);
    if (rc < 0) return -1;
    if (!c->rx_hold) lws_rx_flow_control(c->wsi, 1);
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

void gd_ws_close(gd_conn *c, uint16_t code, const char *reason)
{
    if (c->closing) return;
    c->closing = true;
    c->close_code = code;
    c->close_reason = reason;
    /* Whatever happens to the handshake, the socket goes in a while. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, 5);
    gd_server_want_write(c);
}

static int send_control(gd_conn *c, int fd)
{
    ssize_t n = send(fd, c->ctl + c->ctl_off, c->ctl_len - c->ctl_off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) return -1;
        gd_server_want_write(c);
        return 0;
    }
    c->ctl_off += (size_t)n;
    if (c->ctl_off < c->ctl_len) {
        gd_server_want_write(c);
        return 0;
    }
    bool was_close = c->ctl_opcode == 8;
    c->ctl_len = c->ctl_off = 0;
    if (was_close) {
        c->close_sent = true;
        if (c->close_received) return -1;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, CLOSE_WAIT_S);
        return 0;
    }
    gd_server_want_write(c);
    return 0;
}

/* Writes as many releasable messages as one sendmsg takes. */
static int send_data(gd_conn *c, int fd, int64_t durable)
{
    struct iovec iov[64];
    uint8_t hdr[32][10];
    size_t flen[32];
    int k = 0;
    size_t total = 0;
    for (gd_qitem *it = c->qhead; it && it->gate <= durable && k < 32 && total < WRITE_MAX;
         it = it->next) {
        size_t hl = gd_ws_frame_header(hdr[k], 1, it->msg->len);
        iov[2 * k] = (struct iovec){hdr[k], hl};
        iov[2 * k + 1] = (struct iovec){it->msg->buf + LWS_PRE, it->msg->len};
        flen[k] = hl + it->msg->len;
        total += flen[k];
        k++;
    }
    /* Skip what an earlier write already sent of the first frame. */
    int first = 0;
    size_t skip = c->w_off;
    while (skip) {
        size_t take = skip < iov[first].iov_len ? skip : iov[first].iov_len;
        iov[first].iov_base = (uint8_t *)iov[first].iov_base + take;
        iov[first].iov_len -= take;
        skip -= take;
        if (!iov[first].iov_len) first++;
    }
    struct msghdr mh = {.msg_iov = iov + first, .msg_iovlen = (size_t)(2 * k - first)};
    ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) return -1;
        gd_server_want_write(c);
        return 0;
    }
    size_t done = (size_t)n + c->w_off;
    for (int i = 0; i < k; i++) {
        if (done < flen[i]) {
            c->w_off = done;
            break;
        }
        done -= flen[i];
        c->w_off = 0;
        gd_qitem *it = c->qhead;
        c->qhead = it->next;
        if (!c->qhead) c->qtail = NULL;
        gd_conn_item_free(c, it);
    }
    return 0;
}

int gd_ws_on_writable(gd_server *srv, gd_conn *c)
{
    if (c->kind != GD_CONN_WS) return 0;
    int fd = fd_of(c);
    /* Control frames go between data frames, never inside one. */
    if (c->ctl_len && c->w_off == 0) return send_control(c, fd);
    if (c->close_sent) return 0; /* waiting for the peer's close */
    int64_t durable = c->session ? c->session->durable_opno : INT64_MAX;
    if (gd_conn_can_send(c, durable) && !(c->closing && c->close_code == 1008 && !c->w_off)) {
        if (send_data(c, fd, durable) < 0) return -1;
    } else if (c->closing && (!c->qhead || c->close_code == 1008) && !c->w_off) {
        if (c->close_code == 1008) gd_conn_clear_queue(c);
        uint8_t frame[132];
        size_t n = gd_ws_close_frame(frame, c->close_code, c->close_reason);
        memcpy(c->ctl, frame, n);
        c->ctl_len = n;
        c->ctl_off = 0;
        c->ctl_opcode = 8;
        return send_control(c, fd);
    }
    if (gd_conn_can_send(c, durable) || c->ctl_len || (c->closing && !c->close_sent))
        gd_server_want_write(c);
    return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

void gd_ws_on_closed(gd_server *srv, gd_conn *c)
{
    if (c->kind == GD_CONN_UPGRADING) gd_session_unwait(c); /* gone while its session loaded */
    if (c->kind != GD_CONN_WS) return;
    if (c->ws_prev)
        c->ws_prev->ws_next = c->ws_next;
    else if (srv->ws_conns == c)
        srv->ws_conns = c->ws_next;
    if (c->ws_next) c->ws_next->ws_prev = c->ws_prev;
    c->ws_next = c->ws_prev = NULL;
    if (srv->shutdown_phase < 3)
        gd_session_leave(&srv->sessions, c); /* else the context is going */
    gd_conn_free_queue(c);
    gd_buf_free(&c->stalled);
    gd_buf_free(&c->stash);
    gd_wsparse_free(&c->wsp);
    c->kind = GD_CONN_NEW;
}

void gd_ws_tick(gd_server *srv)
{
    int64_t now = gd_now_ms(), idle = (int64_t)srv->cfg.idle_timeout * 1000;
    int64_t ping_every = idle / 3 < 30000 ? idle / 3 : 30000;
    for (gd_conn *c = srv->ws_conns; c; c = c->ws_next) {
        if (c->closing) continue; /* its timeout is running */
        if (now - c->last_rx_ms >= idle) {
            gd_log(GD_LOG_INFO, "conn %llu session %s: silent for %d s, closing",
                   (unsigned long long)c->serial, c->session ? c->session->id : "-",
                   srv->cfg.idle_timeout);
            c->closing = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
        } else if (now - c->last_rx_ms >= ping_every && now - c->last_ping_ms >= ping_every &&
                   !c->ctl_len) {
            c->last_ping_ms = now;
            queue_control(c, 9, NULL, 0);
        }
    }
}
