"""A plain grpc.aio ``rvz.v1.Scoring`` server that calls one model in-process.

Run alone with the champion it is the *direct* baseline ("discrete response"
serving); three of them, one per model, sit behind the fan-out frontend.

    python -m bench_systems.scoring_server --entry bench_systems.models:champion --name champion --role champion
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import grpc

from bench_systems import serving
from rvz.wire.codec import python_to_value, struct_to_dict
from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc


class ModelScoring(scoring_pb2_grpc.ScoringServicer):
    def __init__(self, model: Callable[[dict[str, Any]], Any], name: str, role: str) -> None:
        self.model = model
        self.name = name
        self.role = role
        self.rule = f"{name} ({role})"
        self.ids = itertools.count(1)

    async def Score(self, request: scoring_pb2.ScoreRequest,
                    context: grpc.aio.ServicerContext) -> scoring_pb2.ScoreResponse:
        received = time.perf_counter_ns()
        try:
            output = self.model(struct_to_dict(request.features))
        except Exception as e:
            await context.abort(grpc.StatusCode.INTERNAL, f"{self.name}: {type(e).__name__}: {e}")
        response = scoring_pb2.ScoreResponse(request_id=str(next(self.ids)), model_name=self.name, model_version="1",
                                             role=self.role, rule=self.rule, use_case=request.use_case or "default")
        python_to_value(output, response.output)
        response.elapsed_ms = (time.perf_counter_ns() - received) / 1e6
        return response


def load(entry: str) -> Callable[[dict[str, Any]], Any]:
    module, _, attr = entry.partition(":")
    target = getattr(importlib.import_module(module), attr)
    if isinstance(target, type):
        target = target()
    return target.predict if hasattr(target, "predict") else target  # type: ignore[no-any-return]


async def main(listen: str, entry: str, name: str, role: str) -> None:
    server = serving.new_server()
    scoring_pb2_grpc.add_ScoringServicer_to_server(ModelScoring(load(entry), name, role), server)  # type: ignore[no-untyped-call]
    await serving.serve_until_signal(server, listen)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--entry", default="bench_systems.models:champion")
    parser.add_argument("--name", default="champion")
    parser.add_argument("--role", default="champion")
    args = parser.parse_args()
    serving.run(main(args.listen, args.entry, args.name, args.role))
