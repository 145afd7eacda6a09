"""rvz.grpc_backlog: gRPC core's count of calls that no handler has picked up yet."""

from __future__ import annotations

import pytest

from rvz.frontend.grpc_backlog import GrpcBacklog, Shedder

pytestmark = pytest.mark.timeout(60)







class Readings(GrpcBacklog):
    """gRPC's counts as a test sets them (the real reading is covered above)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.streams = 0
        self.stream_reads = 0

    def calls_open(self) -> int | None:
        return self.calls

    def streams_open(self) -> int | None:
        self.stream_reads += 1
        return self.streams


def test_the_shedder_sheds_a_growing_share_past_the_threshold() -> None:
    readings = Readings()
    shedder = Shedder(readings, core_limit=1000)
    shed_from, shed_all = shedder.shed_from, shedder.shed_all
    assert (shed_from, shed_all) == (200, 700)  # of gRPC's own limit of 1000 calls waiting
    readings.calls = readings.streams = shed_from + 10  # 10 in our handlers: shed_from waiting
    assert shedder.update(in_handlers=10) and shedder.share == 0.0 and not shedder.refuses()
    assert readings.stream_reads == 0  # the cheap bound was enough
    readings.calls = readings.streams = (shed_from + shed_all) // 2 + 10
    assert shedder.update(in_handlers=10)
    assert shedder.share == pytest.approx(0.5, abs=0.01)
    readings.calls = readings.streams = shed_all + 10
    shedder.update(in_handlers=10)
    assert shedder.share == 1.0 and all(shedder.refuses() for _ in range(100)) and shedder.shed == 100


def test_calls_cancelled_inside_grpc_do_not_keep_the_shedder_shedding() -> None:
    readings = Readings()
    shedder = Shedder(readings)
    readings.calls, readings.streams = 2_600, 100  # 2,500 cancelled in gRPC's queue, never closed
    shedder.update(in_handlers=100)
    assert shedder.waiting == 0 and shedder.share == 0.0
    reads = readings.stream_reads
    readings.calls += 50  # later: 50 more calls open, 50 in our handlers
    shedder.update(in_handlers=150)
    assert shedder.share == 0.0 and readings.stream_reads == reads  # the offset keeps the bound low
    readings.streams += 50  # the 50 new calls are streams too: still 2,500 cancelled
    assert shedder.cancelled_by_grpc() == 2_500
    readings.calls -= 10  # a reading that says fewer: the count must not go down
    assert shedder.cancelled_by_grpc() == 2_500


class Skewed(Readings):
    """Every other stream reading is one short, as when a call ends between the two reads."""

    def streams_open(self) -> int | None:
        self.stream_reads += 1
        return self.streams - self.stream_reads % 2


def test_a_skewed_reading_of_the_two_counts_is_not_counted() -> None:
    readings = Skewed()
    shedder = Shedder(readings)
    readings.calls, readings.streams = 120, 100  # 20 cancelled in gRPC's queue
    assert shedder.cancelled_by_grpc() == 0  # the two readings disagree (21, 20): nothing taken as exact
    assert readings.stream_reads == 2
    shedder.backlog = Readings()
    shedder.backlog.calls, shedder.backlog.streams = 120, 100  # type: ignore[attr-defined]
    assert shedder.cancelled_by_grpc() == 20  # two agreeing readings


def test_the_thresholds_follow_grpc_cores_limit() -> None:
    shedder = Shedder(Readings(), core_limit=50)
    assert (shedder.shed_from, shedder.shed_all) == (10, 35)
    tiny = Shedder(Readings(), core_limit=1)
    assert tiny.shed_all > tiny.shed_from  # a share can still be computed
