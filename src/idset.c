/*
 * idset — see idset.h. Linear probing with backward-shift deletion; ids are
 * random UUIDs, so their leading bytes are already a good hash.
 */
#include "idset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool gd_id_pack(const char *id, uint8_t out[16])
{
    int k = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-') return false;
            continue;
        }
        int h = hexval(id[i]);
        if (h < 0) return false;
        int l = hexval(id[i + 1]);
        if (l < 0) return false;
        out[k++] = (uint8_t)(h << 4 | l);
        i++;
    }
    return true;
}

static size_t slot_of(const gd_idset *s, const uint8_t key[16])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 32)) & (s->cap - 1);
}

void gd_idset_init(gd_idset *s)
{
    memset(s, 0, sizeof(*s));
}

void gd_idset_free(gd_idset *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

static int grow(gd_idset *s)
{
    gd_idset bigger = {.cap = s->cap ? s->cap * 2 : 1024};
    bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
    if (!bigger.slots) return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i].used) continue;
        size_t j = slot_of(&bigger, s->slots[i].key);
        while (bigger.slots[j].used)
            j = (j + 1) & (bigger.cap - 1);
        bigger.slots[j] = s->slots[i];
        bigger.n++;
    }
    free(s->slots);
    *s = bigger;
    return 0;
}

int gd_idset_add(gd_idset *s, const char *id)
{
    int64_t v;
    if (gd_idset_get(s, id, &v)) return 0;
    return gd_idset_put(s, id, 0);
}

int gd_idset_put(gd_idset *s, const char *id, int64_t val)
{
    uint8_t key[16];
    if (!gd_id_pack(id, key)) return -EINVAL;
    if ((s->n + 1) * 4 > s->cap * 3 && grow(s) != 0) return -ENOMEM;
    size_t i = slot_of(s, key);
    while (s->slots[i].used) {
        if (memcmp(s->slots[i].key, key, 16) == 0) {
            s->slots[i].val = val;
            return 0;
        }
        i = (i + 1) & (s->cap - 1);
    }
    s->slots[i].used = 1;
    memcpy(s->slots[i].key, key, 16);
    s->slots[i].val = val;
    s->n++;
    return 0;
}

static bool find(const gd_idset *s, const char *id, size_t *at)
{
    uint8_t key[16];
    if (!s->cap || !gd_id_pack(id, key)) return false;
    size_t i = slot_of(s, key);
    while (s->slots[i].used) {
        if (memcmp(s->slots[i].key, key, 16) == 0) {
            *at = i;
            return true;
        }
        i = (i + 1) & (s->cap - 1);
    }
    return false;
}

bool gd_idset_has(const gd_idset *s, const char *id)
{
    size_t at;
    return find(s, id, &at);
}

bool gd_idset_get(const gd_idset *s, const char *id, int64_t *val)
{
    size_t at;
    if (!find(s, id, &at)) return false;
    *val = s->slots[at].val;
    return true;
}

void gd_idset_remove(gd_idset *s, const char *id)
{
    size_t i;
    if (!find(s, id, &i)) return;
    s->slots[i].used = 0;
    s->n--;
    /* Backward-shift the following cluster so lookups never stop early. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & (s->cap - 1);
        if (!s->slots[j].used) break;
        size_t home = slot_of(s, s->slots[j].key);
        bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            s->slots[i] = s->slots[j];
            s->slots[j].used = 0;
            i = j;
        }
    }
}
