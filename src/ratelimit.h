/*
 * ratelimit — per-client-address bookkeeping with bounded memory: exact
 * token buckets (creates, listings, cold loads) and exact counters (open
 * connections). Free-standing (libc only): the caller passes the clock.
 *
 * Addresses are normalised before use: an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is the IPv4 address a.b.c.d, so one client is one key
 * whichever way the socket layer spells it. Limits apply to a key: an IPv4
 * address, or the /64 prefix of an IPv6 address (one IPv6 host owns a whole
 * /64, so per-address keys would let it mint fresh buckets at will).
 *
 * Each table is open addressing with a keyed hash (random per process, so
 * nobody can aim collisions at one probe chain). A bucket table never holds
 * more than max_entries keys. When it is full, entries whose bucket has
 * refilled to the brim are dropped (they carry no state: a new entry for
 * that key starts full too); if every entry still carries state, the new key
 * shares one overflow bucket with every other key that found no room. So an
 * address never regains tokens by being pushed out, and a flood of fresh
 * addresses gets one address's rate, not one per address.
 *
 * Tables are used by one thread (the loop); nothing here locks.
 */
#ifndef GD_RATELIMIT_H
#define GD_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* A normalised address: 16 bytes, IPv4 stored as ::ffff:a.b.c.d. */
typedef struct gd_addr {
    uint8_t b[16];
} gd_addr;

/* Parses an IPv4 or IPv6 literal ("1.2.3.4", "::1", "::ffff:1.2.3.4",
 * "[2001:db8::1]"), ignoring surrounding blanks. 0, or -EINVAL when text is
 * not an address. */
int gd_addr_parse(const char *text, gd_addr *out);
/* Parses at most len bytes of text (not NUL-terminated). */
int gd_addr_parse_n(const char *text, size_t len, gd_addr *out);
/* From a socket address (AF_INET or AF_INET6); -EINVAL for other families. */
int gd_addr_from_sockaddr(const struct sockaddr *sa, gd_addr *out);
bool gd_addr_is_v4(const gd_addr *a);
bool gd_addr_equal(const gd_addr *a, const gd_addr *b);
/* Writes "1.2.3.4" (for IPv4 and IPv4-mapped) or the RFC 5952 IPv6 text. */
void gd_addr_format(const gd_addr *a, char *out, size_t len);
/* The key limits apply to: the address for IPv4, its /64 for IPv6. */
gd_addr gd_addr_limit_key(const gd_addr *a);

/*
 * The client address of an HTTP request. `peer` is the socket's peer; when
 * it equals `trusted_proxy` (non-NULL), the right-most X-Forwarded-For entry
 * (`xff`, may be NULL) is the client: that is the one the proxy appended,
 * everything left of it was written by the client and proves nothing.
 * Falls back to the peer when the header is absent or its last entry is
 * not an address. Returns true when the header was believed.
 */
bool gd_addr_client(const gd_addr *peer, const gd_addr *trusted_proxy, const char *xff,
                    gd_addr *out);

typedef struct gd_addr_entry gd_addr_entry;

typedef struct gd_addr_table {
    gd_addr_entry *e;
    size_t cap, n; /* cap a power of two (or 0), n used slots */
    uint64_t k0, k1;
} gd_addr_table;

/* ---- token buckets ---------------------------------------------------- */

typedef struct gd_ratelimit {
    gd_addr_table t;
    double per_ms;      /* tokens added per millisecond */
    double burst;       /* bucket size */
    size_t max_entries; /* keys tracked exactly */
    double overflow_tokens;
    int64_t overflow_at_ms;
    int64_t swept_at_ms; /* last full sweep, when `swept` */
    bool swept;
    uint64_t overflowed; /* takes that went to the overflow bucket */
} gd_ratelimit;

/* `per_minute` tokens a minute, up to `burst` stored; at most max_entries
 * keys (>= 1). 0 or -ENOMEM/-EINVAL. */
int gd_ratelimit_init(gd_ratelimit *rl, double per_minute, double burst, size_t max_entries);
void gd_ratelimit_free(gd_ratelimit *rl);
/* Takes one token for a's key. True when there was one; otherwise false
 * and *retry_after_s (may be NULL) is the whole seconds until there is. */
bool gd_ratelimit_take(gd_ratelimit *rl, const gd_addr *a, int64_t now_ms, int *retry_after_s);
/* Keys tracked exactly right now. */
size_t gd_ratelimit_size(const gd_ratelimit *rl);

/* ---- counters --------------------------------------------------------- */

/* Open connections per key. A key is present exactly while its count is
 * above zero, so the table never holds more keys than open connections. */
typedef struct gd_conncount {
    gd_addr_table t;
    size_t total;
} gd_conncount;

int gd_conncount_init(gd_conncount *cc);
void gd_conncount_free(gd_conncount *cc);
/* Adds one for a's key unless it already has `limit` (returns -EMFILE) or
 * memory runs out (-ENOMEM). */
int gd_conncount_add(gd_conncount *cc, const gd_addr *a, int limit);
/* Removes one added by gd_conncount_add. */
void gd_conncount_remove(gd_conncount *cc, const gd_addr *a);
int gd_conncount_get(const gd_conncount *cc, const gd_addr *a);

#endif
