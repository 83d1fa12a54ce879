/*
 * model — the pure data model of a session: metadata, tracks, tempo, swing,
 * effects, serverSeq. Validation and normalisation of untrusted JSON into the
 * model (REST bodies, add_track) and serialisation back to the wire shapes of
 * the reference protocol. Free-standing (libc + jansson + jsonw), no clocks,
 * no I/O; safe on any thread, objects owned by their caller.
 *
 * Invariants of a gd_record after any gd_* function returns 0:
 *   0 <= ntracks <= 16; track ids unique, non-empty; steps/locks are 128 long;
 *   every number finite and within the bounds of the protocol's table §1.1;
 *   playback_mode is oneshot or gate; step_count one of the 9 valid counts.
 */
#ifndef GD_MODEL_H
#define GD_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "jsonw.h"

#define GD_MAX_TRACKS 16
#define GD_MAX_STEPS 128
#define GD_MAX_NAME_CP 100
#define GD_MAX_ID_BYTES 256
#define GD_DEFAULT_TEMPO 120.0

enum { GD_MODE_ONESHOT = 0, GD_MODE_GATE = 1 };

typedef struct gd_track {
    char *id;        /* owned, non-empty */
    char *name;      /* owned */
    char *sample_id; /* owned */
    bool steps[GD_MAX_STEPS];
    char *locks[GD_MAX_STEPS]; /* owned compact JSON object text, NULL = no lock */
    double volume;
    double transpose;
    int step_count;
    bool muted;
    bool soloed;
    int playback_mode;
    bool has_fm;
    double fm_harmonicity;
    double fm_modulation_index;
} gd_track;

typedef struct gd_effects {
    double reverb_decay, reverb_wet;
    char delay_time[4];
    double delay_feedback, delay_wet;
    double chorus_frequency, chorus_depth, chorus_wet;
    double distortion_amount, distortion_wet;
} gd_effects;

typedef struct gd_state {
    gd_track *tracks[GD_MAX_TRACKS]; /* owned */
    int ntracks;
    double tempo;
    double swing;
    bool has_effects;
    gd_effects effects;
} gd_state;

typedef struct gd_record {
    char id[37];
    char *name; /* owned; NULL serialises as null */
    int64_t created_at, updated_at, last_accessed_at;
    char *remixed_from;      /* owned or NULL */
    char *remixed_from_name; /* owned or NULL */
    int64_t remix_count;
    bool immutable;
    uint64_t server_seq; /* last seq'd broadcast number */
    uint64_t opno;       /* number of durable ops applied since creation */
    gd_state state;
} gd_record;

/* Validation error list: up to 8 messages, each a static or owned string. */
typedef struct gd_errors {
    int n;
    char msg[8][96];
} gd_errors;

void gd_errors_add(gd_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lifecycle. gd_*_free accept NULL. */
gd_track *gd_track_new(void);
void gd_track_free(gd_track *t);
gd_track *gd_track_clone(const gd_track *t);           /* NULL on OOM */
void gd_state_init(gd_state *s);                       /* default empty state */
void gd_state_clear(gd_state *s);                      /* frees tracks, back to default */
int gd_state_copy(gd_state *dst, const gd_state *src); /* dst must be clear; 0 or -ENOMEM */
void gd_record_init(gd_record *r, const char *id, int64_t now);
void gd_record_clear(gd_record *r);
int gd_record_copy(gd_record *dst, const gd_record *src);

int gd_state_find_track(const gd_state *s, const char *id); /* index or -1 */

/* Validation modes: REST rejects out-of-range numbers; WS add_track clamps. */
typedef enum { GD_STRICT = 0, GD_CLAMP = 1 } gd_vmode;

/*
 * Parses and normalises a track object. Returns a new track (caller frees)
 * or NULL with messages in errs (prefix is put before each message, e.g.
 * "Track[3]: "). Unknown keys are dropped, in lock objects too.
 */
gd_track *gd_track_from_json(const json_t *j, gd_vmode mode, const char *prefix, gd_errors *errs);

/*
 * Normalises a parameter lock object to its known fields, pitch (-24..24)
 * and volume (0..1), as compact JSON in *out (malloc'd; NULL = no lock).
 * GD_CLAMP (WebSocket) clamps, and makes a lock with a field that is not a
 * finite number, or with neither field, NULL (§1.5). GD_STRICT (REST and
 * stored records) rejects those with -EINVAL. keep_order keeps the received
 * key order (add_track, REST); otherwise pitch comes first. 0, -EINVAL or
 * -ENOMEM.
 */
int gd_lock_from_json(const json_t *j, gd_vmode mode, bool keep_order, char **out);

/*
 * Validates a REST state (§2.15 messages) and fills *out (which must be
 * initialised and empty). Missing fields take defaults. Returns 0 or -EINVAL
 * with errs filled; on error *out is left empty.
 */
int gd_state_from_json(const json_t *j, gd_state *out, gd_errors *errs);

/* Validates and clamps an effects object (every field a number; an unknown
 * delay time becomes "8n"). 0 or -EINVAL with errs filled. */
int gd_effects_from_json(const json_t *j, gd_effects *e, gd_errors *errs);

/* Validates a session name per the one rule of grooved (trim, <= 100 code
 * points, unsafe-content and character-class checks). On success *out is a
 * malloc'd trimmed copy or NULL for an empty name. `raw` may be JSON null. */
int gd_name_from_json(const json_t *raw, char **out, gd_errors *errs);
/* Trims and truncates to 100 code points without content checks; NULL if empty. */
char *gd_name_normalise(const char *s);

/* Serialisers (compact JSON, key order of the reference). */
void gd_track_write(gd_buf *b, const gd_track *t);
void gd_state_write(gd_buf *b, const gd_state *s);
void gd_effects_write(gd_buf *b, const gd_effects *e);
/* The Session object of §1.2; with_seq adds "serverSeq" and "opno" (checkpoints). */
void gd_record_write(gd_buf *b, const gd_record *r, bool with_seq);
/* Parses what gd_record_write wrote (checkpoints and KV values). 0 or -EINVAL. */
int gd_record_from_json(const json_t *j, gd_record *out);
/* Parses the stored text of session id's record (a KV view value): 0, or
 * -EBADMSG (out cleared) when it is not a session record of that id. */
int gd_record_from_text(const char *id, const char *text, size_t len, gd_record *out);

/*
 * Memory: what a track or a record really holds on the heap (each block as
 * glibc's malloc sizes it: a 16-byte-aligned chunk with an 8-byte header,
 * 32 bytes at least). A track may hold at most GD_MAX_TRACK_BYTES, so a
 * state holds at most 16 times that plus the record's strings.
 */
#define GD_MAX_TRACK_BYTES (32 * 1024)
size_t gd_heap_cost(size_t n);
size_t gd_track_mem_bytes(const gd_track *t);
size_t gd_record_mem_bytes(const gd_record *r);

double gd_clamp(double v, double lo, double hi);

bool gd_valid_step_count(double v);

#endif
