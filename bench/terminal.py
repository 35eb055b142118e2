"""The app as a user runs it, for the benches: a process in a 100x32 pseudo-terminal that
takes whatever the app draws at once, and what /proc says of it.

    with AppInTerminal([sys.executable, "-m", "tui", "--seed", "1"]) as app:
        ...  # app.proc: the Popen; thread_cpu(app.proc.pid)
    # leaving: ctrl+q, then the process's end (killed after 30 s)
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def provenance(script: str) -> dict:
    """What an app bench's JSON says of where its figures came from: the command that made
    them, the commit, the day and the cores."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "command": " ".join(["python3", f"bench/{script}", *sys.argv[1:]]),
        "commit": commit.stdout.strip()[:7],
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
    }


def thread_cpu(pid: int) -> float:
    """CPU seconds (user and system) of a process's main thread, the app's own, from /proc."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows_written(csv_file: Path) -> int:
    """Data rows in a CSV file being written (0 before it exists)."""
    try:
        return max(0, len(csv_file.read_text().splitlines()) - 1)
    except OSError:
        return 0


class AppInTerminal:
    """`argv` started in a 100x32 pseudo-terminal (TERM xterm-256color), its output read and
    dropped by a thread of this process; on leaving, ctrl+q and the process's end."""

    def __init__(self, argv: list[str], cwd: Path = ROOT) -> None:
        self.argv, self.cwd = argv, cwd

    def __enter__(self) -> AppInTerminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 32, 100, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color"}
        term = dict(stdin=slave, stdout=slave, stderr=slave)
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=env, start_new_session=True, **term)
        os.close(slave)
        self.master = master
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        return self

    def _drain(self) -> None:  # a terminal that takes whatever the app draws, at once
        try:
            while os.read(self.master, 65536):
                pass
        except OSError:  # the app closed its side
            pass

    def __exit__(self, *exc) -> None:
        os.write(self.master, b"\x11")  # ctrl+q
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        os.close(self.master)
