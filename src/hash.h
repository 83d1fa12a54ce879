/*
 * hash — the reference's state hash (§3.7): canonical JSON of tracks, tempo
 * and swing, hashed over UTF-16 code units with h = h*31 + c mod 2^32.
 * Free-standing; any thread.
 */
#ifndef GD_HASH_H
#define GD_HASH_H

#include <stdint.h>

#include "jsonw.h"
#include "model.h"

/* Appends the canonical JSON of s (the exact string the reference hashes). */
void gd_state_canonical(gd_buf *b, const gd_state *s);
/* The hash of a UTF-8 string over its UTF-16 code units. */
uint32_t gd_hash_utf16(const char *s, size_t len);
/* Writes the 8-hex-digit state hash into out[9]. 0 or -ENOMEM. */
int gd_state_hash(const gd_state *s, char out[9]);

#endif
