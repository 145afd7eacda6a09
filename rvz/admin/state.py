"""What the Admin API changes while serving: a versioned policy per use case, and roles.

Owned by the rendezvous (single-threaded, so every change is atomic with respect
to decisions) and persisted to ``DATA_DIR/admin-state.json`` (written to a temp
file, fsynced and renamed) so a restarted rendezvous keeps promotions and policies.
A use case reset to the config's policy is saved as such, not as a copy of it: a
restart with another config file applies that file's policy. Every change is also appended to the
policy history log (``rvz.admin.history``), which `rvz report` reads to judge each request by the
policy that decided it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc

from rvz.admin.history import record_change
from rvz.config import RendezvousConfig, parse_policy
from rvz.errors import AdminError, ConfigError
from rvz.rendezvous.policy import Policy
from rvz.wire.codec import python_to_value, value_to_python
from rvz.wire.proto import admin_pb2, envelope_pb2

logger = logging.getLogger(__name__)

STATE_FILE = "admin-state.json"


class AdminState:
    def __init__(self, default: RendezvousConfig, data_dir: str | os.PathLike[str], rendezvous: str = "") -> None:
        self.default = Policy.from_config(default)
        self.data_dir = Path(data_dir)
        # Several rendezvous of one data directory share the saved state (each carries out every change, and
        # one restarted after a change it missed loads it) but write their own policy history.
        self.rendezvous = rendezvous
        self.path = self.data_dir / STATE_FILE
        self.policies: dict[str, Policy] = {}
        # use case -> model name -> role, for models whose role was changed by Promote.
        self.roles: dict[str, dict[str, str]] = {}
        # Use cases whose entry in ``policies`` is the config's policy, put back by ``reset``.
        self.from_config: set[str] = set()
        # What is in force, in a few bytes, and when the Admin API last changed it (0: never): several rendezvous
        # tell the frontends both, so that one that missed a change decides nothing until it has it.
        self.digest = _digest(self._state())
        self.changed_unix_ns = 0
        # The saved file's (mtime_ns, size) as this process last wrote or read it.
        self._stamp: tuple[int, int] | None = None
        self._load()

    # --- policies -----------------------------------------------------------------------------

    def policy_for(self, use_case: str) -> Policy:
        return self.policies.get(use_case, self.default)

    def deadlines_ms(self) -> dict[str, float]:
        """The SLA of each use case whose policy is not the config's (the frontend knows that one)."""
        return {use_case: policy.deadline_ms for use_case, policy in self.policies.items()
                if use_case not in self.from_config}

    def changed(self, use_case: str) -> bool:
        """Has the Admin API changed the policy or a role of this use case (since a reset)?"""
        return use_case in self.roles or (use_case in self.policies and use_case not in self.from_config)

    def set_policy(self, request: admin_pb2.SetPolicyRequest) -> Policy:
        current = self.policy_for(request.use_case)
        if request.expected_version and request.expected_version != current.version:
            raise AdminError(grpc.StatusCode.FAILED_PRECONDITION,
                             f"use case {request.use_case!r} is at policy version {current.version}, "
                             f"not {request.expected_version}; read it again and retry")
        try:
            config = parse_policy(policy_to_table(request.policy), "SetPolicy")
        except ConfigError as e:
            raise AdminError(grpc.StatusCode.INVALID_ARGUMENT, f"policy refused, version {current.version} "
                             f"stays in force: {e}") from e
        policy = Policy.from_config(config, version=current.version + 1)
        self.policies[request.use_case] = policy
        self.from_config.discard(request.use_case)
        self._save()
        self._record("set_policy", request.use_case)
        logger.info("use case %r: policy version %d in force", request.use_case, policy.version)
        return policy

    def reset(self, use_case: str) -> Policy:
        """Put the config's policy back in force (at the next version) and the models' started roles.

        Idempotent: a use case the Admin API has not changed since is left as it is (same version).
        """
        if not self.changed(use_case):
            return self.policy_for(use_case)
        policy = Policy.from_config(self.default.config, version=self.policy_for(use_case).version + 1)
        self.policies[use_case] = policy
        self.from_config.add(use_case)
        self.roles.pop(use_case, None)
        self._save()
        self._record("reset_policy", use_case)
        logger.info("use case %r: back to the config's policy (version %d) and the models' own roles", use_case,
                    policy.version)
        return policy

    # --- roles --------------------------------------------------------------------------------

    def role_of(self, use_case: str, model_name: str, started_role: str) -> str:
        overrides = self.roles.get(use_case)
        if overrides is None:
            return started_role
        return overrides.get(model_name, started_role)

    def promote(self, use_case: str, name: str, models: Iterable[envelope_pb2.ModelInfo]) -> str:
        """Make ``name`` the champion; return the demoted champion's name ("" if none)."""
        live = {m.name: m for m in models}
        if name not in live:
            known = ", ".join(sorted(live)) or "none"
            raise AdminError(grpc.StatusCode.NOT_FOUND, f"no live model named {name!r} in use case {use_case!r} "
                             f"(live: {known})")
        if live[name].role == "decoy":
            raise AdminError(grpc.StatusCode.FAILED_PRECONDITION, f"{name!r} is a decoy; decoys never answer")
        demoted = ""
        overrides = self.roles.setdefault(use_case, {})
        for other, info in live.items():
            if other != name and self.role_of(use_case, other, info.role) == "champion":
                overrides[other] = "challenger"
                demoted = other
        overrides[name] = "champion"
        self._save()
        self._record("promote", use_case)
        logger.info("use case %r: %s promoted to champion%s", use_case, name,
                    f" ({demoted} is now a challenger)" if demoted else "")
        return demoted

    # --- persistence --------------------------------------------------------------------------

    def _record(self, change: str, use_case: str) -> None:
        """Append what is in force for ``use_case`` now to the policy history (``rvz.admin.history``)."""
        policy = self.policy_for(use_case)
        record_change(self.data_dir, envelope_pb2.PolicyChange(
            use_case=use_case, changed_unix_ns=time.time_ns(), change=change, version=policy.version,
            policy=policy_message(policy.config), roles=self.roles.get(use_case, {})), self.rendezvous)

    def _state(self) -> dict[str, Any]:
        return {"policies": {u: {"version": p.version, "from_config": True} if u in self.from_config else
                             {"version": p.version, "policy": config_table(p.config)}
                             for u, p in self.policies.items()},
                "roles": self.roles}

    def _save(self) -> None:
        state = self._state()
        self.digest = _digest(state)
        self.changed_unix_ns = time.time_ns()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")  # several rendezvous may save at once
        with open(tmp, "w") as f:
            json.dump({**state, "changed_unix_ns": self.changed_unix_ns}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._stamp = _stamp(self.path)

    def reload_if_changed(self) -> bool:
        """Load the saved state again if another process (a rendezvous of the same data directory) wrote it
        since this one last did: one that missed a change (stopped, or cut off from the frontends) catches up.
        Returns whether it did. Cheap: one stat."""
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._stamp:
            return False
        before = (self.policies, self.roles, self.from_config, self.digest, self.changed_unix_ns)
        self.policies, self.roles, self.from_config = {}, {}, set()
        try:
            self._load()
        except ConfigError as e:  # not a torn write (the file is renamed into place): someone edited it
            self.policies, self.roles, self.from_config, self.digest, self.changed_unix_ns = before
            self._stamp = stamp
            logger.error("%s; keeping the admin state in force", e)
            return False
        if self.digest != before[3]:
            logger.info("admin state loaded again from %s (another rendezvous changed it): %s", self.path,
                        ", ".join(f"{u} policy v{p.version}" for u, p in sorted(self.policies.items()))
                        or "no policy changed")
        return True

    def _load(self) -> None:
        stamp = _stamp(self.path)
        if stamp is None:
            return
        try:
            state = json.loads(self.path.read_text())
            for use_case, entry in state.get("policies", {}).items():
                from_config = entry.get("from_config", False) is True
                config = self.default.config if from_config else parse_policy(entry["policy"], str(self.path))
                self.policies[use_case] = Policy.from_config(config, version=int(entry["version"]))
                if from_config:
                    self.from_config.add(use_case)
            self.roles = {u: dict(r) for u, r in state.get("roles", {}).items()}
            self.changed_unix_ns = int(state.get("changed_unix_ns", 0))
        except (ValueError, KeyError, TypeError, ConfigError) as e:
            raise ConfigError(f"{self.path}: cannot read the saved admin state ({e}); fix or remove the file") from e
        logger.info("admin state loaded from %s: %d policies, role changes in %d use cases", self.path,
                    len(self.policies), len(self.roles))
        self.digest = _digest(self._state())
        self._stamp = stamp


def config_table(config: RendezvousConfig) -> dict[str, Any]:
    """A policy as the TOML/JSON table ``parse_rendezvous`` reads."""
    table = asdict(config)
    table["schedule"] = [{"until_ms": w["until_ms"], "accept": list(w["accept"])} for w in table["schedule"]]
    if table["default_output"] is None:
        del table["default_output"]
    return table


def policy_to_table(policy: admin_pb2.Policy) -> dict[str, Any]:
    """The API's Policy message as a table; unset (zero) fields take their defaults."""
    table: dict[str, Any] = {}
    if policy.deadline_ms:
        table["deadline_ms"] = policy.deadline_ms
    if policy.on_timeout:
        table["on_timeout"] = policy.on_timeout
    if policy.HasField("default_output"):
        table["default_output"] = value_to_python(policy.default_output)
    if policy.schedule:
        table["schedule"] = [{"until_ms": w.until_ms, "accept": list(w.accept)} for w in policy.schedule]
    if policy.early_score_ms:
        table["early_score_ms"] = policy.early_score_ms
    return table


def policy_message(config: RendezvousConfig) -> admin_pb2.Policy:
    message = admin_pb2.Policy(deadline_ms=config.deadline_ms, on_timeout=config.on_timeout,
                               early_score_ms=config.early_score_ms,
                               schedule=[admin_pb2.Window(until_ms=w.until_ms, accept=w.accept)
                                         for w in config.schedule])
    if config.default_output is not None:
        python_to_value(config.default_output, message.default_output)
    return message


def _digest(state: dict[str, Any]) -> str:
    """A short digest of what is in force (policies and roles), the same for the same state in any process."""
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size
