"""Sharing a model's requests between its replicas (rvz.rendezvous.replicas), without sockets."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from rvz.config import ModelConfig, StreamsConfig, parse_config
from rvz.errors import ConfigError
from rvz.rendezvous.replicas import ReplicaGroups
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import envelope_pb2

MS = 1_000_000
KEY = ("uc", "slow", "1")


def info(worker: str, capacity: int = 2, name: str = "slow") -> envelope_pb2.ModelInfo:
    return envelope_pb2.ModelInfo(use_case="uc", name=name, version="1", role="champion", worker_id=worker,
                                  capacity=capacity)


def request(rid: str, now: int = 0, deadline_ms: float = 100) -> envelope_pb2.RequestEnvelope:
    return envelope_pb2.RequestEnvelope(request_id=rid, use_case="uc", received_unix_ns=now,
                                        deadline_unix_ns=now + int(deadline_ms * MS))


def score(rid: str, name: str = "slow") -> envelope_pb2.ScoreEnvelope:
    return envelope_pb2.ScoreEnvelope(request_id=rid, use_case="uc", model_name=name, model_version="1")


def given(groups: ReplicaGroups) -> dict[bytes, list[str]]:
    return {routing_id: [rid for rid, _ in items] for routing_id, items in groups.take_outbox().items()}


def groups_of(*capacities: int) -> ReplicaGroups:
    groups = ReplicaGroups(timeout_ns=3000 * MS, default_late_limit_ns=1000 * MS)
    for i, capacity in enumerate(capacities):
        groups.hello(f"r{i}".encode(), info(f"w{i}", capacity), 0)
    return groups


def test_each_request_goes_to_exactly_one_replica_and_idle_replicas_take_turns() -> None:
    groups = groups_of(2, 2)
    for i in range(4):
        groups.on_request(request(f"q{i}"), b"p", 0)
        groups.on_score(score(f"q{i}"), 0)  # scored at once: both replicas stay idle
    out = given(groups)
    assert sorted(rid for rids in out.values() for rid in rids) == ["q0", "q1", "q2", "q3"]
    assert {len(rids) for rids in out.values()} == {2}


def test_work_goes_to_the_replica_with_room_and_waits_when_none_has_any() -> None:
    groups = groups_of(1, 3)
    for i in range(5):
        groups.on_request(request(f"q{i}"), b"p", 0)
    out = given(groups)
    assert len(out[b"r0"]) == 1 and len(out[b"r1"]) == 3  # bounded queues; the 5th waits
    assert len(groups.groups[KEY].backlog) == 1
    groups.on_score(score(out[b"r0"][0]), 1)  # room again: the waiting request goes there
    assert given(groups) == {b"r0": ["q4"]}
    assert groups.group_missed(KEY) == 0


def test_a_slow_replica_gets_less_than_a_fast_one() -> None:
    groups = groups_of(4, 4)
    for i in range(200):
        groups.on_request(request(f"q{i}"), b"p", 0)
        for routing_id, rids in given(groups).items():
            if routing_id == b"r0":  # the fast one scores at once; the slow one never does
                for rid in rids:
                    groups.on_score(score(rid), 0)
    replicas = {r.worker_id: r for r in groups.groups[KEY].replicas}
    assert replicas["w1"].given <= 4 and replicas["w0"].given >= 196  # the silent one is soon left alone


def test_a_gone_replica_misses_what_it_held_and_the_others_take_its_share() -> None:
    groups = groups_of(4, 4)
    for i in range(4):
        groups.on_request(request(f"q{i}"), b"p", 0)
    given(groups)
    assert groups.gone(b"r0", "test") == 2
    assert groups.gone(b"r0", "test") == 0  # idempotent
    for i in range(4, 8):
        groups.on_request(request(f"q{i}"), b"p", 0)
    assert list(given(groups)) == [b"r1"]
    assert groups.by_worker["w0"].missed == 2 and groups.group_missed(KEY) == 2
    groups.on_score(score("q0"), 0)  # a late score of what the gone one held changes nothing
    assert groups.live_replicas(KEY) == 1


def test_held_requests_are_missed_past_deadline_plus_late_limit_and_silent_replicas_go() -> None:
    groups = groups_of(4)
    groups.on_request(request("q0", deadline_ms=100), b"p", 0)
    assert given(groups) == {b"r0": ["q0"]}
    groups.on_time(1099 * MS)
    assert groups.by_worker["w0"].missed == 0
    groups.on_time(1100 * MS)
    assert groups.by_worker["w0"].missed == 1 and not groups.by_worker["w0"].outstanding
    groups.on_request(request("q1", now=1100 * MS), b"p", 1100 * MS)  # it let one expire: it gets no more
    assert given(groups) == {}
    groups.hello(b"r0", info("w0"), 1200 * MS)  # heard from again: what waited goes to it
    assert given(groups) == {b"r0": ["q1"]}
    groups.on_time(4201 * MS)  # no hello for longer than the timeout
    assert groups.live_replicas(KEY) == 0 and not groups.by_worker["w0"].live


def test_undelivered_requests_are_missed_and_an_unreachable_replica_is_gone() -> None:
    groups = groups_of(4, 4)
    for i in range(2):
        groups.on_request(request(f"q{i}"), b"p", 0)
    out = given(groups)
    groups.undelivered(b"r0", out[b"r0"], unreachable=True)
    assert groups.by_worker["w0"].missed == 1 and groups.live_replicas(KEY) == 1


def test_a_worker_that_reconnects_keeps_its_counts_and_a_hello_is_bounded() -> None:
    groups = groups_of(2)
    groups.on_request(request("q0"), b"p", 0)
    groups.hello(b"new", info("w0", capacity=10**9), 1)
    replica = groups.by_worker["w0"]
    assert replica.routing_id == b"new" and replica.missed == 1 and replica.capacity == 4096
    assert groups.live_replicas(KEY) == 1


def test_a_direct_worker_of_the_model_takes_everything_and_the_replicas_none() -> None:
    groups = groups_of(2)
    groups.note_direct(info("direct", capacity=0), 0)
    groups.on_request(request("q0"), b"p", 1)
    assert given(groups) == {}
    groups.on_request(request("q1"), b"p", 3001 * MS)  # the direct worker is gone: the replicas share again
    assert given(groups) == {b"r0": ["q1"]}


def test_a_direct_worker_seen_before_any_replica_still_counts() -> None:
    groups = ReplicaGroups(timeout_ns=3000 * MS)
    groups.note_direct(info("direct", capacity=0), 0)
    groups.hello(b"r0", info("w0"), 1)
    groups.on_request(request("q0"), b"p", 2)
    assert given(groups) == {}


def test_other_use_cases_and_models_are_untouched() -> None:
    groups = groups_of(2)
    groups.on_request(envelope_pb2.RequestEnvelope(request_id="x", use_case="other"), b"p", 0)
    groups.on_score(score("x", name="other"), 0)
    assert given(groups) == {}


def test_replicas_of_one_model_count_once_as_live_models() -> None:
    registry = ModelRegistry(3000)
    for worker in ("a", "b", "c"):
        registry.saw(info(worker), time.time_ns())
    registry.saw(info("d", name="canary"), time.time_ns())
    assert registry.live_count("uc") == 2


def test_replica_settings_are_checked_and_the_work_stream_is_derived() -> None:
    assert StreamsConfig().work_endpoint == "tcp://127.0.0.1:5558"
    assert StreamsConfig(scores="ipc:///tmp/s.sock").work_endpoint == "ipc:///tmp/s.sock.work"
    assert ModelConfig(name="m", entry="a:b").queue_bound(batches=True) == 64
    assert ModelConfig(name="m", entry="a:b", replica_queue=3).queue_bound(batches=False) == 3
    with pytest.raises(ConfigError, match=r"models\[0\]\.replicas: must be from 1 .* to 64, got 0"):
        parse_config({"models": [{"name": "m", "entry": "a:b", "replicas": 0}]}, "t.toml")
    with pytest.raises(ConfigError, match=r"models\[0\]\.replicas: must be 1 for a decoy"):
        parse_config({"models": [{"name": "m", "role": "decoy", "replicas": 2}]}, "t.toml")
    with pytest.raises(ConfigError, match=r"streams\.work: the work stream would be"):
        parse_config({"streams": {"work": "tcp://127.0.0.1:5556"}}, "t.toml")
    config = parse_config({"models": [{"name": "m", "entry": "a:b", "replicas": 3}]}, "t.toml")
    assert config.models[0].shared and Counter(m.replicas for m in config.models) == {3: 1}


def test_rvz_models_shows_each_replica_then_the_models_total() -> None:
    from rich.console import Console

    from rvz.admin.client import models_json, print_models
    from rvz.client.types import models_of
    from rvz.wire.proto import admin_pb2

    response = admin_pb2.ListModelsResponse()
    for pid, held in ((11, 3), (12, 1)):
        response.models.append(admin_pb2.ModelStatus(
            use_case="uc", name="slow", version="1", role="champion", started_role="champion", worker_id=f"h:{pid}",
            pid=pid, host="h", live=True, window_s=60, scores_per_s=5.0, scores_total=10 * pid, times_chosen=-1,
            replicas=2, shared=True, outstanding=held, missed_total=pid - 11))
    response.totals.append(admin_pb2.ModelTotals(use_case="uc", name="slow", version="1", replicas=2,
                                                 scores_per_s=10.0, scores_total=230, missed_total=1,
                                                 times_chosen=230, latency_p50_ms=12.5, latency_p99_ms=20.0))
    listed = models_of(response)
    console = Console(width=250, record=True)
    print_models(listed, console)
    text = console.export_text()
    assert "total of 2 live" in text and "12.50" in text
    rows = models_json(listed)
    assert [(r["pid"], r["outstanding"], r["shared"], r["replicas"]) for r in rows] == [(11, 3, True, 2),
                                                                                       (12, 1, True, 2)]
    assert rows[0]["model"]["scores_total"] == 230 and rows[1]["model"]["missed_total"] == 1
