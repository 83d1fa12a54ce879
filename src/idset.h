/*
 * idset — a growable open-addressing set of 36-character session ids, kept
 * as 16 binary bytes each. It answers "does this session exist?" on the loop
 * thread without touching the disk. Free-standing; not thread-safe.
 */
#ifndef GD_IDSET_H
#define GD_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gd_idset {
    uint8_t (*slots)[17]; /* [0] = used flag, [1..16] = id bytes */
    size_t cap, n;
} gd_idset;

void gd_idset_init(gd_idset *s);
void gd_idset_free(gd_idset *s);
/* 0, -EINVAL for an id that is not 8-4-4-4-12 hex, or -ENOMEM. */
int gd_idset_add(gd_idset *s, const char *id);
bool gd_idset_has(const gd_idset *s, const char *id);
void gd_idset_remove(gd_idset *s, const char *id);

#endif
