"""The keys of one deployment as its processes use them: where they are, making the missing ones, the
keyring of each process, and the refusal of plaintext streams across hosts."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from rvz.config import Config, ModelConfig
from rvz.errors import ConfigError
from rvz.security.keys import (
    KeyInfo,
    Keyring,
    KeyRole,
    ModelKeyFile,
    ensure_key,
    ensure_token,
    first_token,
    local_keyring,
    locked,
)
from rvz.security.tls import Connection, own_client

logger = logging.getLogger(__name__)
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def keys_dir(config: Config) -> Path:
    return Path(config.security.keys_dir or Path(config.log.dir) / "keys")


def token_file(config: Config) -> Path:
    return Path(config.security.admin_token_file) if config.security.admin_token_file else \
        keys_dir(config) / "admin.token"


def model_identity(model: ModelConfig) -> KeyInfo:
    return KeyInfo(b"", "model", model.use_case, model.name)


def ensure_keys(config: Config, token: bool = True) -> list[str]:
    """Make every key the deployment's processes on this host need and (with ``token``) the Admin token,
    unless they exist: idempotent, safe to call from several processes at once. Returns the files made."""
    directory = keys_dir(config)
    identities = [KeyInfo(b"", role) for role in ("frontend", "rendezvous", "replay")]
    identities += [model_identity(m) for m in config.models]
    with locked(directory):
        made = [f"{directory / i.stem}.key" for i in identities if ensure_key(directory, i)]
        if token and not config.security.admin_token_file and ensure_token(token_file(config)):
            made.append(str(token_file(config)))
    if made:
        logger.info("made %d keys in %s (see docs/security.md): %s", len(made), directory,
                    ", ".join(Path(m).name for m in made))
    return made


def missing_public_keys(config: Config, identities: list[KeyInfo]) -> list[str]:
    """The public key files of ``identities`` that the keys directory lacks (none when CURVE is off)."""
    if not config.security.curve:
        return []
    directory = keys_dir(config)
    return [f"{i.stem}.key" for i in identities if not (directory / f"{i.stem}.key").exists()]


def keyring_for(config: Config, role: KeyRole, model: ModelConfig | None = None) -> Keyring | None:
    """The CURVE keyring of a process of ``role`` (None when ``security.curve`` is off, after refusing
    plaintext TCP to another host). Keys missing on this host are made first (not the Admin token), except
    with ``security.model_keys`` (a model on another host). Raises ``ConfigError`` saying what to fix."""
    if not config.security.curve:
        check_plaintext(config)
        return None
    if model is not None and config.security.model_keys:
        return _model_keyring(Path(config.security.model_keys), model)
    identity = model_identity(model) if model is not None else KeyInfo(b"", role)
    directory = keys_dir(config)
    # The Admin token is the frontend's to make (rvz.security.admin_auth): on a host without one, a token
    # made here would be a secret nothing checks, and would shadow the real one for the CLI.
    ensure_keys(config, token=False)
    with locked(directory):
        ensure_key(directory, identity)
    return local_keyring(directory, identity)


def _model_keyring(path: Path, model: ModelConfig) -> Keyring:
    keys = ModelKeyFile.read(path)
    if (keys.own.use_case, keys.own.name) != (model.use_case, model.name):
        raise ConfigError(f"{path} holds the keys of {keys.own.describe()}, not of model {model.name!r} of use case "
                          f"{model.use_case!r}; give that model's file (`rvz keys add-model`)")
    return keys.keyring()


def check_plaintext(config: Config) -> None:
    """Refuse plaintext tcp:// streams to a non-loopback address unless ``security.allow_plaintext_tcp``."""
    if config.security.allow_plaintext_tcp:
        return
    endpoints = {name: config.streams.work_endpoint if name == "work" else getattr(config.streams, name)
                 for name in ("requests", "scores", "results", "work")}
    if config.requests_hub:
        endpoints["requests_in"] = config.requests_hub
    for name, endpoint in endpoints.items():
        host = _tcp_host(endpoint)
        if host is not None and not _is_loopback(host):
            raise ConfigError(f"{config.source}: streams.{name} = {endpoint!r} is a plaintext stream to another "
                              "host (security.curve = false): anyone on the network could read and forge its "
                              "messages; set security.curve = true, or security.allow_plaintext_tcp = true if "
                              "the network is trusted")


def _tcp_host(endpoint: str) -> str | None:
    if not endpoint.startswith("tcp://"):
        return None
    address = endpoint.removeprefix("tcp://").rsplit(":", 1)[0]
    return address.split(";")[-1].strip("[]")  # "src;dst" connects from src to dst


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or an interface (*, eth0): may be reachable from elsewhere


def own_connection(config: Config, target: str) -> Connection:
    """How the deployment's own tools on this host (`rvz up`) call its frontend: the config's TLS and the
    Admin token file, if readable."""
    path = token_file(config)
    return Connection(target, own_client(config.tls), first_token(path) if os.access(path, os.R_OK) else "")
