"""A PostgreSQL server for the end-to-end suite in cluster mode (a ctest fixture).

  pg_fixture.py start DIR   initdb + start on a free 127.0.0.1 port; writes DIR/pg.json
  pg_fixture.py stop DIR    stops it and removes DIR

While it runs, the suite's tests that run with GROOVED_TEST_PG=DIR give every grooved
they start a database of its own on it (harness.Server), with --store postgres://...
PostgreSQL refuses to run as root: as root it runs as the postgres user, in a
directory that user owns. Every wait is bounded."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def run(cmd, timeout=120):
    subprocess.run(AS_POSTGRES + cmd, check=True, timeout=timeout, stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT)


def start(d):
    if not os.path.exists(f"{PG_BIN}/initdb"):
        sys.exit(f"pg_fixture: no PostgreSQL 15 at {PG_BIN} (make test installs postgresql)")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.chmod(d, 0o755)
    data = os.path.join(d, "data")
    if AS_POSTGRES:
        shutil.chown(d, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run([f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--no-locale"])
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                "max_connections = 300\nshared_buffers = 64MB\nsynchronous_commit = on\n"
                "fsync = on\n")
    run([f"{PG_BIN}/pg_ctl", "start", "-D", data, "-l", os.path.join(d, "pg.log"), "-w",
         "-t", "60"], timeout=90)
    with open(os.path.join(d, "pg.json"), "w") as f:
        json.dump({"port": port, "datadir": data}, f)
    print(f"pg_fixture: PostgreSQL on 127.0.0.1:{port}")


def stop(d):
    data = os.path.join(d, "data")
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        try:
            run([f"{PG_BIN}/pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", "-t", "30"],
                timeout=60)
        except subprocess.CalledProcessError:
            pass
    shutil.rmtree(d, ignore_errors=True)
    print("pg_fixture: stopped")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: pg_fixture.py start|stop DIR")
    (start if sys.argv[1] == "start" else stop)(sys.argv[2])
