/* Unit tests for idset: add, lookup, removal inside probe clusters, growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "idset.h"

static void make_id(char out[37], unsigned n)
{
    snprintf(out, 37, "%08x-0000-4000-8000-%012x", n * 2654435761u, n);
}

static void test_add_has_remove(void **state)
{
    (void)state;
    gd_idset s;
    gd_idset_init(&s);
    char id[37];
    for (unsigned i = 0; i < 5000; i++) {
        make_id(id, i);
        assert_int_equal(gd_idset_add(&s, id), 0);
    }
    assert_int_equal(s.n, 5000);
    for (unsigned i = 0; i < 5000; i += 2) {
        make_id(id, i);
        gd_idset_remove(&s, id);
    }
    for (unsigned i = 0; i < 5000; i++) {
        make_id(id, i);
        assert_int_equal(gd_idset_has(&s, id), i % 2 == 1);
    }
    assert_false(gd_idset_has(&s, "not-a-uuid"));
    assert_int_equal(gd_idset_add(&s, "------------------------------------"), -22);
    /* Upper-case hex names the same session. */
    assert_int_equal(gd_idset_add(&s, "ABCDEF00-0000-4000-8000-000000000001"), 0);
    assert_true(gd_idset_has(&s, "abcdef00-0000-4000-8000-000000000001"));
    int64_t v = -1;
    make_id(id, 7);
    assert_true(gd_idset_get(&s, id, &v));
    assert_int_equal(v, 0);
    assert_int_equal(gd_idset_put(&s, id, 42), 0);
    assert_true(gd_idset_get(&s, id, &v));
    assert_int_equal(v, 42);
    make_id(id, 8);
    assert_false(gd_idset_get(&s, id, &v));
    gd_idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_add_has_remove)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
