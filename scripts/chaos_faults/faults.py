"""The faults of the matrix: what each does to a running deployment, when, and what it takes back."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaos_faults import disk
from chaos_faults.deployment import Deployment
from rvz.process.child import ChildProcess, ChildSpec

# What a fault does: (the deployment, the row's directory) -> what undoes it (None: nothing to undo).
Action = Callable[[Deployment, Path], Callable[[], None] | None]


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    action: Action | None = None
    # Whose callers must stay >= 99.9% OK (a fault of a model other than the champion), and who recovers.
    spares_champion: bool = True
    recovers: bool = False
    # Deployment options for this row.
    hwm: int = 1000
    pad_bytes: int = 0
    challenger_entry: str = ""
    small_disk: bool = False
    env: dict[str, str] = field(default_factory=dict)
    # Frontend processes and rendezvous processes of the deployment.
    frontends: int = 1
    rendezvous: int = 1
    # At most this many calls may fail in all (None: no such target), and how soon it must be back.
    max_not_ok: int | None = None
    recover_within_s: float = 2.0


def switch(kind: str, model: str) -> Action:
    """Create RVZ_CHAOS_DIR/KIND-MODEL (see chaos_faults.models); removing it undoes the fault."""
    def act(d: Deployment, row: Path) -> Callable[[], None]:
        flag = row / f"{kind}-{model}"
        flag.touch()
        return lambda: flag.unlink(missing_ok=True)
    return act


def kill(child: str) -> Action:
    def act(d: Deployment, row: Path) -> None:
        os.kill(d.pid_of(child), signal.SIGKILL)
    return act


def stop(child: str) -> Action:
    """SIGSTOP now, SIGCONT when undone (unless rvz up's watchdog killed it meanwhile)."""
    def act(d: Deployment, row: Path) -> Callable[[], None]:
        pid = d.pid_of(child)
        os.kill(pid, signal.SIGSTOP)

        def undo() -> None:
            with contextlib.suppress(ProcessLookupError):  # the watchdog may have killed it meanwhile
                os.kill(pid, signal.SIGCONT)
        return undo
    return act


def stuck_subscriber(d: Deployment, row: Path) -> Callable[[], None]:
    """A model worker that stops reading (SIGSTOP: its queue fills) while the load goes on."""
    return stop("model canary")(d, row) or (lambda: None)


def fill_disk(d: Deployment, row: Path) -> Callable[[], None]:
    filler = disk.fill(d.data_dir)
    return lambda: filler.unlink(missing_ok=True)


def second_deployment(d: Deployment, row: Path) -> Callable[[], None]:
    """Another `rvz up` of the same configuration file, whose models would answer as "intruder"."""
    env = {**os.environ, "RVZ_CHAOS_DIR": str(row / "intruder")}
    (row / "intruder").mkdir(exist_ok=True)
    spec = ChildSpec("second-up", (sys.executable, "-m", "rvz", "up", "--config", str(d.config)), env=env,
                     cwd=row, stderr_path=row / "second-up.stderr")
    second = ChildProcess(spec)
    second.start()
    d.extra.append(second)
    return lambda: None


FAULTS = (
    Fault("none", "no fault (the baseline)"),
    Fault("hung-challenger", "challenger blocks forever (hwm 100, 50 KB requests)", switch("hang", "challenger"),
          hwm=100, pad_bytes=50_000),
    Fault("stuck-subscriber", "a subscriber stops reading (hwm 100, 50 KB requests)", stuck_subscriber,
          hwm=100, pad_bytes=50_000),
    Fault("challenger-contract", "challenger declares a feature callers never send", None,
          challenger_entry="chaos_faults.models:Glucose"),
    Fault("rendezvous-stop", "rendezvous SIGSTOPped for 2 s", stop("rendezvous"), spares_champion=False,
          recovers=True),
    Fault("champion-10mb", "champion returns 10 MB outputs", switch("big", "champion"), spares_champion=False),
    Fault("disk-full", "the log disk fills up, then space returns", fill_disk, spares_champion=False,
          small_disk=True, recovers=True),
    Fault("second-up", "a second rvz up on the same ports and data directory", second_deployment),
    Fault("challenger-exits", "challenger calls sys.exit on every request", switch("exit", "challenger")),
    Fault("kill-frontend", "kill -9 of the frontend", kill("frontend"), spares_champion=False, recovers=True),
    Fault("kill-rendezvous", "kill -9 of the rendezvous", kill("rendezvous"), spares_champion=False,
          recovers=True),
    Fault("kill-champion", "kill -9 of the champion's worker", kill("model champion"), spares_champion=False,
          recovers=True),
    Fault("kill-challenger", "kill -9 of the challenger's worker", kill("model challenger"), recovers=True),
    Fault("stop-frontend", "frontend SIGSTOPped for 2 s", stop("frontend"), spares_champion=False, recovers=True),
    Fault("stop-champion", "champion's worker SIGSTOPped for 2 s", stop("model champion"), spares_champion=False,
          recovers=True),
    Fault("stop-challenger", "challenger's worker SIGSTOPped for 2 s", stop("model challenger"), recovers=True),
    # Scaled out: one part of two fails; the other goes on with its share.
    # Only the calls it was deciding fail: at most one per caller (each has one call in flight).
    Fault("kill-rendezvous-of-2", "kill -9 of one rendezvous of two", kill("rendezvous 2/2"), rendezvous=2,
          spares_champion=False, recovers=True, max_not_ok=4, recover_within_s=1.0),
    # Recovery counted from the fault, not from SIGCONT: the other rendezvous takes the share meanwhile.
    Fault("hang-rendezvous-of-2", "one rendezvous of two SIGSTOPped for 2 s", stop("rendezvous 2/2"), rendezvous=2,
          spares_champion=False, recovers=True, recover_within_s=1.0),
    # The calls on the killed process's connections fail; their clients reconnect to the other one.
    Fault("kill-frontend-of-2", "kill -9 of one frontend process of two", kill("frontend 2/2"), frontends=2,
          spares_champion=False, recovers=True, max_not_ok=4),
)
QUICK = ("none", "rendezvous-stop", "kill-champion", "challenger-contract")
