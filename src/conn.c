/*
 * conn — see conn.h.
 */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

gd_msg *gd_msg_new(const char *data, size_t len)
{
    gd_msg *m = malloc(sizeof(*m) + LWS_PRE + len + 1);
    if (!m) return NULL;
    m->refs = 1;
    m->len = len;
    m->pong = false;
    memcpy(m->buf + LWS_PRE, data, len);
    m->buf[LWS_PRE + len] = '\0';
    return m;
}

void gd_msg_unref(gd_msg *m)
{
    assert(!m || m->refs > 0);
    if (m && --m->refs == 0) free(m);
}

size_t gd_msg_cost(const gd_msg *m)
{
    return sizeof(gd_qitem) + sizeof(gd_msg) + LWS_PRE + m->len + 1 + 2 * 16;
}

int gd_conn_enqueue(gd_conn *c, gd_msg *m, int64_t gate, size_t cap)
{
    if (c->closing) return 0;
    size_t cost = gd_msg_cost(m);
    if (c->qbytes + cost > cap) return -ENOBUFS;
    gd_qitem *it = malloc(sizeof(*it));
    if (!it) return -ENOBUFS;
    it->next = NULL;
    it->msg = m;
    it->gate = gate;
    it->cost = cost;
    m->refs++;
    if (m->pong) c->pongs_queued++;
    if (c->qtail)
        c->qtail->next = it;
    else
        c->qhead = it;
    c->qtail = it;
    c->qbytes += cost;
    return 0;
}

void gd_conn_item_free(gd_conn *c, gd_qitem *it)
{
    c->qbytes -= it->cost;
    if (it->msg->pong) c->pongs_queued--;
    gd_msg_unref(it->msg);
    free(it);
}

void gd_conn_drop_gated(gd_conn *c, int64_t durable)
{
    gd_qitem **pp = &c->qhead;
    c->qtail = NULL;
    while (*pp) {
        gd_qitem *it = *pp;
        /* A message partly written stays: the stream must carry its whole frame. */
        if (it->gate > durable && !(it == c->qhead && c->w_off > 0)) {
            *pp = it->next;
            gd_conn_item_free(c, it);
        } else {
            c->qtail = it;
            pp = &it->next;
        }
    }
}

void gd_conn_clear_queue(gd_conn *c)
{
    gd_conn_drop_gated(c, INT64_MIN); /* every gate is above it */
    assert(!c->qhead || (c->w_off > 0 && !c->qhead->next));
}

void gd_conn_free_queue(gd_conn *c)
{
    c->w_off = 0;
    gd_conn_clear_queue(c);
    assert(!c->qhead && !c->qtail && c->qbytes == 0 && c->pongs_queued == 0);
}

bool gd_conn_can_send(const gd_conn *c, int64_t durable)
{
    return c->qhead && c->qhead->gate <= durable;
}
