/*
 * jsonw — see jsonw.h. Number formatting follows ECMA-262 Number::toString:
 * find the shortest digit string that round-trips (trying 1..17 significant
 * digits), then choose plain or exponent notation by the decimal exponent.
 */
#include "jsonw.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool buf_reserve(gd_buf *b, size_t extra);

void gd_buf_init(gd_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void gd_buf_free(gd_buf *b)
{
    if (!b) return;
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void gd_buf_reset(gd_buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p) b->p[0] = '\0';
}

static bool buf_reserve(gd_buf *b, size_t extra)
{
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void gd_buf_put(gd_buf *b, const char *s, size_t n)
{
    if (n == 0) return;
    if (!buf_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void gd_buf_puts(gd_buf *b, const char *s)
{
    gd_buf_put(b, s, strlen(s));
}

void gd_buf_putc(gd_buf *b, char c)
{
    gd_buf_put(b, &c, 1);
}

void gd_buf_printf(gd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *gd_buf_steal(gd_buf *b, size_t *len)
{
    if (!b->p) buf_reserve(b, 0);
    char *p = b->oom ? NULL : b->p;
    if (len) *len = b->len;
    if (b->oom) free(b->p);
    /* Whoever keeps the text keeps exactly its size, not the buffer's
     * growth slack (at least 256 bytes): thousands of short strings live
     * on in session state. */
    if (p) p[b->len] = '\0'; /* also when nothing was ever written */
    if (p && b->cap > b->len + 1) {

        char *q = realloc(p, b->len + 1);
        if (q) p = q;
    }
    memset(b, 0, sizeof(*b));
    return p;
}

int gd_js_number(char *out, size_t outlen, double v)
{
    if (isnan(v) || isinf(v)) return snprintf(out, outlen, "null");
    if (v == 0) return snprintf(out, outlen, "0"); /* also -0 */
    if (v == (double)(long long)v && v > -1e15 && v < 1e15) {
        /* Integers below 1e15 print as themselves: the common case, kept fast. */
        char tmp[24];
        int n = 0;
        long long x = (long long)v;
        unsigned long long u = x < 0 ? -(unsigned long long)x : (unsigned long long)x;
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        int len = 0;
        if (x < 0 && (size_t)len + 1 < outlen) out[len++] = '-';
        while (n && (size_t)len + 1 < outlen)
            out[len++] = tmp[--n];
        out[len] = '\0';
        return len;
    }

    /* Shortest round-trip significant digits. Any decimal of at most 15
     * significant digits round-trips through a double, so 15 digits either
     * round-trip (trailing zeros are then stripped below) or 16 or 17 do.
     * Subnormals carry fewer digits of precision: search them from 1. */
    char tmp[40];
    int prec;
    for (prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* tmp is [-]d[.ddd]e[+-]XX: split into digits and exponent. */
    const char *s = tmp;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    char digits[24];
    int k = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[k++] = *s;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int e = atoi(s + 1);
    int n = e + 1; /* position of the decimal point relative to the digits */

    char res[64];
    int r = 0;
    if (neg) res[r++] = '-';
    if (k <= n && n <= 21) {
        memcpy(res + r, digits, (size_t)k);
        r += k;
        for (int i = 0; i < n - k; i++)
            res[r++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(res + r, digits, (size_t)n);
        r += n;
        res[r++] = '.';
        memcpy(res + r, digits + n, (size_t)(k - n));
        r += k - n;
    } else if (-6 < n && n <= 0) {
        res[r++] = '0';
        res[r++] = '.';
        for (int i = 0; i < -n; i++)
            res[r++] = '0';
        memcpy(res + r, digits, (size_t)k);
        r += k;
    } else {
        res[r++] = digits[0];
        if (k > 1) {
            res[r++] = '.';
            memcpy(res + r, digits + 1, (size_t)(k - 1));
            r += k - 1;
        }
        r +=
            snprintf(res + r, sizeof(res) - (size_t)r, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    res[r] = '\0';
    return snprintf(out, outlen, "%s", res);
}

void gd_buf_putint(gd_buf *b, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[n++] = '-';
    if (!buf_reserve(b, (size_t)n)) return;
    while (n)
        b->p[b->len++] = tmp[--n];
    b->p[b->len] = '\0';
}

void gd_json_num(gd_buf *b, double v)
{
    char tmp[64];
    int n = gd_js_number(tmp, sizeof(tmp), v);
    gd_buf_put(b, tmp, (size_t)n);
}

void gd_json_str(gd_buf *b, const char *s)
{
    gd_buf_putc(b, '"');
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            if (c < 0x20) {
                snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
                esc = ubuf;
            }
        }
        if (esc) {
            gd_buf_put(b, run, (size_t)(s - run));
            gd_buf_puts(b, esc);
            run = s + 1;
        }
    }
    gd_buf_put(b, run, (size_t)(s - run));
    gd_buf_putc(b, '"');
}

void gd_json_key(gd_buf *b, const char *key)
{
    gd_json_str(b, key);
    gd_buf_putc(b, ':');
}

void gd_json_value(gd_buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        gd_buf_putc(b, '{');
        bool first = true;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            if (!first) gd_buf_putc(b, ',');
            first = false;
            gd_json_key(b, key);
            gd_json_value(b, val);
        }
        gd_buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY: {
        gd_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) gd_buf_putc(b, ',');
            gd_json_value(b, json_array_get(v, i));
        }
        gd_buf_putc(b, ']');
        break;
    }
    case JSON_STRING:
        gd_json_str(b, json_string_value(v));
        break;
    case JSON_INTEGER:
        gd_json_num(b, (double)json_integer_value(v));
        break;
    case JSON_REAL:
        gd_json_num(b, json_real_value(v));
        break;
    case JSON_TRUE:
        gd_buf_puts(b, "true");
        break;
    case JSON_FALSE:
        gd_buf_puts(b, "false");
        break;
    case JSON_NULL:
        gd_buf_puts(b, "null");
        break;
    }
}
