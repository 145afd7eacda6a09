"""Real processes for the benchmark: started with a ready line to wait on, stopped by PID, and read
from /proc (CPU time, resident memory) without touching them."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_line(self, prefix: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """Block until the process prints a line starting with ``prefix`` (its ready signal); return the rest."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.popen.wait()}) before '{prefix}':\n{self.stderr()}")
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
        raise RuntimeError(f"{self.name} did not print '{prefix}' within {timeout_s:g} s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:] if self.stderr_path.exists() else ""

    def cpu_s(self) -> float:
        """utime + stime of every thread of the process so far (/proc/PID/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def switches(self) -> int:
        """Context switches so far, voluntary and not, summed over the threads alive now (/proc/PID/task)."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                status = (task / "status").read_text()
            except OSError:  # the thread ended in between
                continue
            total += sum(int(line.split()[1]) for line in status.splitlines()
                         if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
        return total

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.reader is not None:
            self.reader.join(STOP_TIMEOUT_S)  # it closes the pipe at end of file
        return self.popen.returncode


def spawn(name: str, args: list[str], root: Path, env: dict[str, str] | None = None) -> Proc:
    """``python ARGS`` with scripts/ importable, stdout read line by line, stderr kept in ROOT/NAME.stderr.

    OpenTelemetry variables of the caller's environment are not passed on: each run says what it wants.
    """
    stderr_path = root / f"{name}.stderr"
    python_path = os.pathsep.join(p for p in (str(SCRIPTS_DIR), os.environ.get("PYTHONPATH", "")) if p)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    child_env = {**inherited, "PYTHONPATH": python_path, **(env or {})}
    with open(stderr_path, "ab") as stderr:
        popen = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=stderr,
                                 stdin=subprocess.DEVNULL, env=child_env, cwd=root)
    proc = Proc(name, popen, stderr_path)
    proc.reader = threading.Thread(target=_read_lines, args=(proc,), name=f"stdout-{name}", daemon=True)
    proc.reader.start()
    return proc


def _read_lines(proc: Proc) -> None:
    # Always drained, so a chatty process can never block on a full pipe.
    assert proc.popen.stdout is not None
    with proc.popen.stdout:
        for raw in proc.popen.stdout:
            proc.lines.put(raw.decode(errors="replace"))
    proc.lines.put(None)
