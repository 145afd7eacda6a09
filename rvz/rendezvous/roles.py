"""Promotions applied to what the rendezvous receives: a model's effective role, not the one its worker
started with, in every live score it decides on."""

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
