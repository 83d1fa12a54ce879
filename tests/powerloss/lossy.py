"""Mounting lossyfs (tests/powerloss/lossyfs.c) from Python tests: a fresh
mount under a fresh temporary directory, the control file, power cuts, and
an unmount that always happens (fusermount3 -u, else umount -l)."""
import os
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOSSYFS = (os.environ.get("LOSSYFS_BIN")
           or os.path.join(HERE, "../../build-test/lossyfs"))
CTL = ".lossyfs-ctl"


class FuseUnavailable(Exception):
    pass


def require_fuse():
    """Fails loudly, with the reason, when this machine cannot run FUSE tests.
    CI runs as root with /dev/fuse: a skip there would hide lost data."""
    reasons = []
    if not os.path.exists("/dev/fuse"):
        reasons.append("/dev/fuse does not exist (in a container: --device /dev/fuse)")
    elif not os.access("/dev/fuse", os.R_OK | os.W_OK):
        reasons.append("/dev/fuse is not readable and writable by this user")
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        reasons.append("not root and fusermount3 is missing (Debian package fuse3)")
    if not os.path.exists(LOSSYFS):
        reasons.append(f"{LOSSYFS} is not built (make build-test; needs libfuse3-dev)")
    if reasons:
        raise FuseUnavailable("power-loss tests need FUSE: " + "; ".join(reasons))


class Mount:
    """One lossyfs mount of `backing` on a fresh temporary mount point."""

    def __init__(self, backing, torn=0, seed=0):
        self.backing = backing
        self.torn = torn
        self.seed = seed
        self.mnt = None
        self.proc = None
        self.log_path = None

    def __enter__(self):
        return self.mount()

    def __exit__(self, *exc):
        self.unmount()

    def mount(self):
        self.mnt = tempfile.mkdtemp(prefix="lossyfs-mnt-")
        fd, self.log_path = tempfile.mkstemp(prefix="lossyfs-log-", suffix=".txt")
        log = os.fdopen(fd, "w")
        opts = f"auto_unmount,torn={self.torn},seed={self.seed}"
        self.proc = subprocess.Popen([LOSSYFS, "-f", "-o", opts, self.backing, self.mnt],
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if os.path.ismount(self.mnt) and os.path.exists(self.path(CTL)):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("lossyfs exited at mount:\n" + self.read_log())
            time.sleep(0.02)
        self.unmount()
        raise RuntimeError("lossyfs did not mount:\n" + self.read_log())

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def read_log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, command):
        fd = os.open(self.path(CTL), os.O_WRONLY)
        try:
            os.write(fd, (command + "\n").encode())
        finally:
            os.close(fd)

    def status(self):
        with open(self.path(CTL)) as f:
            text = f.read()
        out = {}
        for line in text.splitlines():
            key, _, rest = line.partition(" ")
            out[key] = rest
        return out

    def dead(self):
        try:
            return self.status().get("state") == "dead"
        except OSError:
            return False

    def cut(self, torn=None, seed=None, kill=None):
        cmd = "cut"
        if torn is not None:
            cmd += f" torn={torn}"
        if seed is not None:
            cmd += f" seed={seed}"
        if kill is not None:
            cmd += f" kill={kill}"
        self.ctl(cmd)

    def unmount(self):
        """Unmounts (lazily if it must) and waits for lossyfs to exit. Safe
        to call twice; never leaves a mount behind."""
        if self.mnt and os.path.ismount(self.mnt):
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        failure = None
        if self.proc:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            code = self.proc.returncode
            self.proc = None
            if code not in (0, None):
                failure = f"lossyfs exited with {code}:\n" + self.read_log()
        if self.mnt:
            try:
                os.rmdir(self.mnt)
            except OSError:
                pass
            self.mnt = None
        if self.log_path:
            os.unlink(self.log_path)
            self.log_path = None
        if failure:
            raise RuntimeError(failure)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, sync=None):
    """Writes data (creating path); sync: None, 'fsync' or 'fdatasync'."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync == "fsync":
            os.fsync(fd)
        elif sync == "fdatasync":
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()
