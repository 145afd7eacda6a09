"""`rvz replay`: score archived requests with a model that was not live at the time.

The request log is read in order (filtered by use case and time), the model
scores the requests exactly as they were sent (``predict_batch`` when it has
one), and each score goes to the scores log marked ``replayed``:

- directly, when no rendezvous holds the scores log (offline replay), or
- through the scores stream, when a rendezvous is running: it logs replayed
  scores as they are, without treating them as answers.

`rvz report` then compares the replayed model with what was actually answered.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol

import click
import zmq
from rich.progress import Progress

from rvz.config import Config, ModelConfig, load_config, parse_config, parse_model
from rvz.errors import ConfigError, LogError, LogLockedError, ModelLoadError
from rvz.log.reader import iter_records
from rvz.log.writer import LogWriter
from rvz.report.command import parse_time
from rvz.wire import streams
from rvz.wire.proto import envelope_pb2
from rvz.worker.loop import Worker, WorkerConfig, decode_request
from rvz.worker.model import Model, load_model

EXIT_FAILURE = 1
EXIT_USAGE = 2


class ScoreSink(Protocol):
    def send(self, score: envelope_pb2.ScoreEnvelope) -> None: ...
    def close(self) -> None: ...


class LogSink:
    """Offline: append to the scores log ourselves."""

    def __init__(self, log: LogWriter) -> None:
        self.log = log

    def send(self, score: envelope_pb2.ScoreEnvelope) -> None:
        record = envelope_pb2.ScoreRecord(received_unix_ns=time.time_ns())
        record.score.CopyFrom(score)
        self.log.append(record.SerializeToString())

    def close(self) -> None:
        self.log.stop()


class StreamSink:
    """A rendezvous is running: hand the scores to it (blocking sends: replay waits rather than drops)."""

    def __init__(self, endpoint: str, hwm: int) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.push = streams.score_pusher(self.ctx, endpoint, hwm)

    def send(self, score: envelope_pb2.ScoreEnvelope) -> None:
        self.push.send_multipart([streams.SCORE, score.SerializeToString()])

    def close(self) -> None:
        self.push.close()  # lingers until queued scores are delivered (streams.FLUSH_MS)
        self.ctx.term()


@dataclass(frozen=True)
class ReplayOptions:
    data_dir: Path
    model: ModelConfig
    since_ns: int | None
    until_ns: int | None
    rate: float
    batch_max: int


def archived(directory: Path, options: ReplayOptions) -> Iterator[bytes]:
    """Request envelopes of the use case in [since, until), in log order."""
    for record in iter_records(directory):
        envelope = envelope_pb2.RequestEnvelope.FromString(record.payload)
        if envelope.use_case != options.model.use_case:
            continue
        if options.since_ns is not None and envelope.received_unix_ns < options.since_ns:
            continue
        if options.until_ns is not None and envelope.received_unix_ns >= options.until_ns:
            continue
        yield record.payload


def open_sink(config: Config, data_dir: Path) -> ScoreSink:
    log = LogWriter(data_dir / "scores", "rvz.v1.ScoreRecord", fsync=config.log.fsync)
    try:
        log.start()
        return LogSink(log)
    except LogLockedError:
        return StreamSink(config.streams.scores, config.streams.high_water_mark)


def replay(options: ReplayOptions, model: Model, sink: ScoreSink, show_progress: bool) -> tuple[int, int]:
    """Score every archived request; returns (scores sent, errors)."""
    payloads = list(archived(options.data_dir / "requests", options))
    scorer = Worker(WorkerConfig(options.model, Config().streams, str(options.data_dir)), model)
    scorer.worker_id = f"{socket.gethostname()}:{os.getpid()}:replay-{options.model.name}"
    started = time.monotonic()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"replaying into {options.model.name}", total=len(payloads))
        for first in range(0, len(payloads), options.batch_max):
            batch = [decode_request(p) for p in payloads[first:first + options.batch_max]]
            for score in scorer.score_batch(batch):
                score.replayed = True
                sink.send(score)
            progress.advance(task, len(batch))
            if options.rate:  # pace to the asked rate: a replay must not starve a live deployment
                ahead = (first + len(batch)) / options.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return scorer.scored, scorer.errors


@click.command("replay", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="RVZ_DATA_DIR",
              help="Directory of the logs; default: log.dir of --config. [env: RVZ_DATA_DIR]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="RVZ_CONFIG",
              help="Config of the running deployment (its scores stream is used when a rendezvous runs).")
@click.option("--entry", required=True, help="MODULE:ATTR of the model to replay into.")
@click.option("--name", required=True, help="Model name, as it will appear in the logs and the report.")
@click.option("--version", "model_version", default="1", show_default=True, help="Model version.")
@click.option("--role", default="challenger", show_default=True,
              type=click.Choice(["champion", "challenger", "canary"]), help="Role to record with the scores.")
@click.option("--use-case", default="default", show_default=True, help="Use case whose requests to replay.")
@click.option("--since", metavar="TIME", help="Only requests received at or after TIME (ISO-8601 or e.g. 1h).")
@click.option("--until", metavar="TIME", help="Only requests received before TIME.")
@click.option("--rate", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Requests per second (0: as fast as possible).")
@click.option("--batch-max", default=32, show_default=True, type=click.IntRange(min=1),
              help="Requests per predict_batch call.")
def replay_command(data_dir: str | None, config_path: str | None, entry: str, name: str, model_version: str,
                   role: str, use_case: str, since: str | None, until: str | None, rate: float,
                   batch_max: int) -> None:
    """Replay archived requests into a model that was not live, writing its scores marked as replayed."""
    try:
        config = load_config(config_path) if config_path else parse_config({}, "<defaults>")
        spec = parse_model({"name": name, "version": model_version, "role": role, "entry": entry,
                            "use_case": use_case}, "command line")
        now = time.time_ns()
        since_ns = parse_time(since, now) if since else None
        until_ns = parse_time(until, now) if until else None
    except (ConfigError, ValueError) as e:
        _fail(str(e), EXIT_USAGE)
    directory = Path(data_dir or config.log.dir)
    if not (directory / "requests").is_dir():
        _fail(f"{directory / 'requests'} does not exist; give --data-dir (log.dir of the deployment)", EXIT_USAGE)
    try:
        model = load_model(spec.entry)
    except ModelLoadError as e:
        _fail(f"cannot load model {name!r}: {e}", EXIT_USAGE)
    options = ReplayOptions(directory, spec, since_ns, until_ns, rate, batch_max)
    try:
        sink = open_sink(config, directory)
        try:
            scored, errors = replay(options, model, sink, show_progress=sys.stderr.isatty())
        finally:
            sink.close()
    except (LogError, zmq.ZMQError) as e:
        _fail(f"replay failed: {e}", EXIT_FAILURE)
    via = "the running rendezvous" if isinstance(sink, StreamSink) else "the scores log"
    click.echo(f"replayed {scored} requests into {name} v{model_version} ({errors} errors), written through {via}; "
               f"compare with: rvz report --data-dir {directory} --use-case {use_case}")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"rvz: {message}", err=True)
    sys.exit(code)
