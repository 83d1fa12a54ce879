/* Unit tests for jsonw: JS number formatting and string escaping. */
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jsonw.h"

static void num_is(double v, const char *want)
{
    char out[64];
    gd_js_number(out, sizeof(out), v);
    assert_string_equal(out, want);
}

static void test_numbers(void **state)
{
    (void)state;
    num_is(120, "120");
    num_is(95.5, "95.5");
    num_is(0.1, "0.1");
    num_is(-0.0, "0");
    num_is(1e21, "1e+21");
    num_is(1e20, "100000000000000000000");
    num_is(0.000001, "0.000001");
    num_is(1e-7, "1e-7");
    num_is(1.5e-7, "1.5e-7");
    num_is(-3, "-3");
    num_is(0.30000000000000004, "0.30000000000000004");
    num_is(123456789.125, "123456789.125");
    num_is(NAN, "null");
    num_is(INFINITY, "null");
    num_is(1.7976931348623157e308, "1.7976931348623157e+308");
    num_is(5e-324, "5e-324");
}

static void test_strings(void **state)
{
    (void)state;
    gd_buf b;
    gd_buf_init(&b);
    gd_json_str(&b, "a\"b\\c\nd\x01\x7f\xc3\xa9");
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\nd\\u0001\x7f\xc3\xa9\"");
    gd_buf_free(&b);
}

static void test_value_order(void **state)
{
    (void)state;
    json_error_t e;
    json_t *v = json_loads("{\"z\":1,\"a\":[true,null,2.5],\"m\":{\"volume\":0.5,\"pitch\":5}}",
                           JSON_DECODE_INT_AS_REAL, &e);
    assert_non_null(v);
    gd_buf b;
    gd_buf_init(&b);
    gd_json_value(&b, v);
    assert_string_equal(b.p, "{\"z\":1,\"a\":[true,null,2.5],\"m\":{\"volume\":0.5,\"pitch\":5}}");
    gd_buf_free(&b);
    json_decref(v);
}

/* A stolen text is sized to its content: session state keeps thousands of
 * short strings (issue 10 item 5: each lock held a 256-byte buffer). */
static void test_steal_right_sizes(void **state)
{
    (void)state;
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"pitch\":1}");
    size_t len;
    char *p = gd_buf_steal(&b, &len);
    assert_int_equal(len, 11);
    assert_string_equal(p, "{\"pitch\":1}");
    assert_true(malloc_usable_size(p) < 64);
    assert_null(b.p);
    free(p);
    gd_buf_init(&b);
    p = gd_buf_steal(&b, &len); /* empty: a valid empty string */
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steal_right_sizes),
        cmocka_unit_test(test_numbers),

        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_value_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
