"""The KV view in Redis (--kv redis://[[user]:password@]host:port/db): written on the last leave
and only when behind, listed with the same cursors, shape and order as the
SQLite view, rebuilt at startup when behind, and never replaced by an older
version. Each test runs its own redis-server on a free port."""
import asyncio
import json
import re
import time
from urllib.parse import quote

from harness import TRACK, Client, Server, run
from resp import RedisServer, view

DB = 3  # not 0: the URL's database is selected


async def edit_and_leave(s, sid, steps):
    c = await Client.join(s, sid)
    for st in steps:
        ack = await c.request({"type": "toggle_step", "trackId": "t1", "step": st}, "step_toggled")
        assert ack["type"] == "step_toggled", ack
    await c.close()


def wait_view(r, sid, pred=lambda v, o: v is not None, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v, o = view(r, sid)
        if pred(v, o):
            return v, o
        time.sleep(0.05)
    raise AssertionError(f"Redis view of {sid} never matched: {view(r, sid)}")


def kv_writes(s):
    _, _, text = s.http("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith("grooved_kv_writes_total "):
            return float(line.split()[1])
    raise AssertionError("no grooved_kv_writes_total")


async def test_last_leave_writes_the_view_only_when_behind():
    redis = RedisServer().start()
    s = Server(args=["--kv", redis.url(DB)])
    try:
        s.start()
        r = redis.client(DB)
        sid = s.create({"name": "in redis", "state": {"tracks": [TRACK]}})
        await edit_and_leave(s, sid, [1, 2, 3])
        s.wait_log(rf"session {sid}: KV view written")
        value, opno = wait_view(r, sid)
        _, _, now = s.http("GET", f"/api/sessions/{sid}")
        kv = json.loads(value)
        assert kv["state"] == now["state"] and kv["name"] == "in redis"
        assert [i for i, on in enumerate(kv["state"]["tracks"][0]["steps"]) if on] == [1, 2, 3]
        assert opno >= 3, opno
        assert r.command("ZSCORE", "grooved:sessions",
                         r.command("HGET", f"grooved:session:{sid}", "member")) == "0"

        # Nothing changed: a join and a leave write nothing (the marker stays).
        r.command("HSET", f"grooved:session:{sid}", "value", '{"marker":true}')
        writes = kv_writes(s)
        c = await Client.join(s, sid)
        await c.close()
        await asyncio.sleep(1.5)
        assert view(r, sid) == ('{"marker":true}', opno), "a view that is not behind was written"
        assert kv_writes(s) == writes

        # Behind again: the next last leave writes it.
        await edit_and_leave(s, sid, [4])
        value, opno2 = wait_view(r, sid, lambda v, o: v != '{"marker":true}')
        assert opno2 > opno and json.loads(value)["state"]["tracks"][0]["steps"][4] is True
        r.close()
    finally:
        s.cleanup()
        redis.cleanup()


async def test_an_older_version_never_replaces_a_newer_one():
    redis = RedisServer().start()
    s = Server(args=["--kv", redis.url(DB)])
    try:
        s.start()
        r = redis.client(DB)
        sid = s.create({"state": {"tracks": [TRACK]}})
        await edit_and_leave(s, sid, [1])
        _, opno = wait_view(r, sid)
        # Someone (another node) has stored a much newer version.
        newer = json.dumps({"id": sid, "newer": True})
        r.command("HSET", f"grooved:session:{sid}", "value", newer, "opno", str(opno + 1000))
        await edit_and_leave(s, sid, [2])
        s.wait_log(rf"session {sid}: kv_redis: the view already holds a newer version")
        assert view(r, sid) == (newer, opno + 1000), "an older version replaced a newer one"
        # Once the stored version is older, the next write replaces it.
        r.command("HSET", f"grooved:session:{sid}", "opno", str(opno))
        await edit_and_leave(s, sid, [3])
        value, _ = wait_view(r, sid, lambda v, o: v != newer)
        steps = json.loads(value)["state"]["tracks"][0]["steps"]
        assert steps[1] and steps[2] and steps[3]
        r.close()
    finally:
        s.cleanup()
        redis.cleanup()


def pages(s, limit):
    out, cursor = [], None
    for _ in range(50):
        path = f"/api/sessions?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        st, _, page = s.http("GET", path)
        assert st == 200, (st, page)
        out.append(page)
        cursor = page["nextCursor"]
        if not cursor:
            return out
    raise AssertionError("listing never ended")


def test_listing_matches_the_sqlite_view_and_startup_rebuilds_it():
    """The same data directory served with the SQLite view, then with an empty
    Redis view: at startup every view is found behind and rebuilt from the
    durable store, and the paginated listings are identical byte for byte."""
    redis = RedisServer().start()
    s = Server(args=["--evict-after", "1"])
    try:
        s.start()
        ids = [s.create({"name": f"S{i}", "state": {
            "tracks": [dict(TRACK, id=f"t{k}") for k in range(i % 3)]}}) for i in range(7)]
        for sid in ids:
            s.wait_log(rf"session {sid}: KV view written")
        sqlite_pages = pages(s, 3)
        assert s.stop() == 0

        s.args = ["--evict-after", "1", "--kv", redis.url(DB)]
        s.start()
        s.wait_log(r"recovery: 7 KV views are behind")
        r = redis.client(DB)
        for sid in ids:
            wait_view(r, sid)
        redis_pages = pages(s, 3)
        assert redis_pages == sqlite_pages, (redis_pages, sqlite_pages)
        seen = [x for p in redis_pages for x in p["sessions"]]
        assert sorted(x["id"] for x in seen) == sorted(ids)
        assert set(seen[0]) == {"id", "name", "updatedAt", "trackCount", "immutable"}
        assert all(x["trackCount"] == ids.index(x["id"]) % 3 for x in seen)
        assert all(x["name"] == f"S{ids.index(x['id'])}" for x in seen)
        assert s.http("GET", "/api/sessions?cursor=zzz")[0] == 400

        # A restart with the view current rewrites nothing.
        assert s.stop() == 0
        s.start()
        assert "KV views are behind" not in s.read_log()

        # Ties on updatedAt: ordered by id, newest first, each listed once
        # across cursors (three values put straight into Redis).
        at = 1000
        tie = [f"00000000-0000-4000-8000-00000000000{k}" for k in (1, 2, 3)]
        for sid in tie:
            member = f"{at ^ (1 << 63):016x}:{sid}"
            r.command("HSET", f"grooved:session:{sid}", "value",
                      json.dumps({"id": sid, "name": sid[-1], "state": {"tracks": []}}),
                      "opno", "0", "member", member)
            r.command("ZADD", "grooved:sessions", "0", member)
        listed = [x for p in pages(s, 1) for x in p["sessions"]]
        assert [x["id"] for x in listed[-3:]] == list(reversed(tie)), listed
        assert [x["updatedAt"] for x in listed[-3:]] == [at] * 3
        assert len({x["id"] for x in listed}) == len(listed) == 10
        r.close()
    finally:
        s.cleanup()
        redis.cleanup()


async def test_startup_while_redis_is_down():
    """A node starts while Redis is down; its views are rewritten once Redis is up."""
    redis = RedisServer()  # its port, not started yet
    s = Server()
    try:
        s.start()
        sid = s.create({"name": "before", "state": {"tracks": [TRACK]}})
        await edit_and_leave(s, sid, [5])
        assert s.stop() == 0
        s.args = ["--kv", redis.url(DB)]
        s.start()
        assert "cannot be read now" in s.read_log()
        assert s.http("GET", "/api/sessions")[0] == 503
        c = await Client.join(s, sid)  # the session itself is served from the durable store
        assert c.snapshot["state"]["tracks"][0]["steps"][5] is True
        await c.close()
        redis.start()
        r = redis.client(DB)
        value, _ = wait_view(r, sid, timeout=40)
        r.close()
        assert json.loads(value)["state"]["tracks"][0]["steps"][5] is True
        deadline = time.time() + 10
        while s.http("GET", "/api/sessions")[0] != 200 and time.time() < deadline:
            await asyncio.sleep(0.2)
        assert [x["id"] for x in s.http("GET", "/api/sessions")[2]["sessions"]] == [sid]
    finally:
        s.cleanup()
        redis.cleanup()


async def test_credentials_from_the_url():
    """AUTH from the URL's user information: a password alone (percent-encoded:
    this one holds '@', ':' and '/'), or an ACL user and its password. A wrong
    or missing password leaves the view unreachable (listings 503), and says
    why; no log line of grooved's ever holds a password."""
    secret = "p@ss:w/rd"
    redis = RedisServer(args=["--requirepass", secret,
                              "--user", "player", "on", ">pl4yer-pw", "~grooved:*", "+@all"],
                        auth=(secret,))
    servers = []
    try:
        redis.start()
        r = redis.client(DB)
        base = f"127.0.0.1:{redis.port}/{DB}"
        for userinfo, shown in ((":" + quote(secret, safe=""), "redis://***@"),
                                ("player:pl4yer-pw", "redis://player:***@")):
            s = Server(args=["--kv", f"redis://{userinfo}@{base}"])
            servers.append(s)
            s.start()
            sid = s.create({"name": f"as {shown}", "state": {"tracks": [TRACK]}})
            await edit_and_leave(s, sid, [6])
            value, _ = wait_view(r, sid)
            assert json.loads(value)["state"]["tracks"][0]["steps"][6] is True
            assert s.http("GET", "/api/sessions")[0] == 200
            log = s.read_log()
            assert shown + base in log, log
            for word in (secret, quote(secret, safe=""), "pl4yer-pw"):
                assert word not in log, f"{word!r} logged"

        for userinfo, why in ((":wrong-pw", "WRONGPASS"), ("player:wrong-pw", "WRONGPASS"),
                              (None, "NOAUTH")):
            url = f"redis://{userinfo}@{base}" if userinfo else f"redis://{base}"
            s = Server(args=["--kv", url])
            servers.append(s)
            s.start()  # an unreachable view does not stop startup
            assert s.http("GET", "/api/sessions")[0] == 503
            log = s.read_log()
            assert re.search(r"kv_redis: redis://(player:)?\*{3}@|kv_redis: redis://127", log), log
            assert why in log, log
            assert "wrong-pw" not in log and secret not in log
        r.close()
    finally:
        for s in servers:
            s.cleanup()
        redis.cleanup()


def test_bad_redis_urls_stop_startup():
    for url in ("redis://", "redis://host:0/0", "redis://host:6379/x", "redis://a@b:1/0",
                "redis://:@b:1/0", "redis://u:hunter2%zz@b:1/0", "redis://u:hunter2%00@b:1/0",
                "memcached://x", "rediss://u:hunter2@b:1/0"):
        s = Server(args=["--kv", url])
        try:
            try:
                s.start()
            except RuntimeError as e:
                assert "exited early" in str(e), e
            else:
                raise AssertionError(f"{url} was accepted")
            assert s.proc.wait(10) == 1
            assert "hunter2" not in s.read_log(), s.read_log()
        finally:
            s.cleanup()


if __name__ == "__main__":
    run([test_last_leave_writes_the_view_only_when_behind,
         test_an_older_version_never_replaces_a_newer_one,
         test_listing_matches_the_sqlite_view_and_startup_rebuilds_it,
         test_startup_while_redis_is_down,
         test_credentials_from_the_url,
         test_bad_redis_urls_stop_startup])
