"""A WebSocket client on a bare socket, for what well-behaved libraries will
not do: frames in the same write as the upgrade, unmasked frames, floods
written without reading. Every read is bounded by a timeout."""
import base64
import json
import os
import socket
import struct
import time


def frame(payload, opcode=1, mask=True, fin=True):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def upgrade_request(sid):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /api/sessions/{sid}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


class RawWS:
    def __init__(self, port, source=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    @classmethod
    def connect(cls, port, sid, after_upgrade=b"", timeout=10):
        """Sends the upgrade (and any bytes right behind it, in the same write)
        and reads the 101 head."""
        ws = cls(port, timeout=timeout)
        ws.sock.sendall(upgrade_request(sid) + after_upgrade)
        head = ws.read_head()
        assert head.startswith("HTTP/1.1 101"), head
        return ws

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode()

    def read_frame(self):
        """(opcode, payload bytes) of the next frame."""
        while len(self.buf) < 2:
            self._fill()
        n = self.buf[1] & 0x7F
        off = 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill()
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill()
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        while len(self.buf) < off + n:
            self._fill()
        op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return op, payload

    def read_json(self, type_=None, timeout=10):
        """The next text message (of type_ when given), parsed; pings and
        pongs in between are skipped."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            op, payload = self.read_frame()
            if op == 8:
                raise EOFError(f"closed with {payload[:2].hex()} {payload[2:]!r}")
            if op != 1 or payload == b"pong":
                continue
            m = json.loads(payload)
            if type_ is None or m.get("type") == type_:
                return m
        raise TimeoutError(type_)

    def send(self, msg):
        self.sock.sendall(frame(json.dumps(msg)))

    def close(self):
        self.sock.close()
