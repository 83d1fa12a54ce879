/*
 * wsframe — the server side of RFC 6455 framing, free-standing (libc +
 * jsonw's gd_buf): an incremental parser for what clients send, writers for
 * what the server sends, and the handshake's accept key.
 *
 * The parser takes bytes as they arrive, in any split, and returns one event
 * at a time. It enforces what the RFC requires of a server: every client
 * frame masked (else close 1002), no reserved bits (no extension was
 * negotiated), no unknown opcodes, control frames final and at most 125
 * bytes, continuation frames only inside a fragmented message, text
 * messages valid UTF-8 (else 1007, checked as bytes arrive, across frame
 * boundaries), close payloads well formed. A message whose total size
 * exceeds `max_message` is not stored: the parser drops its remaining
 * payload and reports GD_WS_EV_TOO_LARGE once it ends, so the connection
 * survives. After an error event the parser accepts nothing more.
 *
 *   HEADER ──(length, mask known)──▶ PAYLOAD ──(frame done)──▶ HEADER
 *                                       └─ message final ─▶ event
 */
#ifndef GD_WSFRAME_H
#define GD_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"

typedef enum {
    GD_WS_EV_NONE = 0,  /* every byte given was consumed, no event */
    GD_WS_EV_TEXT,      /* a whole text message in p->msg */
    GD_WS_EV_BINARY,    /* a whole binary message in p->msg */
    GD_WS_EV_TOO_LARGE, /* a message over max_message ended (dropped) */
    GD_WS_EV_PING,      /* ctl[0..ctl_len) */
    GD_WS_EV_PONG,
    GD_WS_EV_CLOSE, /* close_code (1005 when absent), ctl holds the reason */
    GD_WS_EV_ERROR, /* close_code to close with, error says why */
} gd_ws_event;

typedef struct gd_wsparse {
    size_t max_message;
    /* the frame being read */
    uint8_t hdr[14];
    int hdr_len;
    bool in_payload;
    int opcode;
    bool fin;
    uint64_t remaining;
    uint8_t mask[4];
    unsigned mask_pos;
    /* the message being assembled */
    int msg_opcode; /* 0 none, 1 text, 2 binary */
    bool msg_discard;
    uint32_t utf8_need; /* continuation bytes still expected */
    uint32_t utf8_cp, utf8_min;
    gd_buf msg;
    /* the current control frame */
    uint8_t ctl[125];
    size_t ctl_len;
    /* results */
    uint16_t close_code;
    const char *error;
    bool failed;
} gd_wsparse;

void gd_wsparse_init(gd_wsparse *p, size_t max_message);
void gd_wsparse_free(gd_wsparse *p);
/*
 * Consumes bytes from in[0..len) until an event is complete or the input
 * ends; *used says how many were consumed. Returns the event (NONE when the
 * input ran out first). For TEXT/BINARY the message is p->msg (valid until
 * the next call; gd_buf_reset by the caller is not needed).
 */
gd_ws_event gd_wsparse_feed(gd_wsparse *p, const uint8_t *in, size_t len, size_t *used);

/* Writes a frame header for an unmasked, final frame with `opcode` and a
 * payload of len bytes into out (at least 10 bytes); returns its length. */
size_t gd_ws_frame_header(uint8_t *out, int opcode, uint64_t len);
/* A whole close frame (code, reason truncated to 123 bytes) into out (at
 * least 127 bytes); returns its length. */
size_t gd_ws_close_frame(uint8_t *out, uint16_t code, const char *reason);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)), 28
 * characters and a NUL into out. */
void gd_ws_accept_key(const char *key, size_t key_len, char out[29]);
/* True when key is the base64 encoding of 16 bytes (RFC 6455 §4.1). */
bool gd_ws_key_valid(const char *key, size_t key_len);

#endif
