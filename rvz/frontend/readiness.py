"""Is the pipeline able to answer a use case right now? Learned from probes.

The frontend probes the pipeline every ``heartbeat_ms``; the rendezvous answers
RENDEZVOUS_READY and every worker answers ANNOUNCE (through the rendezvous, which
sets the model's effective role in it). Answers prove the subscriptions are in
place. Two levels, while the rendezvous answers:

- a use case takes calls when at least one of its models (not a decoy) is live:
  a fallback can still answer them;
- it is SERVING (health) when a model its schedule's first window accepts (by
  role or name, as the rendezvous's RENDEZVOUS_READY says) is live: otherwise
  every call could only wait for a fallback.
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
        # What the first window of each use case's schedule accepts (from the rendezvous); use cases not
        # in ``first_windows`` have the default policy's.
        # In the window's order: the first live one named is the model whose contract requests must meet.
        self.default_first_window: tuple[str, ...] = ()
        self.first_windows: dict[str, tuple[str, ...]] = {}
        # Use case -> schema of its live models; only use cases that take calls are here.
        self._ready: dict[str, FeatureSchema] = {}
        # Use cases with a live model their first window accepts.
        self._serving: set[str] = set()
        # Use cases the rendezvous knows models of (RENDEZVOUS_READY): not unknown, only not heard yet.
        self._known_to_rendezvous: frozenset[str] = frozenset()

    def on_control(self, message: envelope_pb2.Control, now: int) -> None:
        """Take in a RENDEZVOUS_READY or an ANNOUNCE (other kinds are ignored)."""
        if message.kind == envelope_pb2.Control.RENDEZVOUS_READY:
            self.rendezvous_seen_ns = now
            self.rendezvous_lost = False
            self._known_to_rendezvous = frozenset(message.use_cases)
            if message.deadlines_ms != self.deadlines_ms:
                self.deadlines_ms = dict(message.deadlines_ms)
            if self._learn_first_windows(message):
                self.refresh(now)
        elif message.kind == envelope_pb2.Control.ANNOUNCE:
            self.models.saw(message.model, now)
            self._refresh_use_case(message.model.use_case, now)

    def _learn_first_windows(self, ready: envelope_pb2.Control) -> bool:
        """Keep the first windows the rendezvous sent; True if they changed."""
        default = tuple(ready.default_first_window.accept)
        first = {use_case: tuple(window.accept) for use_case, window in ready.first_windows.items()}
        if default == self.default_first_window and first == self.first_windows:
            return False
        self.default_first_window, self.first_windows = default, first
        return True

    def on_rendezvous_lost(self) -> None:
        """The connection to the rendezvous dropped: stop accepting until it answers again."""
        self.rendezvous_seen_ns = 0
        self.rendezvous_lost = True

    def refresh(self, now: int) -> None:
        for use_case in self.models.use_cases():
            self._refresh_use_case(use_case, now)

    def _refresh_use_case(self, use_case: str, now: int) -> None:
        live = [m for m in self.models.live(use_case, now) if m.role != "decoy"]
        accept = self.first_windows.get(use_case, self.default_first_window)
        if live:
            self._ready[use_case] = FeatureSchema.of(live, prefer=accept or ("champion",))
        else:
            self._ready.pop(use_case, None)
        if any(m.role in accept or m.name in accept for m in live):
            self._serving.add(use_case)
        else:
            self._serving.discard(use_case)

    def rendezvous_alive(self, now: int) -> bool:
        return now - self.rendezvous_seen_ns <= self.rendezvous_timeout_ns

    def serving(self, use_case: str, now: int) -> bool:
        """SERVING: the rendezvous answers and a model the use case's first window accepts is live."""
        return self.rendezvous_alive(now) and use_case in self._serving

    def any_serving(self, now: int) -> bool:
        """SERVING for the server as a whole: some use case is."""
        return self.rendezvous_alive(now) and bool(self._serving)

    def check(self, use_case: str) -> FeatureSchema:
        """The schema to validate a call against; raises Unavailable or UnknownUseCase when the use case
        takes no calls now (a use case that is not SERVING may still take them: see the module)."""
        now = time.time_ns()
        if not self.rendezvous_alive(now):
            raise Unavailable(self._rendezvous_problem(now))
        schema = self._ready.get(use_case)
        if schema is not None:
            return schema
        if not self.models.known(use_case):
            if use_case in self._known_to_rendezvous:  # a frontend that just started: its announces are on the way
                raise Unavailable(f"not ready for use case {use_case!r} yet: this frontend has not heard from its "
                                  "models since it started (within a heartbeat); retry")
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
