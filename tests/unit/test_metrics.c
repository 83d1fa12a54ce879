/* Unit tests for metrics: histogram buckets, and the Prometheus text that
 * gd_metrics_render writes from the counters and the numbers it is given:
 * every value lands in its own sample, every family opens with # HELP and
 * # TYPE, histograms are cumulative. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static void test_hist_buckets(void **state)
{
    (void)state;
    gd_hist h = {0};
    gd_hist_add(&h, 0.05);  /* le 0.1 */
    gd_hist_add(&h, 0.1);   /* le 0.1: a bound belongs to its own bucket */
    gd_hist_add(&h, 0.3);   /* le 0.5 */
    gd_hist_add(&h, 10000); /* le 10000 */
    gd_hist_add(&h, 20000); /* +Inf */
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[2], 1);
    assert_int_equal(h.counts[GD_HIST_BUCKETS - 1], 1);
    assert_int_equal(h.counts[GD_HIST_BUCKETS], 1);
    assert_int_equal(h.n, 5);
    assert_true(h.sum_ms > 30000.44 && h.sum_ms < 30000.46);
}

/* The value of the sample line that starts with `name ` (labels included). */
static long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') return strtoll(p + n + 1, NULL, 10);
    }
    fail_msg("no sample %s", name);
    return -1;
}

static void test_render_values(void **state)
{
    (void)state;
    gd_metrics m = {0};
    uint64_t v = 100;
    m.ws_connections = v++;
    m.http_requests = v++;
    for (int t = 0; t < GD_OP__COUNT; t++)
        m.mutations[t] = 1000 + (uint64_t)t;
    m.rejected_invalid_json = v++;
    m.rejected_storage = v++;
    m.rejected_unavailable = v++;
    m.loads_durable = v++;
    m.loads_kv = v++;
    m.loads_default = v++;
    m.evictions = v++;
    m.hibernations = v++;
    m.lagging_closed = v++;
    m.budget_evictions = v++;
    m.load_failures = v++;
    m.bad_requests = v++;
    m.limited_create = v++;
    m.limited_list = v++;
    m.limited_load = v++;
    m.ws_protocol_errors = v++;
    m.mem_estimate = v++;
    m.sessions_created = v++;
    gd_hist_add(&m.ack_ms, 0.2);
    gd_hist_add(&m.ack_ms, 3);
    gd_metrics_sources in = {
        .sessions_live = 201,
        .sessions_loading = 202,
        .sessions_hibernated = 203,
        .players = 204,
        .sessions_known = 205,
        .commits = 206,
        .commit_failures = 207,
        .durable_rows = 208,
        .durable_bytes = 209,
        .kv_writes = 210,
        .kv_write_failures = 211,
        .kv_behind = 212,
        .static_responses = 213,
        .static_not_modified = 214,
        .static_body_bytes = 215,
        .static_compressions_gzip = 216,
        .static_compressions_br = 217,
        .static_cache_hits = 218,
        .static_precompressed = 219,
        .static_cache_bytes = 220,
        .connections_refused = 221,
    };
    gd_buf b;
    gd_buf_init(&b);
    assert_int_equal(gd_metrics_render(&m, &in, &b), 0);
    const char *t = b.p;

    assert_int_equal(sample(t, "grooved_ws_connections_total"), 100);
    assert_int_equal(sample(t, "grooved_http_requests_total"), 101);
    assert_int_equal(sample(t, "grooved_mutations_total{type=\"toggle_step\"}"),
                     1000 + GD_OP_TOGGLE_STEP);
    assert_int_equal(sample(t, "grooved_rejected_total{code=\"INVALID_JSON\"}"), 102);
    assert_int_equal(sample(t, "grooved_rejected_total{code=\"STORAGE_UNAVAILABLE\"}"), 103);
    assert_int_equal(sample(t, "grooved_rejected_total{code=\"SESSION_UNAVAILABLE\"}"), 104);
    assert_int_equal(sample(t, "grooved_reloads_total{source=\"durable\"}"), 105);
    assert_int_equal(sample(t, "grooved_reloads_total{source=\"kv\"}"), 106);
    assert_int_equal(sample(t, "grooved_reloads_total{source=\"default\"}"), 107);
    assert_int_equal(sample(t, "grooved_sessions_evicted_total"), 108);
    assert_int_equal(sample(t, "grooved_sessions_hibernated_total"), 109);
    assert_int_equal(sample(t, "grooved_lagging_closed_total"), 110);
    assert_int_equal(sample(t, "grooved_budget_evictions_total"), 111);
    assert_int_equal(sample(t, "grooved_load_failures_total"), 112);
    assert_int_equal(sample(t, "grooved_bad_requests_total"), 113);
    assert_int_equal(sample(t, "grooved_rate_limited_total{limit=\"create\"}"), 114);
    assert_int_equal(sample(t, "grooved_rate_limited_total{limit=\"list\"}"), 115);
    assert_int_equal(sample(t, "grooved_rate_limited_total{limit=\"load\"}"), 116);
    assert_int_equal(sample(t, "grooved_ws_protocol_errors_total"), 117);
    assert_int_equal(sample(t, "grooved_memory_estimate_bytes"), 118);
    assert_int_equal(sample(t, "grooved_sessions_created_total"), 119);

    assert_int_equal(sample(t, "grooved_sessions{state=\"live\"}"), 201);
    assert_int_equal(sample(t, "grooved_sessions{state=\"loading\"}"), 202);
    assert_int_equal(sample(t, "grooved_sessions{state=\"hibernated\"}"), 203);
    assert_int_equal(sample(t, "grooved_connections"), 204);
    assert_int_equal(sample(t, "grooved_sessions_known"), 205);
    assert_int_equal(sample(t, "grooved_commits_total"), 206);
    assert_int_equal(sample(t, "grooved_commit_failures_total"), 207);
    assert_int_equal(sample(t, "grooved_durable_rows_total"), 208);
    assert_int_equal(sample(t, "grooved_durable_bytes_total"), 209);
    assert_int_equal(sample(t, "grooved_kv_writes_total"), 210);
    assert_int_equal(sample(t, "grooved_kv_write_failures_total"), 211);
    assert_int_equal(sample(t, "grooved_kv_views_behind"), 212);
    assert_int_equal(sample(t, "grooved_static_responses_total"), 213);
    assert_int_equal(sample(t, "grooved_static_not_modified_total"), 214);
    assert_int_equal(sample(t, "grooved_static_body_bytes_total"), 215);
    assert_int_equal(sample(t, "grooved_static_compressions_total{encoding=\"gzip\"}"), 216);
    assert_int_equal(sample(t, "grooved_static_compressions_total{encoding=\"br\"}"), 217);
    assert_int_equal(sample(t, "grooved_static_compressed_cache_hits_total"), 218);
    assert_int_equal(sample(t, "grooved_static_precompressed_total"), 219);
    assert_int_equal(sample(t, "grooved_static_cache_bytes"), 220);
    assert_int_equal(sample(t, "grooved_connections_refused_total"), 221);

    /* Cumulative buckets: 0.2 is in le 0.25 and above, 3 in le 5 and above. */
    assert_int_equal(sample(t, "grooved_ack_latency_ms_bucket{le=\"0.1\"}"), 0);
    assert_int_equal(sample(t, "grooved_ack_latency_ms_bucket{le=\"0.25\"}"), 1);
    assert_int_equal(sample(t, "grooved_ack_latency_ms_bucket{le=\"2.5\"}"), 1);
    assert_int_equal(sample(t, "grooved_ack_latency_ms_bucket{le=\"5\"}"), 2);
    assert_int_equal(sample(t, "grooved_ack_latency_ms_bucket{le=\"+Inf\"}"), 2);
    assert_int_equal(sample(t, "grooved_ack_latency_ms_count"), 2);
    assert_non_null(strstr(t, "\ngrooved_ack_latency_ms_sum 3.2\n"));
    gd_buf_free(&b);
}

/* Every sample follows the # HELP and # TYPE lines of its own family. */
static void test_render_families(void **state)
{
    (void)state;
    gd_metrics m = {0};
    gd_metrics_sources in = {0};
    gd_buf b;
    gd_buf_init(&b);
    assert_int_equal(gd_metrics_render(&m, &in, &b), 0);
    assert_true(b.len > 0 && b.p[b.len - 1] == '\n');
    char family[128] = "", type[32] = "";
    int families = 0;
    char *save = NULL;
    for (char *line = strtok_r(b.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], help[256];
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line, "# HELP %127s %255[^\n]", name, help), 2);
            snprintf(family, sizeof(family), "%s", name);
            type[0] = '\0';
            families++;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line, "# TYPE %127s %31s", name, type), 2);
            assert_string_equal(name, family);
        } else {
            assert_true(type[0] != '\0'); /* a sample after its family's # TYPE */
            size_t n = strlen(family);
            assert_int_equal(strncmp(line, family, n), 0);
            const char *rest = line + n;
            bool ok = *rest == ' ' || *rest == '{' ||
                      (strcmp(type, "histogram") == 0 &&
                       (strncmp(rest, "_bucket{", 8) == 0 || strncmp(rest, "_sum ", 5) == 0 ||
                        strncmp(rest, "_count ", 7) == 0));
            assert_true(ok);
        }
    }
    assert_true(families >= 30);
    gd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets),
        cmocka_unit_test(test_render_values),
        cmocka_unit_test(test_render_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
