/*
 * metrics — the server-wide counters and latency histograms, and their
 * rendering as Prometheus text (a # HELP and a # TYPE line for every family).
 *
 * It reads nothing: the modules that count own a gd_metrics (the server's,
 * shared by pointer with the sessions) and bump its fields; numbers that
 * other modules keep themselves (the store's and the web root's statistics,
 * session counts, refused connections) are read by the caller and handed to
 * gd_metrics_render in a gd_metrics_sources. So it includes no server,
 * session, storage or network header. Loop thread (no locks, no I/O).
 */
#ifndef GD_METRICS_H
#define GD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"
#include "op.h"

/* Fixed-bucket latency histogram (milliseconds), Prometheus style. */
#define GD_HIST_BUCKETS 12
typedef struct gd_hist {
    uint64_t counts[GD_HIST_BUCKETS + 1]; /* last = +Inf */
    uint64_t n;
    double sum_ms;
} gd_hist;
extern const double gd_hist_bounds_ms[GD_HIST_BUCKETS];
/* Counts one observation v (milliseconds, or a count for ops_per_commit). */
void gd_hist_add(gd_hist *h, double v);

/* The counters grooved keeps itself. Zero-initialised at startup. */
typedef struct gd_metrics {
    uint64_t ws_connections, http_requests;
    uint64_t mutations[GD_OP__COUNT];
    uint64_t rejected_invalid_json, rejected_too_large, rejected_unknown_type,
        rejected_invalid_field, rejected_track_not_found, rejected_too_many_tracks,
        rejected_published, rejected_rate_limited, rejected_storage, rejected_unavailable,
        rejected_moved;
    uint64_t loads_durable, loads_kv, loads_default, evictions, hibernations, kv_writes_requested;
    uint64_t lagging_closed, budget_evictions, load_failures;
    uint64_t bad_requests;                               /* request heads refused by the door */
    uint64_t limited_create, limited_list, limited_load; /* 429s per limit */
    uint64_t ws_protocol_errors; /* WebSocket connections closed 1002/1007 */
    size_t mem_estimate;         /* sum of mem_bytes of the sessions in memory */
    uint64_t sessions_created;
    uint64_t sessions_moved; /* cluster mode: taken over by another node */
    gd_hist ops_per_commit;  /* counts, reusing the bucket machinery */
    gd_hist commit_ms;
    gd_hist ack_ms;
} gd_metrics;

/* Numbers other modules keep, read by the caller just before rendering. */
typedef struct gd_metrics_sources {
    /* sessions in memory, by state, and the players connected to them */
    uint64_t sessions_live, sessions_loading, sessions_hibernated, players;
    uint64_t sessions_known; /* ids known to the durable store or the KV view */
    /* the store (gd_store_stats) */
    uint64_t commits, commit_failures, durable_rows, durable_bytes;
    uint64_t kv_writes, kv_write_failures, kv_behind;
    /* the web root (gd_static_stats) */
    uint64_t static_responses, static_not_modified, static_body_bytes;
    uint64_t static_compressions_gzip, static_compressions_br, static_cache_hits;
    uint64_t static_precompressed, static_cache_bytes;
    /* the door */
    uint64_t connections_refused;
} gd_metrics_sources;

/* Appends the Prometheus text exposition (format 0.0.4) of m and in to out.
 * Returns 0, or -ENOMEM when out ran out of memory (its content is then
 * incomplete; the caller frees it as usual). */
int gd_metrics_render(const gd_metrics *m, const gd_metrics_sources *in, gd_buf *out);

#endif
