/*
 * server — the process-wide context of the network layer (door, ws,
 * http_api, static) and the loop that runs it: configuration, the lws
 * context, the store, the sessions module's context (session.h: registry,
 * ids, group-commit batches), the door's state and the metrics. Everything
 * in gd_server is owned and touched by the loop thread only, except
 * `store`'s internals (see store.h) and `stop_requested` (set by a signal
 * handler). The sessions module never sees gd_server: it gets its own
 * gd_sessions, which borrows cfg, m, store and ctx from here.
 */
#ifndef GD_SERVER_H
#define GD_SERVER_H

#include <libwebsockets.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "idset.h"
#include "metrics.h"
#include "op.h"
#include "ratelimit.h"
#include "session.h"
#include "store.h"

#define GD_MAX_MESSAGE 65536

typedef struct gd_static gd_static;

struct gd_ticket;
struct gd_msg;
typedef struct gd_conn gd_conn;

/* The front door's state (door.c). */
typedef struct gd_door {
    int fds[8]; /* listening sockets */
    bool adopted[8];
    char hosts[8][48]; /* the address each listens on, as text */
    bool v6[8];
    int nfds;
    gd_conncount conns;                   /* open connections per client address */
    size_t global_cap;                    /* all counted connections */
    int kills_pending;                    /* reserve sockets being closed to make room */
    int reserve_used;                     /* health-check reserve in use */
    gd_conn *reserve_head, *reserve_tail; /* reserve sockets without a request yet, oldest first */

    int spare_fd;  /* freed to take a connection off the queue at EMFILE */
    gd_addr proxy; /* --trusted-proxy, when has_proxy */
    bool has_proxy;
    uint64_t accepted, refused;
    int64_t warned_ms;
} gd_door;

typedef struct gd_server {
    gd_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    int port;
    gd_store *store;
    gd_static *web;       /* the web root's files (static.h) */
    gd_sessions sessions; /* sessions in memory, ids, batches (session.h) */
    lws_sorted_usec_list_t tick_sul;
    lws_sorted_usec_list_t drain_sul;
    volatile sig_atomic_t stop_requested; /* signals received */
    /* 0 running (draining when drain_until_ms is set), 1 flushing, 2 closing
     * sockets, 3 done */
    int shutdown_phase;
    int64_t drain_until_ms; /* 0, or the end of the drain (monotonic ms) */
    int64_t shutdown_started_ms;
    uint64_t next_serial;
    gd_door door;
    gd_ratelimit create_rate, list_rate, load_rate; /* per client address */
    gd_conn *ws_conns;                              /* every WebSocket connection (ws.c's list) */
    struct gd_msg *pong_msg;                        /* the shared "pong" text message */
    gd_metrics m;
} gd_server;

/* Runs the server until SIGINT/SIGTERM; 0 after a graceful stop. */
int gd_server_run(const gd_config *cfg);

/* True from the stop signal on: draining (--drain-seconds), flushing or
 * closing. /healthz then answers 503. Loop thread. */
bool gd_server_draining(const gd_server *srv);

/* The server of an lws callback. */
gd_server *gd_server_of(struct lws *wsi);

/* Asks the event loop for a writable callback of c's socket, also from
 * inside one (then on the next loop turn). Loop thread. */
void gd_server_want_write(gd_conn *c);

#endif
