/*
 * ws — the WebSocket side of a connection: assembles fragmented messages up
 * to the 64 KiB limit (counted on the bytes received), answers the text frame
 * `ping` with `pong`, hands JSON messages to the session layer, and drains
 * the connection's gated output queue one lws_write per writable callback.
 * Loop thread.
 */
#ifndef GD_WS_H
#define GD_WS_H

#include "conn.h"
#include "server.h"

int gd_ws_on_established(gd_server *srv, gd_conn *c);
int gd_ws_on_receive(gd_server *srv, gd_conn *c, const void *in, size_t len);
int gd_ws_on_writable(gd_server *srv, gd_conn *c);
void gd_ws_on_closed(gd_server *srv, gd_conn *c);
/* Queues a close with code and reason once everything before it is sent. */
void gd_ws_close(gd_conn *c, uint16_t code, const char *reason);

#endif
