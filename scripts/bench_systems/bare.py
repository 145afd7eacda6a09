"""A bare rendezvous: rvz's five processes and three ZeroMQ hops, and nothing else.

What the architecture costs on this machine with these libraries, before any of rvz's own work: a
grpc.aio frontend (uvloop) publishes each request on a PUB socket; three workers (SUB -> PUSH) score
it with the bench's models; a rendezvous that subscribes to the requests too returns the champion's
score (PULL -> ROUTER -> the frontend's DEALER). No request, score or result logs, no validation,
deadlines, policy, admission, metrics or error handling: a request a worker cannot parse stops that
worker, and without a champion no call is answered: it is for measuring, not serving. `scripts/bench`
measures it beside rvz, so that what rvz adds over its own transport can be told apart from what the
transport costs here.

    python -m bench_systems.bare rendezvous --dir DIR [--models 3]
    python -m bench_systems.bare worker --dir DIR --name NAME --entry MODULE:ATTR
    python -m bench_systems.bare frontend --dir DIR

Every process prints a ready line (the frontend's names its address once a probe went through every
model and came back); SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import threading
from collections import Counter
from pathlib import Path

import grpc
import zmq

from bench_systems import serving
from bench_systems.scoring_server import load
from rvz.wire.codec import python_to_value, struct_to_dict
from rvz.wire.proto import scoring_pb2

TOPIC = b"default"
CHAMPION = b"champion"
# Request ids: b"r" or b"p" (a probe), then a counter.
REQUEST, PROBE = b"r", b"p"
# Far above anything 64 calls in flight can queue: the bare system counts nothing, so it must drop nothing.
HWM = 100_000
POLL_MS = 100
PROBE_EVERY_S = 0.02
PROBE_TIMEOUT_S = 30.0
READY = "bare ready"


def endpoints(directory: Path) -> tuple[str, str, str]:
    """The requests, scores and results streams of the bare system in ``directory`` (ipc://)."""
    requests, scores, results = (f"ipc://{directory}/bare-{name}.sock" for name in ("requests", "scores", "results"))
    return requests, scores, results


def _socket(ctx: zmq.Context[zmq.Socket[bytes]], kind: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.LINGER, 0)
    return sock


def _stop_on_signal() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _drain(sock: zmq.Socket[bytes]) -> list[list[bytes]]:
    messages = []
    while True:
        try:
            messages.append(sock.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            return messages


def run_worker(directory: Path, name: str, entry: str) -> None:
    """SUB, score every request queued with one call of the model each, PUSH the scores as one message."""
    model = load(entry)
    requests, scores, _ = endpoints(directory)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub, push = _socket(ctx, zmq.SUB), _socket(ctx, zmq.PUSH)
    sub.setsockopt(zmq.SUBSCRIBE, TOPIC)
    sub.connect(requests)
    push.connect(scores)
    stop = _stop_on_signal()
    print(READY, flush=True)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(POLL_MS):
            continue
        frames = [name.encode()]
        for _topic, _address, request_id, data in _drain(sub):
            request = scoring_pb2.ScoreRequest.FromString(data)
            response = scoring_pb2.ScoreResponse(request_id=request_id.hex(), model_name=name, model_version="1",
                                                 role=name, use_case=request.use_case or "default")
            python_to_value(model(struct_to_dict(request.features)), response.output)
            frames += (request_id, response.SerializeToString())
        if len(frames) > 1:
            push.send_multipart(frames)
    ctx.destroy(linger=0)


def run_rendezvous(directory: Path, models: int) -> None:
    """Learn every request's return address from the input stream; send it the champion's score.

    A probe is answered once every model scored it: then every worker is subscribed.
    """
    requests, scores, results = endpoints(directory)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub, pull, router = _socket(ctx, zmq.SUB), _socket(ctx, zmq.PULL), _socket(ctx, zmq.ROUTER)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(requests)
    pull.bind(scores)
    router.bind(results)
    stop = _stop_on_signal()
    print(READY, flush=True)
    addresses: dict[bytes, bytes] = {}  # request id -> the frontend holding the call
    early: dict[bytes, bytes] = {}  # the champion's scores whose request has not arrived yet
    probe_scores: Counter[bytes] = Counter()
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(pull, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(POLL_MS):
            continue
        for _topic, address, request_id, _data in _drain(sub):
            if request_id in early:
                router.send_multipart([address, request_id, early.pop(request_id)])
            else:
                addresses[request_id] = address
        for name, *pairs in _drain(pull):
            for request_id, score in zip(pairs[::2], pairs[1::2], strict=True):
                if request_id.startswith(PROBE):
                    probe_scores[request_id] += 1
                    if probe_scores[request_id] == models and request_id in addresses:
                        router.send_multipart([addresses.pop(request_id), request_id, score])
                elif name == CHAMPION:
                    address = addresses.pop(request_id, b"")
                    if address:
                        router.send_multipart([address, request_id, score])
                    else:
                        early[request_id] = score
    ctx.destroy(linger=0)


class BareFrontend:
    """Score: publish the raw request bytes, wait for the rendezvous's answer, return its bytes."""

    def __init__(self, directory: Path) -> None:
        requests, _, results = endpoints(directory)
        self.identity = b"bare-frontend"
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub, self.dealer = _socket(self.ctx, zmq.PUB), _socket(self.ctx, zmq.DEALER)
        self.pub.bind(requests)
        self.dealer.setsockopt(zmq.ROUTING_ID, self.identity)
        self.dealer.connect(results)
        self.ids = itertools.count(1)
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.dealer.FD, self._on_results)
        self.loop.call_soon(self._on_results)  # the fd signals edges: drain once so it re-arms

    async def ask(self, kind: bytes, data: bytes) -> bytes:
        request_id = kind + next(self.ids).to_bytes(8, "little")
        future: asyncio.Future[bytes] = self.loop.create_future()
        self.waiting[request_id] = future
        try:
            self.pub.send_multipart([TOPIC, self.identity, request_id, data])
            return await future
        finally:
            del self.waiting[request_id]

    async def score(self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return await self.ask(REQUEST, data)

    async def until_every_model_answers(self) -> None:
        """Probe until one probe comes back through every worker: the subscriptions are in place."""
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            while True:
                try:
                    await asyncio.wait_for(self.ask(PROBE, b""), PROBE_EVERY_S)
                    return
                except TimeoutError:
                    continue

    def _on_results(self) -> None:
        for request_id, response in _drain(self.dealer):
            future = self.waiting.get(request_id)
            if future is not None and not future.done():
                future.set_result(response)

    def close(self) -> None:
        self.loop.remove_reader(self.dealer.FD)
        self.ctx.destroy(linger=0)


async def serve_frontend(directory: Path, listen: str) -> None:
    frontend = BareFrontend(directory)
    try:
        await frontend.until_every_model_answers()
        server = serving.new_server()
        handler = grpc.unary_unary_rpc_method_handler(frontend.score)  # raw bytes in and out, as in rvz
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("rvz.v1.Scoring", {"Score": handler})])
        await serving.serve_until_signal(server, listen)
    finally:
        frontend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("process", choices=("rendezvous", "worker", "frontend"))
    parser.add_argument("--dir", type=Path, required=True, help="where the ipc:// sockets live")
    parser.add_argument("--name", default="champion")
    parser.add_argument("--entry", default="bench_systems.models:champion")
    parser.add_argument("--models", type=int, default=3, help="workers a probe must go through")
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args()
    if args.process == "worker":
        run_worker(args.dir, args.name, args.entry)
    elif args.process == "rendezvous":
        run_rendezvous(args.dir, args.models)
    else:
        serving.run(serve_frontend(args.dir, args.listen))


if __name__ == "__main__":
    main()
