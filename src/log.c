/*
 * log — see log.h. Rendering works on caller-provided stack buffers only (no
 * allocation: it must work when memory is short), so any thread may log.
 * JSON values are taken from the same va_list as the message by walking the
 * printf format once more, conversion by conversion, with the argument type
 * each conversion implies.
 */
#include "log.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <wchar.h>

int gd_log_level = GD_LOG_INFO;
int gd_log_format = GD_LOG_TEXT;

#define LINE_BYTES 4096 /* one rendered line */
#define MSG_BYTES 1024  /* the human-readable message inside it */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int gd_log_level_from_name(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    return -1;
}

int gd_log_format_from_name(const char *name)
{
    if (strcasecmp(name, "text") == 0) return GD_LOG_TEXT;
    if (strcasecmp(name, "json") == 0) return GD_LOG_JSON;
    return -1;
}

/* ---- a bounded JSON writer ------------------------------------------------
 * `cap` leaves room for the closing `,"truncated":true}`: a value that does
 * not fit is cut (strings) or left out (the rest), and `cut` stops every
 * later write, so the object always closes after a complete value. */

typedef struct jout {
    char *p;
    size_t len, cap;
    bool cut;
} jout;

static const char closing_cut[] = ",\"truncated\":true}";

static bool fits(jout *o, size_t n)
{
    if (o->cut || o->len + n > o->cap) {
        o->cut = true;
        return false;
    }
    return true;
}

static void put_raw(jout *o, const char *s, size_t n)
{
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * Writes s[0..n) as a JSON string. Control characters are escaped, invalid
 * UTF-8 becomes \ufffd. When the rest does not fit, the string is closed
 * where it stands (never inside an escape or a character) and `cut` is set.
 */
static void put_str(jout *o, const char *s, size_t n)
{
    if (!fits(o, 2)) return;
    put_raw(o, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *piece = esc;
        size_t plen, adv = 1;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, plen = 2;
        } else if (c < 0x20) {
            static const char short_esc[] = "btn\0fr";
            if (c >= '\b' && c <= '\r' && short_esc[c - '\b'])
                esc[0] = '\\', esc[1] = short_esc[c - '\b'], plen = 2;
            else
                plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else if (c < 0x80) {
            piece = s + i, plen = 1;
        } else if ((adv = utf8_seq(u + i, n - i)) > 0) {
            piece = s + i, plen = adv;
        } else {
            piece = "\\ufffd", plen = 6, adv = 1;
        }
        if (o->len + plen + 1 > o->cap) { /* +1: the closing quote */
            o->cut = true;
            break;
        }
        put_raw(o, piece, plen);
        i += adv;
    }
    put_raw(o, "\"", 1); /* fits: reserved above */
}

static void put_key(jout *o, const char *key, size_t klen)
{
    put_raw(o, ",", 1);
    put_str(o, key, klen);
    put_raw(o, ":", 1);
}

/* `"key":"value"` — only if at least `"key":""` fits; the value may be cut. */
static void field_str(jout *o, const char *key, size_t klen, const char *v, size_t n)
{
    if (!fits(o, klen + 6)) return;
    put_key(o, key, klen);
    put_str(o, v, n);
}

/* `"key":<literal>` (a number or null) — whole or not at all. */
static void field_lit(jout *o, const char *key, size_t klen, const char *lit)
{
    size_t n = strlen(lit);
    if (!fits(o, klen + 4 + n)) return;
    put_key(o, key, klen);
    put_raw(o, lit, n);
}

/* ---- the printf walk ----------------------------------------------------- */

enum lenmod { LM_NONE, LM_HH, LM_H, LM_L, LM_LL, LM_J, LM_Z, LM_T, LM_BIGL };

/* Copies the next key of the comma-separated list into name; false when the
 * list is used up. */
static bool next_key(const char **keys, char *name, size_t cap)
{
    const char *k = *keys;
    if (!k) return false;
    const char *comma = strchr(k, ',');
    size_t n = comma ? (size_t)(comma - k) : strlen(k);
    if (n >= cap) n = cap - 1;
    memcpy(name, k, n);
    name[n] = '\0';
    *keys = comma ? comma + 1 : NULL;
    return true;
}

/*
 * Appends one field per conversion of fmt, named by keys, its value taken
 * from ap with the type the conversion implies — the same walk printf does,
 * so the arguments stay in step. Positional conversions ("%1$s") and unknown
 * ones end the walk (the message still has them).
 */
static void put_fields(jout *o, const char *keys, const char *fmt, va_list ap0)
{
    if (!keys) return; /* message only */
    va_list ap;
    va_copy(ap, ap0);
    const char *kp = *keys ? keys : NULL;
    int argi = 0;
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') continue;
        if (*++f == '%') continue;
        if (!*f) break; /* a lone '%' at the end */
        char spec[48];
        size_t sl = 0;
        spec[sl++] = '%';
        while (*f && strchr("-+ #0'", *f)) {
            if (sl < 12) spec[sl++] = *f;
            f++;
        }
        if (*f == '*') {
            sl += (size_t)snprintf(spec + sl, 12, "%d", va_arg(ap, int));
            f++;
        } else {
            while (isdigit((unsigned char)*f)) {
                if (sl < 24) spec[sl++] = *f;
                f++;
            }
        }
        int prec = -1;
        if (*f == '.') {
            f++;
            if (*f == '*') {
                prec = va_arg(ap, int);
                f++;
            } else {
                prec = 0;
                for (; isdigit((unsigned char)*f); f++)
                    if (prec < 100000) prec = prec * 10 + (*f - '0');
            }
            if (prec >= 0) sl += (size_t)snprintf(spec + sl, 12, ".%d", prec);
        }
        if (sl > 40) sl = 40; /* cannot happen (at most 35); keeps room for "ll", conv, NUL */
        if (*f == '$') break;
        enum lenmod lm = LM_NONE;
        if (f[0] == 'h' && f[1] == 'h')
            lm = LM_HH, f += 2;
        else if (f[0] == 'l' && f[1] == 'l')
            lm = LM_LL, f += 2;
        else if (*f == 'h')
            lm = LM_H, f++;
        else if (*f == 'l')
            lm = LM_L, f++;
        else if (*f == 'q')
            lm = LM_LL, f++;
        else if (*f == 'L')
            lm = LM_BIGL, f++;
        else if (*f == 'j')
            lm = LM_J, f++;
        else if (*f == 'z' || *f == 'Z')
            lm = LM_Z, f++;
        else if (*f == 't')
            lm = LM_T, f++;
        char conv = *f;
        if (conv == 'm') continue; /* strerror(errno): no argument */
        if (conv == 'n') {
            (void)va_arg(ap, void *);
            continue;
        }
        if (!conv || !strchr("diouxXcsfFeEgGaAp", conv)) break;

        char name[64], lit[64];
        bool named = next_key(&kp, name, sizeof(name));
        if (!named) snprintf(name, sizeof(name), "arg%d", argi);
        argi++;
        size_t klen = strlen(name);
        bool want = klen > 0;

        switch (conv) {
        case 'd':
        case 'i': {
            long long v;
            switch (lm) {
            case LM_HH:
                v = (signed char)va_arg(ap, int);
                break;
            case LM_H:
                v = (short)va_arg(ap, int);
                break;
            case LM_L:
                v = va_arg(ap, long);
                break;
            case LM_LL:
                v = va_arg(ap, long long);
                break;
            case LM_J:
                v = va_arg(ap, intmax_t);
                break;
            case LM_Z:
                v = va_arg(ap, ssize_t);
                break;
            case LM_T:
                v = va_arg(ap, ptrdiff_t);
                break;
            default:
                v = va_arg(ap, int);
                break;
            }
            snprintf(lit, sizeof(lit), "%lld", v);
            if (want) field_lit(o, name, klen, lit);
            break;
        }
        case 'o':
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v;
            switch (lm) {
            case LM_HH:
                v = (unsigned char)va_arg(ap, unsigned);
                break;
            case LM_H:
                v = (unsigned short)va_arg(ap, unsigned);
                break;
            case LM_L:
                v = va_arg(ap, unsigned long);
                break;
            case LM_LL:
                v = va_arg(ap, unsigned long long);
                break;
            case LM_J:
                v = va_arg(ap, uintmax_t);
                break;
            case LM_Z:
                v = va_arg(ap, size_t);
                break;
            case LM_T:
                v = (unsigned long long)va_arg(ap, ptrdiff_t);
                break;
            default:
                v = va_arg(ap, unsigned);
                break;
            }
            if (!want) break;
            if (conv == 'u') {
                snprintf(lit, sizeof(lit), "%llu", v);
                field_lit(o, name, klen, lit);
            } else { /* octal and hex keep their text form */
                spec[sl] = 'l', spec[sl + 1] = 'l', spec[sl + 2] = conv, spec[sl + 3] = '\0';
                int n = snprintf(lit, sizeof(lit), spec, v);
                size_t len = n < 0 ? 0 : (size_t)n < sizeof(lit) ? (size_t)n : sizeof(lit) - 1;
                field_str(o, name, klen, lit, len);
            }
            break;
        }
        case 'c': {
            int ch = lm == LM_L ? (int)va_arg(ap, wint_t) : va_arg(ap, int);
            char b = (char)(unsigned char)ch;
            if (want) field_str(o, name, klen, &b, 1);
            break;
        }
        case 's':
            if (lm == LM_L) { /* wide strings: not rendered as fields */
                (void)va_arg(ap, void *);
                if (want) field_lit(o, name, klen, "null");
            } else {
                const char *s = va_arg(ap, const char *);
                if (!want) break;
                if (!s)
                    field_lit(o, name, klen, "null");
                else
                    field_str(o, name, klen, s, prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s));
            }
            break;
        case 'p': {
            void *p = va_arg(ap, void *);
            snprintf(lit, sizeof(lit), "%p", p);
            if (want) field_str(o, name, klen, lit, strlen(lit));
            break;
        }
        default: { /* f F e E g G a A */
            double v = lm == LM_BIGL ? (double)va_arg(ap, long double) : va_arg(ap, double);
            if (!want) break;
            if (isfinite(v))
                snprintf(lit, sizeof(lit), "%.15g", v);
            else
                strcpy(lit, "null");
            field_lit(o, name, klen, lit);
            break;
        }
        }
    }
    va_end(ap);
}

/* ---- lines ---------------------------------------------------------------- */

static bool uuid_at(const char *p)
{
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') return false;
        } else if (!isxdigit((unsigned char)p[i])) {
            return false;
        }
    }
    return true;
}

/* The "session <uuid>:" of a plain line: at its start or after a space. */
static const char *find_session(const char *msg)
{
    for (const char *p = msg; (p = strstr(p, "session ")) != NULL; p++)
        if ((p == msg || p[-1] == ' ') && uuid_at(p + 8) && p[8 + 36] == ':') return p + 8;
    return NULL;
}

static void format_time(char out[64], int64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

size_t gd_log_render(char *out, size_t cap, int format, int64_t time_ms, int level,
                     const char *prog, const char *event, const char *session, const char *keys,
                     const char *fmt, va_list ap)
{
    char msg[MSG_BYTES], when[64];
    if (level < 0 || level > GD_LOG_DEBUG) level = GD_LOG_ERROR;
    va_list aq;
    va_copy(aq, ap);
    vsnprintf(msg, sizeof(msg), fmt, aq);
    va_end(aq);
    format_time(when, time_ms);

    const char *text = msg;
    char sid[37];
    if (!event && !session) { /* a plain line: find the session it names */
        const char *at = find_session(msg);
        if (at) {
            memcpy(sid, at, 36);
            sid[36] = '\0';
            session = sid;
            if (at == msg + 8) text = at + 37 + (at[37] == ' ');
        }
    }

    if (format != GD_LOG_JSON) {
        int n;
        if (prog)
            n = snprintf(out, cap, "%s: %s", prog, msg);
        else if (event && session)
            n = snprintf(out, cap, "%s %-5s session %s: %s", when, level_names[level], session,
                         msg);
        else
            n = snprintf(out, cap, "%s %-5s %s", when, level_names[level], msg);
        return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    }

    jout o = {out, 0, cap - sizeof(closing_cut), false};
    put_raw(&o, "{\"time\":\"", 9);
    put_raw(&o, when, strlen(when));
    put_raw(&o, "\",\"level\":\"", 11);
    put_raw(&o, level_names[level], strlen(level_names[level]));
    put_raw(&o, "\"", 1);
    const char *ev = event ? event : "message";
    field_str(&o, "event", 5, ev, strlen(ev));
    if (session)
        field_str(&o, "session", 7, session, strlen(session));
    else
        field_lit(&o, "session", 7, "null");
    field_str(&o, "msg", 3, text, strlen(text));
    if (event) put_fields(&o, keys, fmt, ap);
    if (o.cut) {
        memcpy(o.p + o.len, closing_cut, sizeof(closing_cut)); /* with its NUL */
        o.len += sizeof(closing_cut) - 1;
    } else {
        o.p[o.len++] = '}';
        o.p[o.len] = '\0';
    }
    return o.len;
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void emit(FILE *f, char *line, size_t n)
{
    line[n] = '\n';
    fwrite(line, 1, n + 1, f);
}

void gd_log_write(int level, const char *fmt, ...)
{
    char line[LINE_BYTES + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t n = gd_log_render(line, LINE_BYTES, gd_log_format, now_ms(), level, NULL, NULL, NULL,
                             NULL, fmt, ap);
    va_end(ap);
    emit(stderr, line, n);
}

void gd_log_event(int level, const char *event, const char *session, const char *keys,
                  const char *fmt, ...)
{
    char line[LINE_BYTES + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t n = gd_log_render(line, LINE_BYTES, gd_log_format, now_ms(), level, NULL, event, session,
                             keys, fmt, ap);
    va_end(ap);
    emit(stderr, line, n);
}

void gd_log_usage(FILE *out, const char *prog, const char *event, const char *keys, const char *fmt,
                  ...)
{
    char line[LINE_BYTES + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t n = gd_log_render(line, LINE_BYTES, gd_log_format, now_ms(), GD_LOG_ERROR, prog, event,
                             NULL, keys, fmt, ap);
    va_end(ap);
    emit(out, line, n);
}

/* True when the query key k[0..n) may name a password: it holds "pass"
 * (password, sslpassword, ...) or a '%' escape that could spell one. */
static bool secret_key(const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (k[i] == '%' || (i + 4 <= n && strncasecmp(k + i, "pass", 4) == 0)) return true;
    return false;
}

void gd_log_redact_url(char *out, size_t cap, const char *url)
{
    if (cap == 0) return;
    /* The user information runs from after "//" (or the scheme's ':') to
     * the last '@' anywhere: more than a URL parser would take when an '@'
     * sits in a path or query, never less, so that a password holding a raw
     * '/', '?' or '#', or a URL that does not parse, is still hidden. */
    const char *slashes = strstr(url, "//"), *colon = strchr(url, ':');
    const char *start = slashes ? slashes + 2 : colon ? colon + 1 : url;
    const char *at = strrchr(start, '@');
    char tmp[1024];
    if (at) {
        size_t user_len = strcspn(start, ":/?#@");
        bool user = start[user_len] == ':' && start + user_len < at && user_len > 0;
        snprintf(tmp, sizeof(tmp), "%.*s%.*s%s***%s", (int)(start - url), url,
                 user ? (int)user_len : 0, start, user ? ":" : "", at);
    } else {
        snprintf(tmp, sizeof(tmp), "%s", url);
    }
    /* A libpq URI may carry ?password=... (or sslpassword=...): those values go too. */
    size_t k = 0;
    const char *query = strchr(tmp, '?');
    for (const char *q = tmp; *q && k + 1 < cap;) {
        if (query && q > query && (q[-1] == '?' || q[-1] == '&')) {
            size_t key = strcspn(q, "=&");
            if (q[key] == '=' && secret_key(q, key)) {
                for (size_t j = 0; j <= key && k + 1 < cap; j++)
                    out[k++] = q[j];
                for (const char *r = "***"; *r && k + 1 < cap; r++)
                    out[k++] = *r;
                q += key + 1;
                q += strcspn(q, "&");
                continue;
            }
        }
        out[k++] = *q++;
    }
    out[k] = '\0';
}
