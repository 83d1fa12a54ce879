"""sd_notify, as systemd's Type=notify uses it: with NOTIFY_SOCKET naming a
datagram socket the test owns, grooved sends READY=1 only once its port
accepts connections, and STOPPING=1 when SIGTERM begins the graceful stop
(before the process exits 0). Both a path and an abstract (@name) socket."""
import os
import re
import socket
import subprocess
import tempfile
import time

import harness
from harness import Server, run


def recv(sock, timeout):
    sock.settimeout(timeout)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n") if "=" in line)


def check_ready_then_stopping(notify_addr, sock):
    s = Server(env={"NOTIFY_SOCKET": notify_addr})
    try:
        # Start by hand: the READY datagram, not the log, says when it is up.
        fd, s.log_path = tempfile.mkstemp(prefix="grooved-log-", suffix=".txt")
        s.log = os.fdopen(fd, "w+")
        s.proc = subprocess.Popen([harness.BIN, "--host", "127.0.0.1", "--port", "0",
                                   "--data-dir", s.data_dir], stdout=s.log, stderr=s.log,
                                  env=s.env)
        msg = recv(sock, 30)
        assert msg.get("READY") == "1", msg
        # At this instant the port must already accept connections.
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", s.read_log())
        assert m, "READY=1 came before the listening line:\n" + s.read_log()
        s.port = int(m.group(1))
        assert f":{s.port}" in msg.get("STATUS", ""), msg
        with socket.create_connection(("127.0.0.1", s.port), timeout=5):
            pass
        assert s.proc.poll() is None
        assert s.http("GET", "/healthz")[0] == 200
        # Nothing else is said while it runs.
        sock.settimeout(0.3)
        try:
            extra = sock.recv(4096)
            raise AssertionError(f"unexpected notification {extra!r}")
        except socket.timeout:
            pass
        s.proc.send_signal(15)
        msg = recv(sock, 30)
        assert msg.get("STOPPING") == "1", msg
        assert s.proc.wait(60) == 0, s.read_log()[-2000:]
        assert s.read_log().index("shutting down") < s.read_log().index("stopped")
    finally:
        s.cleanup()


def test_ready_and_stopping_on_a_path_socket():
    d = tempfile.mkdtemp(prefix="grooved-notify-")
    path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        check_ready_then_stopping(path, sock)
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(d)


def test_ready_and_stopping_on_an_abstract_socket():
    name = f"grooved-test-notify-{os.getpid()}-{time.time_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        check_ready_then_stopping("@" + name, sock)
    finally:
        sock.close()


def test_no_notify_socket_is_fine_and_a_dead_one_does_not_block():
    # A socket path nobody listens on: sending fails, grooved carries on.
    s = Server(env={"NOTIFY_SOCKET": "/nonexistent/notify.sock"}).start()
    try:
        assert s.http("GET", "/healthz")[0] == 200
        assert s.stop() == 0
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_ready_and_stopping_on_a_path_socket, test_ready_and_stopping_on_an_abstract_socket,
         test_no_notify_socket_is_fine_and_a_dead_one_does_not_block])
