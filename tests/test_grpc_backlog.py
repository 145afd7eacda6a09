"""rvz.grpc_backlog: gRPC core's count of calls that no handler has picked up yet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rvz.frontend.grpc_backlog import GrpcBacklog, Shedder

pytestmark = pytest.mark.timeout(60)

# Run in a child process: GrpcBacklog reads the one gRPC server of its process. The event loop is blocked
# (time.sleep, on purpose) while calls arrive, so that they wait inside gRPC as under overload.
SCRIPT = textwrap.dedent("""
    import asyncio, sys, time
    import grpc
    from rvz.frontend.grpc_backlog import GrpcBacklog

    async def main(pending_limit):
        release = asyncio.Event()
        held = []

        async def hold(data, context):
            held.append(data)
            await release.wait()
            return b"done"

        options = [("grpc.server.max_pending_requests", pending_limit),
                   ("grpc.server.max_pending_requests_hard_limit", pending_limit)]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "t.S", {"M": grpc.unary_unary_rpc_method_handler(hold)})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        backlog = GrpcBacklog()
        print("idle", backlog.calls_open(), backlog.streams_open())

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        method = channel.unary_unary("/t.S/M")
        futures = [method.future(b"x", timeout=30) for _ in range(8)]
        deadline = time.monotonic() + 20
        while backlog.calls_open() < 8 and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop stays blocked: no handler can take a call
        print("queued", backlog.calls_open(), backlog.streams_open())
        while len(held) + sum(f.done() for f in futures) < 8:
            await asyncio.sleep(0.01)
        release.set()
        outcomes = await asyncio.get_running_loop().run_in_executor(
            None, lambda: sorted(f.code().name for f in futures))
        print("outcomes", *outcomes)
        while backlog.streams_open():
            await asyncio.sleep(0.01)
        print("after", backlog.calls_open(), backlog.streams_open())
        channel.close()
        await server.stop(None)

    asyncio.run(main(int(sys.argv[1])))
""")


def run(pending_limit: int) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(pending_limit)], capture_output=True, text=True,
                          timeout=50)
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}


def test_calls_waiting_inside_grpc_are_counted_by_both_counts() -> None:
    seen = run(pending_limit=1000)
    assert seen["idle"] == ["0", "0"]
    assert seen["queued"] == ["8", "8"]
    assert seen["outcomes"] == ["OK"] * 8
    assert seen["after"] == ["0", "0"]


def test_calls_grpc_cancelled_in_its_queue_stay_open_only_in_the_call_counts() -> None:
    # A queue limit of 2: gRPC cancels what arrives beyond it, as it does past 1000 under overload.
    seen = run(pending_limit=2)
    cancelled = seen["outcomes"].count("CANCELLED")
    assert cancelled > 0 and set(seen["outcomes"]) == {"OK", "CANCELLED"}, seen
    assert seen["after"] == [str(cancelled), "0"]  # why the frontend trusts the stream counts


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
