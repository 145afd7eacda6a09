"""The deployment's CURVE keys: their files, their roles, and making them.

A keys directory (``security.keys_dir``, default DATA_DIR/keys, mode 0700) holds one certificate per
process identity, in ZeroMQ's certificate format (``zmq.auth.load_certificate`` reads them) with a
``metadata`` section saying what the key may do::

    frontend.key / frontend.key_secret        role = frontend
    rendezvous.key / rendezvous.key_secret    role = rendezvous
    replay.key / replay.key_secret            role = replay (`rvz replay`: replayed scores only)
    model+USE_CASE+NAME.key (+ .key_secret)   role = model, use_case, name
    admin.token                               the Admin API's bearer tokens (NAME:SECRET a line)

``NAME.key`` holds the public key (0644) and ``NAME.key_secret`` both keys (0600). Every ``*.key``
file is an authorized public key: the binding side of each stream admits the roles it serves
(``rvz.security.zap``). A model on another host gets one file from ``rvz keys add-model``: its key
pair and the servers' public keys (``ModelKeyFile``); only its public key stays in the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import tomli_w
import zmq
from zmq.auth import load_certificate

from rvz.errors import ConfigError

KeyRole = Literal["frontend", "rendezvous", "model", "replay"]
KEY_ROLES: tuple[str, ...] = get_args(KeyRole)
SERVERS = ("frontend", "rendezvous")
TOKEN_FILE = "admin.token"
_LOCK = ".lock"
_BANNER = "#   rvz {what} CURVE certificate ({role}).\n#   {advice}\n\n"
_LINE = re.compile(r'^\s+([\w-]+)\s*=\s*"?([^"]*)"?\s*$')


@dataclass(frozen=True)
class KeyInfo:
    """A public key (z85, 40 bytes) and what its holder may do."""

    public: bytes
    role: KeyRole
    use_case: str = ""
    name: str = ""

    @property
    def user_id(self) -> str:
        """The ZAP User-Id of its connections, which every message they carry is stamped with:
        a frontend's routing id, ``model/USE_CASE/NAME``, or the role."""
        if self.role == "frontend":
            return routing_id_for(self.public).decode()
        if self.role == "model":
            return f"model/{self.use_case}/{self.name}"
        return self.role

    @property
    def stem(self) -> str:
        """The certificate's file name without its suffix."""
        return f"model+{self.use_case}+{self.name}" if self.role == "model" else self.role

    def describe(self) -> str:
        return f"model {self.name!r} of use case {self.use_case!r}" if self.role == "model" else f"the {self.role}"


@dataclass(frozen=True)
class Keyring:
    """What one process holds: its key pair, the servers' public keys, and (on a binding side) the
    directory of authorized public keys."""

    own: KeyInfo
    secret: bytes
    servers: dict[str, bytes]
    authorized: Path | None = None


def routing_id_for(public: bytes) -> bytes:
    """The routing-id prefix of a frontend's processes on the results stream, bound to its key (the
    rendezvous checks it); each process adds its own suffix (``frontend_routing_id``)."""
    return b"fe-" + hashlib.sha256(public).hexdigest()[:16].encode()


def frontend_routing_id(public: bytes, process: bytes) -> bytes:
    """One frontend process's routing id: its key's prefix, a dot, ``process`` (unique to the process). Several
    frontends share one key; each needs an id of its own, or ROUTER_HANDOVER would give one's answers to another."""
    return routing_id_for(public) + b"." + process


def routing_id_matches(user_id: str, address: bytes) -> bool:
    """Whether ``address`` is a routing id the frontend key of ``user_id`` may use (``frontend_routing_id``)."""
    prefix = user_id.encode()
    return address.startswith(prefix + b".") and len(address) > len(prefix) + 1


# --- reading -------------------------------------------------------------------------------------


def read_info(path: Path) -> KeyInfo:
    """The public key and role of a certificate file; raises ``ConfigError`` naming the file."""
    try:
        public, _ = load_certificate(path)
        metadata = _metadata(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable rvz key file ({e})") from e
    role = metadata.get("role", "")
    if role not in KEY_ROLES or len(public) != 40:
        raise ConfigError(f"{path}: not an rvz key (role {role!r}; expected one of {', '.join(KEY_ROLES)})")
    return KeyInfo(public, role, metadata.get("use_case", ""), metadata.get("name", ""))  # type: ignore[arg-type]


def _metadata(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            section = line.strip()
        elif section == "metadata" and (match := _LINE.match(line)):
            values[match.group(1)] = match.group(2)
    return values


def authorized_keys(directory: Path) -> dict[bytes, KeyInfo]:
    """Every ``*.key`` of the directory by public key; unreadable files are skipped (and returned by name
    in ``problems`` of ``list_keys``)."""
    found: dict[bytes, KeyInfo] = {}
    for path in sorted(directory.glob("*.key")):
        with contextlib.suppress(ConfigError):
            info = read_info(path)
            found[info.public] = info
    return found


def local_keyring(directory: Path, identity: KeyInfo) -> Keyring:
    """The keyring of a process on the keys directory's host; raises ``ConfigError`` if a file is missing."""
    secret_path = directory / f"{identity.stem}.key_secret"
    try:
        public, secret = load_certificate(secret_path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{secret_path}: cannot read {identity.describe()}'s secret key ({e}); make the keys "
                          "with `rvz keys create`") from e
    if secret is None:
        raise ConfigError(f"{secret_path} holds no secret key; make the keys again with `rvz keys create`")
    servers = {name: read_info(directory / f"{name}.key").public for name in SERVERS}
    return Keyring(KeyInfo(public, identity.role, identity.use_case, identity.name), secret, servers, directory)


# --- making --------------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """The keys directory (made 0700 if missing), locked against another process making keys at once."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_key(directory: Path, identity: KeyInfo) -> bool:
    """Make the key pair of ``identity`` unless its public key file exists (call under ``locked``).
    Returns whether it made one. A public key without its secret is left alone: that process runs elsewhere."""
    if (directory / f"{identity.stem}.key").exists():
        return False
    public, secret = zmq.curve_keypair()
    write_certificate(directory / f"{identity.stem}.key_secret", identity, public, secret)
    write_certificate(directory / f"{identity.stem}.key", identity, public)
    return True


def write_certificate(path: Path, identity: KeyInfo, public: bytes, secret: bytes | None = None) -> None:
    """One certificate file, created exclusively (0600 with a secret, else 0644)."""
    what, advice = ("secret", "Never copy it off this host unless it is this process's.") if secret else \
        ("public", "Safe to share.")
    lines = [_BANNER.format(what=what, role=identity.role, advice=advice), "metadata\n",
             f'    role = "{identity.role}"\n']
    if identity.role == "model":
        lines += [f'    use_case = "{identity.use_case}"\n', f'    name = "{identity.name}"\n']
    lines += ["curve\n", f'    public-key = "{public.decode()}"\n']
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"\n')
    _write_new(path, "".join(lines), 0o600 if secret else 0o644)


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``text``, whole or not at all: written under a temporary name, then linked into
    place (FileExistsError if it exists). A reader never sees it empty or half written: the ZAP handler and
    the Admin check reload their files when they change, and one that read an empty file would keep it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def ensure_token(path: Path, name: str = "admin") -> bool:
    """Make an Admin token file (``NAME:SECRET``, 0600) unless it exists; returns whether it made one."""
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        _write_new(path, f"{name}:{secrets.token_urlsafe(32)}\n", 0o600)
    except FileExistsError:  # another process made it first
        return False
    return True


def read_tokens(path: Path) -> dict[str, str]:
    """NAME:SECRET lines (a line without a colon is the token named "token"); # starts a comment."""
    tokens: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, secret = line.rpartition(":")
            tokens[name or "token"] = secret
    return tokens


def first_token(path: Path) -> str:
    """The credential a client sends from a token file: its first NAME:SECRET line; raises ``ConfigError``."""
    try:
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return line.strip()
    except OSError as e:
        raise ConfigError(f"--admin-token-file: cannot read {path}: {e.strerror}") from e
    raise ConfigError(f"--admin-token-file: {path} holds no token")


# --- a model on another host ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKeyFile:
    """The one file a model on another host needs: its key pair and the servers' public keys."""

    own: KeyInfo
    secret: bytes
    servers: dict[str, bytes] = field(default_factory=dict)

    def keyring(self) -> Keyring:
        return Keyring(self.own, self.secret, self.servers)

    def write(self, path: Path) -> None:
        text = (f"# rvz model keys: the key pair of {self.own.describe()} and the servers' public keys.\n"
                "# Secret: keep it 0600 on the model's host only (`rvz model run --keys FILE`).\n")
        data = {"model": {"use_case": self.own.use_case, "name": self.own.name, "public": self.own.public.decode(),
                          "secret": self.secret.decode()},
                "servers": {name: key.decode() for name, key in self.servers.items()}}
        _write_new(path, text + tomli_w.dumps(data), 0o600)

    @classmethod
    def read(cls, path: Path) -> ModelKeyFile:
        """Raises ``ConfigError`` naming the file and what is wrong."""
        try:
            data = tomllib.loads(path.read_text())
            model, servers = data["model"], data["servers"]
            own = KeyInfo(model["public"].encode(), "model", model["use_case"], model["name"])
            keys = {name: servers[name].encode() for name in SERVERS}
            return cls(own, model["secret"].encode(), keys)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"{path}: not a model key file from `rvz keys add-model` ({e!r})") from e
