/*
 * metrics — see metrics.h. The families are written in a fixed order; the
 * end-to-end test (tests/e2e/test_metrics.py) parses the whole output with
 * prometheus_client's parser and checks a # HELP before every # TYPE.
 */
#include "metrics.h"

#include <errno.h>

const double gd_hist_bounds_ms[GD_HIST_BUCKETS] = {0.1, 0.25, 0.5, 1,   2.5,  5,
                                                   10,  25,   50,  100, 1000, 10000};

void gd_hist_add(gd_hist *h, double v)
{
    int i = 0;
    while (i < GD_HIST_BUCKETS && v > gd_hist_bounds_ms[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum_ms += v;
}

static void hist_write(gd_buf *b, const char *name, const char *help, const gd_hist *h)
{
    gd_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < GD_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        gd_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, gd_hist_bounds_ms[i],
                      (unsigned long long)cum);
    }
    cum += h->counts[GD_HIST_BUCKETS];
    gd_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name,
                  (unsigned long long)cum, name, h->sum_ms, name, (unsigned long long)h->n);
}

/* Opens a metric family: its # HELP and # TYPE lines. */
static void family(gd_buf *b, const char *name, const char *type, const char *help)
{
    gd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one unlabelled sample. */
static void metric(gd_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    gd_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

int gd_metrics_render(const gd_metrics *m, const gd_metrics_sources *in, gd_buf *b)
{
    metric(b, "grooved_connections", "gauge", "WebSocket players connected", in->players);
    family(b, "grooved_sessions", "gauge", "sessions in memory, by state");
    gd_buf_printf(b,
                  "grooved_sessions{state=\"live\"} %llu\n"
                  "grooved_sessions{state=\"loading\"} %llu\n"
                  "grooved_sessions{state=\"hibernated\"} %llu\n",
                  (unsigned long long)in->sessions_live, (unsigned long long)in->sessions_loading,
                  (unsigned long long)in->sessions_hibernated);
    metric(b, "grooved_sessions_known", "gauge",
           "session ids known to the durable store or the KV view", in->sessions_known);
    metric(b, "grooved_sessions_evicted_total", "counter", "sessions evicted from memory",
           m->evictions);
    metric(b, "grooved_memory_estimate_bytes", "gauge",
           "estimated memory of the sessions in memory, at the last tick", m->mem_estimate);
    metric(b, "grooved_budget_evictions_total", "counter",
           "sessions evicted or hibernated to keep within --memory-budget-mb", m->budget_evictions);
    metric(b, "grooved_sessions_hibernated_total", "counter",
           "sessions whose state left memory while players stayed connected", m->hibernations);
    metric(b, "grooved_sessions_created_total", "counter",
           "sessions created (create, remix, publish)", m->sessions_created);
    metric(b, "grooved_sessions_moved_total", "counter",
           "sessions another node took over (cluster mode)", m->sessions_moved);
    metric(b, "grooved_ws_connections_total", "counter", "WebSocket connections accepted",
           m->ws_connections);
    metric(b, "grooved_http_requests_total", "counter", "HTTP requests received", m->http_requests);
    family(b, "grooved_mutations_total", "counter", "mutations accepted, by message type");
    for (int t = 1; t < GD_OP__COUNT; t++)
        gd_buf_printf(b, "grooved_mutations_total{type=\"%s\"} %llu\n", gd_op_type_name(t),
                      (unsigned long long)m->mutations[t]);
    const struct {
        const char *code;
        uint64_t v;
    } rej[] = {{GD_E_INVALID_JSON, m->rejected_invalid_json},
               {GD_E_MESSAGE_TOO_LARGE, m->rejected_too_large},
               {GD_E_UNKNOWN_TYPE, m->rejected_unknown_type},
               {GD_E_INVALID_FIELD, m->rejected_invalid_field},
               {GD_E_TRACK_NOT_FOUND, m->rejected_track_not_found},
               {GD_E_TOO_MANY_TRACKS, m->rejected_too_many_tracks},
               {GD_E_SESSION_PUBLISHED, m->rejected_published},
               {GD_E_RATE_LIMITED, m->rejected_rate_limited},
               {GD_E_STORAGE_UNAVAILABLE, m->rejected_storage},
               {GD_E_SESSION_UNAVAILABLE, m->rejected_unavailable},
               {GD_E_SESSION_MOVED, m->rejected_moved}};
    family(b, "grooved_rejected_total", "counter",
           "WebSocket messages rejected with an error, by error code");
    for (size_t i = 0; i < sizeof(rej) / sizeof(rej[0]); i++)
        gd_buf_printf(b, "grooved_rejected_total{code=\"%s\"} %llu\n", rej[i].code,
                      (unsigned long long)rej[i].v);
    metric(b, "grooved_commits_total", "counter", "group commits of the durable store",
           in->commits);
    metric(b, "grooved_commit_failures_total", "counter",
           "group commits that failed (their ops were not acknowledged)", in->commit_failures);
    metric(b, "grooved_durable_rows_total", "counter",
           "rows (ops and checkpoints) committed to the durable store", in->durable_rows);
    metric(b, "grooved_durable_bytes_total", "counter", "bytes committed to the durable store",
           in->durable_bytes);
    metric(b, "grooved_kv_writes_total", "counter", "sessions written to the KV view",
           in->kv_writes);
    metric(b, "grooved_kv_write_failures_total", "counter",
           "KV view writes that failed (retried with backoff)", in->kv_write_failures);
    family(b, "grooved_reloads_total", "counter",
           "sessions loaded into memory, by where their state came from");
    gd_buf_printf(b,
                  "grooved_reloads_total{source=\"durable\"} %llu\n"
                  "grooved_reloads_total{source=\"kv\"} %llu\n"
                  "grooved_reloads_total{source=\"default\"} %llu\n",
                  (unsigned long long)m->loads_durable, (unsigned long long)m->loads_kv,
                  (unsigned long long)m->loads_default);
    metric(b, "grooved_lagging_closed_total", "counter",
           "sockets closed because they fell behind --out-cap-kb", m->lagging_closed);
    metric(b, "grooved_load_failures_total", "counter",
           "session loads that failed (unreadable or quarantined data, I/O errors)",
           m->load_failures);
    metric(b, "grooved_kv_views_behind", "gauge",
           "sessions whose KV view is behind the durable store", in->kv_behind);
    metric(b, "grooved_static_responses_total", "counter",
           "responses from the web root (files, index.html fallbacks, 304s, 404s)",
           in->static_responses);
    metric(b, "grooved_static_not_modified_total", "counter",
           "web root responses that were 304 Not Modified", in->static_not_modified);
    metric(b, "grooved_static_body_bytes_total", "counter",
           "body bytes sent from the web root, after compression", in->static_body_bytes);
    family(b, "grooved_static_compressions_total", "counter",
           "web root files compressed (each file version once while cached), by coding");
    gd_buf_printf(b,
                  "grooved_static_compressions_total{encoding=\"gzip\"} %llu\n"
                  "grooved_static_compressions_total{encoding=\"br\"} %llu\n",
                  (unsigned long long)in->static_compressions_gzip,
                  (unsigned long long)in->static_compressions_br);
    metric(b, "grooved_static_compressed_cache_hits_total", "counter",
           "web root responses sent from the compressed-copy cache", in->static_cache_hits);
    metric(b, "grooved_static_precompressed_total", "counter",
           "web root responses sent from a precompressed sibling (.br, .gz)",
           in->static_precompressed);
    metric(b, "grooved_static_cache_bytes", "gauge",
           "bytes of compressed copies held by the web root's cache", in->static_cache_bytes);
    metric(b, "grooved_connections_refused_total", "counter",
           "connections answered 503 at accept (per-address or process-wide cap)",
           in->connections_refused);
    metric(b, "grooved_bad_requests_total", "counter",
           "request heads refused (malformed, bad Content-Length, too large)", m->bad_requests);
    family(b, "grooved_rate_limited_total", "counter",
           "requests answered 429, by per-client-address limit");
    gd_buf_printf(b,
                  "grooved_rate_limited_total{limit=\"create\"} %llu\n"
                  "grooved_rate_limited_total{limit=\"list\"} %llu\n"
                  "grooved_rate_limited_total{limit=\"load\"} %llu\n",
                  (unsigned long long)m->limited_create, (unsigned long long)m->limited_list,
                  (unsigned long long)m->limited_load);
    metric(b, "grooved_ws_protocol_errors_total", "counter",
           "WebSocket connections closed for a protocol error (1002) or bad UTF-8 (1007)",
           m->ws_protocol_errors);
    hist_write(b, "grooved_ops_per_commit", "rows per group commit", &m->ops_per_commit);
    hist_write(b, "grooved_commit_latency_ms", "storage commit time, milliseconds", &m->commit_ms);
    hist_write(b, "grooved_ack_latency_ms",
               "time from an op's acceptance to its durability, milliseconds", &m->ack_ms);
    return b->oom ? -ENOMEM : 0;
}
