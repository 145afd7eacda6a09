"""What an authenticated peer may send the rendezvous, checked per message from its ZAP User-Id (the
``User-Id`` property of a received frame): a model key scores and announces only as its own model of its
own use case, the replay key sends only replayed scores, and a frontend's messages come only through
the routing id bound to its key."""

from __future__ import annotations

from dataclasses import dataclass

from rvz.security.keys import KeyInfo
from rvz.wire.proto import envelope_pb2

# User-Ids seen at most: a deployment has a handful of keys; this only bounds a misbehaving authenticator.
_MAX_CACHED = 4096


@dataclass(frozen=True)
class Peer:
    """The key behind a message, as its User-Id says (see ``rvz.security.keys.KeyInfo.user_id``)."""

    user_id: str
    key: KeyInfo

    def may_score(self, score: envelope_pb2.ScoreEnvelope) -> bool:
        key = self.key
        if key.role == "model":
            return score.model_name == key.name and score.use_case == key.use_case
        return key.role == "replay" and score.replayed

    def may_announce(self, model: envelope_pb2.ModelInfo) -> bool:
        key = self.key
        return key.role == "model" and model.name == key.name and model.use_case == key.use_case

    def describe(self) -> str:
        return self.key.describe() if self.key.role == "model" else self.user_id


class Peers:
    """User-Id -> Peer, parsed once per key. Call from one thread."""

    def __init__(self) -> None:
        self._known: dict[str, Peer] = {}

    def of(self, user_id: str) -> Peer:
        peer = self._known.get(user_id)
        if peer is None:
            if len(self._known) >= _MAX_CACHED:
                self._known.clear()
            peer = self._known[user_id] = parse(user_id)
        return peer


def parse(user_id: str) -> Peer:
    """A User-Id that is none of the roles' (never made by our authenticator) may send nothing."""
    role, _, rest = user_id.partition("/")
    if role == "model":
        use_case, _, name = rest.partition("/")
        return Peer(user_id, KeyInfo(b"", "model", use_case, name))
    if user_id.startswith("fe-"):
        return Peer(user_id, KeyInfo(b"", "frontend"))
    return Peer(user_id, KeyInfo(b"", "replay" if role == "replay" else "rendezvous"))
