"""Promotions applied to what the rendezvous receives: a model's effective role, not the one its worker
started with, in every live score it decides on and in every announce it forwards to a frontend."""

from __future__ import annotations

from rvz.admin.state import AdminState
from rvz.wire.proto import envelope_pb2


def promote_score(state: AdminState, score: envelope_pb2.ScoreEnvelope) -> bool:
    """Give a live score its model's effective role; True if that changed it (its bytes are then stale).
    Callers on the hot path skip it while ``state.roles`` is empty (no promotion ever)."""
    role = state.role_of(score.use_case, score.model_name, score.role)
    if role == score.role:
        return False
    score.role = role
    return True


def announce_as_promoted(state: AdminState, announce: envelope_pb2.Control, payload: bytes) -> bytes:
    """The announce to forward (``payload`` is its encoding): re-encoded with the effective role if a
    promotion changed it, else ``payload`` itself. ``announce`` is not modified."""
    model = announce.model
    role = state.role_of(model.use_case, model.name, model.role)
    if role == model.role:
        return payload
    forwarded = envelope_pb2.Control()
    forwarded.CopyFrom(announce)
    forwarded.model.role = role
    return forwarded.SerializeToString()
