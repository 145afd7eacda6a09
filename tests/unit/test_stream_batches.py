"""The streams carry several requests, scores and results per message; every one of them counts.

A worker and a rendezvous run in threads of this process on real ipc:// sockets; the test plays the
other ends (a frontend's publisher and result socket, a worker's score pusher) with real sockets too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import zmq

from rvz.config import Config, LogConfig, ModelConfig, SecurityConfig, StreamsConfig
from rvz.rendezvous.loop import Rendezvous
from rvz.wire import streams
from rvz.wire.codec import value_to_python
from rvz.wire.proto import envelope_pb2, scoring_pb2
from rvz.worker.loop import Worker, WorkerConfig
from rvz.worker.model import load_model

pytestmark = pytest.mark.timeout(60)

FRONTEND_ID = b"fe-batch-test"
WAIT_S = 20.0


@pytest.fixture
def endpoints(root: Path) -> StreamsConfig:
    return StreamsConfig(requests=f"ipc://{root}/req.sock", scores=f"ipc://{root}/scores.sock",
                         results=f"ipc://{root}/results.sock", high_water_mark=1000)


class Ends:
    """The test's own ends of the streams; every socket is closed (linger 0) when the test ends."""

    def __init__(self, endpoints: StreamsConfig) -> None:
        self.endpoints = endpoints
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.opened: list[zmq.Socket[bytes]] = []

    def _keep(self, sock: zmq.Socket[bytes]) -> zmq.Socket[bytes]:
        self.opened.append(sock)
        return sock

    def publisher(self) -> zmq.Socket[bytes]:
        return self._keep(streams.publisher(self.ctx, self.endpoints.requests, self.endpoints.high_water_mark))

    def score_puller(self) -> zmq.Socket[bytes]:
        return self._keep(streams.score_puller(self.ctx, self.endpoints.scores, self.endpoints.high_water_mark))

    def score_pusher(self) -> zmq.Socket[bytes]:
        return self._keep(streams.score_pusher(self.ctx, self.endpoints.scores, self.endpoints.high_water_mark))

    def result_dealer(self) -> zmq.Socket[bytes]:
        return self._keep(streams.result_dealer(self.ctx, self.endpoints.results, self.endpoints.high_water_mark,
                                                FRONTEND_ID))

    def close(self) -> None:
        for sock in self.opened:
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def ends(endpoints: StreamsConfig) -> Iterator[Ends]:
    made = Ends(endpoints)
    yield made
    made.close()


def request(i: int, deadline_s: float = 10.0, return_address: bytes = FRONTEND_ID) -> bytes:
    now = time.time_ns()
    features = scoring_pb2.ScoreRequest()
    features.features.update({"x": i})
    return envelope_pb2.RequestEnvelope(
        request_id=f"r{i}", use_case="default", request=features.SerializeToString(), received_unix_ns=now,
        deadline_unix_ns=now + int(deadline_s * 1e9), return_address=return_address).SerializeToString()


def champion_score(i: int) -> bytes:
    score = envelope_pb2.ScoreEnvelope(request_id=f"r{i}", use_case="default", model_name="champ",
                                       model_version="1", role="champion")
    score.output.number_value = i
    return score.SerializeToString()


def probe() -> bytes:
    return envelope_pb2.Control(kind=envelope_pb2.Control.PROBE, frontend_id=FRONTEND_ID,
                                sent_unix_ns=time.time_ns()).SerializeToString()


def receive(sock: zmq.Socket[bytes], kind: bytes) -> list[bytes]:
    """The frames after ``kind`` of the next message of that kind (others are skipped)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if sock.poll(100):
            first, *frames = sock.recv_multipart()
            if first == kind:
                return frames
    raise AssertionError(f"no {kind!r} message within {WAIT_S} s")


def handshake(pub: zmq.Socket[bytes], sock: zmq.Socket[bytes], kind: bytes) -> None:
    """Probe until the other end answers a probe: a SUB misses what is published before it has joined (a
    worker's first announce, sent at start unasked, says nothing of its subscription)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pub.send_multipart([streams.CONTROL_TOPIC, probe()])
        if sock.poll(50):
            first, *frames = sock.recv_multipart()
            if first == kind and (kind != streams.ANNOUNCE or _answers_our_probe(frames)):
                return
    raise AssertionError("the other end never answered a probe")


def _answers_our_probe(frames: list[bytes]) -> bool:
    return bool(frames) and envelope_pb2.Control.FromString(frames[0]).frontend_id == FRONTEND_ID


@contextlib.contextmanager
def rendezvous_thread(endpoints: StreamsConfig, root: Path) -> Iterator[Rendezvous]:
    """A rendezvous running in a thread of this process; stopped and joined when the block ends."""
    # Plaintext: the test's own ends hold no keys (the streams' security is tested in tests/e2e/test_security.py).
    rendezvous = Rendezvous(replace(Config(), streams=endpoints, log=LogConfig(dir=str(root / "data")),
                                    security=SecurityConfig(curve=False)))
    thread = threading.Thread(target=rendezvous.run, name="rendezvous")
    thread.start()
    try:
        yield rendezvous
    finally:
        rendezvous.should_exit.set()
        thread.join(10)


def requests_message(*payloads: bytes, first: int = 0) -> list[bytes]:
    """A requests-stream message as a frontend sends it: topic, sequence frame, requests."""
    return [streams.topic_for("default"), streams.sequence_frame(b"fe-test", first), *payloads]


def scores_from_worker(model: ModelConfig, endpoints: StreamsConfig, ends: Ends, root: Path,
                       *messages: list[bytes], expected: int) -> tuple[Worker, list[envelope_pb2.ScoreEnvelope]]:
    """Run a worker in a thread, publish messages (each a requests_message) to it, collect ``expected`` scores."""
    pub, pull = ends.publisher(), ends.score_puller()
    worker = Worker(WorkerConfig(model, endpoints, str(root)), load_model(model.entry))
    thread = threading.Thread(target=worker.run, name="worker")
    thread.start()
    scores: list[envelope_pb2.ScoreEnvelope] = []
    try:
        handshake(pub, pull, streams.ANNOUNCE)
        for message in messages:
            pub.send_multipart(message)
        while len(scores) < expected:
            scores += [envelope_pb2.ScoreEnvelope.FromString(frame) for frame in receive(pull, streams.SCORE)]
    finally:
        worker.should_exit.set()
        thread.join(10)
    return worker, scores


def test_a_worker_scores_every_request_of_a_batched_message(endpoints: StreamsConfig, ends: Ends,
                                                           root: Path) -> None:
    model = ModelConfig(name="echo", entry="rvz_test_models:echo")
    message = requests_message(request(0), request(1), request(2))
    worker, scores = scores_from_worker(model, endpoints, ends, root, message, expected=3)
    assert sorted(score.request_id for score in scores) == ["r0", "r1", "r2"]
    assert {score.request_id: value_to_python(score.output)["x"] for score in scores} == {"r0": 0, "r1": 1, "r2": 2}
    assert worker.scored == 3 and worker.errors == 0


def test_a_worker_sheds_only_the_expired_requests_of_a_message(endpoints: StreamsConfig, ends: Ends,
                                                               root: Path) -> None:
    model = ModelConfig(name="echo", entry="rvz_test_models:echo", late_limit_ms=100)
    message = requests_message(request(0), request(1, deadline_s=-5.0), request(2))
    worker, scores = scores_from_worker(model, endpoints, ends, root, message, expected=2)
    assert sorted(score.request_id for score in scores) == ["r0", "r2"]
    assert worker.expired == 1


def test_the_rendezvous_answers_every_request_and_score_of_batched_messages(endpoints: StreamsConfig, ends: Ends,
                                                                            root: Path) -> None:
    pub = ends.publisher()
    with rendezvous_thread(endpoints, root) as rendezvous:
        dealer, push = ends.result_dealer(), ends.score_pusher()
        handshake(pub, dealer, streams.CONTROL)
        pub.send_multipart(requests_message(request(0), request(1)))
        push.send_multipart([streams.SCORE, champion_score(0), champion_score(1)])
        results: list[envelope_pb2.ResultEnvelope] = []
        while len(results) < 2:
            results += [envelope_pb2.ResultEnvelope.FromString(frame) for frame in receive(dealer, streams.RESULT)]
    assert sorted((r.request_id, r.model_name, r.status_code) for r in results) == [("r0", "champ", 0),
                                                                                     ("r1", "champ", 0)]
    assert rendezvous.counters.requests == 2 and rendezvous.counters.scores == 2


def test_only_answers_to_a_gone_frontend_count_as_undeliverable(endpoints: StreamsConfig, ends: Ends,
                                                                 root: Path) -> None:
    """A stopped frontend always leaves its last probe's answers behind: those are not lost answers."""
    pub = ends.publisher()
    with rendezvous_thread(endpoints, root) as rendezvous:
        dealer, push = ends.result_dealer(), ends.score_pusher()
        handshake(pub, dealer, streams.CONTROL)
        gone = b"fe-gone"
        announce = envelope_pb2.Control(kind=envelope_pb2.Control.ANNOUNCE, frontend_id=gone,
                                        model=envelope_pb2.ModelInfo(use_case="default", name="champ", version="1",
                                                                     role="champion", worker_id="w"))
        push.send_multipart([streams.ANNOUNCE, announce.SerializeToString()])  # forwarded to the gone frontend
        pub.send_multipart(requests_message(request(1, return_address=gone), request(2)))
        push.send_multipart([streams.SCORE, champion_score(1), champion_score(2)])
        # r2's answer comes after everything above was handled: same sockets, sent in that order.
        results = [envelope_pb2.ResultEnvelope.FromString(frame) for frame in receive(dealer, streams.RESULT)]
    assert [r.request_id for r in results] == ["r2"]
    assert rendezvous.counters.answered == 2
    assert rendezvous.counters.undeliverable == 1  # r1's answer, not the announce


def test_a_worker_counts_the_requests_it_missed_from_the_sequence_numbers(endpoints: StreamsConfig, ends: Ends,
                                                                         root: Path) -> None:
    model = ModelConfig(name="echo", entry="rvz_test_models:echo")
    worker, scores = scores_from_worker(model, endpoints, ends, root,
                                        requests_message(request(0), request(1), first=0),
                                        requests_message(request(5), first=5),  # 2, 3 and 4 never reached it
                                        expected=3)
    assert sorted(score.request_id for score in scores) == ["r0", "r1", "r5"]
    assert worker.gaps.missed == 3
