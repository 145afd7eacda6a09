"""What `rvz keys` does: list the deployment's keys, give a model on another host its one file, add
Admin tokens. Every function raises ``ConfigError`` with what to fix."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import zmq

from rvz.config import Config
from rvz.config.fields import name_problem
from rvz.errors import ConfigError
from rvz.security.deployment import ensure_keys, keys_dir, token_file
from rvz.security.keys import SERVERS, KeyInfo, ModelKeyFile, locked, read_info, read_tokens, write_certificate


@dataclass(frozen=True)
class Listed:
    path: Path
    info: KeyInfo
    # Its secret key is in the directory too (the process runs on this host).
    secret_here: bool


def list_keys(config: Config) -> list[Listed]:
    directory = keys_dir(config)
    if not directory.is_dir():
        raise ConfigError(f"{directory} does not exist: make the keys with `rvz keys create` (or `rvz up`)")
    return [Listed(path, read_info(path), path.with_suffix(".key_secret").exists())
            for path in sorted(directory.glob("*.key"))]


def add_remote_model(config: Config, name: str, use_case: str, out: Path) -> KeyInfo:
    """Make a key pair for a model that runs on another host: its public key goes into the keys
    directory (admitted from now on, without a restart), the pair and the servers' public keys into
    ``out`` (0600), and the secret key nowhere else."""
    for what, value in (("NAME", name), ("--use-case", use_case)):
        if problem := name_problem(value):
            raise ConfigError(f"{what}: {problem}")
    if out.exists():
        raise ConfigError(f"{out} exists; give another --out (it would hold a new secret key)")
    ensure_keys(config)
    directory = keys_dir(config)
    identity = KeyInfo(b"", "model", use_case, name)
    public_path = directory / f"{identity.stem}.key"
    with locked(directory):
        if public_path.exists():
            raise ConfigError(f"{public_path} exists: model {name!r} of use case {use_case!r} has a key already; "
                              "remove that file first to revoke it and make a new one")
        public, secret = zmq.curve_keypair()
        servers = {server: read_info(directory / f"{server}.key").public for server in SERVERS}
        ModelKeyFile(KeyInfo(public, "model", use_case, name), secret, servers).write(out)
        write_certificate(public_path, identity, public)
    return KeyInfo(public, "model", use_case, name)


def add_token(config: Config, name: str) -> Path:
    """Add a NAME:SECRET line to the Admin token file (made 0600 if missing); returns the file."""
    if problem := name_problem(name):
        raise ConfigError(f"NAME: {problem}")
    path = token_file(config)
    ensure_keys(config)
    if name in read_tokens(path):
        raise ConfigError(f"{path} has a token named {name!r} already")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{name}:{secrets.token_urlsafe(32)}\n")
    return path
