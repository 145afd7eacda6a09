"""The adaptive admission limit: tightens on slow answers (Little's law), reopens when they are fast."""

from __future__ import annotations

from rvz.frontend.admission import MIN_LIMIT, TICK_NS, Admission

MS = 1_000_000
BUDGET = 100 * MS


def answer_all(admission: Admission, start_ns: int, count: int, latency_ns: int, budget_ns: int = BUDGET) -> None:
    """``count`` answers given over the tick that starts at ``start_ns``, each ``latency_ns`` after its request."""
    for i in range(count):
        answered = start_ns + i * (TICK_NS // count)
        admission.on_answer(answered - latency_ns, answered, answered - latency_ns + budget_ns)


def test_starts_open_and_refuses_only_at_the_limit() -> None:
    admission = Admission(max_in_flight=10)
    assert admission.limit == 10
    assert admission.admits(9)
    assert not admission.admits(10)


def test_fast_answers_never_tighten_the_limit() -> None:
    admission = Admission(max_in_flight=1000)
    for tick in range(5):
        answer_all(admission, tick * TICK_NS, 500, 10 * MS)  # 10% of the budget
    assert admission.limit == 1000
    assert admission.tightened == 0


def test_slow_answers_tighten_to_littles_law() -> None:
    admission = Admission(max_in_flight=1000)
    answer_all(admission, 0, 200, 90 * MS)  # 90% of the budget: slow
    answer_all(admission, TICK_NS, 1, 90 * MS)  # the first answer of the next tick closes the first one
    # About 200 answers over a 100 ms tick = 2000/s, aiming at half the 100 ms budget: 2000 * 0.05 = 100.
    assert 90 <= admission.limit <= 101
    assert admission.tightened == 1
    assert not admission.admits(admission.limit)


def test_a_few_slow_answers_are_tolerated() -> None:
    admission = Admission(max_in_flight=1000)
    answer_all(admission, 0, 95, 10 * MS)
    answer_all(admission, 0, 5, 90 * MS)  # 5% slow: under the 10% alarm
    answer_all(admission, TICK_NS, 1, 10 * MS)
    assert admission.limit == 1000


def test_answers_past_their_deadline_count_as_slow() -> None:
    admission = Admission(max_in_flight=1000)
    answer_all(admission, 0, 100, 10 * MS, budget_ns=0)  # the client's deadline had already passed
    answer_all(admission, TICK_NS, 1, 10 * MS)
    assert admission.limit < 1000


def test_the_limit_never_drops_below_the_minimum() -> None:
    admission = Admission(max_in_flight=1000)
    answer_all(admission, 0, 2, 99 * MS)  # 20/s, all slow: Little's law says 1
    answer_all(admission, TICK_NS, 1, 99 * MS)
    assert admission.limit == MIN_LIMIT


def test_reopens_while_answers_are_fast() -> None:
    admission = Admission(max_in_flight=1000)
    answer_all(admission, 0, 200, 90 * MS)
    answer_all(admission, TICK_NS, 1, 10 * MS)
    tight = admission.limit
    assert tight < 1000
    answer_all(admission, 2 * TICK_NS, 1, 10 * MS)  # a calm tick: +25%
    assert admission.limit == tight + tight // 4
    for tick in range(3, 40):  # ~3 s of calm, even with little traffic
        answer_all(admission, tick * TICK_NS, 1, 10 * MS)
    assert admission.limit == 1000  # capped by frontend.max_in_flight
