"""The streams under attack, from a process that is not part of the deployment (this test process):
without keys it reads nothing and nothing it sends is taken; with a stolen model key it can only be
that model. Each attack is also run against a plaintext deployment (security.curve = false), where it
works: the tests measure something real."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import zmq

from harness import Deployment, policy
from rvz.security.keys import routing_id_for
from rvz.wire import streams
from rvz.wire.proto import admin_pb2, admin_pb2_grpc, envelope_pb2
from security_tools import FORGED, Attacker, StolenKey, drain, fake_announce, forged_score, new_request_ids

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]
PLAINTEXT = "[security]\ncurve = false\n"
SLOW_CHAMPION = ("champ", "rvz_test_models:slow", "champion", {"RVZ_TEST_DELAY_MS": "25"})
CHALLENGER = ("chall", "rvz_test_models:echo", "challenger", {"RVZ_TEST_TAG": "chall"})
CALLS = 60
# The forger reads the request log as fast as it can: with a 1 s deadline a starved 2-core machine still
# answers every call, and the champion-only window stays the forgeries' chance to win.
ROOMY_POLICY = policy(1000, (30, ["champion"]), (1000, ["champion", "challenger"]))


def endpoint(d: Deployment, stream: str) -> str:
    return f"ipc://{d.root}/{stream}.sock"


def keys_dir(d: Deployment) -> Path:
    return d.root / "data" / "keys"


@pytest.fixture
def attacker() -> Attacker:
    made = Attacker()
    yield made  # type: ignore[misc]
    made.close()


def test_without_keys_nothing_can_be_read_off_the_streams(deployment: Make, attacker: Attacker) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion")])
    unknown = StolenKey.unknown(keys_dir(d))
    readers = [attacker.socket(zmq.SUB, endpoint(d, "requests")),
               attacker.socket(zmq.SUB, endpoint(d, "requests"), unknown, "frontend"),
               attacker.socket(zmq.DEALER, endpoint(d, "results"), identity=routing_id_for(unknown.public)),
               attacker.socket(zmq.DEALER, endpoint(d, "results"), unknown, "rendezvous")]
    for i in range(CALLS):
        assert d.score({"x": i}).output.struct_value.fields["x"].number_value == i
    assert drain(readers, 1.0) == 0
    d.proc("frontend").wait_stderr(r"refused an unknown key on the requests stream")
    d.proc("rendezvous").wait_stderr(r"refused an unknown key on the results stream")


def forge_during_calls(d: Deployment, key: StolenKey | None, model: str) -> list[str]:
    """Push a forged champion score for every request id as soon as it is logged; return the answers' taggers."""
    stop = threading.Event()

    def forge() -> None:
        attacker = Attacker()
        push = attacker.socket(zmq.PUSH, endpoint(d, "scores"), key, "rendezvous")
        seen: set[str] = set()
        try:
            while not stop.is_set():
                for request_id in new_request_ids(d.root / "data" / "requests", seen):
                    with contextlib.suppress(zmq.Again):  # no connection: the handshake was refused
                        push.send_multipart([streams.SCORE, forged_score(request_id, model)], zmq.NOBLOCK)
                time.sleep(0.001)  # a log file has no signal to wait on
        finally:
            attacker.close()

    thread = threading.Thread(target=forge)
    thread.start()
    try:
        return [_tag(d.score({"x": i})) for i in range(CALLS)]
    finally:
        stop.set()
        thread.join()


def _tag(response: object) -> str:
    output = response.output  # type: ignore[attr-defined]
    return FORGED if output.WhichOneof("kind") == "string_value" else "real"


def forged_records(d: Deployment) -> int:
    return sum(r.score.worker_id == FORGED for r in d.records("scores"))


def test_forged_champion_scores_work_on_a_plaintext_deployment(deployment: Make) -> None:
    d = deployment(extra=PLAINTEXT).start([SLOW_CHAMPION])
    answers = forge_during_calls(d, None, "champ")
    assert answers.count(FORGED) > 0, "the attack of the tests does not work even without CURVE"


@pytest.mark.parametrize("holder", ["no key", "an unknown key", "the challenger's key"])
def test_a_forged_score_never_reaches_a_caller_nor_the_logs(deployment: Make, holder: str) -> None:
    d = deployment(policy=ROOMY_POLICY).start([SLOW_CHAMPION, CHALLENGER])
    key = {"no key": None, "an unknown key": StolenKey.unknown(keys_dir(d)),
           "the challenger's key": StolenKey.of(keys_dir(d), "model+default+chall")}[holder]
    answers = forge_during_calls(d, key, "champ")
    assert answers == ["real"] * CALLS
    assert forged_records(d) == 0
    if holder == "the challenger's key":
        d.proc("rendezvous").wait_stderr(r"refused a score of model 'champ' of use case 'default' from model "
                                         r"'chall'")


def announce_while_calling(d: Deployment, key: StolenKey | None, name: str) -> list[grpc.StatusCode]:
    attacker = Attacker()
    try:
        push = attacker.socket(zmq.PUSH, endpoint(d, "scores"), key, "rendezvous")
        frontend_id = frontend_id_of(d)
        # The worker id of the model it impersonates, as ListModels (open to reads) tells anyone.
        listed = admin_pb2_grpc.AdminStub(d.channel).ListModels(admin_pb2.ListModelsRequest(), timeout=5).models
        worker_id = next(m.worker_id for m in listed if m.name == name)
        codes = []
        for i in range(20):
            with contextlib.suppress(zmq.Again):  # no connection: the handshake was refused
                push.send_multipart(fake_announce(frontend_id, name, worker_id=worker_id), zmq.NOBLOCK)
            time.sleep(0.02)  # announces keep coming, as a worker's would
            try:
                d.score({"x": i})
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
        return codes
    finally:
        attacker.close()


def frontend_id_of(d: Deployment) -> bytes:
    """The frontend's routing id, as any reader of the requests stream sees it (here: off the request log)."""
    d.score({"x": 0})
    return bytes(d.records("requests")[0].return_address)


def test_a_fake_announce_blocks_a_plaintext_deployment(deployment: Make) -> None:
    d = deployment(extra=PLAINTEXT).start([("champ", "rvz_test_models:echo", "champion")])
    codes = announce_while_calling(d, None, "champ")
    assert grpc.StatusCode.INVALID_ARGUMENT in codes, "the attack of the tests does not work even without CURVE"


@pytest.mark.parametrize("holder", ["no key", "the challenger's key"])
def test_a_fake_announce_blocks_nothing(deployment: Make, holder: str) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion"), CHALLENGER])
    key = None if holder == "no key" else StolenKey.of(keys_dir(d), "model+default+chall")
    assert set(announce_while_calling(d, key, "champ")) == {grpc.StatusCode.OK}
    names = {m.name for m in admin_pb2_grpc.AdminStub(d.channel).ListModels(admin_pb2.ListModelsRequest()).models}
    assert names == {"champ", "chall"}
    if key is not None:
        d.proc("rendezvous").wait_stderr(r"refused an announce of model 'champ' of use case 'default' from model "
                                         r"'chall'")


def test_a_model_key_cannot_take_results_nor_another_use_case(deployment: Make, attacker: Attacker) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion"), CHALLENGER])
    stolen = StolenKey.of(keys_dir(d), "model+default+chall")
    frontend_id = frontend_id_of(d)
    dealer = attacker.socket(zmq.DEALER, endpoint(d, "results"), stolen, "rendezvous", identity=frontend_id)
    push = attacker.socket(zmq.PUSH, endpoint(d, "scores"), stolen, "rendezvous")
    push.send_multipart(fake_announce(frontend_id, "chall", use_case="other"))
    for i in range(CALLS):
        push.send_multipart([streams.SCORE, forged_score(f"r{i}", "chall", use_case="other")])
        assert d.score({"x": i}).model_name == "champ"
    assert drain([dealer], 1.0) == 0
    d.proc("rendezvous").wait_stderr(r"refused model 'chall' of use case 'default' on the results stream")
    d.proc("rendezvous").wait_stderr(r"refused a score of model 'chall' of use case 'other'")
    assert not any(r.score.use_case == "other" for r in d.records("scores"))


@pytest.mark.parametrize("holder", ["no key", "the challenger's key"])
def test_a_raw_admin_message_to_the_rendezvous_is_not_obeyed(deployment: Make, attacker: Attacker,
                                                             holder: str) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion"), CHALLENGER])
    key = None if holder == "no key" else StolenKey.of(keys_dir(d), "model+default+chall")
    frontend_id = frontend_id_of(d)
    dealer = attacker.socket(zmq.DEALER, endpoint(d, "results"), key, "rendezvous", identity=frontend_id)
    call = envelope_pb2.AdminCall(call_id=1, caller="attacker",
                                  promote=admin_pb2.PromoteRequest(use_case="default", model_name="chall"))
    for _ in range(10):
        dealer.send_multipart([streams.ADMIN, call.SerializeToString()], zmq.NOBLOCK)
    assert drain([dealer], 1.0) == 0
    assert {d.score({"x": i}).model_name for i in range(20)} == {"champ"}
    assert not (d.root / "data" / "admin-state.json").exists()


def test_a_routing_id_cannot_be_taken_over_across_a_rendezvous_restart(deployment: Make,
                                                                       attacker: Attacker) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion"), CHALLENGER])
    frontend_id = frontend_id_of(d)
    stolen = StolenKey.of(keys_dir(d), "model+default+chall")
    hijackers = [attacker.socket(zmq.DEALER, endpoint(d, "results"), identity=frontend_id),
                 attacker.socket(zmq.DEALER, endpoint(d, "results"), stolen, "rendezvous", identity=frontend_id)]
    d.proc("rendezvous").stop()
    d.procs.remove(d.proc("rendezvous"))
    d.wait_not_serving()  # else the frontend's health may still be the old rendezvous's
    d.start_rendezvous()  # the hijackers reconnect at once: before the frontend, as in the measured attack
    d.wait_serving()
    assert [d.score({"x": i}).model_name for i in range(CALLS)] == ["champ"] * CALLS
    assert drain(hijackers, 0.5) == 0
