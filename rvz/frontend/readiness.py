"""Is the pipeline able to answer a use case right now? Learned from probes.

The frontend probes the pipeline every ``heartbeat_ms``; the rendezvous answers
RENDEZVOUS_READY and every worker answers ANNOUNCE (through the rendezvous). A
use case is ready when the rendezvous and at least one model (not a decoy) have
answered recently, which also proves their subscriptions are in place.
"""

from __future__ import annotations

import time

from rvz.config import FrontendConfig, StreamsConfig
from rvz.errors import Unavailable, UnknownUseCase
from rvz.frontend.validation import FeatureSchema
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import envelope_pb2


class Readiness:
    def __init__(self, frontend: FrontendConfig, streams: StreamsConfig) -> None:
        self.rendezvous_timeout_ns = frontend.rendezvous_timeout_ms * 1_000_000
        self.streams = streams
        self.models = ModelRegistry(frontend.model_timeout_ms)
        self.rendezvous_seen_ns = 0
        self.rendezvous_lost = False
        # SLA per use case whose policy was changed through the Admin API (from the rendezvous).
        self.deadlines_ms: dict[str, float] = {}
        # Use case -> schema of its live models; only ready use cases are here.
        self._ready: dict[str, FeatureSchema] = {}

    def on_control(self, message: envelope_pb2.Control, now: int) -> None:
        if message.kind == envelope_pb2.Control.RENDEZVOUS_READY:
            self.rendezvous_seen_ns = now
            self.rendezvous_lost = False
            if message.deadlines_ms != self.deadlines_ms:
                self.deadlines_ms = dict(message.deadlines_ms)
        elif message.kind == envelope_pb2.Control.ANNOUNCE:
            self.models.saw(message.model, now)
            self._refresh_use_case(message.model.use_case, now)

    def on_rendezvous_lost(self) -> None:
        """The connection to the rendezvous dropped: stop accepting until it answers again."""
        self.rendezvous_seen_ns = 0
        self.rendezvous_lost = True

    def refresh(self, now: int) -> None:
        for use_case in self.models.use_cases():
            self._refresh_use_case(use_case, now)

    def _refresh_use_case(self, use_case: str, now: int) -> None:
        live = [m for m in self.models.live(use_case, now) if m.role != "decoy"]
        if live:
            self._ready[use_case] = FeatureSchema.of(live)
        else:
            self._ready.pop(use_case, None)

    def rendezvous_alive(self, now: int) -> bool:
        return now - self.rendezvous_seen_ns <= self.rendezvous_timeout_ns

    def serving(self, use_case: str, now: int) -> bool:
        return self.rendezvous_alive(now) and use_case in self._ready

    def any_serving(self, now: int) -> bool:
        return self.rendezvous_alive(now) and bool(self._ready)

    def check(self, use_case: str) -> FeatureSchema:
        """The schema to validate against, or the reason the use case cannot be served now."""
        now = time.time_ns()
        if not self.rendezvous_alive(now):
            raise Unavailable(self._rendezvous_problem(now))
        schema = self._ready.get(use_case)
        if schema is not None:
            return schema
        if not self.models.known(use_case):
            known = ", ".join(repr(u) for u in self.models.use_cases()) or "none yet"
            raise UnknownUseCase(f"no model serves use case {use_case!r} (use cases served: {known}); "
                                 "start one with `rvz model run --use-case ...` or fix the name")
        silent_s = (now - self.models.last_seen_ns(use_case)) / 1e9
        raise Unavailable(f"no live model for use case {use_case!r}: the last one answered {silent_s:.1f} s ago; "
                          "restart its worker")

    def _rendezvous_problem(self, now: int) -> str:
        where = f"results stream {self.streams.results}"
        if self.rendezvous_lost:
            return f"lost the connection to the rendezvous ({where}); is `rvz rendezvous` running?"
        if self.rendezvous_seen_ns == 0:
            return f"not ready: waiting for the rendezvous to answer on the {where}; is `rvz rendezvous` running?"
        silent_s = (now - self.rendezvous_seen_ns) / 1e9
        return f"the rendezvous has not answered for {silent_s:.1f} s ({where}); is `rvz rendezvous` running?"
