/*
 * ratelimit — see ratelimit.h. The hash is SipHash-2-4 keyed once per
 * process from getrandom(); deletion uses backward shifting, so probe chains
 * never fill with tombstones.
 */
#define _GNU_SOURCE
#include "ratelimit.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

struct gd_addr_entry {
    gd_addr key;
    bool used;
    int count;
    double tokens;
    int64_t at_ms;
};

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* ---- addresses -------------------------------------------------------- */

int gd_addr_parse_n(const char *text, size_t len, gd_addr *out)
{
    while (len && isspace((unsigned char)*text))
        text++, len--;
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') text++, len -= 2;
    char buf[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof(buf)) return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        memcpy(out->b, v4_prefix, 12);
        memcpy(out->b + 12, &v4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->b) == 1) return 0;
    return -EINVAL;
}

int gd_addr_parse(const char *text, gd_addr *out)
{
    return text ? gd_addr_parse_n(text, strlen(text), out) : -EINVAL;
}

int gd_addr_from_sockaddr(const struct sockaddr *sa, gd_addr *out)
{
    if (sa->sa_family == AF_INET) {
        memcpy(out->b, v4_prefix, 12);
        memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -EINVAL;
}

bool gd_addr_is_v4(const gd_addr *a)
{
    return memcmp(a->b, v4_prefix, 12) == 0;
}

bool gd_addr_equal(const gd_addr *a, const gd_addr *b)
{
    return memcmp(a->b, b->b, 16) == 0;
}

void gd_addr_format(const gd_addr *a, char *out, size_t len)
{
    if (!len) return;
    const char *r = gd_addr_is_v4(a) ? inet_ntop(AF_INET, a->b + 12, out, (socklen_t)len)
                                     : inet_ntop(AF_INET6, a->b, out, (socklen_t)len);
    if (!r) out[0] = '\0';
}

gd_addr gd_addr_limit_key(const gd_addr *a)
{
    gd_addr k = *a;
    if (!gd_addr_is_v4(a)) memset(k.b + 8, 0, 8);
    return k;
}

bool gd_addr_client(const gd_addr *peer, const gd_addr *trusted_proxy, const char *xff,
                    gd_addr *out)
{
    *out = *peer;
    if (!trusted_proxy || !xff || !gd_addr_equal(peer, trusted_proxy)) return false;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    gd_addr client;
    if (gd_addr_parse(last, &client) != 0) return false;
    *out = client;
    return true;
}

/* ---- the table -------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-2-4 of the 16 key bytes. */
static uint64_t addr_hash(const gd_addr_table *t, const gd_addr *a)
{
    uint64_t v0 = t->k0 ^ 0x736f6d6570736575ull, v1 = t->k1 ^ 0x646f72616e646f6dull,
             v2 = t->k0 ^ 0x6c7967656e657261ull, v3 = t->k1 ^ 0x7465646279746573ull;
    for (int w = 0; w < 2; w++) {
        uint64_t m = 0;
        for (int i = 7; i >= 0; i--)
            m = (m << 8) | a->b[w * 8 + i];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t m = (uint64_t)16 << 56;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void table_init(gd_addr_table *t)
{
    memset(t, 0, sizeof(*t));
    if (getrandom(&t->k0, sizeof(t->k0), GRND_NONBLOCK) != sizeof(t->k0) ||
        getrandom(&t->k1, sizeof(t->k1), GRND_NONBLOCK) != sizeof(t->k1)) {
        /* No entropy yet (early boot): still keyed, if guessably. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t->k0 = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
        t->k1 = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)t;
    }
}

static void table_free(gd_addr_table *t)
{
    free(t->e);
    t->e = NULL;
    t->cap = t->n = 0;
}

/* The slot holding key, or NULL. */
static gd_addr_entry *table_find(const gd_addr_table *t, const gd_addr *key)
{
    if (!t->cap) return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = addr_hash(t, key) & mask;; i = (i + 1) & mask) {
        gd_addr_entry *e = &t->e[i];
        if (!e->used) return NULL;
        if (gd_addr_equal(&e->key, key)) return e;
    }
}

static int table_resize(gd_addr_table *t, size_t cap)
{
    gd_addr_entry *e = calloc(cap, sizeof(*e));
    if (!e) return -ENOMEM;
    gd_addr_entry *old = t->e;
    size_t oldcap = t->cap;
    t->e = e;
    t->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].used) continue;
        size_t j = addr_hash(t, &old[i].key) & (cap - 1);
        while (e[j].used)
            j = (j + 1) & (cap - 1);
        e[j] = old[i];
    }
    free(old);
    return 0;
}

/* Inserts key (absent) with zeroed fields; keeps the load at most 1/2. */
static gd_addr_entry *table_insert(gd_addr_table *t, const gd_addr *key)
{
    if ((t->n + 1) * 2 > t->cap && table_resize(t, t->cap ? t->cap * 2 : 16) != 0) return NULL;
    size_t mask = t->cap - 1, i = addr_hash(t, key) & mask;
    while (t->e[i].used)
        i = (i + 1) & mask;
    memset(&t->e[i], 0, sizeof(t->e[i]));
    t->e[i].key = *key;
    t->e[i].used = true;
    t->n++;
    return &t->e[i];
}

/* Removes the entry at e, shifting later members of its chain back. */
static void table_delete(gd_addr_table *t, gd_addr_entry *e)
{
    size_t mask = t->cap - 1, i = (size_t)(e - t->e), j = i;
    t->e[i].used = false;
    t->n--;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->e[j].used) return;
        size_t home = addr_hash(t, &t->e[j].key) & mask;
        /* Move j back to the hole i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        t->e[i] = t->e[j];
        t->e[j].used = false;
        i = j;
    }
}

/* ---- token buckets ---------------------------------------------------- */

int gd_ratelimit_init(gd_ratelimit *rl, double per_minute, double burst, size_t max_entries)
{
    memset(rl, 0, sizeof(*rl));
    if (!(per_minute > 0) || !(burst >= 1) || max_entries < 1) return -EINVAL;
    table_init(&rl->t);
    rl->per_ms = per_minute / 60000.0;
    rl->burst = burst;
    rl->max_entries = max_entries;
    rl->overflow_tokens = burst;
    return 0;
}

void gd_ratelimit_free(gd_ratelimit *rl)
{
    table_free(&rl->t);
}

size_t gd_ratelimit_size(const gd_ratelimit *rl)
{
    return rl->t.n;
}

static double refilled(const gd_ratelimit *rl, double tokens, int64_t at_ms, int64_t now_ms)
{
    double t = tokens + (now_ms > at_ms ? (double)(now_ms - at_ms) * rl->per_ms : 0);
    return t > rl->burst ? rl->burst : t;
}

/* Drops every entry whose bucket is full again: forgetting it changes nothing. */
static void sweep_full(gd_ratelimit *rl, int64_t now_ms)
{
    rl->swept_at_ms = now_ms;
    rl->swept = true;
    for (size_t i = 0; i < rl->t.cap;) {
        gd_addr_entry *e = &rl->t.e[i];
        if (e->used && refilled(rl, e->tokens, e->at_ms, now_ms) >= rl->burst)
            table_delete(&rl->t, e); /* a later entry may have moved into i: look again */
        else
            i++;
    }
}

static bool take_from(gd_ratelimit *rl, double *tokens, int64_t *at_ms, int64_t now_ms,
                      int *retry_after_s)
{
    *tokens = refilled(rl, *tokens, *at_ms, now_ms);
    *at_ms = now_ms;
    if (*tokens >= 1) {
        *tokens -= 1;
        return true;
    }
    if (retry_after_s) {
        double wait_s = ceil((1 - *tokens) / rl->per_ms / 1000);
        *retry_after_s = wait_s < 1 ? 1 : wait_s > 86400 ? 86400 : (int)wait_s;
    }
    return false;
}

bool gd_ratelimit_take(gd_ratelimit *rl, const gd_addr *a, int64_t now_ms, int *retry_after_s)
{
    gd_addr key = gd_addr_limit_key(a);
    gd_addr_entry *e = table_find(&rl->t, &key);
    if (!e) {
        /* Sweeping scans the whole table: at most once per second, so a
         * stream of fresh addresses cannot make every request pay for it. */
        if (rl->t.n >= rl->max_entries && (!rl->swept || now_ms - rl->swept_at_ms >= 1000))
            sweep_full(rl, now_ms);
        if (rl->t.n < rl->max_entries) e = table_insert(&rl->t, &key);
        if (!e) {
            rl->overflowed++;
            return take_from(rl, &rl->overflow_tokens, &rl->overflow_at_ms, now_ms, retry_after_s);
        }
        e->tokens = rl->burst;
        e->at_ms = now_ms;
    }
    return take_from(rl, &e->tokens, &e->at_ms, now_ms, retry_after_s);
}

/* ---- counters --------------------------------------------------------- */

int gd_conncount_init(gd_conncount *cc)
{
    memset(cc, 0, sizeof(*cc));
    table_init(&cc->t);
    return 0;
}

void gd_conncount_free(gd_conncount *cc)
{
    table_free(&cc->t);
    cc->total = 0;
}

int gd_conncount_add(gd_conncount *cc, const gd_addr *a, int limit)
{
    gd_addr key = gd_addr_limit_key(a);
    gd_addr_entry *e = table_find(&cc->t, &key);
    if (e && e->count >= limit) return -EMFILE;
    if (!e && limit < 1) return -EMFILE;
    if (!e && !(e = table_insert(&cc->t, &key))) return -ENOMEM;
    e->count++;
    cc->total++;
    return 0;
}

void gd_conncount_remove(gd_conncount *cc, const gd_addr *a)
{
    gd_addr key = gd_addr_limit_key(a);
    gd_addr_entry *e = table_find(&cc->t, &key);
    if (!e) return;
    cc->total--;
    if (--e->count <= 0) table_delete(&cc->t, e);
}

int gd_conncount_get(const gd_conncount *cc, const gd_addr *a)
{
    gd_addr key = gd_addr_limit_key(a);
    const gd_addr_entry *e = table_find(&cc->t, &key);
    return e ? e->count : 0;
}
