"""Reading logs back: every intact record of every segment, in order, and their JSON form."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message

from rvz.errors import CorruptRecord, LogError
from rvz.log.format import FRAME, LogRecord, good_end, list_segments, read_header, scan
from rvz.wire.proto import envelope_pb2, scoring_pb2

logger = logging.getLogger(__name__)


def read_record_type(directory: str | os.PathLike[str]) -> str:
    """Return the record type named in the header of the log's first segment."""
    path = Path(directory)
    segments = list_segments(path)
    if not segments:
        raise LogError(f"{path} is not an rvz log: it has no NNN.seg segment files; check the path")
    with open(segments[0], "rb") as f:
        try:
            return read_header(f, segments[0])[0]
        except CorruptRecord as e:
            raise LogError(f"{path} is not a readable rvz log: {e}") from e


def iter_records(directory: str | os.PathLike[str], *, strict: bool = False) -> Iterator[LogRecord]:
    """Yield every record of every segment in order (segment headers excluded)."""
    for path in list_segments(Path(directory)):
        yield from _iter_segment(path, strict)


def _iter_segment(path: Path, strict: bool) -> Iterator[LogRecord]:
    with open(path, "rb") as f:
        try:
            _, start = read_header(f, path)
            for offset, payload in scan(f, path, start):
                yield LogRecord(str(path), offset, payload)
        except CorruptRecord as e:
            if strict:
                raise
            logger.warning("skipping the rest of segment %s: %s", path, e)


class Tail:
    """The records appended to a log since the tail was made, read while its writer keeps writing.

    Never locks. A record still being written is left for a later ``new_records`` call.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        segments = list_segments(self.directory)
        self._segment = segments[-1] if segments else None
        self._offset = good_end(self._segment)[1] if self._segment else 0

    def new_records(self) -> Iterator[bytes]:
        """The payloads appended since the last call (or since the tail was made), in order."""
        for path in list_segments(self.directory):
            if self._segment is not None and path < self._segment:
                continue
            if path != self._segment:
                self._segment, self._offset = path, 0
            yield from self._read_segment(path)

    def _read_segment(self, path: Path) -> Iterator[bytes]:
        with open(path, "rb") as f:
            try:
                _, start = read_header(f, path)
                offset = max(start, self._offset)
                f.seek(offset)
                for at, payload in scan(f, path, offset):
                    self._offset = at + FRAME.size + len(payload)
                    yield payload
            except CorruptRecord:
                return  # torn by a write in progress: read it again next time


def json_lines(directory: str, strict: bool) -> Iterator[str]:
    """Every record of a log as one JSON line, decoded by the record type in the log's header."""
    message_class = _message_class(read_record_type(directory))
    for record in iter_records(directory, strict=strict):
        message = message_class.FromString(record.payload)
        line = json_format.MessageToDict(message, preserving_proto_field_name=True)
        if isinstance(message, envelope_pb2.RequestEnvelope | envelope_pb2.ResultEnvelope):
            _inline_embedded(message, line)
        yield json.dumps(line, sort_keys=False)


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
