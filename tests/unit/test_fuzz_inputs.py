"""Fuzzing each input surface: whatever arrives ends in an answer or a precise error, and nothing crashes.

Config files, policy tables, Score requests (bytes and structures), and every frame a rendezvous or a
worker can be sent on its streams (the rendezvous and the worker run in threads on real sockets).
Log segments are fuzzed in test_log_recovery.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stream_batches import Ends, handshake, receive, rendezvous_thread, request

from harness import short_tempdir
from rvz.config import LimitsConfig, ModelConfig, StreamsConfig, parse_config, parse_policy
from rvz.errors import ConfigError, RvzError
from rvz.frontend.validation import OPEN, FeatureSchema, RequestCheck
from rvz.wire import streams
from rvz.wire.proto import envelope_pb2, scoring_pb2
from rvz.worker.loop import Worker, WorkerConfig
from rvz.worker.model import load_model

pytestmark = pytest.mark.timeout(120)
FAST = settings(max_examples=100, deadline=None)

toml_scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**7), st.floats(allow_nan=True),
                         st.text(max_size=30))
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
keys = st.sampled_from(["frontend", "streams", "log", "rendezvous", "models", "tracing", "metrics", "drift",
                        "limits", "listen", "deadline_ms", "schedule", "accept", "until_ms", "name", "entry",
                        "role", "x"])
tables = st.dictionaries(keys, st.one_of(toml_values, st.dictionaries(keys, toml_values, max_size=5)), max_size=5)


@FAST
@given(data=tables)
def test_any_config_file_is_read_or_refused_with_one_config_error(data: dict[str, Any]) -> None:
    try:
        parse_config(data, "fuzz.toml")
    except ConfigError as e:
        assert str(e).startswith("fuzz.toml: ")


@FAST
@given(data=st.dictionaries(keys, toml_values, max_size=6))
def test_any_policy_table_is_read_or_refused_with_one_config_error(data: dict[str, Any]) -> None:
    try:
        parse_policy(data, "policy.toml", "rendezvous.")
    except ConfigError as e:
        assert str(e).startswith("policy.toml: rendezvous.")


feature_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=30)
CHECK = RequestCheck(LimitsConfig(depth=4, values=40, string_bytes=16, features=6))
SCHEMA = FeatureSchema({"x": "number"}, True)


@FAST
@given(payload=st.binary(max_size=400))
def test_any_bytes_as_a_score_request_are_refused_precisely_or_checked(payload: bytes) -> None:
    try:
        CHECK.check_features(CHECK.parse(payload), "default", OPEN)
    except RvzError as e:
        assert e.code.name in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED") and str(e)


@FAST
@given(features=st.dictionaries(st.text(max_size=20), feature_values, max_size=8))
def test_any_features_pass_or_get_invalid_argument_and_no_non_finite_number_passes(features: dict[str, Any]) -> None:
    request = scoring_pb2.ScoreRequest()
    request.features.update(features)
    try:
        CHECK.check_features(CHECK.parse(request.SerializeToString()), "default", SCHEMA)
    except RvzError as e:
        assert e.code.name == "INVALID_ARGUMENT" and str(e)
    else:
        assert not _has_non_finite(features)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return isinstance(value, list) and any(_has_non_finite(v) for v in value)


frames = st.lists(st.binary(max_size=80), min_size=0, max_size=5)
FUZZ_ID = b"fe-fuzz"


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Ends, Worker]]:
    """A rendezvous and a worker in threads, with the test's own ends of the streams, for every example."""
    for root in short_tempdir():
        endpoints = StreamsConfig(requests=f"ipc://{root}/req.sock", scores=f"ipc://{root}/scores.sock",
                                  results=f"ipc://{root}/results.sock", high_water_mark=1000)
        ends = Ends(endpoints)
        model = ModelConfig(name="echo", entry="rvz_test_models:echo")
        worker = Worker(WorkerConfig(model, endpoints, str(root)), load_model(model.entry))
        thread = threading.Thread(target=worker.run, name="worker")
        try:
            with rendezvous_thread(endpoints, root):
                thread.start()
                yield ends, worker
        finally:
            worker.should_exit.set()
            thread.join(10)
            ends.close()


class Counter:
    n = 0


@settings(max_examples=60, deadline=None)
@given(garbage=st.lists(frames, min_size=1, max_size=8))
def test_any_frames_on_the_streams_leave_the_rendezvous_and_workers_answering(
        running: tuple[Ends, Worker], garbage: list[list[bytes]]) -> None:
    ends, worker = running
    if not ends.opened:
        ends.publisher(), ends.result_dealer(), ends.score_pusher()
        handshake(ends.opened[0], ends.opened[1], streams.CONTROL)
    pub, dealer, push = ends.opened
    for message in garbage:
        if message:
            push.send_multipart(message)  # the scores stream: any kind, any payloads
        pub.send_multipart([streams.topic_for("default"), *message])  # the requests stream, to both
        pub.send_multipart([streams.CONTROL_TOPIC, *message])
    Counter.n += 1
    pub.send_multipart([streams.topic_for("default"), streams.sequence_frame(FUZZ_ID, 10**6 + Counter.n),
                        request(Counter.n)])
    while True:  # the real request is still answered by the worker's score, after whatever came before it
        results = [envelope_pb2.ResultEnvelope.FromString(f) for f in receive(dealer, streams.RESULT)]
        done = [r for r in results if r.request_id == f"r{Counter.n}"]
        if done:
            assert done[0].model_name == "echo" and done[0].status_code == 0
            break
    assert worker.scored >= Counter.n
