/*
 * http_api — the REST routes (§2 of the protocol reference, changed where
 * PROTOCOL-DECISIONS.md says so), the WebSocket upgrade checks, /healthz,
 * /metrics; GET and HEAD of every other path outside /api/ go to static.c
 * (the web root). Every write goes through the
 * session's single writer and answers only after its commit. Loop thread.
 *
 *   request ─▶ route ─▶ (body complete) ─▶ handler ─▶ [wait load] ─▶ [wait durable] ─▶ respond
 */
#ifndef GD_HTTP_API_H
#define GD_HTTP_API_H

#include "conn.h"
#include "server.h"

/* lws callback entry points for HTTP reasons; return what lws expects. */
int gd_http_on_request(gd_server *srv, gd_conn *c, const char *uri);
int gd_http_on_body(gd_server *srv, gd_conn *c, const void *in, size_t len);
int gd_http_on_body_done(gd_server *srv, gd_conn *c);
int gd_http_on_writable(gd_server *srv, gd_conn *c);
void gd_http_on_closed(gd_server *srv, gd_conn *c);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to accept, 1 when a response was sent. */
int gd_http_confirm_upgrade(gd_server *srv, struct lws *wsi);

/* Sets c's response (body copied; NUL-terminated text) without sending it. */
void gd_http_set_response(gd_conn *c, int status, const char *type, const char *body, size_t len);
void gd_http_set_json(gd_conn *c, int status, const char *json);
/* Marks the response ready and asks lws for a writable callback. */
void gd_http_ready(gd_conn *c);

#endif
