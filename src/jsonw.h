/*
 * jsonw — a growable byte buffer and a JSON writer that formats exactly like
 * JavaScript's JSON.stringify: shortest round-trip numbers (ECMAScript
 * Number::toString), NaN/Infinity as null, JS string escaping, object keys in
 * insertion order. Free-standing: depends only on libc and jansson's json_t
 * (for writing parsed values back verbatim). Any thread; a gd_buf is owned by
 * whoever declared it. On allocation failure the buffer sets `oom` and
 * ignores further writes, so callers check once at the end.
 */
#ifndef GD_JSONW_H
#define GD_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

typedef struct gd_buf {
    char *p; /* NUL-terminated when len > 0; owned */
    size_t len;
    size_t cap;
    bool oom;
} gd_buf;

void gd_buf_init(gd_buf *b);
void gd_buf_free(gd_buf *b);
void gd_buf_reset(gd_buf *b);
void gd_buf_put(gd_buf *b, const char *s, size_t n);
void gd_buf_puts(gd_buf *b, const char *s);
void gd_buf_putc(gd_buf *b, char c);
void gd_buf_printf(gd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a decimal integer (no printf on the hot path). */
void gd_buf_putint(gd_buf *b, long long v);
/* Hands the bytes to the caller (free with free()); the buffer is reset. */
char *gd_buf_steal(gd_buf *b, size_t *len);

/* Writes v as ECMAScript Number::toString would, or null for NaN/Infinity. */
void gd_json_num(gd_buf *b, double v);
/* Writes a UTF-8 string as a JSON string literal with JSON.stringify escaping. */
void gd_json_str(gd_buf *b, const char *s);
/* Writes `"key":` */
void gd_json_key(gd_buf *b, const char *key);
/* Writes any jansson value compactly, keys in insertion order. */
void gd_json_value(gd_buf *b, const json_t *v);
/* Formats v into out (at least 32 bytes) like gd_json_num, returns length. */
int gd_js_number(char *out, size_t outlen, double v);

#endif
