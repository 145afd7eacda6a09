"""What a user would build without rvz: a grpc.aio frontend that calls every model's gRPC server in
parallel, with a deadline, and prefers the champion.

Each request goes to all model servers at once (so every model scores all live
traffic, as in rvz). The champion's answer is taken if it comes within the
window; after the window, the first successful answer in preference order
(champion, then the others as given); nothing by the deadline: DEADLINE_EXCEEDED.

    python -m bench_systems.fanout --model champion=127.0.0.1:7001 --model challenger=... --model canary=...
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc

from bench_systems import serving
from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc

Call = asyncio.Future[scoring_pb2.ScoreResponse]


class FanOut(scoring_pb2_grpc.ScoringServicer):
    def __init__(self, models: list[tuple[str, str]], window_s: float, deadline_s: float) -> None:
        self.channels = [grpc.aio.insecure_channel(target) for _, target in models]
        # Preference order: as given (the champion first).
        self.stubs = [(role, scoring_pb2_grpc.ScoringStub(channel))  # type: ignore[no-untyped-call]
                      for (role, _), channel in zip(models, self.channels, strict=True)]
        self.window_s = window_s
        self.deadline_s = deadline_s

    async def connect(self) -> None:
        await asyncio.gather(*(ch.channel_ready() for ch in self.channels))

    async def Score(self, request: scoring_pb2.ScoreRequest,
                    context: grpc.aio.ServicerContext) -> scoring_pb2.ScoreResponse:
        received = time.perf_counter()
        remaining = context.time_remaining()
        budget = self.deadline_s if remaining is None else min(self.deadline_s, remaining)
        calls: list[tuple[str, Call]] = []
        for role, stub in self.stubs:
            call: Call = asyncio.ensure_future(stub.Score(request, timeout=budget))
            call.add_done_callback(_observe)
            calls.append((role, call))
        champion = calls[0][1]
        await asyncio.wait([champion], timeout=self.window_s)
        if _ok(champion):
            return _answer(champion.result(), f"window 1 (0-{self.window_s * 1000:g} ms): {calls[0][0]}", received)
        while True:
            for role, call in calls:
                if _ok(call):
                    return _answer(call.result(), f"after the window: {role}", received)
            pending = [call for _, call in calls if not call.done()]
            left = received + budget - time.perf_counter()
            if not pending or left <= 0:
                break
            await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        failed = [f"{role}: {call.exception()}" for role, call in calls if call.done() and not call.cancelled()]
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED if pending else grpc.StatusCode.INTERNAL,
                            "no acceptable answer: " + "; ".join(failed))
        raise AssertionError("unreachable: abort raises")


def _ok(call: Call) -> bool:
    return call.done() and not call.cancelled() and call.exception() is None


def _observe(call: Call) -> None:
    # A model call that failed after the answer was chosen must not be reported as "never retrieved".
    if not call.cancelled():
        call.exception()


def _answer(response: scoring_pb2.ScoreResponse, rule: str, received: float) -> scoring_pb2.ScoreResponse:
    response.rule = rule
    response.elapsed_ms = (time.perf_counter() - received) * 1000
    return response


async def main(listen: str, models: list[tuple[str, str]], window_ms: float, deadline_ms: float) -> None:
    fanout = FanOut(models, window_ms / 1000, deadline_ms / 1000)
    await fanout.connect()
    server = serving.new_server()
    scoring_pb2_grpc.add_ScoringServicer_to_server(fanout, server)  # type: ignore[no-untyped-call]
    await serving.serve_until_signal(server, listen)


def _model(text: str) -> tuple[str, str]:
    role, sep, target = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ROLE=HOST:PORT, got {text!r}")
    return role, target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--model", type=_model, action="append", required=True,
                        help="ROLE=HOST:PORT of a model server; the first is the preferred one (the champion)")
    parser.add_argument("--window-ms", type=float, default=30.0)
    parser.add_argument("--deadline-ms", type=float, default=100.0)
    args = parser.parse_args()
    serving.run(main(args.listen, args.model, args.window_ms, args.deadline_ms))
