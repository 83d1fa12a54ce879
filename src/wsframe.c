/*
 * wsframe — see wsframe.h. SHA-1 (FIPS 180-4) is here only for the
 * handshake's accept key.
 */
#include "wsframe.h"

#include <string.h>

static gd_ws_event fail(gd_wsparse *p, uint16_t code, const char *why)
{
    p->failed = true;
    p->close_code = code;
    p->error = why;
    return GD_WS_EV_ERROR;
}

void gd_wsparse_init(gd_wsparse *p, size_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
    gd_buf_init(&p->msg);
}

void gd_wsparse_free(gd_wsparse *p)
{
    gd_buf_free(&p->msg);
}

/* Feeds text bytes to the incremental UTF-8 validator; false on an
 * invalid sequence (overlong forms, surrogates and values over U+10FFFF
 * included). */
static bool utf8_feed(gd_wsparse *p, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (p->utf8_need) {
            if ((c & 0xC0) != 0x80) return false;
            p->utf8_cp = (p->utf8_cp << 6) | (c & 0x3F);
            if (--p->utf8_need == 0 && (p->utf8_cp < p->utf8_min || p->utf8_cp > 0x10FFFF ||
                                        (p->utf8_cp >= 0xD800 && p->utf8_cp <= 0xDFFF)))
                return false;
            continue;
        }
        if (c < 0x80) continue;
        if ((c & 0xE0) == 0xC0)
            p->utf8_need = 1, p->utf8_cp = c & 0x1F, p->utf8_min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            p->utf8_need = 2, p->utf8_cp = c & 0x0F, p->utf8_min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            p->utf8_need = 3, p->utf8_cp = c & 0x07, p->utf8_min = 0x10000;
        else
            return false;
    }
    return true;
}

static bool close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* The header is complete: validate it and enter the payload. */
static gd_ws_event start_frame(gd_wsparse *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    p->fin = b0 & 0x80;
    p->opcode = b0 & 0x0F;
    if (b0 & 0x70) return fail(p, 1002, "reserved bits set");
    if (!(b1 & 0x80)) return fail(p, 1002, "client frame not masked");
    uint64_t len = b1 & 0x7F;
    int off = 2;
    if (len == 126) {
        len = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
        off = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p->hdr[2 + i];
        if (len >> 63) return fail(p, 1002, "frame length out of range");
        off = 10;
    }
    memcpy(p->mask, p->hdr + off, 4);
    p->mask_pos = 0;
    p->remaining = len;
    if (p->opcode >= 8) {
        if (p->opcode > 10) return fail(p, 1002, "unknown opcode");
        if (!p->fin) return fail(p, 1002, "fragmented control frame");
        if (len > 125) return fail(p, 1002, "control frame too long");
        p->ctl_len = 0;
    } else if (p->opcode == 0) {
        if (!p->msg_opcode) return fail(p, 1002, "continuation outside a message");
    } else if (p->opcode == 1 || p->opcode == 2) {
        if (p->msg_opcode) return fail(p, 1002, "new message inside a fragmented one");
        p->msg_opcode = p->opcode;
        p->msg_discard = false;
        p->utf8_need = 0;
        gd_buf_reset(&p->msg);
    } else {
        return fail(p, 1002, "unknown opcode");
    }
    p->in_payload = true;
    return GD_WS_EV_NONE;
}

/* The payload of the current frame has been read completely. */
static gd_ws_event end_frame(gd_wsparse *p)
{
    p->in_payload = false;
    p->hdr_len = 0;
    if (p->opcode >= 8) {
        if (p->opcode == 9) return GD_WS_EV_PING;
        if (p->opcode == 10) return GD_WS_EV_PONG;
        if (p->ctl_len == 1) return fail(p, 1002, "malformed close payload");
        p->close_code = 1005;
        if (p->ctl_len >= 2) {
            p->close_code = (uint16_t)((p->ctl[0] << 8) | p->ctl[1]);
            if (!close_code_valid(p->close_code)) return fail(p, 1002, "invalid close code");
            uint32_t need = p->utf8_need; /* a close may arrive mid-message */
            p->utf8_need = 0;
            bool ok = utf8_feed(p, p->ctl + 2, p->ctl_len - 2) && p->utf8_need == 0;
            p->utf8_need = need;
            if (!ok) return fail(p, 1007, "close reason not UTF-8");
            memmove(p->ctl, p->ctl + 2, p->ctl_len - 2);
            p->ctl_len -= 2;
        }
        return GD_WS_EV_CLOSE;
    }
    if (!p->fin) return GD_WS_EV_NONE;
    int op = p->msg_opcode;
    p->msg_opcode = 0;
    if (p->msg_discard) {
        p->msg_discard = false;
        return GD_WS_EV_TOO_LARGE;
    }
    if (op == 1 && p->utf8_need) return fail(p, 1007, "text message not UTF-8");
    if (p->msg.oom) return GD_WS_EV_TOO_LARGE;
    return op == 1 ? GD_WS_EV_TEXT : GD_WS_EV_BINARY;
}

gd_ws_event gd_wsparse_feed(gd_wsparse *p, const uint8_t *in, size_t len, size_t *used)
{
    size_t i = 0;
    gd_ws_event ev = GD_WS_EV_NONE;
    if (p->failed) {
        *used = len; /* nothing after an error counts */
        return GD_WS_EV_NONE;
    }
    while (i < len || (p->in_payload && p->remaining == 0)) {
        if (!p->in_payload) {
            /* Header bytes, one at a time until its length is known. */
            p->hdr[p->hdr_len++] = in[i++];
            int need = 2;
            if (p->hdr_len >= 2) {
                uint8_t l = p->hdr[1] & 0x7F;
                need = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + ((p->hdr[1] & 0x80) ? 4 : 0);
            }
            if (p->hdr_len < need) continue;
            if ((ev = start_frame(p)) != GD_WS_EV_NONE) break;
            if (p->remaining == 0 && (ev = end_frame(p)) != GD_WS_EV_NONE) break;
            continue;
        }
        size_t n = len - i;
        if (n > p->remaining) n = (size_t)p->remaining;
        uint8_t buf[4096];
        if (n > sizeof(buf)) n = sizeof(buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = in[i + k] ^ p->mask[(p->mask_pos + k) & 3];
        p->mask_pos = (p->mask_pos + (unsigned)n) & 3;
        i += n;
        p->remaining -= n;
        if (p->opcode >= 8) {
            memcpy(p->ctl + p->ctl_len, buf, n);
            p->ctl_len += n;
        } else if (!p->msg_discard) {
            if (p->msg.len + n > p->max_message) {
                p->msg_discard = true;
                gd_buf_free(&p->msg);
            } else {
                if (p->msg_opcode == 1 && !utf8_feed(p, buf, n)) {
                    ev = fail(p, 1007, "text message not UTF-8");
                    break;
                }
                gd_buf_put(&p->msg, (const char *)buf, n);
            }
        }
        if (p->remaining == 0 && (ev = end_frame(p)) != GD_WS_EV_NONE) break;
    }
    *used = p->failed ? len : i;
    return ev;
}

size_t gd_ws_frame_header(uint8_t *out, int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t gd_ws_close_frame(uint8_t *out, uint16_t code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123) rl = 123;
    size_t h = gd_ws_frame_header(out, 8, 2 + rl);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (rl) memcpy(out + h + 2, reason, rl);
    return h + 2 + rl;
}

/* ---- handshake -------------------------------------------------------- */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64)
        sha1_block(h, data + i);
    uint8_t tail[128] = {0};
    size_t rest = len - i;
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    size_t tl = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int k = 0; k < 8; k++)
        tail[tl - 1 - k] = (uint8_t)(bits >> (8 * k));
    sha1_block(h, tail);
    if (tl == 128) sha1_block(h, tail + 64);
    for (int k = 0; k < 5; k++) {
        out[4 * k] = (uint8_t)(h[k] >> 24);
        out[4 * k + 1] = (uint8_t)(h[k] >> 16);
        out[4 * k + 2] = (uint8_t)(h[k] >> 8);
        out[4 * k + 3] = (uint8_t)h[k];
    }
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void gd_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t buf[128 + sizeof(guid)], dig[20];
    if (key_len > 128) key_len = 128;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, guid, sizeof(guid) - 1);
    sha1(buf, key_len + sizeof(guid) - 1, dig);
    char *o = out;
    for (int i = 0; i < 20; i += 3) {
        uint32_t v = (uint32_t)dig[i] << 16 | (i + 1 < 20 ? (uint32_t)dig[i + 1] << 8 : 0) |
                     (i + 2 < 20 ? dig[i + 2] : 0);
        *o++ = b64[(v >> 18) & 63];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < 20 ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < 20 ? b64[v & 63] : '=';
    }
    *o = '\0';
}

bool gd_ws_key_valid(const char *key, size_t key_len)
{
    /* 16 bytes encode as 22 base64 characters and "==". */
    if (key_len != 24 || key[22] != '=' || key[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (!strchr(b64, key[i]) || !key[i]) return false;
    /* The last character carries 2 bits of data: its low 4 bits are zero. */
    return ((strchr(b64, key[21]) - b64) & 15) == 0;
}
