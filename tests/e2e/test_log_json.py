"""--log-format json: every line grooved writes to stderr through a session's
life (start, REST create, two WebSocket players, toggles, an oversized frame,
leave, SIGTERM) is one JSON object with time, level, event, session and msg,
and known events carry their typed fields; plain gd_log lines of modules not
yet converted come out as event "message" with the session they name.
Command-line errors follow the format too. And a source check: every
gd_event/gd_log_usage call names one key per printf conversion."""
import asyncio
import glob
import json
import os
import re
import subprocess

from harness import BIN, TRACK, Client, Server, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RESERVED = {"time", "level", "event", "session", "msg", "truncated"}


def parse_lines(text):
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"line {n} is not JSON ({e}): {line!r}")
        assert isinstance(rec, dict), line
        for k in ("time", "level", "event", "session", "msg"):
            assert k in rec, (k, line)
        assert TIME.match(rec["time"]), line
        assert rec["level"] in ("error", "warn", "info", "debug"), line
        assert isinstance(rec["event"], str) and rec["event"], line
        assert rec["session"] is None or isinstance(rec["session"], str), line
        records.append(rec)
    return records


async def test_a_session_logged_as_json():
    s = Server(args=["--log-format", "json", "--log-level", "debug"]).start()
    try:
        sid = s.create({"name": 'Odd "name" \\ \u00e9 \U0001F600', "state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        for step in range(3):
            await a.request({"type": "toggle_step", "trackId": "t1", "step": step}, "step_toggled")
        await b.request({"type": "set_tempo", "tempo": 125}, "tempo_changed")
        await a.ws.send("x" * 70000)  # over the 64 KiB message limit: rejected, logged at debug
        err = await a.recv_type("error")
        assert err["code"] == "MESSAGE_TOO_LARGE", err
        await a.close()
        await b.close()
        s.wait_log(r'"event":"message".*KV view written')
        assert s.stop() == 0, s.read_log()[-2000:]
        recs = parse_lines(s.read_log())
    finally:
        s.cleanup()

    events = [r["event"] for r in recs]
    by = {}
    for r in recs:
        by.setdefault(r["event"], []).append(r)

    config = by["config"][0]
    assert "log-format=json" in config["msg"] and config["session"] is None, config

    listening = by["listening"][0]
    assert listening["port"] == s.port and listening["host"] == "127.0.0.1", listening
    assert listening["data_dir"] == s.data_dir and listening["kv"] == "sqlite", listening
    assert isinstance(listening["sessions_known"], int), listening
    assert listening["msg"].startswith(f"grooved listening on http://127.0.0.1:{s.port} ")

    big = by["message_too_large"][0]
    assert big["level"] == "debug" and big["session"] == sid, big
    assert big["max_bytes"] == 65536 and isinstance(big["conn"], int), big

    # Lines of modules not converted yet: event "message", session extracted.
    joined = [r for r in by["message"] if re.match(r"player \S+ \(.*\) joined", r["msg"])]
    assert len(joined) == 2 and all(r["session"] == sid for r in joined), joined
    left = [r for r in by["message"] if re.match(r"player \S+ left", r["msg"])]
    assert len(left) == 2 and all(r["session"] == sid for r in left), left
    assert any(r["session"] == sid and r["msg"].startswith("created by") for r in by["message"])

    started = by["shutdown_started"][0]
    assert isinstance(started["sessions"], int), started
    assert events.index("listening") < events.index("shutdown_started")
    assert events[-1] == "stopped"


def test_command_line_errors_follow_the_format():
    bad = subprocess.run([BIN, "--log-format", "json", "--port", 'ba"nana'],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
    rec, = parse_lines(bad.stderr)
    assert rec["event"] == "config_invalid" and rec["level"] == "error", rec
    assert rec["flag"] == "port" and rec["value"] == 'ba"nana' and rec["source"] == "flag", rec
    assert rec["max"] == 65535, rec

    env = dict(os.environ, GROOVED_LOG_FORMAT="json")
    bad = subprocess.run([BIN, "--nope"], capture_output=True, text=True, timeout=10, env=env)
    assert bad.returncode == 2
    rec, = parse_lines(bad.stderr)
    assert rec["event"] == "config_invalid" and rec["flag"] == "--nope", rec

    bad = subprocess.run([BIN, "--log-format", "yaml"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "log-format 'yaml' is not one of text, json" in bad.stderr

    bad = subprocess.run([BIN, "gc", "--older-than-days", "0"], capture_output=True, text=True,
                         timeout=10, env=env)
    assert bad.returncode == 2
    rec, = parse_lines(bad.stderr)
    assert rec["event"] == "gc_usage", rec

    # Text stays the default, and unchanged.
    bad = subprocess.run([BIN, "--port", "x"], capture_output=True, text=True, timeout=10,
                         env={k: v for k, v in os.environ.items() if k != "GROOVED_LOG_FORMAT"})
    assert bad.stderr == "grooved: flag port: 'x' is not an integer from 0 to 65535\n", bad.stderr


# ---- the source check ---------------------------------------------------------

CONV = re.compile(r"%(?:%|[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|L|q|j|z|Z|t)?"
                  r"([diouxXcsfFeEgGaApnm]))")


def call_args(src, start):
    """The top-level arguments of the call whose '(' is at src[start]."""
    args, cur, depth, i = [], "", 0, start
    while True:
        c = src[i]
        if c in "\"'":
            j = i + 1
            while src[j] != c:
                j += 2 if src[j] == "\\" else 1
            cur += src[i:j + 1]
            i = j + 1
            continue
        if c == "(":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(cur.strip())
                return args
        elif c == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
            i += 1
            continue
        cur += c
        i += 1


def literal(arg):
    """The value of one or more adjacent C string literals, or None."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', arg)
    if not parts or re.sub(r'"((?:[^"\\]|\\.)*)"', "", arg).strip():
        return None
    return "".join(parts).replace("\\\\", "\0").replace('\\"', '"').replace("\0", "\\")


def test_every_call_names_one_key_per_conversion():
    checked = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "src/*.c"))):
        if os.path.basename(path) == "log.c":  # the definitions
            continue
        with open(path) as f:
            src = f.read()
        for m in re.finditer(r"\b(gd_event|gd_log_usage|gd_log_event)\s*\(", src):
            where = f"{os.path.basename(path)}:{src.count(chr(10), 0, m.start()) + 1}"
            args = call_args(src, m.end() - 1)
            event, keys, fmt = args[1], args[3], args[4]
            if m.group(1) == "gd_log_usage":
                event, keys, fmt = args[2], args[3], args[4]
            ev = literal(event)
            assert ev and re.fullmatch(r"[a-z][a-z0-9_]*", ev), f"{where}: event {event}"
            fmt_s = literal(fmt)
            assert fmt_s is not None, f"{where}: format is not a literal"
            convs = [c for c in CONV.findall(fmt_s) if c and c not in "nm"]
            if keys == "NULL":
                checked += 1
                continue
            keys_s = literal(keys)
            assert keys_s is not None, f"{where}: keys must be a literal or NULL"
            names = keys_s.split(",") if keys_s else []
            assert len(names) == len(convs), \
                f"{where}: {len(names)} keys {names} for {len(convs)} conversions in {fmt_s!r}"
            for n in names:
                assert n == "" or re.fullmatch(r"[a-z][a-z0-9_]*", n), f"{where}: key {n!r}"
                assert n not in RESERVED, f"{where}: key {n!r} is reserved"
            checked += 1
    assert checked >= 20, checked


if __name__ == "__main__":
    run([test_a_session_logged_as_json, test_command_line_errors_follow_the_format,
         test_every_call_names_one_key_per_conversion])
