"""Running one row of the matrix and what it measured."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from chaos_faults import deployment, disk, load
from chaos_faults.faults import Fault
from rvz.errors import LogError
from rvz.log.dirs import log_dirs
from rvz.log.reader import iter_records
from rvz.wire.proto import envelope_pb2

FAULT_AT_S = 2.0
CLEAR_AT_S = 4.0
CALLERS = 4
SMALL_DISK_KIB = 16 * 1024


@dataclass(frozen=True)
class Row:
    fault: Fault
    calls: int
    ok: int
    by_status: dict[str, int]
    p99_ms: float
    max_ms: float
    not_logged: int
    recover_s: float | None

    @property
    def ok_pct(self) -> float:
        return 100.0 * self.ok / self.calls if self.calls else 0.0

    def misses(self) -> list[str]:
        """The targets this row did not meet (empty: all met)."""
        deadline = deployment.DEADLINE_MS
        missed = []
        if self.not_logged:
            missed.append(f"{self.not_logged} answered OK but not in the request log")
        if self.p99_ms > deadline + 5:
            missed.append(f"p99 {self.p99_ms:.0f} ms > deadline + 5 ms")
        if self.max_ms > deadline + 50:
            missed.append(f"max {self.max_ms:.0f} ms > deadline + 50 ms")
        if self.fault.spares_champion and self.ok_pct < 99.9:
            missed.append(f"{self.ok_pct:.2f}% OK < 99.9%")
        if self.fault.max_not_ok is not None and self.calls - self.ok > self.fault.max_not_ok:
            missed.append(f"{self.calls - self.ok} calls failed > {self.fault.max_not_ok}")
        within = self.fault.recover_within_s
        if self.fault.recovers and (self.recover_s is None or self.recover_s > within):
            missed.append(f"not back within {within:g} s" if self.recover_s is None
                          else f"back after {self.recover_s:.2f} s > {within:g} s")
        return missed


def run_row(fault: Fault, workdir: Path, load_s: float) -> Row:
    row = workdir / fault.name
    row.mkdir()
    env = {**os.environ, "RVZ_CHAOS_DIR": str(row)}
    data = row / "data"
    if fault.small_disk:
        disk.mount_tmpfs(data, SMALL_DISK_KIB)
    try:
        d = deployment.start(row, env, fault.hwm, fault.challenger_entry, data, frontends=fault.frontends,
                             rendezvous=fault.rendezvous)
        try:
            calls, fault_s, clear_s = _load_with_fault(d, fault, row, load_s)
        finally:
            d.stop()
        logged = _logged_ids(data)
    finally:
        if fault.small_disk:
            disk.unmount(data)
    return _summarize(fault, calls, logged, clear_s if fault.name.startswith(("stop-", "rendezvous-stop",
                                                                                "disk-full")) else fault_s)


def _load_with_fault(d: deployment.Deployment, fault: Fault, row: Path,
                     load_s: float) -> tuple[list[load.Call], float, float]:
    times: dict[str, float] = {}

    def inject() -> None:
        started = time.monotonic()
        time.sleep(FAULT_AT_S)  # the timetable of the fault, not a wait for readiness
        undo = fault.action(d, row) if fault.action is not None else None
        times["fault"] = time.monotonic() - started
        time.sleep(max(0.0, CLEAR_AT_S - FAULT_AT_S))
        if undo is not None:
            undo()
        times["clear"] = time.monotonic() - started

    injector = threading.Thread(target=inject, name="fault")
    injector.start()
    calls = load.run(d.address, load_s, CALLERS, pad_bytes=fault.pad_bytes)
    injector.join(30)
    return calls, times.get("fault", FAULT_AT_S), times.get("clear", CLEAR_AT_S)


def _summarize(fault: Fault, calls: list[load.Call], logged: set[str], recover_from: float) -> Row:
    took_ms = sorted(c.took * 1000 for c in calls)
    ok = [c for c in calls if c.code == "OK"]
    failed_after = [c.sent + c.took for c in calls if c.code != "OK" and c.sent + c.took >= recover_from - 0.5]
    recover = None
    if fault.recovers:
        ok_later = [c for c in ok if c.sent > max(failed_after, default=recover_from)]
        recover = max(0.0, max(failed_after, default=recover_from) - recover_from) if ok_later else None
    return Row(fault, len(calls), len(ok), dict(Counter(c.code for c in calls)),
               statistics.quantiles(took_ms, n=100)[98] if len(took_ms) > 1 else 0.0, max(took_ms, default=0.0),
               sum(1 for c in ok if c.request_id not in logged), recover)


def _logged_ids(data: Path) -> set[str]:
    """The request ids in every frontend's request log."""
    try:
        return {envelope_pb2.RequestEnvelope.FromString(r.payload).request_id
                for log in log_dirs(data, "requests") for r in iter_records(log)}
    except LogError:
        return set()

