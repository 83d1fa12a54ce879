/*
 * webfile — the rules of static file serving that need no I/O: which request
 * paths are acceptable and what file they name, a file's MIME type and
 * whether it is worth compressing, whether its name is content-hashed (so
 * that it may be cached for ever), which content codings a client accepts,
 * and If-None-Match matching. Free-standing (no server headers), pure, and
 * callable from any thread; static.c applies these rules on its worker.
 */
#ifndef GD_WEBFILE_H
#define GD_WEBFILE_H

#include <stdbool.h>
#include <stddef.h>

/* Content codings, as bits of gd_webfile_accepted()'s result. */
enum {
    GD_ENC_GZIP = 1,
    GD_ENC_BR = 2,
    GD_ENC_PREFER_GZIP = 4, /* the client ranks gzip above br */
};

/* The MIME type of a file by its name's extension (case-insensitive), and
 * in *compressible whether it is text that compresses well (html, js, css,
 * json, map, svg, txt, xml, webmanifest). Unknown extensions give
 * "application/octet-stream". Returns a static string. */
const char *gd_webfile_mime(const char *name, bool *compressible);

/* Turns a request path, as libwebsockets hands it over (already
 * percent-decoded, "//" collapsed), into a path relative to the web root,
 * written to rel (cap bytes, NUL-terminated, no leading or trailing '/';
 * "" for the root). Refuses what must never reach the file system:
 * -EINVAL for a path that does not start with '/', a "." or ".." segment,
 * a backslash or a control byte (traversal, encoded or not, NUL included);
 * -EACCES for a hidden segment (starting with '.', other than
 * ".well-known"); -ENAMETOOLONG when rel does not fit. 0 on success. */
int gd_webfile_rel_path(const char *uri, char *rel, size_t cap);

/* True when the last segment of rel has no '.': the path names a route of
 * a single-page app, not a file, and a miss falls back to index.html. */
bool gd_webfile_is_route(const char *rel);

/* True when the file name (the part after the last '/') is content-hashed,
 * so its content can never change under that name. The rule: the part
 * before the first '.' ends in '-' followed by a hash, or one of the
 * '.'-separated parts between the first and the last is a hash. A hash is
 * 8 to 64 letters, digits and '_' (when exactly 8 long it may also hold
 * '-', as Vite's and Rollup's base64url hashes do) that mixes digits with
 * letters, or upper- with lower-case letters. So index-mQcq3Hx1.js,
 * vendor-D_4z-Xq1.css, index-mQcq3Hx1.js.map and main.3f2a1b9c.js are
 * hashed; app-settings.js, logo.png, C4.mp3 and app.20240101.js are not. */
bool gd_webfile_is_hashed(const char *rel);

/* Parses an Accept-Encoding header (NULL or "" for none): the GD_ENC_* bits
 * of the codings it accepts with a q-value above 0 (explicitly, or through
 * "*"), plus GD_ENC_PREFER_GZIP when gzip's q-value is above br's. */
unsigned gd_webfile_accepted(const char *accept_encoding);

/* True when an If-None-Match header value matches etag (a quoted entity
 * tag, as sent in ETag): "*", or any tag of its comma-separated list,
 * compared weakly (a W/ prefix is ignored). */
bool gd_webfile_etag_match(const char *if_none_match, const char *etag);

#endif
