/*
 * static — serves the files under --web-root: GET and HEAD of any file at
 * any depth, a single-page app's fallback to the root index.html, ETag /
 * If-None-Match (and Last-Modified / If-Modified-Since), Cache-Control by
 * name (content-hashed names for a year and immutable, everything else
 * revalidated), gzip and brotli for text, from precompressed siblings
 * (x.js.br, x.js.gz) or compressed once and cached. The rules themselves
 * (paths, MIME types, hashed names, Accept-Encoding) are in webfile.h.
 *
 * Threads: the loop thread owns each request's connection and writes the
 * response; one worker thread makes every file system call and does every
 * compression, so the loop never waits on a disk. A request is with one
 * thread at a time: the loop hands it over through a locked todo queue,
 * the worker hands it back through a locked done queue and one coalescing
 * wakeup of the loop (the storage thread's lws_cancel_service →
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED path, which calls gd_static_drain).
 *
 *   serve ─▶ [todo] ─▶ worker: resolve, stat, choose, read chunk 1 ─▶ [done] ─wake─▶
 *   loop: write head, write chunk ─▶ [todo] ─▶ worker: read chunk k ─▶ ... ─▶ complete
 *
 * Bodies stream in chunks of 64 KiB, one chunk in memory per response;
 * compressed copies live in a bounded cache (see static.c).
 */
#ifndef GD_STATIC_H
#define GD_STATIC_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

typedef struct gd_static gd_static;
typedef struct gd_static_req gd_static_req;

typedef struct gd_static_stats {
    uint64_t responses, not_modified, bytes_sent; /* loop thread's counts */
    uint64_t compressions_gzip, compressions_br, cache_hits, precompressed;
    uint64_t cache_bytes, cache_entries;
} gd_static_stats;

/* Creates the module for web_root (resolved again on every request, so the
 * directory may be rebuilt under a running server) and starts its worker.
 * wake(wake_arg) is called from the worker when finished requests wait for
 * gd_static_drain. 0 or a negative errno; *out is owned by the caller. */
int gd_static_open(gd_static **out, const char *web_root, void (*wake)(void *), void *wake_arg);
/* Loop thread, before the lws context is destroyed: the worker wakes the
 * loop no more (requests it finishes stay queued for gd_static_close). */
void gd_static_detach(gd_static *st);
/* Stops the worker and frees everything. Every connection must have been
 * closed (gd_static_on_closed) before. NULL ok. Loop thread. */
void gd_static_close(gd_static *st);

/* Loop thread: starts answering a GET (head false) or HEAD request on c,
 * whose path is not under /api/. Reads the path and the conditional and
 * Accept-Encoding headers from c->req (the head the door read; valid
 * during this call only). The response is written by gd_static_on_writable
 * calls through gd_http_send; c->static_req is set until it completes.
 * 0, or -ENOMEM (nothing started: the caller answers). */
int gd_static_serve(gd_static *st, gd_conn *c, bool head);
/* Loop thread, for a writable connection whose c->static_req is set: writes
 * the next part of the response. Returns what lws expects (-1 closes). */
int gd_static_on_writable(gd_static *st, gd_conn *c);
/* Loop thread: the connection is closing; its request is abandoned. */
void gd_static_on_closed(gd_static *st, gd_conn *c);
/* Loop thread: takes back the requests the worker has finished. Returns how many. */
int gd_static_drain(gd_static *st);
void gd_static_get_stats(gd_static *st, gd_static_stats *out);

#endif
