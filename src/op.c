/*
 * op — see op.h. One table maps type names to op types; parse, apply and the
 * broadcast writer each switch on the type, so adding a message type touches
 * exactly these three places.
 */
#include "op.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[GD_OP__COUNT] = {
    [GD_OP_TOGGLE_STEP] = "toggle_step",
    [GD_OP_SET_TEMPO] = "set_tempo",
    [GD_OP_SET_SWING] = "set_swing",
    [GD_OP_SET_PARAMETER_LOCK] = "set_parameter_lock",
    [GD_OP_ADD_TRACK] = "add_track",
    [GD_OP_DELETE_TRACK] = "delete_track",
    [GD_OP_CLEAR_TRACK] = "clear_track",
    [GD_OP_SET_TRACK_SAMPLE] = "set_track_sample",
    [GD_OP_SET_TRACK_VOLUME] = "set_track_volume",
    [GD_OP_SET_TRACK_TRANSPOSE] = "set_track_transpose",
    [GD_OP_SET_TRACK_STEP_COUNT] = "set_track_step_count",
    [GD_OP_SET_TRACK_PLAYBACK_MODE] = "set_track_playback_mode",
    [GD_OP_SET_EFFECTS] = "set_effects",
    [GD_OP_SET_FM_PARAMS] = "set_fm_params",
    [GD_OP_COPY_SEQUENCE] = "copy_sequence",
    [GD_OP_MOVE_SEQUENCE] = "move_sequence",
    [GD_OP_SET_SESSION_NAME] = "set_session_name",
    [GD_OP_MUTE_TRACK] = "mute_track",
    [GD_OP_SOLO_TRACK] = "solo_track",
    [GD_OP_REPLACE_STATE] = "replace_state",
    [GD_OP_RENAME] = "rename",
    [GD_OP_REMIX_COUNT] = "remix_count",
};

static int fail(gd_op_err *err, const char *code, const char *fmt, const char *field);
static int need_string(const json_t *m, const char *key, char **out, gd_op_err *err);
static int need_number(const json_t *m, const char *key, double *out, gd_op_err *err);
static int need_step(const json_t *m, int *out, gd_op_err *err);
static char *sanitise_lock(const json_t *lock);
static void write_track_ref(gd_buf *b, const char *key, const char *id);

gd_op_type gd_op_type_from_name(const char *name, bool internal)
{
    if (!name) return GD_OP_NONE;
    int last = internal ? GD_OP__COUNT : GD_OP_REPLACE_STATE;
    for (int t = 1; t < last; t++)
        if (strcmp(type_names[t], name) == 0) return (gd_op_type)t;
    return GD_OP_NONE;
}

const char *gd_op_type_name(gd_op_type t)
{
    return t > GD_OP_NONE && t < GD_OP__COUNT ? type_names[t] : "none";
}

bool gd_op_is_mutating(gd_op_type t)
{
    return t >= GD_OP_TOGGLE_STEP && t <= GD_OP_SET_SESSION_NAME;
}

void gd_op_clear(gd_op *op)
{
    if (!op) return;
    free(op->track_id);
    free(op->track_id2);
    free(op->str);
    free(op->str2);
    free(op->lock);
    gd_track_free(op->track);
    if (op->state) {
        gd_state_clear(op->state);
        free(op->state);
    }
    memset(op, 0, sizeof(*op));
}

static int fail(gd_op_err *err, const char *code, const char *fmt, const char *field)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), fmt, field);
    return -EINVAL;
}

static int need_string(const json_t *m, const char *key, char **out, gd_op_err *err)
{
    json_t *v = json_object_get(m, key);
    if (!json_is_string(v) || json_string_length(v) > GD_MAX_ID_BYTES)
        return fail(err, GD_E_INVALID_FIELD, "%s must be a string", key);
    *out = strdup(json_string_value(v));
    return *out ? 0 : -ENOMEM;
}

static int need_number(const json_t *m, const char *key, double *out, gd_op_err *err)
{
    json_t *v = json_object_get(m, key);
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return fail(err, GD_E_INVALID_FIELD, "%s must be a number", key);
    *out = json_number_value(v);
    return 0;
}

static int need_step(const json_t *m, int *out, gd_op_err *err)
{
    double d;
    if (need_number(m, "step", &d, err) != 0 || d < 0 || d >= GD_MAX_STEPS || d != floor(d))
        return fail(err, GD_E_INVALID_FIELD, "%s must be an integer from 0 to 127", "step");
    *out = (int)d;
    return 0;
}

/* §1.5: anything invalid gives NULL (the lock is cleared, not rejected). */
static char *sanitise_lock(const json_t *lock)
{
    char *out = NULL;
    gd_lock_from_json(lock, GD_CLAMP, false, &out);
    return out;
}

int gd_op_parse(const json_t *msg, bool trusted, gd_op *op, gd_op_err *err)
{
    memset(op, 0, sizeof(*op));
    err->code = NULL;
    err->message[0] = '\0';
    if (!json_is_object(msg))
        return fail(err, GD_E_INVALID_JSON, "%s", "Message must be a JSON object");
    const char *tname = json_string_value(json_object_get(msg, "type"));
    op->type = gd_op_type_from_name(tname, trusted);
    if (op->type == GD_OP_NONE)
        return fail(err, GD_E_UNKNOWN_TYPE, "Unknown message type: %.60s", tname ? tname : "");
    if (trusted) op->at = (int64_t)json_number_value(json_object_get(msg, "at"));

    int rc = 0;
    double d = 0;
    gd_errors errs = {0};
    json_t *v;
    switch (op->type) {
    case GD_OP_TOGGLE_STEP:
        rc = need_string(msg, "trackId", &op->track_id, err);
        if (!rc) rc = need_step(msg, &op->step, err);
        break;
    case GD_OP_SET_TEMPO:
        rc = need_number(msg, "tempo", &d, err);
        op->num = gd_clamp(d, 60, 180);
        break;
    case GD_OP_SET_SWING:
        rc = need_number(msg, "swing", &d, err);
        op->num = gd_clamp(d, 0, 100);
        break;
    case GD_OP_SET_PARAMETER_LOCK:
        rc = need_string(msg, "trackId", &op->track_id, err);
        if (!rc) rc = need_step(msg, &op->step, err);
        if (!rc) op->lock = sanitise_lock(json_object_get(msg, "lock"));
        break;
    case GD_OP_ADD_TRACK:
        op->track = gd_track_from_json(json_object_get(msg, "track"), GD_CLAMP, "track: ", &errs);
        if (!op->track)
            rc = fail(err, GD_E_INVALID_FIELD, "%s", errs.n ? errs.msg[0] : "track: invalid");
        break;
    case GD_OP_DELETE_TRACK:
    case GD_OP_CLEAR_TRACK:
        rc = need_string(msg, "trackId", &op->track_id, err);
        break;
    case GD_OP_SET_TRACK_SAMPLE:
        rc = need_string(msg, "trackId", &op->track_id, err);
        if (!rc) rc = need_string(msg, "sampleId", &op->str, err);
        if (!rc && json_object_get(msg, "name")) rc = need_string(msg, "name", &op->str2, err);
        break;
    case GD_OP_SET_TRACK_VOLUME:
        rc = need_string(msg, "trackId", &op->track_id, err);
        if (!rc) rc = need_number(msg, "volume", &d, err);
        op->num = gd_clamp(d, 0, 1);
        break;
    case GD_OP_SET_TRACK_TRANSPOSE:
        rc = need_string(msg, "trackId", &op->track_id, err);
        if (!rc) rc = need_number(msg, "transpose", &d, err);
        op->num = floor(gd_clamp(d, -24, 24) + 0.5); /* JS Math.round */
        break;
    case GD_OP_SET_TRACK_STEP_COUNT:
        rc = need_string(msg, "trackId", &op->track_id, err);
        if (!rc && (need_number(msg, "stepCount", &d, err) != 0 || !gd_valid_step_count(d)))
            rc = fail(err, GD_E_INVALID_FIELD,
                      "%s must be one of 4, 8, 12, 16, 24, 32, 64, 96, 128", "stepCount");
        op->num = d;
        break;
    case GD_OP_SET_TRACK_PLAYBACK_MODE: {
        rc = need_string(msg, "trackId", &op->track_id, err);
        const char *m = json_string_value(json_object_get(msg, "playbackMode"));
        if (!rc && m && strcmp(m, "oneshot") == 0)
            op->num = GD_MODE_ONESHOT;
        else if (!rc && m && strcmp(m, "gate") == 0)
            op->num = GD_MODE_GATE;
        else if (!rc)
            rc =
                fail(err, GD_E_INVALID_FIELD, "%s must be \"oneshot\" or \"gate\"", "playbackMode");
        break;
    }
    case GD_OP_SET_EFFECTS:
        if (gd_effects_from_json(json_object_get(msg, "effects"), &op->effects, &errs) != 0)
            rc = fail(err, GD_E_INVALID_FIELD, "%s", errs.msg[0]);
        break;
    case GD_OP_SET_FM_PARAMS:
        rc = need_string(msg, "trackId", &op->track_id, err);
        v = json_object_get(msg, "fmParams");
        if (!rc && (need_number(v, "harmonicity", &op->fm_h, err) != 0 ||
                    need_number(v, "modulationIndex", &op->fm_m, err) != 0))
            rc = fail(err, GD_E_INVALID_FIELD,
                      "%s must have numeric harmonicity and "
                      "modulationIndex",
                      "fmParams");
        op->fm_h = gd_clamp(op->fm_h, 0.5, 10);
        op->fm_m = gd_clamp(op->fm_m, 0, 20);
        break;
    case GD_OP_COPY_SEQUENCE:
    case GD_OP_MOVE_SEQUENCE:
        rc = need_string(msg, "fromTrackId", &op->track_id, err);
        if (!rc) rc = need_string(msg, "toTrackId", &op->track_id2, err);
        break;
    case GD_OP_SET_SESSION_NAME:
    case GD_OP_RENAME:
        v = json_object_get(msg, "name");
        if (trusted || op->type == GD_OP_RENAME) {
            if (!json_is_string(v) && !json_is_null(v))
                rc = fail(err, GD_E_INVALID_FIELD, "%s must be a string", "name");
            else if (json_is_string(v))
                op->str = gd_name_normalise(json_string_value(v));
        } else if (!json_is_string(v)) {
            rc = fail(err, GD_E_INVALID_FIELD, "%s must be a string", "name");
        } else if (gd_name_from_json(v, &op->str, &errs) != 0) {
            rc = fail(err, GD_E_INVALID_FIELD, "%s", errs.msg[0]);
        }
        break;
    case GD_OP_MUTE_TRACK:
    case GD_OP_SOLO_TRACK: {
        const char *key = op->type == GD_OP_MUTE_TRACK ? "muted" : "soloed";
        rc = need_string(msg, "trackId", &op->track_id, err);
        v = json_object_get(msg, key);
        if (!rc && !json_is_boolean(v))
            rc = fail(err, GD_E_INVALID_FIELD, "%s must be a boolean", key);
        op->flag = json_is_true(v);
        break;
    }
    case GD_OP_REPLACE_STATE:
        op->state = malloc(sizeof(*op->state));
        if (!op->state)
            rc = -ENOMEM;
        else if (gd_state_from_json(json_object_get(msg, "state"), op->state, &errs) != 0)
            rc = fail(err, GD_E_INVALID_FIELD, "%s", errs.msg[0]);
        break;
    case GD_OP_REMIX_COUNT:
    case GD_OP_NONE:
    case GD_OP__COUNT:
        break;
    }
    if (rc == -ENOMEM && !err->code) {
        err->code = GD_E_STORAGE_UNAVAILABLE;
        snprintf(err->message, sizeof(err->message), "Out of memory");
    }
    if (rc) {
        gd_op_clear(op);
        return rc == -ENOMEM ? -ENOMEM : -EINVAL;
    }
    return 0;
}

static void write_track_ref(gd_buf *b, const char *key, const char *id)
{
    gd_buf_putc(b, ',');
    gd_json_key(b, key);
    gd_json_str(b, id);
}

void gd_op_write_log(gd_buf *b, const gd_op *op)
{
    gd_buf_puts(b, "{\"type\":");
    gd_json_str(b, gd_op_type_name(op->type));
    if (op->track_id)
        write_track_ref(b,
                        op->type == GD_OP_COPY_SEQUENCE || op->type == GD_OP_MOVE_SEQUENCE
                            ? "fromTrackId"
                            : "trackId",
                        op->track_id);
    if (op->track_id2) write_track_ref(b, "toTrackId", op->track_id2);
    switch (op->type) {
    case GD_OP_TOGGLE_STEP:
        gd_buf_puts(b, ",\"step\":");
        gd_buf_putint(b, op->step);
        break;
    case GD_OP_SET_TEMPO:
        gd_buf_puts(b, ",\"tempo\":");
        gd_json_num(b, op->num);
        break;
    case GD_OP_SET_SWING:
        gd_buf_puts(b, ",\"swing\":");
        gd_json_num(b, op->num);
        break;
    case GD_OP_SET_PARAMETER_LOCK:
        gd_buf_printf(b, ",\"step\":%d,\"lock\":%s", op->step, op->lock ? op->lock : "null");
        break;
    case GD_OP_ADD_TRACK:
        gd_buf_puts(b, ",\"track\":");
        gd_track_write(b, op->track);
        break;
    case GD_OP_SET_TRACK_SAMPLE:
        gd_buf_puts(b, ",\"sampleId\":");
        gd_json_str(b, op->str);
        if (op->str2) {
            gd_buf_puts(b, ",\"name\":");
            gd_json_str(b, op->str2);
        }
        break;
    case GD_OP_SET_TRACK_VOLUME:
        gd_buf_puts(b, ",\"volume\":");
        gd_json_num(b, op->num);
        break;
    case GD_OP_SET_TRACK_TRANSPOSE:
        gd_buf_puts(b, ",\"transpose\":");
        gd_json_num(b, op->num);
        break;
    case GD_OP_SET_TRACK_STEP_COUNT:
        gd_buf_printf(b, ",\"stepCount\":%d", (int)op->num);
        break;
    case GD_OP_SET_TRACK_PLAYBACK_MODE:
        gd_buf_puts(b, op->num == GD_MODE_GATE ? ",\"playbackMode\":\"gate\""
                                               : ",\"playbackMode\":\"oneshot\"");
        break;
    case GD_OP_SET_EFFECTS:
        gd_buf_puts(b, ",\"effects\":");
        gd_effects_write(b, &op->effects);
        break;
    case GD_OP_SET_FM_PARAMS:
        gd_buf_puts(b, ",\"fmParams\":{\"harmonicity\":");
        gd_json_num(b, op->fm_h);
        gd_buf_puts(b, ",\"modulationIndex\":");
        gd_json_num(b, op->fm_m);
        gd_buf_putc(b, '}');
        break;
    case GD_OP_SET_SESSION_NAME:
    case GD_OP_RENAME:
        gd_buf_puts(b, ",\"name\":");
        if (op->str)
            gd_json_str(b, op->str);
        else
            gd_buf_puts(b, "null");
        break;
    case GD_OP_MUTE_TRACK:
        gd_buf_puts(b, op->flag ? ",\"muted\":true" : ",\"muted\":false");
        break;
    case GD_OP_SOLO_TRACK:
        gd_buf_puts(b, op->flag ? ",\"soloed\":true" : ",\"soloed\":false");
        break;
    case GD_OP_REPLACE_STATE:
        gd_buf_puts(b, ",\"state\":");
        gd_state_write(b, op->state);
        break;
    default:
        break;
    }
    gd_buf_puts(b, ",\"at\":");
    gd_buf_putint(b, (long long)op->at);
    gd_buf_putc(b, '}');
}

void gd_op_write_compact(gd_buf *b, const gd_op *op)
{
    size_t tlen = op->track_id ? strlen(op->track_id) : 0;
    if (op->type != GD_OP_TOGGLE_STEP || tlen > 255 || op->at < 0) {
        gd_buf_putc(b, 0x00);
        gd_op_write_log(b, op);
        return;
    }
    char tmp[16];
    int n = 0;
    tmp[n++] = 0x01;
    uint64_t at = (uint64_t)op->at;
    do {
        uint8_t byte = at & 0x7F;
        at >>= 7;
        tmp[n++] = (char)(at ? byte | 0x80 : byte);
    } while (at);
    tmp[n++] = (char)op->step;
    tmp[n++] = (char)tlen;
    gd_buf_put(b, tmp, (size_t)n);
    gd_buf_put(b, op->track_id, tlen);
}

int gd_op_parse_compact(const uint8_t *p, size_t n, gd_op *op, gd_op_err *err)
{
    memset(op, 0, sizeof(*op));
    if (n >= 1 && p[0] == 0x00) {
        json_error_t jerr;
        json_t *j = json_loadb((const char *)p + 1, n - 1, JSON_DECODE_INT_AS_REAL, &jerr);
        if (!j) return fail(err, GD_E_INVALID_JSON, "%s", "Log entry is not JSON");
        int rc = gd_op_parse(j, true, op, err);
        json_decref(j);
        return rc;
    }
    size_t i = 1;
    uint64_t at = 0;
    for (int shift = 0; n >= 1 && p[0] == 0x01 && i < n && shift < 63; shift += 7) {
        at |= (uint64_t)(p[i] & 0x7F) << shift;
        if (!(p[i++] & 0x80)) goto have_at;
    }
    return fail(err, GD_E_INVALID_FIELD, "%s", "Log entry is malformed");
have_at:
    if (i + 2 > n || p[i] >= GD_MAX_STEPS || i + 2 + p[i + 1] != n || p[i + 1] == 0)
        return fail(err, GD_E_INVALID_FIELD, "%s", "Log entry is malformed");
    op->type = GD_OP_TOGGLE_STEP;
    op->at = (int64_t)at;
    op->step = p[i];
    op->track_id = strndup((const char *)p + i + 2, p[i + 1]);
    if (!op->track_id || memchr(op->track_id, '\0', p[i + 1])) {
        gd_op_clear(op);
        return fail(err, GD_E_INVALID_FIELD, "%s", "Log entry is malformed");
    }
    return 0;
}

static int track_or_fail(const gd_record *rec, const char *id, gd_op_err *err)
{
    int i = gd_state_find_track(&rec->state, id);
    if (i < 0) {
        err->code = GD_E_TRACK_NOT_FOUND;
        snprintf(err->message, sizeof(err->message), "Track not found: %.100s", id);
        return -ENOENT;
    }
    return i;
}

int gd_op_replay(gd_record *rec, uint64_t opno, const uint8_t *op, size_t len)
{
    if (opno <= rec->opno) return 1;
    if (opno != rec->opno + 1) return -EILSEQ;
    gd_op o;
    gd_op_err err;
    gd_apply_res res;
    int rc = gd_op_parse_compact(op, len, &o, &err);
    if (rc == 0) {
        rc = gd_apply(rec, &o, &res, &err);
        gd_op_clear(&o);
    }
    return rc ? -EINVAL : 0;
}

int gd_apply(gd_record *rec, const gd_op *op, gd_apply_res *res, gd_op_err *err)
{
    gd_state *s = &rec->state;
    memset(res, 0, sizeof(*res));
    res->seqd = gd_op_is_mutating(op->type) || op->type == GD_OP_RENAME;
    res->changed = true;
    int i = -1, j = -1;
    char *dup = NULL;

    /* Resolve every track reference before changing anything. */
    switch (op->type) {
    case GD_OP_ADD_TRACK:
        if (s->ntracks >= GD_MAX_TRACKS) {
            err->code = GD_E_TOO_MANY_TRACKS;
            snprintf(err->message, sizeof(err->message), "Cannot have more than 16 tracks");
            return -ENOSPC;
        }
        break;
    case GD_OP_DELETE_TRACK:
        i = gd_state_find_track(s, op->track_id);
        break;
    case GD_OP_COPY_SEQUENCE:
    case GD_OP_MOVE_SEQUENCE:
        if ((i = track_or_fail(rec, op->track_id, err)) < 0 ||
            (j = track_or_fail(rec, op->track_id2, err)) < 0)
            return -ENOENT;
        break;
    default:
        if (op->track_id && (i = track_or_fail(rec, op->track_id, err)) < 0) return -ENOENT;
    }
    gd_track *t = i >= 0 ? s->tracks[i] : NULL;

    switch (op->type) {
    case GD_OP_TOGGLE_STEP:
        t->steps[op->step] = !t->steps[op->step];
        res->value = t->steps[op->step];
        break;
    case GD_OP_SET_TEMPO:
        s->tempo = op->num;
        break;
    case GD_OP_SET_SWING:
        s->swing = op->num;
        break;
    case GD_OP_SET_PARAMETER_LOCK:
        if (op->lock && !(dup = strdup(op->lock))) return -ENOMEM;
        free(t->locks[op->step]);
        t->locks[op->step] = dup;
        break;
    case GD_OP_ADD_TRACK: {
        if (gd_state_find_track(s, op->track->id) >= 0) {
            res->changed = false; /* confirmation only, as in the reference */
            break;
        }
        gd_track *c = gd_track_clone(op->track);
        if (!c) return -ENOMEM;
        s->tracks[s->ntracks++] = c;
        break;
    }
    case GD_OP_DELETE_TRACK:
        if (!t) {
            res->changed = false;
            break;
        }
        gd_track_free(t);
        memmove(&s->tracks[i], &s->tracks[i + 1],
                sizeof(s->tracks[0]) * (size_t)(s->ntracks - i - 1));
        s->ntracks--;
        break;
    case GD_OP_CLEAR_TRACK:
        for (int k = 0; k < GD_MAX_STEPS; k++) {
            t->steps[k] = false;
            free(t->locks[k]);
            t->locks[k] = NULL;
        }
        break;
    case GD_OP_SET_TRACK_SAMPLE: {
        char *sid = strdup(op->str);
        char *nm = op->str2 ? strdup(op->str2) : NULL;
        if (!sid || (op->str2 && !nm)) {
            free(sid);
            free(nm);
            return -ENOMEM;
        }
        free(t->sample_id);
        t->sample_id = sid;
        if (nm) {
            free(t->name);
            t->name = nm;
        }
        break;
    }
    case GD_OP_SET_TRACK_VOLUME:
        t->volume = op->num;
        break;
    case GD_OP_SET_TRACK_TRANSPOSE:
        t->transpose = op->num;
        break;
    case GD_OP_SET_TRACK_STEP_COUNT:
        t->step_count = (int)op->num;
        break;
    case GD_OP_SET_TRACK_PLAYBACK_MODE:
        t->playback_mode = (int)op->num;
        break;
    case GD_OP_SET_EFFECTS:
        s->effects = op->effects;
        s->has_effects = true;
        break;
    case GD_OP_SET_FM_PARAMS:
        t->has_fm = true;
        t->fm_harmonicity = op->fm_h;
        t->fm_modulation_index = op->fm_m;
        break;
    case GD_OP_COPY_SEQUENCE:
    case GD_OP_MOVE_SEQUENCE: {
        gd_track *from = s->tracks[i], *to = s->tracks[j];
        char *locks[GD_MAX_STEPS] = {0};
        for (int k = 0; k < GD_MAX_STEPS; k++) {
            if (from->locks[k] && !(locks[k] = strdup(from->locks[k]))) {
                for (int m = 0; m < k; m++)
                    free(locks[m]);
                return -ENOMEM;
            }
        }
        bool steps[GD_MAX_STEPS];
        memcpy(steps, from->steps, sizeof(steps));
        for (int k = 0; k < GD_MAX_STEPS; k++) {
            free(to->locks[k]);
            to->locks[k] = locks[k];
        }
        memcpy(to->steps, steps, sizeof(steps));
        to->step_count = from->step_count;
        if (op->type == GD_OP_MOVE_SEQUENCE) {
            for (int k = 0; k < GD_MAX_STEPS; k++) {
                from->steps[k] = false;
                free(from->locks[k]);
                from->locks[k] = NULL;
            }
        }
        break;
    }
    case GD_OP_SET_SESSION_NAME:
    case GD_OP_RENAME:
        if (op->str && !(dup = strdup(op->str))) return -ENOMEM;
        free(rec->name);
        rec->name = dup;
        break;
    case GD_OP_MUTE_TRACK:
        t->muted = op->flag;
        break;
    case GD_OP_SOLO_TRACK:
        t->soloed = op->flag;
        break;
    case GD_OP_REPLACE_STATE: {
        gd_state copy;
        if (gd_state_copy(&copy, op->state) != 0) return -ENOMEM;
        gd_state_clear(s);
        *s = copy;
        break;
    }
    case GD_OP_REMIX_COUNT:
        rec->remix_count++;
        break;
    case GD_OP_NONE:
    case GD_OP__COUNT:
        return -EINVAL;
    }
    rec->opno++;
    if (res->seqd) rec->server_seq++;
    rec->updated_at = op->at;
    return 0;
}

void gd_op_write_broadcast(gd_buf *b, const gd_record *rec, const gd_op *op,
                           const gd_apply_res *res, const char *player_id, const char *client_seq)
{
    const gd_state *s = &rec->state;
    int i = op->track_id ? gd_state_find_track(s, op->track_id) : -1;
    const gd_track *t = i >= 0 ? s->tracks[i] : NULL;
    static const char *const out_names[GD_OP__COUNT] = {
        [GD_OP_TOGGLE_STEP] = "step_toggled",
        [GD_OP_SET_TEMPO] = "tempo_changed",
        [GD_OP_SET_SWING] = "swing_changed",
        [GD_OP_SET_PARAMETER_LOCK] = "parameter_lock_set",
        [GD_OP_ADD_TRACK] = "track_added",
        [GD_OP_DELETE_TRACK] = "track_deleted",
        [GD_OP_CLEAR_TRACK] = "track_cleared",
        [GD_OP_SET_TRACK_SAMPLE] = "track_sample_set",
        [GD_OP_SET_TRACK_VOLUME] = "track_volume_set",
        [GD_OP_SET_TRACK_TRANSPOSE] = "track_transpose_set",
        [GD_OP_SET_TRACK_STEP_COUNT] = "track_step_count_set",
        [GD_OP_SET_TRACK_PLAYBACK_MODE] = "track_playback_mode_set",
        [GD_OP_SET_EFFECTS] = "effects_changed",
        [GD_OP_SET_FM_PARAMS] = "fm_params_changed",
        [GD_OP_COPY_SEQUENCE] = "sequence_copied",
        [GD_OP_MOVE_SEQUENCE] = "sequence_moved",
        [GD_OP_SET_SESSION_NAME] = "session_name_changed",
        [GD_OP_MUTE_TRACK] = "track_muted",
        [GD_OP_SOLO_TRACK] = "track_soloed",
        [GD_OP_RENAME] = "session_name_changed",
    };
    if (!out_names[op->type]) return;
    gd_buf_puts(b, "{\"type\":");
    gd_json_str(b, out_names[op->type]);
    switch (op->type) {
    case GD_OP_TOGGLE_STEP:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, ",\"step\":");
        gd_buf_putint(b, op->step);
        gd_buf_puts(b, res->value ? ",\"value\":true" : ",\"value\":false");
        break;
    case GD_OP_SET_TEMPO:
        gd_buf_puts(b, ",\"tempo\":");
        gd_json_num(b, s->tempo);
        break;
    case GD_OP_SET_SWING:
        gd_buf_puts(b, ",\"swing\":");
        gd_json_num(b, s->swing);
        break;
    case GD_OP_SET_PARAMETER_LOCK:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_printf(b, ",\"step\":%d,\"lock\":%s", op->step, op->lock ? op->lock : "null");
        break;
    case GD_OP_ADD_TRACK: {
        /* The stored, normalised track (the existing one for a duplicate id). */
        int k = gd_state_find_track(s, op->track->id);
        gd_buf_puts(b, ",\"track\":");
        gd_track_write(b, k >= 0 ? s->tracks[k] : op->track);
        break;
    }
    case GD_OP_DELETE_TRACK:
    case GD_OP_CLEAR_TRACK:
        write_track_ref(b, "trackId", op->track_id);
        break;
    case GD_OP_SET_TRACK_SAMPLE:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, ",\"sampleId\":");
        gd_json_str(b, t->sample_id);
        gd_buf_puts(b, ",\"name\":");
        gd_json_str(b, t->name);
        break;
    case GD_OP_SET_TRACK_VOLUME:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, ",\"volume\":");
        gd_json_num(b, t->volume);
        break;
    case GD_OP_SET_TRACK_TRANSPOSE:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, ",\"transpose\":");
        gd_json_num(b, t->transpose);
        break;
    case GD_OP_SET_TRACK_STEP_COUNT:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_printf(b, ",\"stepCount\":%d", t->step_count);
        break;
    case GD_OP_SET_TRACK_PLAYBACK_MODE:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, t->playback_mode == GD_MODE_GATE ? ",\"playbackMode\":\"gate\""
                                                        : ",\"playbackMode\":\"oneshot\"");
        break;
    case GD_OP_SET_EFFECTS:
        gd_buf_puts(b, ",\"effects\":");
        gd_effects_write(b, &s->effects);
        break;
    case GD_OP_SET_FM_PARAMS:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, ",\"fmParams\":{\"harmonicity\":");
        gd_json_num(b, t->fm_harmonicity);
        gd_buf_puts(b, ",\"modulationIndex\":");
        gd_json_num(b, t->fm_modulation_index);
        gd_buf_putc(b, '}');
        break;
    case GD_OP_COPY_SEQUENCE:
    case GD_OP_MOVE_SEQUENCE: {
        const gd_track *to = s->tracks[gd_state_find_track(s, op->track_id2)];
        write_track_ref(b, "fromTrackId", op->track_id);
        write_track_ref(b, "toTrackId", op->track_id2);
        gd_buf_puts(b, ",\"steps\":[");
        for (int k = 0; k < GD_MAX_STEPS; k++)
            gd_buf_puts(b, to->steps[k] ? (k ? ",true" : "true") : (k ? ",false" : "false"));
        gd_buf_puts(b, "],\"parameterLocks\":[");
        for (int k = 0; k < GD_MAX_STEPS; k++) {
            if (k) gd_buf_putc(b, ',');
            gd_buf_puts(b, to->locks[k] ? to->locks[k] : "null");
        }
        gd_buf_printf(b, "],\"stepCount\":%d", to->step_count);
        break;
    }
    case GD_OP_SET_SESSION_NAME:
    case GD_OP_RENAME:
        gd_buf_puts(b, ",\"name\":");
        gd_json_str(b, rec->name ? rec->name : "");
        break;
    case GD_OP_MUTE_TRACK:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, op->flag ? ",\"muted\":true" : ",\"muted\":false");
        break;
    case GD_OP_SOLO_TRACK:
        write_track_ref(b, "trackId", op->track_id);
        gd_buf_puts(b, op->flag ? ",\"soloed\":true" : ",\"soloed\":false");
        break;
    default:
        break;
    }
    gd_buf_puts(b, ",\"playerId\":");
    if (player_id)
        gd_json_str(b, player_id);
    else
        gd_buf_puts(b, "null");
    if (res->seqd) {
        gd_buf_puts(b, ",\"seq\":");
        gd_buf_putint(b, (long long)rec->server_seq);
        if (client_seq) {
            gd_buf_puts(b, ",\"clientSeq\":");
            gd_buf_puts(b, client_seq);
        }
    }
    gd_buf_putc(b, '}');
}
