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
    m->binary = false;
    memcpy(m->buf + LWS_PRE, data, len);
    m->buf[LWS_PRE + len] = '\0';
    return m;
}

void gd_msg_unref(gd_msg *m)
{
    assert(!m || m->refs > 0);
    if (m && --m->refs == 0) free(m);
}

int gd_conn_enqueue(gd_conn *c, gd_msg *m, int64_t gate, size_t cap)
{
    if (c->closing) return 0;
    if (c->qbytes + m->len > cap) return -ENOBUFS;
    gd_qitem *it = malloc(sizeof(*it));
    if (!it) return -ENOBUFS;
    it->next = NULL;
    it->msg = m;
    it->gate = gate;
    m->refs++;
    if (c->qtail)
        c->qtail->next = it;
    else
        c->qhead = it;
    c->qtail = it;
    c->qbytes += m->len;
    return 0;
}

void gd_conn_drop_gated(gd_conn *c, int64_t durable)
{
    gd_qitem **pp = &c->qhead;
    c->qtail = NULL;
    while (*pp) {
        gd_qitem *it = *pp;
        if (it->gate > durable) {
            *pp = it->next;
            c->qbytes -= it->msg->len;
            gd_msg_unref(it->msg);
            free(it);
        } else {
            c->qtail = it;
            pp = &it->next;
        }
    }
}

void gd_conn_clear_queue(gd_conn *c)
{
    gd_conn_drop_gated(c, INT64_MIN); /* every gate is above it */
    assert(!c->qhead && !c->qtail && c->qbytes == 0);
}

bool gd_conn_can_send(const gd_conn *c, int64_t durable)
{
    return c->qhead && c->qhead->gate <= durable;
}
