"""A decision's outcome (rvz.rendezvous.outcome): set by the matcher, read back from old and new results."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from rvz.log.writer import LogWriter
from rvz.rendezvous.outcome import Outcome, derived_outcome, outcome_of
from rvz.report.data import Filter, load
from rvz.report.history import PolicyHistory
from rvz.wire.proto import envelope_pb2

pytestmark = pytest.mark.timeout(30)

OK = grpc.StatusCode.OK.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]

# (status code, rule) as rendezvous versions before the outcome field logged each kind of decision.
OLD_RESULTS = [
    (OK, "window 1 (0-30 ms): champion", Outcome.ANSWERED),
    (OK, "window 2 (30-100 ms): challenger", Outcome.ANSWERED),
    (OK, "default", Outcome.DEFAULT),
    (DEADLINE_EXCEEDED, "timeout", Outcome.TIMED_OUT),
    (INTERNAL, "all failed", Outcome.ALL_FAILED),
]


def old_result(status_code: int, rule: str, rid: str = "r1") -> envelope_pb2.ResultEnvelope:
    """A result as an older rendezvous encoded it: no field 15 on the wire."""
    payload = envelope_pb2.ResultEnvelope(request_id=rid, use_case="iris", status_code=status_code,
                                          rule=rule, role="default" if rule == "default" else "").SerializeToString()
    assert b"\x78" not in payload  # field 15, varint: absent
    return envelope_pb2.ResultEnvelope.FromString(payload)


@pytest.mark.parametrize(("status_code", "rule", "expected"), OLD_RESULTS)
def test_results_logged_before_the_field_get_it_derived_from_status_and_rule(status_code: int, rule: str,
                                                                             expected: Outcome) -> None:
    assert outcome_of(old_result(status_code, rule)) is expected
    assert derived_outcome(status_code, rule) is expected


def test_the_field_wins_over_status_and_rule() -> None:
    result = envelope_pb2.ResultEnvelope(status_code=OK, rule="default", outcome=Outcome.ANSWERED.value)
    assert outcome_of(result) is Outcome.ANSWERED


def test_a_value_this_version_does_not_know_is_derived() -> None:
    result = envelope_pb2.ResultEnvelope.FromString(
        envelope_pb2.ResultEnvelope(status_code=DEADLINE_EXCEEDED, rule="timeout").SerializeToString() + b"\x78\x09")
    assert result.outcome == 9
    assert outcome_of(result) is Outcome.TIMED_OUT


def test_outcomes_match_the_wire_enum_and_the_grpc_status() -> None:
    wire = envelope_pb2.ResultEnvelope.Outcome
    assert {o.name: int(o) for o in Outcome} == {name: value for name, value in wire.items()
                                                 if name != "OUTCOME_UNSPECIFIED"}
    assert {o: o.status_code for o in Outcome} == {
        Outcome.ANSWERED: OK, Outcome.DEFAULT: OK, Outcome.TIMED_OUT: DEADLINE_EXCEEDED,
        Outcome.ALL_FAILED: INTERNAL}
    assert [o for o in Outcome if o.missed_deadline] == [Outcome.DEFAULT, Outcome.TIMED_OUT]


def test_the_report_counts_old_and_new_results_alike(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "results", "rvz.v1.ResultEnvelope", fsync=False) as log:
        for i, (status_code, rule, outcome) in enumerate(OLD_RESULTS):
            log.append(old_result(status_code, rule, f"old-{i}").SerializeToString())
            new = old_result(status_code, rule, f"new-{i}")
            new.outcome = outcome.value
            log.append(new.SerializeToString())
    data = load(tmp_path, PolicyHistory(()), Filter())
    assert data.outcomes == {"iris": {Outcome.ANSWERED: 4, Outcome.DEFAULT: 2, Outcome.TIMED_OUT: 2,
                                      Outcome.ALL_FAILED: 2}}
