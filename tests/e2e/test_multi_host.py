"""A deployment on three "hosts": Linux network namespaces joined by veth pairs, the streams on tcp:// with CURVE.

The test makes four namespaces of its own: rv (the rendezvous), fe (the frontend), m1 (the models) and
sw, a switch holding the bridge every host's veth pair ends on, so the test process's own network is
never touched. Addresses are 198.18.0.0/15 only (benchmarking addresses, never routed), with no default
route; every namespace is deleted at the end, pass or fail. Each host runs `rvz up --only PART` from the
one config file, with its own data directory holding a copy of the keys made once, minus the secrets
of the processes that run elsewhere (docs/multi-host.md). Needs root; skips otherwise.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import Proc, policy, spawn
from rvz.log.reader import iter_records
from rvz.process.supervisor import RUNNING_PREFIX
from rvz.wire.proto import envelope_pb2

pytestmark = pytest.mark.timeout(120)

ADDRESSES = {"rv": "198.18.0.1", "fe": "198.18.0.2", "m1": "198.18.0.3"}
PARTS = {"rv": "rendezvous", "fe": "frontend", "m1": "models"}
CALLS = 20
# The secret files each host keeps; every other one is deleted from its copy of the keys directory.
SECRETS = {"rv": {"rendezvous.key_secret", "replay.key_secret"},
           "fe": {"frontend.key_secret", "admin.token"},
           "m1": {"model+default+champ.key_secret", "model+default+chall.key_secret"}}

CONFIG = f"""
[frontend]
listen = "{ADDRESSES['fe']}:0"
heartbeat_ms = 50

[streams]
requests = "tcp://{ADDRESSES['fe']}:5555"
scores = "tcp://{ADDRESSES['rv']}:5556"
results = "tcp://{ADDRESSES['rv']}:5557"

# Only the champion answers, however long it takes on a loaded machine: the answers say which host scored.
{policy(5000, (5000, ["champion"]))}
[[models]]
name = "champ"
entry = "rvz_test_models:echo"
role = "champion"

[[models]]
name = "chall"
entry = "rvz_test_models:echo"
role = "challenger"
"""

# Run in the frontend's namespace: wait until the deployment serves end to end, then call it.
CLIENT = """
import json, sys
import grpc
from rvz.client import Client
from rvz.process import serving
target = sys.argv[1]
with grpc.insecure_channel(target) as channel:
    serving.wait_serving(channel, timeout_s=60)
    serving.wait_models(channel, {("default", "champ"), ("default", "chall")}, timeout_s=60)
with Client(target) as client:
    answers = [client.score({"x": i}) for i in range(int(sys.argv[2]))]
print("answers", json.dumps([[a.model_name, a.is_default, a.output] for a in answers]), flush=True)
"""

# Run in the models' namespace: a subscriber with a model's key hears the frontend's probes (every 50 ms);
# one with a key of its own (knowing the frontend's public key) and one without CURVE hear nothing meanwhile.
THIEF = """
import json, sys
import zmq, zmq.auth
endpoint, keys = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
def sub(public=None, secret=None):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    if public is not None:
        s.curve_serverkey = zmq.auth.load_certificate(keys + "/frontend.key")[0]
        s.curve_publickey, s.curve_secretkey = public, secret
    s.subscribe(b"")
    s.connect(endpoint)
    return s
model = sub(*zmq.auth.load_certificate(keys + "/model+default+champ.key_secret"))
thieves = {"own_key": sub(*zmq.curve_keypair()), "plaintext": sub()}
heard = {"model": bool(model.poll(10_000))}
poller = zmq.Poller()
for s in thieves.values():
    poller.register(s, zmq.POLLIN)
heard.update({name: thieves[name] in dict(poller.poll(1_000)) for name in thieves})
print("heard", json.dumps(heard), flush=True)
"""


@dataclass(frozen=True)
class Hosts:
    """Namespaces made for one test: ``names[host]`` for rv, fe, m1 and the switch sw."""

    names: dict[str, str]

    def exec_prefix(self, host: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.names[host])


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def our_namespaces(prefix: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"{prefix}-")]


def make_hosts(prefix: str, addresses: dict[str, str]) -> Hosts:
    """The hosts of ``addresses``, each with a veth pair to the switch's bridge: one 198.18.0.0/24 link, no
    route off it. The switch's namespace is made first (by the caller, to tell whether namespaces can be
    made at all)."""
    hosts = Hosts({h: f"{prefix}-{h}" for h in ("sw", *addresses)})
    for host, name in hosts.names.items():
        if host != "sw":
            ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
    sw = hosts.names["sw"]
    ip("-n", sw, "link", "add", "br0", "type", "bridge")
    ip("-n", sw, "link", "set", "br0", "up")
    for host, address in addresses.items():
        # Made in the switch's namespace, the peer moved straight into the host's: neither end is ever in
        # ours, and names inside namespaces of our own cannot clash with another run's.
        ip("-n", sw, "link", "add", f"to-{host}", "type", "veth", "peer", "name", "eth0", "netns", hosts.names[host])
        ip("-n", sw, "link", "set", f"to-{host}", "master", "br0", "up")
        ip("-n", hosts.names[host], "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", hosts.names[host], "link", "set", "eth0", "up")
    return hosts


def namespace_of(pid: str) -> str:
    return subprocess.run(["ip", "netns", "identify", pid], capture_output=True, text=True, timeout=10).stdout.strip()


def remove_hosts(prefix: str) -> None:
    """Delete every namespace whose name starts with ``prefix`` (their veth ends go with them)."""
    for name in our_namespaces(prefix):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)
    left = our_namespaces(prefix)
    assert not left, f"namespaces left behind: {left}"


def skip_reason() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    return ""


@contextmanager
def made_hosts(addresses: dict[str, str]) -> Iterator[Hosts]:
    """Namespaces for ``addresses`` and their switch, deleted at the end; skips the test where they cannot be."""
    if reason := skip_reason():
        pytest.skip(reason)
    prefix = f"rvz-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", f"{prefix}-sw")
    except RuntimeError as e:
        pytest.skip(f"cannot make network namespaces here: {e}")
    try:
        yield make_hosts(prefix, addresses)
    finally:
        remove_hosts(prefix)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with made_hosts(ADDRESSES) as made:
        yield made


def host_data(root: Path, made_keys: Path, host: str, secrets_of: dict[str, set[str]] = SECRETS) -> Path:
    """The host's data directory: a copy of the keys directory without the secrets of processes elsewhere."""
    keys = root / host / "keys"
    shutil.copytree(made_keys, keys)
    for path in keys.iterdir():
        if (path.name.endswith(".key_secret") or path.name == "admin.token") and path.name not in secrets_of[host]:
            path.unlink()
    return root / host


def test_three_hosts_in_network_namespaces_answer_calls_with_curve(root: Path, hosts: Hosts) -> None:
    config = root / "rvz.toml"
    config.write_text(CONFIG)
    made = spawn("keys", ["keys", "create", "--config", str(config), "--data-dir", str(root / "made")], root)
    assert made.wait(30) == 0, made.stderr()
    data = {host: host_data(root, root / "made" / "keys", host) for host in ADDRESSES}
    procs: list[Proc] = []
    try:
        for host in ("rv", "fe", "m1"):  # all at once: each waits for the ones it connects to
            args = ["up", "--config", str(config), "--only", PARTS[host], "--data-dir", str(data[host])]
            procs.append(spawn(host, args, root, {"RVZ_TEST_TAG": host}, (RUNNING_PREFIX,),
                               prefix=hosts.exec_prefix(host)))
        banners = {proc.name: proc.wait_line(RUNNING_PREFIX, timeout_s=60) for proc in procs}
        assert "binds scores tcp://198.18.0.1:5556, results tcp://198.18.0.1:5557" in banners["rv"], banners
        assert "expects elsewhere: rendezvous, frontend" in banners["m1"], banners
        target = re.search(r"gRPC on (198\.18\.0\.2:\d+)\)", banners["fe"])
        assert target is not None, banners["fe"]

        client = spawn("client", [target.group(1), str(CALLS)], root, None, ("answers ",),
                       prefix=hosts.exec_prefix("fe"), python_args=("-c", CLIENT))
        procs.append(client)
        answers = json.loads(client.wait_line("answers ", timeout_s=60))
        assert answers == [["champ", False, {"x": i, "by": "m1"}] for i in range(CALLS)], answers

        # Every score came from a worker process in the models' namespace, through the rendezvous's host.
        scores = [envelope_pb2.ScoreRecord.FromString(r.payload) for r in iter_records(data["rv"] / "scores")]
        assert {s.score.model_name for s in scores} == {"champ", "chall"}
        worker_pids = {s.score.worker_id.split(":")[1] for s in scores}
        assert {namespace_of(pid) for pid in worker_pids} == {hosts.names["m1"]}

        thief = spawn("thief", ["tcp://198.18.0.2:5555", str(data["m1"] / "keys")], root, None, ("heard ",),
                      prefix=hosts.exec_prefix("m1"), python_args=("-c", THIEF))
        procs.append(thief)
        assert json.loads(thief.wait_line("heard ", timeout_s=30)) == {"model": True, "own_key": False,
                                                                       "plaintext": False}
        # No host remade a secret it was not given (the admin token stays on the frontend's host).
        for host in ADDRESSES:
            held = {p.name for p in (data[host] / "keys").iterdir() if p.name.endswith(("_secret", ".token"))}
            assert held == SECRETS[host], (host, held)
    except BaseException:
        for proc in procs:
            print(f"----- {proc.name} (pid {proc.pid}) stderr -----\n{proc.stderr()}")
        raise
    finally:
        for proc in reversed(procs):  # the models first; the rendezvous, which the others talk to, last
            proc.stop()


# Scaled out over five hosts: a rendezvous on rv and another on rv2, the requests hub and a frontend on fe, a
# second frontend started by hand on fe2 (joining through the hub), the models on m1.
SCALED = {**ADDRESSES, "fe2": "198.18.0.4", "rv2": "198.18.0.5"}
SCALED_SECRETS = {**SECRETS, "fe2": {"frontend.key_secret"}, "rv2": {"rendezvous.key_secret"}}
SCALED_CONFIG = CONFIG.replace('results = "tcp://198.18.0.1:5557"', f'''results = "tcp://198.18.0.1:5557"
requests_in = "tcp://198.18.0.2:5559"
rendezvous_processes = 2
rendezvous_hosts = "{ADDRESSES['rv']}, {SCALED['rv2']}"''')


def test_frontends_on_two_hosts_through_the_hub_and_rendezvous_on_two_hosts_answer_calls(root: Path) -> None:
    with made_hosts(SCALED) as hosts:
        config = root / "rvz.toml"
        config.write_text(SCALED_CONFIG)
        made = spawn("keys", ["keys", "create", "--config", str(config), "--data-dir", str(root / "made")], root)
        assert made.wait(30) == 0, made.stderr()
        data = {host: host_data(root, root / "made" / "keys", host, SCALED_SECRETS) for host in SCALED}
        procs: list[Proc] = []
        try:
            for host, only in (("rv", ["rendezvous:0"]), ("rv2", ["rendezvous:1"]), ("fe", ["hub", "frontend"]),
                               ("m1", ["models"])):
                args = ["up", "--config", str(config), *(f"--only={part}" for part in only),
                        "--data-dir", str(data[host])]
                procs.append(spawn(host, args, root, {"RVZ_TEST_TAG": host}, (RUNNING_PREFIX,),
                                   prefix=hosts.exec_prefix(host)))
            banners = {proc.name: proc.wait_line(RUNNING_PREFIX, timeout_s=60) for proc in procs}
            assert banners["rv2"].startswith("rendezvous 1 of 2 (binds scores tcp://198.18.0.5:5556, results "
                                             "tcp://198.18.0.5:5557;"), banners
            assert "binds requests tcp://198.18.0.2:5555, requests_in tcp://198.18.0.2:5559" in banners["fe"]
            first = re.search(r"gRPC on (198\.18\.0\.2:\d+)\)", banners["fe"])
            assert first is not None, banners["fe"]
            by_hand = spawn("fe2", ["frontend", "--config", str(config), "--listen", f"{SCALED['fe2']}:0",
                                    "--name", "fe2", "--data-dir", str(data["fe2"])], root,
                            prefix=hosts.exec_prefix("fe2"))
            procs.append(by_hand)
            second = by_hand.wait_line("rvz frontend listening on ", timeout_s=60)
            for host, target in (("fe", first.group(1)), ("fe2", second)):
                client = spawn(f"client-{host}", [target, str(CALLS)], root, None, ("answers ",),
                               prefix=hosts.exec_prefix(host), python_args=("-c", CLIENT))
                procs.append(client)
                answers = json.loads(client.wait_line("answers ", timeout_s=60))
                assert answers == [["champ", False, {"x": i, "by": "m1"}] for i in range(CALLS)], (host, answers)
            # Each frontend logged its own calls on its own host; each rendezvous decided a share of them on its own.
            for host, log in (("fe", "requests"), ("fe2", "requests.fe2")):
                assert sum(1 for _ in iter_records(data[host] / log)) == CALLS, host
            decided = {host: sum(1 for _ in iter_records(data[host] / log))
                       for host, log in (("rv", "results"), ("rv2", "results.1"))}
            assert sum(decided.values()) == 2 * CALLS and all(decided.values()), decided
        except BaseException:
            for proc in procs:
                print(f"----- {proc.name} (pid {proc.pid}) stderr -----\n{proc.stderr()}")
            raise
        finally:
            for proc in reversed(procs):
                proc.stop()
