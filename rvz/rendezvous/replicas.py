"""Sharing a model's requests between its replicas: each request goes to exactly one replica of each
replicated model, the one with the most room, and is counted as missed if that replica never scores it.

A model with ``replicas > 1`` has a group of workers (``rvz up``'s and any started by hand with the same
name and version). Its workers do not subscribe to their use case on the requests stream: they connect
to the rendezvous's work stream (a ROUTER) and say hello, with their queue bound (``ModelInfo.capacity``).
The rendezvous, which receives every request anyway, gives each request of the use case to one replica
of each group: the replica with the fewest requests outstanding (given and not scored yet), if it is below
its bound; otherwise the request waits in the group's backlog until a score frees room. A score is the
replica's acknowledgement, so there is no message of its own for credit.

A replica that dies disconnects, and the next send to it fails (the rendezvous pings every replica every
few milliseconds for that): it gets nothing more, and what it held is counted as missed for the model (the
rendezvous's fallback answers those calls). One that hangs keeps its connection, but it stops scoring, so
its outstanding requests reach its bound and new work goes to the others; what it holds is missed once it
is past its deadline and the model's late limit (a worker sheds such requests anyway), after which it gets
nothing until it is heard from again, and it is dropped once it has been silent for the model timeout.

No sockets here: the rendezvous's loop feeds this from the streams and sends what ``take_outbox`` returns.
Call everything from that loop's thread.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from rvz.telemetry.throttle import ThrottledLog
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)
_throttled = ThrottledLog(logger)

GroupKey = tuple[str, str, str]  # use case, model name, version
# Bounds of what a replica may claim to hold: nothing a peer says makes the rendezvous keep more.
MAX_CAPACITY = 4096
# Requests waiting for room, per group: past this the oldest is missed (the group is far behind).
BACKLOG_PER_REPLICA = 64
MIN_BACKLOG = 1024
# Gone replicas remembered for their figures (`rvz models`), oldest forgotten first.
MAX_RETIRED = 1024
NEVER = -(2**62)


@dataclass(eq=False)
class Replica:
    """One worker of a group, by the routing id of its work stream connection."""

    routing_id: bytes
    worker_id: str
    key: GroupKey
    capacity: int
    last_heard_ns: int
    # Request id -> when to give up on it (its deadline plus the late limit), in the order given.
    outstanding: dict[str, int] = field(default_factory=dict)
    given: int = 0
    # Given and never scored: it died, hung or could not be reached.
    missed: int = 0
    live: bool = True
    # It let requests expire unscored (hung, stopped): it gets no more until it is heard from again.
    stalled: bool = False


@dataclass(eq=False)
class Group:
    key: GroupKey
    replicas: list[Replica] = field(default_factory=list)
    # Request id -> the replica that holds it.
    holder: dict[str, Replica] = field(default_factory=dict)
    # (request id, payload, give up at): requests no replica had room for yet, oldest first.
    backlog: deque[tuple[str, bytes, int]] = field(default_factory=deque)
    # Missed with no replica to blame: the backlog overflowed or its requests grew too old.
    missed: int = 0
    # When a worker of this model that is not a replica last announced (it takes every request itself).
    direct_seen_ns: int = NEVER
    _turn: int = 0

    def backlog_max(self) -> int:
        return max(MIN_BACKLOG, BACKLOG_PER_REPLICA * len(self.replicas))

    def pick(self) -> Replica | None:
        """The live replica with the fewest outstanding requests and room for one more; ties go round, so
        idle replicas share a light load too."""
        replicas = self.replicas
        count = len(replicas)
        best: Replica | None = None
        start = self._turn
        for i in range(count):
            replica = replicas[(start + i) % count]
            held = len(replica.outstanding)
            if held < replica.capacity and not replica.stalled and (best is None or held < len(best.outstanding)):
                best = replica
        self._turn = (start + 1) % count if count else 0
        return best


class ReplicaGroups:
    """Every replicated model's group. ``timeout_ns``: a replica silent this long is gone (the model timeout);
    ``late_limit_ns`` of each model: how long past its deadline a request may still be scored."""

    def __init__(self, timeout_ns: int, late_limit_ns: dict[GroupKey, int] | None = None,
                 default_late_limit_ns: int = 1_000_000_000) -> None:
        self.timeout_ns = timeout_ns
        self.late_limit_ns = late_limit_ns or {}
        self.default_late_limit_ns = default_late_limit_ns
        self.groups: dict[GroupKey, Group] = {}
        self._by_use_case: dict[str, list[Group]] = {}
        self._by_routing_id: dict[bytes, Replica] = {}
        # Every replica by worker id, live or gone (for its figures), oldest first.
        self.by_worker: OrderedDict[str, Replica] = OrderedDict()
        self._outbox: dict[bytes, list[tuple[str, bytes]]] = {}
        # When a worker of each model that is not a replica last announced, replicated or not yet.
        self._direct_seen: dict[GroupKey, int] = {}
        # Set by the rendezvous once it binds the work stream: only then can replicas join.
        self.enabled = False

    # --- membership -----------------------------------------------------------------------------------

    def hello(self, routing_id: bytes, info: envelope_pb2.ModelInfo, now: int) -> bool:
        """A replica's hello on the work stream (repeated at every probe); True for a new replica."""
        replica = self._by_routing_id.get(routing_id)
        if replica is not None:
            replica.last_heard_ns = now
            if replica.stalled:
                replica.stalled = False
                self._refill(self.groups[replica.key], now)
            return False
        key = (info.use_case, info.name, info.version)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, direct_seen_ns=self._direct_seen.get(key, NEVER))
            self._by_use_case.setdefault(info.use_case, []).append(group)
        replica = Replica(routing_id, info.worker_id, key, max(1, min(MAX_CAPACITY, info.capacity)), now)
        earlier = self.by_worker.get(info.worker_id)
        if earlier is not None:  # the same worker on a new connection: the old one is done, its count goes on
            self.gone(earlier.routing_id, "it connected again")
            replica.missed, replica.given = earlier.missed, earlier.given
        group.replicas.append(replica)
        self._by_routing_id[routing_id] = replica
        self._remember(replica)
        logger.info("replica %s of model %s v%s (use case %r) joined: %d live, it holds %d requests at most",
                    info.worker_id, info.name, info.version, info.use_case, len(group.replicas), replica.capacity)
        self._refill(group, now)
        return True

    def _remember(self, replica: Replica) -> None:
        self.by_worker.pop(replica.worker_id, None)
        self.by_worker[replica.worker_id] = replica
        while len(self.by_worker) > MAX_RETIRED:
            oldest = next(iter(self.by_worker.values()))
            if oldest.live:
                break  # live ones are bounded by the connections themselves
            self.by_worker.popitem(last=False)

    def gone(self, routing_id: bytes, why: str) -> int:
        """The replica behind ``routing_id`` is gone (disconnected, silent): what it held is missed, its share
        goes to the others from now on. Returns how many it held; 0 for an unknown routing id. Idempotent."""
        replica = self._by_routing_id.pop(routing_id, None)
        if replica is None:
            return 0
        replica.live = False
        group = self.groups[replica.key]
        group.replicas.remove(replica)
        held = len(replica.outstanding)
        for rid in replica.outstanding:
            group.holder.pop(rid, None)
        replica.outstanding.clear()
        replica.missed += held
        name, version, use_case = replica.key[1], replica.key[2], replica.key[0]
        logger.warning("replica %s of model %s v%s (use case %r) is gone (%s): %d requests it held are missed; "
                       "%d replicas left", replica.worker_id, name, version, use_case, why, held,
                       len(group.replicas))
        return held

    def note_direct(self, info: envelope_pb2.ModelInfo, now: int) -> None:
        """A worker of a model that is not a replica announced: while it lives it takes every request of its use
        case itself, so its model's replicas get none (each request is still scored once by that model)."""
        key = (info.use_case, info.name, info.version)
        if key not in self._direct_seen and len(self._direct_seen) >= MAX_RETIRED:
            self._direct_seen.clear()  # models come and go: forget them rather than grow
        self._direct_seen[key] = now
        group = self.groups.get(key)
        if group is not None:
            group.direct_seen_ns = now

    # --- the per-request path -------------------------------------------------------------------------

    def on_request(self, request: envelope_pb2.RequestEnvelope, payload: bytes, now: int) -> None:
        """Give the request to one replica of each replicated model of its use case (or to its backlog)."""
        groups = self._by_use_case.get(request.use_case)
        if not groups:
            return
        rid = request.request_id
        for group in groups:
            if rid in group.holder:
                continue  # delivered twice (two rendezvous subscriptions, a retry): it is held already
            if now - group.direct_seen_ns <= self.timeout_ns:
                self._warn_direct(group)
                continue
            give_up = request.deadline_unix_ns + self.late_limit_ns.get(group.key, self.default_late_limit_ns)
            replica = group.pick()
            if replica is None:
                self._queue(group, rid, payload, give_up)
            else:
                self._give(group, replica, rid, payload, give_up)

    def _give(self, group: Group, replica: Replica, rid: str, payload: bytes, give_up: int) -> None:
        replica.outstanding[rid] = give_up
        replica.given += 1
        group.holder[rid] = replica
        box = self._outbox.get(replica.routing_id)
        if box is None:
            self._outbox[replica.routing_id] = [(rid, payload)]
        else:
            box.append((rid, payload))

    def _queue(self, group: Group, rid: str, payload: bytes, give_up: int) -> None:
        backlog = group.backlog
        backlog.append((rid, payload, give_up))
        if len(backlog) > group.backlog_max():
            backlog.popleft()
            group.missed += 1
            _throttled.warning(f"backlog:{group.key}", "model %s v%s (use case %r): more requests wait than its "
                               "replicas can take (%d); the oldest are missed (%d so far)", group.key[1],
                               group.key[2], group.key[0], group.backlog_max(), group.missed)

    def on_score(self, score: envelope_pb2.ScoreEnvelope, now: int) -> None:
        """A score of a replicated model frees room in the replica that held its request. Scores of other
        models, and late or repeated ones, change nothing."""
        group = self.groups.get((score.use_case, score.model_name, score.model_version))
        if group is None:
            return
        replica = group.holder.pop(score.request_id, None)
        if replica is None:
            return
        del replica.outstanding[score.request_id]
        replica.last_heard_ns = now
        replica.stalled = False
        if group.backlog:
            self._refill(group, now)

    def _refill(self, group: Group, now: int) -> None:
        backlog = group.backlog
        while backlog:
            rid, payload, give_up = backlog[0]
            if give_up <= now:
                backlog.popleft()
                group.missed += 1
                continue
            replica = group.pick()
            if replica is None:
                return
            backlog.popleft()
            self._give(group, replica, rid, payload, give_up)

    # --- time and delivery ----------------------------------------------------------------------------

    def on_time(self, now: int) -> None:
        """Drop replicas silent for the timeout; count as missed what replicas held past its give-up time."""
        for group in self.groups.values():
            for replica in list(group.replicas):
                if now - replica.last_heard_ns > self.timeout_ns:
                    self.gone(replica.routing_id, f"silent for {(now - replica.last_heard_ns) / 1e9:.1f} s")
                else:
                    self._expire(group, replica, now)
            self._refill(group, now)

    def _expire(self, group: Group, replica: Replica, now: int) -> None:
        outstanding = replica.outstanding
        expired = []
        for rid, give_up in outstanding.items():  # in the order given: stop at the first still current
            if give_up > now:
                break
            expired.append(rid)
        for rid in expired:
            del outstanding[rid]
            group.holder.pop(rid, None)
        if expired:
            replica.missed += len(expired)
            replica.stalled = True

    def take_outbox(self) -> dict[bytes, list[tuple[str, bytes]]]:
        """The requests given since the last call, (request id, payload) by replica routing id, to send now."""
        outbox, self._outbox = self._outbox, {}
        return outbox

    def undelivered(self, routing_id: bytes, rids: list[str], unreachable: bool) -> None:
        """The requests ``rids`` given to ``routing_id`` could not be sent to it: missed. ``unreachable``: its
        connection is gone (else its queue was full), so the replica is too."""
        replica = self._by_routing_id.get(routing_id)
        if replica is None:
            return
        group = self.groups[replica.key]
        for rid in rids:
            if replica.outstanding.pop(rid, None) is not None:
                group.holder.pop(rid, None)
                replica.missed += 1
        if unreachable:
            self.gone(routing_id, "its connection is gone")

    def _warn_direct(self, group: Group) -> None:
        _throttled.warning(f"direct:{group.key}", "model %s v%s (use case %r) has a worker that is not a replica "
                           "(replicas = 1): it scores every request, so the model's replicas get none; start every "
                           "worker of the model with the same replicas setting", group.key[1], group.key[2],
                           group.key[0])

    # --- figures --------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return bool(self.groups)

    def routing_ids(self) -> list[bytes]:
        """Every live replica's."""
        return list(self._by_routing_id)

    def live_replicas(self, key: GroupKey) -> int:
        group = self.groups.get(key)
        return len(group.replicas) if group is not None else 0

    def missed_total(self) -> int:
        """Missed by every replicated model (for the metrics)."""
        return sum(self.group_missed(key) for key in self.groups)

    def group_missed(self, key: GroupKey) -> int:
        """Missed by the model as a whole: by each of its replicas, live or gone, and by its backlog."""
        group = self.groups.get(key)
        retired = sum(r.missed for r in self.by_worker.values() if r.key == key)
        return retired + (group.missed if group is not None else 0)
