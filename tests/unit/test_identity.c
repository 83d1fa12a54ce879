/* Unit tests for identity: the reference's vectors (§1.8) and UUID checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "identity.h"

static void test_vectors(void **state)
{
    (void)state;
    gd_identity id;
    gd_identity_derive("00000000-0000-4000-8000-000000000000", &id);
    assert_int_equal(id.hash, -191747388);
    assert_int_equal(id.color_index, 12);
    assert_int_equal(id.animal_index, 33);
    assert_string_equal(id.color, "#FDD835");
    assert_string_equal(id.name, "Yellow Hedgehog");
    gd_identity_derive("3f2504e0-4f89-41d3-9a0c-0305e82c3301", &id);
    assert_int_equal(id.color_index, 16);
    assert_int_equal(id.animal_index, 36);
    assert_string_equal(id.color, "#6D4C41");
    assert_string_equal(id.name, "Brown Jaguar");
    gd_identity_derive("a", &id);
    assert_string_equal(id.color, "#00ACC1");
    assert_string_equal(id.name, "Cyan Ant");
}

static void test_uuid(void **state)
{
    (void)state;
    char a[37], b[37];
    assert_int_equal(gd_uuid_v4(a), 0);
    assert_int_equal(gd_uuid_v4(b), 0);
    assert_string_not_equal(a, b);
    assert_true(gd_uuid_shape_ok(a, 36));
    assert_true(gd_id_pattern_ok(a, 36));
    assert_int_equal(a[14], '4');
    assert_false(gd_uuid_shape_ok("------------------------------------", 36));
    assert_true(gd_id_pattern_ok("------------------------------------", 36));
    assert_false(gd_id_pattern_ok("3F2504E0-4F89-41D3-9A0C-0305E82C3301", 36));
    assert_true(gd_uuid_shape_ok("3F2504E0-4F89-41D3-9A0C-0305E82C3301", 36));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
