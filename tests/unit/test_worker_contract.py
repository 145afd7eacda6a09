"""A worker checks its own model's declared features and output size: its problems are its error scores."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from rvz.config import ModelConfig, StreamsConfig
from rvz.wire.proto import envelope_pb2, scoring_pb2
from rvz.worker.contract import Contract
from rvz.worker.loop import Worker, WorkerConfig, decode_request
from rvz.worker.model import Model


class Glucose:
    features: ClassVar[dict[str, str]] = {"glucose": "number", "sex": "string", "smoker": "bool"}

    def predict(self, features: dict[str, Any]) -> Any:
        return {"risk": features["glucose"] / 10}


class Huge:
    def predict(self, features: dict[str, Any]) -> Any:
        return "x" * 5000


def envelope(features: dict[str, Any], request_id: str = "r1") -> bytes:
    request = scoring_pb2.ScoreRequest()
    request.features.update(features)
    return envelope_pb2.RequestEnvelope(request_id=request_id, use_case="default",
                                        request=request.SerializeToString()).SerializeToString()


def worker(target: Any, max_output_bytes: int = 1024 * 1024) -> Worker:
    config = WorkerConfig(ModelConfig(name="m", entry="x:y", role="challenger"), StreamsConfig(), "/nonexistent",
                          max_output_bytes=max_output_bytes)
    return Worker(config, Model(target, "tests:target"))


@pytest.mark.parametrize(("features", "problem"), [
    ({"glucose": 90.0, "sex": "f", "smoker": False, "extra": 1.0}, None),
    ({"sex": "f", "smoker": False}, "missing feature 'glucose'"),
    ({}, "missing features 'glucose', 'sex', 'smoker'"),
    ({"glucose": "high", "sex": "f", "smoker": False}, "feature 'glucose' must be a number, got string"),
    ({"glucose": 1.0, "sex": "f", "smoker": 1.0}, "feature 'smoker' must be a bool, got number"),
    ({"glucose": True, "sex": "f", "smoker": True}, "feature 'glucose' must be a number, got bool"),
])
def test_a_contract_names_what_is_missing_or_mistyped(features: dict[str, Any], problem: str | None) -> None:
    assert Contract(Glucose.features).problem(features) == problem
    assert Contract({}).problem(features) is None


def test_a_request_the_model_cannot_take_gets_an_error_score_and_the_model_is_not_called() -> None:
    w = worker(Glucose())
    ok, missing = w.score_batch([decode_request(envelope({"glucose": 90.0, "sex": "m", "smoker": True}), w.contract),
                                 decode_request(envelope({"bmi": 30.0}, "r2"), w.contract)])
    assert (ok.error, ok.output.struct_value.fields["risk"].number_value) == ("", 9.0)
    assert (missing.request_id, missing.error_type) == ("r2", "InvalidRequest")
    assert missing.error == "missing features 'glucose', 'sex', 'smoker'"
    assert (w.scored, w.errors) == (2, 1)


def test_an_output_over_the_limit_becomes_an_error_score() -> None:
    w = worker(Huge(), max_output_bytes=4096)
    (score,) = w.score_batch([decode_request(envelope({"x": 1.0}))])
    assert score.error_type == "OutputTooLarge"
    assert score.error == "output too large: 5003 bytes, limit 4096 (limits.output_bytes)"
    assert not score.HasField("output")
