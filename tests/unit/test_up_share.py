"""`rvz up --only`: which parts a share runs, what it says it binds, connects to and expects elsewhere."""

from __future__ import annotations

import pytest

from rvz.config import parse_config
from rvz.errors import ConfigError
from rvz.process.share import describe, share_from

CONFIG = parse_config({
    "streams": {"requests": "tcp://fe.example:5555", "scores": "tcp://rv.example:5556",
                "results": "tcp://rv.example:5557"},
    "log": {"dir": "/var/lib/rvz"},
    "models": [{"name": "gbm", "entry": "m:gbm"}, {"name": "rules", "entry": "m:rules", "role": "canary"},
               {"name": "gbm", "entry": "m:gbm2", "use_case": "fraud"}],
}, "rvz.toml")


def names(models: tuple[object, ...]) -> list[str]:
    return [f"{m.use_case}/{m.name}" for m in models]  # type: ignore[attr-defined]


def test_no_only_is_the_whole_deployment() -> None:
    share = share_from(CONFIG, ())
    assert share.whole and share.rendezvous and share.frontend and share.models == CONFIG.models


def test_a_model_name_picks_it_in_every_use_case_and_use_case_slash_name_one() -> None:
    assert names(share_from(CONFIG, ["gbm"]).models) == ["default/gbm", "fraud/gbm"]
    share = share_from(CONFIG, ["fraud/gbm", "rules"])
    assert names(share.models) == ["default/rules", "fraud/gbm"]  # the config's order
    assert names(share.elsewhere) == ["default/gbm"]
    assert not (share.whole or share.rendezvous or share.frontend)


def test_parts_given_together_and_models_every_model() -> None:
    share = share_from(CONFIG, ["rendezvous", "frontend", "models"])
    assert share.whole
    share = share_from(CONFIG, ["frontend", "rendezvous"])
    assert not share.whole and share.models == () and len(share.elsewhere) == 3


@pytest.mark.parametrize(("name", "hint"), [("rendezvos", "did you mean 'rendezvous'? "),
                                             ("gmb", "did you mean 'gbm'? "), ("zzz", "")])
def test_an_unknown_name_lists_the_valid_ones(name: str, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        share_from(CONFIG, ["frontend", name])
    assert str(raised.value) == (f"--only {name!r} is not a part of this deployment (rvz.toml): {hint}give one of "
                                 "rendezvous, frontend, models, gbm, rules (a model also as USE_CASE/NAME)")


def test_the_banner_says_what_is_bound_connected_to_and_expected_elsewhere() -> None:
    servers = describe(share_from(CONFIG, ["rendezvous", "frontend"]), CONFIG, "0.0.0.0:50051")
    assert servers == ("rendezvous, frontend (binds requests tcp://fe.example:5555, scores tcp://rv.example:5556, "
                       "results tcp://rv.example:5557; gRPC on 0.0.0.0:50051); expects elsewhere: models "
                       "default/gbm, default/rules, fraud/gbm; logs in /var/lib/rvz")
    frontend = describe(share_from(CONFIG, ["frontend"]), CONFIG, "0.0.0.0:50051")
    assert frontend.startswith("frontend (binds requests tcp://fe.example:5555; connects to results "
                               "tcp://rv.example:5557; gRPC on 0.0.0.0:50051); expects elsewhere: rendezvous, models")
    models = describe(share_from(CONFIG, ["models"]), CONFIG)
    assert models.startswith("models default/gbm, default/rules, fraud/gbm (connects to requests "
                             "tcp://fe.example:5555, scores tcp://rv.example:5556); expects elsewhere: rendezvous, "
                             "frontend; logs in")


HUB_CONFIG = parse_config({
    "frontend": {"processes": 2},
    "streams": {"requests": "tcp://fe.example:5555", "scores": "tcp://rv.example:5556",
                "results": "tcp://rv.example:5557", "rendezvous_processes": 2},
    "models": [{"name": "gbm", "entry": "m:gbm"}],
}, "rvz.toml")


def test_with_several_frontends_the_hub_is_a_part_that_binds_the_requests_stream() -> None:
    whole = share_from(HUB_CONFIG, ())
    assert whole.whole and whole.hub
    hub = share_from(HUB_CONFIG, ["hub", "frontend"])
    assert not hub.whole and hub.hub and not hub.hub_elsewhere
    text = describe(hub, HUB_CONFIG, "0.0.0.0:50051")
    assert text.startswith("hub, frontend (2 processes) (binds requests tcp://fe.example:5555, requests_in "
                           "tcp://fe.example:5559; connects to results tcp://rv.example:5557 tcp://rv.example:5567; "
                           "gRPC on 0.0.0.0:50051)")  # every rendezvous's results stream
    frontends = share_from(HUB_CONFIG, ["frontend"])
    assert frontends.hub_elsewhere
    text = describe(frontends, HUB_CONFIG)
    assert "(connects to requests_in tcp://fe.example:5559, results tcp://rv.example:5557 tcp://rv.example:5567)" \
        in text
    assert "expects elsewhere: rendezvous, hub, models default/gbm" in text
    assert describe(share_from(HUB_CONFIG, ["rendezvous"]), HUB_CONFIG).startswith("rendezvous (2 processes) ")
    # rendezvous, every model and the frontends together are not the whole deployment while the hub runs elsewhere
    assert not share_from(HUB_CONFIG, ["rendezvous", "frontend", "models"]).whole


def test_only_hub_in_a_deployment_without_one_says_how_to_have_one() -> None:
    with pytest.raises(ConfigError, match=r"--only hub: rvz\.toml has no requests hub"):
        share_from(CONFIG, ["hub"])


HOSTS_CONFIG = parse_config({
    "streams": {"requests": "tcp://fe.example:5555", "scores": "tcp://rv1.example:5556",
                "results": "tcp://rv1.example:5557", "rendezvous_processes": 2,
                "rendezvous_hosts": "rv1.example, rv2.example"},
    "models": [{"name": "gbm", "entry": "m:gbm"}],
}, "rvz.toml")


def test_rendezvous_on_hosts_of_their_own_each_run_by_its_own_share() -> None:
    second = HOSTS_CONFIG.streams.of_rendezvous(1)
    assert (second.scores, second.results, second.work_endpoint) == (
        "tcp://rv2.example:5556", "tcp://rv2.example:5557", "tcp://rv2.example:5558")
    share = share_from(HOSTS_CONFIG, ["rendezvous:1"])
    assert share.rendezvous and not share.whole and share.runs_rendezvous(1) and not share.runs_rendezvous(0)
    text = describe(share, HOSTS_CONFIG)
    assert text.startswith("rendezvous 1 of 2 (binds scores tcp://rv2.example:5556, results "
                           "tcp://rv2.example:5557; connects to requests tcp://fe.example:5555); expects elsewhere: "
                           "rendezvous 0, frontend, "), text
    models = describe(share_from(HOSTS_CONFIG, ["models"]), HOSTS_CONFIG)
    assert "scores tcp://rv1.example:5556 tcp://rv2.example:5556" in models  # a model connects to every rendezvous
    assert share_from(HOSTS_CONFIG, ["rendezvous"]).runs_rendezvous(0)
    with pytest.raises(ConfigError, match="has rendezvous 0 to 1"):
        share_from(HOSTS_CONFIG, ["rendezvous:2"])


@pytest.mark.parametrize(("streams", "problem"), [
    ({"rendezvous_processes": 3, "rendezvous_hosts": "a, b"}, "names 2 hosts for 3 rendezvous"),
    ({"rendezvous_processes": 2, "rendezvous_hosts": "a, b", "scores": "ipc:///tmp/s"}, "needs tcp:// endpoints"),
    ({"rendezvous_processes": 2, "rendezvous_hosts": "a, b c"}, "must be host names or addresses separated by commas"),
])
def test_rendezvous_hosts_that_cannot_work_are_refused(streams: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config({"streams": streams}, "rvz.toml")
