"""Hostile HTTP clients (issue 10): one packet must not stop the server, it
listens on exactly --host, per-address limits are exact and cannot be
dodged through a proxy header, every address has a connection cap with
headroom for health checks, listings and cold loads are rate-limited, and
request heads are strict (HEAD, Content-Length)."""
import base64
import json
import os
import re
import resource
import socket
import time

from harness import TRACK, Server, cpu_seconds, metric, raw_exchange, run


def post(path, body=b"{}", method="POST", extra=b""):
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n" + body


def responses(reply):
    return re.findall(rb"^HTTP/1\.1 (\d{3})", reply, re.M)


def assert_idle(s, what):
    """The loop is not spinning: under half a core over one second."""
    before = cpu_seconds(s.proc.pid)
    time.sleep(1.0)
    used = cpu_seconds(s.proc.pid) - before
    assert used < 0.5, f"{what}: the server used {used:.2f} s of CPU in 1 s (spinning)"


def test_pipelined_requests_are_answered_once_and_never_spin():
    s = Server(args=["--create-rate", "1000"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        state = json.dumps({"state": {"tempo": 99}}).encode()
        name = json.dumps({"name": "x"}).encode()
        cases = {
            "GET then POST": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + post("/api/sessions"),
            "POST then POST": post("/api/sessions") + post("/api/sessions"),
            "PUT then PUT": post(f"/api/sessions/{sid}", state, "PUT") * 2,
            "PATCH then PATCH": post(f"/api/sessions/{sid}", name, "PATCH") * 2,
            "POST then GET": post("/api/sessions") + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        created = metric(s, "grooved_sessions_created_total")
        for what, data in cases.items():
            reply = raw_exchange(s.port, data, timeout=5)
            assert_idle(s, what)
            codes = responses(reply)
            assert len(codes) == 1 and codes[0] in (b"200", b"201"), (what, reply[:300])
            assert b"connection: close" in reply.lower(), (what, reply[:300])

            st, _, b = s.http("GET", "/healthz")
            assert st == 200 and b["status"] == "ok", what
        # Only the first request of each pair ran: two sessions, not four.
        assert metric(s, "grooved_sessions_created_total") == created + 2
        assert s.stop(timeout=20) == 0
    finally:
        s.cleanup()


def test_content_length_must_be_one_number_and_head_has_no_body():
    s = Server().start()
    try:
        before = metric(s, "grooved_sessions_created_total")
        for cl in (b"Content-Length: abc\r\n", b"Content-Length: 2\r\nContent-Length: 2\r\n",
                   b"Content-Length: 2, 2\r\n", b"Content-Length: -2\r\n"):
            data = (b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + cl + b"\r\n{}" + post("/api/sessions"))
            reply = raw_exchange(s.port, data)
            assert responses(reply) == [b"400"], (cl, reply[:200])
            assert b'"error"' in reply
        assert_idle(s, "bad Content-Length")
        assert metric(s, "grooved_sessions_created_total") == before, "nothing may run"
        reply = raw_exchange(s.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), reply
        assert int(re.search(rb"content-length: (\d+)", head, re.I).group(1)) > 0
        assert body == b"", f"HEAD must not send a body, got {body!r}"
    finally:
        s.cleanup()


def listening(port):
    """(family, address hex) of every listening socket on port."""
    out = []
    for fam, path in (("4", "/proc/net/tcp"), ("6", "/proc/net/tcp6")):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    local, st = line.split()[1], line.split()[3]
                    addr, p = local.split(":")
                    if st == "0A" and int(p, 16) == port:
                        out.append((fam, addr))
        except FileNotFoundError:
            pass
    return sorted(out)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_listens_on_exactly_the_configured_address():
    s = Server().start()  # the harness passes --host 127.0.0.1
    try:
        assert listening(s.port) == [("4", "0100007F")], listening(s.port)
        # 127.0.0.2 is this machine too: only a wildcard bind would answer it.
        try:
            socket.create_connection(("127.0.0.2", s.port), timeout=2).close()
            raise AssertionError("answered on 127.0.0.2 although --host is 127.0.0.1")
        except ConnectionRefusedError:
            pass
        assert s.http("GET", "/healthz")[0] == 200
    finally:
        s.cleanup()
    if not have_ipv6_loopback():
        print("  (no IPv6 loopback here: ::1 and localhost cases skipped)")
        return
    s = Server(args=["--host", "::1"]).start()
    try:
        assert listening(s.port) == [("6", "00000000000000000000000001000000")], listening(s.port)
        reply = raw_exchange(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", host="::1")
        assert responses(reply) == [b"200"]
    finally:
        s.cleanup()
    # A name listens on every address it resolves to, and only those.
    hexes = {"127.0.0.1": ("4", "0100007F"), "::1": ("6", "00000000000000000000000001000000")}
    want = sorted({hexes[ai[4][0]] for ai in socket.getaddrinfo("localhost", None, 0,
                                                                 socket.SOCK_STREAM)})
    s = Server(args=["--host", "localhost"]).start()
    try:
        assert listening(s.port) == want, (listening(s.port), want)
    finally:
        s.cleanup()


def fnv_slot(text):
    h = 1469598103934665603
    for ch in text.encode():
        h = ((h ^ ch) * 1099511628211) % (1 << 64)
    return h % 4096


def colliding_pair():
    """Two loopback addresses that shared a slot of the old 4,096-slot table."""
    seen = {}
    for a in range(0, 256):
        for b in range(2, 255):
            ip = f"127.0.{a}.{b}"
            slot = fnv_slot("::ffff:" + ip)
            if slot in seen:
                return seen[slot], ip
            seen[slot] = ip
    raise AssertionError("no collision found")


def create_from(s, source, headers=b""):
    data = (b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n" + headers + b"\r\n{}")
    codes = responses(raw_exchange(s.port, data, source=source))
    return int(codes[0]) if codes else None


def test_create_limit_is_exact_per_address():
    a, b = colliding_pair()
    s = Server(args=["--create-rate", "10"]).start()
    try:
        codes = [create_from(s, a if i % 2 == 0 else b) for i in range(60)]
        assert codes.count(201) == 20, f"each address gets its own 10: {codes}"
        assert set(codes) == {201, 429}
    finally:
        s.cleanup()


def test_trusted_proxy_matches_either_spelling_and_believes_its_own_entry():
    for proxy in ("127.0.0.1", "::ffff:127.0.0.1"):
        s = Server(args=["--create-rate", "2", "--trusted-proxy", proxy]).start()
        try:
            xff = lambda chain: {"X-Forwarded-For": chain}
            codes = [s.http("POST", "/api/sessions", {}, xff(f"6.6.6.{i}, 198.51.100.1"))[0]
                     for i in range(3)]
            # The left entries are the client's own words: changing them gains nothing.
            assert codes == [201, 201, 429], (proxy, codes)
            # Another client behind the same proxy has its own bucket.
            assert s.http("POST", "/api/sessions", {}, xff("198.51.100.2"))[0] == 201, proxy
            assert s.http("POST", "/api/sessions", {}, xff("198.51.100.2, 198.51.100.3"))[0] == 201
        finally:
            s.cleanup()
    # From any other peer the header proves nothing.
    s = Server(args=["--create-rate", "2", "--trusted-proxy", "10.0.0.1"]).start()
    try:
        codes = [s.http("POST", "/api/sessions", {}, {"X-Forwarded-For": f"198.51.100.{i}"})[0]
                 for i in range(3)]
        assert codes == [201, 201, 429], codes
    finally:
        s.cleanup()
    s = Server(args=["--trusted-proxy", "not-an-address"])
    try:
        try:
            s.start()
            raise AssertionError("a trusted proxy that is not an address must stop startup")
        except RuntimeError as e:
            assert "not an IPv4 or IPv6 address" in str(e)
        assert s.proc.wait(10) == 2
    finally:
        s.cleanup()


def open_idle(port, n, source):
    out = []
    for _ in range(n):
        out.append(socket.create_connection(("127.0.0.1", port), timeout=5,
                                            source_address=(source, 0)))
    return out


def test_connections_per_address_are_capped_with_headroom_for_health_checks():
    s = Server(args=["--max-conns-per-ip", "20"]).start()
    held = []
    try:
        held = open_idle(s.port, 20, "127.0.0.2")
        time.sleep(0.3)
        # Over the cap: /healthz is still answered ...
        reply = raw_exchange(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", source="127.0.0.2")
        assert responses(reply) == [b"200"], reply[:200]
        # ... but nothing else.
        reply = raw_exchange(s.port, post("/api/sessions"), source="127.0.0.2")
        assert responses(reply) == [b"503"] and b"Too many connections" in reply, reply[:200]
        # More idle sockets: past a few reserve slots each is answered 503 at once.
        extra = open_idle(s.port, 12, "127.0.0.2")
        held += extra
        refused = 0
        for sock in extra:
            sock.settimeout(3)
            try:
                refused += sock.recv(200).startswith(b"HTTP/1.1 503")
            except socket.timeout:
                pass
        assert refused >= 8, refused
        # Another address is unaffected.
        assert s.http("GET", "/healthz")[0] == 200
        assert s.http("POST", "/api/sessions", {})[0] == 201
        assert metric(s, "grooved_connections_refused_total") >= 9
        # Closing them gives the address its connections back.
        for sock in held:
            sock.close()
        held = []
        time.sleep(0.5)
        assert create_from(s, "127.0.0.2") == 201
    finally:
        for sock in held:
            sock.close()
        s.cleanup()


def test_descriptor_limit_is_never_reached():
    # 256 descriptors: grooved keeps 96 back, so at most 160 connections.
    lim = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    s = Server(args=["--max-conns-per-ip", "30"], preexec_fn=lim).start()
    held = []
    try:
        for k in range(8):  # 240 connections from 8 addresses, each under its cap
            held += open_idle(s.port, 30, f"127.0.1.{k + 2}")
        time.sleep(0.5)
        reply = raw_exchange(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert responses(reply) == [b"200"], reply[:200]
        for sock in held:
            sock.close()
        held = []
        time.sleep(0.5)
        assert metric(s, "grooved_connections_refused_total") > 0
        assert "out of file descriptors" not in s.read_log()
    finally:
        for sock in held:
            sock.close()
        s.cleanup()


def test_listing_and_cold_loads_are_rate_limited_per_address():
    s = Server(args=["--list-rate", "3", "--load-rate", "2"]).start()
    try:
        codes = [s.http("GET", "/api/sessions")[0] for _ in range(4)]
        assert codes == [200, 200, 200, 429], codes
        st, h, b = s.http("GET", "/api/sessions")
        assert st == 429 and b["retryAfter"] >= 1 and int(h["retry-after"]) >= 1
        assert metric(s, "grooved_rate_limited_total{limit=\"list\"}") == 2
        ids = [s.create({"state": {"tracks": [TRACK]}}) for _ in range(4)]
        s.stop()
        s.start()  # nothing in memory now: each session is a cold load
        assert [s.http("GET", f"/api/sessions/{i}")[0] for i in ids[:2]] == [200, 200]
        st, _, b = s.http("GET", f"/api/sessions/{ids[2]}")
        assert st == 429 and "retryAfter" in b, (st, b)
        assert s.http("GET", f"/api/sessions/{ids[0]}")[0] == 200, "in memory: not a load"
        key = base64.b64encode(os.urandom(16)).decode()
        up = (f"GET /api/sessions/{ids[3]}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        reply = raw_exchange(s.port, up.encode())
        assert responses(reply) == [b"429"] and b"retryAfter" in reply, reply[:300]
        assert metric(s, "grooved_rate_limited_total{limit=\"load\"}") == 2

    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_pipelined_requests_are_answered_once_and_never_spin,
         test_content_length_must_be_one_number_and_head_has_no_body,
         test_listens_on_exactly_the_configured_address,
         test_create_limit_is_exact_per_address,
         test_trusted_proxy_matches_either_spelling_and_believes_its_own_entry,
         test_connections_per_address_are_capped_with_headroom_for_health_checks,
         test_descriptor_limit_is_never_reached,
         test_listing_and_cold_loads_are_rate_limited_per_address])
