"""The sockets grooved accepts have TCP_NODELAY set: every message is written
whole, and with Nagle's algorithm a broadcast that follows a small write waits
for the peer's delayed ACK (40 ms on Linux: it made the 1 session x 5 clients
benchmark's p90 ack latency 44 ms instead of 1 ms). The test takes a copy of
the server's own descriptor for a connection (pidfd_getfd) and asks it."""
import asyncio
import ctypes
import os
import socket
import struct

from harness import TRACK, Client, Server, Skip, run

SYS_pidfd_open, SYS_pidfd_getfd = 434, 438


def server_fds_for_port(pid, local_port):
    """The server's descriptors whose socket is the connection from local_port."""
    inodes = set()
    for name in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{name}") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                rem_port = int(parts[2].split(":")[1], 16)
                if rem_port == local_port:
                    inodes.add(parts[9])
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            fds.append(int(fd))
    return fds


def nodelay_of(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_pidfd_open, pid, 0)
    if pidfd < 0:
        raise Skip("pidfd_open is not available here")
    try:
        mine = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if mine < 0:
            raise Skip("pidfd_getfd is not allowed here (needs ptrace rights)")
        try:
            s = socket.socket(fileno=mine)
            v = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            s.detach()
            return v
        finally:
            os.close(mine)
    finally:
        os.close(pidfd)


async def test_accepted_sockets_have_tcp_nodelay():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        local_port = c.ws.transport.get_extra_info("sockname")[1]
        fds = server_fds_for_port(s.proc.pid, local_port)
        assert fds, "the server's end of the WebSocket was not found"
        assert all(nodelay_of(s.proc.pid, fd) for fd in fds), "TCP_NODELAY is not set"
        await c.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_accepted_sockets_have_tcp_nodelay])
