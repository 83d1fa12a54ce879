/*
 * fuzz_net — libFuzzer target for the parsers that see raw network bytes
 * before anything else: the request head parser (reqhead), the WebSocket
 * frame parser (wsframe, fed in pieces whose sizes the input chooses), and
 * client addresses (an X-Forwarded-For value). Besides sanitizer reports,
 * broken invariants abort: a head longer than its input, a message over the
 * limit, a text message that is not UTF-8, events after an error. Built
 * with clang by `make fuzz`; fuzz_replay.c replays tests/fuzz/corpus-net in
 * the normal test run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "reqhead.h"
#include "wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (c >= 0x80 && ((c & 0xF8) == 0xF8 || (c & 0xC0) == 0x80)) return false;
        if (i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

static void fuzz_head(const uint8_t *data, size_t size)
{
    gd_reqhead h;
    int rc = gd_reqhead_parse((const char *)data, size, 8192, &h);
    if (rc == 0) {
        if (h.head_len == 0 || h.head_len > size || h.head_len > 8192) abort();
        if (h.target.p < (const char *)data ||
            h.target.p + h.target.len > (const char *)data + h.head_len)
            abort();
        if (h.content_length < -1) abort();
    } else if (rc == -22 && (h.status < 400 || h.status > 505 || !h.error)) {
        abort();
    }
}

static void fuzz_frames(const uint8_t *data, size_t size)
{
    gd_wsparse p;
    gd_wsparse_init(&p, 1024);
    size_t step = size ? (size_t)(data[0] % 13) + 1 : 1;
    bool failed = false;
    for (size_t off = 0; off < size;) {
        size_t piece = size - off < step ? size - off : step, used = 0;
        gd_ws_event ev = gd_wsparse_feed(&p, data + off, piece, &used);
        if (used > piece || (used == 0 && ev == GD_WS_EV_NONE && piece)) abort();
        off += used;
        if (failed && ev != GD_WS_EV_NONE) abort();
        if (ev == GD_WS_EV_ERROR) failed = true;
        if ((ev == GD_WS_EV_TEXT || ev == GD_WS_EV_BINARY) && p.msg.len > 1024) abort();
        if (ev == GD_WS_EV_TEXT && !utf8_ok((const uint8_t *)p.msg.p, p.msg.len)) abort();
        if ((ev == GD_WS_EV_PING || ev == GD_WS_EV_CLOSE) && p.ctl_len > 125) abort();
    }
    gd_wsparse_free(&p);
}

static void fuzz_addr(const uint8_t *data, size_t size)
{
    char text[256];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    gd_addr proxy, peer, out;
    gd_addr_parse("127.0.0.1", &proxy);
    peer = proxy;
    gd_addr_client(&peer, &proxy, text, &out);
    char back[64];
    gd_addr_format(&out, back, sizeof(back));
    gd_addr again;
    if (gd_addr_parse(back, &again) != 0 || !gd_addr_equal(&again, &out)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_head(data, size);
    fuzz_frames(data, size);
    fuzz_addr(data, size);
    return 0;
}
