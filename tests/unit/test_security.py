"""rvz.security without child processes: keys and their files, the per-message checks, the Admin
credential check, the ZAP handler on real sockets of this process, TLS settings, plaintext refusal."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import zmq

from rvz.config import Config, LogConfig, ModelConfig, SecurityConfig, StreamsConfig, TlsConfig
from rvz.config.fields import metrics_listen_problem
from rvz.errors import AdminError, ConfigError
from rvz.security.admin_auth import AdminAuth
from rvz.security.audit import AuditLog, describe
from rvz.security.curve import CurveClient, CurveServer
from rvz.security.deployment import check_plaintext, ensure_keys, keyring_for, keys_dir
from rvz.security.keys import KeyInfo, ModelKeyFile, read_info, routing_id_for, write_certificate
from rvz.security.manage import add_remote_model, add_token, list_keys
from rvz.security.peers import parse
from rvz.security.tls import server_credentials
from rvz.security.zap import KeyDirectory, start_authenticator
from rvz.wire.proto import envelope_pb2

MODEL = ModelConfig(name="gbm", entry="m:f")


def config(tmp_path: Path, **security: object) -> Config:
    return replace(Config(), log=LogConfig(dir=str(tmp_path / "data")), models=(MODEL,),
                   security=SecurityConfig(**security))  # type: ignore[arg-type]


def test_keys_are_made_once_with_private_modes_and_roles(tmp_path: Path) -> None:
    c = config(tmp_path)
    made = ensure_keys(c)
    directory = keys_dir(c)
    assert {Path(m).name for m in made} == {"frontend.key", "rendezvous.key", "replay.key", "model+default+gbm.key",
                                            "admin.token"}
    assert ensure_keys(c) == []
    assert directory.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in directory.glob("*.key_secret")} == {0o600}
    assert (directory / "admin.token").stat().st_mode & 0o777 == 0o600
    info = read_info(directory / "model+default+gbm.key")
    assert (info.role, info.use_case, info.name, info.user_id) == ("model", "default", "gbm", "model/default/gbm")
    assert [item.info.role for item in list_keys(c)] == ["frontend", "model", "rendezvous", "replay"]


def test_each_process_gets_its_own_pair_and_the_servers_keys(tmp_path: Path) -> None:
    c = config(tmp_path)
    frontend, model = keyring_for(c, "frontend"), keyring_for(c, "model", MODEL)
    assert frontend is not None and model is not None
    assert frontend.own.public != model.own.public
    assert model.servers["frontend"] == frontend.own.public
    assert frontend.own.user_id == routing_id_for(frontend.own.public).decode()
    assert keyring_for(config(tmp_path, curve=False), "frontend") is None


def test_a_rendezvous_or_model_host_does_not_remake_the_admin_token(tmp_path: Path) -> None:
    # The keys made once and copied to another host, whose admin.token was deleted (docs/multi-host.md):
    # only the frontend's host holds it, so a token made here would be one the frontend never checks.
    c = config(tmp_path)
    ensure_keys(c)
    (keys_dir(c) / "admin.token").unlink()
    assert keyring_for(c, "rendezvous") is not None and keyring_for(c, "model", MODEL) is not None
    assert not (keys_dir(c) / "admin.token").exists()


def test_a_model_on_another_host_gets_one_file(tmp_path: Path) -> None:
    c = config(tmp_path)
    out = tmp_path / "remote.keys"
    add_remote_model(c, "far", "default", out)
    assert out.stat().st_mode & 0o777 == 0o600
    assert not (keys_dir(c) / "model+default+far.key_secret").exists()  # the secret lives only in the file
    remote = replace(c, security=SecurityConfig(model_keys=str(out)), log=LogConfig(dir=str(tmp_path / "elsewhere")))
    keyring = keyring_for(remote, "model", ModelConfig(name="far", entry="m:f"))
    assert keyring is not None and keyring.authorized is None
    assert keyring.own.public == read_info(keys_dir(c) / "model+default+far.key").public
    with pytest.raises(ConfigError, match="holds the keys of model 'far'"):
        keyring_for(remote, "model", MODEL)
    with pytest.raises(ConfigError, match="exists"):
        add_remote_model(c, "far", "default", tmp_path / "again.keys")
    assert ModelKeyFile.read(out).servers.keys() == {"frontend", "rendezvous"}


def test_plaintext_tcp_to_another_host_is_refused_unless_allowed(tmp_path: Path) -> None:
    remote = replace(config(tmp_path, curve=False), streams=StreamsConfig(scores="tcp://10.1.2.3:5556"))
    with pytest.raises(ConfigError, match=r"streams.scores = 'tcp://10.1.2.3:5556'.*security.allow_plaintext_tcp"):
        check_plaintext(remote)
    check_plaintext(replace(remote, security=SecurityConfig(curve=False, allow_plaintext_tcp=True)))
    check_plaintext(config(tmp_path, curve=False))  # loopback
    with pytest.raises(ConfigError):
        check_plaintext(replace(remote, streams=StreamsConfig(requests="tcp://*:5555")))


def score(model: str, use_case: str = "default", replayed: bool = False) -> envelope_pb2.ScoreEnvelope:
    return envelope_pb2.ScoreEnvelope(model_name=model, use_case=use_case, replayed=replayed)


def test_a_peer_may_only_send_as_its_own_key() -> None:
    model = parse("model/default/gbm")
    assert model.may_score(score("gbm"))
    assert not model.may_score(score("logreg"))
    assert not model.may_score(score("gbm", "other"))
    assert model.may_announce(envelope_pb2.ModelInfo(name="gbm", use_case="default"))
    assert not model.may_announce(envelope_pb2.ModelInfo(name="gbm", use_case="other"))
    replay = parse("replay")
    assert replay.may_score(score("x", replayed=True)) and not replay.may_score(score("x"))
    assert not replay.may_announce(envelope_pb2.ModelInfo(name="x", use_case="default"))
    assert parse("fe-0123").key.role == "frontend"
    assert not parse("").may_score(score("x", replayed=True))


def test_admin_credentials(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("# comment\nalice:s3cret\nbob:other\n")
    auth = AdminAuth(path, ["ops"], reads_open=True)
    bearer = lambda token: [("authorization", f"Bearer {token}")]  # noqa: E731
    assert auth.check(bearer("alice:s3cret"), {}, change=True) == "alice"
    assert auth.check([], {}, change=False) == ""
    assert auth.check([], {"x509_common_name": [b"ops"]}, change=True) == "cert:ops"
    for metadata, context, code in [
            ([], {}, grpc.StatusCode.UNAUTHENTICATED),
            (bearer("alice:wrong"), {}, grpc.StatusCode.PERMISSION_DENIED),
            (bearer("carol:s3cret"), {}, grpc.StatusCode.PERMISSION_DENIED),
            ([("authorization", "Basic x")], {}, grpc.StatusCode.UNAUTHENTICATED),
            ([], {"x509_common_name": [b"dev"]}, grpc.StatusCode.PERMISSION_DENIED)]:
        with pytest.raises(AdminError) as raised:
            auth.check(metadata, context, change=True)
        assert raised.value.code == code
    closed = AdminAuth(path, [], reads_open=False)
    with pytest.raises(AdminError):
        closed.check([], {}, change=False)
    time.sleep(0.01)
    add_token(replace(Config(), security=SecurityConfig(admin_token_file=str(path))), "dave")
    dave = path.read_text().splitlines()[-1]
    assert auth.check(bearer(dave), {}, change=True) == "dave"  # read again when the file changes


def test_a_named_token_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="admin_token_file"):
        AdminAuth.from_config(config(tmp_path, admin_token_file=str(tmp_path / "missing")))


def test_the_zap_handler_admits_keys_by_stream_and_stamps_their_user_id(tmp_path: Path) -> None:
    c = config(tmp_path)
    rendezvous, model, frontend = (keyring_for(c, "rendezvous"), keyring_for(c, "model", MODEL),
                                   keyring_for(c, "frontend"))
    assert rendezvous is not None and model is not None and frontend is not None
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    auth = start_authenticator(ctx, keys_dir(c))
    sockets: list[zmq.Socket[bytes]] = []

    def open_(kind: int, endpoint: str, security: CurveServer | CurveClient, bind: bool) -> zmq.Socket[bytes]:
        sock = ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        security.apply(sock)
        (sock.bind if bind else sock.connect)(endpoint)
        sockets.append(sock)
        return sock

    try:
        scores = open_(zmq.PULL, f"ipc://{tmp_path}/s", CurveServer(rendezvous, "scores"), bind=True)
        results = open_(zmq.ROUTER, f"ipc://{tmp_path}/r", CurveServer(rendezvous, "results"), bind=True)
        open_(zmq.PUSH, f"ipc://{tmp_path}/s", CurveClient(model, "rendezvous"), bind=False).send(b"score")
        open_(zmq.DEALER, f"ipc://{tmp_path}/r", CurveClient(model, "rendezvous"), bind=False).send(b"model")
        open_(zmq.DEALER, f"ipc://{tmp_path}/r", CurveClient(frontend, "rendezvous"), bind=False).send(b"fe")
        assert scores.poll(5000)
        frame = scores.recv(copy=False)
        assert frame.get("User-Id") == "model/default/gbm"
        assert results.poll(5000)
        assert results.recv_multipart()[1] == b"fe"
        assert not results.poll(300)  # the model's key never got in
    finally:
        auth.stop()
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()


def test_metrics_listen_takes_a_bare_port_for_loopback() -> None:
    assert metrics_listen_problem(":9464") is None
    assert metrics_listen_problem("0.0.0.0:9464") is None
    assert metrics_listen_problem("9464") is not None


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    assert server_credentials(TlsConfig()) is None
    with pytest.raises(ConfigError, match="go together"):
        server_credentials(TlsConfig(cert="c.pem"))
    with pytest.raises(ConfigError, match=r"needs tls\.client_ca"):
        server_credentials(TlsConfig(cert="c.pem", key="k.pem", require_client_auth=True))
    with pytest.raises(ConfigError, match="cannot read"):
        server_credentials(TlsConfig(cert=str(tmp_path / "none.pem"), key=str(tmp_path / "none.key")))


def test_the_audit_log_records_changes_and_remembers_the_last(tmp_path: Path) -> None:
    audit = AuditLog(LogConfig(dir=str(tmp_path)))
    audit.start()
    audit.record("alice", "promote", "default", {"champion": "gbm"}, {"champion": "logreg"}, 1)
    audit.stop()
    again = AuditLog(LogConfig(dir=str(tmp_path)))
    again.start()
    try:
        last = again.last["default"]
        assert (last.who, json.loads(last.new)) == ("alice", {"champion": "logreg"})
        assert describe(last).startswith("promote: champion gbm -> logreg, by alice at ")
    finally:
        again.stop()


def test_key_info_describes_itself() -> None:
    info = KeyInfo(b"x" * 40, "model", "u", "m")
    assert (info.stem, info.describe()) == ("model+u+m", "model 'm' of use case 'u'")


def test_a_key_file_read_while_still_empty_is_read_again_once_written(tmp_path: Path) -> None:
    """Found as an in-process deployment whose model never got a probe (1 run in ~10): the ZAP handler
    reloaded the keys directory between a key file's creation and its content, then kept the empty read,
    since writing a file does not change the directory's time."""
    source = tmp_path / "made"
    source.mkdir()
    write_certificate(source / "m.key", KeyInfo(b"", "model", "default", "m"), b"x" * 40)
    keys = tmp_path / "keys"
    keys.mkdir()
    directory = KeyDirectory(keys)
    assert directory.lookup(b"x" * 40) is None
    (keys / "m.key").touch()  # as a writer that creates the file, then writes it
    assert directory.lookup(b"x" * 40) is None  # read while empty
    (keys / "m.key").write_bytes((source / "m.key").read_bytes())
    info = directory.lookup(b"x" * 40)
    assert info is not None and info.name == "m"


def test_key_and_token_files_appear_whole_or_not_at_all(tmp_path: Path) -> None:
    identity = KeyInfo(b"", "model", "default", "m")
    write_certificate(tmp_path / "m.key", identity, b"y" * 40)
    assert read_info(tmp_path / "m.key").public == b"y" * 40
    with pytest.raises(FileExistsError):
        write_certificate(tmp_path / "m.key", identity, b"z" * 40)
    assert read_info(tmp_path / "m.key").public == b"y" * 40
    assert [p.name for p in tmp_path.iterdir()] == ["m.key"]  # no temporary file left behind
