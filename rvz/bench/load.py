"""The load generator behind `rvz bench`: grpc.aio callers in one or more processes.

Closed loop: N callers, each sends its next call as soon as its previous one ends.
Open loop: calls leave on a fixed timetable whatever the server does, and each
call's latency counts from its *scheduled* send time, so a server (or a client)
that falls behind shows its queueing in the figures instead of hiding it
(coordinated omission). How late calls actually left is recorded as ``send_lag``.

Python gRPC clients are CPU-bound, so the load can be spread over processes.
They are spawned (gRPC does not survive fork), each runs its own event loop and
channel, all start on one wall-clock instant, and the parent merges their
tallies, histograms included.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Protocol

import grpc

from rvz.bench.stats import Tally, record_ns
from rvz.errors import BenchError, FirstCallFailed
from rvz.security.tls import ClientTls, aio_channel
from rvz.security.tls import channel as open_channel

METHOD = "/rvz.v1.Scoring/Score"
# Connecting may take longer than one call's deadline, but an absent server should not take long to report.
MIN_CONNECT_TIMEOUT_S = 1.0
# Load processes take about a second to spawn and import; the common start is set once all are connected.
READY_TIMEOUT_S = 60.0
START_MARGIN_S = 0.1
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]


class Slots(Protocol):
    """Calls completed so far, one slot per load process (a list, or shared memory across processes)."""

    def __getitem__(self, index: int) -> int: ...
    def __setitem__(self, index: int, value: int) -> None: ...


@dataclass(frozen=True)
class LoadPlan:
    """One load process's share of a run."""

    target: str
    request: bytes
    timeout_s: float
    warmup_s: float
    duration_s: float
    # Closed loop: callers in this process. Open loop: 0.
    callers: int = 0
    # Open loop: this process's calls per second, and where its timetable starts so processes interleave.
    rate: float = 0.0
    first_offset_s: float = 0.0
    # TLS to the target (None: plaintext).
    tls: ClientTls | None = None


def split_plan(base: LoadPlan, concurrency: int, rate: float | None, processes: int) -> list[LoadPlan]:
    """Share the load among processes: callers as evenly as possible, or one timetable in K interleaved parts."""
    if rate is not None:
        return [replace(base, rate=rate / processes, first_offset_s=k / rate) for k in range(processes)]
    processes = min(processes, concurrency)
    shares = [concurrency // processes + (k < concurrency % processes) for k in range(processes)]
    return [replace(base, callers=n) for n in shares]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed (what the rvz frontend runs on): a cheaper client leaves more CPU to the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class Generator:
    """Sends one process's share of the load and tallies the measured window."""

    def __init__(self, plan: LoadPlan, slots: Slots, slot: int) -> None:
        self.plan = plan
        self.slots = slots
        self.slot = slot
        self.tally = Tally()
        self.measure_ns = 0
        self.end_ns = 0
        self._cpu_at_measure = 0.0
        self._channel: Any = None
        self._score: Any = None

    async def connect(self) -> None:
        self._channel = aio_channel(self.plan.target, self.plan.tls, CHANNEL_OPTIONS)
        timeout_s = max(MIN_CONNECT_TIMEOUT_S, self.plan.timeout_s)
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError:
            await self._channel.close()
            raise _unreachable(self.plan.target, timeout_s) from None
        # No (de)serializers: the request is encoded once, and answers are parsed only to be tallied.
        self._score = self._channel.unary_unary(METHOD)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def run(self, start_wall: float) -> Tally:
        """Load from ``start_wall`` (time.time()) through warm-up and the measured window; wait for stragglers."""
        plan = self.plan
        start_ns = time.perf_counter_ns() + int((start_wall - time.time()) * 1e9)
        self.measure_ns = start_ns + int(plan.warmup_s * 1e9)
        self.end_ns = self.measure_ns + int(plan.duration_s * 1e9)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, (start_ns - time.perf_counter_ns()) / 1e9))
        self._cpu_at_measure = time.process_time()
        marker = loop.call_later(plan.warmup_s, self._mark_cpu)
        if plan.rate > 0:
            await self._open_loop(start_ns + int(plan.first_offset_s * 1e9))
        else:
            await asyncio.gather(*(self._caller() for _ in range(plan.callers)))
        marker.cancel()
        self.tally.client_cpu_s = time.process_time() - self._cpu_at_measure
        return self.tally

    def _mark_cpu(self) -> None:
        self._cpu_at_measure = time.process_time()

    async def _caller(self) -> None:
        while (started := time.perf_counter_ns()) < self.end_ns:
            await self._call(started)

    async def _open_loop(self, first_ns: int) -> None:
        loop = asyncio.get_running_loop()
        period_ns = 1e9 / self.plan.rate
        pending: set[asyncio.Task[None]] = set()
        i = 0
        while (due := first_ns + int(i * period_ns)) < self.end_ns:
            now = time.perf_counter_ns()
            if due > now:
                # The event loop's timers have millisecond resolution; lateness is recorded as send lag.
                await asyncio.sleep((due - now) / 1e9)
                continue
            task = loop.create_task(self._call(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        if pending:
            await asyncio.gather(*pending)

    async def _call(self, scheduled_ns: int) -> None:
        tally = self.tally
        measured = self.measure_ns <= scheduled_ns < self.end_ns
        if measured:
            tally.sent += 1
            if self.plan.rate > 0:
                record_ns(tally.send_lag, time.perf_counter_ns() - scheduled_ns)
        try:
            response = await self._score(self.plan.request, timeout=self.plan.timeout_s)
        except grpc.RpcError as e:
            done_ns = time.perf_counter_ns()
            if measured:
                tally.record_error(e.code().name, e.details() or "", done_ns - scheduled_ns)
        else:
            done_ns = time.perf_counter_ns()
            if measured:
                tally.record_ok(done_ns - scheduled_ns, response)
        if measured:
            tally.last_done_s = max(tally.last_done_s, (done_ns - self.measure_ns) / 1e9)
        tally.completed_total += 1
        self.slots[self.slot] = tally.completed_total


def _unreachable(target: str, timeout_s: float) -> BenchError:
    return BenchError(f"cannot connect to {target} within {timeout_s:g} s; is the server running there?")


def first_call(plan: LoadPlan) -> None:
    """Send the plan's request once, before any load; raises ``FirstCallFailed`` with its status if it fails
    (every call of the run would: they are all the same request), ``BenchError`` if the target is unreachable.
    """
    timeout_s = max(MIN_CONNECT_TIMEOUT_S, plan.timeout_s)
    with open_channel(plan.target, plan.tls, CHANNEL_OPTIONS) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise _unreachable(plan.target, timeout_s) from None
        try:
            channel.unary_unary(METHOD)(plan.request, timeout=plan.timeout_s)
        except grpc.RpcError as e:
            raise FirstCallFailed(e.code(), e.details() or "") from None


# --- running the plans ------------------------------------------------------------------------


def run_here(plan: LoadPlan, slots: Slots, on_start: Callable[[float], None]) -> Tally:
    """One load process: this one."""

    async def main() -> Tally:
        generator = Generator(plan, slots, 0)
        await generator.connect()
        try:
            start_wall = time.time() + START_MARGIN_S
            on_start(start_wall)
            return await generator.run(start_wall)
        finally:
            await generator.close()

    return _run_loop(main())


def _run_loop(main: Coroutine[Any, Any, Tally]) -> Tally:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def run_spawned(plans: list[LoadPlan], slots: Slots, on_start: Callable[[float], None]) -> Tally:
    """One spawned process per plan; they start together and their tallies are merged."""
    ctx = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue[tuple[str, int, Any]] = ctx.Queue()
    go = ctx.Event()
    start_wall = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_child_main, args=(plan, k, slots, events, go, start_wall), daemon=True,
                         name=f"rvz-bench-load-{k}") for k, plan in enumerate(plans)]
    for proc in procs:
        proc.start()
    try:
        _expect(events, "ready", len(plans), READY_TIMEOUT_S)
        start_wall.value = time.time() + START_MARGIN_S
        on_start(start_wall.value)
        go.set()
        plan = plans[0]
        budget = START_MARGIN_S + plan.warmup_s + plan.duration_s + plan.timeout_s + READY_TIMEOUT_S
        tally = Tally()
        for wire in _expect(events, "done", len(plans), budget):
            tally.merge_wire(wire)
        return tally
    finally:
        go.set()  # a child still waiting to start should not wait for nothing
        for proc in procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _expect(events: multiprocessing.Queue[tuple[str, int, Any]], kind: str, n: int, timeout_s: float) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    payloads: list[Any] = []
    while len(payloads) < n:
        try:
            got, slot, payload = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise BenchError(f"load processes did not report '{kind}' within {timeout_s:g} s") from None
        if got == "failed":
            raise BenchError(f"load process {slot} failed: {payload}")
        if got == kind:
            payloads.append(payload)
    return payloads


def _child_main(plan: LoadPlan, slot: int, slots: Slots, events: multiprocessing.Queue[tuple[str, int, Any]],
                go: Any, start_wall: Any) -> None:
    async def main() -> Tally:
        generator = Generator(plan, slots, slot)
        await generator.connect()
        try:
            events.put(("ready", slot, None))
            started = await asyncio.get_running_loop().run_in_executor(None, go.wait, READY_TIMEOUT_S)
            if not started or start_wall.value == 0.0:
                raise BenchError("the parent never gave the start signal")
            return await generator.run(start_wall.value)
        finally:
            await generator.close()

    try:
        events.put(("done", slot, _run_loop(main()).to_wire()))
    except BenchError as e:
        events.put(("failed", slot, str(e)))
    except BaseException:  # reported to the parent, which raises it as a BenchError
        events.put(("failed", slot, traceback.format_exc()))
