"""One `rvz up` deployment for one row of the matrix: champion, challenger and canary of use case "default",
a champion of use case "other", on ipc:// streams in a private directory; its processes found by pid."""

from __future__ import annotations

import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rvz.process.child import ChildProcess, ChildSpec

SERVING_PREFIX = "rvz serving on "
DEADLINE_MS = 100.0
WINDOW_MS = 30.0
MODELS = (("champion", "champion", "default"), ("challenger", "challenger", "default"),
          ("canary", "canary", "default"), ("other", "champion", "other"))


def config_text(root: Path, data_dir: Path, hwm: int, challenger_entry: str, frontends: int = 1,
                rendezvous: int = 1) -> str:
    models = "".join(
        f'[[models]]\nname = "{name}"\nrole = "{role}"\nuse_case = "{use_case}"\n'
        f'entry = "{challenger_entry if name == "challenger" else f"chaos_faults.models:{name}"}"\n'
        f"watchdog_ms = 500\n\n"
        for name, role, use_case in MODELS)
    return f"""
[frontend]
listen = "127.0.0.1:0"
heartbeat_ms = 100
processes = {frontends}

[streams]
requests = "ipc://{root}/requests.sock"
scores = "ipc://{root}/scores.sock"
results = "ipc://{root}/results.sock"
high_water_mark = {hwm}
rendezvous_processes = {rendezvous}

[log]
dir = "{data_dir}"

[rendezvous]
deadline_ms = {DEADLINE_MS}
[[rendezvous.schedule]]
until_ms = {WINDOW_MS}
accept = ["champion"]
[[rendezvous.schedule]]
until_ms = {DEADLINE_MS}
accept = ["champion", "challenger", "canary"]

{models}"""


@dataclass
class Deployment:
    root: Path
    config: Path
    up: ChildProcess
    address: str = ""
    extra: list[ChildProcess] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return Path(re.search(r'dir = "(.+)"', self.config.read_text()).group(1))  # type: ignore[union-attr]

    def pid_of(self, child: str) -> int:
        """The current pid of one of `rvz up`'s children ("rendezvous", "rendezvous 2/2", "frontend", "frontend 2/2",
        "model NAME")."""
        pids = re.findall(rf"started {re.escape(child)} \(pid (\d+)\)", self.up.stderr_tail(200_000))
        return int(pids[-1])

    def stop(self) -> None:
        for proc in self.extra:
            proc.stop()
        self.up.stop(signal.SIGTERM)


def start(root: Path, env: dict[str, str], hwm: int = 1000, challenger_entry: str = "",
          data_dir: Path | None = None, name: str = "up", frontends: int = 1, rendezvous: int = 1) -> Deployment:
    """`rvz up` of the matrix's deployment (``frontends`` frontend processes, ``rendezvous`` rendezvous),
    serving; raises StartupFailed if it does not start."""
    config = root / f"{name}.toml"
    config.write_text(config_text(root, data_dir or root / "data", hwm,
                                  challenger_entry or "chaos_faults.models:challenger", frontends, rendezvous))
    spec = ChildSpec(name, (sys.executable, "-m", "rvz", "up", "--config", str(config)), env=env, cwd=root,
                     stderr_path=root / f"{name}.stderr", announces=(SERVING_PREFIX,))
    up = ChildProcess(spec)
    up.start()
    deployment = Deployment(root, config, up)
    try:
        deployment.address = up.wait_line(SERVING_PREFIX, timeout_s=90).split()[0]
    except BaseException:
        up.stop()
        raise
    return deployment
