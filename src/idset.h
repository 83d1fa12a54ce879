/*
 * idset — a growable open-addressing map from 36-character session ids (kept
 * as 16 binary bytes) to an int64 value. The loop thread uses it as a set
 * ("does this session exist?" without touching the disk); the storage thread
 * as a map (first unfolded log row of each session). Free-standing; not
 * thread-safe: each instance belongs to one thread.
 */
#ifndef GD_IDSET_H
#define GD_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gd_idslot {
    uint8_t used;
    uint8_t key[16];
    int64_t val;
} gd_idslot;

typedef struct gd_idset {
    gd_idslot *slots;
    size_t cap, n;
} gd_idset;

void gd_idset_init(gd_idset *s);
void gd_idset_free(gd_idset *s);
/* 0, -EINVAL for an id that is not 8-4-4-4-12 hex, or -ENOMEM. */
int gd_idset_add(gd_idset *s, const char *id);
bool gd_idset_has(const gd_idset *s, const char *id);
/* Adds or updates id with val. 0, -EINVAL or -ENOMEM. */
int gd_idset_put(gd_idset *s, const char *id, int64_t val);
/* True and *val set when id is present. */
bool gd_idset_get(const gd_idset *s, const char *id, int64_t *val);
/* Packs an id into its 16 bytes; false if it is not 8-4-4-4-12 hex. */
bool gd_id_pack(const char *id, uint8_t out[16]);
void gd_idset_remove(gd_idset *s, const char *id);

#endif
