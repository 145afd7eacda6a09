"""One process's side of stream security: the CURVE options of each socket it opens, and the ZAP
authenticator it runs while it binds a stream."""

from __future__ import annotations

from typing import Literal

import zmq

from rvz.security.curve import CurveClient, CurveServer, Stream
from rvz.security.keys import Keyring
from rvz.security.zap import RoleAuthenticator, start_authenticator


class ProcessKeys:
    """A process's keyring as socket options; all None without one (``security.curve = false``).

    ``start`` (before binding) and ``stop`` (before the context is terminated) run the authenticator
    of a binding process; both are no-ops for a process that only connects."""

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring
        self._auth: RoleAuthenticator | None = None

    @property
    def active(self) -> bool:
        return self.keyring is not None

    def server(self, stream: Stream) -> CurveServer | None:
        return None if self.keyring is None else CurveServer(self.keyring, stream)

    def client(self, server: Literal["frontend", "rendezvous"]) -> CurveClient | None:
        return None if self.keyring is None else CurveClient(self.keyring, server)

    def start(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        if self.keyring is not None and self.keyring.authorized is not None and self._auth is None:
            self._auth = start_authenticator(context, self.keyring.authorized)

    def stop(self) -> None:
        """Idempotent."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
