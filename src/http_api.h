/*
 * http_api — the REST routes (§2 of the protocol reference, changed where
 * PROTOCOL-DECISIONS.md says so), /healthz and /metrics, over connections
 * whose request head the door has read (one request per connection); GET
 * and HEAD of every other path outside /api/ go to static.c (the web root).
 * Every write goes through the
 * session's single writer and answers only after its commit. Loop thread.
 *
 *   request ─▶ route ─▶ (body complete) ─▶ handler ─▶ [wait load] ─▶ [wait durable] ─▶ respond
 */
#ifndef GD_HTTP_API_H
#define GD_HTTP_API_H

#include "conn.h"
#include "reqhead.h"
#include "server.h"

/* The door read a request head (consumed) on c: starts the request.
 * Returns how many body bytes the door must still read and hand to
 * gd_http_on_body (then gd_http_on_body_done), 0 when the request is
 * complete or already answered. */
long long gd_http_begin(gd_server *srv, gd_conn *c, const gd_reqhead *h);
int gd_http_on_body(gd_server *srv, gd_conn *c, const void *in, size_t len);
int gd_http_on_body_done(gd_server *srv, gd_conn *c);
/* Writes the response; returns -1 to close the socket. */
int gd_http_on_writable(gd_server *srv, gd_conn *c);
void gd_http_on_closed(gd_server *srv, gd_conn *c);

/* For response writers other than gd_http_set_response (static.c): sends
 * bytes now, keeping what the socket does not take for the next writable
 * callbacks (which gd_http_on_writable flushes before anything else).
 * 0, or -1 when the connection failed. */
int gd_http_send(gd_conn *c, const void *data, size_t len);
/* True while bytes given to gd_http_send wait for the socket. */
bool gd_http_sending(const gd_conn *c);
/* The whole response has been given to gd_http_send: close once it is out. */
void gd_http_finish(gd_conn *c);
/* "Not Found" for 404, ... */
const char *gd_http_status_text(int status);

/* Sets c's response (body copied; NUL-terminated text) without sending it. */

void gd_http_set_response(gd_conn *c, int status, const char *type, const char *body, size_t len);
void gd_http_set_json(gd_conn *c, int status, const char *json);
/* Marks the response ready and asks lws for a writable callback. */
void gd_http_ready(gd_conn *c);

#endif
