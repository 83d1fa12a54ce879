/*
 * log — leveled, structured logging to stderr. Any thread; each line leaves
 * in one write. The level is checked before anything is formatted.
 *
 * An event names what happened, the session it concerns (or NULL) and one
 * key per printf conversion of its message; the compiler checks the format
 * against the arguments:
 *
 *   gd_event(GD_LOG_INFO, "player_joined", s->id, "player,name,players",
 *            "player %s (%s) joined, %d connected", id, name, n);
 *
 * gd_log_format picks the rendering:
 *
 *   text  2025-01-02T03:04:05.678Z info  session <id>: player 1f.. (Red Fox) joined, 2 connected
 *   json  {"time":"2025-01-02T03:04:05.678Z","level":"info","event":"player_joined",
 *          "session":"<id>","msg":"player 1f.. (Red Fox) joined, 2 connected",
 *          "player":"1f..","name":"Red Fox","players":2}
 *
 * In JSON, integer conversions (%d %i %u) become numbers, floating ones
 * numbers (null when not finite), everything else strings. An empty name in
 * the list keeps that value in the message only; keys NULL makes no fields;
 * a conversion without a key becomes "arg<N>" (tests/e2e/test_log_json.py
 * checks every call site's keys against its conversions). Strings are escaped and invalid UTF-8
 * becomes U+FFFD, so each line is one valid JSON object whatever the
 * arguments; a line that does not fit the line buffer is cut at a value
 * boundary and says "truncated":true.
 *
 * gd_log(level, fmt, ...) is a plain line: event "message" in JSON, with the
 * session id taken from "session <uuid>:" at the start of the text (and
 * removed from msg) or after a space.
 */
#ifndef GD_LOG_H
#define GD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { GD_LOG_ERROR = 0, GD_LOG_WARN = 1, GD_LOG_INFO = 2, GD_LOG_DEBUG = 3 };
enum { GD_LOG_TEXT = 0, GD_LOG_JSON = 1 };

/* Set once at startup (main thread), read by every thread afterwards. */
extern int gd_log_level;
extern int gd_log_format;

int gd_log_level_from_name(const char *name);  /* -1 if unknown */
int gd_log_format_from_name(const char *name); /* -1 if unknown */

void gd_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gd_log_event(int level, const char *event, const char *session, const char *keys,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define gd_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= gd_log_level) gd_log_write((level), __VA_ARGS__);                           \
    } while (0)

#define gd_event(level, event, session, keys, ...)                                                 \
    do {                                                                                           \
        if ((level) <= gd_log_level)                                                               \
            gd_log_event((level), (event), (session), (keys), __VA_ARGS__);                        \
    } while (0)

/*
 * A command-line error, written to `out` whatever the level: "<prog>: <message>"
 * in text mode (no time: it is for the person at the terminal), a JSON event
 * of level error in json mode.
 */
void gd_log_usage(FILE *out, const char *prog, const char *event, const char *keys, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/*
 * A URL fit for a log line: whatever lies between "//" (or the scheme's
 * ':') and the last '@' becomes "user:***" (or "***" when there is no
 * plain user name), and query values whose key holds "pass" or an escape
 * become "***"; it hides more than a URL parser would take, never less.
 * Anything else is copied. Any thread.
 */
void gd_log_redact_url(char *out, size_t cap, const char *url);

/*
 * Renders one line without its newline into out[cap] (cap >= 128) and
 * returns its length. event NULL renders a plain gd_log line; prog non-NULL
 * renders a command-line error (see gd_log_usage). For the writers above
 * and the unit tests; any thread.
 */
size_t gd_log_render(char *out, size_t cap, int format, int64_t time_ms, int level,
                     const char *prog, const char *event, const char *session, const char *keys,
                     const char *fmt, va_list ap) __attribute__((format(printf, 10, 0)));

#endif
