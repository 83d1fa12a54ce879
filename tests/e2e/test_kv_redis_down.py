"""Redis down under load (3 sessions x 2 clients editing): acknowledgements
and broadcasts go on, the listing answers 503 meanwhile, and once Redis is
back every KV view catches up by itself (the store retries the failed writes
from the durable store); no acknowledged op is lost. Then a frozen Redis
(SIGSTOP): the same, and no listing waits more than a bounded time."""
import asyncio
import json
import time

from harness import TRACK, Client, Server, run
from resp import RedisServer, view


class Editor:
    """A client toggling its own steps in a loop; remembers every ack."""

    def __init__(self, client, steps):
        self.c = client
        self.steps = steps
        self.last = {}  # step -> value of its last acknowledged toggle
        self.acks = []  # monotonic time of each ack
        self.seen_other = []  # monotonic time of each broadcast of the other client's toggles
        self.stop = False
        self.pending = {}  # clientSeq -> step

    async def run(self):
        i = 0
        while not self.stop:
            st = self.steps[i % len(self.steps)]
            i += 1
            seq = await self.c.send({"type": "toggle_step", "trackId": "t1", "step": st})
            self.pending[seq] = st
            while seq in self.pending:
                m = await self.c.recv(10)
                if not isinstance(m, dict):
                    continue
                if m.get("type") == "error":
                    raise AssertionError(f"error during the outage: {m}")
                if m.get("type") != "step_toggled":
                    continue
                if m.get("playerId") == self.c.player_id and m.get("clientSeq") in self.pending:
                    self.last[self.pending.pop(m["clientSeq"])] = m["value"]
                    self.acks.append(time.monotonic())
                elif m.get("playerId") != self.c.player_id:
                    self.seen_other.append(time.monotonic())
            await asyncio.sleep(0.03)

    def count(self, times, start, end):
        return sum(1 for t in times if start <= t <= end)


def listing_status(s):
    t = time.monotonic()
    st, _, _ = s.http("GET", "/api/sessions?limit=5")
    return st, time.monotonic() - t


async def start_editors(s, n_sessions=3):
    sessions = []
    for _ in range(n_sessions):
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = Editor(await Client.join(s, sid), list(range(0, 8)))
        b = Editor(await Client.join(s, sid), list(range(8, 16)))
        sessions.append((sid, [a, b]))
    tasks = [asyncio.create_task(e.run()) for _, eds in sessions for e in eds]
    return sessions, tasks


async def stop_editors(sessions, tasks):
    for _, eds in sessions:
        for e in eds:
            e.stop = True
    await asyncio.gather(*tasks)


def check_no_ack_lost(s, sessions):
    for sid, eds in sessions:
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        steps = body["state"]["tracks"][0]["steps"]
        for e in eds:
            for st, value in e.last.items():
                assert steps[st] is value, f"{sid} step {st}: acked {value}, stored {steps[st]}"


async def wait_views_equal_state(s, r, sessions, timeout=40):
    deadline = time.time() + timeout
    pending = [sid for sid, _ in sessions]
    while pending and time.time() < deadline:
        for sid in list(pending):
            value, _ = view(r, sid)
            _, _, body = s.http("GET", f"/api/sessions/{sid}")
            if value is not None and json.loads(value)["state"] == body["state"]:
                pending.remove(sid)
        await asyncio.sleep(0.2)
    assert not pending, f"views never caught up: {pending}\n{s.read_log()[-3000:]}"


async def test_redis_killed_for_5s_under_load():
    redis = RedisServer().start()
    s = Server(args=["--kv", redis.url()])
    try:
        s.start()
        sessions, tasks = await start_editors(s)
        await asyncio.sleep(1.5)
        assert (await asyncio.to_thread(listing_status, s))[0] == 200

        redis.kill()
        down_at = time.monotonic()
        statuses = []
        while time.monotonic() - down_at < 2.5:
            statuses.append((await asyncio.to_thread(listing_status, s))[0])
            await asyncio.sleep(0.2)
        # The first two sessions' players leave while Redis is down: their
        # last-leave writes fail and are retried by the store.
        for _, eds in sessions[:2]:
            for e in eds:
                e.stop = True
        await asyncio.gather(*tasks[:4])
        for _, eds in sessions[:2]:
            for e in eds:
                await e.c.close()
        await asyncio.to_thread(s.wait_log, r"KV view write failed", 10, 2)
        while time.monotonic() - down_at < 5:
            statuses.append((await asyncio.to_thread(listing_status, s))[0])
            await asyncio.sleep(0.2)
        up_at = time.monotonic()
        assert statuses and set(statuses) == {503}, statuses
        for sid, eds in sessions:
            for e in eds:
                assert e.count(e.acks, down_at, up_at) >= 3, (sid, "acks stopped while Redis was down")
        for _, eds in sessions[2:]:
            for e in eds:
                assert e.count(e.seen_other, down_at + 2.5, up_at) >= 3, "broadcasts stopped"

        redis.start()  # same port, empty: nothing survived the crash
        await asyncio.sleep(1)
        await stop_editors(sessions[2:], tasks[4:])
        for e in sessions[2][1]:
            await e.c.close()
        r = redis.client()
        await wait_views_equal_state(s, r, sessions)
        deadline = time.time() + 10
        while listing_status(s)[0] != 200 and time.time() < deadline:
            await asyncio.sleep(0.2)
        st, _, page = s.http("GET", "/api/sessions?limit=10")
        assert st == 200 and {x["id"] for x in page["sessions"]} == {sid for sid, _ in sessions}
        check_no_ack_lost(s, sessions)
        _, _, metrics = s.http("GET", "/metrics")
        assert "grooved_kv_views_behind 0" in metrics
        # And after a crash of grooved itself: every acknowledged op is durable.
        s.kill9()
        s.start()
        check_no_ack_lost(s, sessions)
        r.close()
    finally:
        s.cleanup()
        redis.cleanup()


async def test_redis_frozen_under_load():
    redis = RedisServer().start()
    s = Server(args=["--kv", redis.url()])
    try:
        s.start()
        sessions, tasks = await start_editors(s, 2)
        await asyncio.sleep(1)
        redis.pause()
        frozen_at = time.monotonic()
        results = []
        while time.monotonic() - frozen_at < 3:
            results.append(await asyncio.to_thread(listing_status, s))
            await asyncio.sleep(0.1)
        thawed_at = time.monotonic()
        assert {st for st, _ in results} == {503}, results
        # A frozen server costs a listing at most its timeouts, never a hang.
        assert max(t for _, t in results) < 5, results
        for _, eds in sessions:
            for e in eds:
                assert e.count(e.acks, frozen_at, thawed_at) >= 3, "acks stopped"
        redis.resume()
        await stop_editors(sessions, tasks)
        for _, eds in sessions:
            for e in eds:
                await e.c.close()
        r = redis.client()
        await wait_views_equal_state(s, r, sessions)
        check_no_ack_lost(s, sessions)
        r.close()
    finally:
        s.cleanup()
        redis.cleanup()


if __name__ == "__main__":
    run([test_redis_killed_for_5s_under_load, test_redis_frozen_under_load])
