"""The rendezvous's side of the Admin API: answers AdminCalls forwarded by a frontend."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import grpc

from rvz.admin.state import AdminState, config_table, policy_message
from rvz.errors import AdminError
from rvz.frontend.validation import check_use_case
from rvz.rendezvous.live_stats import NO_FIGURE, WINDOW_S, StatsBook
from rvz.rendezvous.policy import Policy
from rvz.rendezvous.replicas import ReplicaGroups
from rvz.security.audit import AuditLog
from rvz.wire.model_registry import ModelRegistry, Sighting
from rvz.wire.proto import admin_pb2, envelope_pb2


class AdminHandler:
    """Carries out Admin calls; every change is recorded in ``audit`` with the caller the frontend names."""

    def __init__(self, state: AdminState, models: ModelRegistry, stats: StatsBook,
                 audit: AuditLog | None = None, replicas: ReplicaGroups | None = None) -> None:
        self.state = state
        self.models = models
        self.stats = stats
        self.audit = audit
        self.replicas = replicas or ReplicaGroups(models.timeout_ns)

    def handle(self, call: envelope_pb2.AdminCall) -> envelope_pb2.AdminReply:
        reply = envelope_pb2.AdminReply(call_id=call.call_id)
        try:
            kind = call.WhichOneof("request")
            if kind == "list_models":
                reply.models.CopyFrom(self.list_models(call.list_models.use_case))
            elif kind == "get_policy":
                reply.policy.CopyFrom(self.get_policy(call.get_policy.use_case))
            elif kind == "set_policy":
                reply.policy.CopyFrom(self.set_policy(call.set_policy, call.caller))
            elif kind == "promote":
                reply.promoted.CopyFrom(self.promote(call.promote, call.caller))
            elif kind == "reset_policy":
                reply.policy.CopyFrom(self.reset_policy(call.reset_policy.use_case, call.caller))
            else:
                raise AdminError(grpc.StatusCode.UNIMPLEMENTED, f"unknown admin call {kind!r}")
        except AdminError as e:
            reply.status_code, reply.status_message = e.code.value[0], str(e)
        return reply

    def list_models(self, use_case: str) -> admin_pb2.ListModelsResponse:
        now = time.time_ns()
        response = admin_pb2.ListModelsResponse()
        use_cases = [use_case] if use_case else self.models.use_cases()
        for name in use_cases:
            sightings = self.models.sightings(name)
            live = Counter((s.info.name, s.info.version) for s in sightings
                           if now - s.last_seen_ns <= self.models.timeout_ns)
            for sighting in sightings:
                info = sighting.info
                response.models.append(self._status(info, sighting.last_seen_ns, now, live[(info.name, info.version)]))
            response.totals.extend(self._totals(name, sightings, live, now))
            if self.audit is not None and name in self.audit.last:
                response.last_changes[name].CopyFrom(self.audit.last[name])
        return response

    def _status(self, info: envelope_pb2.ModelInfo, last_seen_ns: int, now: int,
                replicas: int) -> admin_pb2.ModelStatus:
        age_s = (now - last_seen_ns) / 1e9
        replica = self.replicas.by_worker.get(info.worker_id)
        status = admin_pb2.ModelStatus(
            use_case=info.use_case, name=info.name, version=info.version,
            role=self.state.role_of(info.use_case, info.name, info.role), started_role=info.role,
            worker_id=info.worker_id, pid=info.pid, host=info.host, last_heartbeat_age_s=age_s,
            live=age_s * 1e9 <= self.models.timeout_ns, window_s=WINDOW_S,
            missed_total=info.missed + (replica.missed if replica is not None else 0), restarts=info.restarts,
            replicas=replicas, shared=info.capacity > 0,
            outstanding=len(replica.outstanding) if replica is not None else 0)
        if not status.live:  # the model's figures belong to its live worker, if any: never repeated here
            _no_figures(status)
            return status
        key = (info.use_case, info.name, info.version)
        # One worker of a model has the model's figures (a restarted worker carries on its predecessor's);
        # each replica of several has its own, and the model's are in the totals.
        own = status.shared or replicas > 1
        figures = self.stats.figures(key, now, info.worker_id if own else None)
        status.scores_per_s, status.error_rate = figures.scores_per_s, _finite(figures.error_rate)
        status.latency_p50_ms, status.latency_p99_ms = _finite(figures.latency_p50_ms), _finite(figures.latency_p99_ms)
        status.on_time_pct, status.divergence = _finite(figures.on_time_pct), self.stats.divergence.get(key, NO_FIGURE)
        status.times_chosen, status.scores_total = figures.times_chosen, figures.scores_total
        return status

    def _totals(self, use_case: str, sightings: list[Sighting], live: Counter[tuple[str, str]],
                now: int) -> list[admin_pb2.ModelTotals]:
        """One row per model of the use case, over all its workers."""
        missed: Counter[tuple[str, str]] = Counter()
        for sighting in sightings:
            missed[(sighting.info.name, sighting.info.version)] += sighting.info.missed
        totals = []
        for name, version in sorted(missed):
            key = (use_case, name, version)
            figures = self.stats.figures(key, now)
            totals.append(admin_pb2.ModelTotals(
                use_case=use_case, name=name, version=version, replicas=live[(name, version)],
                scores_per_s=figures.scores_per_s, scores_total=figures.scores_total,
                missed_total=missed[(name, version)] + self.replicas.group_missed(key),
                times_chosen=figures.times_chosen, latency_p50_ms=_finite(figures.latency_p50_ms),
                latency_p99_ms=_finite(figures.latency_p99_ms)))
        return totals

    def get_policy(self, use_case: str) -> admin_pb2.PolicyState:
        self._check_known(use_case)
        return self._state(use_case, self.state.policy_for(use_case))

    def set_policy(self, request: admin_pb2.SetPolicyRequest, who: str = "") -> admin_pb2.PolicyState:
        self._check_known(request.use_case)
        before = self.state.policy_for(request.use_case)
        after = self.state.set_policy(request)
        self._record(who, "set_policy", request.use_case, _policy_json(before), _policy_json(after), after.version)
        return self._state(request.use_case, after)

    def reset_policy(self, use_case: str, who: str = "") -> admin_pb2.PolicyState:
        self._check_known(use_case)
        before = self.state.policy_for(use_case)
        after = self.state.reset(use_case)
        if after is not before:  # idempotent: a use case already as configured changes nothing
            self._record(who, "reset_policy", use_case, _policy_json(before), _policy_json(after), after.version)
        return self._state(use_case, after)

    def _record(self, who: str, action: str, use_case: str, old: dict[str, Any], new: dict[str, Any],
                version: int) -> None:
        if self.audit is not None:
            self.audit.record(who, action, use_case, old, new, version)

    def _state(self, use_case: str, policy: Policy) -> admin_pb2.PolicyState:
        state = admin_pb2.PolicyState(use_case=use_case, version=policy.version,
                                      policy=policy_message(policy.config))
        if self.audit is not None and use_case in self.audit.last:
            state.last_change.CopyFrom(self.audit.last[use_case])
        return state

    def _check_known(self, use_case: str) -> None:
        """A use case no model has announced, and the Admin API never changed, is a mistake: NOT_FOUND."""
        _check(use_case)
        if not self.models.known(use_case) and use_case not in self.state.policies and use_case not in \
                self.state.roles:
            known = ", ".join(repr(u) for u in self.models.use_cases()) or "none yet"
            raise AdminError(grpc.StatusCode.NOT_FOUND, f"no model has announced use case {use_case!r} to the "
                             f"rendezvous (use cases: {known}); give --use-case, or start its models first")

    def promote(self, request: admin_pb2.PromoteRequest, who: str = "") -> admin_pb2.PromoteResponse:
        _check(request.use_case)
        demoted = self.state.promote(request.use_case, request.model_name, self.models.live(request.use_case))
        self._record(who, "promote", request.use_case, {"champion": demoted}, {"champion": request.model_name},
                     self.state.policy_for(request.use_case).version)
        return admin_pb2.PromoteResponse(use_case=request.use_case, champion=request.model_name, demoted=demoted)


def _check(use_case: str) -> None:
    try:
        check_use_case(use_case)
    except Exception as e:
        raise AdminError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from e


def _policy_json(policy: Policy) -> dict[str, Any]:
    return {"version": policy.version, "policy": config_table(policy.config)}


def _no_figures(status: admin_pb2.ModelStatus) -> None:
    status.scores_per_s = status.error_rate = status.latency_p50_ms = status.latency_p99_ms = NO_FIGURE
    status.on_time_pct = status.divergence = NO_FIGURE
    status.times_chosen = status.scores_total = -1


def _finite(value: float) -> float:
    """NaN (no data) travels as -1, which every client language can show."""
    return value if math.isfinite(value) else -1.0
