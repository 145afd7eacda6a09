"""Who may use the Admin API: a bearer token (``authorization: Bearer NAME:SECRET``, compared in constant
time with the token file's) or a client certificate whose common name ``security.admin_cert_names``
lists (verified by mTLS). Changes always need one; reads too unless ``security.admin_reads_open``."""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from rvz.config import Config
from rvz.errors import AdminError, ConfigError
from rvz.security.deployment import token_file
from rvz.security.keys import ensure_token, read_tokens

logger = logging.getLogger(__name__)

METADATA_KEY = "authorization"
SCHEME = "Bearer "
CERT_PREFIX = "cert:"
_HINT = ("give --admin-token-file (the deployment's KEYS_DIR/admin.token, made by `rvz keys create` and `rvz up`) "
         "or a client certificate named in security.admin_cert_names")


class AdminAuth:
    """Checks each Admin call's credential. The token file is read again when it changes (a stat per call)."""

    def __init__(self, path: Path | None, cert_names: Sequence[str], reads_open: bool) -> None:
        self.path = path
        self.cert_names = frozenset(cert_names)
        self.reads_open = reads_open
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: dict[str, bytes] = {}

    @classmethod
    def from_config(cls, config: Config) -> AdminAuth:
        """Raises ``ConfigError`` when a token file named in the config cannot be read."""
        s = config.security
        path = token_file(config)
        if s.admin_token_file and not path.is_file():
            raise ConfigError(f"security.admin_token_file: {path} does not exist (make one: `rvz keys token`)")
        if not s.admin_token_file:
            ensure_token(path)  # also without CURVE: changes always need a credential
        names = [n.strip() for n in s.admin_cert_names.split(",") if n.strip()]
        auth = cls(path, names, s.admin_reads_open)
        auth.tokens()  # a token file that cannot be read is refused at start
        return auth

    def tokens(self) -> dict[str, bytes]:
        if self.path is None:
            return {}
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return {}
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)  # the time alone misses a rewrite within one tick
            if stamp != self._stamp:
                try:
                    self._tokens = {k: v.encode() for k, v in read_tokens(self.path).items()}
                except OSError as e:
                    raise ConfigError(f"cannot read the Admin token file {self.path}: {e.strerror}") from e
                self._stamp = stamp
            return self._tokens

    def check(self, metadata: Sequence[tuple[str, Any]], auth_context: dict[str, list[bytes]], change: bool) -> str:
        """Who made the call ("" for an open read); raises ``AdminError``: UNAUTHENTICATED without a
        credential, PERMISSION_DENIED with one that is not valid here."""
        token = next((str(v) for k, v in metadata if k == METADATA_KEY), None)
        common_name = b"".join(auth_context.get("x509_common_name", [])).decode(errors="replace")
        if token is not None:
            return self._token_holder(token)
        if common_name and ("*" in self.cert_names or common_name in self.cert_names):
            return CERT_PREFIX + common_name
        if common_name:
            raise AdminError(grpc.StatusCode.PERMISSION_DENIED, f"the client certificate {common_name!r} is not "
                             "one security.admin_cert_names lets use the Admin API; " + _HINT)
        if not change and self.reads_open:
            return ""
        raise AdminError(grpc.StatusCode.UNAUTHENTICATED, "the Admin API needs a credential: " + _HINT)

    def _token_holder(self, value: str) -> str:
        if not value.startswith(SCHEME):
            raise AdminError(grpc.StatusCode.UNAUTHENTICATED, f"the authorization metadata must be "
                             f"'{SCHEME}NAME:SECRET'; " + _HINT)
        name, _, secret = value.removeprefix(SCHEME).strip().rpartition(":")
        name = name or "token"
        expected = self.tokens().get(name)
        # Compared even for an unknown name, so the time taken does not say which names exist.
        matches = hmac.compare_digest(secret.encode(), expected if expected is not None else b"\0" * 43)
        if expected is None or not matches:
            logger.warning("refused an Admin call with a wrong token (name %r)", name[:64])
            raise AdminError(grpc.StatusCode.PERMISSION_DENIED, "the Admin token is not valid for this deployment; "
                             + _HINT)
        return name
