"""One host's share of a deployment: which of its parts one `rvz up --only ...` runs, and what it expects elsewhere.

A deployment is its rendezvous, its frontend and its [[models]]; ``rvz up`` runs them all, ``rvz up --only
PART`` (given once or more) runs a share of them, from the same config file, so a deployment can be
spread over several hosts. Each stream has one endpoint in [streams]: the part that binds it binds
exactly that address (an IP or a name that resolves to one of its host's addresses), every other part
connects to it (``rvz.wire.streams``):

    requests     bound by the frontend,   connected to by the rendezvous and every model
    scores       bound by the rendezvous, connected to by every model
    results      bound by the rendezvous, connected to by the frontend

With the requests hub (``Config.requests_hub``: several frontends), the hub is a part of its own: it binds
requests and requests_in, and every frontend connects to requests_in instead of binding requests.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rvz.config import Config, ModelConfig
from rvz.errors import ConfigError

Part = Literal["rendezvous", "hub", "frontend", "models"]
PARTS: tuple[Part, ...] = ("rendezvous", "hub", "frontend", "models")
Stream = Literal["requests", "requests_in", "scores", "results"]
STREAMS: tuple[Stream, ...] = ("requests", "requests_in", "scores", "results")
# Which streams each kind of process binds and which it connects to (see the module docstring).
BINDS: dict[str, tuple[Stream, ...]] = {"frontend": ("requests",), "rendezvous": ("scores", "results"), "model": (),
                                        "hub": ("requests", "requests_in")}
CONNECTS: dict[str, tuple[Stream, ...]] = {"frontend": ("results",), "rendezvous": ("requests",),
                                           "model": ("requests", "scores"), "hub": ()}
# `--only rendezvous:I`: one rendezvous of several (rendezvous I, from 0).
RENDEZVOUS_PREFIX = "rendezvous:"
# A frontend behind the hub binds no stream: it connects to the hub's input.
HUB_FRONTEND_BINDS: tuple[Stream, ...] = ()
HUB_FRONTEND_CONNECTS: tuple[Stream, ...] = ("requests_in", "results")


@dataclass(frozen=True)
class Share:
    """The parts of a deployment one `rvz up` runs: the rendezvous, the frontend, some of the models."""

    rendezvous: bool
    frontend: bool
    models: tuple[ModelConfig, ...]
    # The models of the config this share does not run: they run elsewhere.
    elsewhere: tuple[ModelConfig, ...] = ()
    # The requests hub (only in a config that has one: ``Config.requests_hub``), and whether it runs elsewhere.
    hub: bool = False
    hub_elsewhere: bool = False
    # With several rendezvous: the indices this share runs (`--only rendezvous:I`); None: all of them.
    rendezvous_indices: frozenset[int] | None = None

    @property
    def whole(self) -> bool:
        """Whether this is the whole deployment (plain `rvz up`): then it waits for it to serve end to end."""
        return (self.rendezvous and self.rendezvous_indices is None and self.frontend and not self.elsewhere
                and not self.hub_elsewhere)

    def runs_rendezvous(self, index: int) -> bool:
        return self.rendezvous and (self.rendezvous_indices is None or index in self.rendezvous_indices)

    @property
    def kinds(self) -> list[str]:
        """The kinds of process this share runs ("rendezvous", "hub", "frontend", "model"), in start order."""
        return [k for k, runs in (("rendezvous", self.rendezvous), ("hub", self.hub), ("frontend", self.frontend),
                                  ("model", bool(self.models))) if runs]


def whole_share(config: Config) -> Share:
    return Share(rendezvous=True, frontend=True, models=config.models, hub=bool(config.requests_hub))


def share_from(config: Config, only: Sequence[str]) -> Share:
    """The share that ``--only`` names (every part when ``only`` is empty).

    Each name is a part (rendezvous, frontend, models: every model), a model's name (every model of that
    name, in any use case) or USE_CASE/NAME. Raises ConfigError naming the valid names (and the closest
    one) for a name that is none of these.
    """
    if not only:
        return whole_share(config)
    chosen: list[ModelConfig] = []
    indices: set[int] = set()
    for name in only:
        if name.startswith(RENDEZVOUS_PREFIX) and name != "rendezvous":
            indices.add(_rendezvous_index(name, config))
            continue
        if name == "hub" and not config.requests_hub:
            raise ConfigError(f"--only hub: {config.source} has no requests hub (it has one with streams.requests_in "
                              "or frontend.processes > 1): give one of "
                              f"{', '.join(n for n in valid_names(config))}")
        if name in PARTS:
            if name == "models":
                chosen.extend(config.models)
            continue
        matched = [m for m in config.models if name in (m.name, f"{m.use_case}/{m.name}")]
        if not matched:
            raise ConfigError(_unknown(name, config))
        chosen.extend(matched)
    models = tuple(m for m in config.models if m in chosen)  # the config's order, each once
    every = "rendezvous" in only
    return Share(rendezvous=every or bool(indices), frontend="frontend" in only, models=models,
                 elsewhere=tuple(m for m in config.models if m not in chosen), hub="hub" in only,
                 hub_elsewhere=bool(config.requests_hub) and "hub" not in only,
                 rendezvous_indices=None if every or not indices else frozenset(indices))


def _rendezvous_index(name: str, config: Config) -> int:
    """I of ``rendezvous:I``; raises ConfigError unless it is one of the config's rendezvous."""
    text = name.removeprefix(RENDEZVOUS_PREFIX)
    last = config.streams.rendezvous_processes - 1
    if not text.isdigit() or int(text) > last:
        raise ConfigError(f"--only {name!r}: {config.source} has rendezvous 0 to {last} "
                          f"(streams.rendezvous_processes = {last + 1}): give rendezvous:0 to rendezvous:{last}, or "
                          "rendezvous for all of them")
    return int(text)


def valid_names(config: Config) -> list[str]:
    """What --only accepts for ``config``: the parts (the hub only if the config has one), then each model's
    name (each also as USE_CASE/NAME)."""
    parts = [p for p in PARTS if p != "hub" or config.requests_hub]
    several = config.streams.rendezvous_processes
    indices = [f"{RENDEZVOUS_PREFIX}{i}" for i in range(several)] if several > 1 else []
    return list(dict.fromkeys([*parts, *indices, *(m.name for m in config.models)]))


def _unknown(name: str, config: Config) -> str:
    names = valid_names(config)
    close = difflib.get_close_matches(name, names + [f"{m.use_case}/{m.name}" for m in config.models], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"--only {name!r} is not a part of this deployment ({config.source}): {hint}"
            f"give one of {', '.join(names)} (a model also as USE_CASE/NAME)")


def describe(share: Share, config: Config, address: str = "") -> str:
    """What this share runs, what it binds and connects to, and what it expects elsewhere (the banner of
    `rvz up --only`). ``address``: where its frontend listens, once known."""
    several = config.streams.rendezvous_processes
    mine = sorted(share.rendezvous_indices) if share.rendezvous_indices is not None else list(range(several))
    runs = [_counted(k, config) for k in ("rendezvous", "hub", "frontend") if getattr(share, k)]
    if share.rendezvous_indices is not None:
        runs[0] = f"rendezvous {', '.join(map(str, mine))} of {several}"
    if share.models:
        runs.append("models " + ", ".join(_model_names(share.models)))
    binds = [s for s in STREAMS if any(s in _binds(kind, config) for kind in share.kinds)]
    connects = [s for s in STREAMS if s not in binds and any(s in _connects(kind, config) for kind in share.kinds)]
    parts = [f"binds {_streams(binds, config, mine)}" if binds else "",
             f"connects to {_streams(connects, config)}" if connects else "",
             f"gRPC on {address}" if address else ""]
    elsewhere = [k for k in ("rendezvous", "frontend") if not getattr(share, k)]
    if share.rendezvous and len(mine) < several:
        elsewhere.insert(0, "rendezvous " + ", ".join(str(i) for i in range(several) if i not in mine))
    if share.hub_elsewhere:
        elsewhere.append("hub")
    if share.elsewhere:
        elsewhere.append("models " + ", ".join(_model_names(share.elsewhere)))
    return (f"{', '.join(runs)} ({'; '.join(p for p in parts if p)}); "
            f"expects elsewhere: {', '.join(elsewhere) or 'nothing'}; logs in {config.log.dir}")


def _model_names(models: Sequence[ModelConfig]) -> list[str]:
    return [f"{m.use_case}/{m.name}" for m in models]


def _counted(part: str, config: Config) -> str:
    """``part``, with its number of processes when it has several."""
    processes = {"frontend": config.frontend.processes, "rendezvous": config.streams.rendezvous_processes}.get(part, 1)
    return f"{part} ({processes} processes)" if processes > 1 else part


def _binds(kind: str, config: Config) -> tuple[Stream, ...]:
    return HUB_FRONTEND_BINDS if kind == "frontend" and config.requests_hub else BINDS[kind]


def _connects(kind: str, config: Config) -> tuple[Stream, ...]:
    return HUB_FRONTEND_CONNECTS if kind == "frontend" and config.requests_hub else CONNECTS[kind]


def endpoint(stream: Stream, config: Config, rendezvous: Sequence[int] | None = None) -> str:
    """The endpoint of ``stream`` in ``config`` (requests_in: the hub's input, derived or given; scores and
    results: those of the rendezvous ``rendezvous``, by default every one's, in index order)."""
    if stream == "requests_in":
        return config.requests_hub
    if stream in ("scores", "results"):
        every = config.streams.rendezvous
        return " ".join(str(getattr(every[i], stream)) for i in (rendezvous or range(len(every))))
    return str(getattr(config.streams, stream))


def _streams(names: Sequence[Stream], config: Config, rendezvous: Sequence[int] | None = None) -> str:
    return ", ".join(f"{n} {endpoint(n, config, rendezvous)}" for n in names)
