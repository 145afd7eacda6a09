"""Callers for the fault matrix: each keeps one call in flight, all of them for a bounded time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc

from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc

CLIENT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Call:
    use_case: str
    sent: float  # seconds since the load started
    took: float
    code: str
    request_id: str
    model: str


def run(address: str, seconds: float, callers: int, use_cases: tuple[str, ...] = ("default", "other"),
        pad_bytes: int = 0) -> list[Call]:
    """Callers round the use cases, each one call in flight, for ``seconds``; every call they made."""
    calls: list[Call] = []
    lock = threading.Lock()
    started = time.monotonic()

    def caller(i: int) -> None:
        use_case = use_cases[i % len(use_cases)]
        request = scoring_pb2.ScoreRequest(use_case=use_case)
        request.features.update({"x": float(i), **({"pad": "p" * pad_bytes} if pad_bytes else {})})
        # A connection of its own per caller, as separate clients have (gRPC would otherwise share one between
        # the channels of a process): with several frontend processes, the kernel spreads them.
        with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            score = scoring_pb2_grpc.ScoringStub(channel).Score
            while (sent := time.monotonic()) - started < seconds:
                try:
                    response = score(request, timeout=CLIENT_TIMEOUT_S)
                    call = Call(use_case, sent - started, time.monotonic() - sent, "OK", response.request_id,
                                response.model_name)
                except grpc.RpcError as e:
                    call = Call(use_case, sent - started, time.monotonic() - sent, e.code().name, "", "")
                    time.sleep(0.01)  # a client that backs off a little after an error
                with lock:
                    calls.append(call)

    threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}") for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + CLIENT_TIMEOUT_S + 5)
    return calls
