"""A private redis-server for a test (127.0.0.1, a free port, no persistence,
always stopped by pid) and a tiny RESP client to look at what grooved wrote.
The KV view's layout is kv_redis.c's: hash grooved:session:<id> (value, opno,
member) and sorted set grooved:sessions."""
import os
import signal
import socket
import subprocess
import tempfile
import time


class RespError(Exception):
    pass


class Resp:
    """One connection; command() returns str, int, None, list, or raises RespError."""

    def __init__(self, port, db=0, timeout=5, auth=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if auth:
            self.command("AUTH", *auth)
        if db:
            self.command("SELECT", str(db))

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if rest == "-1" else self._exact(int(rest)).decode()
        if kind == b"*":
            return None if rest == "-1" else [self._reply() for _ in range(int(rest))]
        raise RespError(f"unexpected reply {line!r}")

    def command(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._reply()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1; stop() and kill() act on its pid only."""

    def __init__(self, args=(), auth=()):
        """args: more redis-server options (e.g. --requirepass); auth: what
        this fixture's own connections send to AUTH."""
        self.dir = tempfile.mkdtemp(prefix="grooved-redis-")
        self.port = free_port()
        self.proc = None
        self.args = list(args)
        self.auth = tuple(auth)

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self):
        """Starts (or restarts, on the same port: empty, no persistence)."""
        with open(os.path.join(self.dir, "redis.log"), "a") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--daemonize", "no", *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + self.read_log()[-2000:])
            try:
                r = Resp(self.port, auth=self.auth)
                try:
                    if r.command("PING") == "PONG":
                        return self
                finally:
                    r.close()
            except (OSError, RespError):
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def read_log(self):
        with open(os.path.join(self.dir, "redis.log")) as f:
            return f.read()

    def client(self, db=0):
        return Resp(self.port, db, auth=self.auth)

    def kill(self):
        """SIGKILL: Redis gone at once, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        subprocess.run(["rm", "-rf", self.dir], check=False)


def view(r, sid):
    """(value as text, opno as int) of sid's KV view in Redis, or (None, None)."""
    value, opno = r.command("HMGET", f"grooved:session:{sid}", "value", "opno")
    return value, (int(opno) if opno is not None else None)
