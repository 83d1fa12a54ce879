/*
 * model — see model.h. Validation messages for REST states are the reference's
 * byte for byte (§2.15); checks grooved adds (schema of steps, locks, flags,
 * playbackMode, fmParams, effects) use messages of the same form.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const delay_times[] = {"32n", "16n", "16t", "8n", "8t", "4n", "4t",
                                          "2n",  "2t",  "1n",  "1m", "2m", "4m"};

static char *dup_str(const char *s);
static uint32_t utf8_next(const char **p);
static bool cp_is_js_space(uint32_t c);
static bool cp_is_allowed(uint32_t c);
static bool name_is_unsafe(const char *s);

void gd_errors_add(gd_errors *e, const char *fmt, ...)
{
    if (e->n >= 8) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg[e->n], sizeof(e->msg[0]), fmt, ap);
    va_end(ap);
    e->n++;
}

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

double gd_clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

bool gd_valid_step_count(double v)
{
    static const int valid[] = {4, 8, 12, 16, 24, 32, 64, 96, 128};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        if (v == valid[i]) return true;
    return false;
}

gd_track *gd_track_new(void)
{
    gd_track *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->volume = 1;
    t->step_count = 16;
    t->playback_mode = GD_MODE_ONESHOT;
    return t;
}

void gd_track_free(gd_track *t)
{
    if (!t) return;
    free(t->id);
    free(t->name);
    free(t->sample_id);
    for (int i = 0; i < GD_MAX_STEPS; i++)
        free(t->locks[i]);
    free(t);
}

gd_track *gd_track_clone(const gd_track *t)
{
    gd_track *c = malloc(sizeof(*c));
    if (!c) return NULL;
    *c = *t;
    c->id = dup_str(t->id);
    c->name = dup_str(t->name);
    c->sample_id = dup_str(t->sample_id);
    bool ok = c->id && c->name && c->sample_id;
    for (int i = 0; i < GD_MAX_STEPS; i++) {
        c->locks[i] = dup_str(t->locks[i]);
        if (t->locks[i] && !c->locks[i]) ok = false;
    }
    if (!ok) {
        gd_track_free(c);
        return NULL;
    }
    return c;
}

void gd_state_init(gd_state *s)
{
    memset(s, 0, sizeof(*s));
    s->tempo = GD_DEFAULT_TEMPO;
    s->swing = 0;
}

void gd_state_clear(gd_state *s)
{
    for (int i = 0; i < s->ntracks; i++)
        gd_track_free(s->tracks[i]);
    gd_state_init(s);
}

int gd_state_copy(gd_state *dst, const gd_state *src)
{
    *dst = *src;
    for (int i = 0; i < src->ntracks; i++) {
        dst->tracks[i] = gd_track_clone(src->tracks[i]);
        if (!dst->tracks[i]) {
            dst->ntracks = i;
            gd_state_clear(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

void gd_record_init(gd_record *r, const char *id, int64_t now)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->created_at = r->updated_at = r->last_accessed_at = now;
    gd_state_init(&r->state);
}

void gd_record_clear(gd_record *r)
{
    if (!r) return;
    free(r->name);
    free(r->remixed_from);
    free(r->remixed_from_name);
    gd_state_clear(&r->state);
    r->name = r->remixed_from = r->remixed_from_name = NULL;
}

int gd_record_copy(gd_record *dst, const gd_record *src)
{
    *dst = *src;
    dst->name = dup_str(src->name);
    dst->remixed_from = dup_str(src->remixed_from);
    dst->remixed_from_name = dup_str(src->remixed_from_name);
    gd_state_init(&dst->state);
    if ((src->name && !dst->name) || (src->remixed_from && !dst->remixed_from) ||
        (src->remixed_from_name && !dst->remixed_from_name) ||
        gd_state_copy(&dst->state, &src->state) != 0) {
        gd_record_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

int gd_state_find_track(const gd_state *s, const char *id)
{
    for (int i = 0; i < s->ntracks; i++)
        if (strcmp(s->tracks[i]->id, id) == 0) return i;
    return -1;
}

/* ---- parsing ---------------------------------------------------------- */

static bool get_number(const json_t *o, const char *key, double *out, bool *present)
{
    json_t *v = json_object_get(o, key);
    *present = v != NULL;
    if (!v) return true;
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return isfinite(*out);
}

/*
 * A parameter lock keeps only its known fields, so a stored lock is at most
 * two numbers (an unbounded or deeply nested object stored verbatim could
 * make a checkpoint that no longer parses). Key order is kept as received
 * when keep_order is set, because the state hash covers it (§3.7).
 */
int gd_lock_from_json(const json_t *j, gd_vmode mode, bool keep_order, char **out)
{
    static const struct {
        const char *key;
        double lo, hi;
    } known[] = {{"pitch", -24, 24}, {"volume", 0, 1}};
    *out = NULL;
    if (!json_is_object(j)) return mode == GD_CLAMP ? 0 : -EINVAL;
    double val[2];
    int order[2], n = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        for (int k = 0; k < 2; k++) {
            if (strcmp(key, known[k].key) != 0) continue;
            double d = json_is_number(v) ? json_number_value(v) : NAN;
            if (!isfinite(d) || (mode == GD_STRICT && (d < known[k].lo || d > known[k].hi)))
                return mode == GD_CLAMP ? 0 : -EINVAL; /* §1.5: the whole lock becomes null */
            val[k] = gd_clamp(d, known[k].lo, known[k].hi);
            order[n++] = k;
        }
    }
    if (n == 0) return 0;
    if (!keep_order && n == 2) order[0] = 0, order[1] = 1;
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_putc(&b, '{');
    for (int i = 0; i < n; i++) {
        if (i) gd_buf_putc(&b, ',');
        gd_json_key(&b, known[order[i]].key);
        gd_json_num(&b, val[order[i]]);
    }
    gd_buf_putc(&b, '}');
    *out = gd_buf_steal(&b, NULL);
    return *out ? 0 : -ENOMEM;
}

gd_track *gd_track_from_json(const json_t *j, gd_vmode mode, const char *prefix, gd_errors *errs)
{
    int n0 = errs->n;
    if (!json_is_object(j)) {
        gd_errors_add(errs, "%smust be an object", prefix);
        return NULL;
    }
    gd_track *t = gd_track_new();
    if (!t) {
        gd_errors_add(errs, "%sout of memory", prefix);
        return NULL;
    }
    json_t *v = json_object_get(j, "id");
    if (!json_is_string(v) || json_string_length(v) == 0)
        gd_errors_add(errs, "%sid must be a non-empty string", prefix);
    else if (json_string_length(v) > GD_MAX_ID_BYTES)
        gd_errors_add(errs, "%sid cannot exceed %d bytes", prefix, GD_MAX_ID_BYTES);
    else
        t->id = strdup(json_string_value(v));
    v = json_object_get(j, "sampleId");
    if (!json_is_string(v) || json_string_length(v) > GD_MAX_ID_BYTES)
        gd_errors_add(errs, "%ssampleId must be a string", prefix);
    else
        t->sample_id = strdup(json_string_value(v));
    v = json_object_get(j, "name");
    if (!json_is_string(v) || json_string_length(v) > 4 * GD_MAX_NAME_CP)
        gd_errors_add(errs, "%sname must be a string", prefix);
    else
        t->name = strdup(json_string_value(v));

    v = json_object_get(j, "steps");
    if (!json_is_array(v)) {
        gd_errors_add(errs, "%ssteps must be an array", prefix);
    } else if (json_array_size(v) > GD_MAX_STEPS) {
        gd_errors_add(errs, "%ssteps cannot exceed 128", prefix);
    } else {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_boolean(e)) {
                gd_errors_add(errs, "%ssteps must contain only booleans", prefix);
                break;
            }
            t->steps[i] = json_is_true(e);
        }
    }

    v = json_object_get(j, "parameterLocks");
    if (v && !json_is_array(v)) {
        gd_errors_add(errs, "%sparameterLocks must be an array", prefix);
    } else if (v && json_array_size(v) > GD_MAX_STEPS) {
        gd_errors_add(errs, "%sparameterLocks cannot exceed 128", prefix);
    } else if (v) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (json_is_object(e)) {
                if (gd_lock_from_json(e, mode, true, &t->locks[i]) != 0) {
                    gd_errors_add(errs,
                                  "%sparameterLocks[%zu] pitch must be a number from -24 to 24 "
                                  "and volume a number from 0 to 1",
                                  prefix, i);
                    break;
                }
            } else if (!json_is_null(e)) {
                gd_errors_add(errs, "%sparameterLocks must contain only objects or null", prefix);
                break;
            }
        }
    }

    bool present;
    double d = 1;
    if (!get_number(j, "volume", &d, &present) ||
        (present && mode == GD_STRICT && (d < 0 || d > 1)))
        gd_errors_add(errs, "%svolume must be between 0 and 1", prefix);
    else if (present)
        t->volume = gd_clamp(d, 0, 1);
    d = 0;
    if (!get_number(j, "transpose", &d, &present) ||
        (present && mode == GD_STRICT && (d < -24 || d > 24)))
        gd_errors_add(errs, "%stranspose must be between -24 and 24", prefix);
    else if (present)
        t->transpose = gd_clamp(d, -24, 24);
    d = 16;
    if (!get_number(j, "stepCount", &d, &present) || !gd_valid_step_count(d))
        gd_errors_add(errs, "%sstepCount must be one of 4, 8, 12, 16, 24, 32, 64, 96, 128", prefix);
    else
        t->step_count = (int)d;

    v = json_object_get(j, "muted");
    if (v && !json_is_boolean(v)) gd_errors_add(errs, "%smuted must be a boolean", prefix);
    t->muted = json_is_true(v);
    v = json_object_get(j, "soloed");
    if (v && !json_is_boolean(v)) gd_errors_add(errs, "%ssoloed must be a boolean", prefix);
    t->soloed = json_is_true(v);

    v = json_object_get(j, "playbackMode");
    if (v) {
        const char *m = json_string_value(v);
        if (m && strcmp(m, "oneshot") == 0)
            t->playback_mode = GD_MODE_ONESHOT;
        else if (m && strcmp(m, "gate") == 0)
            t->playback_mode = GD_MODE_GATE;
        else
            gd_errors_add(errs, "%splaybackMode must be \"oneshot\" or \"gate\"", prefix);
    }

    v = json_object_get(j, "fmParams");
    if (v && !json_is_null(v)) {
        double h = 0, m = 0;
        bool hp, mp;
        if (!json_is_object(v) || !get_number(v, "harmonicity", &h, &hp) || !hp ||
            !get_number(v, "modulationIndex", &m, &mp) || !mp) {
            gd_errors_add(errs, "%sfmParams must have numeric harmonicity and modulationIndex",
                          prefix);
        } else {
            t->has_fm = true;
            t->fm_harmonicity = gd_clamp(h, 0.5, 10);
            t->fm_modulation_index = gd_clamp(m, 0, 20);
        }
    }

    if (errs->n == n0 && t->id && t->name && t->sample_id &&
        gd_track_mem_bytes(t) > GD_MAX_TRACK_BYTES)
        gd_errors_add(errs, "%scannot take more than %d bytes", prefix, GD_MAX_TRACK_BYTES);
    if (errs->n != n0 || !t->id || !t->name || !t->sample_id) {
        if (errs->n == n0) gd_errors_add(errs, "%sout of memory", prefix);
        gd_track_free(t);
        return NULL;
    }
    return t;
}

/* ---- memory ------------------------------------------------------------ */

size_t gd_heap_cost(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static size_t str_cost(const char *s)
{
    return s ? gd_heap_cost(strlen(s) + 1) : 0;
}

size_t gd_track_mem_bytes(const gd_track *t)
{
    size_t n =
        gd_heap_cost(sizeof(*t)) + str_cost(t->id) + str_cost(t->name) + str_cost(t->sample_id);
    for (int i = 0; i < GD_MAX_STEPS; i++)
        n += str_cost(t->locks[i]);
    return n;
}

size_t gd_record_mem_bytes(const gd_record *r)
{
    size_t n = str_cost(r->name) + str_cost(r->remixed_from) + str_cost(r->remixed_from_name);
    for (int i = 0; i < r->state.ntracks; i++)
        n += gd_track_mem_bytes(r->state.tracks[i]);
    return n;
}

int gd_effects_from_json(const json_t *j, gd_effects *e, gd_errors *errs)
{
    static const struct {
        const char *group, *key;
        size_t off;
        double lo, hi;
    } f[] = {
        {"reverb", "decay", offsetof(gd_effects, reverb_decay), 0.1, 10},
        {"reverb", "wet", offsetof(gd_effects, reverb_wet), 0, 1},
        {"delay", "feedback", offsetof(gd_effects, delay_feedback), 0, 0.95},
        {"delay", "wet", offsetof(gd_effects, delay_wet), 0, 1},
        {"chorus", "frequency", offsetof(gd_effects, chorus_frequency), 0.1, 10},
        {"chorus", "depth", offsetof(gd_effects, chorus_depth), 0, 1},
        {"chorus", "wet", offsetof(gd_effects, chorus_wet), 0, 1},
        {"distortion", "amount", offsetof(gd_effects, distortion_amount), 0, 1},
        {"distortion", "wet", offsetof(gd_effects, distortion_wet), 0, 1},
    };
    if (!json_is_object(j)) {
        gd_errors_add(errs, "effects must be an object");
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        json_t *g = json_object_get(j, f[i].group);
        json_t *v = json_is_object(g) ? json_object_get(g, f[i].key) : NULL;
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            gd_errors_add(errs, "effects.%s.%s must be a number", f[i].group, f[i].key);
            return -EINVAL;
        }
        *(double *)((char *)e + f[i].off) = gd_clamp(json_number_value(v), f[i].lo, f[i].hi);
    }
    const char *t = json_string_value(json_object_get(json_object_get(j, "delay"), "time"));
    snprintf(e->delay_time, sizeof(e->delay_time), "8n");
    for (size_t i = 0; t && i < sizeof(delay_times) / sizeof(delay_times[0]); i++)
        if (strcmp(t, delay_times[i]) == 0) snprintf(e->delay_time, sizeof(e->delay_time), "%s", t);
    return 0;
}

int gd_state_from_json(const json_t *j, gd_state *out, gd_errors *errs)
{
    int n0 = errs->n;
    gd_state_init(out);
    if (!json_is_object(j)) {
        gd_errors_add(errs, "State must be an object");
        return -EINVAL;
    }
    json_t *v = json_object_get(j, "tempo");
    if (v) {
        if (!json_is_number(v) || isnan(json_number_value(v)))
            gd_errors_add(errs, "Tempo must be a number");
        else if (json_number_value(v) < 60 || json_number_value(v) > 180)
            gd_errors_add(errs, "Tempo must be between 60 and 180");
        else
            out->tempo = json_number_value(v);
    }
    v = json_object_get(j, "swing");
    if (v) {
        if (!json_is_number(v) || isnan(json_number_value(v)))
            gd_errors_add(errs, "Swing must be a number");
        else if (json_number_value(v) < 0 || json_number_value(v) > 100)
            gd_errors_add(errs, "Swing must be between 0 and 100");
        else
            out->swing = json_number_value(v);
    }
    v = json_object_get(j, "tracks");
    if (v) {
        if (!json_is_array(v)) {
            gd_errors_add(errs, "Tracks must be an array");
        } else if (json_array_size(v) > GD_MAX_TRACKS) {
            gd_errors_add(errs, "Cannot have more than 16 tracks");
        } else {
            for (size_t i = 0; i < json_array_size(v); i++) {
                char prefix[32];
                snprintf(prefix, sizeof(prefix), "Track[%zu]: ", i);
                gd_track *t = gd_track_from_json(json_array_get(v, i), GD_STRICT, prefix, errs);
                if (!t) continue;
                if (gd_state_find_track(out, t->id) >= 0) {
                    gd_errors_add(errs, "%sduplicate id", prefix);
                    gd_track_free(t);
                    continue;
                }
                out->tracks[out->ntracks++] = t;
            }
        }
    }
    v = json_object_get(j, "effects");
    if (v && !json_is_null(v)) {
        if (gd_effects_from_json(v, &out->effects, errs) == 0) out->has_effects = true;
    }
    if (errs->n != n0) {
        gd_state_clear(out);
        return -EINVAL;
    }
    return 0;
}

/* ---- names ------------------------------------------------------------ */

static uint32_t utf8_next(const char **p)
{
    const unsigned char *s = (const unsigned char *)*p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n == 2)
        c = ((c & 0x1F) << 6) | (s[1] & 0x3F);
    else if (n == 3)
        c = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    else if (n == 4)
        c = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    *p += n;
    return c;
}

/* JS String.prototype.trim's WhiteSpace and LineTerminator sets. */
static bool cp_is_js_space(uint32_t c)
{
    return c == 0x09 || c == 0x0A || c == 0x0B || c == 0x0C || c == 0x0D || c == 0x20 ||
           c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

/*
 * The reference accepts Unicode categories L, N, P, S and whitespace. Without
 * a Unicode database we reject what those categories exclude and names
 * realistically contain: controls (Cc), format characters (Cf, e.g. ZWJ),
 * the common combining-mark blocks (M, incl. variation selectors) and
 * private-use code points (Co).
 */
static bool cp_is_allowed(uint32_t c)
{
    static const uint32_t bad[][2] = {
        {0x0000, 0x001F}, {0x007F, 0x009F}, {0x00AD, 0x00AD},   {0x0300, 0x036F},
        {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061C},   {0x064B, 0x065F},
        {0x0670, 0x0670}, {0x06DD, 0x06DD}, {0x070F, 0x070F},   {0x180E, 0x180E},
        {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F},   {0x202A, 0x202E},
        {0x2060, 0x2064}, {0x2066, 0x206F}, {0x20D0, 0x20FF},   {0x302A, 0x302F},
        {0x3099, 0x309A}, {0xD800, 0xDFFF}, {0xE000, 0xF8FF},   {0xFE00, 0xFE0F},
        {0xFE20, 0xFE2F}, {0xFFF9, 0xFFFB}, {0xE0000, 0xE01EF}, {0xF0000, 0x10FFFF},
    };
    /* U+FEFF is white space to JavaScript's trim but a format character
     * (Cf) inside a name; noncharacters (U+FDD0..U+FDEF, U+xxFFFE/F) are in
     * no category at all. */
    if (c == 0xFEFF || (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE) return false;
    if (cp_is_js_space(c)) return true;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (c >= bad[i][0] && c <= bad[i][1]) return false;
    return true;
}

/* Case-insensitive /<script|javascript:|on\w+\s*=/ */
static bool name_is_unsafe(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (strncasecmp(p, "<script", 7) == 0 || strncasecmp(p, "javascript:", 11) == 0)
            return true;
        if (strncasecmp(p, "on", 2) == 0) {
            const char *q = p + 2;
            const char *w = q;
            while (*q == '_' || (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                   (*q >= 'A' && *q <= 'Z'))
                q++;
            if (q == w) continue;
            while (*q == ' ' || (*q >= '\t' && *q <= '\r'))
                q++;
            if (*q == '=') return true;
        }
    }
    return false;
}

/* Finds the JS-trimmed byte range [*b, *e) of s. */
static void trim_range(const char *s, const char **b, const char **e)
{
    const char *p = s;
    while (*p) {
        const char *q = p;
        if (!cp_is_js_space(utf8_next(&q))) break;
        p = q;
    }
    *b = *e = p;
    while (*p)
        if (!cp_is_js_space(utf8_next(&p))) *e = p;
}

char *gd_name_normalise(const char *s)
{
    const char *start, *end;
    trim_range(s, &start, &end);
    /* Truncate to 100 code points; the cut never lands inside a character. */
    const char *p = start;
    for (size_t cps = 0; p < end && cps < GD_MAX_NAME_CP; cps++)
        utf8_next(&p);
    if (p == start) return NULL;
    return strndup(start, (size_t)(p - start));
}

int gd_name_from_json(const json_t *raw, char **out, gd_errors *errs)
{
    *out = NULL;
    if (json_is_null(raw)) return 0;
    if (!json_is_string(raw)) {
        gd_errors_add(errs, "Name must be a string or null");
        return -EINVAL;
    }
    int n0 = errs->n;
    const char *s = json_string_value(raw);
    const char *start, *end;
    trim_range(s, &start, &end);
    size_t cps = 0;
    for (const char *p = start; p < end; utf8_next(&p))
        cps++;
    bool bad_char = false; /* what trimming removes is white space, and goes */
    for (const char *p = start; p < end;)
        if (!cp_is_allowed(utf8_next(&p))) bad_char = true;

    if (cps > GD_MAX_NAME_CP) gd_errors_add(errs, "Name cannot exceed 100 characters");
    if (name_is_unsafe(s)) gd_errors_add(errs, "Name contains potentially unsafe content");
    if (bad_char) gd_errors_add(errs, "Name contains invalid characters");
    if (errs->n != n0) return -EINVAL;
    *out = gd_name_normalise(s);
    return 0;
}

/* ---- serialisation ---------------------------------------------------- */

void gd_track_write(gd_buf *b, const gd_track *t)
{
    gd_buf_puts(b, "{\"id\":");
    gd_json_str(b, t->id);
    gd_buf_puts(b, ",\"name\":");
    gd_json_str(b, t->name);
    gd_buf_puts(b, ",\"sampleId\":");
    gd_json_str(b, t->sample_id);
    gd_buf_puts(b, ",\"steps\":[");
    for (int i = 0; i < GD_MAX_STEPS; i++) {
        if (i) gd_buf_putc(b, ',');
        gd_buf_puts(b, t->steps[i] ? "true" : "false");
    }
    gd_buf_puts(b, "],\"parameterLocks\":[");
    for (int i = 0; i < GD_MAX_STEPS; i++) {
        if (i) gd_buf_putc(b, ',');
        gd_buf_puts(b, t->locks[i] ? t->locks[i] : "null");
    }
    gd_buf_puts(b, "],\"volume\":");
    gd_json_num(b, t->volume);
    gd_buf_puts(b, t->muted ? ",\"muted\":true" : ",\"muted\":false");
    gd_buf_puts(b, t->soloed ? ",\"soloed\":true" : ",\"soloed\":false");
    gd_buf_puts(b, t->playback_mode == GD_MODE_GATE ? ",\"playbackMode\":\"gate\""
                                                    : ",\"playbackMode\":\"oneshot\"");
    gd_buf_puts(b, ",\"transpose\":");
    gd_json_num(b, t->transpose);
    gd_buf_printf(b, ",\"stepCount\":%d", t->step_count);
    if (t->has_fm) {
        gd_buf_puts(b, ",\"fmParams\":{\"harmonicity\":");
        gd_json_num(b, t->fm_harmonicity);
        gd_buf_puts(b, ",\"modulationIndex\":");
        gd_json_num(b, t->fm_modulation_index);
        gd_buf_putc(b, '}');
    }
    gd_buf_putc(b, '}');
}

void gd_effects_write(gd_buf *b, const gd_effects *e)
{
    gd_buf_puts(b, "{\"reverb\":{\"decay\":");
    gd_json_num(b, e->reverb_decay);
    gd_buf_puts(b, ",\"wet\":");
    gd_json_num(b, e->reverb_wet);
    gd_buf_puts(b, "},\"delay\":{\"time\":");
    gd_json_str(b, e->delay_time);
    gd_buf_puts(b, ",\"feedback\":");
    gd_json_num(b, e->delay_feedback);
    gd_buf_puts(b, ",\"wet\":");
    gd_json_num(b, e->delay_wet);
    gd_buf_puts(b, "},\"chorus\":{\"frequency\":");
    gd_json_num(b, e->chorus_frequency);
    gd_buf_puts(b, ",\"depth\":");
    gd_json_num(b, e->chorus_depth);
    gd_buf_puts(b, ",\"wet\":");
    gd_json_num(b, e->chorus_wet);
    gd_buf_puts(b, "},\"distortion\":{\"amount\":");
    gd_json_num(b, e->distortion_amount);
    gd_buf_puts(b, ",\"wet\":");
    gd_json_num(b, e->distortion_wet);
    gd_buf_puts(b, "}}");
}

void gd_state_write(gd_buf *b, const gd_state *s)
{
    gd_buf_puts(b, "{\"tracks\":[");
    for (int i = 0; i < s->ntracks; i++) {
        if (i) gd_buf_putc(b, ',');
        gd_track_write(b, s->tracks[i]);
    }
    gd_buf_puts(b, "],\"tempo\":");
    gd_json_num(b, s->tempo);
    gd_buf_puts(b, ",\"swing\":");
    gd_json_num(b, s->swing);
    if (s->has_effects) {
        gd_buf_puts(b, ",\"effects\":");
        gd_effects_write(b, &s->effects);
    }
    gd_buf_puts(b, ",\"version\":1}");
}

static void write_opt_str(gd_buf *b, const char *s)
{
    if (s)
        gd_json_str(b, s);
    else
        gd_buf_puts(b, "null");
}

void gd_record_write(gd_buf *b, const gd_record *r, bool with_seq)
{
    gd_buf_puts(b, "{\"id\":");
    gd_json_str(b, r->id);
    gd_buf_puts(b, ",\"name\":");
    write_opt_str(b, r->name);
    gd_buf_printf(b, ",\"createdAt\":%lld,\"updatedAt\":%lld,\"lastAccessedAt\":%lld",
                  (long long)r->created_at, (long long)r->updated_at,
                  (long long)r->last_accessed_at);
    gd_buf_puts(b, ",\"remixedFrom\":");
    write_opt_str(b, r->remixed_from);
    gd_buf_puts(b, ",\"remixedFromName\":");
    write_opt_str(b, r->remixed_from_name);
    gd_buf_printf(b, ",\"remixCount\":%lld,\"immutable\":%s", (long long)r->remix_count,
                  r->immutable ? "true" : "false");
    if (with_seq)
        gd_buf_printf(b, ",\"serverSeq\":%llu,\"opno\":%llu", (unsigned long long)r->server_seq,
                      (unsigned long long)r->opno);
    gd_buf_puts(b, ",\"state\":");
    gd_state_write(b, &r->state);
    gd_buf_putc(b, '}');
}

static char *opt_str(const json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? strdup(s) : NULL;
}

int gd_record_from_json(const json_t *j, gd_record *out)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    gd_errors errs = {0};
    if (!json_is_object(j) || !id || strlen(id) != 36) return -EINVAL;
    gd_record_init(out, id, 0);
    out->created_at = (int64_t)json_number_value(json_object_get(j, "createdAt"));
    out->updated_at = (int64_t)json_number_value(json_object_get(j, "updatedAt"));
    json_t *la = json_object_get(j, "lastAccessedAt");
    out->last_accessed_at = la ? (int64_t)json_number_value(la) : out->updated_at;
    out->name = opt_str(j, "name");
    out->remixed_from = opt_str(j, "remixedFrom");
    out->remixed_from_name = opt_str(j, "remixedFromName");
    out->remix_count = (int64_t)json_number_value(json_object_get(j, "remixCount"));
    out->immutable = json_is_true(json_object_get(j, "immutable"));
    out->server_seq = (uint64_t)json_number_value(json_object_get(j, "serverSeq"));
    out->opno = (uint64_t)json_number_value(json_object_get(j, "opno"));
    if (gd_state_from_json(json_object_get(j, "state"), &out->state, &errs) != 0) {
        gd_record_clear(out);
        return -EINVAL;
    }
    return 0;
}

int gd_record_from_text(const char *id, const char *text, size_t len, gd_record *out)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &jerr);
    int rc = j && gd_record_from_json(j, out) == 0 && strcmp(out->id, id) == 0 ? 0 : -EBADMSG;
    if (rc) gd_record_clear(out);
    json_decref(j);
    return rc;
}
