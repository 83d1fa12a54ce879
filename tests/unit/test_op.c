/* Unit tests for op: parsing and errors, clamping, apply, broadcast shapes and
 * the replay property (log → parse → apply gives the same record). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "op.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &e);
    assert_non_null(j);
    return j;
}

static int parse_op(const char *s, gd_op *op, gd_op_err *err)
{
    json_t *j = parse(s);
    int rc = gd_op_parse(j, false, op, err);
    json_decref(j);
    return rc;
}

static void expect_reject(const char *msg, const char *code)
{
    gd_op op;
    gd_op_err err;
    assert_int_not_equal(parse_op(msg, &op, &err), 0);
    assert_string_equal(err.code, code);
}

static void test_rejects(void **state)
{
    (void)state;
    expect_reject("{\"type\":\"nope\"}", GD_E_UNKNOWN_TYPE);
    expect_reject("{\"seq\":1}", GD_E_UNKNOWN_TYPE);
    expect_reject("[1]", GD_E_INVALID_JSON);
    expect_reject("{\"type\":\"replace_state\",\"state\":{}}", GD_E_UNKNOWN_TYPE);
    expect_reject("{\"type\":\"set_tempo\",\"tempo\":\"150\"}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"set_tempo\",\"tempo\":null}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"set_tempo\"}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"toggle_step\",\"trackId\":\"a\",\"step\":128}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"toggle_step\",\"trackId\":\"a\",\"step\":-1}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"toggle_step\",\"trackId\":\"a\",\"step\":1.5}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"toggle_step\",\"trackId\":7,\"step\":1}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"add_track\"}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"add_track\",\"track\":{\"id\":\"x\"}}", GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"set_track_step_count\",\"trackId\":\"a\",\"stepCount\":17}",
                  GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"set_track_playback_mode\",\"trackId\":\"a\",\"playbackMode\":1}",
                  GD_E_INVALID_FIELD);
    expect_reject("{\"type\":\"set_session_name\",\"name\":\"<script>\"}", GD_E_INVALID_FIELD);
}

static void test_clamps(void **state)
{
    (void)state;
    gd_op op;
    gd_op_err err;
    assert_int_equal(parse_op("{\"type\":\"set_tempo\",\"tempo\":200}", &op, &err), 0);
    assert_true(op.num == 180);
    gd_op_clear(&op);
    assert_int_equal(parse_op("{\"type\":\"set_swing\",\"swing\":-5}", &op, &err), 0);
    assert_true(op.num == 0);
    gd_op_clear(&op);
    assert_int_equal(
        parse_op("{\"type\":\"set_track_transpose\",\"trackId\":\"a\",\"transpose\":-2.5}", &op,
                 &err),
        0);
    assert_true(op.num == -2);
    gd_op_clear(&op);
    assert_int_equal(
        parse_op("{\"type\":\"set_track_transpose\",\"trackId\":\"a\",\"transpose\":30.7}", &op,
                 &err),
        0);
    assert_true(op.num == 24);
    gd_op_clear(&op);
    assert_int_equal(parse_op("{\"type\":\"set_parameter_lock\",\"trackId\":\"a\",\"step\":1,"
                              "\"lock\":{\"volume\":-1,\"pitch\":99,\"x\":3}}",
                              &op, &err),
                     0);
    assert_string_equal(op.lock, "{\"pitch\":24,\"volume\":0}");
    gd_op_clear(&op);
    assert_int_equal(parse_op("{\"type\":\"set_parameter_lock\",\"trackId\":\"a\",\"step\":1,"
                              "\"lock\":{\"pitch\":\"x\"}}",
                              &op, &err),
                     0);
    assert_null(op.lock);
    gd_op_clear(&op);
}

static void test_apply_and_broadcast(void **state)
{
    (void)state;
    gd_record r;
    gd_record_init(&r, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
    gd_op op;
    gd_op_err err;
    gd_apply_res res;
    gd_buf b;
    gd_buf_init(&b);

    assert_int_equal(
        parse_op("{\"type\":\"toggle_step\",\"trackId\":\"t1\",\"step\":3}", &op, &err), 0);
    assert_int_equal(gd_apply(&r, &op, &res, &err), -ENOENT);
    assert_string_equal(err.code, GD_E_TRACK_NOT_FOUND);
    assert_int_equal(r.server_seq, 0);
    gd_op_clear(&op);

    assert_int_equal(parse_op("{\"type\":\"add_track\",\"track\":{\"id\":\"t1\",\"name\":\"Kick\","
                              "\"sampleId\":\"kick\",\"steps\":[],\"volume\":3,\"bogus\":1}}",
                              &op, &err),
                     0);
    op.at = 5;
    assert_int_equal(gd_apply(&r, &op, &res, &err), 0);
    assert_true(res.seqd);
    assert_int_equal(r.server_seq, 1);
    assert_int_equal(r.updated_at, 5);
    gd_op_write_broadcast(&b, &r, &op, &res, "p1", "7");
    assert_non_null(strstr(b.p, "{\"type\":\"track_added\",\"track\":{\"id\":\"t1\""));
    assert_non_null(strstr(b.p, "\"volume\":1,"));
    assert_null(strstr(b.p, "bogus"));
    assert_non_null(strstr(b.p, ",\"playerId\":\"p1\",\"seq\":1,\"clientSeq\":7}"));
    gd_buf_reset(&b);
    /* A duplicate add is a confirmation: seq advances, state does not. */
    assert_int_equal(gd_apply(&r, &op, &res, &err), 0);
    assert_false(res.changed);
    assert_int_equal(r.state.ntracks, 1);
    assert_int_equal(r.server_seq, 2);
    gd_op_clear(&op);

    assert_int_equal(
        parse_op("{\"type\":\"toggle_step\",\"trackId\":\"t1\",\"step\":3}", &op, &err), 0);
    assert_int_equal(gd_apply(&r, &op, &res, &err), 0);
    assert_true(res.value);
    gd_op_write_broadcast(&b, &r, &op, &res, "p1", NULL);
    assert_string_equal(b.p, "{\"type\":\"step_toggled\",\"trackId\":\"t1\",\"step\":3,"
                             "\"value\":true,\"playerId\":\"p1\",\"seq\":3}");
    gd_buf_reset(&b);
    gd_op_clear(&op);

    assert_int_equal(
        parse_op("{\"type\":\"mute_track\",\"trackId\":\"t1\",\"muted\":true}", &op, &err), 0);
    assert_int_equal(gd_apply(&r, &op, &res, &err), 0);
    assert_false(res.seqd);
    assert_int_equal(r.server_seq, 3);
    gd_op_write_broadcast(&b, &r, &op, &res, "p1", "9");
    assert_string_equal(b.p, "{\"type\":\"track_muted\",\"trackId\":\"t1\",\"muted\":true,"
                             "\"playerId\":\"p1\"}");
    gd_op_clear(&op);

    gd_buf_free(&b);
    gd_record_clear(&r);
}

/* Every op, applied live and then replayed from its log form, gives the same record. */
static void test_replay_equals_live(void **state)
{
    (void)state;
    const char *msgs[] = {
        "{\"type\":\"add_track\",\"track\":{\"id\":\"a\",\"name\":\"Kick\",\"sampleId\":\"kick\","
        "\"steps\":[true],\"parameterLocks\":[{\"volume\":0.5,\"pitch\":1}]}}",
        "{\"type\":\"add_track\",\"track\":{\"id\":\"b\",\"name\":\"Hat\",\"sampleId\":\"hihat\","
        "\"steps\":[]}}",
        "{\"type\":\"toggle_step\",\"trackId\":\"a\",\"step\":5}",
        "{\"type\":\"set_tempo\",\"tempo\":133.3}",
        "{\"type\":\"set_swing\",\"swing\":12}",
        "{\"type\":\"set_parameter_lock\",\"trackId\":\"b\",\"step\":2,\"lock\":{\"pitch\":3}}",
        "{\"type\":\"set_track_sample\",\"trackId\":\"b\",\"sampleId\":\"clap\",\"name\":\"Clap\"}",
        "{\"type\":\"set_track_volume\",\"trackId\":\"a\",\"volume\":0.25}",
        "{\"type\":\"set_track_transpose\",\"trackId\":\"a\",\"transpose\":3.4}",
        "{\"type\":\"set_track_step_count\",\"trackId\":\"a\",\"stepCount\":32}",
        "{\"type\":\"set_track_playback_mode\",\"trackId\":\"a\",\"playbackMode\":\"gate\"}",
        "{\"type\":\"set_effects\",\"effects\":{\"reverb\":{\"decay\":2,\"wet\":0.1},\"delay\":{"
        "\"time\":\"9x\",\"feedback\":2,\"wet\":0},\"chorus\":{\"frequency\":1.5,\"depth\":0.5,"
        "\"wet\":0},\"distortion\":{\"amount\":0.4,\"wet\":0}}}",
        "{\"type\":\"set_fm_params\",\"trackId\":\"a\",\"fmParams\":{\"harmonicity\":0.1,"
        "\"modulationIndex\":5}}",
        "{\"type\":\"copy_sequence\",\"fromTrackId\":\"a\",\"toTrackId\":\"b\"}",
        "{\"type\":\"move_sequence\",\"fromTrackId\":\"b\",\"toTrackId\":\"b\"}",
        "{\"type\":\"set_session_name\",\"name\":\"  Late night  \"}",
        "{\"type\":\"mute_track\",\"trackId\":\"a\",\"muted\":true}",
        "{\"type\":\"solo_track\",\"trackId\":\"b\",\"soloed\":true}",
        "{\"type\":\"clear_track\",\"trackId\":\"b\"}",
        "{\"type\":\"delete_track\",\"trackId\":\"zzz\"}",
        "{\"type\":\"delete_track\",\"trackId\":\"b\"}",
    };
    gd_record live, replay, compacted;
    gd_record_init(&live, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
    gd_record_init(&replay, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
    gd_record_init(&compacted, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        gd_op op, op2;
        gd_op_err err;
        gd_apply_res res;
        assert_int_equal(parse_op(msgs[i], &op, &err), 0);
        op.at = (int64_t)(1000 + i);
        assert_int_equal(gd_apply(&live, &op, &res, &err), 0);
        gd_buf log;
        gd_buf_init(&log);
        gd_op_write_log(&log, &op);
        json_t *j = parse(log.p);
        assert_int_equal(gd_op_parse(j, true, &op2, &err), 0);
        assert_int_equal(gd_apply(&replay, &op2, &res, &err), 0);
        json_decref(j);
        gd_buf_free(&log);
        gd_op_clear(&op2);
        /* The compact form the op log stores replays the same way. */
        gd_buf compact;
        gd_buf_init(&compact);
        gd_op_write_compact(&compact, &op);
        if (op.type == GD_OP_TOGGLE_STEP) assert_true(compact.len <= 12 && compact.p[0] == 0x01);
        assert_int_equal(gd_op_parse_compact((uint8_t *)compact.p, compact.len, &op2, &err), 0);
        assert_int_equal(gd_apply(&compacted, &op2, &res, &err), 0);
        gd_buf_free(&compact);
        gd_op_clear(&op);
        gd_op_clear(&op2);
    }
    gd_buf a, b;
    gd_buf_init(&a);
    gd_buf_init(&b);
    gd_record_write(&a, &live, true);
    gd_record_write(&b, &replay, true);
    assert_string_equal(a.p, b.p);
    gd_buf_reset(&b);
    gd_record_write(&b, &compacted, true);
    assert_string_equal(a.p, b.p);
    assert_non_null(strstr(a.p, "\"name\":\"Late night\""));
    assert_non_null(strstr(a.p, "\"serverSeq\":19"));
    assert_non_null(strstr(a.p, "\"time\":\"8n\",\"feedback\":0.95"));
    assert_non_null(strstr(a.p, "\"transpose\":3,"));
    assert_int_equal(live.state.ntracks, 1);
    gd_buf_free(&a);
    gd_buf_free(&b);
    gd_record_clear(&live);
    gd_record_clear(&replay);
    gd_record_clear(&compacted);
}

static void test_compact_rejects_garbage(void **state)
{
    (void)state;
    gd_op op;
    gd_op_err err;
    static const uint8_t bad[][6] = {
        {0x01},          {0x01, 0x80}, {0x01, 5, 200, 1, 't'}, {0x01, 5, 3, 2, 't'},
        {0x01, 5, 3, 0}, {0x07, 1, 2}};
    static const size_t lens[] = {1, 2, 5, 5, 4, 3};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        assert_int_not_equal(gd_op_parse_compact(bad[i], lens[i], &op, &err), 0);
    assert_int_not_equal(gd_op_parse_compact((const uint8_t *)"\0{", 2, &op, &err), 0);
    static const uint8_t good[] = {0x01, 5, 3, 2, 't', '1'};
    assert_int_equal(gd_op_parse_compact(good, sizeof(good), &op, &err), 0);
    assert_int_equal(op.type, GD_OP_TOGGLE_STEP);
    assert_int_equal(op.step, 3);
    assert_string_equal(op.track_id, "t1");
    assert_int_equal(op.at, 5);
    gd_op_clear(&op);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_clamps),
        cmocka_unit_test(test_apply_and_broadcast),
        cmocka_unit_test(test_replay_equals_live),
        cmocka_unit_test(test_compact_rejects_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
