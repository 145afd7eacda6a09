"""Replicas of a slow model share its requests: each request scored once by the model, whichever replica;
a replica killed under load costs only what it held (the fallback answers those calls), the others take
its share at once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zmq

from harness import Deployment, Proc, admin, base_config, policy, spawn
from rvz.client import Client
from rvz.client.types import models_of
from rvz.process.banner import SERVING_PREFIX
from rvz.process.entry import LISTENING_PREFIX, MODEL_READY
from rvz.wire import streams
from rvz.wire.proto import admin_pb2, envelope_pb2
from security_tools import Attacker, StolenKey, drain

pytestmark = pytest.mark.timeout(120)
SLOW = {"RVZ_TEST_DELAY_MS": "10"}
# Long enough that no answer of the slow model comes too late for its window on a busy 2-core machine.
POLICY = policy(2000, (1500, ["champion"]), (2000, ["champion", "canary"]))
MODELS = """
[[models]]
name = "slow"
entry = "rvz_test_models:slow"
replicas = {replicas}
# What a hung replica holds is missed at the deadline (a worker would not score it later either).
late_limit_ms = 0

[[models]]
name = "fallback"
entry = "rvz_test_models:echo"
role = "canary"
"""


def slow_scores(d: Deployment) -> dict[str, list[str]]:
    """Request id -> the workers that scored it with the slow model, from the scores log."""
    by_request: dict[str, list[str]] = {}
    for record in d.records("scores"):
        if record.score.model_name == "slow":
            by_request.setdefault(record.score.request_id, []).append(record.score.worker_id)
    return by_request


def call_all(client: Client, calls: int, threads: int = 8) -> list[str]:
    """``calls`` calls from ``threads`` threads; the model that answered each."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda x: client.score({"x": x}).model_name, range(calls)))


def test_rvz_up_replicas_and_one_started_by_hand_share_the_work_each_request_scored_once(root: Path) -> None:
    config = root / "rvz.toml"
    config.write_text(base_config(root, policy=POLICY, extra=MODELS.format(replicas=2)))
    up = spawn("up", ["up", "--config", str(config)], root, env=SLOW, announces=(SERVING_PREFIX,))
    d = Deployment(root, config)
    try:
        d.address = up.wait_line(SERVING_PREFIX, timeout_s=90).split()[0]
        by_hand = d.spawn("model-slow-3", "model", "run", "--config", str(config), "--name", "slow", env=SLOW)
        by_hand.wait_line(MODEL_READY, check=d.check)
        d.wait_models({"slow"})
        client = Client(d.address)
        while sum(m.live for m in client.models() if m.name == "slow") < 3:  # its announce follows a probe
            time.sleep(0.02)
        answered = call_all(client, 120)
        assert Counter(answered) == {"slow": 120}
        scored = slow_scores(d)
        assert len(scored) == 120 and all(len(workers) == 1 for workers in scored.values())  # once per model
        by_worker = Counter(workers[0] for workers in scored.values())
        assert len(by_worker) == 3, by_worker  # every replica took a share, the one started by hand too
        listed = models_of(admin(d).ListModels(admin_pb2.ListModelsRequest(), timeout=5))
        slow = [m for m in listed if m.name == "slow"]
        assert all(m.shared and m.replicas == 3 and m.live for m in slow)
        assert sorted(m.scores_total or 0 for m in slow) == sorted(by_worker.values())
        totals = listed.totals_of("default", "slow", "1")
        assert totals is not None and totals.replicas == 3 and totals.scores_total == 120
        assert totals.missed_total == 0
        client.close()
    finally:
        d.close()
        up.stop()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_replica_killed_under_load_costs_what_it_held_and_the_survivors_take_its_share(root: Path,
                                                                                       sig: int) -> None:
    config = root / "rvz.toml"
    config.write_text(base_config(root, policy=POLICY, extra=MODELS.format(replicas=3)))
    d = Deployment(root, config)
    try:
        d.start_rendezvous()
        frontend = d.start_frontend(wait=False)
        replicas = [d.spawn(f"model-slow-{i}", "model", "run", "--config", str(config), "--name", "slow", env=SLOW)
                    for i in range(3)]
        d.spawn("model-fallback", "model", "run", "--config", str(config), "--name", "fallback")
        d.address = frontend.wait_line(LISTENING_PREFIX, check=d.check)
        for proc in d.procs[2:]:
            proc.wait_line(MODEL_READY, check=d.check)
        d.wait_serving("default")
        d.wait_models({"slow", "fallback"})
        client = Client(d.address)
        while sum(m.live for m in client.models() if m.name == "slow") < 3:
            time.sleep(0.02)
        answers, killed_at = _load_and_kill(client, replicas[0], sig)
        d.procs.remove(replicas[0])  # killed (or stopped) on purpose: not a part that died
        assert len(answers) == 300 and set(answers) <= {"slow", "fallback"}  # every call answered
        victim = f":{replicas[0].pid}:"
        scored = slow_scores(d)
        assert all(len(workers) == 1 for workers in scored.values())  # never twice
        requests = {r.request_id: r.received_unix_ns for r in d.records("requests")}
        after = [rid for rid, received in requests.items() if received > killed_at + 200_000_000]
        assert len(after) > 50
        # From a heartbeat after the kill on, every request is scored, by a survivor.
        assert all(rid in scored and victim not in scored[rid][0] for rid in after)
        survivors = Counter(scored[rid][0] for rid in after)
        assert len(survivors) == 2, survivors
        # What the killed replica held and never scored is what the model counts as missed.
        unscored = sum(rid not in scored for rid in requests)
        _wait_missed(d, unscored)
        client.close()
    finally:
        if sig == signal.SIGSTOP and replicas[0].poll() is None:
            replicas[0].stop(signal.SIGKILL)  # a stopped process would only sit out its stop grace
        d.close()


def _load_and_kill(client: Client, victim: Proc, sig: int) -> tuple[list[str], int]:
    """300 calls from 8 threads; the victim gets ``sig`` (by PID) after the first 100 are answered."""
    answers: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    killed_at = [0]

    def one(x: int) -> None:
        name = client.score({"x": x}).model_name
        with lock:
            answers.append(name)
            if len(answers) == 100 and not killed.is_set():
                killed_at[0] = time.time_ns()
                os.kill(victim.pid, sig)
                killed.set()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(300)))
    if sig == signal.SIGKILL:
        victim.wait(5)
    return answers, killed_at[0]


def _wait_missed(d: Deployment, expected: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        listed = admin(d).ListModels(admin_pb2.ListModelsRequest(), timeout=5)
        total = next(t for t in listed.totals if t.name == "slow")
        if total.missed_total == expected:
            return
        assert time.monotonic() < deadline, (total, expected)
        time.sleep(0.05)  # the logs and the counters have no change signal to wait on


def test_only_a_key_of_the_model_gets_its_requests_from_the_work_stream(deployment: Callable[..., Deployment],
                                                                        root: Path) -> None:
    d = deployment(policy=POLICY, extra=MODELS.format(replicas=2))
    d.start([("slow", "", "champion", SLOW), ("slow", "", "champion", SLOW), ("fallback", "", "canary")])
    keys_dir = root / "data" / "keys"
    attacker = Attacker()
    try:
        work = f"ipc://{root}/scores.sock.work"
        # The fallback's key pretending to be a replica of the slow model, and a key nobody knows.
        impostor = attacker.socket(zmq.DEALER, work, StolenKey.of(keys_dir, "model+default+fallback"), "rendezvous")
        unknown = attacker.socket(zmq.DEALER, work, StolenKey.unknown(keys_dir), "rendezvous")
        hello = envelope_pb2.Control(kind=envelope_pb2.Control.ANNOUNCE, model=envelope_pb2.ModelInfo(
            use_case="default", name="slow", version="1", role="champion", worker_id="thief", capacity=4096))
        for sock in (impostor, unknown):
            sock.send_multipart([streams.HELLO, hello.SerializeToString()])
        d.proc("rendezvous").wait_stderr(r"refused a hello of model 'slow' of use case 'default'")
        assert Counter(call_all(Client(d.address), 40)) == {"slow": 40}
        assert drain([impostor, unknown], 0.5) == 0  # not even a ping
        assert "thief" not in {w for workers in slow_scores(d).values() for w in workers}
        d.proc("rendezvous").wait_stderr(r"refused an unknown key on the work stream")
    finally:
        attacker.close()
