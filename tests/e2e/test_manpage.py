"""The man page grooved(1) renders without a groff warning and stays
complete: every flag of `grooved --help` and of the subcommands' `--help`, every
environment variable the sources read, every subcommand, signal, data file and
exit status appears in it. (A flag added to src/config.c without a line in
man/grooved.1 fails here.)"""
import glob
import os
import re
import subprocess

from harness import BIN, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
PAGE = os.path.join(ROOT, "man/grooved.1")


def rendered():
    # Wide lines and no hyphenation, so that no word is split.
    out = subprocess.run(["groff", "-man", "-Tascii", "-rLL=400n", "-rHY=0", "-P-cbou", PAGE],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_renders_without_warnings():
    out = subprocess.run(["groff", "-man", "-ww", "-z", PAGE], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr


def section(text, name):
    m = re.search(rf"^{name}\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)", text, re.M | re.S)
    assert m, f"no section {name}"
    return m.group(1)


def test_every_flag_and_variable_is_documented():
    page = rendered()
    help_ = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
    gc = "".join(subprocess.run([BIN, cmd, "--help"], capture_output=True, text=True,
                                timeout=10).stdout for cmd in ("gc", "backup", "verify"))
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_ + gc))
    assert len(flags) >= 20 and "--data-dir" in flags and "--older-than-days" in flags, flags
    assert "--to" in flags, flags
    options = section(page, "OPTIONS")
    server_flags = set(re.findall(r"^  (--[a-z][a-z-]*)", help_, re.M))
    missing = sorted(f for f in server_flags if not re.search(rf"^ +{f}\b", options, re.M))
    assert not missing, f"flags without an entry under OPTIONS: {missing}"
    missing = sorted(f for f in flags if not re.search(rf"(?<![\w-]){f}(?![\w-])", page))
    assert not missing, f"flags missing from the man page: {missing}"

    env = set(re.findall(r"\bGROOVED_[A-Z_]+\b", help_))
    for src in glob.glob(os.path.join(ROOT, "src/*.c")):
        with open(src) as f:
            env |= set(re.findall(r'getenv\("([A-Z_]+)"\)', f.read()))
    assert "GROOVED_PORT" in env and "NOTIFY_SOCKET" in env, env
    missing = sorted(v for v in env if not re.search(rf"\b{v}\b", section(page, "ENVIRONMENT")))
    assert not missing, f"environment variables missing from ENVIRONMENT: {missing}"


def test_commands_signals_files_and_exit_status():
    page = rendered()
    commands = section(page, "COMMANDS")
    for cmd in ("grooved gc", "grooved backup --data-dir dir --to newdir",
                "grooved verify --data-dir dir"):
        assert cmd in commands, cmd
    assert "backup-manifest.json" in section(page, "FILES")
    sig = section(page, "SIGNALS")
    assert "SIGINT" in sig and "SIGTERM" in sig and "1012" in sig
    files = section(page, "FILES")
    for name in ("LOCK", "log/", ".log", "durable.db", "durable.db-wal", "kv.db",
                 "share/grooved/web", "grooved.service"):
        assert name in files, name
    status = section(page, "EXIT STATUS")
    for code in ("0", "1", "2"):
        assert re.search(rf"^ +{code}\b", status, re.M), code
    for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "LOGGING", "SERVICE", "SEE ALSO"):
        section(page, name)


if __name__ == "__main__":
    run([test_renders_without_warnings, test_every_flag_and_variable_is_documented,
         test_commands_signals_files_and_exit_status])
