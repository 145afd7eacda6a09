"""The rendezvous's decisions (rvz.matcher with rvz.policy), driven by explicit clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from rvz.config import OnTimeout, RendezvousConfig, Window
from rvz.rendezvous.matcher import Matcher
from rvz.rendezvous.policy import Policy
from rvz.wire.codec import python_to_value, value_to_python
from rvz.wire.proto import envelope_pb2, scoring_pb2

pytestmark = pytest.mark.timeout(30)

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
USE_CASE = "fraud"
OK = grpc.StatusCode.OK.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]

# The default schedule, spelled out: champion only until 30 ms, then anyone until 100 ms.
SCHEDULE = (Window(30.0, ("champion",)), Window(100.0, ("champion", "challenger", "canary")))


@dataclass
class Logged:
    model_name: str
    received_ns: int
    late: bool
    orphan: bool


@dataclass
class RecordingSink:
    logged: list[Logged] = field(default_factory=list)
    answers: list[tuple[envelope_pb2.RequestEnvelope, envelope_pb2.ResultEnvelope]] = field(default_factory=list)

    def log_score(self, score: envelope_pb2.ScoreEnvelope, raw: bytes, received_ns: int,
                  request_received_ns: int | None, *, late: bool, orphan: bool) -> None:
        self.logged.append(Logged(score.model_name, received_ns, late, orphan))

    def answer(self, request: envelope_pb2.RequestEnvelope, result: envelope_pb2.ResultEnvelope) -> None:
        assert result.request_id == request.request_id
        self.answers.append((request, result))

    @property
    def results(self) -> list[envelope_pb2.ResultEnvelope]:
        return [result for _, result in self.answers]

    def only_result(self) -> envelope_pb2.ResultEnvelope:
        assert len(self.answers) == 1, self.answers
        return self.answers[0][1]


def make_matcher(*, schedule: tuple[Window, ...] = SCHEDULE, on_timeout: OnTimeout = "error",
                 default_output: Any = None, live: int = 3, early_score_ms: float = 1000.0,
                 ) -> tuple[Matcher, RecordingSink]:
    config = RendezvousConfig(deadline_ms=100.0, on_timeout=on_timeout, default_output=default_output,
                              schedule=schedule, early_score_ms=early_score_ms)
    policy = Policy.from_config(config)
    sink = RecordingSink()
    live_counts = {USE_CASE: live}
    return Matcher(sink, lambda use_case: policy, early_score_ms, live_counts.__getitem__), sink


def request(rid: str = "r1", *, at: int = T0, budget_ms: float = 100.0) -> envelope_pb2.RequestEnvelope:
    return envelope_pb2.RequestEnvelope(request_id=rid, use_case=USE_CASE, received_unix_ns=at,
                                        deadline_unix_ns=at + int(budget_ms * MS))


def score(rid: str = "r1", model: str = "gbm", role: str = "champion", output: Any = None,
          error: str = "", error_type: str = "") -> envelope_pb2.ScoreEnvelope:
    envelope = envelope_pb2.ScoreEnvelope(request_id=rid, use_case=USE_CASE, model_name=model, model_version="7",
                                          role=role, error=error, error_type=error_type)
    if not error:
        python_to_value({"model": model} if output is None else output, envelope.output)
    return envelope


def champion(rid: str = "r1") -> envelope_pb2.ScoreEnvelope:
    return score(rid, "gbm", "champion")


def challenger(rid: str = "r1") -> envelope_pb2.ScoreEnvelope:
    return score(rid, "logreg", "challenger")


def canary(rid: str = "r1") -> envelope_pb2.ScoreEnvelope:
    return score(rid, "rules", "canary")


def response_of(result: envelope_pb2.ResultEnvelope) -> scoring_pb2.ScoreResponse:
    return scoring_pb2.ScoreResponse.FromString(result.response)


def run_timers(matcher: Matcher, until: int) -> None:
    """Wake exactly when the matcher asks to, as the rendezvous loop does."""
    while (next_ns := matcher.next_timer_ns()) is not None and next_ns <= until:
        matcher.on_time(next_ns)
    matcher.on_time(until)


# --- answering within the schedule ---------------------------------------------------------------


def test_champion_in_window_1_answers_at_once() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0 + 1 * MS)
    matcher.on_score(score(output={"label": "fraud", "p": 0.25}), T0 + 5 * MS)

    result = sink.only_result()
    assert result.status_code == OK
    assert result.status_message == ""
    assert result.rule == "window 1 (0-30 ms): champion"
    assert (result.model_name, result.model_version, result.role) == ("gbm", "7", "champion")
    assert result.elapsed_ms == 5.0
    assert (result.received_unix_ns, result.decided_unix_ns, result.deadline_unix_ns) == (
        T0, T0 + 5 * MS, T0 + 100 * MS)
    response = response_of(result)
    assert (response.request_id, response.use_case) == ("r1", USE_CASE)
    assert (response.model_name, response.model_version, response.role) == ("gbm", "7", "champion")
    assert response.rule == "window 1 (0-30 ms): champion"
    assert response.elapsed_ms == 5.0
    assert response.is_default is False
    assert value_to_python(response.output) == {"label": "fraud", "p": 0.25}
    assert sink.logged == [Logged("gbm", T0 + 5 * MS, late=False, orphan=False)]
    assert matcher.pending == {}


def test_challenger_in_window_1_is_held_until_the_boundary() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    matcher.on_score(challenger(), T0 + 10 * MS)
    assert sink.answers == []
    assert matcher.next_timer_ns() == T0 + 30 * MS

    matcher.on_time(T0 + 30 * MS - 1)
    assert sink.answers == []

    matcher.on_time(T0 + 30 * MS)
    result = sink.only_result()
    assert result.status_code == OK
    assert result.rule == "window 2 (30-100 ms): challenger"
    assert (result.model_name, result.role) == ("logreg", "challenger")
    assert result.elapsed_ms == 30.0
    assert result.decided_unix_ns == T0 + 30 * MS
    response = response_of(result)
    assert response.elapsed_ms == SCHEDULE[0].until_ms
    assert value_to_python(response.output) == {"model": "logreg"}


def test_challenger_arriving_in_window_2_answers_at_once() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    matcher.on_time(T0 + 30 * MS)
    matcher.on_score(challenger(), T0 + 42 * MS)
    result = sink.only_result()
    assert result.rule == "window 2 (30-100 ms): challenger"
    assert result.elapsed_ms == 42.0


def test_champion_arriving_after_a_held_challenger_still_wins_window_1() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    matcher.on_score(challenger(), T0 + 2 * MS)
    matcher.on_score(champion(), T0 + 20 * MS)
    result = sink.only_result()
    assert (result.model_name, result.rule, result.elapsed_ms) == ("gbm", "window 1 (0-30 ms): champion", 20.0)
    matcher.on_time(T0 + 30 * MS)
    assert len(sink.answers) == 1


@pytest.mark.parametrize(("accept", "winner"), [
    (("champion", "challenger", "canary"), "logreg"),
    (("champion", "canary", "challenger"), "rules"),
])
def test_held_scores_are_ranked_by_the_new_windows_accept_list(accept: tuple[str, ...], winner: str) -> None:
    matcher, sink = make_matcher(schedule=(Window(30.0, ("champion",)), Window(100.0, accept)))
    matcher.on_request(request(), T0)
    matcher.on_score(canary(), T0 + 3 * MS)  # the canary arrives first
    matcher.on_score(challenger(), T0 + 8 * MS)
    matcher.on_time(T0 + 30 * MS)
    result = sink.only_result()
    assert result.model_name == winner
    assert result.rule == f"window 2 (30-100 ms): {result.role}"


def test_held_scores_of_equal_rank_go_by_arrival() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    matcher.on_score(score(model="rules-b", role="canary"), T0 + 3 * MS)
    matcher.on_score(score(model="rules-a", role="canary"), T0 + 4 * MS)
    matcher.on_time(T0 + 30 * MS)
    assert sink.only_result().model_name == "rules-b"


def test_accept_lists_may_name_models() -> None:
    schedule = (Window(10.0, ("logreg",)), Window(50.0, ("rules-v2", "champion")))
    matcher, sink = make_matcher(schedule=schedule)
    matcher.on_request(request("named"), T0)
    matcher.on_score(challenger("named"), T0 + 4 * MS)
    assert sink.only_result().rule == "window 1 (0-10 ms): logreg"

    matcher.on_request(request("ranked", at=T0 + 100 * MS), T0 + 100 * MS)
    matcher.on_score(champion("ranked"), T0 + 101 * MS)
    matcher.on_score(score("ranked", "rules-v2", "canary"), T0 + 102 * MS)
    matcher.on_time(T0 + 110 * MS)
    second = sink.results[1]
    assert (second.model_name, second.rule) == ("rules-v2", "window 2 (10-50 ms): rules-v2")


# --- errors and timeouts -------------------------------------------------------------------------


def test_error_scores_are_never_chosen() -> None:
    matcher, sink = make_matcher(live=3)
    matcher.on_request(request(), T0)
    matcher.on_score(score(model="gbm", role="champion", error="boom", error_type="ValueError"), T0 + 2 * MS)
    matcher.on_score(challenger(), T0 + 6 * MS)
    assert sink.answers == []
    matcher.on_time(T0 + 30 * MS)
    result = sink.only_result()
    assert (result.status_code, result.model_name) == (OK, "logreg")
    assert [entry.model_name for entry in sink.logged] == ["gbm", "logreg"]


def test_every_live_model_failing_ends_the_request_at_once() -> None:
    matcher, sink = make_matcher(live=2)
    matcher.on_request(request(), T0)
    matcher.on_score(score(model="gbm", role="champion", error="boom", error_type="ValueError"), T0 + 2 * MS)
    assert sink.answers == []
    matcher.on_score(score(model="logreg", role="challenger", error="'petal'", error_type="KeyError"),
                     T0 + 7 * MS)
    result = sink.only_result()
    assert result.status_code == INTERNAL
    assert result.rule == "all failed"
    assert result.status_message == (
        "every live model of use case 'fraud' failed on this request: "
        "gbm (champion) failed: ValueError: boom; logreg (challenger) failed: KeyError: 'petal'")
    assert (result.elapsed_ms, result.decided_unix_ns) == (7.0, T0 + 7 * MS)
    assert result.response == b""
    assert result.model_name == ""
    assert matcher.pending == {}


def test_a_failure_does_not_end_the_request_while_a_held_score_can_answer() -> None:
    matcher, sink = make_matcher(live=2)
    matcher.on_request(request(), T0)
    matcher.on_score(challenger(), T0 + 1 * MS)
    matcher.on_score(score(model="gbm", role="champion", error="boom", error_type="ValueError"), T0 + 2 * MS)
    assert sink.answers == []
    matcher.on_time(T0 + 30 * MS)
    assert (sink.only_result().status_code, sink.only_result().model_name) == (OK, "logreg")


def test_client_deadline_shorter_than_the_schedule() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(budget_ms=20.0), T0)
    matcher.on_score(challenger(), T0 + 10 * MS)
    assert matcher.next_timer_ns() == T0 + 20 * MS

    matcher.on_time(T0 + 20 * MS - 1)
    assert sink.answers == []
    matcher.on_time(T0 + 20 * MS)
    result = sink.only_result()
    assert result.status_code == DEADLINE_EXCEEDED
    assert result.rule == "timeout"
    assert result.status_message == ("no acceptable score within the deadline of 20 ms "
                                     "(use case 'fraud': logreg (challenger) scored at 10.0 ms)")
    assert (result.elapsed_ms, result.decided_unix_ns) == (20.0, T0 + 20 * MS)
    assert result.response == b""


def test_schedule_ending_before_the_deadline_times_out_at_its_end() -> None:
    schedule = (Window(30.0, ("champion",)), Window(60.0, ("champion", "challenger")))
    matcher, sink = make_matcher(schedule=schedule)
    matcher.on_request(request(budget_ms=500.0), T0)
    matcher.on_score(canary(), T0 + 5 * MS)  # acceptable in no window
    matcher.on_time(T0 + 30 * MS)
    assert sink.answers == []
    assert matcher.next_timer_ns() == T0 + 60 * MS
    matcher.on_time(T0 + 60 * MS)
    result = sink.only_result()
    assert result.status_code == DEADLINE_EXCEEDED
    assert result.status_message == ("no acceptable score before the schedule ended at 60 ms "
                                     "(use case 'fraud': rules (canary) scored at 5.0 ms)")
    assert result.elapsed_ms == 60.0


def test_timeout_with_no_score_says_no_model_answered() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    run_timers(matcher, T0 + 100 * MS)
    assert sink.only_result().status_message == (
        "no acceptable score within the deadline of 100 ms (use case 'fraud': no model answered)")


def test_default_output_answers_a_timeout() -> None:
    default = {"label": "unknown", "probabilities": [0.5, 0.5]}
    matcher, sink = make_matcher(on_timeout="default", default_output=default)
    matcher.on_request(request(budget_ms=50.0), T0)
    run_timers(matcher, T0 + 50 * MS)
    result = sink.only_result()
    assert result.status_code == OK
    assert (result.rule, result.role, result.model_name) == ("default", "default", "")
    assert result.elapsed_ms == 50.0
    response = response_of(result)
    assert response.is_default is True
    assert (response.role, response.rule, response.model_name) == ("default", "default", "")
    assert (response.request_id, response.use_case, response.elapsed_ms) == ("r1", USE_CASE, 50.0)
    assert value_to_python(response.output) == default


def test_a_request_past_its_deadline_on_arrival_times_out_at_once() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(budget_ms=10.0), T0 + 15 * MS)
    result = sink.only_result()
    assert result.status_code == DEADLINE_EXCEEDED
    assert (result.elapsed_ms, result.decided_unix_ns) == (15.0, T0 + 15 * MS)
    assert result.status_message == ("no acceptable score within the deadline of 10 ms "
                                     "(use case 'fraud': no model answered)")
    assert matcher.pending == {}


# --- early, late and duplicate messages ----------------------------------------------------------


def test_an_early_score_is_used_when_its_request_arrives() -> None:
    matcher, sink = make_matcher()
    matcher.on_score(champion(), T0 + 1 * MS)
    assert sink.logged == []
    assert sink.answers == []

    matcher.on_request(request(), T0 + 2 * MS)
    assert sink.logged == [Logged("gbm", T0 + 1 * MS, late=False, orphan=False)]
    result = sink.only_result()
    assert (result.model_name, result.rule) == ("gbm", "window 1 (0-30 ms): champion")
    assert (result.elapsed_ms, result.decided_unix_ns) == (2.0, T0 + 2 * MS)
    matcher.on_time(T0 + 2000 * MS)  # past early_score_ms: nothing is logged twice
    assert len(sink.logged) == 1


def test_an_early_challenger_is_held_like_any_other() -> None:
    matcher, sink = make_matcher()
    matcher.on_score(challenger(), T0)
    matcher.on_request(request(), T0 + 1 * MS)
    assert sink.answers == []
    matcher.on_time(T0 + 30 * MS)
    assert sink.only_result().rule == "window 2 (30-100 ms): challenger"


def test_an_early_score_whose_request_never_comes_is_an_orphan() -> None:
    matcher, sink = make_matcher(early_score_ms=50.0)
    matcher.on_score(champion("ghost"), T0)
    matcher.on_time(T0 + 50 * MS - 1)
    assert sink.logged == []
    matcher.on_time(T0 + 50 * MS)
    assert sink.logged == [Logged("gbm", T0, late=False, orphan=True)]
    assert matcher.early == {}
    assert sink.answers == []


def test_scores_after_the_answer_are_late() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    matcher.on_score(champion(), T0 + 5 * MS)
    matcher.on_score(challenger(), T0 + 40 * MS)
    matcher.on_score(score(model="gbm", role="champion", error="boom"), T0 + 41 * MS)
    assert sink.logged == [
        Logged("gbm", T0 + 5 * MS, late=False, orphan=False),
        Logged("logreg", T0 + 40 * MS, late=True, orphan=False),
        Logged("gbm", T0 + 41 * MS, late=True, orphan=False),
    ]
    assert len(sink.answers) == 1


def test_scores_after_a_timeout_are_late() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(budget_ms=20.0), T0)
    run_timers(matcher, T0 + 20 * MS)
    matcher.on_score(champion(), T0 + 25 * MS)
    assert sink.logged == [Logged("gbm", T0 + 25 * MS, late=True, orphan=False)]
    assert sink.only_result().status_code == DEADLINE_EXCEEDED


def test_a_score_arriving_after_the_deadline_before_on_time_is_late() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(budget_ms=20.0), T0)
    matcher.on_score(champion(), T0 + 21 * MS)  # the rendezvous drains scores before firing timers
    assert sink.only_result().status_code == DEADLINE_EXCEEDED
    assert sink.logged == [Logged("gbm", T0 + 21 * MS, late=True, orphan=False)]


def test_a_duplicate_request_is_ignored() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0)
    matcher.on_request(request(), T0 + 1 * MS)
    assert list(matcher.pending) == ["r1"]
    matcher.on_score(champion(), T0 + 5 * MS)
    matcher.on_request(request(), T0 + 6 * MS)  # after the answer too
    run_timers(matcher, T0 + 200 * MS)
    result = sink.only_result()
    assert (result.model_name, result.elapsed_ms) == ("gbm", 5.0)
    assert matcher.pending == {}


# --- timers --------------------------------------------------------------------------------------


def test_next_timer_follows_the_pending_boundary() -> None:
    matcher, sink = make_matcher()
    assert matcher.next_timer_ns() is None
    matcher.on_request(request(budget_ms=80.0), T0)
    assert matcher.next_timer_ns() == T0 + 30 * MS
    matcher.on_time(T0 + 30 * MS)
    assert matcher.next_timer_ns() == T0 + 80 * MS  # the deadline comes before the schedule's end
    matcher.on_time(T0 + 80 * MS)
    assert matcher.next_timer_ns() is None
    assert sink.only_result().status_code == DEADLINE_EXCEEDED


def test_next_timer_is_the_earliest_over_all_requests() -> None:
    matcher, _ = make_matcher()
    matcher.on_request(request("late", at=T0 + 10 * MS), T0 + 10 * MS)
    matcher.on_request(request("early", at=T0), T0 + 10 * MS)
    assert matcher.next_timer_ns() == T0 + 30 * MS
    matcher.on_time(T0 + 30 * MS)
    assert matcher.next_timer_ns() == T0 + 40 * MS


def test_a_boundary_that_is_not_a_whole_number_of_ns_still_fires() -> None:
    matcher, sink = make_matcher(schedule=(Window(8.2, ("champion",)), Window(100.0, ("champion", "challenger"))))
    matcher.on_request(request(), T0)
    matcher.on_score(challenger(), T0 + 1 * MS)
    run_timers(matcher, T0 + 200 * MS)
    assert len(sink.answers) == 1
    assert sink.only_result().rule == "window 2 (8.2-100 ms): challenger"
    assert matcher.pending == {}


def test_many_interleaved_requests_are_each_answered_once() -> None:
    matcher, sink = make_matcher()
    events: list[tuple[int, int, str, envelope_pb2.RequestEnvelope | envelope_pb2.ScoreEnvelope]] = []
    expected: dict[str, tuple[int, str, int]] = {}  # request id -> (status, model, decided at)
    for i in range(60):
        rid, at = f"r{i:02d}", T0 + i * MS
        events.append((at, 0, rid, request(rid, at=at)))
        if i % 3 == 0:
            events.append((at + 5 * MS, 1, rid, champion(rid)))
            events.append((at + 7 * MS, 1, rid, challenger(rid)))  # held, then late
            expected[rid] = (OK, "gbm", at + 5 * MS)
        elif i % 3 == 1:
            events.append((at + 12 * MS, 1, rid, challenger(rid)))
            expected[rid] = (OK, "logreg", at + 30 * MS)
        else:
            expected[rid] = (DEADLINE_EXCEEDED, "", at + 100 * MS)
    for at, kind, _, message in sorted(events, key=lambda e: e[:3]):
        run_timers(matcher, at)
        if kind == 0:
            assert isinstance(message, envelope_pb2.RequestEnvelope)
            matcher.on_request(message, at)
        else:
            assert isinstance(message, envelope_pb2.ScoreEnvelope)
            matcher.on_score(message, at)
    run_timers(matcher, T0 + 1000 * MS)

    answered = {r.request_id: (r.status_code, r.model_name, r.decided_unix_ns) for r in sink.results}
    assert len(sink.answers) == len(answered) == 60
    assert answered == expected
    assert matcher.pending == {}
    assert sum(entry.late for entry in sink.logged) == 20


# --- a rendezvous that gets to things late -------------------------------------------------------


def finished_at(envelope: envelope_pb2.ScoreEnvelope, at_ms: float) -> envelope_pb2.ScoreEnvelope:
    envelope.finished_unix_ns = T0 + int(at_ms * MS)
    return envelope


def test_a_score_that_came_in_time_answers_though_the_loop_takes_it_after_the_deadline() -> None:
    # Measured before: a champion's 10 MB outputs kept the rendezvous busy past a deadline, and the challenger's
    # score that had arrived at 7 ms was then dropped: DEADLINE_EXCEEDED although an acceptable answer was in time.
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0 + 1 * MS)
    matcher.on_score(finished_at(challenger(), 7), T0 + 120 * MS)  # taken off the socket 20 ms past the deadline
    result = sink.only_result()
    assert (result.status_code, result.model_name) == (OK, "logreg")
    assert result.rule == "window 2 (30-100 ms): challenger"  # held in window 1, answered when window 2 opened
    assert result.elapsed_ms == pytest.approx(120.0)  # the decision itself was late, and says so


def test_a_held_score_answers_at_its_window_though_the_timer_fires_after_the_deadline() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0 + 1 * MS)
    matcher.on_score(finished_at(challenger(), 7), T0 + 7 * MS)  # held: window 1 takes only the champion
    assert sink.answers == []
    matcher.on_time(T0 + 150 * MS)  # the loop was busy until well after the 30 ms boundary and the deadline
    result = sink.only_result()
    assert (result.status_code, result.model_name, result.rule) == (OK, "logreg", "window 2 (30-100 ms): challenger")


def test_a_score_finished_after_the_deadline_is_late_however_it_is_read() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0 + 1 * MS)
    matcher.on_score(finished_at(champion(), 130), T0 + 140 * MS)
    assert sink.only_result().status_code == DEADLINE_EXCEEDED
    assert [(entry.model_name, entry.late) for entry in sink.logged] == [("gbm", True)]


def test_a_champion_read_late_still_answers_in_the_window_it_came_in() -> None:
    matcher, sink = make_matcher()
    matcher.on_request(request(), T0 + 1 * MS)
    matcher.on_score(finished_at(champion(), 10), T0 + 60 * MS)
    assert sink.only_result().rule == "window 1 (0-30 ms): champion"


# --- scores for requests that never come -------------------------------------------------------------


def test_scores_held_for_unseen_requests_are_bounded_by_count_and_bytes() -> None:
    # Measured before: 50,000 orphan scores in 0.56 s took the rendezvous from 60 to 158 MB.
    config = RendezvousConfig(deadline_ms=100.0, schedule=SCHEDULE)
    sink = RecordingSink()
    policy = Policy.from_config(config)
    matcher = Matcher(sink, lambda _: policy, 1000.0, {USE_CASE: 3}.__getitem__, max_early=100,
                      max_early_bytes=10_000_000)
    for i in range(50_000):
        matcher.on_score(champion(f"orphan-{i}"), T0 + i)
    assert (matcher.early_held, len(matcher.early)) == (100, 100)
    assert matcher.early_evicted == 49_900
    matcher.on_request(request("orphan-49999"), T0 + 60_000)  # the newest are the ones kept
    assert sink.only_result().model_name == "gbm"
    assert matcher.early_held == 99

    size = champion("o00").ByteSize()
    small = Matcher(RecordingSink(), lambda _: policy, 1000.0, {USE_CASE: 3}.__getitem__, max_early=10**6,
                    max_early_bytes=size * 10)
    for i in range(20):
        small.on_score(champion(f"o{i:02d}"), T0)
    assert (small.early_held, small.early_bytes, small.early_evicted) == (10, size * 10, 10)
