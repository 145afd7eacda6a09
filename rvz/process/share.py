"""One host's share of a deployment: which of its parts one `rvz up --only ...` runs, and what it expects elsewhere.

A deployment is its rendezvous, its frontend and its [[models]]; ``rvz up`` runs them all, ``rvz up --only
PART`` (given once or more) runs a share of them, from the same config file, so a deployment can be
spread over several hosts. Each stream has one endpoint in [streams]: the part that binds it binds
exactly that address (an IP or a name that resolves to one of its host's addresses), every other part
connects to it (``rvz.wire.streams``):

    requests  bound by the frontend,   connected to by the rendezvous and every model
    scores    bound by the rendezvous, connected to by every model
    results   bound by the rendezvous, connected to by the frontend
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rvz.config import Config, ModelConfig
from rvz.errors import ConfigError

Part = Literal["rendezvous", "frontend", "models"]
PARTS: tuple[Part, ...] = ("rendezvous", "frontend", "models")
Stream = Literal["requests", "scores", "results"]
STREAMS: tuple[Stream, ...] = ("requests", "scores", "results")
# Which streams each kind of process binds and which it connects to (see the module docstring).
BINDS: dict[str, tuple[Stream, ...]] = {"frontend": ("requests",), "rendezvous": ("scores", "results"), "model": ()}
CONNECTS: dict[str, tuple[Stream, ...]] = {"frontend": ("results",), "rendezvous": ("requests",),
                                           "model": ("requests", "scores")}


@dataclass(frozen=True)
class Share:
    """The parts of a deployment one `rvz up` runs: the rendezvous, the frontend, some of the models."""

    rendezvous: bool
    frontend: bool
    models: tuple[ModelConfig, ...]
    # The models of the config this share does not run: they run elsewhere.
    elsewhere: tuple[ModelConfig, ...] = ()

    @property
    def whole(self) -> bool:
        """Whether this is the whole deployment (plain `rvz up`): then it waits for it to serve end to end."""
        return self.rendezvous and self.frontend and not self.elsewhere

    @property
    def kinds(self) -> list[str]:
        """The kinds of process this share runs ("rendezvous", "frontend", "model"), in start order."""
        return [k for k, runs in (("rendezvous", self.rendezvous), ("frontend", self.frontend),
                                  ("model", bool(self.models))) if runs]


def whole_share(config: Config) -> Share:
    return Share(rendezvous=True, frontend=True, models=config.models)


def share_from(config: Config, only: Sequence[str]) -> Share:
    """The share that ``--only`` names (every part when ``only`` is empty).

    Each name is a part (rendezvous, frontend, models: every model), a model's name (every model of that
    name, in any use case) or USE_CASE/NAME. Raises ConfigError naming the valid names (and the closest
    one) for a name that is none of these.
    """
    if not only:
        return whole_share(config)
    chosen: list[ModelConfig] = []
    for name in only:
        if name in PARTS:
            if name == "models":
                chosen.extend(config.models)
            continue
        matched = [m for m in config.models if name in (m.name, f"{m.use_case}/{m.name}")]
        if not matched:
            raise ConfigError(_unknown(name, config))
        chosen.extend(matched)
    models = tuple(m for m in config.models if m in chosen)  # the config's order, each once
    return Share(rendezvous="rendezvous" in only, frontend="frontend" in only, models=models,
                 elsewhere=tuple(m for m in config.models if m not in chosen))


def valid_names(config: Config) -> list[str]:
    """What --only accepts for ``config``: the parts, then each model's name (each also as USE_CASE/NAME)."""
    return list(dict.fromkeys([*PARTS, *(m.name for m in config.models)]))


def _unknown(name: str, config: Config) -> str:
    names = valid_names(config)
    close = difflib.get_close_matches(name, names + [f"{m.use_case}/{m.name}" for m in config.models], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"--only {name!r} is not a part of this deployment ({config.source}): {hint}"
            f"give one of {', '.join(names)} (a model also as USE_CASE/NAME)")


def describe(share: Share, config: Config, address: str = "") -> str:
    """What this share runs, what it binds and connects to, and what it expects elsewhere (the banner of
    `rvz up --only`). ``address``: where its frontend listens, once known."""
    runs = [k for k in ("rendezvous", "frontend") if getattr(share, k)]
    if share.models:
        runs.append("models " + ", ".join(_model_names(share.models)))
    binds = [s for s in STREAMS if any(s in BINDS[kind] for kind in share.kinds)]
    connects = [s for s in STREAMS if s not in binds and any(s in CONNECTS[kind] for kind in share.kinds)]
    parts = [f"binds {_streams(binds, config)}" if binds else "",
             f"connects to {_streams(connects, config)}" if connects else "",
             f"gRPC on {address}" if address else ""]
    elsewhere = [k for k in ("rendezvous", "frontend") if not getattr(share, k)]
    if share.elsewhere:
        elsewhere.append("models " + ", ".join(_model_names(share.elsewhere)))
    return (f"{', '.join(runs)} ({'; '.join(p for p in parts if p)}); "
            f"expects elsewhere: {', '.join(elsewhere) or 'nothing'}; logs in {config.log.dir}")


def _model_names(models: Sequence[ModelConfig]) -> list[str]:
    return [f"{m.use_case}/{m.name}" for m in models]


def _streams(names: Sequence[str], config: Config) -> str:
    return ", ".join(f"{n} {getattr(config.streams, n)}" for n in names)
