"""Client side of the Admin API: `rvz models`, `rvz policy show|set|reset`, `rvz promote`.

An empty use case is the frontend's frontend.default_use_case (for ``list_models``: every use case).
"""

from __future__ import annotations

import tomllib
from typing import Any

import grpc
import tomli_w
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from rvz.config import parse_policy
from rvz.errors import CallFailed, ConfigError
from rvz.security.audit import describe
from rvz.security.tls import Connection
from rvz.wire.codec import value_to_python
from rvz.wire.proto import admin_pb2, admin_pb2_grpc


def _stub(channel: grpc.Channel) -> admin_pb2_grpc.AdminStub:
    return admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]


def _call(connection: Connection, method: str, request: Any, timeout_s: float = 10.0) -> Any:
    with connection.channel() as channel:
        try:
            return getattr(_stub(channel), method)(request, timeout=timeout_s, metadata=connection.metadata())
        except grpc.RpcError as e:
            raise CallFailed(e.code(), e.details() or "") from None


def list_models(connection: Connection, use_case: str) -> admin_pb2.ListModelsResponse:
    response: admin_pb2.ListModelsResponse = _call(connection, "ListModels",
                                                   admin_pb2.ListModelsRequest(use_case=use_case))
    return response


def models_json(response: admin_pb2.ListModelsResponse) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
            for m in response.models]


def print_models(response: admin_pb2.ListModelsResponse, console: Console | None = None) -> None:
    table = Table(title="rvz models (figures over the last 60 s)")
    for column in ("use case", "model", "version", "role", "pid@host", "heartbeat", "scores/s", "errors",
                   "p50 ms", "p99 ms", "on time", "chosen", "drift"):
        table.add_column(column, justify="right" if column not in ("use case", "model", "role") else "left")
    for m in sorted(response.models, key=lambda m: (m.use_case, m.role != "champion", m.name)):
        role = m.role if m.role == m.started_role else f"{m.role} (was {m.started_role})"
        heartbeat = f"{m.last_heartbeat_age_s:.1f}s ago" if m.live else f"gone {m.last_heartbeat_age_s:.0f}s"
        table.add_row(m.use_case, m.name, m.version, role, f"{m.pid}@{m.host}", heartbeat, f"{m.scores_per_s:.1f}",
                      f"{100 * m.error_rate:.1f}%", _ms(m.latency_p50_ms), _ms(m.latency_p99_ms),
                      "-" if m.on_time_pct < 0 else f"{m.on_time_pct:.1f}%", str(m.times_chosen),
                      "-" if m.divergence < 0 else f"{m.divergence:.3f}")
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
            console = Console(width=200)
    console.print(table)
    for use_case, change in sorted(response.last_changes.items()):
        console.print(f"last change of use case {use_case!r}: {describe(change)}", highlight=False)


def _ms(value: float) -> str:
    return "-" if value < 0 else f"{value:.2f}"


def get_policy(connection: Connection, use_case: str) -> admin_pb2.PolicyState:
    state: admin_pb2.PolicyState = _call(connection, "GetPolicy", admin_pb2.GetPolicyRequest(use_case=use_case))
    return state


def policy_toml(state: admin_pb2.PolicyState) -> str:
    """The policy as the `[rendezvous]` table of a config file, which `rvz policy set` reads back."""
    p = state.policy
    table: dict[str, Any] = {"deadline_ms": p.deadline_ms, "on_timeout": p.on_timeout,
                             "early_score_ms": p.early_score_ms}
    if p.HasField("default_output"):
        table["default_output"] = value_to_python(p.default_output)
    table["schedule"] = [{"until_ms": w.until_ms, "accept": list(w.accept)} for w in p.schedule]
    header = f"# use case {state.use_case!r}, policy version {state.version}\n"
    if state.HasField("last_change"):
        header += f"# last change: {describe(state.last_change)}\n"
    return header + tomli_w.dumps({"rendezvous": table})


def set_policy(connection: Connection, use_case: str, toml_text: str, source: str,
               expected_version: int = 0) -> admin_pb2.PolicyState:
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    table = data.get("rendezvous", data)
    parse_policy(table, source)  # the file's own checks first, naming its keys; the rendezvous checks again
    request = admin_pb2.SetPolicyRequest(use_case=use_case, policy=policy_from_table(table),
                                         expected_version=expected_version)
    state: admin_pb2.PolicyState = _call(connection, "SetPolicy", request)
    return state


def policy_from_table(table: dict[str, Any]) -> admin_pb2.Policy:
    """A `[rendezvous]` table as the API's Policy; the rendezvous validates it (with precise messages)."""
    policy = admin_pb2.Policy()
    try:
        json_format.ParseDict({k: v for k, v in table.items() if k != "default_output"}, policy)
    except json_format.ParseError as e:
        raise ConfigError(f"policy: {e}") from e
    if "default_output" in table:
        json_format.ParseDict(table["default_output"], policy.default_output)
    return policy


def reset_policy(connection: Connection, use_case: str) -> admin_pb2.PolicyState:
    state: admin_pb2.PolicyState = _call(connection, "ResetPolicy", admin_pb2.ResetPolicyRequest(use_case=use_case))
    return state


def promote(connection: Connection, use_case: str, name: str) -> admin_pb2.PromoteResponse:
    response: admin_pb2.PromoteResponse = _call(connection, "Promote",
                                                admin_pb2.PromoteRequest(use_case=use_case, model_name=name))
    return response
