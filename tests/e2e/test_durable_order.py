"""Durable before visible, at the level of system calls: under strace, the
fsync of each commit returns before the first send of its broadcast. A
kill -9 test cannot tell the page cache from the disk; this one can tell
whether the broadcast waits for the fsync."""
import asyncio
import os
import re
import shutil
import signal

from harness import TRACK, Client, Server, run


async def test_fsync_returns_before_each_broadcast_is_sent():
    if not shutil.which("strace"):
        raise AssertionError("strace is required (make test installs it)")
    trace = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"grooved-strace-{os.getpid()}.txt")
    s = Server(env={"ASAN_OPTIONS": "detect_leaks=0"})
    s.start(wrapper=["strace", "-f", "-tt", "-s", "256", "-o", trace,
                     "-e", "trace=fsync,fdatasync,write,writev,sendto,sendmsg"])
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        for step in range(8):  # one at a time: each is its own commit
            ack = await c.request({"type": "toggle_step", "trackId": "t1", "step": step}, "step_toggled")
            assert ack["value"] is True
        await c.close()
        # SIGTERM the traced grooved itself (strace is its parent), then let strace exit.
        with open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children") as f:
            child = int(f.read().split()[0])
        os.kill(child, signal.SIGTERM)
        s.proc.wait(30)
        events = []  # (kind, text) in the order strace saw them complete
        with open(trace) as f:
            for line in f:
                if re.search(r"\b(fsync|fdatasync)\(", line) and "= 0" in line:
                    events.append(("sync", line))
                elif "resumed>" in line and re.search(r"(fsync|fdatasync) resumed>.*= 0", line):
                    events.append(("sync", line))
                elif "step_toggled" in line:
                    events.append(("send", line))
        sends = [i for i, e in enumerate(events) if e[0] == "send"]
        assert len(sends) >= 8, f"expected 8 broadcasts in the trace, saw {len(sends)}"
        prev = -1
        for i in sends[:8]:
            between = [e for e in events[prev + 1:i] if e[0] == "sync"]
            assert between, f"broadcast sent with no fsync completed since the previous one:\n{events[i][1]}"
            prev = i
    finally:
        s.cleanup()
        if os.path.exists(trace):
            os.unlink(trace)


if __name__ == "__main__":
    run([test_fsync_returns_before_each_broadcast_is_sent])
