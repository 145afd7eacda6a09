"""Admission control: refuse at once what the deployment cannot answer within its SLA.

Past saturation a queue only grows, and every request in it ends late. Rather than
let it grow (inside rvz, or inside gRPC, which then cancels calls at random), the
frontend caps the calls it has waiting. The cap follows what the answers say:

- when more than a tenth of a tick's answers used over ``ALARM_SHARE`` of their
  budget (the time between the frontend receiving a request and its deadline), the
  cap drops to what Little's law says brings latency down to ``TARGET_SHARE`` of
  it: answers per second (smoothed over ticks, so a stall that holds answers back
  for a moment does not read as no throughput) times that share of the tick's
  median budget;
- while answers come back within budget, it opens up again by a quarter per
  tick, up to ``frontend.max_in_flight``: back to it within ~3 s of calm, so a
  past overload (or one slow disk sync) does not keep refusing a light load.

The gap between the two shares keeps the cap from flapping, and leaves the last
30% of the budget as margin for the deadline itself.

The excess is refused with RESOURCE_EXHAUSTED, which costs a fraction of serving
it and tells the client to back off. An idle or lightly loaded frontend never
refuses a burst: the cap only tightens once latency shows the queue.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

TICK_NS = 100_000_000
# An answer is slow when it took more than ALARM_SHARE of its budget; a tick is overloaded when more
# than SLOW_SHARE of its answers were slow. The cap then aims at TARGET_SHARE of the budget.
ALARM_SHARE = 0.7
SLOW_SHARE = 0.1
TARGET_SHARE = 0.5
MIN_LIMIT = 4
# Weight of the latest tick in the smoothed answer rate (a time constant of about three ticks).
RATE_WEIGHT = 0.3
# How fast the cap reopens per tick with no overload: +25% (at least 1).
GROWTH = 0.25


@dataclass
class Admission:
    max_in_flight: int
    limit: int = 0
    # Ticks in which the cap was tightened; exported as a metric.
    tightened: int = 0
    _tick_start_ns: int | None = None
    _answers: int = 0
    _slow: int = 0
    _rate: float | None = None  # answers per second, smoothed
    _budgets_ns: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.limit = self.limit or self.max_in_flight

    def admits(self, in_flight: int) -> bool:
        return in_flight < self.limit

    def on_answer(self, received_ns: int, answered_ns: int, deadline_ns: int) -> None:
        """Record a call that waited for an answer (OK or not), not one refused up front."""
        budget = deadline_ns - received_ns
        self._answers += 1
        if budget > 0:
            self._budgets_ns.append(budget)
            if answered_ns - received_ns > budget * ALARM_SHARE:
                self._slow += 1
        else:
            self._slow += 1
        self.tick(answered_ns)

    def tick(self, now_ns: int) -> None:
        """Adjust the cap once per TICK_NS from the answers of the tick that ended (on_answer calls it)."""
        if self._tick_start_ns is None:
            self._tick_start_ns = now_ns
        elapsed_ns = now_ns - self._tick_start_ns
        if elapsed_ns < TICK_NS:
            return
        self._tick_start_ns = now_ns
        answers, slow, budgets = self._answers, self._slow, self._budgets_ns
        self._answers, self._slow, self._budgets_ns = 0, 0, []
        tick_rate = answers / (elapsed_ns / 1e9)
        self._rate = tick_rate if self._rate is None else self._rate + RATE_WEIGHT * (tick_rate - self._rate)
        if answers and slow > answers * SLOW_SHARE and budgets:
            rate = self._rate
            target_s = statistics.median_low(budgets) * TARGET_SHARE / 1e9
            little = max(MIN_LIMIT, int(rate * target_s))
            if little < self.limit:
                self.limit = little
                self.tightened += 1
        elif self.limit < self.max_in_flight:
            self.limit = min(self.max_in_flight, self.limit + max(1, int(self.limit * GROWTH)))
