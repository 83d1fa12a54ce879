/*
 * fuzz_messages — libFuzzer target for every parser of untrusted input:
 * a WebSocket message (JSON → op → apply → broadcast, and the op's log form
 * parsed back and replayed, which must give the same record), a REST state
 * body and a session name. Any crash, sanitizer report or replay mismatch
 * is a finding. Raw bytes also go through the op log's compact reader.
 * Every state a message or a REST body produces must also survive a
 * checkpoint (and a KV value) → load unchanged: a state the server accepts
 * but cannot read back would be lost at the next load. Built with clang by
 * `make fuzz`; the seed corpus is replayed by fuzz_replay.c in the normal
 * test run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "model.h"
#include "op.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void seed(gd_record *r)
{
    gd_record_init(r, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
    gd_track *t = gd_track_new();
    t->id = strdup("t1");
    t->name = strdup("Kick");
    t->sample_id = strdup("kick");
    r->state.tracks[r->state.ntracks++] = t;
}

/* Writes r as a checkpoint (with_seq) or KV value, reads it back as a load
 * does, and aborts unless the second write is byte-identical. */
static void check_round_trip(const gd_record *r, bool with_seq)
{
    gd_buf a, b;
    gd_buf_init(&a);
    gd_buf_init(&b);
    gd_record_write(&a, r, with_seq);
    if (a.oom) abort();
    json_error_t jerr;
    json_t *j = json_loadb(a.p, a.len, JSON_DECODE_INT_AS_REAL, &jerr);
    gd_record back;
    if (!j || gd_record_from_json(j, &back) != 0) abort(); /* accepted, then unreadable */
    gd_record_write(&b, &back, with_seq);
    if (b.oom || a.len != b.len || memcmp(a.p, b.p, a.len) != 0) abort();
    gd_record_clear(&back);
    json_decref(j);
    gd_buf_free(&a);
    gd_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *msg =
        json_loadb((const char *)data, size, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &jerr);
    if (!msg) return 0;

    gd_record live, replay;
    seed(&live);
    seed(&replay);
    gd_op op, back;
    gd_op_err err;
    gd_apply_res res;
    if (gd_op_parse(msg, false, &op, &err) == 0) {
        op.at = 1700000000000;
        if (gd_apply(&live, &op, &res, &err) == 0) {
            gd_buf out, log, a, b;
            gd_buf_init(&out);
            gd_buf_init(&log);
            gd_buf_init(&a);
            gd_buf_init(&b);
            gd_op_write_broadcast(&out, &live, &op, &res, "p", "1");
            gd_op_write_log(&log, &op);
            json_t *lj = json_loads(log.p, JSON_DECODE_INT_AS_REAL, &jerr);
            if (!lj || gd_op_parse(lj, true, &back, &err) != 0 ||
                gd_apply(&replay, &back, &res, &err) != 0)
                abort(); /* a logged op must always replay */
            check_round_trip(&live, true);
            check_round_trip(&live, false);
            gd_record_write(&a, &live, true);
            gd_record_write(&b, &replay, true);
            if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
                abort(); /* replay must give the same record */
            gd_op_clear(&back);
            json_decref(lj);
            /* The compact form of the op log must replay identically too. */
            gd_record compacted;
            gd_buf cb, cr;
            seed(&compacted);
            gd_buf_init(&cb);
            gd_buf_init(&cr);
            gd_op_write_compact(&cb, &op);
            if (gd_op_parse_compact((const uint8_t *)cb.p, cb.len, &back, &err) != 0 ||
                gd_apply(&compacted, &back, &res, &err) != 0)
                abort();
            gd_record_write(&cr, &compacted, true);
            if (cr.len != a.len || memcmp(cr.p, a.p, a.len) != 0) abort();
            gd_op_clear(&back);
            gd_record_clear(&compacted);
            gd_buf_free(&cb);
            gd_buf_free(&cr);
            gd_buf_free(&out);
            gd_buf_free(&log);
            gd_buf_free(&a);
            gd_buf_free(&b);
        }
        gd_op_clear(&op);
    }
    if (gd_op_parse(msg, true, &op, &err) == 0) /* the log reader must not trust blindly */
        gd_op_clear(&op);
    if (gd_op_parse_compact(data, size, &op, &err) == 0) /* nor the compact reader */
        gd_op_clear(&op);

    gd_state st;
    gd_errors errs = {0};
    if (gd_state_from_json(msg, &st, &errs) == 0) {
        /* A REST create/PUT body: its state must round-trip too. */
        gd_record r;
        gd_record_init(&r, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1);
        gd_state_clear(&r.state);
        r.state = st;
        check_round_trip(&r, true);
        check_round_trip(&r, false);
        gd_record_clear(&r);
    }
    char *name = NULL;
    errs.n = 0;
    if (gd_name_from_json(msg, &name, &errs) == 0) free(name);
    gd_record rec;
    if (gd_record_from_json(msg, &rec) == 0) gd_record_clear(&rec);

    gd_record_clear(&live);
    gd_record_clear(&replay);
    json_decref(msg);
    return 0;
}
