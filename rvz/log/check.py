"""`rvz log check`: verify every segment of one log, or of every log under a data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rvz.errors import LogError
from rvz.log.format import Damage, Segment, list_segments


@dataclass
class LogCheck:
    """What one log directory holds: its record type, segments, intact records and damaged ranges."""

    directory: Path
    record_type: str | None = None
    segments: int = 0
    records: int = 0
    damage: list[Damage] = field(default_factory=list)

    @property
    def damaged_bytes(self) -> int:
        return sum(d.size for d in self.damage)

    def summary(self) -> str:
        kind = self.record_type or "unknown records"
        head = f"{self.directory}: {self.records} intact {kind} records in {self.segments} segments"
        if not self.damage:
            return head + ", no damage"
        return head + f", {len(self.damage)} damaged ranges ({self.damaged_bytes} bytes)"


def check_log(directory: Path) -> LogCheck:
    """Read every segment of the log at ``directory``; raises LogError if it is not a log."""
    segments = list_segments(directory)
    if not segments:
        raise LogError(f"{directory} is not an rvz log: it has no NNN.seg segment files; check the path")
    result = LogCheck(directory, segments=len(segments))
    for path in segments:
        with Segment(path) as segment:
            result.record_type = result.record_type or segment.record_type
            damaged_header = segment.damaged_header()
            if damaged_header is not None:
                result.damage.append(damaged_header)
            for entry in segment.entries():
                if isinstance(entry, Damage):
                    result.damage.append(entry)
                else:
                    result.records += 1
    return result


def find_logs(root: Path) -> list[Path]:
    """``root`` if it is a log, else every log directory below it (a data directory), sorted."""
    if not root.is_dir():
        raise LogError(f"{root} is not a directory; give a log (e.g. rvz-data/requests) or a data directory")
    if list_segments(root):
        return [root]
    logs = [Path(here) for here, _, files in os.walk(root) if any(name.endswith(".seg") for name in files)]
    if not logs:
        raise LogError(f"{root} holds no rvz log (no NNN.seg segment files below it); check the path")
    return sorted(logs)
