"""The Admin API asks who you are, gRPC speaks TLS (and mTLS), and the default deployment (`rvz up` with
no config) refuses the attacks: real processes, a client that is not part of the deployment."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import zmq
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Deployment
from rvz.process.banner import SERVING_PREFIX
from rvz.security.tls import ClientTls, channel
from rvz.wire import streams
from rvz.wire.proto import admin_pb2, admin_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from security_tools import FORGED, Attacker, Certificates, drain, forged_score, make_certificates

pytestmark = pytest.mark.timeout(150)
Make = Callable[..., Deployment]
MODELS = [("champ", "rvz_test_models:echo", "champion"), ("chall", "rvz_test_models:echo", "challenger")]
ONE_MS_SLA = admin_pb2.Policy(deadline_ms=1, schedule=[admin_pb2.Window(until_ms=1, accept=["champion"])])


def token_of(d: Deployment) -> str:
    return (d.root / "data" / "keys" / "admin.token").read_text().strip()


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def promote(target: grpc.Channel, name: str, metadata: tuple[tuple[str, str], ...] = ()) -> admin_pb2.PromoteResponse:
    return admin_pb2_grpc.AdminStub(target).Promote(admin_pb2.PromoteRequest(use_case="default", model_name=name),
                                                    timeout=5, metadata=metadata)


def refusal(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()  # type: ignore[no-any-return]


def rvz(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rvz", *args], capture_output=True, text=True, timeout=60,
                          cwd=d.root, check=False)


def test_admin_changes_need_the_token_and_are_audited(deployment: Make) -> None:
    d = deployment().start(MODELS)
    stub = admin_pb2_grpc.AdminStub(d.channel)
    set_sla = admin_pb2.SetPolicyRequest(use_case="default", policy=ONE_MS_SLA)
    assert refusal(lambda: promote(d.channel, "chall")) == grpc.StatusCode.UNAUTHENTICATED
    assert refusal(lambda: stub.SetPolicy(set_sla, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    assert refusal(lambda: promote(d.channel, "chall", bearer("admin:wrong"))) == grpc.StatusCode.PERMISSION_DENIED
    assert refusal(lambda: promote(d.channel, "chall", bearer("nobody:x"))) == grpc.StatusCode.PERMISSION_DENIED
    assert {d.score({"x": i}).model_name for i in range(20)} == {"champ"}  # nothing changed
    assert promote(d.channel, "chall", bearer(token_of(d))).champion == "chall"
    assert {d.score({"x": i}).model_name for i in range(20)} == {"chall"}
    printed = rvz(d, "log", "cat", "audit", "--config", str(d.config_path)).stdout
    audit = [json.loads(line) for line in printed.splitlines()]
    assert [(r["who"], r["action"], json.loads(r["old"]), json.loads(r["new"])) for r in audit] == \
        [("admin", "promote", {"champion": "champ"}, {"champion": "chall"})]
    shown = rvz(d, "models", "--config", str(d.config_path), "--target", d.address)
    assert "last change of use case 'default': promote: champion champ -> chall, by admin" in shown.stdout
    policy = rvz(d, "policy", "show", "--config", str(d.config_path), "--target", d.address)
    assert "# last change: promote: champion champ -> chall, by admin" in policy.stdout


def test_the_cli_sends_the_deployments_token_and_refuses_a_wrong_one(deployment: Make, root: Path) -> None:
    d = deployment().start(MODELS)
    wrong = root / "wrong.token"
    wrong.write_text("admin:not-the-secret\n")
    refused = rvz(d, "promote", "chall", "--config", str(d.config_path), "--target", d.address,
                  "--admin-token-file", str(wrong))
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr, refused.stderr
    done = rvz(d, "promote", "chall", "--config", str(d.config_path), "--target", d.address)
    assert done.returncode == 0, done.stderr


def test_the_admin_api_on_its_own_listener(deployment: Make) -> None:
    d = deployment(extra='[security]\nadmin_listen = "127.0.0.1:0"\n')
    d.start_rendezvous()
    frontend = d.start_frontend()
    for name, entry, role in MODELS:
        d.start_model(name, entry, role)
    d.wait_serving("default")
    port = frontend.wait_stderr(r"serving rvz.v1.Admin on 127.0.0.1:(\d+)").group(1)
    assert refusal(lambda: promote(d.channel, "chall", bearer(token_of(d)))) == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(f"127.0.0.1:{port}") as admin:
        assert refusal(lambda: promote(admin, "chall")) == grpc.StatusCode.UNAUTHENTICATED
        assert promote(admin, "chall", bearer(token_of(d))).champion == "chall"


# --- TLS -------------------------------------------------------------------------------------------


def tls_deployment(deployment: Make, certs: Certificates, mutual: bool = False, extra: str = "") -> Deployment:
    table = f'[tls]\ncert = "{certs.server_cert}"\nkey = "{certs.server_key}"\nca = "{certs.ca}"\n'
    if mutual:
        table += f'client_ca = "{certs.ca}"\nrequire_client_auth = true\n'
    d = deployment(extra=table + extra)
    d.start_rendezvous()
    d.start_frontend()
    for name, entry, role in MODELS:
        d.start_model(name, entry, role)
    client = ClientTls(str(certs.ca), str(certs.client_cert), str(certs.client_key))
    with channel(d.address, client) as secure:
        for reply in health_pb2_grpc.HealthStub(secure).Watch(health_pb2.HealthCheckRequest(service="default"),
                                                               timeout=60):
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
    return d


def score_over(target: grpc.Channel) -> scoring_pb2.ScoreResponse:
    request = scoring_pb2.ScoreRequest()
    request.features.update({"x": 1})
    return scoring_pb2_grpc.ScoringStub(target).Score(request, timeout=5)


def cli_score(d: Deployment, *tls: str) -> subprocess.CompletedProcess[str]:
    return rvz(d, "score", "--target", d.address, "--features", '{"x": 1}', *tls)


def test_a_tls_frontend_refuses_plaintext_and_serves_a_client_with_the_ca(deployment: Make, root: Path) -> None:
    certs = make_certificates(root / "certs")
    d = tls_deployment(deployment, certs)
    assert refusal(lambda: d.score({"x": 1}, timeout_s=2)) == grpc.StatusCode.UNAVAILABLE
    assert cli_score(d).returncode == 1
    done = cli_score(d, "--tls-ca", str(certs.ca))
    assert done.returncode == 0 and json.loads(done.stdout)["model_name"] == "champ", done.stderr
    checked = rvz(d, "check", "--target", d.address, "--tls-ca", str(certs.ca))
    assert checked.stdout.strip() == "SERVING"


def test_mtls_refuses_a_client_without_a_certificate(deployment: Make, root: Path) -> None:
    certs = make_certificates(root / "certs")
    d = tls_deployment(deployment, certs, mutual=True, extra='[security]\nadmin_cert_names = "ops"\n')
    assert cli_score(d, "--tls-ca", str(certs.ca)).returncode == 1
    done = cli_score(d, "--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert), "--tls-key",
                     str(certs.client_key))
    assert done.returncode == 0, done.stderr
    with channel(d.address, ClientTls(str(certs.ca), str(certs.client_cert), str(certs.client_key))) as secure:
        assert score_over(secure).model_name == "champ"
        assert promote(secure, "chall").champion == "chall"  # the certificate's name is the credential
    audit = rvz(d, "log", "cat", "audit", "--config", str(d.config_path)).stdout
    assert json.loads(audit)["who"] == "cert:ops"


# --- the default deployment --------------------------------------------------------------------------


def test_the_default_deployment_refuses_the_attacks(deployment: Make, root: Path) -> None:
    pytest.importorskip("sklearn")
    d = deployment()
    env = {f"RVZ_STREAMS_{name.upper()}": f"ipc://{root}/{name}.sock" for name in ("requests", "scores", "results")}
    up = d.spawn("up", "up", "--listen", "127.0.0.1:0", env=env,  # no --config: the demo, keys made by `rvz up`
                 announces=(SERVING_PREFIX,))
    d.address = up.wait_line(SERVING_PREFIX, check=d.check).split()[0]
    keys = root / "rvz-data" / "keys"
    assert keys.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys.glob("*.key_secret"))
    attacker = Attacker()
    try:
        sub = attacker.socket(zmq.SUB, env["RVZ_STREAMS_REQUESTS"])
        push = attacker.socket(zmq.PUSH, env["RVZ_STREAMS_SCORES"])
        features = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        for i in range(20):
            with contextlib.suppress(zmq.Again):
                push.send_multipart([streams.SCORE, forged_score(f"r{i}", "gbm")], zmq.NOBLOCK)
            answer = d.score(features)  # the champion's, or on a loaded machine the challenger's after 30 ms
            assert answer.output.string_value != FORGED and answer.model_name in {"gbm", "logreg", "rules"}
        assert drain([sub], 0.5) == 0
    finally:
        attacker.close()
    assert refusal(lambda: promote(d.channel, "rules")) == grpc.StatusCode.UNAUTHENTICATED
    token = (keys / "admin.token").read_text().strip()
    assert promote(d.channel, "logreg", bearer(token)).champion == "logreg"
