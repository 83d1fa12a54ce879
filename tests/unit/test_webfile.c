/* Unit tests for webfile: request path checks, MIME types, the
 * content-hashed name rule, Accept-Encoding and If-None-Match. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "webfile.h"

static void test_rel_path(void **state)
{
    (void)state;
    char rel[64];
    assert_int_equal(gd_webfile_rel_path("/", rel, sizeof(rel)), 0);
    assert_string_equal(rel, "");
    assert_int_equal(gd_webfile_rel_path("/instruments/piano/C4.mp3", rel, sizeof(rel)), 0);
    assert_string_equal(rel, "instruments/piano/C4.mp3");
    assert_int_equal(gd_webfile_rel_path("//a///b/", rel, sizeof(rel)), 0);
    assert_string_equal(rel, "a/b");
    assert_int_equal(gd_webfile_rel_path("/.well-known/x.txt", rel, sizeof(rel)), 0);
    assert_string_equal(rel, ".well-known/x.txt");
    /* Traversal, whatever decoded it, never reaches the file system. */
    assert_int_equal(gd_webfile_rel_path("/../etc/passwd", rel, sizeof(rel)), -EINVAL);
    assert_int_equal(gd_webfile_rel_path("/a/../../b", rel, sizeof(rel)), -EINVAL);
    assert_int_equal(gd_webfile_rel_path("/a/..", rel, sizeof(rel)), -EINVAL);
    assert_int_equal(gd_webfile_rel_path("/a/./b", rel, sizeof(rel)), -EINVAL);
    assert_int_equal(gd_webfile_rel_path("/a\\..\\b", rel, sizeof(rel)), -EINVAL);
    assert_int_equal(gd_webfile_rel_path("/a\x01", rel, sizeof(rel)), -EINVAL);
    assert_int_equal(gd_webfile_rel_path("a/b", rel, sizeof(rel)), -EINVAL);
    assert_string_equal(rel, "");
    /* Names that merely contain dots are files. */
    assert_int_equal(gd_webfile_rel_path("/a..b/c...d", rel, sizeof(rel)), 0);
    assert_string_equal(rel, "a..b/c...d");
    assert_int_equal(gd_webfile_rel_path("/.git/config", rel, sizeof(rel)), -EACCES);
    assert_int_equal(gd_webfile_rel_path("/a/.env", rel, sizeof(rel)), -EACCES);
    char small[8];
    assert_int_equal(gd_webfile_rel_path("/abcdefgh", small, sizeof(small)), -ENAMETOOLONG);
    assert_int_equal(gd_webfile_rel_path("/abcdefg", small, sizeof(small)), 0);
}

static void test_route(void **state)
{
    (void)state;
    assert_true(gd_webfile_is_route(""));
    assert_true(gd_webfile_is_route("s/0b7e8a3c-1c5e-4b8e-9f0e-2a4b6c8d0e1f"));
    assert_true(gd_webfile_is_route("settings"));
    assert_true(gd_webfile_is_route("v1.2/about"));
    assert_false(gd_webfile_is_route("assets/missing.js"));
    assert_false(gd_webfile_is_route("favicon.ico"));
}

static void test_mime(void **state)
{
    (void)state;
    bool z;
    static const struct {
        const char *name, *type;
        bool compressible;
    } cases[] = {
        {"index.html", "text/html; charset=utf-8", true},
        {"a/b/app.js", "text/javascript; charset=utf-8", true},
        {"m.mjs", "text/javascript; charset=utf-8", true},
        {"s.CSS", "text/css; charset=utf-8", true},
        {"piano/manifest.json", "application/json", true},
        {"index-mQcq3Hx1.js.map", "application/json", true},
        {"logo.svg", "image/svg+xml", true},
        {"i.png", "image/png", false},
        {"i.jpg", "image/jpeg", false},
        {"i.jpeg", "image/jpeg", false},
        {"i.webp", "image/webp", false},
        {"favicon.ico", "image/x-icon", false},
        {"piano/C4.mp3", "audio/mpeg", false},
        {"k.wav", "audio/wav", false},
        {"k.ogg", "audio/ogg", false},
        {"k.m4a", "audio/mp4", false},
        {"f.woff", "font/woff", false},
        {"f.woff2", "font/woff2", false},
        {"site.webmanifest", "application/manifest+json", true},
        {"m.wasm", "application/wasm", false},
        {"robots.txt", "text/plain; charset=utf-8", true},
        {"README", "application/octet-stream", false},
        {"dir.js/file", "application/octet-stream", false},
        {"x.js.br", "application/octet-stream", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(gd_webfile_mime(cases[i].name, &z), cases[i].type);
        assert_int_equal(z, cases[i].compressible);
    }
}

static void test_hashed(void **state)
{
    (void)state;
    const char *hashed[] = {"assets/index-mQcq3Hx1.js", "assets/vendor-D_4z-Xq1.css",
                            "index-mQcq3Hx1.js.map",    "assets/index-BxRtqhWp.js",
                            "main.3f2a1b9c.js",         "chunk.3f2a1b9c4d5e6f708192.min.js",
                            "a/b/c/logo-abcd1234.svg"};
    const char *plain[] = {"index.html",         "app-settings.js", "logo.png",
                           "instruments/C4.mp3", "app.20240101.js", "jquery.min.js",
                           "x-abcdefgh.js",      "x-12345678.js",   "assets-mQcq3Hx1/app.js",
                           "mQcq3Hx1.js",        "-mQcq3Hx1.js",    "x-mQc-q3Hx1z.js"};
    for (size_t i = 0; i < sizeof(hashed) / sizeof(hashed[0]); i++)
        if (!gd_webfile_is_hashed(hashed[i])) fail_msg("%s should count as hashed", hashed[i]);
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (gd_webfile_is_hashed(plain[i])) fail_msg("%s should not count as hashed", plain[i]);
}

static void test_accepted(void **state)
{
    (void)state;
    assert_int_equal(gd_webfile_accepted(NULL), 0);
    assert_int_equal(gd_webfile_accepted(""), 0);
    assert_int_equal(gd_webfile_accepted("identity"), 0);
    assert_int_equal(gd_webfile_accepted("gzip, deflate, br"), GD_ENC_GZIP | GD_ENC_BR);
    assert_int_equal(gd_webfile_accepted("gzip"), GD_ENC_GZIP | GD_ENC_PREFER_GZIP);
    assert_int_equal(gd_webfile_accepted("BR"), GD_ENC_BR);
    assert_int_equal(gd_webfile_accepted("gzip;q=0, br"), GD_ENC_BR);
    assert_int_equal(gd_webfile_accepted("br;q=0.5, gzip;q=1.0"),
                     GD_ENC_GZIP | GD_ENC_BR | GD_ENC_PREFER_GZIP);
    assert_int_equal(gd_webfile_accepted("*"), GD_ENC_GZIP | GD_ENC_BR);
    assert_int_equal(gd_webfile_accepted("*;q=0"), 0);
    assert_int_equal(gd_webfile_accepted("br;q=0, *"), GD_ENC_GZIP | GD_ENC_PREFER_GZIP);
    assert_int_equal(gd_webfile_accepted("x-gzip"), GD_ENC_GZIP | GD_ENC_PREFER_GZIP);
    assert_int_equal(gd_webfile_accepted("brotli, gzipx"), 0);
}

static void test_etag_match(void **state)
{
    (void)state;
    const char *tag = "\"1a-2b-3c-br\"";
    assert_true(gd_webfile_etag_match("\"1a-2b-3c-br\"", tag));
    assert_true(gd_webfile_etag_match("W/\"1a-2b-3c-br\"", tag));
    assert_true(gd_webfile_etag_match("\"x\", \"1a-2b-3c-br\"", tag));
    assert_true(gd_webfile_etag_match("*", tag));
    assert_false(gd_webfile_etag_match("\"1a-2b-3c\"", tag));
    assert_false(gd_webfile_etag_match("\"1a-2b-3c-br", tag));
    assert_false(gd_webfile_etag_match("1a-2b-3c-br", tag));
    assert_false(gd_webfile_etag_match("", tag));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rel_path), cmocka_unit_test(test_route),
        cmocka_unit_test(test_mime),     cmocka_unit_test(test_hashed),
        cmocka_unit_test(test_accepted), cmocka_unit_test(test_etag_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
