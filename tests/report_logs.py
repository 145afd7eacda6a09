"""Logs of a known history for the report tests, written with LogWriter: two use cases (iris, fraud),
live and replayed models, a timeout, late and orphan scores, and truths (the feedback log)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from rvz.cli.report import report_command
from rvz.feedback.log import LOG_NAME, RECORD_TYPE
from rvz.log.writer import LogWriter
from rvz.wire.codec import to_value
from rvz.wire.proto import envelope_pb2, scoring_pb2

MS = 1_000_000
S = 1_000_000_000
LABELS = ("setosa", "versicolor", "virginica")
N_IRIS = 100
N_FRAUD = 40
DEADLINE_EXCEEDED = 4


@dataclass
class Logs:
    """Writes the three logs as the frontend and the rendezvous would."""

    requests: LogWriter
    scores: LogWriter
    results: LogWriter

    def request(self, use_case: str, counter: int, at_ns: int) -> str:
        request_id = request_id_at(at_ns, counter)
        self.requests.append(envelope_pb2.RequestEnvelope(
            request_id=request_id, use_case=use_case, request=scoring_pb2.ScoreRequest(use_case=use_case)
            .SerializeToString(), received_unix_ns=at_ns, deadline_unix_ns=at_ns + 100 * MS).SerializeToString())
        return request_id

    def score(self, request_id: str, use_case: str, model: tuple[str, str, str], output: Any, sent_ns: int,
              latency_ms: float, *, error: bool = False, late: bool = False, replayed: bool = False,
              orphan: bool = False) -> None:
        name, version, role = model
        received = sent_ns + round(latency_ms * MS)
        # Compute time = latency - 2 ms: 1 ms on the stream each way.
        score = envelope_pb2.ScoreEnvelope(
            request_id=request_id, use_case=use_case, model_name=name, model_version=version, role=role,
            started_unix_ns=sent_ns + MS, finished_unix_ns=received - MS, replayed=replayed, worker_id=f"{name}-1")
        if error:
            score.error, score.error_type = "boom", "ValueError"
        else:
            score.output.CopyFrom(to_value(output))
        self.scores.append(envelope_pb2.ScoreRecord(score=score, received_unix_ns=received, late=late,
                                                    orphan=orphan).SerializeToString())

    def result(self, request_id: str, use_case: str, received_ns: int, model: tuple[str, str, str] | None,
               output: Any = None, with_response: bool = True) -> None:
        result = envelope_pb2.ResultEnvelope(
            request_id=request_id, use_case=use_case, received_unix_ns=received_ns,
            deadline_unix_ns=received_ns + 100 * MS, decided_unix_ns=received_ns + 20 * MS, elapsed_ms=20.0)
        if model is None:
            result.status_code, result.rule = DEADLINE_EXCEEDED, "timeout"
        else:
            result.model_name, result.model_version, result.role = model
            result.rule = "window 1 (0-30 ms): champion"
            if with_response:
                response = scoring_pb2.ScoreResponse(request_id=request_id, model_name=model[0])
                response.output.CopyFrom(to_value(output))
                result.response = response.SerializeToString()
        self.results.append(result.SerializeToString())


def request_id_at(at_ns: int, counter: int) -> str:
    # The layout of rvz.ids: ms since the epoch, node, counter (the report reads the time back from it).
    return f"{at_ns // MS:012x}0000abcd{counter:012x}"


GBM = ("gbm", "3", "champion")
LOGREG = ("logreg", "1", "challenger")
RULES = ("rules", "1", "canary")
NEWBIE = ("newbie", "0.1", "challenger")
FRAUD_GBM = ("fraud-gbm", "1", "champion")
FRAUD_CANARY = ("fraud-canary", "1", "canary")
FRAUD_SHIFTED = ("fraud-shifted", "2", "challenger")


def label(i: int) -> str:
    return LABELS[i % 3]


def other_label(i: int) -> str:
    return LABELS[(i + 1) % 3]


def classifier(name: str, confidence: float) -> dict[str, Any]:
    return {"label": name, "probabilities": {name: confidence, "other": 1 - confidence}}


def write_iris(logs: Logs, i: int, at: int) -> str:
    """Champion gbm fails on i%10 == 9 and is slow (50 ms, after its 30 ms window) on i%10 == 5; challenger
    logreg differs from it on i%10 == 0 and is late (150 ms) on i%20 == 0; canary rules answers plain
    strings. Results: logreg answers where gbm failed, except request 99, which timed out."""
    rid = logs.request("iris", i, at)
    logreg_label = other_label(i) if i % 10 == 0 else label(i)
    gbm = (rid, "iris", GBM, classifier(label(i), 0.8), at, 50 if i % 10 == 5 else 10)
    logreg = (rid, "iris", LOGREG, classifier(logreg_label, 0.6), at, 150 if i % 20 == 0 else 40)
    # Scores arrive in any order: on odd requests the challenger's is logged before the champion's.
    first, second = (gbm, logreg) if i % 2 == 0 else (logreg, gbm)
    logs.score(*first, error=first is gbm and i % 10 == 9, late=first is logreg and i % 20 == 0)
    logs.score(*second, error=second is gbm and i % 10 == 9, late=second is logreg and i % 20 == 0)
    logs.score(rid, "iris", RULES, label(i), at, 5)
    # Even results carry the answered output; odd ones only name the model (the report joins its score).
    if i == 99:
        logs.result(rid, "iris", at, None)
    elif i % 10 == 9:
        logs.result(rid, "iris", at, LOGREG, classifier(logreg_label, 0.6), with_response=i % 2 == 0)
    else:
        logs.result(rid, "iris", at, GBM, classifier(label(i), 0.8), with_response=i % 2 == 0)
    return rid


def write_fraud(logs: Logs, i: int, at: int) -> str:
    """Numbers: the canary's distribution equals the champion's; the challenger's is shifted by +0.5."""
    rid = logs.request("fraud", i, at)
    value = i / N_FRAUD
    logs.score(rid, "fraud", FRAUD_GBM, {"score": value}, at, 3)
    logs.score(rid, "fraud", FRAUD_CANARY, value, at, 4)
    logs.score(rid, "fraud", FRAUD_SHIFTED, {"value": value + 0.5}, at, 20)
    logs.result(rid, "fraud", at, FRAUD_GBM, {"score": value})
    return rid


@dataclass(frozen=True)
class Dataset:
    root: Path
    iris_t0: int
    fraud_t0: int


def iris_truth(i: int) -> str:
    """Right for logreg everywhere; gbm is wrong on i%10 == 0, newbie on i%10 == 0 and i%10 == 3."""
    return other_label(i) if i % 10 == 0 else label(i)


FRAUD_TRUTH_SHIFT = 0.1  # the champion's error; the shifted challenger's is 0.4


def write_truths(root: Path, iris_ids: list[str], fraud_ids: list[str]) -> str:
    """Truths of every request, a first wrong one for iris request 1 (the last one wins), and one for a
    request no log holds (returned)."""
    unknown = request_id_at(time.time_ns() - 3600 * S, 4242)
    with LogWriter(root / LOG_NAME, RECORD_TYPE, fsync=False) as feedback:
        def truth(request_id: str, value: Any) -> None:
            feedback.append(envelope_pb2.FeedbackRecord(request_id=request_id, truth=to_value(value),
                                                        received_unix_ns=time.time_ns()).SerializeToString())

        truth(iris_ids[1], "wrong")
        for i, rid in enumerate(iris_ids):
            truth(rid, iris_truth(i))
        for i, rid in enumerate(fraud_ids):
            truth(rid, i / N_FRAUD + FRAUD_TRUTH_SHIFT)
        truth(unknown, "setosa")
    return unknown


def write_logs(root: Path, iris_t0: int, fraud_t0: int) -> None:
    with (LogWriter(root / "requests", "rvz.v1.RequestEnvelope", fsync=False) as requests,
          LogWriter(root / "scores", "rvz.v1.ScoreRecord", fsync=False) as scores,
          LogWriter(root / "results", "rvz.v1.ResultEnvelope", fsync=False) as results):
        logs = Logs(requests, scores, results)
        ids = [write_iris(logs, i, iris_t0 + i * S) for i in range(N_IRIS)]
        orphan_at = iris_t0 + N_IRIS * S + S // 2
        logs.score(request_id_at(orphan_at, 999), "iris", RULES, "setosa", orphan_at, 5, orphan=True)
        fraud_ids = [write_fraud(logs, i, fraud_t0 + i * S) for i in range(N_FRAUD)]
        # `rvz replay`, later: newbie scores the archived iris requests, differing from the answer on i%10 == 3.
        replay_at = time.time_ns()
        for i, rid in enumerate(ids):
            logs.score(rid, "iris", NEWBIE, {"label": other_label(i) if i % 10 == 3 else label(i)}, replay_at, 7,
                       replayed=True)
    write_truths(root, ids, fraud_ids)


def build_dataset(root: Path) -> Dataset:
    """Write the history into ROOT (iris three hours ago, fraud ten minutes ago)."""
    now_s = time.time_ns() // S
    data = Dataset(root, iris_t0=(now_s - 3 * 3600) * S, fraud_t0=(now_s - 600) * S)
    write_logs(root, data.iris_t0, data.fraud_t0)
    return data


def report(*args: str) -> dict[str, Any]:
    """`rvz report ARGS --json`, run in this process; its document."""
    result = CliRunner().invoke(report_command, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document
