/*
 * log — one logging macro with levels. The level is checked before any
 * formatting; lines go to stderr as "<time> <LEVEL> <message>". Any thread
 * (stdio locks the stream per call).
 */
#ifndef GD_LOG_H
#define GD_LOG_H

enum { GD_LOG_ERROR = 0, GD_LOG_WARN = 1, GD_LOG_INFO = 2, GD_LOG_DEBUG = 3 };

extern int gd_log_level;

void gd_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int gd_log_level_from_name(const char *name); /* -1 if unknown */

#define gd_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= gd_log_level) gd_log_write((level), __VA_ARGS__);                           \
    } while (0)

#endif
