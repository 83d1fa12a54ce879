/*
 * reqhead — a strict parser for the head of one HTTP/1.x request (request
 * line and header fields, up to the empty line). grooved reads every
 * request head itself before anything else sees the connection, so the
 * rules that keep requests unambiguous live here in one place:
 *
 *   - exactly one Content-Length, all digits (duplicates, lists, signs or
 *     junk are 400: two parsers could otherwise disagree where the body
 *     ends and read part of it as a second request);
 *   - Transfer-Encoding is not supported for requests (501), and with a
 *     Content-Length it is 400;
 *   - no whitespace between a field name and its colon, no obsolete line
 *     folding, no control characters (400);
 *   - HTTP/1.0 and HTTP/1.1 only (505); at most `max_head` bytes and 100
 *     fields (431).
 *
 * Lines may end in CRLF or a bare LF; empty lines before the request line
 * are skipped (RFC 9112 §2.2). Free-standing, any thread; the result points
 * into the caller's buffer. Also the one percent-decoder (request targets,
 * query values, the Redis URL's user information).
 */
#ifndef GD_REQHEAD_H
#define GD_REQHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define GD_REQHEAD_MAX_FIELDS 100

typedef struct gd_span {
    const char *p; /* into the parsed buffer; NULL when absent */
    size_t len;
} gd_span;

typedef struct gd_reqhead {
    size_t head_len; /* bytes of the head, its final empty line included */
    char method[16];
    gd_span target;
    int minor;                /* HTTP/1.<minor> */
    long long content_length; /* -1 when absent */
    bool upgrade_websocket;   /* Upgrade lists the token "websocket" */
    bool connection_upgrade;  /* Connection lists the token "upgrade" */
    bool has_host;
    gd_span ws_key, ws_version;
    gd_span xff; /* the last X-Forwarded-For field, whole */
    gd_span content_type, if_match;
    gd_span accept_encoding, if_none_match, if_modified_since;

    int status;        /* on failure: the HTTP status to answer */
    const char *error; /* on failure: a short reason (static) */
} gd_reqhead;

/*
 * Parses buf[0..len). Returns 0 with *h filled when a whole head is there,
 * -EAGAIN when more bytes are needed (and fewer than max_head have come),
 * or -EINVAL with h->status (400, 431, 501, 505) and h->error set.
 */
int gd_reqhead_parse(const char *buf, size_t len, size_t max_head, gd_reqhead *h);

/* Case-insensitive: does the comma-separated list `v` contain `token`? */
bool gd_reqhead_list_has(gd_span v, const char *token);

/* Copies p[0..n) into out (outlen bytes, NUL-terminated) with %XX escapes
 * decoded: a request path, a query value, a URL's user information. False
 * when it does not fit or an escape is malformed or decodes to a control
 * character. */
bool gd_percent_decode(const char *p, size_t n, char *out, size_t outlen);

#endif
