/* Unit tests for wsframe: masked frames in any split, fragmentation with
 * interleaved control frames, the RFC 6455 rules a server enforces (mask,
 * reserved bits, opcodes, control frame limits, UTF-8, close payloads),
 * oversized messages, and the handshake key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wsframe.h"

/* Appends a client frame (masked unless mask is false) to out; returns its size. */
static size_t client_frame(uint8_t *out, int b0, const void *payload, size_t len, bool mask)
{
    size_t h = 0;
    out[h++] = (uint8_t)b0;
    uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        out[h++] = (uint8_t)(mbit | len);
    } else if (len < 65536) {
        out[h++] = mbit | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (mask) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ (mask ? key[i & 3] : 0);
    return h + len;
}

typedef struct {
    gd_ws_event ev[16];
    char text[16][128];
    int n;
    uint16_t code;
} events;

/* Feeds buf in pieces of `step` bytes, collecting events. */
static void feed_all(gd_wsparse *p, const uint8_t *buf, size_t len, size_t step, events *e)
{
    e->n = 0;
    for (size_t off = 0; off < len;) {
        size_t piece = len - off < step ? len - off : step, used = 0;
        while (piece) {
            gd_ws_event ev = gd_wsparse_feed(p, buf + off, piece, &used);
            off += used;
            piece -= used;
            if (ev == GD_WS_EV_NONE) continue;
            e->ev[e->n] = ev;
            if (ev == GD_WS_EV_TEXT)
                snprintf(e->text[e->n], sizeof(e->text[0]), "%.*s", (int)p->msg.len, p->msg.p);
            else if (ev == GD_WS_EV_PING || ev == GD_WS_EV_CLOSE)
                snprintf(e->text[e->n], sizeof(e->text[0]), "%.*s", (int)p->ctl_len,
                         (const char *)p->ctl);
            e->code = p->close_code;
            e->n++;
        }
    }
}

static void test_frames_in_any_split(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "{\"type\":\"toggle_step\",\"step\":%d}", i);
        n += client_frame(buf + n, 0x81, msg, strlen(msg), true);
    }
    for (size_t step = 1; step <= n; step++) {
        gd_wsparse p;
        gd_wsparse_init(&p, 65536);
        events e;
        feed_all(&p, buf, n, step, &e);
        assert_int_equal(e.n, 5);
        for (int i = 0; i < 5; i++) {
            char want[64];
            snprintf(want, sizeof(want), "{\"type\":\"toggle_step\",\"step\":%d}", i);
            assert_int_equal(e.ev[i], GD_WS_EV_TEXT);
            assert_string_equal(e.text[i], want);
        }
        gd_wsparse_free(&p);
    }
}

static void test_fragments_with_ping_between(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = client_frame(buf, 0x01, "hel", 3, true);
    n += client_frame(buf + n, 0x89, "p1", 2, true);
    n += client_frame(buf + n, 0x00, "lo \xc3", 4, true); /* é split across frames */
    n += client_frame(buf + n, 0x80, "\xa9", 1, true);
    gd_wsparse p;
    gd_wsparse_init(&p, 100);
    events e;
    feed_all(&p, buf, n, n, &e);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.ev[0], GD_WS_EV_PING);
    assert_string_equal(e.text[0], "p1");
    assert_int_equal(e.ev[1], GD_WS_EV_TEXT);
    assert_string_equal(e.text[1], "hello \xc3\xa9");
    gd_wsparse_free(&p);
}

static void expect_error(const uint8_t *buf, size_t n, uint16_t code)
{
    gd_wsparse p;
    gd_wsparse_init(&p, 100);
    events e;
    feed_all(&p, buf, n, n, &e);
    assert_true(e.n >= 1);
    assert_int_equal(e.ev[e.n - 1], GD_WS_EV_ERROR);
    assert_int_equal(e.code, code);
    /* Nothing is accepted afterwards. */
    size_t used;
    assert_int_equal(gd_wsparse_feed(&p, buf, n, &used), GD_WS_EV_NONE);
    assert_int_equal(used, n);
    gd_wsparse_free(&p);
}

static void test_protocol_errors(void **state)
{
    (void)state;
    uint8_t buf[512];
    expect_error(buf, client_frame(buf, 0x81, "hi", 2, false), 1002); /* unmasked */
    expect_error(buf, client_frame(buf, 0xC1, "hi", 2, true), 1002);  /* RSV1 */
    expect_error(buf, client_frame(buf, 0x83, "hi", 2, true), 1002);  /* opcode 3 */
    expect_error(buf, client_frame(buf, 0x8B, "hi", 2, true), 1002);  /* opcode 11 */
    expect_error(buf, client_frame(buf, 0x80, "hi", 2, true), 1002);  /* stray continuation */
    expect_error(buf, client_frame(buf, 0x09, "hi", 2, true), 1002);  /* fragmented ping */
    char big[126];
    memset(big, 'a', sizeof(big));
    expect_error(buf, client_frame(buf, 0x89, big, 126, true), 1002); /* ping > 125 */
    size_t n = client_frame(buf, 0x01, "a", 1, true);
    expect_error(buf, n + client_frame(buf + n, 0x81, "b", 1, true),
                 1002); /* new msg mid-message */
    expect_error(buf, client_frame(buf, 0x81, "\xff", 1, true), 1007);
    expect_error(buf, client_frame(buf, 0x81, "\xc0\xaf", 2, true), 1007);     /* overlong */
    expect_error(buf, client_frame(buf, 0x81, "\xed\xa0\x80", 3, true), 1007); /* surrogate */
    expect_error(buf, client_frame(buf, 0x81, "\xc3", 1, true), 1007);         /* truncated */
    expect_error(buf, client_frame(buf, 0x88, "\x03", 1, true), 1002);         /* close len 1 */
    expect_error(buf, client_frame(buf, 0x88, "\x03\xed", 2, true), 1002);     /* code 1005 */
    expect_error(buf, client_frame(buf, 0x88, "\x03\xe8\xff", 3, true), 1007); /* bad reason */
}

static void test_close_and_pong(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = client_frame(buf, 0x8A, "", 0, true);
    n += client_frame(buf + n, 0x88,
                      "\x03\xe8"
                      "bye",
                      5, true);
    gd_wsparse p;
    gd_wsparse_init(&p, 100);
    events e;
    feed_all(&p, buf, n, 1, &e);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.ev[0], GD_WS_EV_PONG);
    assert_int_equal(e.ev[1], GD_WS_EV_CLOSE);
    assert_int_equal(e.code, 1000);
    assert_string_equal(e.text[1], "bye");
    gd_wsparse_free(&p);
    gd_wsparse_init(&p, 100);
    feed_all(&p, buf, client_frame(buf, 0x88, "", 0, true), 3, &e);
    assert_int_equal(e.ev[0], GD_WS_EV_CLOSE);
    assert_int_equal(e.code, 1005);
    gd_wsparse_free(&p);
}

static void test_too_large_is_dropped_and_the_stream_goes_on(void **state)
{
    (void)state;
    size_t big = 70000;
    uint8_t *payload = malloc(big), *buf = malloc(big + 64);
    memset(payload, 'x', big);
    size_t n = client_frame(buf, 0x81, payload, big, true);
    n += client_frame(buf + n, 0x81, "ok", 2, true);
    gd_wsparse p;
    gd_wsparse_init(&p, 65536);
    events e;
    feed_all(&p, buf, n, 1000, &e);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.ev[0], GD_WS_EV_TOO_LARGE);
    assert_int_equal(e.ev[1], GD_WS_EV_TEXT);
    assert_string_equal(e.text[1], "ok");
    gd_wsparse_free(&p);
    free(payload);
    free(buf);
}

static void test_writers_and_accept_key(void **state)
{
    (void)state;
    uint8_t h[10];
    assert_int_equal(gd_ws_frame_header(h, 1, 5), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 5);
    assert_int_equal(gd_ws_frame_header(h, 1, 300), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(gd_ws_frame_header(h, 2, 70000), 10);
    assert_int_equal(h[0], 0x82);
    uint8_t c[127];
    size_t n = gd_ws_close_frame(c, 1012, "server restart");
    assert_int_equal(n, 2 + 2 + 14);
    assert_int_equal(c[0], 0x88);
    assert_int_equal((c[2] << 8) | c[3], 1012);
    char key[29];
    gd_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, key); /* RFC 6455 §1.3 */
    assert_string_equal(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_true(gd_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    assert_false(gd_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    assert_false(gd_ws_key_valid("dGhlIHNhbXBsZSBub25j!Q==", 24));
    assert_false(gd_ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24)); /* non-zero padding bits */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_in_any_split),
        cmocka_unit_test(test_fragments_with_ping_between),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_close_and_pong),
        cmocka_unit_test(test_too_large_is_dropped_and_the_stream_goes_on),
        cmocka_unit_test(test_writers_and_accept_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
