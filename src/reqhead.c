/*
 * reqhead — see reqhead.h. Two passes: find the empty line that ends the
 * head (so an incomplete head is never half-judged), then walk its lines.
 */
#include "reqhead.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static int fail(gd_reqhead *h, int status, const char *why)
{
    h->status = status;
    h->error = why;
    return -EINVAL;
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool span_is(gd_span s, const char *name)
{
    return s.len == strlen(name) && strncasecmp(s.p, name, s.len) == 0;
}

bool gd_reqhead_list_has(gd_span v, const char *token)
{
    size_t tl = strlen(token);
    const char *p = v.p, *end = v.p + v.len;
    while (p && p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl && strncasecmp(p, token, tl) == 0) return true;
        p = q;
    }
    return false;
}

/* Returns the length of the line at p (without its terminator) and sets
 * *next past the terminator; lines end in "\r\n" or "\n". */
static size_t line_at(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *next = nl + 1;
    size_t n = (size_t)(nl - p);
    return n && p[n - 1] == '\r' ? n - 1 : n;
}

static int parse_request_line(const char *p, size_t n, gd_reqhead *h)
{
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p) return fail(h, 400, "malformed request line");
    size_t ml = (size_t)(sp1 - p);
    if (ml >= sizeof(h->method)) return fail(h, 400, "method too long");
    for (size_t i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)p[i])) return fail(h, 400, "malformed method");
    memcpy(h->method, p, ml);
    h->method[ml] = '\0';
    const char *t = sp1 + 1, *end = p + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t) return fail(h, 400, "malformed request line");
    for (const char *c = t; c < sp2; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) return fail(h, 400, "malformed target");
    h->target = (gd_span){t, (size_t)(sp2 - t)};
    const char *v = sp2 + 1;
    bool digits = (size_t)(end - v) == 8 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
                  v[7] >= '0' && v[7] <= '9';
    if (!digits || strncmp(v, "HTTP/", 5) != 0) return fail(h, 400, "malformed request line");
    if (v[5] != '1') return fail(h, 505, "HTTP version not supported");
    h->minor = v[7] - '0';
    return 0;
}

static int parse_content_length(gd_span v, gd_reqhead *h)
{
    if (h->content_length >= 0) return fail(h, 400, "duplicate Content-Length");
    if (v.len == 0) return fail(h, 400, "invalid Content-Length");
    long long n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return fail(h, 400, "invalid Content-Length");
        if (n > 100000000000000LL) return fail(h, 400, "invalid Content-Length");
        n = n * 10 + (v.p[i] - '0');
    }
    h->content_length = n;
    return 0;
}

int gd_reqhead_parse(const char *buf, size_t len, size_t max_head, gd_reqhead *h)
{
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    size_t lim = len < max_head ? len : max_head;
    /* Skip empty lines before the request line. */
    size_t start = 0;
    while (start < lim && (buf[start] == '\r' || buf[start] == '\n'))
        start++;
    /* Find the empty line that ends the head. */
    size_t head_end = 0;
    for (size_t i = start; i < lim; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < lim && buf[i + 1] == '\n') {
            head_end = i + 2;
            break;
        }
        if (i + 2 < lim && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            head_end = i + 3;
            break;
        }
    }
    if (!head_end) return len >= max_head ? fail(h, 431, "request head too large") : -EAGAIN;
    h->head_len = head_end;

    const char *p = buf + start, *end = buf + head_end, *next;
    size_t n = line_at(p, end, &next);
    int rc = parse_request_line(p, n, h);
    if (rc) return rc;
    bool has_te = false;
    int fields = 0;
    for (p = next; p < end; p = next) {
        n = line_at(p, end, &next);
        if (n == 0) break; /* the empty line */
        if (++fields > GD_REQHEAD_MAX_FIELDS) return fail(h, 431, "too many header fields");
        if (*p == ' ' || *p == '\t') return fail(h, 400, "obsolete line folding");
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p) return fail(h, 400, "malformed header field");
        for (const char *c = p; c < colon; c++)
            if (!is_tchar((unsigned char)*c)) return fail(h, 400, "malformed header field name");
        const char *v = colon + 1, *ve = p + n;
        for (const char *c = v; c < ve; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
                return fail(h, 400, "control character in header field");
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        gd_span name = {p, (size_t)(colon - p)}, value = {v, (size_t)(ve - v)};
        if (span_is(name, "content-length")) {
            if ((rc = parse_content_length(value, h))) return rc;
        } else if (span_is(name, "transfer-encoding")) {
            has_te = true;
        } else if (span_is(name, "host")) {
            if (h->has_host) return fail(h, 400, "duplicate Host");
            h->has_host = true;
        } else if (span_is(name, "upgrade")) {
            h->upgrade_websocket |= gd_reqhead_list_has(value, "websocket");
        } else if (span_is(name, "connection")) {
            h->connection_upgrade |= gd_reqhead_list_has(value, "upgrade");
        } else if (span_is(name, "sec-websocket-key")) {
            if (h->ws_key.p) return fail(h, 400, "duplicate Sec-WebSocket-Key");
            h->ws_key = value;
        } else if (span_is(name, "sec-websocket-version")) {
            h->ws_version = value;
        } else if (span_is(name, "x-forwarded-for")) {
            h->xff = value;
        } else if (span_is(name, "content-type")) {
            h->content_type = value;
        } else if (span_is(name, "if-match")) {
            h->if_match = value;
        } else if (span_is(name, "accept-encoding")) {
            h->accept_encoding = value;
        } else if (span_is(name, "if-none-match")) {
            h->if_none_match = value;
        } else if (span_is(name, "if-modified-since")) {
            h->if_modified_since = value;
        }
    }
    if (has_te && h->content_length >= 0)
        return fail(h, 400, "both Transfer-Encoding and Content-Length");
    if (has_te) return fail(h, 501, "Transfer-Encoding not supported");
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

bool gd_percent_decode(const char *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(p[i + 1]) : -1, lo = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (hi < 0 || lo < 0) return false;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if ((unsigned char)ch < 0x20 || ch == 0x7f || o + 1 >= outlen) return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}
