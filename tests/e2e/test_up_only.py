"""`rvz up --only ...`: one host's share of a deployment, from the same config file as the others'.

Two "hosts" here are two `rvz up` with their own data directories and the same keys directory and
[streams] endpoints (ipc:// in the test's directory), as docs/multi-host.md describes.
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from harness import Proc, base_config, spawn
from rvz.client import Client
from rvz.process import serving
from rvz.process.supervisor import RUNNING_PREFIX

pytestmark = pytest.mark.timeout(90)
MODELS = """
[[models]]
name = "champ"
entry = "rvz_test_models:echo"
role = "champion"
"""


def host_config(root: Path, host: str) -> Path:
    """The deployment's config as one host has it: its own data directory, the shared keys directory."""
    path = root / f"{host}.toml"
    text = base_config(root, extra=MODELS + f'\n[security]\nkeys_dir = "{root}/keys"\n')
    path.write_text(text.replace(f'dir = "{root}/data"', f'dir = "{root}/{host}-data"'))
    return path


def up_only(root: Path, config: Path, name: str, *only: str) -> Proc:
    args = ["up", "--config", str(config), *(a for part in only for a in ("--only", part))]
    return spawn(name, args, root, announces=(RUNNING_PREFIX,))


def test_two_shares_of_one_deployment_answer_calls_together(root: Path) -> None:
    servers_config, models_config = host_config(root, "servers"), host_config(root, "models")
    made = spawn("keys", ["keys", "create", "--config", str(servers_config)], root)
    assert made.wait(30) == 0, made.stderr()
    servers = up_only(root, servers_config, "servers", "rendezvous", "frontend")
    models = None
    try:
        banner = servers.wait_line(RUNNING_PREFIX, timeout_s=60)
        assert banner.startswith("rendezvous, frontend ("), banner
        assert f"binds requests ipc://{root}/requests.sock, scores " in banner
        assert "expects elsewhere: models default/champ" in banner
        address = re.search(r"gRPC on (\S+?)\)", banner)
        assert address is not None, banner
        models = up_only(root, models_config, "models", "models")
        banner = models.wait_line(RUNNING_PREFIX, timeout_s=60)
        assert banner.startswith("models default/champ (connects to requests "), banner
        assert "expects elsewhere: rendezvous, frontend" in banner
        with grpc.insecure_channel(address.group(1)) as channel:  # health, then the rendezvous's listing
            serving.wait_serving(channel, timeout_s=30)
            serving.wait_models(channel, {("default", "champ")}, timeout_s=30)
        with Client(address.group(1)) as client:
            answers = [client.score({"x": i}) for i in range(5)]
        assert {a.model_name for a in answers} == {"champ"}
        # Each share holds its own data directory: a second share on one of them stops before starting anything.
        second = up_only(root, models_config, "second", "models")
        assert second.wait(30) == 1, second.stderr()
        assert f"{root}/models-data is the data directory of a running deployment" in second.stderr()
    finally:
        for proc in (models, servers):  # the models first: the frontend they hear from stays until they stop
            if proc is not None:
                proc.stop()


def test_a_share_without_the_keys_of_the_parts_elsewhere_refuses_to_start(root: Path) -> None:
    # Keys made on the models' host for a frontend and rendezvous that run elsewhere would match no secret
    # there: every handshake would fail without a word.
    models = up_only(root, host_config(root, "models"), "models", "champ")
    assert models.wait(30) == 2, models.stderr()
    assert "lacks rendezvous.key, frontend.key" in models.stderr()
    assert "rvz keys create" in models.stderr()


def test_an_unknown_part_is_a_usage_error_naming_the_valid_ones(root: Path) -> None:
    up = up_only(root, host_config(root, "servers"), "up", "rendezvous", "chmp")
    assert up.wait(30) == 2
    assert ("--only 'chmp' is not a part of this deployment" in up.stderr()
            and "did you mean 'champ'? give one of rendezvous, frontend, models, champ" in up.stderr()), up.stderr()
