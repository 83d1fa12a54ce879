/*
 * identity — player identity (colour, animal, display name) derived from the
 * player id exactly as the reference does (§1.8), and UUID v4 generation and
 * shape checks. Free-standing; any thread.
 */
#ifndef GD_IDENTITY_H
#define GD_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct gd_identity {
    int32_t hash;
    int color_index;
    int animal_index;
    const char *color;      /* static */
    const char *color_name; /* static */
    const char *animal;     /* static */
    char name[48];          /* "<ColorName> <Animal>" */
} gd_identity;

/* id is UTF-8; the hash runs over its UTF-16 code units like the reference. */
void gd_identity_derive(const char *id, gd_identity *out);

/* Writes a random lower-case UUID v4 (37 bytes with NUL). 0 or -EIO. */
int gd_uuid_v4(char out[37]);
/* 8-4-4-4-12 hex, case-insensitive (the reference's format check). */
bool gd_uuid_shape_ok(const char *s, int len);
/* The route pattern [a-f0-9-]{36}. */
bool gd_id_pattern_ok(const char *s, int len);

#endif
