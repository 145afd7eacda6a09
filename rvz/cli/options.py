"""What every command shares: exit codes, ``fail``, the options that name a deployment, and how one
deployment is resolved from them, the same way for every command.

Exit codes: 0 done; 1 it ran and failed (a call refused, a server unreachable, a log unreadable);
2 it cannot run as asked (a bad option or config value, a missing optional dependency: nothing was
attempted, and nothing will change until the user does); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from rvz.config import Config, config_from_json, load_config, parse_config
from rvz.config.cli import setting_options
from rvz.config.overrides import Given, SectionKey, apply, env_name, from_environment
from rvz.config.settings import LogConfig
from rvz.errors import CallFailed, ConfigError
from rvz.security.deployment import token_file
from rvz.security.keys import first_token
from rvz.security.tls import ClientTls, Connection, own_client
from rvz.telemetry import logging_setup

if TYPE_CHECKING:
    from rvz.client import Client

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    click.echo(f"rvz: {message}", err=True)
    sys.exit(code)


def require_extra(module: str, extra: str, what: str) -> None:
    """Exit 2 with the extra to install when ``module`` cannot be imported; call before printing anything."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses it
        found = False
    if not found:
        fail(f"{what} needs the {module} package, which is not installed: pip install 'rvz[{extra}]'")


def parse_features(text: str) -> dict[str, Any]:
    """--features: a JSON object of feature name -> value; exits 2 with what is wrong."""
    try:
        features = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"--features is not valid JSON: {e}")
    if not isinstance(features, dict):
        fail("--features must be a JSON object of feature name -> value")
    return features


def configure_logging(component: str) -> None:
    """Logging of this process as the top-level --log-level and --log-format say."""
    options = click.get_current_context().find_root().params  # a command run alone has neither option
    logging_setup.configure(component, options.get("log_level", "INFO"), options.get("log_format", "text"))


def config_option(func: F) -> F:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="RVZ_CONFIG",
                        show_envvar=True, show_default=True,
                        help="TOML config of the deployment; without one, the built-in defaults.")(func)


def data_dir_option(func: F) -> F:
    """--data-dir: log.dir, as ``sections["log", "dir"]``."""
    return setting_options(LogConfig, ["dir"], into="log_given", flags={"dir": "--data-dir"},
                           envvars={"dir": env_name("log", "dir")})(func)


def section_given(section: str, given: dict[str, Given]) -> dict[SectionKey, Given]:
    """What ``setting_options(into=...)`` collected, keyed by (table, key) for ``build_config``."""
    return {(section, key): value for key, value in given.items()}


def build_config(config_path: str | None, given: dict[SectionKey, Given] | None = None, *,
                 demo: bool = False, config_json: str | None = None) -> Config:
    """The config file (the demo's, without one, if ``demo``), then the environment, then ``given``.

    ``config_json`` (from `rvz up`) is already effective: the environment is not applied again.
    Exits 2 with one line naming the source and key of a bad value.
    """
    try:
        if config_json:
            config = config_from_json(config_json)
        else:
            base = load_config(config_path) if config_path or demo else parse_config({}, "<defaults>")
            config = apply(base, from_environment(os.environ))
        return apply(config, given or {})
    except ConfigError as e:
        fail(f"config error: {e}")


# --- the deployment a command talks to -----------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """The deployment a command talks to: its config, the frontend to call, the use case asked for."""

    config: Config
    # HOST:PORT of the frontend ("" for a command that calls none).
    target: str
    # The use case asked for; None: the command's default (the server's default one, or every one).
    use_case: str | None
    # Where the target came from, for messages: "--target", "frontend.listen of rvz.toml".
    target_source: str = ""
    # TLS to the frontend (None: plaintext) and the Admin credential sent (NAME:SECRET, "" for none).
    tls: ClientTls | None = None
    token: str = ""

    @property
    def connection(self) -> Connection:
        return Connection(self.target, self.tls, self.token)

    @property
    def data_dir(self) -> Path:
        return Path(self.config.log.dir)

    @property
    def use_case_name(self) -> str:
        """The use case asked for, else the config's default one (for a command that no server answers)."""
        return self.use_case or self.config.frontend.default_use_case

    def client(self, timeout_s: float | None = 10.0) -> Client:
        """An ``rvz.Client`` of the target (close it, or use it as a context manager)."""
        from rvz.client import Client

        return Client(self.target, timeout_s, tls=self.tls, token=self.token)

    def call_failed(self, error: CallFailed) -> NoReturn:
        """Exit 1 with the status of a failed call, and where the target came from when unreachable."""
        hint = f" (is rvz serving on {self.target}, {self.target_source}?)" if error.code.name == "UNAVAILABLE" else ""
        fail(f"{error}{hint}", EXIT_FAILURE)


def deployment_options(*, target: bool = False, use_case: str = "", data_dir: bool = False) -> Callable[[F], F]:
    """--config, and --target and --data-dir if asked, and --use-case when ``use_case`` says its default
    (e.g. "every use case"); the command gets one ``deployment`` resolved from them.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def resolve(config_path: str | None, **kwargs: Any) -> Any:
            config = build_config(config_path, section_given("log", kwargs.pop("log_given", {})))
            address, source = _target(config, kwargs.pop("target")) if target else ("", "")
            tls, token = _client_security(config, kwargs) if target else (None, "")
            asked = kwargs.pop("use_case") if use_case else None
            return command(deployment=Deployment(config, address, asked or None, source, tls, token), **kwargs)

        wrapped: Any = resolve
        if data_dir:
            wrapped = data_dir_option(wrapped)
        if use_case:
            wrapped = click.option("--use-case", default=None, show_default=use_case, help="Use case.")(wrapped)
        if target:
            wrapped = client_security_options(wrapped)
            wrapped = click.option("--target", default=None, metavar="HOST:PORT",
                                   show_default="frontend.listen of --config", help="The frontend to call.")(wrapped)
        return config_option(wrapped)  # type: ignore[no-any-return]

    return decorate


def client_security_options(func: F) -> F:
    """--tls-ca, --tls-cert, --tls-key and --admin-token-file: how a command reaches a TLS frontend and
    proves who it is to the Admin API (each defaults to what the deployment's config says)."""
    path = click.Path(dir_okay=False)
    for flag, show, text in reversed([
            ("--tls-ca", "tls.ca (else tls.cert) of --config", "PEM CA to verify the frontend's certificate with "
             "(TLS); with no TLS option and no [tls] in the config, plaintext."),
            ("--tls-cert", "tls.cert under tls.require_client_auth", "PEM client certificate (mTLS)."),
            ("--tls-key", "tls.key under tls.require_client_auth", "PEM private key of --tls-cert."),
            ("--admin-token-file", "security.admin_token_file of --config, if readable",
             "File of the Admin API's bearer token (its first NAME:SECRET line is sent).")]):
        func = click.option(flag, type=path, default=None, metavar="FILE", show_default=show, help=text)(func)
    return func


def _client_security(config: Config, given: dict[str, Any]) -> tuple[ClientTls | None, str]:
    """The TLS and Admin credential of a command: its options, else the deployment's config. Exits 2 on an
    unreadable token file given as an option."""
    ca, cert, key = given.pop("tls_ca"), given.pop("tls_cert"), given.pop("tls_key")
    tls = ClientTls(ca or "", cert or "", key or "") if ca or cert or key else own_client(config.tls)
    token_path = given.pop("admin_token_file")
    try:
        if token_path:
            return tls, first_token(Path(token_path))
        default = token_file(config)
        return tls, first_token(default) if os.access(default, os.R_OK) else ""
    except ConfigError as e:
        fail(str(e))


def _target(config: Config, given: str | None) -> tuple[str, str]:
    """The frontend to call: --target, else frontend.listen (a wildcard host means this host)."""
    if given:
        return given, "--target"
    listen = config.frontend.listen
    host, _, port = listen.rpartition(":")
    where = f"frontend.listen of {config.source}"
    if port == "0":
        fail(f"{where} is {listen!r}: its port is chosen at start; give --target HOST:PORT (`rvz up` prints it)")
    return f"{_LOOPBACK.get(host, host)}:{port}", where


_LOOPBACK = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}
