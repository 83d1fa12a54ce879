"""The semantics of lossyfs itself: what a power cut keeps and what it
forgets. Each test mounts a fresh backing directory, changes things, cuts
the power, and then reads the backing directory (which is exactly the
durable state) or mounts it again."""
import errno
import fcntl
import mmap
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from harness import run
from lossy import Mount, fsync_path, read_file, require_fuse, write_file


def backing():
    return tempfile.mkdtemp(prefix="lossyfs-backing-")


def listing(d):
    return sorted(n for n in os.listdir(d) if n != ".lossyfs")


class Fresh:
    """A fresh backing directory and a mount of it; removes both."""

    def __init__(self, **kw):
        self.b = backing()
        self.m = Mount(self.b, **kw)

    def __enter__(self):
        self.m.mount()
        return self.m, self.b

    def __exit__(self, *exc):
        try:
            self.m.unmount()
        finally:
            shutil.rmtree(self.b, ignore_errors=True)


def durable_file(m, name, data):
    """Creates name with data, fsyncs it and its directory."""
    path = m.path(name)
    write_file(path, data, sync="fsync")
    fsync_path(os.path.dirname(path))


def test_unsynced_file_is_readable_then_forgotten():
    with Fresh() as (m, b):
        write_file(m.path("a"), b"hello")
        assert read_file(m.path("a")) == b"hello", "reads see the unsynced data (page cache)"
        assert listing(b) == [], "nothing reaches the backing directory before a sync"
        m.cut()
        assert listing(b) == []


def test_file_fsync_without_directory_fsync_loses_the_name():
    with Fresh() as (m, b):
        write_file(m.path("a"), b"data", sync="fsync")
        m.cut()
        assert listing(b) == []


def test_directory_fsync_without_file_fsync_keeps_an_empty_file():
    with Fresh() as (m, b):
        write_file(m.path("a"), b"data")
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == ["a"] and read_file(os.path.join(b, "a")) == b""


def test_unsynced_overwrite_and_append_are_forgotten():
    with Fresh() as (m, b):
        durable_file(m, "a", b"0123456789")
        fd = os.open(m.path("a"), os.O_WRONLY)
        os.pwrite(fd, b"XY", 3)
        os.pwrite(fd, b"tail" * 2000, 10)
        os.close(fd)
        assert read_file(m.path("a")) == b"012XY56789" + b"tail" * 2000
        m.cut()
        assert read_file(os.path.join(b, "a")) == b"0123456789"


def test_fdatasync_persists_data_and_size():
    with Fresh() as (m, b):
        durable_file(m, "a", b"x" * 100)
        fd = os.open(m.path("a"), os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"y" * 5000)
        os.fdatasync(fd)
        os.write(fd, b"z" * 10)  # not synced
        os.close(fd)
        m.cut()
        assert read_file(os.path.join(b, "a")) == b"x" * 100 + b"y" * 5000


def test_truncate_is_forgotten_unless_synced_and_reads_zeros_after_regrowth():
    with Fresh() as (m, b):
        old = bytes(range(256)) * 40  # 10240 bytes
        durable_file(m, "a", old)
        fd = os.open(m.path("a"), os.O_RDWR)
        os.ftruncate(fd, 100)
        assert os.fstat(fd).st_size == 100
        os.ftruncate(fd, 8192)
        assert os.pread(fd, 8192, 0) == old[:100] + bytes(8092), \
            "bytes cut off by a truncate must read as zeros when the file grows again"
        os.close(fd)
        m.cut()
        assert read_file(os.path.join(b, "a")) == old, "an unsynced truncate must not survive"
    with Fresh() as (m, b):
        durable_file(m, "a", old)
        fd = os.open(m.path("a"), os.O_RDWR)
        os.ftruncate(fd, 100)
        os.ftruncate(fd, 8192)
        os.fsync(fd)
        os.close(fd)
        m.cut()
        assert read_file(os.path.join(b, "a")) == old[:100] + bytes(8092)


def test_unlink_needs_a_directory_fsync():
    with Fresh() as (m, b):
        durable_file(m, "a", b"keep")
        os.unlink(m.path("a"))
        assert not os.path.exists(m.path("a"))
        m.cut()
        assert listing(b) == ["a"] and read_file(os.path.join(b, "a")) == b"keep"
    with Fresh() as (m, b):
        durable_file(m, "a", b"keep")
        os.unlink(m.path("a"))
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == []


def test_unlinked_open_file_keeps_working_until_closed():
    with Fresh() as (m, b):
        durable_file(m, "a", b"abc")
        fd = os.open(m.path("a"), os.O_RDWR)
        os.unlink(m.path("a"))
        os.pwrite(fd, b"Z", 0)
        assert os.pread(fd, 3, 0) == b"Zbc" and os.fstat(fd).st_nlink == 0
        os.fsync(fd)
        os.close(fd)
        m.cut()
        assert listing(b) == ["a"] and read_file(os.path.join(b, "a")) == b"Zbc", \
            "the durable name still points at the inode the fsync wrote"


def test_rename_in_one_directory():
    with Fresh() as (m, b):
        durable_file(m, "a", b"A")
        os.rename(m.path("a"), m.path("b"))
        m.cut()
        assert listing(b) == ["a"]
    with Fresh() as (m, b):
        durable_file(m, "a", b"A")
        os.rename(m.path("a"), m.path("b"))
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == ["b"] and read_file(os.path.join(b, "b")) == b"A"


def test_atomic_replace_needs_the_directory_fsync():
    with Fresh() as (m, b):
        durable_file(m, "a", b"old")
        write_file(m.path("tmp"), b"new", sync="fsync")
        os.rename(m.path("tmp"), m.path("a"))
        assert read_file(m.path("a")) == b"new"
        m.cut()
        assert listing(b) == ["a"] and read_file(os.path.join(b, "a")) == b"old"
    with Fresh() as (m, b):
        durable_file(m, "a", b"old")
        write_file(m.path("tmp"), b"new", sync="fsync")
        os.rename(m.path("tmp"), m.path("a"))
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == ["a"] and read_file(os.path.join(b, "a")) == b"new"


def test_rename_across_directories_persists_per_directory():
    with Fresh() as (m, b):
        for d in ("d1", "d2"):
            os.mkdir(m.path(d))
        fsync_path(m.mnt)
        durable_file(m, "d1/f", b"F")
        os.rename(m.path("d1/f"), m.path("d2/g"))
        fsync_path(m.path("d2"))
        m.cut()
        assert os.listdir(os.path.join(b, "d1")) == ["f"]
        assert os.listdir(os.path.join(b, "d2")) == ["g"]
        assert read_file(os.path.join(b, "d2/g")) == b"F"
    with Fresh() as (m, b):
        for d in ("d1", "d2"):
            os.mkdir(m.path(d))
        fsync_path(m.mnt)
        durable_file(m, "d1/f", b"F")
        os.rename(m.path("d1/f"), m.path("d2/g"))
        fsync_path(m.path("d1"))
        m.cut()
        assert os.listdir(os.path.join(b, "d1")) == [] and os.listdir(os.path.join(b, "d2")) == []
        # and a directory cannot move to another parent here (mv copies)
    with Fresh() as (m, b):
        os.makedirs(m.path("x/y"))
        try:
            os.rename(m.path("x/y"), m.path("y"))
            raise AssertionError("directory rename across parents must fail with EXDEV")
        except OSError as e:
            assert e.errno == errno.EXDEV


def test_new_directory_needs_its_parent_fsync():
    with Fresh() as (m, b):
        os.mkdir(m.path("sub"))
        write_file(m.path("sub/f"), b"F", sync="fsync")
        fsync_path(m.path("sub"))
        m.cut()
        assert listing(b) == [], "a directory whose parent was not fsync'd is lost, with its files"
    with Fresh() as (m, b):
        os.mkdir(m.path("sub"))
        write_file(m.path("sub/f"), b"F", sync="fsync")
        fsync_path(m.path("sub"))
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == ["sub"] and read_file(os.path.join(b, "sub/f")) == b"F"
    with Fresh() as (m, b):  # the parent only: the directory, empty
        os.mkdir(m.path("sub"))
        write_file(m.path("sub/f"), b"F", sync="fsync")
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == ["sub"] and os.listdir(os.path.join(b, "sub")) == []


def test_removed_directory_comes_back_without_parent_fsync():
    with Fresh() as (m, b):
        os.mkdir(m.path("sub"))
        fsync_path(m.mnt)
        durable_file(m, "sub/f", b"F")
        os.unlink(m.path("sub/f"))
        os.rmdir(m.path("sub"))
        m.cut()
        assert read_file(os.path.join(b, "sub/f")) == b"F"
    with Fresh() as (m, b):
        os.mkdir(m.path("sub"))
        fsync_path(m.mnt)
        durable_file(m, "sub/f", b"F")
        os.unlink(m.path("sub/f"))
        os.rmdir(m.path("sub"))
        fsync_path(m.mnt)
        m.cut()
        assert listing(b) == []


def test_shared_mmap_writes_are_read_back_and_forgotten():
    with Fresh() as (m, b):
        durable_file(m, "shm", bytes(8192))
        fd = os.open(m.path("shm"), os.O_RDWR)
        mm = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[100:105] = b"hello"
        fd2 = os.open(m.path("shm"), os.O_RDONLY)
        assert os.pread(fd2, 5, 100) == b"hello"
        os.close(fd2)
        mm.close()
        os.close(fd)  # close writes the dirty page back to the filesystem, not the disk
        assert int(m.status()["unsynced"].split()[1].split("=")[1]) >= 1, m.status()
        assert read_file(m.path("shm"))[100:105] == b"hello"
        m.cut()
        assert read_file(os.path.join(b, "shm")) == bytes(8192)
    with Fresh() as (m, b):  # msync(MS_SYNC) is an fsync
        durable_file(m, "shm", bytes(8192))
        fd = os.open(m.path("shm"), os.O_RDWR)
        mm = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[100:105] = b"hello"
        mm.flush()
        mm.close()
        os.close(fd)
        m.cut()
        assert read_file(os.path.join(b, "shm"))[100:105] == b"hello"


def piece_ends(writes, g):
    """Every length a torn prefix of these sequential appends can leave."""
    ends = {0}
    for off, n in writes:
        pos = off
        while pos < off + n:
            pos = min((pos // g + 1) * g, off + n)
            ends.add(pos)
    return ends


def torn_result(seed, g):
    data = b"".join(bytes([65 + i]) * 3000 for i in range(4))
    with Fresh() as (m, b):
        durable_file(m, "a", b"")
        fd = os.open(m.path("a"), os.O_WRONLY)
        for i in range(4):
            os.pwrite(fd, data[3000 * i:3000 * (i + 1)], 3000 * i)
        os.close(fd)
        m.cut(torn=g, seed=seed)
        got = read_file(os.path.join(b, "a"))
    assert data.startswith(got), "a torn cut keeps a prefix of the writes, in order"
    assert len(got) in piece_ends([(3000 * i, 3000) for i in range(4)], g), len(got)
    return len(got)


def test_torn_writes_keep_a_seeded_prefix_at_sector_granularity():
    lengths = [torn_result(seed, 512) for seed in range(1, 9)]
    assert len(set(lengths)) > 2, f"seeds should give different prefixes: {lengths}"
    assert torn_result(3, 512) == lengths[2], "the same seed must give the same prefix"
    assert all(n in piece_ends([(3000 * i, 3000) for i in range(4)], 4096)
               for n in [torn_result(seed, 4096) for seed in range(1, 5)])


def test_torn_overwrite_in_place_keeps_whole_4k_sectors():
    seen = set()
    for seed in range(1, 10):
        with Fresh() as (m, b):
            durable_file(m, "a", b"A" * 8192)
            fd = os.open(m.path("a"), os.O_WRONLY)
            os.pwrite(fd, b"B" * 8192, 0)
            os.close(fd)
            m.cut(torn=4096, seed=seed)
            got = read_file(os.path.join(b, "a"))
        assert got in (b"A" * 8192, b"B" * 4096 + b"A" * 4096, b"B" * 8192), got[:20]
        seen.add(got.count(b"B"))
    assert len(seen) >= 2, seen


def test_mount_is_dead_after_a_cut():
    with Fresh() as (m, b):
        write_file(m.path("a"), b"x")
        fd = os.open(m.path("a"), os.O_RDWR)
        m.cut()
        for call in (lambda: os.pwrite(fd, b"y", 0), lambda: os.fsync(fd),
                     lambda: os.listdir(m.mnt), lambda: open(m.path("b"), "w")):
            try:
                call()
                raise AssertionError("an operation after the cut succeeded")
            except OSError as e:
                assert e.errno == errno.EIO, e
        os.close(fd)
        time.sleep(1.2)  # past the kernel's entry cache: the control file is looked up again
        assert m.status()["state"] == "dead"


def test_clean_unmount_makes_everything_durable():
    b = backing()
    try:
        with Mount(b) as m:
            os.mkdir(m.path("d"))
            write_file(m.path("d/f"), b"F")
            write_file(m.path("g"), b"G")
        assert listing(b) == ["d", "g"] and read_file(os.path.join(b, "d/f")) == b"F"
        assert not os.path.exists(os.path.join(b, ".lossyfs"))
    finally:
        shutil.rmtree(b, ignore_errors=True)


def test_sync_command_and_remount_read_back():
    b = backing()
    try:
        with Mount(b) as m:
            os.mkdir(m.path("d"))
            write_file(m.path("d/f"), b"F" * 10000)
            m.ctl("sync")
            write_file(m.path("d/f"), b"lost")
            m.cut()
        with Mount(b) as m:
            assert read_file(m.path("d/f")) == b"F" * 10000
            assert os.stat(m.path("d/f")).st_size == 10000
    finally:
        shutil.rmtree(b, ignore_errors=True)


def test_sqlite_wal_full_keeps_commits_and_sync_off_loses_them():
    b = backing()
    try:
        with Mount(b) as m:
            db = sqlite3.connect(m.path("t.db"), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE t(x)")
            for i in range(50):
                db.execute("INSERT INTO t VALUES(?)", (i,))
            db.execute("PRAGMA synchronous=OFF")
            for i in range(50):
                db.execute("INSERT INTO t VALUES(?)", (i,))
            assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 100
            m.cut()
            db.close()
        with Mount(b) as m:
            db = sqlite3.connect(m.path("t.db"), isolation_level=None)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            n = db.execute("SELECT count(*) FROM t").fetchone()[0]
            db.close()
            assert n == 50, f"synchronous=FULL commits survive, OFF ones do not ({n} rows)"
    finally:
        shutil.rmtree(b, ignore_errors=True)


def test_flock_is_exclusive():
    with Fresh() as (m, b):
        fd1 = os.open(m.path("LOCK"), os.O_CREAT | os.O_RDWR)
        fd2 = os.open(m.path("LOCK"), os.O_RDWR)
        fcntl.flock(fd1, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("a second flock succeeded")
        except BlockingIOError:
            pass
        os.close(fd1)
        os.close(fd2)


def test_armed_cut_after_the_nth_matching_operation_with_kill():
    with Fresh() as (m, b):
        for i in range(3):
            write_file(m.path(f"x{i}"), b"x")
        write_file(m.path("y"), b"y")
        fsync_path(m.mnt)
        victim = subprocess.Popen(["sleep", "60"])
        try:
            m.ctl(f"arm unlink /x 2 kill={victim.pid}")
            os.unlink(m.path("y"))
            os.unlink(m.path("x0"))
            assert not m.dead() and victim.poll() is None
            os.unlink(m.path("x1"))  # the cut happens right after this one
            assert m.dead(), m.status()
            assert victim.wait(5) == -signal.SIGKILL
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait()
        assert listing(b) == ["x0", "x1", "x2", "y"]


def test_injected_failures_change_nothing():
    with Fresh() as (m, b):
        durable_file(m, "a", b"old")
        m.ctl("fail fdatasync /a 1")
        fd = os.open(m.path("a"), os.O_WRONLY)
        os.pwrite(fd, b"new", 0)
        try:
            os.fdatasync(fd)
            raise AssertionError("the injected fdatasync failure did not come")
        except OSError as e:
            assert e.errno == errno.EIO
        m.cut()
        os.close(fd)
        assert read_file(os.path.join(b, "a")) == b"old", "a failed fdatasync made data durable"
    with Fresh() as (m, b):
        write_file(m.path("a"), b"")
        m.ctl("fail write /a 2 count=2")
        fd = os.open(m.path("a"), os.O_WRONLY)
        results = []
        for i in range(4):
            try:
                os.pwrite(fd, b"x", i)
                results.append("ok")
            except OSError as e:
                results.append(errno.errorcode[e.errno])
        os.close(fd)
        assert results == ["ok", "EIO", "EIO", "ok"], results
        assert read_file(m.path("a")) == b"x\0\0x"
        assert "injected=2" in m.status()["ops"]


def test_sigusr1_cuts():
    with Fresh() as (m, b):
        write_file(m.path("a"), b"a")
        m.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + 5
        while not m.dead() and time.time() < deadline:
            time.sleep(0.02)
        assert m.dead()
        assert listing(b) == []


if __name__ == "__main__":
    try:
        require_fuse()
    except Exception as e:  # fail loudly: CI has FUSE, so a missing one is an error
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    run([test_unsynced_file_is_readable_then_forgotten,
         test_file_fsync_without_directory_fsync_loses_the_name,
         test_directory_fsync_without_file_fsync_keeps_an_empty_file,
         test_unsynced_overwrite_and_append_are_forgotten,
         test_fdatasync_persists_data_and_size,
         test_truncate_is_forgotten_unless_synced_and_reads_zeros_after_regrowth,
         test_unlink_needs_a_directory_fsync,
         test_unlinked_open_file_keeps_working_until_closed,
         test_rename_in_one_directory,
         test_atomic_replace_needs_the_directory_fsync,
         test_rename_across_directories_persists_per_directory,
         test_new_directory_needs_its_parent_fsync,
         test_removed_directory_comes_back_without_parent_fsync,
         test_shared_mmap_writes_are_read_back_and_forgotten,
         test_torn_writes_keep_a_seeded_prefix_at_sector_granularity,
         test_torn_overwrite_in_place_keeps_whole_4k_sectors,
         test_mount_is_dead_after_a_cut,
         test_clean_unmount_makes_everything_durable,
         test_sync_command_and_remount_read_back,
         test_sqlite_wal_full_keeps_commits_and_sync_off_loses_them,
         test_flock_is_exclusive,
         test_armed_cut_after_the_nth_matching_operation_with_kill,
         test_injected_failures_change_nothing,
         test_sigusr1_cuts])
