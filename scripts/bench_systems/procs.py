"""Real processes for the benchmark: rvz.process.child.ChildProcess (started with a ready line to wait
on, stdout always drained, stopped by PID), also read from /proc (CPU time, context switches, resident
memory) without touching them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rvz.process.child import ChildProcess, ChildSpec

SCRIPTS_DIR = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Proc(ChildProcess):
    """A child process of the benchmark, with what /proc says about it."""

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


def spawn(name: str, args: list[str], root: Path, env: dict[str, str] | None = None, *,
          announces: tuple[str, ...]) -> Proc:
    """``python ARGS`` in ROOT with scripts/ importable and stderr kept in ROOT/NAME.stderr; ``announces``
    are the prefixes of the lines it prints that the benchmark waits for.

    OpenTelemetry variables of the caller's environment are not passed on: each run says what it wants.
    """
    python_path = os.pathsep.join(p for p in (str(SCRIPTS_DIR), os.environ.get("PYTHONPATH", "")) if p)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    spec = ChildSpec(name, (sys.executable, *args), env={**inherited, "PYTHONPATH": python_path, **(env or {})},
                     cwd=root, stderr_path=root / f"{name}.stderr", announces=announces)
    proc = Proc(spec)
    proc.start()
    return proc
