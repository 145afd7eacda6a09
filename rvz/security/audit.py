"""The audit log: every change made through the Admin API, written by the rendezvous where it is carried
out (DATA_DIR/audit, records of ``rvz.v1.AuditRecord``: who, when, what, old -> new; `rvz log cat audit`
prints them). It also knows the last change of each use case, for `rvz models` and `rvz policy show`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from rvz.config import LogConfig
from rvz.errors import LogError
from rvz.log.naming import log_name
from rvz.log.reader import iter_records
from rvz.log.writer import LogWriter
from rvz.wire.proto import admin_pb2

logger = logging.getLogger(__name__)

AUDIT_LOG = "audit"
RECORD_TYPE = "rvz.v1.AuditRecord"


class AuditLog:
    """Single-threaded (the rendezvous's loop). ``record`` between ``start`` and ``stop``; without them
    (a handler in a test) records are kept in memory only."""

    def __init__(self, config: LogConfig, rendezvous: str = "") -> None:
        self.directory = Path(config.dir) / log_name(AUDIT_LOG, rendezvous)
        self.writer = LogWriter(self.directory, RECORD_TYPE, fsync=config.fsync)
        self.last: dict[str, admin_pb2.AuditRecord] = {}

    def start(self) -> None:
        """Open the log and read back the last change of each use case; raises ``LogError``."""
        self.writer.start()
        try:
            for entry in iter_records(self.directory):
                record = admin_pb2.AuditRecord.FromString(entry.payload)
                self.last[record.use_case] = record
        except (LogError, ValueError) as e:
            logger.warning("cannot read back the audit log %s: %s", self.directory, e)

    def stop(self) -> None:
        if self.writer.started:
            self.writer.stop()

    def record(self, who: str, action: str, use_case: str, old: dict[str, Any], new: dict[str, Any],
               policy_version: int) -> admin_pb2.AuditRecord:
        """Append one change (written before the call is answered) and remember it as the use case's last."""
        record = admin_pb2.AuditRecord(unix_ns=time.time_ns(), who=who, action=action, use_case=use_case,
                                       old=json.dumps(old, sort_keys=True), new=json.dumps(new, sort_keys=True),
                                       policy_version=policy_version)
        if self.writer.started:
            self.writer.append(record.SerializeToString())
        self.last[use_case] = record
        logger.info("audit: %s by %s on use case %r: %s -> %s", action, who or "?", use_case, record.old, record.new)
        return record


def describe(record: admin_pb2.AuditRecord) -> str:
    """One line for a person: what changed, who changed it and when (UTC)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.unix_ns / 1e9))
    old, new = json.loads(record.old or "{}"), json.loads(record.new or "{}")
    if record.action == "promote":
        what = f"promote: champion {old.get('champion') or '-'} -> {new.get('champion')}"
    else:
        what = f"{record.action}: policy version {old.get('version', '?')} -> {new.get('version', '?')}"
    return f"{what}, by {record.who or 'an unknown caller'} at {when}"
