"""Which policy decided each request, and when the policies and champions changed.

Every result carries the version of the policy that decided it; the policy history log
(``rvz.admin.history``) holds the schedule of each version the Admin API put in force. Version 1 is
the config's own schedule (from --config), as is any version the history does not hold, which the
report then names (``missing``).

Every live rendezvous carries out, and records, each change: the history is read from all of their logs
(DATA/policies and each DATA/policies.i, ``rvz.log.dirs``), merged by the time of each change, and shows
each change once, the earliest record of it (``rvz.log.dirs.SAME_CHANGE``: same use case, same version,
same kind of change).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rvz.admin.history import LOG_NAME
from rvz.config import Window
from rvz.log.dirs import read_by_time
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
    """The policy history of every rendezvous (DATA_DIR/policies and each DATA_DIR/policies.i; none when
    there is none), each change once, merged by time; raises ``LogError`` if a log cannot be read."""
    history = PolicyHistory(config_schedule)
    for _, change in read_by_time(Path(data_dir), LOG_NAME, envelope_pb2.PolicyChange.FromString):
        schedule = tuple(Window(w.until_ms, tuple(w.accept)) for w in change.policy.schedule)
        history.schedules[(change.use_case, change.version)] = schedule or config_schedule
        history.changes.append(Change(change.use_case, change.changed_unix_ns, change.change, change.version,
                                      dict(change.roles)))
    return history
