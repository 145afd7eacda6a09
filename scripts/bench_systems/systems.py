"""The three systems, each started as real processes on this machine and stopped by PID.

- direct: one plain gRPC server calling the champion in-process;
- fan-out: three model gRPC servers (one process each) behind a gRPC fan-out frontend;
- rvz: rendezvous, frontend and three model workers, started through the CLI like `rvz up` would,
  with the request/scores/results logs on (fsync on) and ipc:// (or tcp://) streams;
- bare: the same five processes and ZeroMQ hops with nothing else (see bench_systems.bare).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench_systems import bare, serving
from bench_systems.procs import Proc, spawn
from rvz.process import serving as rvz_serving
from rvz.process.entry import LISTENING_PREFIX, MODEL_READY

WINDOW_MS = 30.0
DEADLINE_MS = 100.0
MODELS = {"champion": "bench_systems.models:champion", "challenger": "bench_systems.models:challenger",
          "canary": "bench_systems.models:canary"}
LATE_CHAMPION = "bench_systems.models:LateChampion"
SERVER_READY = (serving.READY_PREFIX,)
BARE_READY = (bare.READY,)


@dataclass
class System:
    name: str
    root: Path
    # In stop order.
    procs: list[Proc] = field(default_factory=list)
    target: str = ""

    def usage(self) -> dict[str, tuple[float, int]]:
        """CPU seconds and context switches so far, by process."""
        return {p.name: (p.cpu_s(), p.switches()) for p in self.procs}

    def rss_mb(self) -> dict[str, float]:
        return {p.name: round(p.rss_mb(), 1) for p in self.procs}

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc


def start_direct(root: Path) -> System:
    system = System("direct", _subdir(root, "direct"))
    with _stopped_on_failure(system):
        server = system.add(spawn("direct", ["-m", "bench_systems.scoring_server", "--entry", MODELS["champion"]],
                                  system.root, announces=SERVER_READY))
        system.target = server.wait_line(serving.READY_PREFIX)
    return system


def start_fanout(root: Path) -> System:
    system = System("fan-out", _subdir(root, "fanout"))
    with _stopped_on_failure(system):
        servers = [system.add(spawn(f"model-{role}", ["-m", "bench_systems.scoring_server", "--entry", entry,
                                                      "--name", role, "--role", role], system.root,
                                    announces=SERVER_READY))
                   for role, entry in MODELS.items()]
        addresses = [f"{p.name.removeprefix('model-')}={p.wait_line(serving.READY_PREFIX)}" for p in servers]
        args = ["-m", "bench_systems.fanout", "--window-ms", str(WINDOW_MS), "--deadline-ms", str(DEADLINE_MS)]
        _start_frontend(system, [*args, *(a for address in addresses for a in ("--model", address))])
    return system


def start_bare(root: Path) -> System:
    """rendezvous, the three workers, then the frontend, which is ready once a probe went through all three."""
    system = System("bare", _subdir(root, "bare"))
    base = ["-m", "bench_systems.bare"]
    with _stopped_on_failure(system):
        system.add(spawn("rendezvous", [*base, "rendezvous", "--dir", str(system.root), "--models", str(len(MODELS))],
                         system.root, announces=BARE_READY)).wait_line(bare.READY)
        for role, entry in MODELS.items():
            system.add(spawn(f"model-{role}", [*base, "worker", "--dir", str(system.root), "--name", role,
                                               "--entry", entry], system.root, announces=BARE_READY)
                       ).wait_line(bare.READY)
        _start_frontend(system, [*base, "frontend", "--dir", str(system.root)])
    return system


def _start_frontend(system: System, args: list[str]) -> None:
    """Start a baseline's frontend last (its backends are up) and stop it first, as `rvz up` does."""
    frontend = spawn("frontend", args, system.root, announces=SERVER_READY)
    system.procs.insert(0, frontend)
    system.target = frontend.wait_line(serving.READY_PREFIX)


@contextmanager
def _stopped_on_failure(system: System) -> Iterator[None]:
    """Whatever a starter started is stopped if it fails half way."""
    try:
        yield
    except BaseException:
        system.stop()
        raise


def start_rvz(root: Path, name: str = "rvz", *, champion: str = MODELS["champion"], streams: str = "ipc",
              env: dict[str, str] | None = None, durable_answers: bool = True,
              grpc_overflow: str = "cancel") -> System:
    """rendezvous, frontend, then the workers; returns once the use case's health is SERVING."""
    system = System(name, _subdir(root, name))
    config = system.root / "rvz.toml"
    config.write_text(rvz_config(system.root, streams, durable_answers, grpc_overflow))
    base = ["-m", "rvz"]
    with _stopped_on_failure(system):
        system.add(spawn("rendezvous", [*base, "rendezvous", "--config", str(config)], system.root, env,
                         announces=()))
        frontend = system.add(spawn("frontend", [*base, "frontend", "--config", str(config)], system.root, env,
                                    announces=(LISTENING_PREFIX,)))
        system.target = frontend.wait_line(LISTENING_PREFIX)
        for role, entry in {**MODELS, "champion": champion}.items():
            args = [*base, "model", "run", "--config", str(config), "--name", role, "--role", role, "--entry", entry]
            system.add(spawn(f"model-{role}", args, system.root, env, announces=(MODEL_READY,))).wait_line(MODEL_READY)
        with grpc.insecure_channel(system.target) as channel:
            rvz_serving.wait_serving(channel, "default")
    # The order `rvz up` stops in: the frontend first (calls in flight are still answered), the rendezvous last.
    system.procs.sort(key=lambda p: {"frontend": 0, "rendezvous": 2}.get(p.name, 1))
    return system


def rvz_config(root: Path, streams: str, durable_answers: bool = True, grpc_overflow: str = "cancel") -> str:
    if streams == "tcp":
        requests, scores, results = (f"tcp://127.0.0.1:{_free_port()}" for _ in range(3))
    else:
        requests, scores, results = (f"ipc://{root}/{s}.sock" for s in ("requests", "scores", "results"))
    return f"""
[frontend]
listen = "127.0.0.1:0"
grpc_overflow = "{grpc_overflow}"

[streams]
requests = "{requests}"
scores = "{scores}"
results = "{results}"

[log]
dir = "{root}/data"
fsync = true
durable_answers = {str(durable_answers).lower()}

[rendezvous]
deadline_ms = {DEADLINE_MS}
on_timeout = "error"
[[rendezvous.schedule]]
until_ms = {WINDOW_MS}
accept = ["champion"]
[[rendezvous.schedule]]
until_ms = {DEADLINE_MS}
accept = ["champion", "challenger", "canary"]
"""


def _free_port() -> int:
    # Racy in principle (another process may take it before the rendezvous binds), fine on a bench machine.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _subdir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path
