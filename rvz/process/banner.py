"""The line `rvz up` prints once the deployment serves: what is in force, as the running rendezvous says.

Roles and policies come from the Admin API (ListModels, GetPolicy), not from the configuration file: a
promotion or a policy set through the API is saved in DATA_DIR/admin-state.json and outlives a restart.
"""

from __future__ import annotations

from rvz.config import Config
from rvz.wire.proto import admin_pb2

# Printed first on the banner line; tests and scripts read the address after it.
SERVING_PREFIX = "rvz serving on "


def serving_banner(address: str, config: Config, listed: admin_pb2.ListModelsResponse,
                   policies: dict[str, admin_pb2.PolicyState]) -> str:
    """``rvz serving on ADDRESS (USE CASE: policy vN, SLA D ms, models NAME (ROLE), ...; logs in DIR). Try: ...``

    Models are in the configuration's order; a role the Admin API changed says what the file has.
    """
    use_cases = sorted({m.use_case for m in config.models})
    parts = [_use_case_part(u, config, listed, policies.get(u)) for u in use_cases] or ["no models"]
    return (f"{SERVING_PREFIX}{address} ({'; '.join(parts)}; logs in {config.log.dir}). "
            f"Try: rvz score --target {address} --example")


def _use_case_part(use_case: str, config: Config, listed: admin_pb2.ListModelsResponse,
                   policy: admin_pb2.PolicyState | None) -> str:
    roles = {m.name: m.role for m in listed.models if m.use_case == use_case}
    models = []
    for model in (m for m in config.models if m.use_case == use_case):
        role = roles.get(model.name, model.role)
        shown = f"{role}, {model.replicas} replicas" if model.shared else role
        models.append(f"{model.name} ({shown})" if role == model.role else
                      f"{model.name} ({shown}; configured: {model.role})")
    in_force = (f"policy v{policy.version}, SLA {policy.policy.deadline_ms:g} ms" if policy is not None
                else f"SLA {config.rendezvous.deadline_ms:g} ms")
    return f"{use_case}: {in_force}, models {', '.join(models)}"
