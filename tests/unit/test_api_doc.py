"""docs/api.md names every service, RPC, message, enum and public field of the .proto files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rvz.wire.proto import admin_pb2, scoring_pb2

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
PROTOS = sorted((ROOT / "protos").rglob("*.proto"))
_DECLARED = re.compile(r"^\s*(?:service|rpc|message|enum)\s+(\w+)", re.MULTILINE)


def declared_names() -> set[str]:
    """Every service, RPC, message and enum declared in the .proto files."""
    return {name for path in PROTOS for name in _DECLARED.findall(path.read_text())}


def test_the_protos_are_found() -> None:
    assert {p.name for p in PROTOS} == {"scoring.proto", "admin.proto", "envelope.proto"}
    assert {"Scoring", "Score", "Feedback", "Admin", "ResultEnvelope", "Outcome"} <= declared_names()


def test_every_service_rpc_message_and_enum_is_named() -> None:
    text = DOC.read_text()
    missing = sorted(name for name in declared_names() if f"`{name}" not in text)
    assert not missing, f"docs/api.md does not name {', '.join(missing)}"


def test_every_rpc_is_documented_with_its_signature() -> None:
    text = DOC.read_text()
    for module in (scoring_pb2, admin_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            assert f"`{service.full_name}`" in text or f"## {service.full_name}" in text
            for method in service.methods:
                signature = f"{method.name}({method.input_type.name}) returns ({method.output_type.name})"
                assert signature in text, f"docs/api.md lacks {signature}"


def test_every_field_of_the_public_messages_is_documented() -> None:
    text = DOC.read_text()
    missing = [f"{message.name}.{field.name}"
               for module in (scoring_pb2, admin_pb2)
               for message in module.DESCRIPTOR.message_types_by_name.values()
               for field in message.fields
               if f"| {field.number} | `{field.name}` |" not in text]
    assert not missing, f"docs/api.md has no row for {', '.join(missing)}"
