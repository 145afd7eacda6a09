"""Several frontends in one deployment: `frontend.processes = N` under `rvz up` serves one port from N
processes, and a frontend started by hand joins a running deployment through the requests hub. Each
answers its own calls through the request's return address and writes its own request log.

Measured before the hub: a second `rvz frontend` on a running deployment exited with "cannot bind the
requests stream", and no config could give a deployment a second frontend.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import zmq

from harness import Deployment, base_config, spawn
from rvz.log.reader import iter_records
from rvz.process.banner import SERVING_PREFIX
from rvz.process.entry import HUB_READY, LISTENING_PREFIX
from rvz.wire import streams
from rvz.wire.proto import envelope_pb2, scoring_pb2, scoring_pb2_grpc
from security_tools import Attacker, StolenKey

pytestmark = pytest.mark.timeout(120)
HUB = 'requests_in = "ipc://{root}/requests-in.sock"'
MODELS = """
[[models]]
name = "champ"
entry = "rvz_test_models:echo"
"""


def request_ids(root: Path, log: str) -> list[str]:
    """The request ids in the request log ``log`` of the deployment's data directory (none if absent)."""
    directory = root / "data" / log
    if not directory.exists():
        return []
    return [envelope_pb2.RequestEnvelope.FromString(r.payload).request_id for r in iter_records(directory)]


def score_over_new_connections(address: str, calls: int) -> list[str]:
    """``calls`` calls, each over a connection of its own (the kernel picks a frontend per connection);
    the request ids answered."""

    def one(x: int) -> str:
        # A local subchannel pool: a new TCP connection per channel, not one shared by the process's channels.
        with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            request = scoring_pb2.ScoreRequest()
            request.features.update({"x": x})
            response = scoring_pb2_grpc.ScoringStub(channel).Score(request, timeout=10)
            assert response.model_name == "champ" and response.output.struct_value["x"] == x
            return str(response.request_id)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(calls)))


def test_rvz_up_with_two_frontend_processes_serves_one_port_from_both_each_with_its_own_log(root: Path) -> None:
    config = root / "rvz.toml"
    config.write_text(base_config(root, frontend="processes = 2", extra=MODELS))
    up = spawn("up", ["up", "--config", str(config)], root, announces=(SERVING_PREFIX,))
    try:
        address = up.wait_line(SERVING_PREFIX, timeout_s=90).split()[0]
        answered = score_over_new_connections(address, 40)
        by_log = {log: set(request_ids(root, log)) for log in ("requests", "requests.1")}
        assert set(answered) == by_log["requests"] | by_log["requests.1"]  # every answer logged by its frontend
        assert not by_log["requests"] & by_log["requests.1"]  # ... by that one only
        assert all(by_log.values()), {log: len(ids) for log, ids in by_log.items()}  # both took calls
        # The requests hub is a supervised part like the others: killed, it is restarted and calls flow again.
        hub_pid = int(re.findall(r"started requests hub \(pid (\d+)\)", up.stderr())[-1])
        os.kill(hub_pid, signal.SIGKILL)
        up.wait_stderr(r"requests hub \(pid \d+\) exited with code -9")
        up.wait_stderr(rf"started requests hub \(pid (?!{hub_pid}\))\d+\)")
        deadline = time.monotonic() + 10
        while True:
            try:
                score_over_new_connections(address, 4)
                break
            except grpc.RpcError:  # calls made while the hub was down get UNAVAILABLE or a deadline
                assert time.monotonic() < deadline, "no call answered 10 s after the hub's restart"
    except BaseException:
        print(f"----- rvz up (pid {up.pid}) stderr -----\n{up.stderr()}")
        raise
    finally:
        assert up.stop() == 0, up.stderr()
    # The report reads both frontends' request logs.
    logged = len(request_ids(root, "requests")) + len(request_ids(root, "requests.1"))
    report = subprocess.run([sys.executable, "-m", "rvz", "report", "--data-dir", str(root / "data"), "--json"],
                            capture_output=True, text=True, timeout=60, cwd=root)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["use_cases"][0]["requests"] == logged


def test_a_frontend_started_by_hand_joins_a_running_deployment_and_both_answer(
        deployment: Callable[..., Deployment], root: Path) -> None:
    d = deployment(streams=HUB.format(root=root), extra=MODELS)
    hub = d.spawn("hub", "hub", "--config", str(d.config_path), announces=(HUB_READY,))
    hub.wait_line(HUB_READY, check=d.check)
    d.start([("champ", "", "champion")])
    first = d.address
    joined = d.spawn("frontend-b", "frontend", "--config", str(d.config_path), "--name", "b")
    second = joined.wait_line(LISTENING_PREFIX, check=d.check)
    assert second != first
    for address in (second, first):
        d.close_channel()
        d.address = address
        d.wait_serving("default")
        answered = [d.score({"x": x}).request_id for x in range(20)]
        log = "requests" if address == first else "requests.b"
        assert set(answered) <= set(request_ids(root, log))  # each frontend logs what it took
    assert len(request_ids(root, "requests.b")) == 20 and len(request_ids(root, "requests")) == 20
    # Every answer went back through its own frontend's return address: kill one, the other goes on.
    first_frontend = d.proc("frontend")
    first_frontend.kill()
    d.procs.remove(first_frontend)
    d.close_channel()
    d.address = second
    assert Counter(d.score({"x": x}).model_name for x in range(20)) == {"champ": 20}


def test_a_second_frontend_without_a_name_is_told_to_give_one(deployment: Callable[..., Deployment],
                                                              root: Path) -> None:
    d = deployment(streams=HUB.format(root=root), extra=MODELS)
    d.spawn("hub", "hub", "--config", str(d.config_path), announces=(HUB_READY,)).wait_line(HUB_READY)
    d.start_rendezvous()
    d.start_frontend()
    twin = spawn("twin", ["frontend", "--config", str(d.config_path)], root)
    assert twin.wait(30) == 1
    assert "another frontend of this data directory writes it; give this one a name of its own (`rvz frontend " \
           "--name NAME` writes requests.NAME)" in twin.stderr()
    bad = spawn("bad", ["frontend", "--config", str(d.config_path), "--name", "../x"], root)
    assert bad.wait(30) == 2
    assert "--name: a frontend's name is 1 to 64 letters, digits, '-' or '_'" in bad.stderr()


def test_without_the_hub_a_second_frontend_still_cannot_bind_and_says_how_to_get_one(
        deployment: Callable[..., Deployment], root: Path) -> None:
    d = deployment(extra=MODELS)
    d.start_rendezvous()
    d.start_frontend()
    second = spawn("second", ["frontend", "--config", str(d.config_path), "--name", "b"], root)
    assert second.wait(30) == 1
    assert "cannot bind the requests stream" in second.stderr()


def test_rvz_hub_needs_a_config_that_has_one(deployment: Callable[..., Deployment], root: Path) -> None:
    d = deployment(extra=MODELS)
    hub = spawn("hub", ["hub", "--config", str(d.config_path)], root)
    assert hub.wait(30) == 2
    assert "the requests hub needs streams.requests_in, or frontend.processes > 1" in hub.stderr()


def test_only_a_frontend_key_may_publish_into_the_hub(deployment: Callable[..., Deployment], root: Path) -> None:
    d = deployment(streams=HUB.format(root=root), extra=MODELS)
    hub = d.spawn("hub", "hub", "--config", str(d.config_path), announces=(HUB_READY,))
    hub.wait_line(HUB_READY, check=d.check)
    d.start([("champ", "", "champion")])
    keys_dir = root / "data" / "keys"
    attacker = Attacker()
    try:
        forged = envelope_pb2.RequestEnvelope(request_id="f" * 32, use_case="default", return_address=b"x",
                                              deadline_unix_ns=time.time_ns() + 10**9)
        # A model's key (it may subscribe, not publish) and a key nobody knows, both as publishers.
        for key in (StolenKey.of(keys_dir, "model+default+champ"), StolenKey.unknown(keys_dir)):
            sock = attacker.socket(zmq.XPUB, f"ipc://{root}/requests-in.sock", key, "frontend")
            sock.send_multipart([b"default", streams.sequence_frame(b"thief", 0), forged.SerializeToString()])
        hub.wait_stderr(r"refused model 'champ' of use case 'default' .*on the requests_in stream")
        hub.wait_stderr(r"refused an unknown key on the requests_in stream")
        assert d.score({"x": 1}).model_name == "champ"  # the frontends' own requests still flow
        assert "f" * 32 not in {r.score.request_id for r in d.records("scores")}
    finally:
        attacker.close()
