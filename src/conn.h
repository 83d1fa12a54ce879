/*
 * conn — one client connection (HTTP or WebSocket) and its output queue.
 *
 * The gd_conn is lws's per-session user data: lws allocates and frees it, so
 * nothing may point at it after LWS_CALLBACK_CLOSED / CLOSED_HTTP, where the
 * session layer unlinks it. Loop thread only.
 *
 * Output gate: every queued message carries `gate`, the session opno that must
 * be durable before it may be sent. Messages leave strictly in queue order, so
 * an ungated message (player_joined, an error) never overtakes a gated one.
 * A broadcast is serialised once into a refcounted gd_msg shared by all its
 * recipients. A queue holding more than the configured cap closes the
 * connection (slow reader) instead of growing.
 *
 *   WS conn:  upgrade ─▶ JOINING (session loading, rx paused) ─▶ JOINED ─▶ CLOSING ─▶ closed
 */
#ifndef GD_CONN_H
#define GD_CONN_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "identity.h"
#include "jsonw.h"

typedef struct gd_session gd_session;

typedef struct gd_msg {
    int refs;
    size_t len;
    bool binary;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes, then NUL */
} gd_msg;

/* New message holding a copy of data (refs = 1), or NULL on OOM. */
gd_msg *gd_msg_new(const char *data, size_t len);
void gd_msg_unref(gd_msg *m); /* NULL ok */

typedef struct gd_qitem {
    struct gd_qitem *next;
    gd_msg *msg; /* one reference owned by the item */
    int64_t gate;
} gd_qitem;

typedef enum { GD_CONN_NEW = 0, GD_CONN_HTTP, GD_CONN_WS } gd_conn_kind;
typedef enum { GD_WAIT_NONE = 0, GD_WAIT_LOAD, GD_WAIT_DURABLE } gd_wait_kind;

typedef struct gd_conn gd_conn;
/* Continues an HTTP request once its session is loaded (LIVE). */
typedef void (*gd_http_cont)(gd_conn *c, gd_session *s);

struct gd_conn {
    struct lws *wsi;
    gd_conn_kind kind;
    uint64_t serial; /* unique per connection, for logs and error routing */
    gd_session *session;
    char peer[64];

    /* WebSocket */
    char player_id[37];
    gd_identity ident;
    int64_t connected_at, last_message_at, message_count;
    bool joined; /* in its session's player list */
    bool playing;
    /* Its session's play_starts when it last started playing. */
    uint64_t playing_since;
    bool closing; /* close frame queued: send nothing more */
    uint16_t close_code;
    const char *close_reason;
    gd_qitem *qhead, *qtail;
    size_t qbytes;
    gd_buf rx;      /* fragments of the message being received */
    gd_buf stalled; /* messages that arrived while the session was not in
                     * memory, NUL-separated, replayed once it is loaded */
    int nstalled;
    bool rx_discard; /* the current message is too large: drop the rest */
    double tokens;   /* rate limit bucket */
    int64_t tokens_at_us;

    /* HTTP */
    int method;
    char path[160];
    gd_buf body;
    bool body_too_large;
    bool body_is_json;
    char if_match[40];
    gd_wait_kind wait;
    int64_t wait_opno;
    gd_http_cont cont;
    gd_http_cont after_durable; /* runs instead of answering once durable */
    struct gd_job *list_job;    /* a listing in flight for this request */
    gd_conn *wnext, *wprev;     /* session's HTTP waiter list */
    /* A web root file being served (static.c), or NULL. */
    struct gd_static_req *static_req;
    int status;
    char *resp; /* owned */
    size_t resp_len, resp_off;
    const char *resp_type;
    char resp_headers[160]; /* extra "Name: value\r\n" lines */
    bool resp_ready, headers_sent;
    bool dispatched; /* the current request has been routed (exactly once) */
};

/* Queues m (takes a new reference) behind everything already queued. Returns
 * 0, or -ENOBUFS when the cap would be exceeded (the caller closes c). */
int gd_conn_enqueue(gd_conn *c, gd_msg *m, int64_t gate, size_t cap);
/* Drops every queued message whose gate is above `durable`. */
void gd_conn_drop_gated(gd_conn *c, int64_t durable);
void gd_conn_clear_queue(gd_conn *c);
/* True when the head of the queue may be sent now. */
bool gd_conn_can_send(const gd_conn *c, int64_t durable);

#endif
