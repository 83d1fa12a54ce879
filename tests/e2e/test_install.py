"""make install / make uninstall and the systemd unit, for real: a Release
build installed with `make install DESTDIR=<tmp> PREFIX=/usr` (from a build
directory of the test's own) lays out the expected files; the installed
binary, started from an unrelated directory without --web-root, serves the
installed web page; the installed unit passes `systemd-analyze verify`, is
rated OK or better by `systemd-analyze security`, and its system call filter
and address families allow every call the installed server makes through a
session's life (traced with strace); `make uninstall` removes it all."""
import asyncio
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import TRACK, Client, Server, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
WORK = tempfile.mkdtemp(prefix="grooved-install-")
DEST = os.path.join(WORK, "dest")
BUILD = os.path.join(WORK, "build")
# JOBS=1: gentle on the machine the other tests share.
MAKE_VARS = [f"DESTDIR={DEST}", "PREFIX=/usr", f"INSTALL_BUILD={BUILD}", "JOBS=1"]
UNIT = os.path.join(DEST, "usr/lib/systemd/system/grooved.service")
INSTALLED_BIN = os.path.join(DEST, "usr/bin/grooved")
WEB = os.path.join(DEST, "usr/share/grooved/web")

EXPECTED = [
    "usr/bin/grooved",
    "usr/bin/grooved-bench",
    "usr/share/man/man1/grooved.1",
    "usr/lib/systemd/system/grooved.service",
] + ["usr/share/grooved/web/" + f for f in sorted(os.listdir(os.path.join(ROOT, "web")))]


def make(target):
    out = subprocess.run(["make", "-C", ROOT, "--no-print-directory", target] + MAKE_VARS,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"make {target} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def installed_files():
    found = []
    for d, _, files in os.walk(DEST):
        found += [os.path.relpath(os.path.join(d, f), DEST) for f in files]
    return sorted(found)


def test_make_install_lays_out_the_files():
    make("install")
    assert installed_files() == sorted(EXPECTED), installed_files()
    for f in os.listdir(os.path.join(ROOT, "web")):
        with open(os.path.join(ROOT, "web", f), "rb") as a, open(os.path.join(WEB, f), "rb") as b:
            assert a.read() == b.read(), f
    for b in ("grooved", "grooved-bench"):
        assert os.access(os.path.join(DEST, "usr/bin", b), os.X_OK)
    with open(UNIT) as f:
        unit = f.read()
    assert re.search(r"^ExecStart=/usr/bin/grooved$", unit, re.M), unit
    assert "@" + "GD_BINDIR@" not in unit


async def test_installed_binary_serves_the_installed_page():
    # Mark the installed page, so that serving the repository's web/ cannot pass.
    with open(os.path.join(WEB, "index.html"), "a") as f:
        f.write("<!-- installed copy -->\n")
    with open(os.path.join(WEB, "index.html"), "rb") as f:
        installed = f.read()
    elsewhere = tempfile.mkdtemp(prefix="grooved-cwd-", dir=WORK)
    env = {k: v for k, v in os.environ.items() if k != "GROOVED_WEB_ROOT"}
    out = subprocess.run([INSTALLED_BIN, "--help"], capture_output=True, text=True, timeout=10,
                         cwd=elsewhere, env=env)
    assert f'default "{WEB}"' in out.stdout, out.stdout
    saved = harness.BIN
    harness.BIN = INSTALLED_BIN
    s = Server(env={"ASAN_OPTIONS": "detect_leaks=0"})
    s.env.pop("GROOVED_WEB_ROOT", None)
    try:
        cwd = os.getcwd()
        os.chdir(elsewhere)  # the server inherits it
        try:
            s.start()
        finally:
            os.chdir(cwd)
        assert f"web-root={WEB}" in s.read_log(), s.read_log()
        status, _, body = s.http("GET", "/")
        assert status == 200 and body.encode() == installed, (status, body[:200])
        status, _, body = s.http("GET", "/app.js")
        with open(os.path.join(WEB, "app.js")) as f:
            assert status == 200 and body == f.read()
        assert s.stop() == 0
    finally:
        harness.BIN = saved
        s.cleanup()


def test_build_tree_binary_serves_the_repository_page():
    out = subprocess.run([harness.BIN, "--help"], capture_output=True, text=True, timeout=10,
                         cwd=WORK, env={k: v for k, v in os.environ.items()
                                        if k != "GROOVED_WEB_ROOT"})
    m = re.search(r'--web-root .*default "([^"]+)"', out.stdout)
    assert m, out.stdout
    assert os.path.realpath(m.group(1)) == os.path.join(ROOT, "web"), m.group(1)


def test_unit_verifies_and_is_rated_ok():
    for tool in ("systemd-analyze",):
        assert shutil.which(tool), f"{tool} is required (make test installs systemd)"
    # verify checks that ExecStart exists and that man:grooved(1) resolves: point
    # both at the installed tree (no running systemd is needed).
    vdir = os.path.join(WORK, "verify")
    os.makedirs(vdir)
    with open(UNIT) as f:
        unit = f.read().replace("ExecStart=/usr/bin/grooved", f"ExecStart={INSTALLED_BIN}")
    with open(os.path.join(vdir, "grooved.service"), "w") as f:
        f.write(unit)
    env = dict(os.environ, MANPATH=os.path.join(DEST, "usr/share/man"))
    out = subprocess.run(["systemd-analyze", "verify", os.path.join(vdir, "grooved.service")],
                         capture_output=True, text=True, timeout=60, env=env)
    # It reports bad values as warnings with status 0: silence is the pass.
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), \
        (out.returncode, out.stdout, out.stderr)
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", UNIT],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for grooved\.service: ([0-9.]+) (\w+)", out.stdout)
    assert m, out.stdout + out.stderr
    print(f"systemd-analyze security: exposure {m.group(1)} {m.group(2)}", flush=True)
    assert m.group(2) in ("SAFE", "OK"), out.stdout


def unit_settings(key):
    with open(UNIT) as f:
        return [line.split("=", 1)[1].split() for line in f
                if line.startswith(key + "=")]


def syscall_groups():
    """{"@group": set of names or @groups} from systemd-analyze syscall-filter."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         timeout=60).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(name, groups):
    if not name.startswith("@"):
        return {name}
    out = set()
    for m in groups[name]:
        out |= expand(m, groups)
    return out


async def test_filter_allows_every_call_the_server_makes():
    """The unit's SystemCallFilter (allow list minus ~deny lists, as systemd
    applies them in order) and RestrictAddressFamilies, against what the
    installed server does: start, a session with two players, a REST write,
    leave, graceful stop. A call outside would fail with EPERM in service."""
    if not shutil.which("strace"):
        raise AssertionError("strace is required (make test installs it)")
    groups = syscall_groups()
    allowed = set()
    for words in unit_settings("SystemCallFilter"):
        if words[0].startswith("~"):
            words[0] = words[0][1:]
            for w in words:
                allowed -= expand(w, groups)
        else:
            for w in words:
                allowed |= expand(w, groups)
    assert "fdatasync" in allowed and "flock" in allowed and "poll" in allowed
    families = {f for words in unit_settings("RestrictAddressFamilies") for f in words}

    trace = os.path.join(WORK, "strace.txt")
    notify_path = os.path.join(WORK, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    os.chmod(notify_path, 0o777)
    saved = harness.BIN
    harness.BIN = INSTALLED_BIN
    s = Server(env={"NOTIFY_SOCKET": notify_path})
    wrapper = ["strace", "-f", "-qq", "-o", trace]
    if os.geteuid() == 0:
        # As under DynamicUser=yes, not root (SQLite, for one, fchown()s its
        # files only when root).
        wrapper += ["-u", "nobody"]
        os.chmod(WORK, 0o755)
        for d, dirs, files in os.walk(s.data_dir):
            shutil.chown(d, "nobody", "nogroup")
    # As LimitNOFILE= sets both limits, the soft limit is already the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        s.start(wrapper=wrapper)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        harness.BIN = saved
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        for step in range(4):
            await a.request({"type": "toggle_step", "trackId": "t1", "step": step}, "step_toggled")
        await b.request({"type": "set_tempo", "tempo": 131}, "tempo_changed")
        assert s.http("PATCH", f"/api/sessions/{sid}", {"name": "Traced"})[0] == 200
        await a.close()
        await b.close()
        assert s.http("GET", "/metrics")[0] == 200
        with open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children") as f:
            child = int(f.read().split()[0])
        os.kill(child, signal.SIGTERM)
        s.proc.wait(60)
        notify.settimeout(5)
        said = [notify.recv(4096).decode() for _ in range(2)]
        assert said[0].startswith("READY=1") and said[1].startswith("STOPPING=1"), said
    finally:
        notify.close()
        s.cleanup()
    used, socket_families, written, execs = set(), set(), set(), 0
    with open(trace) as f:
        for line in f:
            m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
            if m:
                used.add(m.group(1))
            if re.match(r"\d+\s+execve\(", line):
                execs += 1
            m = re.search(r"\bsocket\((AF_[A-Z0-9]+)", line)
            if m:
                socket_families.add(m.group(1))
            m = (re.search(r'\bopenat\(AT_FDCWD, "([^"]*)", [^)]*O_(?:WRONLY|RDWR|CREAT)', line)
                 or re.search(r'\b(?:mkdir|unlink|rename|rmdir)\("([^"]*)"', line))
            if m:
                written.add(m.group(1))
    assert len(used) > 20 and "fdatasync" in used, sorted(used)
    # execve is strace starting grooved; systemd starts it before the filter applies.
    outside = sorted(used - allowed - {"execve"})
    assert not outside, f"system calls the unit's filter refuses: {outside}"
    assert socket_families <= families, (socket_families, families)
    # ProtectSystem=strict: only the data directory (and a private /tmp) is writable.
    data = os.path.realpath(s.data_dir)
    outside = sorted(p for p in written if not (
        os.path.realpath(p) == data or os.path.realpath(p).startswith(data + "/")
        or p == "/dev/null" or (p.startswith(("/tmp/", "/var/tmp/")) and not p.startswith(WORK))))
    assert not outside, f"files written outside the data directory: {outside}"
    assert any(p.startswith(data) for p in written), sorted(written)


def test_make_uninstall_removes_everything():
    make("uninstall")
    assert installed_files() == [], installed_files()
    assert not os.path.exists(os.path.join(DEST, "usr/share/grooved"))
    # Shared directories stay.
    assert os.path.isdir(os.path.join(DEST, "usr/bin"))


if __name__ == "__main__":
    try:
        run([test_make_install_lays_out_the_files, test_installed_binary_serves_the_installed_page,
             test_build_tree_binary_serves_the_repository_page, test_unit_verifies_and_is_rated_ok,
             test_filter_allows_every_call_the_server_makes, test_make_uninstall_removes_everything])
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
