/* Unit tests for ratelimit: address normalisation, the trusted proxy's
 * X-Forwarded-For entry, exact bounded token buckets (no shared slots, no
 * refill by eviction), and the per-address connection counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ratelimit.h"

static gd_addr A(const char *s)
{
    gd_addr a;
    assert_int_equal(gd_addr_parse(s, &a), 0);
    return a;
}

static void fmt_is(const gd_addr *a, const char *want)
{
    char buf[64];
    gd_addr_format(a, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_parse_and_normalise(void **state)
{
    (void)state;
    gd_addr a = A("127.0.0.1"), b = A("::ffff:127.0.0.1"), c = A(" [::ffff:127.0.0.1] ");
    assert_true(gd_addr_equal(&a, &b));
    assert_true(gd_addr_equal(&a, &c));
    assert_true(gd_addr_is_v4(&b));
    fmt_is(&b, "127.0.0.1");
    gd_addr v6 = A("2001:DB8:0:0::1");
    assert_false(gd_addr_is_v4(&v6));
    fmt_is(&v6, "2001:db8::1");
    gd_addr x;
    const char *bad[] = {"", "abc", "1.2.3", "1.2.3.4:80", "1.2.3.4.5", "::g", "unknown", " , "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gd_addr_parse(bad[i], &x), -22);
    assert_int_equal(gd_addr_parse(NULL, &x), -22);
}

static void test_limit_key_groups_ipv6_by_64(void **state)
{
    (void)state;
    gd_addr a = A("2001:db8:1:2:aaaa::1"), b = A("2001:db8:1:2:bbbb::7"), c = A("2001:db8:1:3::1");
    gd_addr ka = gd_addr_limit_key(&a), kb = gd_addr_limit_key(&b), kc = gd_addr_limit_key(&c);
    assert_true(gd_addr_equal(&ka, &kb));
    assert_false(gd_addr_equal(&ka, &kc));
    gd_addr v4a = A("10.0.0.1"), v4b = A("10.0.0.2");
    gd_addr k4a = gd_addr_limit_key(&v4a), k4b = gd_addr_limit_key(&v4b);
    assert_false(gd_addr_equal(&k4a, &k4b));
}

static void test_client_takes_rightmost_entry_from_trusted_proxy_only(void **state)
{
    (void)state;
    gd_addr proxy = A("127.0.0.1"), peer_mapped = A("::ffff:127.0.0.1"), other = A("10.1.1.1");
    gd_addr out;
    /* The peer spelled as IPv4-mapped IPv6 is the configured IPv4 proxy. */
    assert_true(gd_addr_client(&peer_mapped, &proxy, "6.6.6.6, 198.51.100.7", &out));
    fmt_is(&out, "198.51.100.7");
    assert_true(gd_addr_client(&peer_mapped, &proxy, " 198.51.100.8 ", &out));
    fmt_is(&out, "198.51.100.8");
    /* Not from the proxy: the header is the client's own claim. */
    assert_false(gd_addr_client(&other, &proxy, "198.51.100.7", &out));
    assert_true(gd_addr_equal(&out, &other));
    /* No proxy configured, no header, or a last entry that is no address. */
    assert_false(gd_addr_client(&peer_mapped, NULL, "198.51.100.7", &out));
    assert_false(gd_addr_client(&peer_mapped, &proxy, NULL, &out));
    assert_false(gd_addr_client(&peer_mapped, &proxy, "198.51.100.7, bogus", &out));
    assert_true(gd_addr_equal(&out, &proxy));
    assert_true(gd_addr_client(&peer_mapped, &proxy, "1.1.1.1,2001:db8::5", &out));
    fmt_is(&out, "2001:db8::5");
}

static void test_bucket_limits_and_refills(void **state)
{
    (void)state;
    gd_ratelimit rl;
    assert_int_equal(gd_ratelimit_init(&rl, 60, 10, 100), 0); /* one a second, 10 stored */
    gd_addr a = A("192.0.2.1");
    int retry = 0;
    for (int i = 0; i < 10; i++)
        assert_true(gd_ratelimit_take(&rl, &a, 1000, &retry));
    assert_false(gd_ratelimit_take(&rl, &a, 1000, &retry));
    assert_int_equal(retry, 1);
    assert_false(gd_ratelimit_take(&rl, &a, 1500, &retry));
    assert_true(gd_ratelimit_take(&rl, &a, 2001, &retry));
    assert_false(gd_ratelimit_take(&rl, &a, 2001, &retry));
    gd_ratelimit_free(&rl);
}

/* The reported attack: alternating two addresses through a 4,096-slot
 * table that let them share a slot got 199 of 200 through a limit of 10. */
static void test_alternating_addresses_never_share_or_reset_a_bucket(void **state)
{
    (void)state;
    gd_ratelimit rl;
    assert_int_equal(gd_ratelimit_init(&rl, 10, 10, 2), 0);
    char ip[32];
    int allowed = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(ip, sizeof(ip), "198.51.100.%d", 1 + i % 2);
        gd_addr a = A(ip);
        allowed += gd_ratelimit_take(&rl, &a, 5000, NULL);
    }
    assert_int_equal(allowed, 20); /* exactly each one's own 10 */
    gd_ratelimit_free(&rl);
}

static void test_table_is_bounded_and_eviction_never_refills(void **state)
{
    (void)state;
    gd_ratelimit rl;
    assert_int_equal(gd_ratelimit_init(&rl, 6, 3, 4), 0); /* 0.1/s, 3 stored, 4 keys */
    char ip[32];
    /* Four addresses exhaust their buckets. */
    for (int k = 0; k < 4; k++) {
        snprintf(ip, sizeof(ip), "203.0.113.%d", k);
        gd_addr a = A(ip);
        for (int i = 0; i < 3; i++)
            assert_true(gd_ratelimit_take(&rl, &a, 0, NULL));
        assert_false(gd_ratelimit_take(&rl, &a, 0, NULL));
    }
    assert_int_equal(gd_ratelimit_size(&rl), 4);
    /* A thousand fresh addresses: no room, so they share one overflow bucket
     * (3 tokens) instead of getting 3 each, and nobody is pushed out. */
    int allowed = 0;
    for (int k = 0; k < 1000; k++) {
        snprintf(ip, sizeof(ip), "10.9.%d.%d", k / 250, k % 250);
        gd_addr a = A(ip);
        allowed += gd_ratelimit_take(&rl, &a, 2000, NULL);
    }
    assert_int_equal(allowed, 3);
    assert_int_equal(gd_ratelimit_size(&rl), 4);
    gd_addr first = A("203.0.113.0");
    assert_false(gd_ratelimit_take(&rl, &first, 2000, NULL)); /* still limited, not reset */
    /* Once the old buckets have refilled (30 s), they are forgotten and new
     * addresses get exact buckets again. */
    gd_addr fresh = A("10.200.0.1");
    for (int i = 0; i < 3; i++)
        assert_true(gd_ratelimit_take(&rl, &fresh, 40000, NULL));
    assert_false(gd_ratelimit_take(&rl, &fresh, 40000, NULL));
    assert_true(gd_ratelimit_size(&rl) <= 4);
    gd_ratelimit_free(&rl);
}

static void test_conncount_exact_and_bounded(void **state)
{
    (void)state;
    gd_conncount cc;
    gd_conncount_init(&cc);
    gd_addr a = A("127.0.0.2"), b = A("::ffff:127.0.0.2"), c = A("127.0.0.3");
    for (int i = 0; i < 5; i++)
        assert_int_equal(gd_conncount_add(&cc, i % 2 ? &a : &b, 5), 0);
    assert_int_equal(gd_conncount_add(&cc, &a, 5), -24); /* -EMFILE: same key either spelling */
    assert_int_equal(gd_conncount_add(&cc, &c, 5), 0);
    assert_int_equal(gd_conncount_get(&cc, &a), 5);
    assert_int_equal(cc.total, 6);
    for (int i = 0; i < 5; i++)
        gd_conncount_remove(&cc, &a);
    gd_conncount_remove(&cc, &c);
    assert_int_equal(cc.total, 0);
    assert_int_equal(cc.t.n, 0); /* keys at zero are gone */
    gd_conncount_free(&cc);
}

/* Random adds and removes against a plain array model: exercises deletion
 * from the middle of probe chains and growth. */
static void test_conncount_matches_model(void **state)
{
    (void)state;
    enum { N = 3000 };
    static int model[N];
    memset(model, 0, sizeof(model));
    gd_conncount cc;
    gd_conncount_init(&cc);
    srand(7);
    char ip[32];
    for (int step = 0; step < 200000; step++) {
        int k = rand() % N;
        snprintf(ip, sizeof(ip), "10.%d.%d.1", k / 250, k % 250);
        gd_addr a = A(ip);
        if (rand() % 2 && model[k] > 0) {
            gd_conncount_remove(&cc, &a);
            model[k]--;
        } else {
            int rc = gd_conncount_add(&cc, &a, 3);
            assert_int_equal(rc, model[k] < 3 ? 0 : -24);
            if (rc == 0) model[k]++;
        }
    }
    size_t keys = 0, total = 0;
    for (int k = 0; k < N; k++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.1", k / 250, k % 250);
        gd_addr a = A(ip);
        assert_int_equal(gd_conncount_get(&cc, &a), model[k]);
        keys += model[k] > 0;
        total += (size_t)model[k];
    }
    assert_int_equal(cc.t.n, keys);
    assert_int_equal(cc.total, total);
    gd_conncount_free(&cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_normalise),
        cmocka_unit_test(test_limit_key_groups_ipv6_by_64),
        cmocka_unit_test(test_client_takes_rightmost_entry_from_trusted_proxy_only),
        cmocka_unit_test(test_bucket_limits_and_refills),
        cmocka_unit_test(test_alternating_addresses_never_share_or_reset_a_bucket),
        cmocka_unit_test(test_table_is_bounded_and_eviction_never_refills),
        cmocka_unit_test(test_conncount_exact_and_bounded),
        cmocka_unit_test(test_conncount_matches_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
