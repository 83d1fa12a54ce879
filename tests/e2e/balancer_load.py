"""Players that edit through the balancer and reconnect by themselves, for
test_balancer.py and bench/cluster-reconnect.py.

Each Player toggles the steps of one track of its session once each, in order,
so the oracle is exact: only this player touches those steps, every step starts
off, so a step is on at the end if and only if its toggle was committed. When
its socket goes away the player reconnects through the balancer at once (then
after 0.1, 0.2, 0.4 ... 1 s), reads the snapshot, and resends its pending toggle
only if the snapshot shows it was not committed (a toggle committed whose
acknowledgement was lost with the node must not be toggled back).

It records what a user would see: close codes, `error` messages, reconnects,
which node served each connection (HAProxy's X-Grooved-Node header), the
broadcast seqs of its session (serverSeq: they must only grow, across nodes),
and the time of every acknowledgement."""
import asyncio
import json
import time

import websockets


class Player:
    def __init__(self, base_ws, sid, track, pace=0.25, steps=128):
        self.url = f"{base_ws}/api/sessions/{sid}/ws"
        self.sid, self.track, self.pace, self.steps = sid, track, pace, steps
        self.ws = None
        self.node = None          # the node serving the current connection
        self.nodes = []           # the node of each connection, in order
        self.seq = 0              # our message seq (clientSeq)
        self.acked = {}           # step -> time of its acknowledgement (monotonic)
        self.committed = set()    # steps found on in a snapshot, their ack lost
        self.pending = None       # the step whose toggle is unconfirmed
        self.closes = []          # (time, close code) of every socket that went away
        self.errors = []          # error codes received for our messages
        self.reconnects = 0
        self.server_seqs = []     # every broadcast seq seen, in order of arrival
        self.seq_backwards = []   # (before, after) where a seq did not grow
        self.connect_failures = 0
        self.snapshots = []       # time of every snapshot (connection ready)
        self.stopped = False

    # ---- connection ----
    async def connect(self, deadline):
        delay = 0.0
        while time.time() < deadline and not self.stopped:
            if delay:
                await asyncio.sleep(delay)
            delay = min(1.0, max(0.1, delay * 2))
            try:
                ws = await websockets.connect(self.url, max_size=None, open_timeout=5,
                                              close_timeout=1, ping_interval=None)
            except Exception:
                self.connect_failures += 1
                continue
            try:
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if m.get("type") == "snapshot":
                        break
                    self.see(m)
            except Exception:
                self.connect_failures += 1
                await ws.close()
                continue
            self.ws = ws
            self.snapshots.append(time.monotonic())
            self.node = ws.response_headers.get("X-Grooved-Node")
            self.nodes.append(self.node)
            track = next(t for t in m["state"]["tracks"] if t["id"] == self.track)
            if self.pending is not None and track["steps"][self.pending]:
                self.committed.add(self.pending)
                self.pending = None
            return True
        return False

    def see(self, m):
        s = m.get("seq")
        if isinstance(s, int):
            if self.server_seqs and s <= self.server_seqs[-1]:
                self.seq_backwards.append((self.server_seqs[-1], s))
            self.server_seqs.append(s)

    def lost_connection(self, code):
        self.closes.append((time.monotonic(), code))
        self.ws = None
        self.node = None

    # ---- editing ----
    async def toggle(self, step):
        """Sends the toggle of `step` and waits for its outcome: True when
        acknowledged; False when refused or the socket went away."""
        self.seq += 1
        seq = self.seq
        self.pending = step
        try:
            await self.ws.send(json.dumps({"type": "toggle_step", "trackId": self.track,
                                           "step": step, "seq": seq}))
            while True:
                m = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
                self.see(m)
                if m.get("clientSeq") != seq:
                    continue
                if m.get("type") == "step_toggled":
                    self.acked[step] = time.monotonic()
                    self.pending = None
                    return True
                if m.get("type") == "error":
                    self.errors.append(m.get("code"))
                    return False
        except websockets.ConnectionClosed as e:
            self.lost_connection(e.code)
        except (asyncio.TimeoutError, OSError):
            ws = self.ws
            self.lost_connection(None)
            await ws.close()  # at most close_timeout
        return False

    async def listen(self, seconds):
        """Reads what the others' edits bring for `seconds`, so that a socket that
        goes away is noticed at once, as a page would."""
        end = time.monotonic() + seconds
        try:
            while self.ws is not None and time.monotonic() < end:
                try:
                    raw = await asyncio.wait_for(self.ws.recv(), end - time.monotonic())
                except asyncio.TimeoutError:
                    return
                self.see(json.loads(raw))
        except websockets.ConnectionClosed as e:
            self.lost_connection(e.code)

    async def play(self, stop, deadline):
        """Toggles steps 0, 1, ... until `stop` is set (an asyncio.Event), the
        track is done or the deadline passes."""
        step = 0
        while step < self.steps and not stop.is_set() and time.time() < deadline:
            if self.ws is None:
                if self.nodes:
                    self.reconnects += 1
                if not await self.connect(deadline):
                    break
                if self.pending is None and step in self.committed:
                    step += 1
                    continue
            if await self.toggle(step):
                step += 1
                await self.listen(self.pace)
            elif self.ws is not None:
                await self.listen(0.1)  # refused: try again
        self.stopped = True
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    # ---- what it saw ----
    def done(self):
        return set(self.acked) | self.committed

    def first_snapshot_after(self, t):
        later = [at for at in self.snapshots if at > t]
        return min(later) if later else None

    def first_ack_after(self, t):
        later = [at for at in self.acked.values() if at > t]
        return min(later) if later else None


def percentile(values, p):
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
