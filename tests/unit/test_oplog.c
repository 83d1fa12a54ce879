/* Unit tests for oplog: append and scan, torn tails cut at the first bad
 * record, damage inside the log refused, rotation, trim, cut and reset. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "oplog.h"

typedef struct seen {
    int n;
    uint32_t opno[4096];
    int64_t pos[4096];
} seen;

static int collect(void *arg, const gd_oplog_rec *r)
{
    seen *s = arg;
    char want[32];
    int len = snprintf(want, sizeof(want), "op-%u", r->opno);
    assert_int_equal(r->oplen, (size_t)len);
    assert_memory_equal(r->op, want, (size_t)len);
    s->opno[s->n] = r->opno;
    s->pos[s->n++] = r->pos;
    return 0;
}

static char *tmpdir_new(void)
{
    char *d = strdup("/tmp/grooved-oplog-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void append_ops(gd_oplog *log, uint32_t from, uint32_t to)
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    uint8_t sid[16] = {1, 2, 3};
    for (uint32_t i = from; i <= to; i++) {
        char op[32];
        int n = snprintf(op, sizeof(op), "op-%u", i);
        assert_true(gd_oplog_encode(&buf, &len, &cap, sid, i, (uint8_t *)op, (size_t)n) > 0);
    }
    int64_t pos;
    assert_int_equal(gd_oplog_append(log, buf, len, &pos), 0);
    free(buf);
}

static void last_segment(const char *dir, char *out, size_t n)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s/log | sort | tail -1", dir);
    FILE *p = popen(cmd, "r");
    char name[128] = "";
    assert_non_null(fgets(name, sizeof(name), p));
    pclose(p);
    name[strcspn(name, "\n")] = '\0';
    snprintf(out, n, "%s/log/%s", dir, name);
}

static int count_segments(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s/log | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static void test_append_scan_reopen(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    append_ops(log, 1, 10);
    append_ops(log, 11, 12);
    gd_oplog_close(log);
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    seen s = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &s, NULL), 0);
    assert_int_equal(s.n, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(s.opno[i], (uint32_t)i + 1);
    /* Scanning from a record's position starts exactly there. */
    seen t = {0};
    assert_int_equal(gd_oplog_scan(log, s.pos[10], INT64_MAX, 0, collect, &t, NULL), 0);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.opno[0], 11);
    gd_oplog_close(log);
    free(dir);
}

static void test_torn_tail_is_cut_and_log_goes_on(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    append_ops(log, 1, 5);
    gd_oplog_close(log);
    char path[512];
    last_segment(dir, path, sizeof(path));
    struct stat st;
    stat(path, &st);
    off_t good = st.st_size;
    /* A crash mid-write: half a record at the end. */
    int fd = open(path, O_WRONLY | O_APPEND);
    static const uint8_t half[] = {40, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(write(fd, half, sizeof(half)), (ssize_t)sizeof(half));
    close(fd);
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    seen s = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &s, NULL), 0);
    assert_int_equal(s.n, 5);
    stat(path, &st);
    assert_int_equal(st.st_size, good); /* repaired: the torn bytes are gone */
    append_ops(log, 6, 6);
    seen t = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 0, collect, &t, NULL), 0);
    assert_int_equal(t.n, 6);
    /* A flipped byte in the last record fails its CRC: the scan stops there. */
    gd_oplog_close(log);
    fd = open(path, O_RDWR);
    uint8_t b;
    pread(fd, &b, 1, good + 10);
    b ^= 0xFF;
    pwrite(fd, &b, 1, good + 10);
    close(fd);
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    seen u = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &u, NULL), 0);
    assert_int_equal(u.n, 5);
    gd_oplog_close(log);
    free(dir);
}

static void test_rotation_trim_cut_reset(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 256), 0);
    for (uint32_t i = 1; i <= 40; i++)
        append_ops(log, i, i);
    int segs = count_segments(dir);
    assert_true(segs > 3);
    seen s = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 0, collect, &s, NULL), 0);
    assert_int_equal(s.n, 40);
    /* Trim keeps the segment holding `keep` and everything after it. */
    assert_int_equal(gd_oplog_trim(log, s.pos[30]), 0);
    seen t = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 0, collect, &t, NULL), 0);
    assert_true(t.n >= 10 && t.n < 40);
    assert_int_equal(t.opno[t.n - 1], 40);
    assert_true(t.opno[0] <= 31);
    /* Cut takes back the last batch. */
    int64_t end = gd_oplog_end(log);
    append_ops(log, 41, 42);
    seen u = {0};
    gd_oplog_scan(log, end, INT64_MAX, 0, collect, &u, NULL);
    assert_int_equal(u.n, 2);
    assert_int_equal(gd_oplog_cut(log, u.pos[0]), 0);
    seen v = {0};
    gd_oplog_scan(log, end, INT64_MAX, 0, collect, &v, NULL);
    assert_int_equal(v.n, 0);
    /* Reset: every old segment gone, positions keep growing. */
    assert_int_equal(gd_oplog_reset(log), 0);
    assert_int_equal(count_segments(dir), 1);
    assert_true(gd_oplog_end(log) > end);
    seen w = {0};
    gd_oplog_scan(log, 0, INT64_MAX, 0, collect, &w, NULL);
    assert_int_equal(w.n, 0);
    gd_oplog_close(log);
    free(dir);
}

static void test_damage_inside_the_log_is_an_error(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 128), 0);
    for (uint32_t i = 1; i <= 20; i++)
        append_ops(log, i, i);
    gd_oplog_close(log);
    char path[512];
    snprintf(path, sizeof(path), "%s/log/0000000000000001.log", dir);
    int fd = open(path, O_RDWR);
    uint8_t b = 0x55;
    pwrite(fd, &b, 1, 12);
    close(fd);
    assert_int_equal(gd_oplog_open(&log, dir, 128), 0);
    seen s = {0};
    gd_oplog_damage dmg;
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &s, &dmg), -EBADMSG);
    assert_string_equal(dmg.path, path);
    assert_int_equal(dmg.offset, 0);
    gd_oplog_close(log);
    free(dir);
}

static void flip(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

/* One flipped bit in record 10 of 100: intact records follow, so this is
 * damage, not a torn tail. Nothing may be cut; the scan reports where. */
static void test_damage_before_intact_records_is_not_a_torn_tail(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    append_ops(log, 1, 100);
    seen s = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 0, collect, &s, NULL), 0);
    gd_oplog_close(log);
    char path[512];
    last_segment(dir, path, sizeof(path));
    struct stat before, after;
    stat(path, &before);
    off_t at = (off_t)(s.pos[9] & ((1ll << 40) - 1));
    flip(path, at + 30);
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    seen t = {0};
    gd_oplog_damage dmg = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &t, &dmg), -EBADMSG);
    assert_int_equal(t.n, 9);
    assert_int_equal(dmg.offset, (uint64_t)at);
    assert_string_equal(dmg.path, path);
    stat(path, &after);
    assert_int_equal(after.st_size, before.st_size); /* nothing truncated */
    gd_oplog_close(log);

    /* A tail of zeros (size extended, data never written) is torn. */
    flip(path, at + 30); /* undo */
    int fd = open(path, O_WRONLY | O_APPEND);
    static const uint8_t zeros[4096];
    assert_int_equal(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);
    assert_int_equal(gd_oplog_open(&log, dir, 1 << 20), 0);
    seen u = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &u, NULL), 0);
    assert_int_equal(u.n, 100);
    stat(path, &after);
    assert_int_equal(after.st_size, before.st_size);
    gd_oplog_close(log);
    free(dir);
}

/* Scans below a durable end: later records are not read, a file shorter
 * than that end or a bad record before it is damage, and a deleted or
 * missing segment is reported, never skipped. */
static void test_bounded_scan_and_missing_segments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 256), 0);
    for (uint32_t i = 1; i <= 40; i++)
        append_ops(log, i, i);
    int64_t end = gd_oplog_end(log);
    append_ops(log, 41, 41);
    seen s = {0};
    gd_oplog_damage dmg;
    assert_int_equal(gd_oplog_scan(log, 0, end, 0, collect, &s, &dmg), 0);
    assert_int_equal(s.n, 40);
    /* The tail of the last record before `end` is gone: damage. */
    char path[512];
    snprintf(path, sizeof(path), "%s/log/%016llx.log", dir, (unsigned long long)(end >> 40));
    assert_int_equal(truncate(path, (off_t)(end & ((1ll << 40) - 1)) - 1), 0);
    seen t = {0};
    assert_int_equal(gd_oplog_scan(log, 0, end, 0, collect, &t, &dmg), -EBADMSG);
    gd_oplog_close(log);
    /* A segment in the middle disappears. */
    char mid[512];
    snprintf(mid, sizeof(mid), "%s/log/0000000000000003.log", dir);
    assert_int_equal(unlink(mid), 0);
    assert_int_equal(gd_oplog_open(&log, dir, 256), 0);
    seen u = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &u, &dmg), -EBADMSG);
    assert_string_equal(dmg.path, mid);
    /* Starting in a segment that was deleted. */
    int64_t in3 = (int64_t)3 << 40;
    seen v = {0};
    assert_int_equal(gd_oplog_scan(log, in3, INT64_MAX, 0, collect, &v, &dmg), -EBADMSG);
    gd_oplog_close(log);
    free(dir);
}

/* A segment that is not the last and lost its end (or grew) is damage: the
 * next segment's header names the size it had when the log moved on. */
static void test_truncated_middle_segment_is_damage(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    gd_oplog *log;
    assert_int_equal(gd_oplog_open(&log, dir, 256), 0);
    for (uint32_t i = 1; i <= 40; i++)
        append_ops(log, i, i);
    gd_oplog_close(log);
    assert_true(count_segments(dir) > 3);
    char path[512];
    snprintf(path, sizeof(path), "%s/log/0000000000000002.log", dir);
    struct stat st;
    stat(path, &st);
    /* Cut exactly at a record boundary: every remaining record is intact. */
    assert_int_equal(gd_oplog_open(&log, dir, 256), 0);
    seen s = {0};
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 0, collect, &s, NULL), 0);
    int64_t last_in_2 = -1;
    for (int i = 0; i < s.n; i++)
        if ((s.pos[i] >> 40) == 2) last_in_2 = s.pos[i] & ((1ll << 40) - 1);
    gd_oplog_close(log);
    assert_true(last_in_2 > 0);
    assert_int_equal(truncate(path, (off_t)last_in_2), 0);
    assert_int_equal(gd_oplog_open(&log, dir, 256), 0);
    seen t = {0};
    gd_oplog_damage dmg;
    assert_int_equal(gd_oplog_scan(log, 0, INT64_MAX, 1, collect, &t, &dmg), -EBADMSG);
    assert_string_equal(dmg.path, path);
    gd_oplog_close(log);
    free(dir);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    assert_int_equal(gd_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_scan_reopen),
        cmocka_unit_test(test_torn_tail_is_cut_and_log_goes_on),
        cmocka_unit_test(test_rotation_trim_cut_reset),
        cmocka_unit_test(test_damage_inside_the_log_is_an_error),
        cmocka_unit_test(test_damage_before_intact_records_is_not_a_torn_tail),
        cmocka_unit_test(test_bounded_scan_and_missing_segments),
        cmocka_unit_test(test_truncated_middle_segment_is_damage),
        cmocka_unit_test(test_crc32_known_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
