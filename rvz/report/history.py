"""Which policy decided each request, and when the policies and champions changed.

Every result carries the version of the policy that decided it; the policy history log
(``rvz.admin.history``) holds the schedule of each version the Admin API put in force. Version 1 is
the config's own schedule (from --config), as is any version the history does not hold, which the
report then names (``missing``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rvz.admin.history import LOG_NAME
from rvz.config import Window
from rvz.log.reader import iter_records
from rvz.wire.proto import envelope_pb2


@dataclass(frozen=True)
class Change:
    """An Admin change, as the policy history recorded it."""

    use_case: str
    at_ns: int
    change: str  # set_policy | reset_policy | promote
    version: int
    roles: dict[str, str]


@dataclass
class PolicyHistory:
    config_schedule: tuple[Window, ...]
    schedules: dict[tuple[str, int], tuple[Window, ...]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    # (use case, version) pairs met in the results that the history does not hold.
    missing: set[tuple[str, int]] = field(default_factory=set)

    def schedule(self, use_case: str, version: int) -> tuple[Window, ...]:
        """The schedule of ``version`` (0: no result said): the history's, else the config's."""
        found = self.schedules.get((use_case, version))
        if found is not None:
            return found
        if version > 1:
            self.missing.add((use_case, version))
        return self.config_schedule

    def window_end_ms(self, use_case: str, version: int, role: str, name: str) -> float | None:
        """End of the first window of that policy whose accept list names the role or the model."""
        return window_end_ms(self.schedule(use_case, version), role, name)


def window_end_ms(schedule: tuple[Window, ...], role: str, name: str) -> float | None:
    """End of the first window whose accept list names the role or the model; None if none does."""
    for window in schedule:
        if role in window.accept or name in window.accept:
            return window.until_ms
    return None


def read_history(data_dir: str | os.PathLike[str], config_schedule: tuple[Window, ...]) -> PolicyHistory:
    """DATA_DIR/policies, if any; raises ``LogError`` if it cannot be read."""
    history = PolicyHistory(config_schedule)
    directory = Path(data_dir) / LOG_NAME
    if not directory.is_dir():
        return history
    for record in iter_records(directory):
        change = envelope_pb2.PolicyChange.FromString(record.payload)
        schedule = tuple(Window(w.until_ms, tuple(w.accept)) for w in change.policy.schedule)
        history.schedules[(change.use_case, change.version)] = schedule or config_schedule
        history.changes.append(Change(change.use_case, change.changed_unix_ns, change.change, change.version,
                                      dict(change.roles)))
    return history
