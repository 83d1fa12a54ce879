/* Unit tests for hash: the reference's vectors V1..V8 (§3.7, Appendix B). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "hash.h"

static void hash_of(const char *canonical, const char *want)
{
    char got[9];
    snprintf(got, sizeof(got), "%08x", gd_hash_utf16(canonical, strlen(canonical)));
    assert_string_equal(got, want);
}

static gd_state *state_from(const char *json)
{
    json_error_t e;
    json_t *j = json_loads(json, JSON_DECODE_INT_AS_REAL, &e);
    assert_non_null(j);
    gd_state *s = malloc(sizeof(*s));
    gd_errors errs = {0};
    int rc = gd_state_from_json(j, s, &errs);
    if (rc) fprintf(stderr, "%s\n", errs.msg[0]);
    assert_int_equal(rc, 0);
    json_decref(j);
    return s;
}

static void free_state(gd_state *s)
{
    gd_state_clear(s);
    free(s);
}

static void test_v1_default(void **state)
{
    (void)state;
    gd_state s;
    gd_state_init(&s);
    char h[9];
    assert_int_equal(gd_state_hash(&s, h), 0);
    assert_string_equal(h, "9cdc0372");
}

static void test_v2_from_model(void **state)
{
    (void)state;
    /* V2 built through the model: 128 steps, true at 0, 4, 20, lock at 4. */
    char steps[1024] = "[";
    for (int i = 0; i < 128; i++)
        strcat(steps, i == 0 || i == 4 || i == 20 ? (i ? ",true" : "true") : ",false");
    strcat(steps, "]");
    char json[4096];
    snprintf(json, sizeof(json),
             "{\"tracks\":[{\"id\":\"track-1\",\"name\":\"Kick\",\"sampleId\":\"kick\","
             "\"steps\":%s,\"parameterLocks\":[null,null,null,null,{\"pitch\":5,\"volume\":0.5}],"
             "\"volume\":1,\"muted\":true,\"playbackMode\":\"oneshot\",\"transpose\":0,"
             "\"stepCount\":16}],\"tempo\":120,\"swing\":0}",
             steps);
    gd_state *s = state_from(json);
    char h[9];
    gd_state_hash(s, h);
    assert_string_equal(h, "3f89efed");
    /* V3: muted false and no stepCount hashes the same. */
    s->tracks[0]->muted = false;
    gd_state_hash(s, h);
    assert_string_equal(h, "3f89efed");
    free_state(s);
}

static void test_v4_unicode(void **state)
{
    (void)state;
    gd_state *s = state_from(
        "{\"tracks\":[{\"id\":\"t\",\"name\":\"Caf\xc3\xa9 \xf0\x9f\x8e\xb5\",\"sampleId\":"
        "\"synth:lead\",\"steps\":[true],\"parameterLocks\":[],\"volume\":0.1,\"playbackMode\":"
        "\"gate\",\"transpose\":-3,\"stepCount\":8}],\"tempo\":95.5,\"swing\":33}");
    gd_buf b;
    gd_buf_init(&b);
    gd_state_canonical(&b, s);
    assert_string_equal(
        b.p, "{\"tracks\":[{\"id\":\"t\",\"name\":\"Caf\xc3\xa9 \xf0\x9f\x8e\xb5\",\"sampleId\":"
             "\"synth:lead\",\"steps\":[true,false,false,false,false,false,false,false],"
             "\"parameterLocks\":[null,null,null,null,null,null,null,null],\"volume\":0.1,"
             "\"playbackMode\":\"gate\",\"transpose\":-3,\"stepCount\":8}],\"tempo\":95.5,"
             "\"swing\":33}");
    gd_buf_free(&b);
    char h[9];
    gd_state_hash(s, h);
    assert_string_equal(h, "c82ff7e8");
    free_state(s);
}

static void test_v5_v6_lock_order(void **state)
{
    (void)state;
    const char *fmt = "{\"tracks\":[{\"id\":\"t\",\"name\":\"A\",\"sampleId\":\"kick\",\"steps\":"
                      "[false],\"parameterLocks\":[%s],\"volume\":1,\"playbackMode\":\"oneshot\","
                      "\"transpose\":0,\"stepCount\":4}],\"tempo\":120,\"swing\":0}";
    char json[1024];
    char h[9];
    snprintf(json, sizeof(json), fmt, "{\"volume\":0.5,\"pitch\":5}");
    gd_state *s = state_from(json);
    gd_state_hash(s, h);
    assert_string_equal(h, "1f61fc00");
    free_state(s);
    snprintf(json, sizeof(json), fmt, "{\"pitch\":5,\"volume\":0.5}");
    s = state_from(json);
    gd_state_hash(s, h);
    assert_string_equal(h, "53b9dafa");
    free_state(s);
}

static void test_v7_v8_canonical_strings(void **state)
{
    (void)state;
    hash_of("{\"tracks\":[{\"id\":\"t\",\"name\":\"a\\\"b\\\\c\\nd\\u0001\",\"sampleId\":\"kick\","
            "\"steps\":[false,false,false,false],\"parameterLocks\":[null,null,null,null],"
            "\"volume\":1,\"playbackMode\":\"oneshot\",\"transpose\":0,\"stepCount\":4}],"
            "\"tempo\":1e+21,\"swing\":0.000001}",
            "977f13be");
    hash_of("{\"tracks\":[{\"id\":\"t\",\"sampleId\":\"kick\",\"steps\":[false,false,false,"
            "false],\"parameterLocks\":[null,null,null,null],\"volume\":1,\"transpose\":0,"
            "\"stepCount\":4}],\"tempo\":null,\"swing\":0}",
            "dd05b46d");
    /* V7 through the model's own serialiser: name escaping and JS numbers. */
    gd_state s;
    gd_state_init(&s);
    gd_track *t = gd_track_new();
    t->id = strdup("t");
    t->name = strdup("a\"b\\c\nd\x01");
    t->sample_id = strdup("kick");
    t->step_count = 4;
    s.tracks[s.ntracks++] = t;
    s.tempo = 1e21;
    s.swing = 0.000001;
    char h[9];
    gd_state_hash(&s, h);
    assert_string_equal(h, "977f13be");
    gd_state_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_default),
        cmocka_unit_test(test_v2_from_model),
        cmocka_unit_test(test_v4_unicode),
        cmocka_unit_test(test_v5_v6_lock_order),
        cmocka_unit_test(test_v7_v8_canonical_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
