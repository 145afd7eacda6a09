"""What `rvz models` and `rvz policy` print and read, around ``rvz.Client``'s Admin calls: the models
table, the models as JSON, a policy as TOML and back."""

from __future__ import annotations

import tomllib
from dataclasses import asdict
from typing import Any

import tomli_w
from rich.console import Console
from rich.table import Table

from rvz.client.types import ModelList, PolicyState
from rvz.config import parse_policy
from rvz.errors import ConfigError

NA = "-"


def models_json(models: ModelList) -> list[dict[str, Any]]:
    """The rows (one per worker) as JSON objects: numbers as numbers, null where there is no figure; each
    row's ``model`` holds its model's totals over all its workers (replicas)."""
    rows = []
    for m in models:
        total = models.totals_of(m.use_case, m.name, m.version)
        rows.append({**asdict(m), "model": asdict(total) if total is not None else None})
    return rows


def print_models(models: ModelList, console: Console | None = None) -> None:
    table = Table(title="rvz models (figures over the last 60 s; a gone worker has none; a replicated model's "
                  "total follows its replicas)")
    for column in ("use case", "model", "version", "role", "pid@host", "heartbeat", "held", "scores/s", "errors",
                   "p50 ms", "p99 ms", "on time", "chosen", "missed", "restarts", "drift"):
        table.add_column(column, justify="right" if column not in ("use case", "model", "role") else "left")
    for i, m in enumerate(models):
        role = m.role if m.role == m.started_role else f"{m.role} (was {m.started_role})"
        heartbeat = f"{m.last_heartbeat_age_s:.1f}s ago" if m.live else f"gone {m.last_heartbeat_age_s:.0f}s"
        table.add_row(m.use_case, m.name, m.version, role, f"{m.pid}@{m.host}", heartbeat,
                      str(m.outstanding) if m.shared else NA,
                      _number(m.scores_per_s, "{:.1f}"), _number(m.error_rate, "{:.1%}"),
                      _number(m.latency_p50_ms, "{:.2f}"), _number(m.latency_p99_ms, "{:.2f}"),
                      _number(m.on_time_pct, "{:.1f}%"), _number(m.times_chosen, "{}"),
                      str(m.missed_total), str(m.restarts), _number(m.divergence, "{:.3f}"))
        following = models[i + 1] if i + 1 < len(models) else None
        last_of_model = following is None or (following.use_case, following.name, following.version) != (
            m.use_case, m.name, m.version)
        total = models.totals_of(m.use_case, m.name, m.version) if last_of_model else None
        if total is not None and (m.shared or total.replicas > 1):
            table.add_row(m.use_case, m.name, m.version, "", f"total of {total.replicas} live", "", "",
                          _number(total.scores_per_s, "{:.1f}"), "", _number(total.latency_p50_ms, "{:.2f}"),
                          _number(total.latency_p99_ms, "{:.2f}"), "", str(total.times_chosen),
                          str(total.missed_total), "", "", end_section=True)
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
            console = Console(width=200)
    console.print(table)
    for use_case, change in getattr(models, "last_changes", {}).items():
        console.print(f"last change of use case {use_case!r}: {change}", highlight=False)


def _number(value: float | None, form: str) -> str:
    return NA if value is None else form.format(value)


def policy_toml(state: PolicyState) -> str:
    """The policy as the `[rendezvous]` table of a config file, which `rvz policy set` reads back."""
    header = f"# use case {state.use_case!r}, policy version {state.version}\n"
    if state.last_change:
        header += f"# last change: {state.last_change}\n"
    return header + tomli_w.dumps({"rendezvous": state.policy})


def policy_from_toml(toml_text: str, source: str) -> dict[str, Any]:
    """The `[rendezvous]` table of ``toml_text`` (or the whole file), checked as the config file's is;
    raises ``ConfigError`` naming ``source`` and the key."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    table: dict[str, Any] = data.get("rendezvous", data)
    # The file's own checks first, naming its keys as the file spells them; the rendezvous checks again.
    parse_policy(table, source, "rendezvous." if "rendezvous" in data else "")
    return table
