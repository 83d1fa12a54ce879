/* Unit tests for reqhead: complete and incomplete heads, the fields the
 * server needs, and every rule that answers 400/431/501/505. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "reqhead.h"

static int parse(const char *s, gd_reqhead *h)
{
    return gd_reqhead_parse(s, strlen(s), 8192, h);
}

static void expect_status(const char *s, int status)
{
    gd_reqhead h;
    int rc = parse(s, &h);
    if (rc != -22 || h.status != status) {
        fprintf(stderr, "for %s: rc %d status %d\n", s, rc, h.status);
        fail();
    }
}

static void test_simple_get(void **state)
{
    (void)state;
    gd_reqhead h;
    const char *r = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\n";
    assert_int_equal(parse(r, &h), 0);
    assert_string_equal(h.method, "GET");
    assert_int_equal(h.target.len, 8);
    assert_memory_equal(h.target.p, "/healthz", 8);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.content_length, -1);
    assert_int_equal(h.head_len, strlen("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_true(h.has_host);
}

static void test_incomplete_and_too_large(void **state)
{
    (void)state;
    gd_reqhead h;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n", &h), -11);
    assert_int_equal(parse("", &h), -11);
    assert_int_equal(parse("\r\n\r\n", &h), -11); /* empty lines before a request are skipped */
    char big[9000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(gd_reqhead_parse(big, sizeof(big), 8192, &h), -22);
    assert_int_equal(h.status, 431);
    /* Bare LF line ends, and leading empty lines. */
    assert_int_equal(parse("\r\nGET / HTTP/1.0\nHost: y\n\n", &h), 0);
    assert_int_equal(h.minor, 0);
}

static void test_websocket_fields(void **state)
{
    (void)state;
    gd_reqhead h;
    const char *r = "GET /api/sessions/x/ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
                    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: abc==\r\n"
                    "Sec-WebSocket-Version: 13\r\nX-Forwarded-For: 1.1.1.1\r\n"
                    "X-Forwarded-For: 2.2.2.2, 3.3.3.3 \r\n\r\n";
    assert_int_equal(parse(r, &h), 0);
    assert_true(h.upgrade_websocket);
    assert_true(h.connection_upgrade);
    assert_int_equal(h.ws_key.len, 5);
    assert_memory_equal(h.ws_version.p, "13", 2);
    assert_int_equal(h.xff.len, strlen("2.2.2.2, 3.3.3.3"));
    gd_span v = {"a, b ,Upgrade", 13};
    assert_true(gd_reqhead_list_has(v, "upgrade"));
    assert_false(gd_reqhead_list_has(v, "c"));
}

static void test_content_length_rules(void **state)
{
    (void)state;
    gd_reqhead h;
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", &h), 0);
    assert_int_equal(h.content_length, 2);
    expect_status("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 5\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
    expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                  400);
}

static void test_malformed_heads(void **state)
{
    (void)state;
    expect_status("GET /\r\n\r\n", 400);
    expect_status("GET  / HTTP/1.1\r\n\r\n", 400);
    expect_status("G(T / HTTP/1.1\r\n\r\n", 400);
    expect_status("GET / HTTP/2.0\r\n\r\n", 505);
    expect_status("GET / HTTP/1.1x\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_status("GET /a\001 HTTP/1.1\r\n\r\n", 400);
    char many[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 101; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    expect_status(many, 431);
}

static void test_percent_decode(void **state)
{
    (void)state;
    char out[16];
    assert_true(gd_percent_decode("p%40ss%3aw%2Frd", 15, out, sizeof(out)));
    assert_string_equal(out, "p@ss:w/rd");
    assert_true(gd_percent_decode("abc", 2, out, sizeof(out))); /* only n bytes */
    assert_string_equal(out, "ab");
    assert_false(gd_percent_decode("%4", 2, out, sizeof(out)));    /* short escape */
    assert_false(gd_percent_decode("%zz", 3, out, sizeof(out)));   /* not hex */
    assert_false(gd_percent_decode("a%00b", 5, out, sizeof(out))); /* NUL */
    assert_false(gd_percent_decode("a%0Ab", 5, out, sizeof(out))); /* control character */
    assert_false(gd_percent_decode("a\x7f", 2, out, sizeof(out))); /* DEL, raw */
    assert_false(gd_percent_decode("0123456789abcdef", 16, out, sizeof(out))); /* no room for NUL */
    assert_true(gd_percent_decode("0123456789abcde", 15, out, sizeof(out)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),       cmocka_unit_test(test_incomplete_and_too_large),
        cmocka_unit_test(test_websocket_fields), cmocka_unit_test(test_content_length_rules),
        cmocka_unit_test(test_malformed_heads),  cmocka_unit_test(test_percent_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
