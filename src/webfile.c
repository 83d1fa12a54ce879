/*
 * webfile — see webfile.h. Pure string rules; no I/O, no state.
 */
#include "webfile.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *ext, *type;
    bool compressible;
} mime_types[] = {
    {"html", "text/html; charset=utf-8", true},
    {"htm", "text/html; charset=utf-8", true},
    {"js", "text/javascript; charset=utf-8", true},
    {"mjs", "text/javascript; charset=utf-8", true},
    {"css", "text/css; charset=utf-8", true},
    {"json", "application/json", true},
    {"map", "application/json", true},
    {"svg", "image/svg+xml", true},
    {"txt", "text/plain; charset=utf-8", true},
    {"xml", "application/xml", true},
    {"webmanifest", "application/manifest+json", true},
    {"wasm", "application/wasm", false},
    {"png", "image/png", false},
    {"jpg", "image/jpeg", false},
    {"jpeg", "image/jpeg", false},
    {"gif", "image/gif", false},
    {"webp", "image/webp", false},
    {"avif", "image/avif", false},
    {"ico", "image/x-icon", false},
    {"mp3", "audio/mpeg", false},
    {"wav", "audio/wav", false},
    {"ogg", "audio/ogg", false},
    {"oga", "audio/ogg", false},
    {"opus", "audio/ogg", false},
    {"m4a", "audio/mp4", false},
    {"flac", "audio/flac", false},
    {"mp4", "video/mp4", false},
    {"webm", "video/webm", false},
    {"woff", "font/woff", false},
    {"woff2", "font/woff2", false},
    {"ttf", "font/ttf", false},
    {"otf", "font/otf", false},
    {"pdf", "application/pdf", false},
};

const char *gd_webfile_mime(const char *name, bool *compressible)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    *compressible = false;
    if (dot)
        for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
            if (strcasecmp(dot + 1, mime_types[i].ext) == 0) {
                *compressible = mime_types[i].compressible;
                return mime_types[i].type;
            }
    return "application/octet-stream";
}

int gd_webfile_rel_path(const char *uri, char *rel, size_t cap)
{
    if (!cap) return -ENAMETOOLONG;
    rel[0] = '\0';
    if (uri[0] != '/') return -EINVAL;
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\') return -EINVAL;
    size_t n = 0;
    const char *p = uri;
    while (*p) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (!len) break;
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return -EINVAL;
        if (seg[0] == '.' && !(len == 11 && memcmp(seg, ".well-known", 11) == 0)) return -EACCES;
        if (n + (n ? 1 : 0) + len + 1 > cap) return -ENAMETOOLONG;
        if (n) rel[n++] = '/';
        memcpy(rel + n, seg, len);
        n += len;
        rel[n] = '\0';
    }
    return 0;
}

bool gd_webfile_is_route(const char *rel)
{
    const char *slash = strrchr(rel, '/');
    return strchr(slash ? slash + 1 : rel, '.') == NULL;
}

/* A hash per the rule in webfile.h: s[0..len). */
static bool is_hash(const char *s, size_t len)
{
    if (len < 8 || len > 64) return false;
    bool digit = false, upper = false, lower = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isdigit(ch))
            digit = true;
        else if (isupper(ch))
            upper = true;
        else if (islower(ch))
            lower = true;
        else if (!(ch == '_' || (ch == '-' && len == 8)))
            return false;
    }
    return (digit && (upper || lower)) || (upper && lower);
}

bool gd_webfile_is_hashed(const char *rel)
{
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    const char *first_dot = strchr(base, '.');
    if (!first_dot) return false;
    /* name-HASH.ext: try each '-' of the stem, since the hash may hold '-'. */
    for (const char *d = base; d < first_dot; d++)
        if (*d == '-' && d > base && is_hash(d + 1, (size_t)(first_dot - d - 1))) return true;
    /* name.HASH.ext: a whole middle part. */
    const char *last_dot = strrchr(base, '.');
    for (const char *seg = first_dot + 1; seg <= last_dot;) {
        const char *end = strchr(seg, '.');
        if (!end || end > last_dot) break;
        if (is_hash(seg, (size_t)(end - seg))) return true;
        seg = end + 1;
    }
    return false;
}

/* The q-value of one Accept-Encoding element's parameters ("" → 1). */
static double qvalue(const char *params, size_t len)
{
    const char *q = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if ((params[i] == 'q' || params[i] == 'Q') &&
            (i == 0 || params[i - 1] == ';' || params[i - 1] == ' ')) {
            size_t j = i + 1;
            while (j < len && params[j] == ' ')
                j++;
            if (j < len && params[j] == '=') {
                q = params + j + 1;
                break;
            }
        }
    if (!q) return 1.0;
    char buf[16];
    size_t n = (size_t)(params + len - q);
    if (n >= sizeof(buf)) n = sizeof(buf) - 1;
    memcpy(buf, q, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    return end == buf ? 0.0 : v;
}

unsigned gd_webfile_accepted(const char *ae)
{
    double q_gzip = -1, q_br = -1, q_any = -1;
    if (!ae) return 0;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t tlen = (size_t)(p - tok);
        const char *params = p;
        while (*p && *p != ',')
            p++;
        if (!tlen) continue;
        double q = qvalue(params, (size_t)(p - params));
        if (tlen == 4 && strncasecmp(tok, "gzip", 4) == 0)
            q_gzip = q;
        else if (tlen == 6 && strncasecmp(tok, "x-gzip", 6) == 0 && q_gzip < 0)
            q_gzip = q;
        else if (tlen == 2 && strncasecmp(tok, "br", 2) == 0)
            q_br = q;
        else if (tlen == 1 && *tok == '*')
            q_any = q;
    }
    if (q_gzip < 0) q_gzip = q_any;
    if (q_br < 0) q_br = q_any;
    unsigned out = 0;
    if (q_gzip > 0) out |= GD_ENC_GZIP;
    if (q_br > 0) out |= GD_ENC_BR;
    if (q_gzip > 0 && q_gzip > q_br) out |= GD_ENC_PREFER_GZIP;
    return out;
}

bool gd_webfile_etag_match(const char *inm, const char *etag)
{
    if (!inm || !etag) return false;
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) break;
        if (*p == '*') return true;
        if (p[0] == 'W' && p[1] == '/') p += 2;
        if (*p != '"') { /* malformed: skip to the next element */
            while (*p && *p != ',')
                p++;
            continue;
        }
        const char *close = strchr(p + 1, '"');
        if (!close) return false;
        size_t len = (size_t)(close - p) + 1;
        if (len == elen && memcmp(p, etag, len) == 0) return true;
        p = close + 1;
    }
    return false;
}
