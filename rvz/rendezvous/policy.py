"""The schedule that decides which score answers a request.

A schedule is an ordered list of windows. Window i covers elapsed times
[until_{i-1}, until_i) since the frontend received the request and names the
roles or model names acceptable in it. A score that is acceptable in the window
in which it arrives answers at once. Other scores are held; when a new window
opens, the held score ranked best by the new window's ``accept`` list (then by
arrival) answers. When the deadline passes, or the last window ends, with no
acceptable score, the request times out: an error, or the default output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rvz.config import OnTimeout, RendezvousConfig, Window
from rvz.wire.codec import to_value
from rvz.wire.proto import envelope_pb2


@dataclass(frozen=True)
class Policy:
    windows: tuple[Window, ...]
    deadline_ms: float
    on_timeout: OnTimeout
    # Serialized google.protobuf.Value of the default output (empty when none).
    default_output: bytes
    version: int = 1
    # What the policy was built from (for GetPolicy and the saved admin state).
    config: RendezvousConfig = field(default_factory=RendezvousConfig, compare=False)
    # Window ends in integer ns, rounded up, so timers and window lookups agree exactly.
    ends_ns: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ends_ns", tuple(math.ceil(w.until_ms * 1e6) for w in self.windows))

    @classmethod
    def from_config(cls, config: RendezvousConfig, version: int = 1) -> Policy:
        default = b"" if config.default_output is None else to_value(config.default_output).SerializeToString()
        return cls(config.schedule, config.deadline_ms, config.on_timeout, default, version, config)

    @property
    def schedule_end_ms(self) -> float:
        return self.windows[-1].until_ms

    @property
    def schedule_end_ns(self) -> int:
        return self.ends_ns[-1]

    @property
    def first_accept(self) -> tuple[str, ...]:
        """Roles or model names the first window accepts: who can answer before any fallback."""
        return self.windows[0].accept

    def window_at(self, elapsed_ns: int) -> int | None:
        """Index of the window covering ``elapsed_ns``; None once the schedule has ended."""
        for i, end_ns in enumerate(self.ends_ns):
            if elapsed_ns < end_ns:
                return i
        return None

    def rank(self, window: int, score: envelope_pb2.ScoreEnvelope) -> int | None:
        """Position of the score's role or name in the window's accept list; None if not acceptable."""
        if score.error:
            return None
        for position, accepted in enumerate(self.windows[window].accept):
            if accepted == score.role or accepted == score.model_name:
                return position
        return None

    def acceptance_end_ns(self, role: str, model_name: str) -> int | None:
        """End of the first window accepting this role or model name: a score after it is not on time."""
        for window, end_ns in zip(self.windows, self.ends_ns, strict=True):
            if role in window.accept or model_name in window.accept:
                return end_ns
        return None

    def rule(self, window: int, rank: int) -> str:
        w = self.windows[window]
        start = self.windows[window - 1].until_ms if window else 0.0
        return f"window {window + 1} ({start:g}-{w.until_ms:g} ms): {w.accept[rank]}"
