"""The frontend's ``rvz.v1.Feedback`` service: truths into the feedback log, answered once on disk.

Truths are not on the request path: they arrive hours or days later, from whoever knows the outcome,
and go into their own log (``rvz.feedback.log``), never through the streams.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from typing import Any

import grpc

from rvz.config import LogConfig
from rvz.errors import LogError
from rvz.feedback.log import MAX_BATCH, check_truth, open_feedback_log, records
from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc

SERVICE_NAME = scoring_pb2.DESCRIPTOR.services_by_name["Feedback"].full_name


class FeedbackService(scoring_pb2_grpc.FeedbackServicer):
    """Serves Record and RecordMany. ``add_to`` starts the log; ``stop`` syncs and closes it."""

    def __init__(self, config: LogConfig, frontend: str = "") -> None:
        self.log = open_feedback_log(config, frontend)
        self._durable = DurableWaits()

    def add_to(self, server: grpc.aio.Server) -> None:
        """Start the feedback log and serve on ``server`` (before it starts); raises ``LogError``."""
        self.log.start()
        self.log.add_durable_listener(self._durable.from_thread(asyncio.get_running_loop()))
        scoring_pb2_grpc.add_FeedbackServicer_to_server(self, server)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Sync and close the log; idempotent."""
        self.log.stop()

    async def Record(self, request: scoring_pb2.Truth,
                     context: grpc.aio.ServicerContext[Any, Any]) -> scoring_pb2.FeedbackResponse:
        problem = check_truth(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return await self._record([request], context)

    async def RecordMany(self, request: scoring_pb2.TruthBatch,
                         context: grpc.aio.ServicerContext[Any, Any]) -> scoring_pb2.FeedbackResponse:
        if len(request.truths) > MAX_BATCH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{len(request.truths)} truths in one call: "
                                f"send at most {MAX_BATCH} per RecordMany")
        now_ms = time.time_ns() // 1_000_000
        for i, truth in enumerate(request.truths):
            problem = check_truth(truth, now_ms)
            if problem:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"truths[{i}]: {problem}; nothing recorded")
        return await self._record(list(request.truths), context)

    async def _record(self, truths: list[scoring_pb2.Truth],
                      context: grpc.aio.ServicerContext[Any, Any]) -> scoring_pb2.FeedbackResponse:
        if not truths:
            return scoring_pb2.FeedbackResponse(recorded=0)
        try:
            seq = self.log.append_many(records(truths, time.time_ns()))
        except LogError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot record the truths: {e}")
        await self._durable.wait(seq)
        return scoring_pb2.FeedbackResponse(recorded=len(truths))


class DurableWaits:
    """Futures resolved once a log's durable sequence number reaches theirs. Loop thread only, except
    for the callback ``from_thread`` returns, which the log's sync thread calls."""

    def __init__(self) -> None:
        self._seqs: list[int] = []
        self._futures: list[asyncio.Future[None]] = []
        self._durable = 0

    def from_thread(self, loop: asyncio.AbstractEventLoop) -> Any:
        """The durable listener to give the log: hands each sequence number to ``loop``."""
        return lambda seq: loop.call_soon_threadsafe(self._release, seq)

    async def wait(self, seq: int) -> None:
        if seq <= self._durable:
            return
        future = asyncio.get_running_loop().create_future()
        at = bisect.bisect(self._seqs, seq)
        self._seqs.insert(at, seq)
        self._futures.insert(at, future)
        await future

    def _release(self, seq: int) -> None:
        self._durable = max(self._durable, seq)
        done = bisect.bisect(self._seqs, seq)
        for future in self._futures[:done]:
            if not future.done():  # a call cancelled meanwhile
                future.set_result(None)
        del self._seqs[:done], self._futures[:done]
