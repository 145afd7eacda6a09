"""The ZAP handler of a binding process: admits a CURVE client only if its public key is authorized and
its role may use the stream, and stamps its messages with the key's User-Id.

Built on pyzmq's ``zmq.auth.ThreadAuthenticator`` (one thread per process, woken only by connection
attempts, never per message). The authorized keys are every ``*.key`` of the keys directory, read again
whenever the directory changes: a key added by ``rvz keys add-model`` is admitted without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from rvz.security.curve import Stream
from rvz.security.keys import KeyInfo, authorized_keys
from rvz.telemetry.throttle import ThrottledLog

logger = logging.getLogger(__name__)
_refused = ThrottledLog(logger)

# Who may connect to each stream's binding side.
STREAM_ROLES: dict[Stream, frozenset[str]] = {
    "requests": frozenset({"rendezvous", "model"}),  # subscribers
    "requests_in": frozenset({"frontend"}),          # frontends publishing to the requests hub
    "scores": frozenset({"model", "replay"}),        # pushers
    "results": frozenset({"frontend"}),              # dealers
    "work": frozenset({"model"}),                    # replicas' dealers
}


class KeyDirectory:
    """The authorized public keys of a directory, reloaded when it changes. Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int, int], ...] | None = ()
        self._keys: dict[bytes, KeyInfo] = {}

    def lookup(self, public: bytes) -> KeyInfo | None:
        """The key's info (``public`` in z85), or None if it is not authorized."""
        with self._lock:
            self._reload_if_changed()
            return self._keys.get(public)

    def _reload_if_changed(self) -> None:
        # The names, sizes and times of the key files, not the directory's time alone: two changes within
        # one tick of the filesystem's clock leave the directory's time as it was after the first.
        stamp = _stamp(self.directory)
        if stamp != self._stamp:
            self._stamp = stamp
            self._keys = authorized_keys(self.directory) if stamp is not None else {}
            logger.info("authorized keys: %d in %s", len(self._keys), self.directory)


def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...] | None:
    """What a change of the directory's keys changes (None: no such directory). One scandir per call:
    called per handshake, not per message."""
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.name.endswith(".key")]
    except OSError:
        return None
    stamp = []
    for name in sorted(names):
        with contextlib.suppress(OSError):  # removed since the listing: the next call sees it gone
            st = os.stat(directory / name)
            stamp.append((name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


class _Provider:
    def __init__(self, keys: KeyDirectory) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        info = self.keys.lookup(key)
        roles = STREAM_ROLES.get(domain, frozenset())  # type: ignore[call-overload]
        if info is not None and info.role in roles:
            return True
        who = "an unknown key" if info is None else info.describe()
        _refused.warning(f"{domain}:{who}", "refused %s on the %s stream (key %s): %s", who, domain, key.decode(),
                         "not in the keys directory" if info is None else f"only {', '.join(sorted(roles))} may")
        return False


class RoleAuthenticator(ThreadAuthenticator):
    """``ThreadAuthenticator`` that admits keys by role and names each connection by its key's User-Id."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], keys: KeyDirectory) -> None:
        super().__init__(context, log=logging.getLogger("rvz.security.zap.auth"))
        self.keys = keys

    def curve_user_id(self, client_public_key: bytes) -> str:
        info = self.keys.lookup(z85.encode(client_public_key))
        return info.user_id if info is not None else ""


def start_authenticator(context: zmq.Context[zmq.Socket[bytes]], directory: Path) -> RoleAuthenticator:
    """Handle the context's ZAP requests until ``stop()``; call before binding a CURVE server socket."""
    auth = RoleAuthenticator(context, KeyDirectory(directory))
    auth.start()
    provider = _Provider(auth.keys)
    for stream in STREAM_ROLES:
        auth.configure_curve_callback(stream, credentials_provider=provider)
    return auth
