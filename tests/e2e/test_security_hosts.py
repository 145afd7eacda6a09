"""A multi-host configuration: tcp:// streams, and a model "on another host" (its own data directory,
nothing of the deployment's but the one file `rvz keys add-model` wrote), admitted without a restart."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import Deployment
from rvz.process.entry import MODEL_READY

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def over_tcp(d: Deployment, host: str = "127.0.0.1", streams: tuple[str, ...] = ("requests", "scores",
                                                                                 "results")) -> None:
    """The deployment's streams on tcp:// instead of its ipc:// endpoints."""
    text = d.config_path.read_text()
    for name in streams:
        text = text.replace(f"ipc://{d.root}/{name}.sock", f"tcp://{host}:{free_port()}")
    d.config_path.write_text(text)


def test_a_model_on_another_host_needs_one_file_and_no_restart(deployment: Make, root: Path) -> None:
    d = deployment()
    over_tcp(d)
    config_text = d.config_path.read_text()
    d.start([("champ", "rvz_test_models:echo", "champion")])
    keys_file = root / "far.keys"
    made = subprocess.run([sys.executable, "-m", "rvz", "keys", "add-model", "far", "--use-case", "default", "--out",
                           str(keys_file), "--config", str(d.config_path)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert made.returncode == 0, made.stderr
    elsewhere = root / "other-host"
    elsewhere.mkdir()
    remote_config = elsewhere / "rvz.toml"  # the same endpoints, nothing else of the deployment's files
    remote_config.write_text(config_text.replace(f'dir = "{root}/data"', f'dir = "{elsewhere}/data"'))
    far = d.spawn("model-far", "model", "run", "--config", str(remote_config), "--name", "far", "--role",
                  "challenger", "--entry", "rvz_test_models:echo", "--keys", str(keys_file),
                  env={"RVZ_TEST_TAG": "far"})
    far.wait_line(MODEL_READY, check=d.check)
    d.wait_models({"champ", "far"})
    assert not (elsewhere / "data" / "keys").exists()
    d.score({"x": 1})
    d.wait_for_record("scores", lambda r: r.score.model_name == "far")


def test_plaintext_tcp_to_another_host_is_refused_at_start(deployment: Make) -> None:
    d = deployment(extra="[security]\ncurve = false\n")
    over_tcp(d, "198.18.0.1", ("scores",))  # benchmark range: never routed, never connected
    proc = d.start_rendezvous()
    assert proc.wait(30) == 2
    assert "security.allow_plaintext_tcp" in proc.stderr()
