/* Unit tests for log: the text form stays today's line, the JSON form is one
 * valid object with typed fields for any arguments (odd bytes, long values,
 * small buffers), and plain gd_log lines carry the session they name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>
#include <jansson.h>

#include "log.h"

#define SID "0f8fad5b-d9cb-469f-a165-70867728950e"
/* 2025-01-02T03:04:05.678Z */
#define T0 1735787045678LL

static char line[4096];

static size_t __attribute__((format(printf, 8, 9)))
render(size_t cap, int format, int level, const char *prog, const char *event, const char *session,
       const char *keys, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = gd_log_render(line, cap, format, T0, level, prog, event, session, keys, fmt, ap);
    va_end(ap);
    assert_int_equal(strlen(line), n);
    assert_true(n < cap);
    return n;
}

/* Parses line as one JSON object (jansson rejects invalid UTF-8). */
static json_t *parse_flags(size_t flags)
{
    json_error_t e;
    json_t *v = json_loads(line, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | flags, &e);
    if (!v) fail_msg("not JSON (%s): %s", e.text, line);
    assert_true(json_is_object(v));
    return v;
}

static json_t *parse(void)
{
    return parse_flags(0);
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) fail_msg("%s is not a string in %s", k, line);
    return json_string_value(v);
}

static void test_text_is_todays_line(void **state)
{
    (void)state;
    render(4096, GD_LOG_TEXT, GD_LOG_INFO, NULL, "player_joined", SID, "player,name,players",
           "player %s (%s) joined, %d connected", "p1", "Red Fox", 2);
    assert_string_equal(line, "2025-01-02T03:04:05.678Z info  session " SID
                              ": player p1 (Red Fox) joined, 2 connected");
    render(4096, GD_LOG_TEXT, GD_LOG_WARN, NULL, "x", NULL, "n", "no session %d", 7);
    assert_string_equal(line, "2025-01-02T03:04:05.678Z warn  no session 7");
    render(4096, GD_LOG_TEXT, GD_LOG_ERROR, NULL, NULL, NULL, NULL, "session %s: plain %s", SID,
           "line");
    assert_string_equal(line, "2025-01-02T03:04:05.678Z error session " SID ": plain line");
    render(4096, GD_LOG_TEXT, GD_LOG_ERROR, "grooved", "config_invalid", NULL, "flag",
           "unknown flag '%s' (see --help)", "--nope");
    assert_string_equal(line, "grooved: unknown flag '--nope' (see --help)");
}

static void test_json_event_fields(void **state)
{
    (void)state;
    render(4096, GD_LOG_JSON, GD_LOG_INFO, NULL, "player_joined", SID, "player,name,players",
           "player %s (%s) joined, %d connected", "p1", "Red Fox", 2);
    json_t *v = parse();
    assert_string_equal(str(v, "time"), "2025-01-02T03:04:05.678Z");
    assert_string_equal(str(v, "level"), "info");
    assert_string_equal(str(v, "event"), "player_joined");
    assert_string_equal(str(v, "session"), SID);
    assert_string_equal(str(v, "msg"), "player p1 (Red Fox) joined, 2 connected");
    assert_string_equal(str(v, "player"), "p1");
    assert_string_equal(str(v, "name"), "Red Fox");
    assert_int_equal(json_integer_value(json_object_get(v, "players")), 2);
    assert_int_equal(json_object_size(v), 8);
    /* The members come in this order: time, level, event, session, msg. */
    assert_true(strncmp(line, "{\"time\":", 8) == 0);
    assert_true(strstr(line, "\"event\"") < strstr(line, "\"session\""));
    json_decref(v);

    render(4096, GD_LOG_JSON, GD_LOG_ERROR, NULL, "stopped", NULL, "", "stopped");
    v = parse();
    assert_true(json_is_null(json_object_get(v, "session")));
    assert_string_equal(str(v, "level"), "error");
    assert_int_equal(json_object_size(v), 5);
    json_decref(v);
}

static void test_json_types(void **state)
{
    (void)state;
    const char *volatile nothing = NULL; /* glibc prints "(null)"; hidden from -Wformat */
    render(4096, GD_LOG_JSON, GD_LOG_DEBUG, NULL, "types", NULL,
           "z,ll,ull,hh,f,nan,inf,hex,c,null,prec,star,u,neg",
           "%zu %lld %llu %hhd %.1f %f %g %#x %c %s %.3s %*d%% %u %ld", (size_t)42, -9000000000LL,
           18446744073709551615ULL, (char)-5, 12.34, NAN, INFINITY, 255u, 'q', nothing, "abcdef", 6,
           7, 3000000000u, -1L);
    /* 2^64-1 is valid JSON but beyond jansson's integers: numbers read as reals. */
    assert_true(strstr(line, "\"ull\":18446744073709551615,") != NULL);
    json_t *v = parse_flags(JSON_DECODE_INT_AS_REAL);
#define NUM(k) json_number_value(json_object_get(v, k))
    assert_true(NUM("z") == 42);
    assert_true(NUM("ll") == -9000000000.0);
    assert_true(NUM("hh") == -5);
    assert_true(fabs(NUM("f") - 12.34) < 1e-9);
    assert_true(json_is_null(json_object_get(v, "nan")));
    assert_true(json_is_null(json_object_get(v, "inf")));
    assert_string_equal(str(v, "hex"), "0xff");
    assert_string_equal(str(v, "c"), "q");
    assert_true(json_is_null(json_object_get(v, "null")));
    assert_string_equal(str(v, "prec"), "abc");
    assert_true(NUM("star") == 7);
    assert_true(NUM("u") == 3000000000.0);
    assert_true(NUM("neg") == -1);
#undef NUM
    assert_string_equal(str(v, "msg"), "42 -9000000000 18446744073709551615 -5 12.3 nan inf 0xff q "
                                       "(null) abc      7% 3000000000 -1");
    json_decref(v);
}

static void test_json_keys(void **state)
{
    (void)state;
    /* An empty name keeps the value in the message only; missing names are argN. */
    render(4096, GD_LOG_JSON, GD_LOG_INFO, NULL, "k", NULL, "a,,c", "%d %d %d %d", 1, 2, 3, 4);
    json_t *v = parse();
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "c")), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "arg3")), 4);
    assert_int_equal(json_object_size(v), 5 + 3);
    json_decref(v);
    render(4096, GD_LOG_JSON, GD_LOG_INFO, NULL, "k", NULL, NULL, "%s %d", "x", 5);
    v = parse();
    assert_int_equal(json_object_size(v), 5);
    assert_string_equal(str(v, "msg"), "x 5");
    json_decref(v);
}

static void test_json_escaping(void **state)
{
    (void)state;
    const char *odd = "q\"b\\s/\n\t\r\x01\x1f\x7f é€😀 \xff \xc3 \xe2\x82 \xc0\x80 \xed\xa0\x80 "
                      "\xf4\x90\x80\x80 end";
    render(4096, GD_LOG_JSON, GD_LOG_WARN, NULL, "odd\"event", odd, "name", "named %s", odd);
    json_t *v = parse();
    assert_string_equal(str(v, "event"), "odd\"event");
    const char *want = "q\"b\\s/\n\t\r\x01\x1f\x7f é€😀 \xef\xbf\xbd \xef\xbf\xbd "
                       "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end";
    assert_string_equal(str(v, "session"), want);
    assert_string_equal(str(v, "name"), want);
    json_decref(v);
    /* A NUL from %c is escaped, not a terminator. */
    render(4096, GD_LOG_JSON, GD_LOG_WARN, NULL, "nul", NULL, "c", "%c", 0);
    assert_non_null(strstr(line, "\"c\":\"\\u0000\""));
    json_decref(parse());
}

static void test_plain_line_session(void **state)
{
    (void)state;
    render(4096, GD_LOG_JSON, GD_LOG_INFO, NULL, NULL, NULL, NULL, "session %s: evicted (%s)", SID,
           "idle");
    json_t *v = parse();
    assert_string_equal(str(v, "event"), "message");
    assert_string_equal(str(v, "session"), SID);
    assert_string_equal(str(v, "msg"), "evicted (idle)");
    assert_int_equal(json_object_size(v), 5);
    json_decref(v);

    render(4096, GD_LOG_JSON, GD_LOG_ERROR, NULL, NULL, NULL, NULL,
           "store: session %s: checkpoint does not parse", SID);
    v = parse();
    assert_string_equal(str(v, "session"), SID);
    assert_string_equal(str(v, "msg"), "store: session " SID ": checkpoint does not parse");
    json_decref(v);

    /* Not a session id, or not followed by ':' → no session. */
    const char *nots[] = {"session 0f8fad5b-d9cb-469f-a165-70867728950: x",
                          "session " SID " joined", "mysession " SID ": x", "session \"x\": y"};
    for (size_t i = 0; i < sizeof(nots) / sizeof(nots[0]); i++) {
        render(4096, GD_LOG_JSON, GD_LOG_INFO, NULL, NULL, NULL, NULL, "%s", nots[i]);
        v = parse();
        assert_true(json_is_null(json_object_get(v, "session")));
        assert_string_equal(str(v, "msg"), nots[i]);
        json_decref(v);
    }
}

static void test_usage_json(void **state)
{
    (void)state;
    render(4096, GD_LOG_JSON, GD_LOG_ERROR, "grooved", "config_invalid", NULL, "source,flag,value",
           "%s %s: '%s' is not an integer", "flag", "port", "x\"y");
    json_t *v = parse();
    assert_string_equal(str(v, "level"), "error");
    assert_string_equal(str(v, "event"), "config_invalid");
    assert_string_equal(str(v, "value"), "x\"y");
    assert_string_equal(str(v, "msg"), "flag port: 'x\"y' is not an integer");
    json_decref(v);
}

static void test_truncation_stays_valid(void **state)
{
    (void)state;
    static char big[3000];
    /* Escapes and multi-byte characters at every alignment, so that the cut
     * can fall inside any of them. */
    const char *unit = "ab\"\xe2\x82\xac\\\n\xff";
    for (size_t i = 0; i + 1 < sizeof(big); i++)
        big[i] = unit[i % strlen(unit)];
    for (size_t cap = 128; cap <= 4096; cap += 37) {
        render(cap, GD_LOG_JSON, GD_LOG_INFO, NULL, "big", SID, "a,b,n", "%s %s %d", big, big, 5);
        json_t *v = parse();
        assert_true(json_is_true(json_object_get(v, "truncated")));
        assert_string_equal(str(v, "event"), "big");
        json_decref(v);
    }
    /* Text lines are cut too, within the buffer. */
    render(200, GD_LOG_TEXT, GD_LOG_INFO, NULL, "big", SID, "a", "%s", big);
    assert_int_equal(strlen(line), 199);
}

static void test_redact_url(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"},
        {"redis://:p%40ss@h:1/0", "redis://***@h:1/0"},
        {"redis://player:pw@h:1/0", "redis://player:***@h:1/0"},
        {"redis://a:b@c@h/0", "redis://a:***@h/0"},
        {"redis://user@h", "redis://***@h"},
        {"postgres://u:secret@h1:5432,h2:5432/db?sslmode=require",
         "postgres://u:***@h1:5432,h2:5432/db?sslmode=require"},
        {"postgres://h/db?user=u&password=secret&x=1", "postgres://h/db?user=u&password=***&x=1"},
        {"postgres://h/db?Password=secret", "postgres://h/db?Password=***"},
        {"postgres://h/db?sslpassword=secret&a=1", "postgres://h/db?sslpassword=***&a=1"},
        {"postgres://h/db?pass%77ord=secret", "postgres://h/db?pass%77ord=***"},
        /* A password with a raw '?', '/' or '#', or a URL that does not parse: hidden all the same.
         */
        {"redis://:pa?ss@h:1/0", "redis://***@h:1/0"},
        {"redis://u:p/w@h:1/0", "redis://u:***@h:1/0"},
        {"redis://u:p#w@h:1/0", "redis://u:***@h:1/0"},
        {"redis://u?x:pw@h/0", "redis://***@h/0"},
        {"redis://@#&:x?]?]@h", "redis://***@h"},
        {"rediss://u:secret@h", "rediss://u:***@h"},
        {"redis:secret@h", "redis:***@h"},
        {"postgress://u:secret@h/db", "postgress://u:***@h/db"},
        {"postgres://u:p@[::1]:5432/db?application_name=a@b", "postgres://u:***@b"},
        {"sqlite", "sqlite"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gd_log_redact_url(out, sizeof(out), cases[i][0]);
        assert_string_equal(out, cases[i][1]);
    }
    gd_log_redact_url(out, 8, "redis://:secret@h/0"); /* short buffers stay terminated */
    assert_int_equal(strlen(out), 7);
    assert_null(strstr(out, "secret"));
}

static void test_random_bytes_always_json(void **state)
{
    (void)state;
    srand(12345);
    char s[300], sess[60];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)(rand() % (int)sizeof(s));
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(1 + rand() % 255);
        s[n] = '\0';
        size_t m = (size_t)(rand() % (int)sizeof(sess));
        for (size_t i = 0; i < m; i++)
            sess[i] = (char)(1 + rand() % 255);
        sess[m] = '\0';
        size_t cap = 128 + (size_t)(rand() % 1500);
        render(cap, GD_LOG_JSON, rand() % 4, NULL, "r", sess, "s,i", "%s/%d", s, iter);
        json_decref(parse());
        render(cap, GD_LOG_JSON, GD_LOG_INFO, NULL, NULL, NULL, NULL, "session %s: %s", SID, s);
        json_decref(parse());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_todays_line),
        cmocka_unit_test(test_json_event_fields),
        cmocka_unit_test(test_json_types),
        cmocka_unit_test(test_json_keys),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_plain_line_session),
        cmocka_unit_test(test_usage_json),
        cmocka_unit_test(test_truncation_stays_valid),
        cmocka_unit_test(test_random_bytes_always_json),
        cmocka_unit_test(test_redact_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
