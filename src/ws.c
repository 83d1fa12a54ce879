/*
 * ws — see ws.h.
 */
#include "ws.h"

#include <string.h>

#include "log.h"
#include "op.h"
#include "session.h"
#include "store.h"

static bool session_path(const char *uri, char id[37])
{
    /* /api/sessions/<36>/ws, already checked by gd_http_confirm_upgrade */
    static const char prefix[] = "/api/sessions/";
    if (strncmp(uri, prefix, sizeof(prefix) - 1) != 0 || strlen(uri) < sizeof(prefix) - 1 + 36)
        return false;
    memcpy(id, uri + sizeof(prefix) - 1, 36);
    id[36] = '\0';
    return true;
}

int gd_ws_on_established(gd_server *srv, gd_conn *c)
{
    char uri[160] = "";
    char id[37];
    lws_hdr_copy(c->wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    c->kind = GD_CONN_WS;
    c->serial = ++srv->next_serial;
    lws_get_peer_simple(c->wsi, c->peer, sizeof(c->peer));
    if (gd_uuid_v4(c->player_id) != 0 || !session_path(uri, id)) return -1;
    gd_identity_derive(c->player_id, &c->ident);
    c->connected_at = c->last_message_at = gd_now_ms();
    srv->m.ws_connections++;
    gd_session *s = gd_session_acquire(srv, id);
    if (!s) return -1;
    if (s->nplayers >= GD_MAX_PLAYERS) {
        /* Lost a race with another upgrade after the 503 check. */
        c->session = NULL;
        gd_ws_close(c, 1013, "Session full (max 10 players)");
        return 0;
    }
    gd_session_join(srv, s, c);
    return 0;
}

void gd_ws_close(gd_conn *c, uint16_t code, const char *reason)
{
    if (c->closing) return;
    c->closing = true;
    c->close_code = code;
    c->close_reason = reason;
    lws_callback_on_writable(c->wsi);
}

int gd_ws_on_receive(gd_server *srv, gd_conn *c, const void *in, size_t len)
{
    if (!c->rx_discard) {
        if (c->rx.len + len > GD_MAX_MESSAGE) {
            c->rx_discard = true;
            gd_buf_free(&c->rx);
        } else {
            gd_buf_put(&c->rx, in, len);
        }
    }
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi) > 0) return 0;
    if (c->rx_discard) {
        c->rx_discard = false;
        gd_event(GD_LOG_DEBUG, "message_too_large", c->session ? c->session->id : NULL,
                 "conn,max_bytes", "conn %llu: message over %d bytes rejected",
                 (unsigned long long)c->serial, GD_MAX_MESSAGE);
        gd_session_send_error(srv, c, GD_E_MESSAGE_TOO_LARGE, "Message too large", NULL);
        return 0;
    }
    if (c->rx.oom) {
        gd_buf_free(&c->rx);
        gd_session_send_error(srv, c, GD_E_MESSAGE_TOO_LARGE, "Message too large", NULL);
        return 0;
    }
    if (c->rx.len == 4 && memcmp(c->rx.p, "ping", 4) == 0) {
        /* The reference's auto-response: not JSON, not counted as a message. */
        gd_msg *m = gd_msg_new("pong", 4);
        if (m) gd_session_send(srv, c, m, 0);
        gd_msg_unref(m);
    } else {
        gd_session_on_message(srv, c, c->rx.p ? c->rx.p : "", c->rx.len);
    }
    gd_buf_reset(&c->rx);
    return 0;
}

static void pop_head(gd_conn *c)
{
    gd_qitem *it = c->qhead;
    c->qhead = it->next;
    if (!c->qhead) c->qtail = NULL;
    c->qbytes -= it->msg->len;
    gd_msg_unref(it->msg);
    free(it);
}

/* Appends an unmasked, final text frame header for a payload of len bytes. */
static size_t frame_header(unsigned char *p, size_t len)
{
    p[0] = 0x81;
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/*
 * One write per writable callback. When several messages may be sent, they
 * are framed here and leave in one write (one syscall instead of one per
 * message, which dominated the CPU profile under load); a lone message goes
 * through lws's own framing.
 */
int gd_ws_on_writable(gd_server *srv, gd_conn *c)
{
    static unsigned char batch[LWS_PRE + 65536];
    int64_t durable = c->session ? c->session->durable_opno : INT64_MAX;
    if (gd_conn_can_send(c, durable)) {
        gd_qitem *it = c->qhead;
        bool several = it->next && it->next->gate <= durable && it->msg->len < 16384;
        int n;
        if (!several) {
            gd_msg *m = it->msg;
            n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
            n = n < (int)m->len ? -1 : 0;
            pop_head(c);
        } else {
            size_t used = 0, cap = sizeof(batch) - LWS_PRE;
            while (gd_conn_can_send(c, durable) && used + 10 + c->qhead->msg->len <= cap) {
                gd_msg *m = c->qhead->msg;
                used += frame_header(batch + LWS_PRE + used, m->len);
                memcpy(batch + LWS_PRE + used, m->buf + LWS_PRE, m->len);
                used += m->len;
                pop_head(c);
            }
            n = lws_write(c->wsi, batch + LWS_PRE, used, LWS_WRITE_RAW);
            n = n < (int)used ? -1 : 0;
        }
        if (n < 0) return -1;
        if (gd_conn_can_send(c, durable) || (c->closing && !c->qhead))
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->closing && (!c->qhead || c->close_code == 1008)) {
        const char *r = c->close_reason ? c->close_reason : "";
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, (unsigned char *)r,
                         strlen(r));
        return -1;
    }
    return 0;
}

void gd_ws_on_closed(gd_server *srv, gd_conn *c)
{
    gd_session_leave(srv, c);
}
