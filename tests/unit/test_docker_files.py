"""docker/: the image, the compose deployment and its config, checked without a container engine.

No container engine runs here, so these files are read, not run: every command a container runs is
parsed by rvz's own command line (an unknown option, subcommand or --only part fails), the config loads
with rvz's loader, the Dockerfile runs as a non-root user with the data directory as a volume and the
extras `rvz report --html` needs, and every file the image copies or compose mounts exists.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from rvz.cli.main import cli
from rvz.config import Config, load_config
from rvz.process.share import share_from
from rvz.security.deployment import keys_dir

pytestmark = pytest.mark.timeout(30)
REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
CONFIG_PATH = DOCKER / "rvz.toml"
SERVICES: dict[str, Any] = COMPOSE["services"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continued lines joined."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", dockerfile.read_text())  # comments may sit inside a RUN
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


DOCKERFILE = instructions(REPO / SERVICES["frontend"]["build"]["dockerfile"])


def words(arguments: str) -> list[str]:
    """A Dockerfile instruction's arguments: exec form (a JSON array) or shell words."""
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def parse(command: list[str]) -> click.Context:
    """The click context of an `rvz ...` command line, down to its last subcommand; raises UsageError for
    an unknown command or option, or a bad value."""
    assert command[0] == "rvz", command
    group: click.Command = cli
    ctx = group.make_context("rvz", command[1:])
    while isinstance(group, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = group.resolve_command(ctx, rest)
        assert name is not None and sub is not None, command
        group, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a service's volumes (short and long syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found[target] = source
    return found


def service_config(service: dict[str, Any]) -> Config:
    """The config file a service's command names, read from where compose mounts it from."""
    command = service["command"]
    target = command[command.index("--config") + 1]
    source = DOCKER / mounts(service)[target]
    assert source.is_file(), f"{target} is mounted from {source}, which does not exist"
    return load_config(source)


def test_every_command_a_container_runs_is_a_valid_rvz_command_line() -> None:
    commands = [s["command"] for s in SERVICES.values()]
    commands += [s["healthcheck"]["test"][1:] for s in SERVICES.values() if "test" in s.get("healthcheck", {})]
    commands += [words(args) for op, args in DOCKERFILE if op == "CMD"]
    # HEALTHCHECK [OPTIONS] CMD command
    commands += [words(args.split(" CMD ", 1)[1]) for op, args in DOCKERFILE if op == "HEALTHCHECK"]
    assert len(commands) == len(SERVICES) + 3  # every service, the frontend's health check, the image's two
    for command in commands:
        parse(command)


def test_each_up_only_names_parts_of_the_config_and_together_they_run_it_all() -> None:
    config = load_config(CONFIG_PATH)
    run: list[str] = []
    for name, service in SERVICES.items():
        ctx = parse(service["command"])
        if ctx.command.name != "up":
            continue
        assert ctx.params["only"], f"{name} runs the whole deployment: give it --only"
        share = share_from(service_config(service), ctx.params["only"])  # raises for an unknown part
        run += [k for k in ("rendezvous", "frontend") if getattr(share, k)] + [m.name for m in share.models]
    assert sorted(run) == sorted(["rendezvous", "frontend", *(m.name for m in config.models)])


def test_the_config_loads_keeps_curve_on_and_every_part_has_its_own_data_dir_and_the_shared_keys() -> None:
    config = load_config(CONFIG_PATH)
    assert config.security.curve and not config.security.allow_plaintext_tcp
    assert all(getattr(config.streams, s).startswith("tcp://") for s in ("requests", "scores", "results"))
    data_volumes = []
    for name, service in SERVICES.items():
        if name == "report":
            continue
        where = mounts(service)
        assert where.get(str(keys_dir(config))) == "keys", f"{name} does not mount the keys volume"
        if parse(service["command"]).command.name == "up":
            data_volumes.append(where[config.log.dir])  # one `rvz up` per data directory (DATA_DIR/run/LOCK)
    assert len(set(data_volumes)) == len(data_volumes), data_volumes
    assert set(data_volumes) | {"keys"} <= set(COMPOSE["volumes"])


def test_services_start_after_the_keys_and_name_services_that_exist() -> None:
    for name, service in SERVICES.items():
        needs = service.get("depends_on", {})
        assert set(needs) <= set(SERVICES), name
        if name not in ("keys", "report"):
            assert needs.get("keys") == {"condition": "service_completed_successfully"}, name
    assert parse(SERVICES["keys"]["command"]).command.name == "create"


def test_the_image_runs_as_a_user_that_is_not_root_with_the_data_dir_as_a_volume() -> None:
    users = [args.split(":")[0] for op, args in DOCKERFILE if op == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    volumes = [v for op, args in DOCKERFILE if op == "VOLUME" for v in words(args)]
    config = load_config(CONFIG_PATH)
    env = " ".join(args for op, args in DOCKERFILE if op == "ENV")
    assert config.log.dir in volumes and f"RVZ_LOG_DIR={config.log.dir}" in env
    # A new named volume is a copy of the image's directory: it must be the user's before VOLUME.
    before_volume = DOCKERFILE[:next(i for i, (op, _) in enumerate(DOCKERFILE) if op == "VOLUME")]
    assert any(op == "RUN" and re.search(rf"chown {users[-1]}:\S+ .*{config.log.dir}", args)
               for op, args in before_volume)


def test_the_image_installs_the_extras_of_rvz_report_html_and_the_demo_models() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("matplotlib") for r in extras["report"])  # what `rvz report --html` imports
    installs = [args for op, args in DOCKERFILE if op == "RUN" and "pip install" in args]
    installed = {e for args in installs for group in re.findall(r"\.\[([\w,]+)\]", args) for e in group.split(",")}
    assert {"report", "demo"} <= installed, installs


def test_every_file_the_image_copies_and_compose_builds_from_exists() -> None:
    build = SERVICES["frontend"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == REPO and (context / build["dockerfile"]).is_file()
    copies = [words(args)[:-1] for op, args in DOCKERFILE if op in ("COPY", "ADD")]
    assert copies
    for sources in copies:
        for source in (s for s in sources if not s.startswith("--")):
            assert (context / source).exists(), f"COPY {source}: not in the build context {context}"
    for name, service in SERVICES.items():
        for target, source in mounts(service).items():
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts {source} at {target}: it does not exist"
