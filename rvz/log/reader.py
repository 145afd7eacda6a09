"""Reading logs back: every intact record of every segment, in order, around any damage."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message

from rvz.errors import CorruptRecord, LogError
from rvz.log.format import Damage, LogRecord, Segment, list_segments
from rvz.wire.proto import envelope_pb2, scoring_pb2

logger = logging.getLogger(__name__)

OnDamage = Callable[[Damage], None]


def warn_damage(damage: Damage) -> None:
    """The default report of damage met while reading: one warning line."""
    logger.warning("skipping %s", damage.describe())


def read_record_type(directory: str | os.PathLike[str]) -> str:
    """Return the record type named in the log's segment headers (the first readable one).

    Raises LogError when the directory holds no segment, or none whose header can be read.
    """
    path = Path(directory)
    segments = list_segments(path)
    if not segments:
        raise LogError(f"{path} is not an rvz log: it has no NNN.seg segment files; check the path")
    for segment_path in segments:
        with Segment(segment_path) as segment:
            if segment.record_type is not None:
                return segment.record_type
    raise LogError(f"{path} is not a readable rvz log: no segment header can be read ({segments[0]})")


def iter_records(directory: str | os.PathLike[str], *, strict: bool = False,
                 on_damage: OnDamage | None = None) -> Iterator[LogRecord]:
    """Yield every intact record of every segment in order (segment headers excluded).

    Damaged bytes are skipped and reported to ``on_damage`` (default: a warning), and reading goes on
    at the next intact record. With ``strict``, the first damage raises CorruptRecord instead.
    """
    report = on_damage or warn_damage
    for path in list_segments(Path(directory)):
        with Segment(path) as segment:
            damaged_header = segment.damaged_header()
            if damaged_header is not None:
                _damaged(damaged_header, strict, report)
            for entry in segment.entries():
                if isinstance(entry, Damage):
                    _damaged(entry, strict, report)
                else:
                    yield entry


def _damaged(damage: Damage, strict: bool, report: OnDamage) -> None:
    if strict:
        raise CorruptRecord(Path(damage.segment), damage.start, damage.reason)
    report(damage)


class Tail:
    """The records appended to a log since the tail was made, read while its writer keeps writing.

    Never locks. A record still being written is left for a later ``new_records`` call.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        segments = list_segments(self.directory)
        self._segment = segments[-1] if segments else None
        self._offset = 0
        if self._segment is not None:
            for _ in self._read_segment(self._segment):  # start after what is there now
                pass

    def new_records(self) -> Iterator[bytes]:
        """The payloads appended since the last call (or since the tail was made), in order."""
        for path in list_segments(self.directory):
            if self._segment is not None and path < self._segment:
                continue
            if path != self._segment:
                self._segment, self._offset = path, 0
            yield from self._read_segment(path)

    def _read_segment(self, path: Path) -> Iterator[bytes]:
        with Segment(path) as segment:
            for entry in segment.entries(start=self._offset):
                if isinstance(entry, Damage):
                    return  # torn by a write in progress: read it again next time
                self._offset = entry.end
                yield entry.payload


def json_lines(directory: str, strict: bool, on_damage: OnDamage | None = None) -> Iterator[str]:
    """Every record of a log as one JSON line, decoded by the record type in the log's header."""
    return map(json_line, messages(directory, strict, on_damage))


def messages(directory: str | os.PathLike[str], strict: bool, on_damage: OnDamage | None = None) -> Iterator[Message]:
    """Every record of a log decoded by the record type in the log's header (lazy: a LogError for a
    directory that is no log, or a ValueError for a type this rvz cannot decode, comes at the first read)."""
    message_class = _message_class(read_record_type(directory))
    for record in iter_records(directory, strict=strict, on_damage=on_damage):
        yield message_class.FromString(record.payload)


def json_line(message: Message) -> str:
    """A record as one JSON line (fields by their proto names, embedded messages decoded)."""
    line = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if isinstance(message, envelope_pb2.RequestEnvelope | envelope_pb2.ResultEnvelope):
        _inline_embedded(message, line)
    return json.dumps(line, sort_keys=False)


def _inline_embedded(message: Message, line: dict[str, Any]) -> None:
    # Embedded serialized messages are shown decoded rather than as base64.
    if isinstance(message, envelope_pb2.RequestEnvelope) and message.request:
        line["request"] = json_format.MessageToDict(scoring_pb2.ScoreRequest.FromString(message.request),
                                                    preserving_proto_field_name=True)
    if isinstance(message, envelope_pb2.ResultEnvelope) and message.response:
        line["response"] = json_format.MessageToDict(scoring_pb2.ScoreResponse.FromString(message.response),
                                                     preserving_proto_field_name=True)


def _message_class(type_name: str) -> type[Message]:
    try:
        return symbol_database.Default().GetSymbol(type_name)
    except KeyError:
        raise ValueError(f"the log holds {type_name} records, which this version of rvz cannot decode") from None
