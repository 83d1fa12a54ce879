/*
 * op — the op codec and the pure, deterministic apply function.
 *
 *   client JSON ──gd_op_parse──▶ gd_op (validated, normalised)
 *   gd_op ──gd_op_write_log──▶ log JSON ──gd_op_parse(trusted)──▶ same gd_op
 *   gd_apply(record, op) ──▶ new record state (+ serverSeq, opno, updatedAt)
 *   gd_op_write_broadcast ──▶ the reference's broadcast message
 *
 * Live sessions and crash recovery call the same gd_apply, so it uses nothing
 * but the record and the op (the op carries its timestamp `at`). Normalisation
 * is idempotent: parsing a written log entry yields the same op. Free-standing;
 * any thread; a gd_op owns its strings and is released with gd_op_clear.
 */
#ifndef GD_OP_H
#define GD_OP_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "jsonw.h"
#include "model.h"

typedef enum gd_op_type {
    GD_OP_NONE = 0,
    /* the 17 mutating client types */
    GD_OP_TOGGLE_STEP,
    GD_OP_SET_TEMPO,
    GD_OP_SET_SWING,
    GD_OP_SET_PARAMETER_LOCK,
    GD_OP_ADD_TRACK,
    GD_OP_DELETE_TRACK,
    GD_OP_CLEAR_TRACK,
    GD_OP_SET_TRACK_SAMPLE,
    GD_OP_SET_TRACK_VOLUME,
    GD_OP_SET_TRACK_TRANSPOSE,
    GD_OP_SET_TRACK_STEP_COUNT,
    GD_OP_SET_TRACK_PLAYBACK_MODE,
    GD_OP_SET_EFFECTS,
    GD_OP_SET_FM_PARAMS,
    GD_OP_COPY_SEQUENCE,
    GD_OP_MOVE_SEQUENCE,
    GD_OP_SET_SESSION_NAME,
    /* stored, but broadcast without seq */
    GD_OP_MUTE_TRACK,
    GD_OP_SOLO_TRACK,
    /* internal: written by REST through the session's single writer */
    GD_OP_REPLACE_STATE, /* PUT */
    GD_OP_RENAME,        /* PATCH: broadcast as session_name_changed */
    GD_OP_REMIX_COUNT,   /* a remix of this session was made */
    GD_OP__COUNT
} gd_op_type;

typedef struct gd_op {
    gd_op_type type;
    int64_t at;      /* ms since epoch, assigned when accepted */
    char *track_id;  /* owned */
    char *track_id2; /* owned: toTrackId */
    int step;
    double num;
    bool flag;
    char *str;       /* owned: sampleId, session name (NULL = null) */
    char *str2;      /* owned: track name for set_track_sample */
    char *lock;      /* owned JSON of a sanitised lock, NULL = null */
    gd_track *track; /* owned: add_track */
    gd_state *state; /* owned: replace_state */
    gd_effects effects;
    double fm_h, fm_m;
} gd_op;

typedef struct gd_apply_res {
    bool seqd;    /* carries seq (and clientSeq) */
    bool changed; /* the state changed (false for confirmations) */
    bool value;   /* toggle_step: the new value */
} gd_apply_res;

/* Error codes of the protocol, as strings. */
#define GD_E_INVALID_JSON "INVALID_JSON"
#define GD_E_MESSAGE_TOO_LARGE "MESSAGE_TOO_LARGE"
#define GD_E_UNKNOWN_TYPE "UNKNOWN_TYPE"
#define GD_E_INVALID_FIELD "INVALID_FIELD"
#define GD_E_TRACK_NOT_FOUND "TRACK_NOT_FOUND"
#define GD_E_TOO_MANY_TRACKS "TOO_MANY_TRACKS"
#define GD_E_SESSION_PUBLISHED "SESSION_PUBLISHED"
#define GD_E_RATE_LIMITED "RATE_LIMITED"
#define GD_E_STORAGE_UNAVAILABLE "STORAGE_UNAVAILABLE"
#define GD_E_SESSION_UNAVAILABLE "SESSION_UNAVAILABLE"
#define GD_E_SESSION_MOVED "SESSION_MOVED"

typedef struct gd_op_err {
    const char *code; /* one of GD_E_* */
    char message[160];
} gd_op_err;

/* The op type of a client `type` string, or GD_OP_NONE. Internal types are
 * only found with internal = true. */
gd_op_type gd_op_type_from_name(const char *name, bool internal);
const char *gd_op_type_name(gd_op_type t);
bool gd_op_is_mutating(gd_op_type t); /* blocked on published sessions */

/*
 * Validates and normalises msg into *op (zeroed first). trusted = true reads
 * the log format (internal types allowed, names not re-checked for content).
 * Returns 0, or -EINVAL with err filled and *op cleared.
 */
int gd_op_parse(const json_t *msg, bool trusted, gd_op *op, gd_op_err *err);
void gd_op_clear(gd_op *op);

/* Appends the log form of op (compact JSON object). */
void gd_op_write_log(gd_buf *b, const gd_op *op);

/*
 * The compact log form used by the op log: toggle_step, the hot path, is
 *   [0x01][at: LEB128 varint][step: u8][trackId length: u8][trackId]
 * and every other op (or a toggle with a track id over 255 bytes) is
 *   [0x00][the JSON log form of gd_op_write_log]
 * gd_op_parse_compact reads either (trusted, like gd_op_parse(..., true)).
 */
void gd_op_write_compact(gd_buf *b, const gd_op *op);
int gd_op_parse_compact(const uint8_t *p, size_t n, gd_op *op, gd_op_err *err);

/*
 * Applies op to rec. On success returns 0, fills res, increments rec->opno
 * (and rec->server_seq when res->seqd) and sets rec->updated_at = op->at.
 * On a state-dependent rejection returns -ENOENT (track not found, err code
 * TRACK_NOT_FOUND) or -ENOSPC (TOO_MANY_TRACKS) or -ENOMEM, and rec is
 * unchanged. Takes ownership of nothing; op->track / op->state are copied.
 */
int gd_apply(gd_record *rec, const gd_op *op, gd_apply_res *res, gd_op_err *err);

/*
 * Replays the stored op number opno (compact form) onto rec, as recovery and
 * loads do: an op rec already holds is skipped (1), the next one is applied
 * (0); a gap gives -EILSEQ, an op that does not parse or apply -EINVAL.
 */
int gd_op_replay(gd_record *rec, uint64_t opno, const uint8_t *op, size_t len);

/*
 * Appends the broadcast for an applied op: reads the post-apply record.
 * player_id may be NULL (REST writes: serialised as null). client_seq is the
 * JSON text of the sender's `seq`, or NULL when it had none.
 */
void gd_op_write_broadcast(gd_buf *b, const gd_record *rec, const gd_op *op,
                           const gd_apply_res *res, const char *player_id, const char *client_seq);

#endif
