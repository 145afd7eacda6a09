"""The committed generated code must match protos/ (regenerate with scripts/gen-protos)."""

from __future__ import annotations

from pathlib import Path

from rvz.wire.proto_gen import OUT, generate


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in generate(tmp_path)}
    committed = {p.name: p.read_bytes() for p in OUT.iterdir() if p.name in fresh}
    stale = sorted(name for name in fresh if committed.get(name) != fresh[name])
    assert not stale, f"rvz/wire/proto is stale for {stale}: run scripts/gen-protos and commit the result"
