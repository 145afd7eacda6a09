"""The rendezvous's control plane: probes, announces and Admin calls, each turned into the message to
send back. No sockets here: the loop decodes what arrives and sends what these return."""

from __future__ import annotations

import logging
import time

from rvz.admin.handler import AdminHandler
from rvz.admin.state import AdminState
from rvz.rendezvous.roles import announce_as_promoted
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)


class ControlPlane:
    """Answers for frontends. Call only from the rendezvous's loop thread (the Admin state is not locked)."""

    def __init__(self, state: AdminState, models: ModelRegistry, admin: AdminHandler) -> None:
        self.state = state
        self.models = models
        self.admin = admin

    def ready(self, probe: envelope_pb2.Control) -> bytes:
        """RENDEZVOUS_READY for the probing frontend (to ``probe.frontend_id``), with what it needs of the
        policies: the SLAs changed through the Admin API and each policy's first window."""
        ready = envelope_pb2.Control(kind=envelope_pb2.Control.RENDEZVOUS_READY, frontend_id=probe.frontend_id,
                                     sent_unix_ns=time.time_ns(), deadlines_ms=self.state.deadlines_ms())
        ready.default_first_window.accept.extend(self.state.default.first_accept)
        ready.use_cases.extend(self.models.use_cases())
        ready.state_digest, ready.state_changed_unix_ns = self.state.digest, self.state.changed_unix_ns
        for use_case, policy in self.state.policies.items():
            ready.first_windows[use_case].accept.extend(policy.first_accept)
        return ready.SerializeToString()

    def announced(self, announce: envelope_pb2.Control, payload: bytes) -> bytes:
        """Note a worker's announce (``payload``: its encoding); return what to forward to the frontend that
        probed (``announce.frontend_id``): the announce, with the model's effective role."""
        if self.models.saw(announce.model, time.time_ns()):
            m = announce.model
            logger.info("model %s v%s (%s) of use case %r is live (worker %s)", m.name, m.version, m.role,
                        m.use_case, m.worker_id)
        # The frontend learns the whole path frontend -> model -> rendezvous -> frontend works.
        return announce_as_promoted(self.state, announce, payload)

    def admin_reply(self, call: envelope_pb2.AdminCall) -> bytes:
        """The reply to an Admin call forwarded by a frontend (to the frontend that sent it)."""
        reply = self.admin.handle(call)
        reply.state_digest, reply.state_changed_unix_ns = self.state.digest, self.state.changed_unix_ns
        return reply.SerializeToString()
