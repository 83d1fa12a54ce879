/*
 * door — where every connection comes in. grooved owns its listening
 * sockets (bound to exactly the configured addresses), accepts connections
 * itself, counts them per client address, and reads each request head
 * before anything else sees the connection:
 *
 *   accept ─▶ caps ─(over: 503 at once, or health-check headroom)─▶ HEAD
 *   HEAD (peek until the empty line, SO_RCVLOWAT, deadline) ─▶
 *     ├─ malformed / bad Content-Length / too large ─▶ 4xx/5xx, close
 *     ├─ Upgrade: websocket ─▶ the head is consumed, ws.c takes the socket
 *     │   (frames sent along with the upgrade are still unread in the
 *     │   socket, so they are read exactly like later ones)
 *     └─ anything else ─▶ the head is consumed, http_api.c runs the request
 *         (the door reads its body), answers, and closes: one request per
 *         connection, so nothing pipelined after it is ever parsed
 *
 * lws is only the event loop here: every socket is a raw descriptor to it,
 * and no lws HTTP or WebSocket parser ever sees client bytes.
 *
 * Per-address caps: --max-conns-per-ip open connections per client address
 * (IPv6 per /64; the trusted proxy is exempt), and a process-wide cap below
 * the descriptor limit. A connection over a cap is answered 503 at accept,
 * except that a small reserve of connections stays open for health checks:
 * those may only ask GET or HEAD /healthz, within two seconds, and when the
 * reserve is full the one that has waited longest without a request is
 * answered 503 to make room (a health check sends its request at once). So one
 * address can never exhaust the descriptors, and /healthz answers while it
 * tries.
 *
 * Each accepted socket carries a ticket (its address and which allowance it
 * holds) as lws opaque user data; it is returned when the socket's wsi is
 * destroyed. Loop thread.
 */
#ifndef GD_DOOR_H
#define GD_DOOR_H

#include "conn.h"
#include "server.h"

#define GD_DOOR_MAX_HEAD 8192
#define GD_DOOR_HEALTH_RESERVE 32

/* Creates the listening sockets for cfg.host and cfg.port (before the lws
 * context exists); sets srv->port. 0 or a negative errno after logging. */
int gd_door_listen(gd_server *srv);
/* Hands the listening sockets to the lws context. 0 or -errno. */
int gd_door_start(gd_server *srv);
/* Closes listening sockets not yet handed to lws. */
void gd_door_close(gd_server *srv);

/* Readable: listening sockets, request heads and bodies, lingering closes. */
int gd_door_on_readable(gd_server *srv, struct lws *wsi, gd_conn *c);
/* A door-owned socket closes: a head that never came gets 408. */
void gd_door_on_closed(gd_server *srv, struct lws *wsi, gd_conn *c);
/* A wsi is being destroyed: returns its socket's ticket. */
void gd_door_on_destroy(gd_server *srv, struct lws *wsi);

/* The client address of a connection (the peer, or the trusted proxy's
 * right-most X-Forwarded-For entry). xff may be NULL. */
void gd_door_client_addr(const gd_server *srv, const gd_addr *peer, const char *xff, gd_addr *out);

/* Writes a complete small HTTP response with "connection: close" straight
 * to the socket (non-blocking; what does not fit is dropped). extra is
 * NULL or "Name: value\r\n" lines. */
void gd_door_reply(int fd, int status, const char *type, const char *body, const char *extra);

#endif
