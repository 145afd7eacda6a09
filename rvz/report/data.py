"""Loading the logs for `rvz report`: one streaming pass per log, joined by request id into numpy arrays.

The logs can hold millions of records, so nothing keeps a protobuf object per record. Requests become
a row index (the only per-record Python object is the request-id -> row dict); each score becomes one
element in its model's compact arrays (request row, latencies, flags, label code, number). The three
logs are read in the order requests, results, scores, so that every score can be joined to its
request, and to what was answered for that request, as it streams past. Each is read as one log made of
every writer's (``rvz.log.dirs``), merged by time: the requests of every frontend (DATA/requests and each
DATA/requests.NAME), the results and scores of every rendezvous (DATA/results and each DATA/results.i,
scores likewise). Rows are keyed by request id, which is unique across frontends (a log's record offsets
are not); a request's results and scores are those of the one rendezvous that decided it, so nothing is
deduplicated: a request id met twice counts as it does twice in one log.

Output values are reduced to at most a label and a number, read as each use case declares
(``OutputSpec``), and the class probabilities where outputs carry them; an output that gives neither
is counted as not compared, with its shape. Truths (the feedback log) join their requests by id, the
last one recorded winning. Each live score is judged on time against the schedule of the policy that
decided its request (``rvz.report.history``), with the role it had then.
"""

from __future__ import annotations

import contextlib
import math
import os
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rvz.compare.outputs import OutputSpec, shape_of
from rvz.feedback.log import iter_feedback
from rvz.log.dirs import read_by_time
from rvz.rendezvous.outcome import Outcome, outcome_of
from rvz.report.arrays import (
    ERROR,
    F64,
    HAS_WINDOW,
    I32,
    I64,
    LATE,
    NO_LABEL,
    ON_TIME,
    ORPHAN,
    Labels,
    ModelArrays,
    ModelKey,
    Samples,
)
from rvz.report.history import PolicyHistory
from rvz.wire.ids import id_time_ms
from rvz.wire.proto import envelope_pb2, scoring_pb2

if TYPE_CHECKING:
    from google.protobuf import struct_pb2



@dataclass(frozen=True)
class Filter:
    """Which requests the report covers: received in [since_ns, until_ns), of one use case or all."""

    since_ns: int | None = None
    until_ns: int | None = None
    use_case: str | None = None

    def keeps(self, use_case: str, received_ns: int) -> bool:
        if self.use_case is not None and use_case != self.use_case:
            return False
        if self.since_ns is not None and received_ns < self.since_ns:
            return False
        return self.until_ns is None or received_ns < self.until_ns


@dataclass
class LogData:
    """The joined logs. Per-request arrays are indexed by request row."""

    use_cases: list[str]
    received_ns: I64
    use_case_code: I32
    # The champion's score of each request (the live score whose role was champion at the time).
    champion_label: I32
    champion_number: F64
    champion_model: I32
    # What the caller was answered (a model's output; defaults and errors leave these empty).
    answered_label: I32
    answered_number: F64
    answered_model: I32
    # The policy version that decided each request (0: no result logged).
    policy_version: I32
    # The truth of each request (the feedback log), read as its use case's outputs are.
    truth_label: I32
    truth_number: F64
    models: list[ModelArrays]
    chosen: Counter[ModelKey]
    outcomes: dict[str, Counter[Outcome]]
    labels: list[str]
    outputs: dict[str, OutputSpec]
    history: PolicyHistory
    # Truths whose request id is in no request log (within the time asked for), and truths in all.
    unmatched_truths: int = 0
    truths: int = 0

    def requests_of(self, use_case: str) -> int:
        if use_case not in self.use_cases:
            return 0
        return int(np.count_nonzero(self.use_case_code == self.use_cases.index(use_case)))


def load(data_dir: str | os.PathLike[str], history: PolicyHistory, keep: Filter,
         outputs: dict[str, OutputSpec] | None = None, other: OutputSpec | None = None) -> LogData:
    """Read DATA_DIR/requests, feedback (every frontend's), results and scores (every rendezvous's; each
    may be absent) into one LogData; each use case's outputs are read by ``outputs`` (by ``other`` for one
    not in it: default, the conventional shapes)."""
    loader = _Loader(history, keep, dict(outputs or {}), other or OutputSpec())
    root = Path(data_dir)
    loader.read_requests(root)
    loader.read_results(root)
    loader.read_feedback(root)
    loader.read_scores(root)
    return loader.data()


class _Loader:
    def __init__(self, history: PolicyHistory, keep: Filter, outputs: dict[str, OutputSpec],
                 other: OutputSpec) -> None:
        self.history, self.keep, self.outputs, self.other = history, keep, outputs, other
        self.unmatched_truths = self.truths = 0
        # Hashes of the ids of requests the filter left out (compact: the logs can hold millions).
        self.skipped = array("q")
        self.ids: dict[str, int] = {}
        self.use_cases: list[str] = []
        self.received = array("q")
        self.use_case_code = array("i")
        self.labels = Labels()
        self.samples: dict[ModelKey, Samples] = {}
        self.chosen: Counter[ModelKey] = Counter()
        self.outcomes: dict[str, Counter[Outcome]] = {}
        self._window_cache: dict[tuple[str, int, str, str], float] = {}
        self._allocate(0)

    def _allocate(self, n: int) -> None:
        self.champion_label = np.full(n, NO_LABEL, np.int32)
        self.champion_number = np.full(n, np.nan)
        self.champion_model = np.full(n, -1, np.int32)
        self.answered_label = np.full(n, NO_LABEL, np.int32)
        self.answered_number = np.full(n, np.nan)
        self.answered_model = np.full(n, -1, np.int32)
        self.answered_known = np.zeros(n, np.bool_)
        self.policy_version = np.zeros(n, np.int32)
        self.truth_label = np.full(n, NO_LABEL, np.int32)
        self.truth_number = np.full(n, np.nan)

    def spec(self, use_case: str) -> OutputSpec:
        spec = self.outputs.get(use_case)
        if spec is None:
            spec = self.outputs[use_case] = self.other
        return spec

    def _model(self, key: ModelKey) -> Samples:
        samples = self.samples.get(key)
        if samples is None:
            samples = self.samples[key] = Samples(key, len(self.samples))
        return samples

    def _use_case(self, row: int) -> str:
        return self.use_cases[self.use_case_code[row]]

    def read_requests(self, data_dir: Path) -> None:
        codes: dict[str, int] = {}
        for _, request in read_by_time(data_dir, "requests", envelope_pb2.RequestEnvelope.FromString):
            if request.request_id in self.ids:
                continue
            if not self.keep.keeps(request.use_case, request.received_unix_ns):
                self.skipped.append(hash(request.request_id))  # a truth of it is not unmatched
                continue
            code = codes.get(request.use_case)
            if code is None:
                code = codes[request.use_case] = len(self.use_cases)
                self.use_cases.append(request.use_case)
            self.ids[request.request_id] = len(self.received)
            self.received.append(request.received_unix_ns)
            self.use_case_code.append(code)
        self._allocate(len(self.received))

    def read_results(self, data_dir: Path) -> None:
        for _, result in read_by_time(data_dir, "results", envelope_pb2.ResultEnvelope.FromString):
            row = self.ids.get(result.request_id, -1)
            if row < 0 and not self.keep.keeps(result.use_case, result.received_unix_ns):
                continue
            use_case = self._use_case(row) if row >= 0 else result.use_case
            outcome = outcome_of(result)
            self.outcomes.setdefault(use_case, Counter())[outcome] += 1
            if row >= 0:
                self.policy_version[row] = result.policy_version
            if outcome == Outcome.ANSWERED:
                key = ModelKey(use_case, result.model_name, result.model_version, False)
                self.chosen[key] += 1
                code = self._model(key).code  # listed even if none of its scores is in range
                if row >= 0:
                    self._note_answer(row, code, result.response, use_case)

    def _note_answer(self, row: int, model_code: int, response: bytes, use_case: str) -> None:
        self.answered_model[row] = model_code
        if response:  # the answered output itself; otherwise it is joined from the answering model's score
            label, number = self.spec(use_case).read(scoring_pb2.ScoreResponse.FromString(response).output)
            self._set_answer(row, label, number)

    def read_feedback(self, data_dir: Path) -> None:
        skipped = np.sort(np.frombuffer(self.skipped, np.int64))
        for record in iter_feedback(data_dir):
            row = self.ids.get(record.request_id, -1)
            if row < 0:
                self.unmatched_truths += self._in_range(record.request_id) and not _holds(skipped, record.request_id)
                continue
            self.truths += 1
            label, number = self.spec(self._use_case(row)).read_truth(record.truth)
            self.truth_label[row] = self.labels.code(label)
            self.truth_number[row] = math.nan if number is None else number

    def _in_range(self, request_id: str) -> bool:
        """Might the request be in range? (Its id says when it was received; its use case is unknown.)"""
        try:
            received_ns = id_time_ms(request_id) * 1_000_000
        except ValueError:
            return True
        return Filter(self.keep.since_ns, self.keep.until_ns).keeps("", received_ns)

    def _set_answer(self, row: int, label: str | None, number: float | None) -> None:
        self.answered_label[row] = self.labels.code(label)
        self.answered_number[row] = math.nan if number is None else number
        self.answered_known[row] = True

    def read_scores(self, data_dir: Path) -> None:
        for _, record in read_by_time(data_dir, "scores", envelope_pb2.ScoreRecord.FromString):
            score = record.score
            row = self.ids.get(score.request_id, -1)
            if row < 0 and not self._keeps_unmatched(score, record.received_unix_ns):
                continue
            use_case = self._use_case(row) if row >= 0 else score.use_case
            samples = self._model(ModelKey(use_case, score.model_name, score.model_version, score.replayed))
            self._add(samples, record, row)

    def _keeps_unmatched(self, score: envelope_pb2.ScoreEnvelope, received_ns: int) -> bool:
        # Its request is not in the (filtered) requests log: the request id tells when it was received.
        with contextlib.suppress(ValueError):  # not an rvz id: the score's own arrival time is the best guess
            received_ns = id_time_ms(score.request_id) * 1_000_000
        return self.keep.keeps(score.use_case, received_ns)

    def _add(self, samples: Samples, record: envelope_pb2.ScoreRecord, row: int) -> None:
        score = record.score
        failed = bool(score.error or score.error_type)
        flags = ERROR * failed | LATE * record.late | ORPHAN * (record.orphan or row < 0)
        arrival_ms = window_ms = math.nan
        if row >= 0 and not score.replayed:
            arrival_ns = record.received_unix_ns - self.received[row]
            arrival_ms = arrival_ns / 1e6
            window_ms = self._window_ms(samples.key.use_case, row, score)
            flags |= self._timeliness(window_ms, arrival_ns)
        label, number = (None, None) if failed else self._read_output(samples, score.output)
        label_code = self.labels.code(label)
        samples.roles[score.role] += 1
        samples.window_ms.append(window_ms)
        samples.row.append(row)
        samples.arrival_ms.append(arrival_ms)
        samples.compute_ms.append((score.finished_unix_ns - score.started_unix_ns) / 1e6)
        samples.flags.append(flags)
        samples.label.append(label_code)
        samples.number.append(math.nan if number is None else number)
        if row >= 0 and not failed and not score.replayed:
            self._join(samples.code, score.role, row, label, label_code, number)

    def _read_output(self, samples: Samples, output: struct_pb2.Value) -> tuple[str | None, float | None]:
        spec = self.spec(samples.key.use_case)
        label, number = spec.read(output)
        if label is None and number is None:
            samples.unreadable += 1
            samples.unreadable_shape = samples.unreadable_shape or shape_of(output)
            return label, number
        if spec.kind != "number":
            for name, probability in (spec.probabilities_of(output) or {}).items():
                samples.probability_of.append(len(samples.row))
                samples.probability_label.append(self.labels.code(name))
                samples.probability.append(probability)
        return label, number

    def _window_ms(self, use_case: str, row: int, score: envelope_pb2.ScoreEnvelope) -> float:
        """End of the first window accepting the score's role (at the time) or model, in the policy that
        decided its request; NaN when none does."""
        key = (use_case, int(self.policy_version[row]), score.role, score.model_name)
        end_ms = self._window_cache.get(key)
        if end_ms is None:
            found = self.history.window_end_ms(*key)
            end_ms = self._window_cache[key] = math.nan if found is None else found
        return end_ms

    @staticmethod
    def _timeliness(window_ms: float, arrival_ns: int) -> int:
        if math.isnan(window_ms):
            return 0
        # Rounded up to whole ns as the rendezvous does, so "on time" here means the same as there.
        return HAS_WINDOW | (ON_TIME if arrival_ns < math.ceil(window_ms * 1e6) else 0)

    def _join(self, code: int, role: str, row: int, label: str | None, label_code: int,
              number: float | None) -> None:
        if role == "champion" and self.champion_model[row] < 0:
            self.champion_model[row] = code
            self.champion_label[row] = label_code
            self.champion_number[row] = math.nan if number is None else number
        if self.answered_model[row] == code and not self.answered_known[row]:
            self._set_answer(row, label, number)

    def data(self) -> LogData:
        return LogData(
            use_cases=self.use_cases,
            received_ns=np.frombuffer(self.received, np.int64),
            use_case_code=np.frombuffer(self.use_case_code, np.int32),
            champion_label=self.champion_label, champion_number=self.champion_number,
            champion_model=self.champion_model,
            answered_label=self.answered_label, answered_number=self.answered_number,
            answered_model=self.answered_model, policy_version=self.policy_version,
            truth_label=self.truth_label, truth_number=self.truth_number,
            models=[samples.freeze() for samples in self.samples.values()],
            chosen=self.chosen, outcomes=self.outcomes, labels=self.labels.names, outputs=self.outputs,
            history=self.history, unmatched_truths=self.unmatched_truths, truths=self.truths,
        )


def _holds(hashes: npt.NDArray[np.int64], request_id: str) -> bool:
    """Is ``request_id`` (probably: hashes may collide) one of the requests whose ``hashes`` are sorted?"""
    key = hash(request_id)
    at = int(np.searchsorted(hashes, key))
    return at < hashes.size and int(hashes[at]) == key
