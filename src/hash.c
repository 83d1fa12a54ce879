/*
 * hash — see hash.h.
 */
#include "hash.h"

#include <errno.h>
#include <stdio.h>

void gd_state_canonical(gd_buf *b, const gd_state *s)
{
    gd_buf_puts(b, "{\"tracks\":[");
    for (int i = 0; i < s->ntracks; i++) {
        const gd_track *t = s->tracks[i];
        int n = t->step_count;
        if (i) gd_buf_putc(b, ',');
        gd_buf_puts(b, "{\"id\":");
        gd_json_str(b, t->id);
        gd_buf_puts(b, ",\"name\":");
        gd_json_str(b, t->name);
        gd_buf_puts(b, ",\"sampleId\":");
        gd_json_str(b, t->sample_id);
        gd_buf_puts(b, ",\"steps\":[");
        for (int k = 0; k < n; k++)
            gd_buf_puts(b, t->steps[k] ? (k ? ",true" : "true") : (k ? ",false" : "false"));
        gd_buf_puts(b, "],\"parameterLocks\":[");
        for (int k = 0; k < n; k++) {
            if (k) gd_buf_putc(b, ',');
            gd_buf_puts(b, t->locks[k] ? t->locks[k] : "null");
        }
        gd_buf_puts(b, "],\"volume\":");
        gd_json_num(b, t->volume);
        gd_buf_puts(b, t->playback_mode == GD_MODE_GATE ? ",\"playbackMode\":\"gate\""
                                                        : ",\"playbackMode\":\"oneshot\"");
        gd_buf_puts(b, ",\"transpose\":");
        gd_json_num(b, t->transpose);
        gd_buf_printf(b, ",\"stepCount\":%d}", n);
    }
    gd_buf_puts(b, "],\"tempo\":");
    gd_json_num(b, s->tempo);
    gd_buf_puts(b, ",\"swing\":");
    gd_json_num(b, s->swing);
    gd_buf_putc(b, '}');
}

uint32_t gd_hash_utf16(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    uint32_t h = 0;
    while (s < end) {
        uint32_t c = *s;
        int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (s + n > end) break;
        if (n == 2)
            c = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        else if (n == 3)
            c = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        else if (n == 4)
            c = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        s += n;
        if (c >= 0x10000) {
            c -= 0x10000;
            h = h * 31 + (0xD800 + (c >> 10));
            h = h * 31 + (0xDC00 + (c & 0x3FF));
        } else {
            h = h * 31 + c;
        }
    }
    return h;
}

int gd_state_hash(const gd_state *s, char out[9])
{
    gd_buf b;
    gd_buf_init(&b);
    gd_state_canonical(&b, s);
    if (b.oom) {
        gd_buf_free(&b);
        return -ENOMEM;
    }
    snprintf(out, 9, "%08x", gd_hash_utf16(b.p, b.len));
    gd_buf_free(&b);
    return 0;
}
