"""Matching scores to requests under a policy: the rendezvous's decisions, without sockets.

Everything here is driven by explicit ``now`` timestamps (Unix ns) so it can be
tested deterministically; ``rvz.rendezvous.loop`` feeds it from ZeroMQ and a clock,
and its outputs go to a ``Sink`` (``rvz.rendezvous.sink`` in the process).
Each pending request has at most one live timer (its next window boundary or its
end); timers live in one heap, and a timer that no longer matches its request's
``timer_ns`` is stale and skipped.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rvz.rendezvous.outcome import FIELD_VALUES, STATUS_CODES, Outcome
from rvz.rendezvous.policy import Policy
from rvz.wire.proto import envelope_pb2, scoring_pb2

# How long an answered request is remembered, to mark its later scores as late rather than orphans.
ANSWERED_MEMORY_NS = 120 * 1_000_000_000
# Scores held for requests not seen yet, unless told (limits.early_scores, limits.early_score_bytes).
MAX_EARLY = 10_000
MAX_EARLY_BYTES = 64 * 1024 * 1024


# Read once: looking a member up on an enum class is slow for a per-answer path.
ANSWERED, DEFAULT, TIMED_OUT, ALL_FAILED = Outcome.ANSWERED, Outcome.DEFAULT, Outcome.TIMED_OUT, Outcome.ALL_FAILED


class Sink(Protocol):
    """Where the matcher's outputs go (in the rendezvous: the logs, counters and the results stream)."""

    def log_score(self, score: envelope_pb2.ScoreEnvelope, raw: bytes, received_ns: int,
                  request_received_ns: int | None, *, late: bool, orphan: bool) -> None:
        """Every score, exactly once. ``raw``: the score as it arrived, or b"" if unknown or no longer
        matching it; ``request_received_ns``: when the frontend received its request (None: orphan)."""

    def answer(self, request: envelope_pb2.RequestEnvelope, result: envelope_pb2.ResultEnvelope) -> None:
        """Every decision, exactly once per request id; ``result.outcome`` is always set."""


@dataclass(eq=False)
class Pending:
    request: envelope_pb2.RequestEnvelope
    policy: Policy
    end_ns: int
    window: int = 0
    timer_ns: int = 0
    held: list[envelope_pb2.ScoreEnvelope] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    # Each score considered and when it came, for error messages (described only if one is needed).
    seen: list[tuple[envelope_pb2.ScoreEnvelope, int]] = field(default_factory=list)

    def elapsed_ms(self, now: int) -> float:
        return (now - self.request.received_unix_ns) / 1e6


class Matcher:
    def __init__(self, sink: Sink, policy_for: Callable[[str], Policy], early_score_ms: float,
                 live_models: Callable[[str], int], max_early: int = MAX_EARLY,
                 max_early_bytes: int = MAX_EARLY_BYTES) -> None:
        self.sink = sink
        self.policy_for = policy_for
        self.early_score_ns = int(early_score_ms * 1e6)
        # Number of live models (decoys excluded) that can score a use case.
        self.live_models = live_models
        self.pending: dict[str, Pending] = {}
        # Answered request id -> when the frontend received it (for late scores' latency), oldest first.
        self.answered: OrderedDict[str, int] = OrderedDict()
        # Scores that came before their request: (received, score, raw bytes, size), by request id; at most
        # max_early of them and max_early_bytes in all (limits.early_scores and early_score_bytes): past that
        # the oldest are dropped (and counted), so scores for requests that never come cannot fill memory.
        self.early: dict[str, list[tuple[int, envelope_pb2.ScoreEnvelope, bytes, int]]] = {}
        self._early_expiry: deque[tuple[int, str]] = deque()
        self.max_early, self.max_early_bytes = max_early, max_early_bytes
        self.early_held = 0
        self.early_bytes = 0
        self.early_evicted = 0
        self._timers: list[tuple[int, int, str]] = []
        self._tiebreak = itertools.count()

    # --- inputs -------------------------------------------------------------------------------

    def on_request(self, request: envelope_pb2.RequestEnvelope, now: int) -> None:
        rid = request.request_id
        if rid in self.pending or rid in self.answered:
            return  # a duplicate delivery; the first one counts
        policy = self.policy_for(request.use_case)
        # The frontend set the request's deadline from the SLA it knew; a newer policy may be stricter.
        end_ns = min(request.deadline_unix_ns, request.received_unix_ns + int(policy.deadline_ms * 1e6),
                     request.received_unix_ns + policy.schedule_end_ns)
        pending = Pending(request, policy, end_ns)
        self.pending[rid] = pending
        self._advance(pending, now, initial=True)
        for received_ns, score, raw, size in self.early.pop(rid, ()):
            self._released_early(size)
            late = rid not in self.pending
            self.sink.log_score(score, raw, received_ns, request.received_unix_ns, late=late, orphan=False)
            if not late:
                self._consider(pending, score, now, received_ns)

    def on_score(self, score: envelope_pb2.ScoreEnvelope, now: int, raw: bytes = b"") -> None:
        """A live score; ``raw`` is passed on to the sink (the score as it arrived, b"" if not known)."""
        rid = score.request_id
        pending = self.pending.get(rid)
        if pending is not None:
            # Judged as of when the score reached us, even if this loop gets to it late (see _arrival);
            # then brought up to now, where a later window or the deadline may have come meanwhile.
            at = _arrival(score, pending, now)
            self._advance(pending, at)
            late = rid not in self.pending
            self.sink.log_score(score, raw, now, pending.request.received_unix_ns, late=late, orphan=False)
            if not late:
                self._consider(pending, score, now, at)
            if rid in self.pending and at < now:
                self._advance(pending, now)
        elif rid in self.answered:
            self.sink.log_score(score, raw, now, self.answered[rid], late=True, orphan=False)
        else:
            # Scores can overtake their request (two different sockets): hold briefly.
            self._hold_early(score, raw, now)

    def on_time(self, now: int) -> None:
        """Fire due timers and give up on early scores whose request never came."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            fire_ns, _, rid = heapq.heappop(timers)
            pending = self.pending.get(rid)
            if pending is not None and pending.timer_ns == fire_ns:
                self._advance(pending, now)
        self._expire_early(now)
        self._forget_answered(now)

    def knows(self, request_id: str) -> bool:
        """Is the request pending or recently answered (so another delivery of it is ignored)?"""
        return request_id in self.pending or request_id in self.answered

    def next_timer_ns(self) -> int | None:
        timers = self._timers
        while timers:  # drop stale timers so the rendezvous does not wake up for nothing
            fire_ns, _, rid = timers[0]
            pending = self.pending.get(rid)
            if pending is not None and pending.timer_ns == fire_ns:
                return fire_ns
            heapq.heappop(timers)
        return None

    # --- decisions ----------------------------------------------------------------------------

    def _advance(self, pending: Pending, now: int, initial: bool = False) -> None:
        """Bring the request up to ``now``: open, in order, every window that has started since its last
        one (a held score the window accepts answers there, even when the rendezvous gets there late:
        a busy loop must not turn a score that came in time into a timeout), then time out at the end."""
        received = pending.request.received_unix_ns
        last_open = min(now, pending.end_ns - 1)
        window = pending.policy.window_at(last_open - received)
        window = max(pending.window, 0 if window is None else window)
        for opening in range(pending.window if initial else pending.window + 1, window + 1):
            pending.window = opening
            best = self._best_held(pending)
            if best is not None:
                self._choose(pending, best[1], best[0], now)
                return
        pending.window = window
        if now >= pending.end_ns:
            self._time_out(pending, now)
            return
        boundary = received + pending.policy.ends_ns[window]
        self._set_timer(pending, min(boundary, pending.end_ns))

    def _consider(self, pending: Pending, score: envelope_pb2.ScoreEnvelope, now: int, at: int) -> None:
        """Take a score in the request's current window; ``at``: when it came (for the messages)."""
        pending.seen.append((score, at))
        rank = pending.policy.rank(pending.window, score)
        if rank is not None:
            self._choose(pending, score, rank, now)
        elif not score.error:
            pending.held.append(score)
        else:
            pending.failed.add(score.model_name)
            if self._all_failed(pending):
                self._fail(pending, now)

    def _best_held(self, pending: Pending) -> tuple[int, envelope_pb2.ScoreEnvelope] | None:
        best: tuple[int, envelope_pb2.ScoreEnvelope] | None = None
        for score in pending.held:
            rank = pending.policy.rank(pending.window, score)
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, score)
        return best

    def _all_failed(self, pending: Pending) -> bool:
        # Every live model failed and no score is held for a later window: nothing can answer any more.
        return not pending.held and len(pending.failed) >= max(1, self.live_models(pending.request.use_case))

    def _choose(self, pending: Pending, score: envelope_pb2.ScoreEnvelope, rank: int, now: int) -> None:
        rule = pending.policy.rule(pending.window, rank)
        response = scoring_pb2.ScoreResponse(
            request_id=score.request_id, model_name=score.model_name, model_version=score.model_version,
            role=score.role, rule=rule, elapsed_ms=pending.elapsed_ms(now), use_case=pending.request.use_case)
        response.output.CopyFrom(score.output)
        result = self._result(pending, now, ANSWERED, rule)
        result.response = response.SerializeToString()
        result.model_name, result.model_version, result.role = score.model_name, score.model_version, score.role
        self._finish(pending, result, now)

    def _time_out(self, pending: Pending, now: int) -> None:
        policy = pending.policy
        if policy.on_timeout == "default":
            response = scoring_pb2.ScoreResponse(
                request_id=pending.request.request_id, role="default", is_default=True, rule="default",
                elapsed_ms=pending.elapsed_ms(now), use_case=pending.request.use_case)
            response.output.ParseFromString(policy.default_output)
            result = self._result(pending, now, DEFAULT, "default")
            result.response = response.SerializeToString()
            result.role = "default"
        else:
            result = self._result(pending, now, TIMED_OUT, "timeout", _timeout_message(pending))
        self._finish(pending, result, now)

    def _fail(self, pending: Pending, now: int) -> None:
        message = (f"every live model of use case {pending.request.use_case!r} failed on this request: "
                   + _heard(pending))
        self._finish(pending, self._result(pending, now, ALL_FAILED, "all failed", message), now)

    def _result(self, pending: Pending, now: int, outcome: Outcome, rule: str,
                message: str = "") -> envelope_pb2.ResultEnvelope:
        request = pending.request
        return envelope_pb2.ResultEnvelope(
            request_id=request.request_id, use_case=request.use_case, status_code=STATUS_CODES[outcome],
            status_message=message, rule=rule, elapsed_ms=pending.elapsed_ms(now), decided_unix_ns=now,
            received_unix_ns=request.received_unix_ns, deadline_unix_ns=request.deadline_unix_ns,
            policy_version=pending.policy.version, outcome=FIELD_VALUES[outcome])

    def _finish(self, pending: Pending, result: envelope_pb2.ResultEnvelope, now: int) -> None:
        rid = pending.request.request_id
        del self.pending[rid]
        self.answered[rid] = pending.request.received_unix_ns
        self.sink.answer(pending.request, result)

    # --- housekeeping -------------------------------------------------------------------------

    def _set_timer(self, pending: Pending, fire_ns: int) -> None:
        if pending.timer_ns != fire_ns:
            pending.timer_ns = fire_ns
            heapq.heappush(self._timers, (fire_ns, next(self._tiebreak), pending.request.request_id))

    def _hold_early(self, score: envelope_pb2.ScoreEnvelope, raw: bytes, now: int) -> None:
        size = len(raw) if raw else score.ByteSize()
        self.early.setdefault(score.request_id, []).append((now, score, raw, size))
        self._early_expiry.append((now + self.early_score_ns, score.request_id))
        self.early_held += 1
        self.early_bytes += size
        while (self.early_held > self.max_early or self.early_bytes > self.max_early_bytes) and self._early_expiry:
            _, oldest = self._early_expiry.popleft()
            for entry in self.early.pop(oldest, ()):
                self._released_early(entry[3])
                self.early_evicted += 1

    def _released_early(self, size: int) -> None:
        self.early_held -= 1
        self.early_bytes -= size

    def _expire_early(self, now: int) -> None:
        expiry = self._early_expiry
        while expiry and expiry[0][0] <= now:
            _, rid = expiry.popleft()
            held = self.early.pop(rid, [])
            # Each early score gets its full wait; only those past it become orphans.
            keep = [entry for entry in held if entry[0] + self.early_score_ns > now]
            for received_ns, score, raw, size in held:
                if received_ns + self.early_score_ns <= now:
                    self._released_early(size)
                    self.sink.log_score(score, raw, received_ns, None, late=False, orphan=True)
            if keep:
                self.early[rid] = keep

    def _forget_answered(self, now: int) -> None:
        answered = self.answered
        while answered:
            received = next(iter(answered.values()))
            if now - received < ANSWERED_MEMORY_NS:
                break
            answered.popitem(last=False)


def _describe(pending: Pending, score: envelope_pb2.ScoreEnvelope, now: int) -> str:
    who = f"{score.model_name} ({score.role})"
    if score.error:
        return f"{who} failed: {score.error_type}: {score.error}"
    return f"{who} scored at {pending.elapsed_ms(now):.1f} ms"


def _timeout_message(pending: Pending) -> str:
    policy = pending.policy
    request = pending.request
    budget_ms = min((request.deadline_unix_ns - request.received_unix_ns) / 1e6, policy.deadline_ms)
    if budget_ms <= policy.schedule_end_ms:
        why = f"no acceptable score within the deadline of {budget_ms:.0f} ms"
    else:
        why = f"no acceptable score before the schedule ended at {policy.schedule_end_ms:g} ms"
    return f"{why} (use case {request.use_case!r}: {_heard(pending) or 'no model answered'})"


def _heard(pending: Pending) -> str:
    return "; ".join(_describe(pending, score, at) for score, at in pending.seen)


def _arrival(score: envelope_pb2.ScoreEnvelope, pending: Pending, now: int) -> int:
    """When a score reached the rendezvous, as closely as the rendezvous can tell: no earlier than its
    model finished it (the worker sends it within a fraction of a millisecond) and no later than ``now``,
    when this loop took it off the socket. A loop busy past a deadline (a huge message, a stalled host)
    would otherwise judge a score that came at 7 ms as if it had come at the end."""
    finished = score.finished_unix_ns
    if not finished:
        return now
    return min(now, max(finished, pending.request.received_unix_ns))
