"""What the rendezvous counts, and the metrics read from those counts.

Plain integers, bumped by the parts of the rendezvous (all on its one thread) and read by the
observable instruments only when metrics are collected.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from opentelemetry.metrics import Meter

from rvz.rendezvous.outcome import LABELS, Outcome
from rvz.telemetry import metrics

SCORE_KEYS = ("use_case", "model", "role")
ANSWER_KEYS = ("use_case", "model", "rule", "outcome")


@dataclass
class Counters:
    requests: int = 0
    scores: int = 0
    late: int = 0
    orphans: int = 0
    # Answered by a model other than the champion.
    fallbacks: int = 0
    undeliverable: int = 0
    malformed: int = 0
    # Records the scores and results logs could not take (a full or failing disk).
    unlogged_scores: int = 0
    unlogged_results: int = 0
    # Requests never received: this rendezvous's queue on the requests stream was full.
    missed_requests: int = 0
    # Messages an authenticated peer was not allowed to send (another model's score, a frontend's routing id).
    refused: int = 0
    # Decisions by outcome value (see outcome.LABELS; index 0 is never counted).
    decisions: list[int] = field(default_factory=lambda: [0] * len(LABELS))
    # Keyed by SCORE_KEYS and ANSWER_KEYS (the outcome as its label) for the metrics.
    scores_by: Counter[tuple[str, ...]] = field(default_factory=Counter)
    late_by: Counter[tuple[str, ...]] = field(default_factory=Counter)
    errors_by: Counter[tuple[str, ...]] = field(default_factory=Counter)
    answers_by: Counter[tuple[str, ...]] = field(default_factory=Counter)

    def of(self, outcome: Outcome) -> int:
        """Decisions that ended with ``outcome``."""
        return self.decisions[outcome]

    @property
    def answered(self) -> int:
        """Every decision, whatever its outcome: each request gets exactly one."""
        return sum(self.decisions)

    @property
    def deadline_misses(self) -> int:
        """Decisions with no acceptable score by the deadline (a default output or DEADLINE_EXCEEDED)."""
        return sum(self.decisions[o] for o in Outcome if o.missed_deadline)

    def summary(self) -> str:
        """One line for the log: the totals, decisions by outcome."""
        outcomes = ", ".join(f"{o.label} {self.decisions[o]}" for o in Outcome)
        return (f"{self.requests} requests, {self.scores} scores ({self.late} late, {self.orphans} orphans), "
                f"decisions: {outcomes} ({self.fallbacks} fallbacks); {self.undeliverable} undeliverable, "
                f"{self.malformed} malformed, {self.refused} refused; {self.missed_requests} requests missed, "
                f"{self.unlogged_scores} scores and {self.unlogged_results} results not logged")


def observe(meter: Meter, c: Counters) -> None:
    """Register the counters' instruments (read at collection time); call once per meter."""
    metrics.count_by(meter, "rvz.rendezvous.scores", "Scores received", c.scores_by, SCORE_KEYS)
    metrics.count_by(meter, "rvz.rendezvous.late_scores", "Scores received after the answer", c.late_by,
                     SCORE_KEYS)
    metrics.count_by(meter, "rvz.rendezvous.model_errors", "Error scores", c.errors_by, SCORE_KEYS)
    metrics.count_by(meter, "rvz.rendezvous.answers", "Decisions by model, rule and outcome", c.answers_by,
                     ANSWER_KEYS)
    for name, description, read in [
        ("rvz.rendezvous.requests", "Requests seen on the input stream", lambda: c.requests),
        ("rvz.rendezvous.fallbacks", "Answers not given by a champion", lambda: c.fallbacks),
        ("rvz.rendezvous.deadline_misses", "Requests with no acceptable score by the deadline",
         lambda: c.deadline_misses),
        ("rvz.rendezvous.defaults", "Default outputs served", lambda: c.of(Outcome.DEFAULT)),
        ("rvz.rendezvous.all_failed", "Requests on which every live model failed",
         lambda: c.of(Outcome.ALL_FAILED)),
        ("rvz.rendezvous.orphan_scores", "Scores whose request never arrived", lambda: c.orphans),
        ("rvz.rendezvous.undeliverable", "Answers (and Admin replies) a frontend could not take: it was gone "
         "or not reading", lambda: c.undeliverable),
        ("rvz.rendezvous.malformed", "Messages that could not be decoded", lambda: c.malformed),
        ("rvz.rendezvous.unlogged_scores", "Scores the scores log could not take (disk full or failing)",
         lambda: c.unlogged_scores),
        ("rvz.rendezvous.unlogged_results", "Decisions the results log could not take (disk full or failing); "
         "their answers were still sent", lambda: c.unlogged_results),
        ("rvz.rendezvous.missed_requests", "Requests the rendezvous never received (its queue on the requests "
         "stream was full); their callers got UNAVAILABLE at the deadline", lambda: c.missed_requests),
        ("rvz.rendezvous.refused", "Messages refused because their key may not send them (a score or announce "
         "for another model, an Admin call through another frontend's routing id)", lambda: c.refused),
    ]:
        metrics.count(meter, name, description, read)
