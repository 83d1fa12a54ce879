/*
 * ws — WebSocket connections end to end, on a raw socket that the door
 * hands over once it has read an upgrade request: the handshake, reading
 * and parsing frames (wsframe.c: masking, UTF-8 and framing rules, 64 KiB
 * messages), the per-connection message rate, pings and idle timeouts, the
 * gated output queue, and the close handshake.
 *
 *   upgrade ─▶ OPEN ─(gd_ws_close / peer's close / protocol error)─▶ CLOSING
 *   CLOSING: queued output drains, then the close frame; the socket closes
 *   when the peer's close arrives, or after a short timeout.
 *
 * Reading can be held (GD_RX_* bits): while a session loads, or while a
 * sender that keeps flooding past its rate waits for its bucket to refill.
 * Bytes read but not yet parsed wait in the connection's stash, so every
 * message is handled in order whatever the holds. A flood of text `ping`s
 * costs a token each and at most one `pong` is ever queued. Loop thread.
 */
#ifndef GD_WS_H
#define GD_WS_H

#include "conn.h"
#include "reqhead.h"
#include "server.h"

/* The door read an upgrade request (its head consumed from the socket):
 * validates it and the route, answers 101 and joins the session, or answers
 * an HTTP error. 0 keeps the socket, -1 closes it. */
int gd_ws_upgrade(gd_server *srv, gd_conn *c, const gd_reqhead *h);
int gd_ws_on_readable(gd_server *srv, gd_conn *c);
int gd_ws_on_writable(gd_server *srv, gd_conn *c);
/* The lws timer of the connection fired (rate hold over, stash to drain). */
int gd_ws_on_timer(gd_server *srv, gd_conn *c);
void gd_ws_on_closed(gd_server *srv, gd_conn *c);
/* Queues a close with code and reason once everything before it is sent
 * (at once for 1008, whose queue was dropped). */
void gd_ws_close(gd_conn *c, uint16_t code, const char *reason);
/* Holds / releases reading for a reason (GD_RX_*). */
void gd_ws_hold(gd_conn *c, unsigned reason);
void gd_ws_release(gd_conn *c, unsigned reason);
/* Once a second: pings quiet sockets, closes silent ones. */
void gd_ws_tick(gd_server *srv);

/* How sessions reach their players' connections (session.h): holding and
 * releasing reads for GD_RX_SESSION, gd_ws_close, gd_server_want_write. */
extern const gd_player_ops gd_ws_player_ops;

#endif
