"""`rvz replay` (the click command is ``rvz.cli.replay``): score archived requests with a model that
was not live at the time.

The request logs of every frontend (``rvz.log.dirs``) are read merged by the
time each request was received (filtered by use case and time), the model
scores the requests exactly as they were sent (``predict_batch`` when it has
one), and each score goes to the scores log marked ``replayed``:

- directly, when no rendezvous holds the scores log (offline replay), or
- through the scores stream, when a rendezvous is running: it logs replayed
  scores as they are, without treating them as answers. Replay starts only once
  a rendezvous answers on the stream, and succeeds only once every score is read
  back from the scores logs of this data directory (DATA/scores or a DATA/scores.i
  of another rendezvous, ``rvz.log.dirs``; a rendezvous of another deployment would
  log them elsewhere).

`rvz report` then compares the replayed model with what was actually answered.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zmq
from rich.progress import Progress

from rvz.config import Config, ModelConfig
from rvz.errors import LogLockedError, ReplayFailed, StreamError
from rvz.log.dirs import log_dirs, read_by_time
from rvz.log.reader import Tail
from rvz.log.writer import LogWriter
from rvz.security.curve import CurveClient
from rvz.security.deployment import keyring_for
from rvz.wire import streams
from rvz.wire.proto import envelope_pb2
from rvz.worker.loop import Worker, WorkerConfig, decode_request
from rvz.worker.model import Model

# How long a running rendezvous has to answer on the scores stream, then to log what it was sent.
HANDSHAKE_TIMEOUT_S = 3.0
CONFIRM_TIMEOUT_S = 10.0
CONFIRM_POLL_S = 0.02


@dataclass(frozen=True)
class ReplayOptions:
    data_dir: Path
    model: ModelConfig
    since_ns: int | None
    until_ns: int | None
    rate: float


@dataclass(frozen=True)
class Replayed:
    """What a replay did: scores written (errors included), errors, and where they went."""

    scores: int
    errors: int
    through: str


class ScoreSink(Protocol):
    via: str

    def send(self, score: envelope_pb2.ScoreEnvelope) -> None: ...
    def close(self) -> None: ...
    def confirm(self, worker_id: str, sent: int) -> None: ...


class LogSink:
    """Offline: append to the scores log ourselves."""

    via = "the scores log"

    def __init__(self, log: LogWriter) -> None:
        self.log = log

    def send(self, score: envelope_pb2.ScoreEnvelope) -> None:
        record = envelope_pb2.ScoreRecord(received_unix_ns=time.time_ns())
        record.score.CopyFrom(score)
        self.log.append(record.SerializeToString())

    def close(self) -> None:
        self.log.stop()

    def confirm(self, worker_id: str, sent: int) -> None:
        """Nothing to wait for: every append was written before it returned."""


class StreamSink:
    """A rendezvous is running: hand the scores to it (blocking sends: replay waits rather than drops)."""

    via = "the running rendezvous"

    def __init__(self, config: Config, data_dir: Path) -> None:
        self.endpoint = config.streams.scores
        self.where = f"streams.scores of {config.source}"
        scores_log = data_dir / "scores"
        # Before the first send: what follows is this replay's, in whichever rendezvous's log it lands.
        self.tails = [Tail(directory) for directory in log_dirs(data_dir, "scores")]
        keyring = keyring_for(config, "replay")  # the replay key: the rendezvous takes only replayed scores from it
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            self.push = streams.score_pusher(self.ctx, self.endpoint, config.streams.high_water_mark,
                                             handshake_timeout_s=HANDSHAKE_TIMEOUT_S,
                                             security=None if keyring is None else CurveClient(keyring, "rendezvous"))
        except StreamError as e:
            self.ctx.term()
            raise ReplayFailed(f"{scores_log} is held by a running writer, but {e} ({self.where}): give --config "
                               "with the running deployment's config file") from e

    def send(self, score: envelope_pb2.ScoreEnvelope) -> None:
        self.push.send_multipart([streams.SCORE, score.SerializeToString()])

    def close(self) -> None:
        self.push.close()  # lingers until queued scores are delivered (streams.FLUSH_MS)
        self.ctx.term()

    def confirm(self, worker_id: str, sent: int) -> None:
        """Wait until the scores logs hold every score sent; raises ``ReplayFailed`` if they do not in time."""
        found = 0
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while True:
            found += sum(envelope_pb2.ScoreRecord.FromString(p).score.worker_id == worker_id
                         for tail in self.tails for p in tail.new_records())
            if found >= sent:
                return
            if time.monotonic() > deadline:
                raise ReplayFailed(f"only {found} of the {sent} scores sent to the rendezvous at {self.endpoint} "
                                   f"({self.where}) reached {', '.join(str(t.directory) for t in self.tails)} in "
                                   f"{CONFIRM_TIMEOUT_S:g} s: that rendezvous writes another log directory; give "
                                   "--config with this deployment's config file")
            time.sleep(CONFIRM_POLL_S)  # a log file has no signal to wait on


def archived(data_dir: Path, options: ReplayOptions) -> tuple[list[bytes], set[str]]:
    """Request envelopes of the use case in [since, until) from every frontend's request log, merged by
    time (``read_by_time``); and every use case seen."""
    payloads: list[bytes] = []
    use_cases: set[str] = set()
    for payload, envelope in read_by_time(data_dir, "requests", envelope_pb2.RequestEnvelope.FromString):
        use_cases.add(envelope.use_case)
        if envelope.use_case != options.model.use_case:
            continue
        if options.since_ns is not None and envelope.received_unix_ns < options.since_ns:
            continue
        if options.until_ns is not None and envelope.received_unix_ns >= options.until_ns:
            continue
        payloads.append(payload)
    return payloads, use_cases


def open_sink(config: Config, data_dir: Path) -> ScoreSink:
    """The scores log itself when free, else the stream of the rendezvous holding it (``ReplayFailed`` if none)."""
    log = LogWriter(data_dir / "scores", "rvz.v1.ScoreRecord", fsync=config.log.fsync)
    try:
        log.start()
        return LogSink(log)
    except LogLockedError:
        return StreamSink(config, data_dir)


def run_replay(config: Config, options: ReplayOptions, model: Model, show_progress: bool) -> Replayed:
    """Score the archived requests into the scores log; raises ``ReplayFailed`` unless every score is there
    (and ``LogError`` or ``zmq.ZMQError`` if a log or the stream cannot be used)."""
    payloads, use_cases = archived(options.data_dir, options)
    if not payloads:
        searched = ", ".join(map(str, log_dirs(options.data_dir, "requests"))) or options.data_dir / "requests"
        raise ReplayFailed(f"no archived request of use case {options.model.use_case!r} in the time asked for in "
                           f"{searched} (use cases in it: "
                           f"{', '.join(map(repr, sorted(use_cases))) or 'none'}); give --use-case")
    worker_id = f"{socket.gethostname()}:{os.getpid()}:replay-{options.model.name}-{time.time_ns():x}"
    sink = open_sink(config, options.data_dir)
    try:
        scores, errors = replay(options, model, worker_id, payloads, sink, show_progress)
    finally:
        sink.close()
    sink.confirm(worker_id, scores)
    return Replayed(scores, errors, sink.via)


def replay(options: ReplayOptions, model: Model, worker_id: str, payloads: list[bytes], sink: ScoreSink,
           show_progress: bool) -> tuple[int, int]:
    """Score ``payloads`` into ``sink``; returns (scores sent, errors among them)."""
    scorer = Worker(WorkerConfig(options.model, Config().streams, str(options.data_dir)), model)
    scorer.worker_id = worker_id
    batch_max = options.model.batch_max
    started = time.monotonic()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"replaying into {options.model.name}", total=len(payloads))
        for first in range(0, len(payloads), batch_max):
            batch = [decode_request(p, scorer.contract) for p in payloads[first:first + batch_max]]
            for score in scorer.score_batch(batch):
                score.replayed = True
                sink.send(score)
            progress.advance(task, len(batch))
            if options.rate:  # pace to the asked rate: a replay must not starve a live deployment
                ahead = (first + len(batch)) / options.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return scorer.scored, scorer.errors
