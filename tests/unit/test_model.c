/* Unit tests for model: REST validation messages (§2.15), names, round trips. */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &e);
    assert_non_null(j);
    return j;
}

static void expect_errors(const char *json, int n, const char *first)
{
    json_t *j = parse(json);
    gd_state s;
    gd_errors errs = {0};
    assert_int_equal(gd_state_from_json(j, &s, &errs), -22);
    assert_int_equal(errs.n, n);
    assert_string_equal(errs.msg[0], first);
    assert_int_equal(s.ntracks, 0);
    json_decref(j);
}

static void test_state_validation(void **state)
{
    (void)state;
    expect_errors("{\"tempo\":9999}", 1, "Tempo must be between 60 and 180");
    expect_errors("{\"tempo\":\"150\"}", 1, "Tempo must be a number");
    expect_errors("{\"tempo\":null}", 1, "Tempo must be a number");
    expect_errors("{\"swing\":-5}", 1, "Swing must be between 0 and 100");
    expect_errors("[]", 1, "State must be an object");
    expect_errors("{\"tracks\":{}}", 1, "Tracks must be an array");
    expect_errors("{\"tracks\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", 1,
                  "Cannot have more than 16 tracks");
    expect_errors("{\"tracks\":[{\"id\":\"\",\"sampleId\":\"k\",\"name\":\"n\",\"steps\":[]}]}", 1,
                  "Track[0]: id must be a non-empty string");
    expect_errors("{\"tracks\":[{\"id\":\"a\",\"sampleId\":\"k\",\"name\":\"n\",\"steps\":[],"
                  "\"volume\":2}]}",
                  1, "Track[0]: volume must be between 0 and 1");
    expect_errors("{\"tracks\":[{\"id\":\"a\",\"sampleId\":\"k\",\"name\":\"n\",\"steps\":[],"
                  "\"stepCount\":17}]}",
                  1, "Track[0]: stepCount must be one of 4, 8, 12, 16, 24, 32, 64, 96, 128");
    expect_errors("{\"tracks\":[{\"id\":\"a\",\"sampleId\":\"k\",\"name\":\"n\",\"steps\":[],"
                  "\"playbackMode\":\"loop\"}]}",
                  1, "Track[0]: playbackMode must be \"oneshot\" or \"gate\"");
}

static void test_state_normalises(void **state)
{
    (void)state;
    json_t *j = parse("{\"tracks\":[{\"id\":\"a\",\"sampleId\":\"kick\",\"name\":\"Kick\","
                      "\"steps\":[true,false,true],\"extra\":1,\"parameterLocks\":[null,"
                      "{\"volume\":0.5,\"pitch\":3,\"x\":1}]}],\"tempo\":100,\"junk\":true}");
    gd_state s;
    gd_errors errs = {0};
    assert_int_equal(gd_state_from_json(j, &s, &errs), 0);
    assert_int_equal(s.ntracks, 1);
    assert_true(s.tracks[0]->steps[0]);
    assert_true(s.tracks[0]->steps[2]);
    assert_false(s.tracks[0]->steps[127]);
    /* Locks keep their known fields only, in the order received. */
    assert_string_equal(s.tracks[0]->locks[1], "{\"volume\":0.5,\"pitch\":3}");
    assert_int_equal(s.tracks[0]->step_count, 16);
    assert_true(s.tracks[0]->volume == 1);
    gd_buf b;
    gd_buf_init(&b);
    gd_state_write(&b, &s);
    assert_null(strstr(b.p, "extra"));
    assert_null(strstr(b.p, "junk"));
    assert_non_null(strstr(b.p, "\"tempo\":100,\"swing\":0,\"version\":1}"));
    gd_buf_free(&b);
    gd_state_clear(&s);
    json_decref(j);
}

static void name_case(const char *json, int rc, const char *first_or_value)
{
    json_t *j = parse(json);
    char *out = NULL;
    gd_errors errs = {0};
    assert_int_equal(gd_name_from_json(j, &out, &errs), rc);
    if (rc)
        assert_string_equal(errs.msg[0], first_or_value);
    else if (first_or_value)
        assert_string_equal(out, first_or_value);
    else
        assert_null(out);
    free(out);
    json_decref(j);
}

static char *lock_of(const char *text, gd_vmode mode, bool keep_order, int *rc)
{
    json_t *j = parse(text);
    char *out = (char *)"unset";
    *rc = gd_lock_from_json(j, mode, keep_order, &out);
    json_decref(j);
    return out;
}

static void test_locks(void **state)
{
    (void)state;
    int rc;
    char *l = lock_of("{\"volume\":2,\"pitch\":-30,\"x\":{\"y\":[1]}}", GD_CLAMP, true, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(l, "{\"volume\":1,\"pitch\":-24}");
    free(l);
    l = lock_of("{\"volume\":0.25,\"pitch\":7}", GD_CLAMP, false, &rc);
    assert_string_equal(l, "{\"pitch\":7,\"volume\":0.25}"); /* §1.5 order */
    free(l);
    assert_null(lock_of("{\"pitch\":\"x\",\"volume\":1}", GD_CLAMP, true, &rc)); /* §1.5 */
    assert_int_equal(rc, 0);
    assert_null(lock_of("{\"nested\":{\"a\":{\"b\":1}}}", GD_CLAMP, true, &rc));
    assert_null(lock_of("{}", GD_STRICT, true, &rc));
    assert_int_equal(rc, 0);
    assert_null(lock_of("{\"pitch\":25}", GD_STRICT, true, &rc));
    assert_int_equal(rc, -EINVAL);
    assert_null(lock_of("{\"volume\":null}", GD_STRICT, true, &rc));
    assert_int_equal(rc, -EINVAL);
    l = lock_of("{\"volume\":0,\"pitch\":24,\"junk\":\"x\"}", GD_STRICT, true, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(l, "{\"volume\":0,\"pitch\":24}");
    free(l);

    /* A lock nested past jansson's depth limit would make a stored record
     * unreadable; it must come out flat (the state round-trips). */
    gd_buf deep;
    gd_buf_init(&deep);
    gd_buf_puts(&deep, "{\"tracks\":[{\"id\":\"a\",\"sampleId\":\"k\",\"name\":\"n\","
                       "\"steps\":[true],\"parameterLocks\":[{\"pitch\":1,\"x\":");
    for (int i = 0; i < 2000; i++)
        gd_buf_puts(&deep, "[");
    for (int i = 0; i < 2000; i++)
        gd_buf_puts(&deep, "]");
    gd_buf_puts(&deep, "}]}]}");
    json_error_t e;
    json_t *j = json_loads(deep.p, 0, &e);
    assert_non_null(j);
    gd_state st;
    gd_errors errs = {0};
    assert_int_equal(gd_state_from_json(j, &st, &errs), 0);
    assert_string_equal(st.tracks[0]->locks[0], "{\"pitch\":1}");
    gd_record r;
    gd_record_init(&r, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
    gd_state_clear(&r.state);
    r.state = st;
    gd_buf out;
    gd_buf_init(&out);
    gd_record_write(&out, &r, true);
    json_t *back = json_loads(out.p, JSON_DECODE_INT_AS_REAL, &e);
    assert_non_null(back);
    gd_record r2;
    assert_int_equal(gd_record_from_json(back, &r2), 0);
    assert_string_equal(r2.state.tracks[0]->locks[0], "{\"pitch\":1}");
    gd_record_clear(&r2);
    json_decref(back);
    gd_buf_free(&out);
    gd_record_clear(&r);
    json_decref(j);
    gd_buf_free(&deep);
}

static void test_names(void **state)
{
    (void)state;
    name_case("\"  My Beat  \"", 0, "My Beat");
    name_case("\"   \"", 0, NULL);
    name_case("null", 0, NULL);
    name_case("42", -22, "Name must be a string or null");
    name_case("\"<script>\"", -22, "Name contains potentially unsafe content");
    name_case("\"Monday=fun\"", -22, "Name contains potentially unsafe content");
    name_case("\"javascript:x\"", -22, "Name contains potentially unsafe content");
    name_case("\"Beat #1 \xf0\x9f\x8e\xb5\"", 0, "Beat #1 \xf0\x9f\x8e\xb5");
    name_case("\"\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb\"", -22,
              "Name contains invalid characters");
    char long_name[300] = "\"";
    for (int i = 0; i < 101; i++)
        strcat(long_name, "x");
    strcat(long_name, "\"");
    name_case(long_name, -22, "Name cannot exceed 100 characters");
    /* Issue 10 item 11: a format character and a noncharacter inside a name. */
    name_case("\"a\xef\xbb\xbf"
              "b\"",
              -22, "Name contains invalid characters"); /* U+FEFF */
    name_case("\"a\xef\xbf\xbf"
              "b\"",
              -22, "Name contains invalid characters"); /* U+FFFF */
    name_case("\"a\xef\xbf\xbe"
              "b\"",
              -22, "Name contains invalid characters"); /* U+FFFE */
    name_case("\"a\xef\xb7\x90"
              "b\"",
              -22, "Name contains invalid characters"); /* U+FDD0 */
    name_case("\"\xef\xbb\xbf"
              "Beat\"",
              0, "Beat"); /* trimmed away like other white space */
    /* 100 two-byte characters are 100 code points: allowed. */
    char accents[512] = "\"";
    for (int i = 0; i < 100; i++)
        strcat(accents, "\xc3\xa9");
    strcat(accents, "\"");
    json_t *j = parse(accents);
    char *out = NULL;
    gd_errors errs = {0};
    assert_int_equal(gd_name_from_json(j, &out, &errs), 0);
    assert_int_equal(strlen(out), 200);
    free(out);
    json_decref(j);
}

static void test_record_round_trip(void **state)
{
    (void)state;
    gd_record r;
    gd_record_init(&r, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1700000000000);
    r.name = strdup("Jam");
    r.server_seq = 42;
    r.opno = 50;
    gd_track *t = gd_track_new();
    t->id = strdup("t1");
    t->name = strdup("Kick");
    t->sample_id = strdup("kick");
    t->steps[3] = true;
    t->locks[5] = strdup("{\"pitch\":2}");
    r.state.tracks[r.state.ntracks++] = t;
    gd_buf a, b;
    gd_buf_init(&a);
    gd_buf_init(&b);
    gd_record_write(&a, &r, true);
    json_t *j = parse(a.p);
    gd_record back;
    assert_int_equal(gd_record_from_json(j, &back), 0);
    gd_record_write(&b, &back, true);
    assert_string_equal(a.p, b.p);
    assert_int_equal(back.server_seq, 42);
    assert_int_equal(back.opno, 50);
    gd_record_clear(&r);
    gd_record_clear(&back);
    gd_buf_free(&a);
    gd_buf_free(&b);
    json_decref(j);
}

/* Issue 10 item 5: what a track holds is counted in real heap blocks, its
 * lock texts are sized to their content, and a track has a size bound. */
static void test_track_memory(void **state)
{
    (void)state;
    char *buf = malloc(40000);
    strcpy(buf, "{\"id\":\"t\",\"name\":\"Lead\",\"sampleId\":\"lead\",\"steps\":[],"
                "\"parameterLocks\":[");
    for (int i = 0; i < 128; i++)
        sprintf(buf + strlen(buf), "%s{\"pitch\":%d}", i ? "," : "", i % 24);
    strcat(buf, "]}");
    json_t *j = parse(buf);
    gd_errors errs = {0};
    gd_track *t = gd_track_from_json(j, GD_STRICT, "", &errs);
    assert_non_null(t);
    size_t real = malloc_usable_size(t) + malloc_usable_size(t->id) + malloc_usable_size(t->name) +
                  malloc_usable_size(t->sample_id);
    for (int i = 0; i < 128; i++) {
        assert_non_null(t->locks[i]);
        assert_true(malloc_usable_size(t->locks[i]) < 64); /* not a 256-byte buffer */
        real += malloc_usable_size(t->locks[i]);
    }
    size_t counted = gd_track_mem_bytes(t);
    assert_true(counted >= real);                 /* never under the heap it holds */
    assert_true(counted <= real + 132 * 48 + 64); /* and not wildly over */
    gd_track_free(t);
    json_decref(j);

    /* Lock texts that would make the track hold more than the bound: the
     * track is refused, or (if locks are normalised) stays within it. */
    strcpy(buf, "{\"id\":\"t\",\"name\":\"Lead\",\"sampleId\":\"lead\",\"steps\":[],"
                "\"parameterLocks\":[");
    for (int i = 0; i < 128; i++)
        sprintf(buf + strlen(buf), "%s{\"pitch\":1,\"note\":\"%0250d\"}", i ? "," : "", i);
    strcat(buf, "]}");
    j = parse(buf);
    errs.n = 0;
    t = gd_track_from_json(j, GD_STRICT, "Track[0]: ", &errs);
    if (t) {
        assert_true(gd_track_mem_bytes(t) <= GD_MAX_TRACK_BYTES);
        gd_track_free(t);
    } else {
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.msg[0], "Track[0]: cannot take more than 32768 bytes");
    }
    json_decref(j);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_track_memory),

        cmocka_unit_test(test_state_validation),
        cmocka_unit_test(test_state_normalises),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_record_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
