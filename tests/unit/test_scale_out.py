"""Several frontends and several rendezvous: the endpoints each binds, how a frontend shares requests among
the live rendezvous, and how their Admin replies merge into one."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import zmq

from rvz.admin.merge import merge_replies
from rvz.config import Config, load_config
from rvz.errors import ConfigError
from rvz.frontend.links import RendezvousLinks
from rvz.security.keys import frontend_routing_id, routing_id_for, routing_id_matches
from rvz.security.process import ProcessKeys
from rvz.wire.proto import admin_pb2, envelope_pb2


def config_of(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "rvz.toml"
    path.write_text(text)
    return load_config(path)


def test_rendezvous_i_binds_the_endpoints_with_their_tcp_port_plus_10_i_or_ipc_path_dot_i(tmp_path: Path) -> None:
    config = config_of(tmp_path, '[streams]\nrendezvous_processes = 3\nscores = "tcp://10.0.0.1:6000"\n'
                                 'results = "ipc:///run/rvz/results"\n')
    first, _, third = config.streams.rendezvous
    assert (first.scores, first.results, first.work_endpoint) == ("tcp://10.0.0.1:6000", "ipc:///run/rvz/results",
                                                                  "tcp://10.0.0.1:6002")
    assert (third.scores, third.results, third.work_endpoint) == ("tcp://10.0.0.1:6020", "ipc:///run/rvz/results.2",
                                                                  "tcp://10.0.0.1:6022")
    assert third.requests == first.requests  # one requests stream for all


def test_the_requests_hub_comes_with_several_frontends_or_its_endpoint(tmp_path: Path) -> None:
    assert config_of(tmp_path, "").requests_hub == ""  # one frontend binds the stream itself
    assert config_of(tmp_path, "[frontend]\nprocesses = 2\n").requests_hub == "tcp://127.0.0.1:5559"
    ipc = config_of(tmp_path, '[frontend]\nprocesses = 2\n[streams]\nrequests = "ipc:///tmp/r"\n')
    assert ipc.requests_hub == "ipc:///tmp/r.in"
    given = config_of(tmp_path, '[streams]\nrequests_in = "tcp://127.0.0.1:7000"\n')
    assert given.requests_hub == "tcp://127.0.0.1:7000"
    with pytest.raises(ConfigError, match=re.escape("streams.requests_in: the requests hub's input would be "
                                                    "'tcp://127.0.0.1:5556', the endpoint of streams.scores")):
        config_of(tmp_path, '[streams]\nrequests_in = "tcp://127.0.0.1:5556"\n')


def test_frontends_sharing_a_key_get_routing_ids_of_their_own_that_the_key_may_use() -> None:
    public = b"x" * 40
    one, two = frontend_routing_id(public, b"a1"), frontend_routing_id(public, b"b2")
    assert one != two
    user_id = routing_id_for(public).decode()
    assert routing_id_matches(user_id, one) and routing_id_matches(user_id, two)
    assert not routing_id_matches(user_id, routing_id_for(public))  # the bare prefix is no process's
    assert not routing_id_matches(user_id, frontend_routing_id(b"y" * 40, b"a1"))  # another key's


def test_requests_go_to_the_live_rendezvous_in_turn_and_a_lost_ones_share_moves(tmp_path: Path) -> None:
    config = config_of(tmp_path, f'[streams]\nrendezvous_processes = 3\nresults = "ipc://{tmp_path}/r"\n'
                                 '[security]\ncurve = false\n')
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    links = RendezvousLinks(ctx, config, b"fe-test", ProcessKeys(None))
    try:
        assert [links.choose() for _ in range(6)] == [0, 1, 2, 0, 1, 2]  # none heard yet: all of them
        now = time.time_ns()
        for link in links:
            links.answered(link, "same", 0, now)
        links.lost(links.links[1], now)
        assert sorted({links.choose() for _ in range(10)}) == [0, 2]
        links.refresh(now + links.silent_ns + 1)  # 0 and 2 fell silent (hung): none is live
        assert links.live() == []
        links.heard(links.links[1])  # its connection is back: not in the turn before it answers a probe
        assert links.live() == []
        links.answered(links.links[1], "same", 0, now + links.silent_ns + 2)  # back: it takes every request
        assert {links.choose() for _ in range(5)} == {1}
    finally:
        links.close()
        ctx.destroy(linger=0)


def status(worker: str, *, chosen: int, total: int, p50: float, live: bool = True, missed: int = 0,
           shared: bool = False) -> admin_pb2.ModelStatus:
    return admin_pb2.ModelStatus(use_case="default", name="m", version="1", worker_id=worker, live=live,
                                 times_chosen=chosen, scores_total=total, scores_per_s=total / 10, latency_p50_ms=p50,
                                 latency_p99_ms=-1, error_rate=0.0, missed_total=missed, shared=shared)


def reply(*rows: admin_pb2.ModelStatus, change_ns: int = 0) -> envelope_pb2.AdminReply:
    models = admin_pb2.ListModelsResponse(models=rows)
    models.totals.add(use_case="default", name="m", version="1", replicas=1,
                      scores_total=sum(r.scores_total for r in rows), scores_per_s=1.0, missed_total=3,
                      times_chosen=sum(r.times_chosen for r in rows), latency_p50_ms=rows[0].latency_p50_ms,
                      latency_p99_ms=-1)
    if change_ns:
        models.last_changes["default"].CopyFrom(admin_pb2.AuditRecord(unix_ns=change_ns, action="promote"))
    return envelope_pb2.AdminReply(call_id=7, models=models)


def test_list_models_replies_of_two_rendezvous_merge_into_one_row_per_worker() -> None:
    a = reply(status("w1", chosen=30, total=100, p50=2.0, missed=5), change_ns=10)
    b = reply(status("w1", chosen=10, total=300, p50=4.0, missed=5), change_ns=20)
    merged = merge_replies([a, b]).models
    (row,) = merged.models
    assert (row.times_chosen, row.scores_total, row.scores_per_s) == (40, 400, 40.0)  # summed over the shares
    assert row.latency_p50_ms == pytest.approx(3.5)  # weighted by each share's scores: (2 x 100 + 4 x 300) / 400
    assert row.latency_p99_ms == -1  # no figure in either: none
    assert row.missed_total == 5  # the worker's own count, alike in both: once
    (total,) = merged.totals
    assert (total.scores_total, total.times_chosen, total.missed_total, total.scores_per_s) == (400, 40, 6, 2.0)
    assert merged.last_changes["default"].unix_ns == 20  # the latest change either knows


def test_a_replicas_missed_add_up_over_the_rendezvous_that_gave_it_work() -> None:
    a = reply(status("r1", chosen=1, total=1, p50=1.0, missed=2, shared=True))
    b = reply(status("r1", chosen=1, total=1, p50=1.0, missed=3, shared=True))
    assert merge_replies([a, b]).models.models[0].missed_total == 5


def test_a_change_refused_by_any_rendezvous_is_refused_and_agreed_replies_are_the_first() -> None:
    ok = envelope_pb2.AdminReply(call_id=1, promoted=admin_pb2.PromoteResponse(use_case="default"))
    refused = envelope_pb2.AdminReply(call_id=1, status_code=5, status_message="no model 'x'")
    assert merge_replies([ok, refused]) is refused
    assert merge_replies([ok, envelope_pb2.AdminReply(call_id=1)]) is ok


def test_a_frontend_that_has_not_heard_a_use_cases_models_yet_answers_unavailable_not_not_found() -> None:
    from rvz.config import FrontendConfig, StreamsConfig
    from rvz.errors import Unavailable, UnknownUseCase
    from rvz.frontend.readiness import Readiness

    readiness = Readiness(FrontendConfig(), StreamsConfig())
    ready = envelope_pb2.Control(kind=envelope_pb2.Control.RENDEZVOUS_READY, use_cases=["other"])
    readiness.on_control(ready, time.time_ns())
    with pytest.raises(Unavailable, match="not ready for use case 'other' yet"):
        readiness.check("other")  # the rendezvous knows its models: their announces are on the way
    with pytest.raises(UnknownUseCase, match="no model serves use case 'nosuch'"):
        readiness.check("nosuch")  # nobody knows it: NOT_FOUND, as ever


def test_a_rendezvous_out_of_step_with_the_newest_admin_state_takes_no_requests_but_admin_calls(
        tmp_path: Path) -> None:
    config = config_of(tmp_path, f'[streams]\nrendezvous_processes = 2\nresults = "ipc://{tmp_path}/r"\n'
                                 '[security]\ncurve = false\n')
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    links = RendezvousLinks(ctx, config, b"fe-test", ProcessKeys(None))
    try:
        now = time.time_ns()
        first, second = links.links
        links.answered(first, "old", 0, now)
        links.answered(second, "old", 0, now)
        assert links.live() == [0, 1]
        links.note_state(first, "new", 5, now)  # its Admin reply: it carried out a change the other missed
        assert links.live() == [0] and links.reachable() == [0, 1]
        links.answered(second, "new", 6, now)  # caught up (a later save of the same state)
        assert links.live() == [0, 1]
    finally:
        links.close()
        ctx.destroy(linger=0)
