"""How a decision ended: one typed value for the matcher, the counters, the metrics and the report.

The matcher sets it in every ResultEnvelope it makes (``outcome``, field 15); readers of the results
log go through ``outcome_of``, the one place that derives it for results logged before the field
existed. This module imports neither grpc nor the rendezvous's other parts, so the report can use it.
"""

from __future__ import annotations

import enum

from rvz.wire.proto import envelope_pb2

_R = envelope_pb2.ResultEnvelope

# gRPC status code values (grpc.StatusCode.X.value[0]), spelled out so that readers need not import grpc.
OK = 0
DEADLINE_EXCEEDED = 4
INTERNAL = 13


class Outcome(enum.IntEnum):
    """How a request was decided; the values are those of ``ResultEnvelope.Outcome``."""

    ANSWERED = _R.ANSWERED  # a model's score, accepted by a window of the schedule (the result's rule)
    DEFAULT = _R.DEFAULT  # no acceptable score by the deadline: the policy's default output
    TIMED_OUT = _R.TIMED_OUT  # no acceptable score by the deadline: DEADLINE_EXCEEDED
    ALL_FAILED = _R.ALL_FAILED  # every live model failed on the request

    @property
    def label(self) -> str:
        """Its name in the report (JSON keys, tables) and in metric attributes."""
        return LABELS[self]

    @property
    def status_code(self) -> int:
        """The gRPC status code value the caller gets."""
        return STATUS_CODES[self]

    @property
    def missed_deadline(self) -> bool:
        """No acceptable score came in time (whether or not a default output was served)."""
        return self in (Outcome.DEFAULT, Outcome.TIMED_OUT)


# Indexed by an outcome's value (0 is OUTCOME_UNSPECIFIED): tuples, because hashing an enum member runs
# Python code and the matcher looks these up for every answer.
LABELS = ("", "answered", "default", "timeout", "failed")
STATUS_CODES = (-1, OK, OK, DEADLINE_EXCEEDED, INTERNAL)
# The same values typed as the generated code wants them for ResultEnvelope.outcome.
FIELD_VALUES = (_R.OUTCOME_UNSPECIFIED, _R.ANSWERED, _R.DEFAULT, _R.TIMED_OUT, _R.ALL_FAILED)
# Outcome by field value; 0 (unset) and values this version does not know are derived instead.
_BY_VALUE = {int(outcome): outcome for outcome in Outcome}


def outcome_of(result: envelope_pb2.ResultEnvelope) -> Outcome:
    """The result's outcome: its ``outcome`` field, or, for results logged before that field existed
    (or with a value this version does not know), one derived from its status code and rule."""
    known = _BY_VALUE.get(result.outcome)
    return known if known is not None else derived_outcome(result.status_code, result.rule)


def derived_outcome(status_code: int, rule: str) -> Outcome:
    """The outcome older rendezvous versions expressed through the status code and the rule alone."""
    if status_code == OK:
        return Outcome.DEFAULT if rule == "default" else Outcome.ANSWERED
    return Outcome.TIMED_OUT if status_code == DEADLINE_EXCEEDED else Outcome.ALL_FAILED
