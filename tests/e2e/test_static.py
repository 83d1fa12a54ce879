"""The web root (--web-root) as a single-page app's users expect it, over real
sockets against the real binary, on a fixture web root built here: files at
any depth with their types, GET and HEAD, ETag / If-None-Match, Cache-Control
by name, the SPA fallback, gzip and brotli (compressed once and cached, or
precompressed siblings), refused traversal and symlinks that leave the root,
large files streamed in chunks and no file I/O on the loop thread."""
import asyncio
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time

import brotli

from harness import TRACK, Client, Server, run

SECRET = b"TOP-SECRET-MARKER-outside-the-web-root"
HASHED = "assets/index-mQcq3Hx1.js"
BIG = 6 * 1024 * 1024 + 12345  # several MiB, not a multiple of the chunk size


def text_blob(tag, kib):
    """Compressible JavaScript-like text of about `kib` KiB."""
    line = f"export function {tag}_%d(a, b) {{ return a * %d + b; /* {tag} */ }}\n"
    out, i = [], 0
    while sum(map(len, out)) < kib * 1024:
        out.append(line % (i, i * 7))
        i += 1
    return "".join(out).encode()


class Fixture:
    """A temporary directory holding root/ (the web root) and, beside it,
    a secret file and directory that must never be served."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="grooved-web-")
        self.root = os.path.join(self.dir, "root")
        self.files = {}
        self.put("index.html", b"<!doctype html><title>fixture</title><div id=root>SPA-INDEX</div>\n")
        self.put("app.js", text_blob("app", 40))
        self.put(HASHED, text_blob("hashed", 120))
        self.put("assets/style-Ck4FfPD_.css", b"body{color:red}\n" * 300)
        self.put("instruments/piano/C4.mp3", b"ID3\x03\x00" + os.urandom(48 * 1024))
        self.put("instruments/piano/manifest.json", json.dumps({"samples": [{"note": 60, "file": "C4.mp3"}]}).encode())
        self.put("deep/a/b/c/d/e/f/g/leaf.txt", b"deep leaf\n")
        self.put("docs/index.html", b"<p>docs index</p>\n")
        self.put(".hidden.txt", b"hidden\n")
        self.put("big.bin", os.urandom(BIG))
        self.put("tiny.json", b"{}")
        for ext in ["css", "json", "map", "svg", "png", "jpg", "jpeg", "webp", "ico", "wav", "ogg",
                    "m4a", "woff", "woff2", "webmanifest", "wasm", "txt", "mjs", "html"]:
            self.put(f"types/file.{ext}", b"x" * 64)
        # Precompressed siblings, made differently from the server's own
        # compression (other levels), so the bytes tell which was sent.
        pre = text_blob("pre", 30)
        self.put("pre/bundle.js", pre)
        self.put("pre/bundle.js.br", brotli.compress(pre, quality=11))
        self.put("pre/bundle.js.gz", gzip.compress(pre, compresslevel=1, mtime=0))
        # A sibling older than its file is stale and must be ignored.
        self.put("pre/stale.js", text_blob("fresh", 20))
        self.put("pre/stale.js.gz", gzip.compress(b"stale content", mtime=0))
        past = time.time() - 3600
        os.utime(os.path.join(self.root, "pre/stale.js.gz"), (past, past))
        # Outside the root.
        with open(os.path.join(self.dir, "secret.txt"), "wb") as f:
            f.write(SECRET)
        os.makedirs(os.path.join(self.dir, "outside"))
        with open(os.path.join(self.dir, "outside", "secret.txt"), "wb") as f:
            f.write(SECRET)
        os.symlink("../secret.txt", os.path.join(self.root, "leak.txt"))
        os.symlink(os.path.join(self.dir, "secret.txt"), os.path.join(self.root, "abs-leak.js"))
        os.symlink(os.path.join(self.dir, "outside"), os.path.join(self.root, "escape"))
        os.symlink("../app.js", os.path.join(self.root, "assets", "inside-link.js"))

    def put(self, rel, data):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.files[rel] = data

    def server(self, **kw):
        args = ["--web-root", self.root] + list(kw.pop("args", []))
        return Server(args=args, **kw)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def get(s, path, headers=None, method="GET"):
    """One request on a fresh connection: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def raw(s, request, timeout=10):
    """Sends raw request bytes; returns everything the server sent until it
    closed the connection (Connection: close is added)."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=timeout)
    sock.sendall(request)
    out = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            out += d
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    return out


def metric(s, name):
    _, _, body = get(s, "/metrics")
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def test_files_at_any_depth_with_their_types():
    fx = Fixture()
    s = fx.server().start()
    try:
        expect = {
            "index.html": "text/html; charset=utf-8",
            "app.js": "text/javascript; charset=utf-8",
            HASHED: "text/javascript; charset=utf-8",
            "assets/style-Ck4FfPD_.css": "text/css; charset=utf-8",
            "instruments/piano/C4.mp3": "audio/mpeg",
            "instruments/piano/manifest.json": "application/json",
            "deep/a/b/c/d/e/f/g/leaf.txt": "text/plain; charset=utf-8",
        }
        types = {"css": "text/css; charset=utf-8", "json": "application/json", "map": "application/json",
                 "svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                 "webp": "image/webp", "ico": "image/x-icon", "wav": "audio/wav", "ogg": "audio/ogg",
                 "m4a": "audio/mp4", "woff": "font/woff", "woff2": "font/woff2",
                 "webmanifest": "application/manifest+json", "wasm": "application/wasm",
                 "txt": "text/plain; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
                 "html": "text/html; charset=utf-8"}
        expect.update({f"types/file.{e}": t for e, t in types.items()})
        for rel, ctype in expect.items():
            status, h, body = get(s, "/" + rel)
            assert status == 200, (rel, status)
            assert h["content-type"] == ctype, (rel, h["content-type"])
            assert body == fx.files[rel], rel
            assert int(h["content-length"]) == len(fx.files[rel]), rel
        # A directory serves its own index.html; a query string is not part of the path.
        assert get(s, "/docs/")[2] == fx.files["docs/index.html"]
        assert get(s, "/docs")[2] == fx.files["docs/index.html"]
        assert get(s, "/app.js?v=3")[2] == fx.files["app.js"]
        # Several requests on one keep-alive connection.
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for rel in ["instruments/piano/C4.mp3", "app.js", "instruments/piano/C4.mp3"]:
            conn.request("GET", "/" + rel)
            r = conn.getresponse()
            assert r.status == 200 and r.read() == fx.files[rel]
        conn.close()
    finally:
        s.cleanup()
        fx.cleanup()


def test_head_answers_as_get_without_a_body():
    fx = Fixture()
    s = fx.server().start()
    try:
        for path, hdrs in [("/app.js", {}), ("/app.js", {"Accept-Encoding": "br"}),
                           ("/instruments/piano/C4.mp3", {}), ("/big.bin", {}), ("/s/abc", {}),
                           ("/missing.js", {})]:
            gs, gh, gbody = get(s, path, hdrs)
            hs, hh, hbody = get(s, path, hdrs, method="HEAD")
            assert hs == gs, (path, hs, gs)
            assert hbody == b"", path
            for k in ["content-type", "content-length", "etag", "content-encoding", "cache-control", "vary"]:
                assert hh.get(k) == gh.get(k), (path, k, hh.get(k), gh.get(k))
            assert int(hh["content-length"]) == len(gbody), path
        # HEAD then GET on one keep-alive connection: no body was sent for the HEAD.
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("HEAD", "/app.js")
        r = conn.getresponse()
        r.read()
        conn.request("GET", "/instruments/piano/manifest.json")
        r = conn.getresponse()
        assert r.read() == fx.files["instruments/piano/manifest.json"]
        conn.close()
    finally:
        s.cleanup()
        fx.cleanup()


def test_etag_and_conditional_requests():
    fx = Fixture()
    s = fx.server().start()
    try:
        for path, hdrs in [("/instruments/piano/C4.mp3", {}), ("/app.js", {"Accept-Encoding": "gzip"}),
                           ("/app.js", {"Accept-Encoding": "br"}), ("/pre/bundle.js", {"Accept-Encoding": "br"}),
                           ("/s/0b7e8a3c-1c5e-4b8e-9f0e-2a4b6c8d0e1f", {})]:
            status, h, body = get(s, path, hdrs)
            etag = h["etag"]
            assert status == 200 and re.fullmatch(r'"[^"]+"', etag), (path, etag)
            status, h304, body = get(s, path, dict(hdrs, **{"If-None-Match": etag}))
            assert status == 304 and body == b"", (path, status)
            assert h304["etag"] == etag and "content-type" not in h304
            assert get(s, path, dict(hdrs, **{"If-None-Match": f'"other", W/{etag}'}))[0] == 304
            assert get(s, path, dict(hdrs, **{"If-None-Match": '"other"'}))[0] == 200
            assert get(s, path, dict(hdrs, **{"If-Modified-Since": h["last-modified"]}))[0] == 304
        # Each coding is its own representation with its own tag.
        tags = {enc: get(s, "/app.js", {"Accept-Encoding": enc})[1]["etag"] for enc in ["gzip", "br", "identity"]}
        assert len(set(tags.values())) == 3, tags
        assert get(s, "/app.js", {"Accept-Encoding": "gzip", "If-None-Match": tags["br"]})[0] == 200
        # A changed file has a new tag: the old one no longer matches.
        old = get(s, "/instruments/piano/manifest.json")[1]["etag"]
        fx.put("instruments/piano/manifest.json", b'{"samples":[]}')
        status, h, body = get(s, "/instruments/piano/manifest.json", {"If-None-Match": old})
        assert status == 200 and body == b'{"samples":[]}' and h["etag"] != old
    finally:
        s.cleanup()
        fx.cleanup()


def test_cache_control_by_name():
    fx = Fixture()
    s = fx.server().start()
    try:
        forever = "public, max-age=31536000, immutable"
        assert get(s, "/" + HASHED)[1]["cache-control"] == forever
        assert get(s, "/assets/style-Ck4FfPD_.css", {"Accept-Encoding": "gzip"})[1]["cache-control"] == forever
        for path in ["/", "/index.html", "/s/0b7e8a3c-1c5e-4b8e-9f0e-2a4b6c8d0e1f", "/app.js",
                     "/instruments/piano/C4.mp3"]:
            assert get(s, path)[1]["cache-control"] == "no-cache", path
    finally:
        s.cleanup()
        fx.cleanup()


def test_single_page_app_fallback():
    fx = Fixture()
    s = fx.server().start()
    try:
        index = fx.files["index.html"]
        sid = s.create()
        for path in ["/", f"/s/{sid}", "/s/not-even-an-id", "/settings/profile", "/assets/sub/route"]:
            status, h, body = get(s, path)
            assert status == 200 and body == index, (path, status, body[:80])
            assert h["content-type"] == "text/html; charset=utf-8" and h["cache-control"] == "no-cache"
        # A missing file (its name has an extension) is a 404, not the page.
        for path in ["/assets/index-missing1.js", "/instruments/piano/C9.mp3", "/favicon.ico"]:
            status, h, body = get(s, path)
            assert status == 404 and body != index, path
        # /api/ is never the page.
        for path in ["/api/nothing", "/api/sessions/x/y"]:
            status, h, body = get(s, path)
            assert status == 404 and json.loads(body) == {"error": "Not found"}, path
        # The fallback is the root's index.html even below a directory that has its own.
        assert get(s, "/docs/some/route")[2] == index
    finally:
        s.cleanup()
        fx.cleanup()


def test_compression_for_text_once_per_file_version():
    fx = Fixture()
    s = fx.server().start()
    try:
        src = fx.files["app.js"]
        status, h, body = get(s, "/app.js", {"Accept-Encoding": "gzip"})
        assert h["content-encoding"] == "gzip" and h["vary"] == "Accept-Encoding"
        assert gzip.decompress(body) == src and len(body) < len(src) / 3
        status, h, body = get(s, "/app.js", {"Accept-Encoding": "gzip, deflate, br"})
        assert h["content-encoding"] == "br" and brotli.decompress(body) == src
        status, h, body = get(s, "/app.js", {"Accept-Encoding": "br;q=0.5, gzip"})
        assert h["content-encoding"] == "gzip" and gzip.decompress(body) == src
        status, h, body = get(s, "/app.js", {"Accept-Encoding": "gzip;q=0, br;q=0"})
        assert "content-encoding" not in h and body == src and h["vary"] == "Accept-Encoding"
        status, h, body = get(s, "/app.js")
        assert "content-encoding" not in h and body == src
        for rel in ["index.html", "assets/style-Ck4FfPD_.css", "instruments/piano/manifest.json", "types/file.svg",
                    "types/file.map"]:
            status, h, body = get(s, "/" + rel, {"Accept-Encoding": "gzip"})
            if len(fx.files[rel]) > 100:
                assert h.get("content-encoding") == "gzip", rel
            data = gzip.decompress(body) if h.get("content-encoding") == "gzip" else body
            assert data == fx.files[rel], rel
        # Media is never compressed, and does not vary.
        status, h, body = get(s, "/instruments/piano/C4.mp3", {"Accept-Encoding": "gzip, br"})
        assert "content-encoding" not in h and "vary" not in h and body == fx.files["instruments/piano/C4.mp3"]
        # A tiny file that would grow is sent as it is.
        status, h, body = get(s, "/tiny.json", {"Accept-Encoding": "gzip"})
        assert "content-encoding" not in h and body == b"{}"

        # Compressed once: the second request for the same version is a cache hit.
        key = 'grooved_static_compressions_total{encoding="gzip"}'
        n0 = metric(s, key)
        hits0 = metric(s, "grooved_static_compressed_cache_hits_total")
        for _ in range(3):
            assert gzip.decompress(get(s, "/" + HASHED, {"Accept-Encoding": "gzip"})[2]) == fx.files[HASHED]
        assert metric(s, key) == n0 + 1, (metric(s, key), n0)
        assert metric(s, "grooved_static_compressed_cache_hits_total") == hits0 + 2
        assert metric(s, "grooved_static_cache_bytes") > 0
        # A new version of the file (new mtime and content) is compressed again.
        fx.put(HASHED, text_blob("changed", 60))
        assert gzip.decompress(get(s, "/" + HASHED, {"Accept-Encoding": "gzip"})[2]) == fx.files[HASHED]
        assert metric(s, key) == n0 + 2
    finally:
        s.cleanup()
        fx.cleanup()


def test_precompressed_siblings():
    fx = Fixture()
    s = fx.server().start()
    try:
        status, h, body = get(s, "/pre/bundle.js", {"Accept-Encoding": "gzip, br"})
        assert h["content-encoding"] == "br" and body == fx.files["pre/bundle.js.br"]
        assert h["content-type"] == "text/javascript; charset=utf-8" and h["vary"] == "Accept-Encoding"
        status, h, body = get(s, "/pre/bundle.js", {"Accept-Encoding": "gzip"})
        assert h["content-encoding"] == "gzip" and body == fx.files["pre/bundle.js.gz"]
        assert gzip.decompress(body) == fx.files["pre/bundle.js"]
        status, h, body = get(s, "/pre/bundle.js")
        assert "content-encoding" not in h and body == fx.files["pre/bundle.js"]
        # No compression ran for them.
        assert metric(s, 'grooved_static_compressions_total{encoding="gzip"}') == 0
        assert metric(s, 'grooved_static_compressions_total{encoding="br"}') == 0
        assert metric(s, "grooved_static_precompressed_total") == 2
        # A sibling older than its file is stale: the file is compressed instead.
        status, h, body = get(s, "/pre/stale.js", {"Accept-Encoding": "gzip"})
        assert h["content-encoding"] == "gzip" and gzip.decompress(body) == fx.files["pre/stale.js"]
    finally:
        s.cleanup()
        fx.cleanup()


def test_traversal_and_symlinks_leaving_the_root_are_refused():
    fx = Fixture()
    s = fx.server().start()
    try:
        attempts = [
            "/../secret.txt", "/../../secret.txt", "/assets/../../secret.txt",
            "/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/secret.txt", "/.%2e/secret.txt",
            "/..%2fsecret.txt", "/assets%2f..%2f..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
            "/assets/..%5c..%5csecret.txt", "/..\\secret.txt", "/%252e%252e/secret.txt",
            "/leak.txt", "/abs-leak.js", "/escape/secret.txt", "/escape/", "/escape",
            "/secret.txt%00.js", "/%00", "/leak.txt%00",
            "//" + fx.dir.lstrip("/") + "/secret.txt", "/./../secret.txt",
        ]
        for path in attempts:
            for method in ["GET", "HEAD"]:
                resp = raw(s, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                assert SECRET not in resp, (path, resp[:200])
                if resp:
                    status = int(resp.split(b" ", 2)[1])
                    # Refused, or (for a path lws normalised into the root) the page or a 404.
                    assert status in (200, 400, 404), (path, status)
                    if status == 200:
                        assert fx.files["index.html"] in resp or method == "HEAD", (path, resp[:300])
        # The symlinks that leave the root are 404s, not the page.
        for path in ["/leak.txt", "/abs-leak.js", "/escape/secret.txt", "/escape"]:
            assert get(s, path)[0] == 404, path
        # Hidden files are not served.
        assert get(s, "/.hidden.txt")[0] == 404
        # A symlink that stays inside the root is fine.
        status, h, body = get(s, "/assets/inside-link.js")
        assert status == 200 and body == fx.files["app.js"]
        assert s.proc.poll() is None
    finally:
        s.cleanup()
        fx.cleanup()


async def test_large_file_streams_to_a_slow_reader_without_stalling_others():
    fx = Fixture()
    s = fx.server().start()
    try:
        want = hashlib.sha256(fx.files["big.bin"]).hexdigest()
        # A reader that takes the headers and then stops reading.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.settimeout(30)
        sock.connect(("127.0.0.1", s.port))
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {BIG}".encode() in head.lower()
        await asyncio.sleep(0.5)
        # Meanwhile everyone else is served: REST, files and a WebSocket player.
        loop = asyncio.get_running_loop()
        status, _, _ = await loop.run_in_executor(None, get, s, "/healthz")
        assert status == 200
        status, _, body = await loop.run_in_executor(None, get, s, "/instruments/piano/C4.mp3")
        assert body == fx.files["instruments/piano/C4.mp3"]
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        ack = await c.request({"type": "toggle_step", "trackId": "t1", "step": 3}, "step_toggled")
        assert ack["value"] is True
        await c.close()
        # Now read the rest: every byte arrives, in order.
        h = hashlib.sha256()
        got = 0
        while got < BIG:
            d = await loop.run_in_executor(None, sock.recv, 1 << 20)
            assert d, f"connection closed after {got} of {BIG} bytes"
            h.update(d)
            got += len(d)
        sock.close()
        assert got == BIG and h.hexdigest() == want
        # Two at once, whole.
        res = await asyncio.gather(*[loop.run_in_executor(None, get, s, "/big.bin") for _ in range(2)])
        for status, hdrs, body in res:
            assert status == 200 and hashlib.sha256(body).hexdigest() == want
    finally:
        s.cleanup()
        fx.cleanup()


def test_no_file_io_on_the_loop_thread_and_reads_in_chunks():
    if not shutil.which("strace"):
        raise AssertionError("strace is required (make test installs it)")
    fx = Fixture()
    trace = os.path.join(fx.dir, "strace.txt")
    s = fx.server(env={"ASAN_OPTIONS": "detect_leaks=0"})
    s.start(wrapper=["strace", "-f", "-qq", "-y", "-s", "256", "-o", trace,
                     "-e", "trace=open,openat,openat2,read,pread64,readv,preadv,stat,newfstatat,statx,readlink"])
    try:
        assert hashlib.sha256(get(s, "/big.bin")[2]).digest() == hashlib.sha256(fx.files["big.bin"]).digest()
        assert gzip.decompress(get(s, "/app.js", {"Accept-Encoding": "gzip"})[2]) == fx.files["app.js"]
        assert get(s, "/s/abc")[2] == fx.files["index.html"]
        assert get(s, "/instruments/piano/C4.mp3")[2] == fx.files["instruments/piano/C4.mp3"]
        with open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children") as f:
            main_tid = int(f.read().split()[0])  # grooved's pid: its loop thread's id
        os.kill(main_tid, signal.SIGTERM)
        s.proc.wait(30)
        root = os.path.realpath(fx.root)
        on_loop, big_reads = [], []
        with open(trace) as f:
            for line in f:
                tid = int(line.split(None, 1)[0])
                # A path argument ("/root/...") or a descriptor's path (fd</root/...>).
                if tid == main_tid and ('"' + root in line or "<" + root in line):
                    on_loop.append(line.strip())
                if "big.bin>" in line and re.search(r"\b(pread64|read)\(", line):
                    m = re.search(r"= (\d+)$", line.strip())
                    if m:
                        big_reads.append(int(m.group(1)))
        assert not on_loop, "file system calls on the loop thread:\n" + "\n".join(on_loop[:10])
        assert sum(big_reads) >= BIG, (sum(big_reads), BIG)
        assert max(big_reads) <= 256 * 1024, f"read {max(big_reads)} bytes at once: not streamed"
        assert len(big_reads) >= BIG // (256 * 1024)
    finally:
        s.cleanup()
        fx.cleanup()


if __name__ == "__main__":
    run([
        test_files_at_any_depth_with_their_types,
        test_head_answers_as_get_without_a_body,
        test_etag_and_conditional_requests,
        test_cache_control_by_name,
        test_single_page_app_fallback,
        test_compression_for_text_once_per_file_version,
        test_precompressed_siblings,
        test_traversal_and_symlinks_leaving_the_root_are_refused,
        test_large_file_streams_to_a_slow_reader_without_stalling_others,
        test_no_file_io_on_the_loop_thread_and_reads_in_chunks,
    ])
