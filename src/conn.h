/*
 * conn — one client connection (HTTP or WebSocket) and its output queue.
 *
 * The gd_conn is lws's per-session user data: lws allocates and frees it, so
 * nothing may point at it after LWS_CALLBACK_CLOSED / CLOSED_HTTP, where the
 * session layer unlinks it. Loop thread only.
 *
 * It is the one record the session layer and the network layer share (it
 * sits in the session layer, below ws/http_api): the session keeps a
 * player's identity and state and a waiting request's links in it, the
 * network layer its transport state. Nothing here touches a socket; the
 * session asks for one through gd_player_ops (session.h).
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
#include "ratelimit.h"
#include "wsframe.h"

typedef struct gd_session gd_session;

typedef struct gd_msg {
    int refs;
    size_t len;
    bool pong;           /* the shared "pong" reply (counted in gd_conn.pongs_queued) */
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes, then NUL */
} gd_msg;

/* New message holding a copy of data (refs = 1), or NULL on OOM. */
gd_msg *gd_msg_new(const char *data, size_t len);
void gd_msg_unref(gd_msg *m); /* NULL ok */

typedef struct gd_qitem {
    struct gd_qitem *next;
    gd_msg *msg; /* one reference owned by the item */
    int64_t gate;
    size_t cost; /* what it counts against the output cap */
} gd_qitem;

/* The memory a queued message costs its connection: the queue item, the
 * message with its headroom, and allocator overhead for both. A shared
 * message is charged in full to every connection holding it, so the cap
 * bounds what a connection can pin even when others drop their copies. */
size_t gd_msg_cost(const gd_msg *m);

/* NEW: the door is reading the request head; LISTEN: a listening socket. */
/* GD_CONN_UPGRADING: a WebSocket upgrade waiting for its session's load
 * (cluster mode, a session this node has not heard of) before it answers. */
typedef enum {
    GD_CONN_NEW = 0,
    GD_CONN_HTTP,
    GD_CONN_WS,
    GD_CONN_LISTEN,
    GD_CONN_UPGRADING
} gd_conn_kind;

/* Why reading a WebSocket is paused (bits of gd_conn.rx_hold). */
enum { GD_RX_SESSION = 1, GD_RX_RATE = 2 };
typedef enum { GD_WAIT_NONE = 0, GD_WAIT_LOAD, GD_WAIT_DURABLE } gd_wait_kind;

typedef struct gd_conn gd_conn;
/* How a session tells a connection waiting on it (gd_session_wait_load,
 * gd_session_wait_durable) that the wait is over: rc is 0 or a negative
 * errno, as session.h lists. */
typedef void (*gd_session_wait_cb)(gd_conn *c, gd_session *s, int rc);
/* Continues an HTTP request once its session is loaded (LIVE). */
typedef void (*gd_http_cont)(gd_conn *c, gd_session *s);

struct gd_conn {
    struct lws *wsi;
    gd_conn_kind kind;
    uint64_t serial; /* unique per connection, for logs and error routing */
    gd_session *session;
    char peer[64];
    gd_addr addr;     /* the socket's peer, normalised (door.c) */
    gd_addr client;   /* the client: addr, or the trusted proxy's X-Forwarded-For */
    int head_peeked;  /* bytes of an incomplete request head already seen */
    bool health_only; /* admitted on the health-check reserve: /healthz only */
    bool answered;    /* the door has answered (or nobody is left to answer) */
    bool in_reserve;  /* in the door's list of idle reserve sockets */
    gd_conn *rnext, *rprev;

    /* WebSocket */
    char player_id[37];
    char ws_accept[29]; /* the handshake's Sec-WebSocket-Accept, while it waits (GD_CONN_UPGRADING)
                         */
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
    size_t qbytes;  /* sum of the queued items' cost */
    gd_buf stalled; /* messages that arrived while the session was not in
                     * memory, NUL-separated, replayed once it is loaded */
    int nstalled;
    double tokens; /* rate limit bucket */
    int64_t tokens_at_us;
    int rate_refused;     /* messages refused in a row by the rate limit */
    double fanout_tokens; /* bytes it may still make other players receive */
    int64_t fanout_at_us;

    /* WebSocket transport (ws.c) */
    gd_conn *ws_next, *ws_prev; /* in srv->ws_conns */
    gd_wsparse wsp;
    gd_buf stash; /* bytes read but not parsed while reading was paused */
    size_t stash_off;
    unsigned rx_hold; /* GD_RX_* bits */
    size_t w_off;     /* bytes of the head message's frame already written */
    uint8_t ctl[132]; /* one control frame waiting to go out (pong, ping, close) */
    size_t ctl_len, ctl_off;
    int ctl_opcode;
    bool close_sent, close_received;
    int pongs_queued;              /* text "pong" replies in the queue */
    bool in_writable, rearm_write; /* see gd_server_want_write */
    int64_t last_rx_ms, last_ping_ms;

    /* HTTP */
    int method;
    bool head_only;               /* a HEAD request: headers of the GET answer, no body */
    char path[160];               /* decoded */
    char query[512];              /* as sent */
    long long body_left;          /* body bytes the door still has to read */
    bool lingering;               /* response sent: draining input until the client closes */
    const struct gd_reqhead *req; /* the request head, only while gd_http_begin runs */
    gd_buf out;                   /* response bytes the socket has not taken yet */
    size_t out_off;
    bool finish_pending; /* the whole response is in `out`: close once it has left */

    gd_buf body;
    bool body_too_large;
    bool body_is_json;
    char if_match[40];
    gd_http_cont cont;       /* the route, once its session is loaded (http_api.c) */
    struct gd_job *list_job; /* a listing in flight for this request */
    /* Waiting on a session (session.c's, while wait != GD_WAIT_NONE). */
    gd_wait_kind wait;
    int64_t wait_opno;
    gd_session_wait_cb wait_cb;
    gd_conn *wnext, *wprev; /* in the session's waiter list */
    /* A web root file being served (static.c), or NULL. */
    struct gd_static_req *static_req;
    int status;
    char *resp; /* owned */
    size_t resp_len, resp_off;
    char *resp_head; /* owned: status line and header fields */
    size_t resp_head_len, resp_head_off;
    const char *resp_type;
    char resp_headers[256]; /* extra "Name: value\r\n" lines */
    bool resp_ready, headers_sent;
    bool dispatched; /* the current request has been routed (exactly once) */
};

/* Queues m (takes a new reference) behind everything already queued. Returns
 * 0, or -ENOBUFS when the cap would be exceeded (the caller closes c). */
int gd_conn_enqueue(gd_conn *c, gd_msg *m, int64_t gate, size_t cap);
/* Unlinked item: returns its cost, drops its reference, frees it. */
void gd_conn_item_free(gd_conn *c, gd_qitem *it);
/* Drops every queued message whose gate is above `durable`. */
void gd_conn_drop_gated(gd_conn *c, int64_t durable);
/* Drops everything queued except the rest of a message partly written. */
void gd_conn_clear_queue(gd_conn *c);
/* Drops everything (the connection is gone). */
void gd_conn_free_queue(gd_conn *c);
/* True when the head of the queue may be sent now. */
bool gd_conn_can_send(const gd_conn *c, int64_t durable);

#endif
