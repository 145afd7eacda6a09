"""`rvz report` with truths: quality against them and the test against the champion, outputs read as
declared (or said not to be compared), and on-time figures by the policy and role of each request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from report_logs import MS, N_FRAUD, Dataset, Logs, S, build_dataset, report
from rvz.admin.history import LOG_NAME as POLICIES
from rvz.admin.history import RECORD_TYPE as POLICY_CHANGE
from rvz.cli.report import report_command
from rvz.feedback.log import LOG_NAME as FEEDBACK
from rvz.feedback.log import RECORD_TYPE as FEEDBACK_RECORD
from rvz.log.writer import LogWriter
from rvz.wire.codec import to_value
from rvz.wire.proto import admin_pb2, envelope_pb2

pytestmark = pytest.mark.timeout(90)
T0 = 1_760_000_000 * S


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("truth") / "data")


def use_case(document: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [u for u in document["use_cases"] if u["use_case"] == name]
    return found


def models(document: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in use_case(document, name)["models"]}


def test_labels_judged_against_the_truth_and_the_champion(dataset: Dataset) -> None:
    document = report("--data-dir", str(dataset.root))
    assert (document["truths"], document["unmatched_truths"]) == (N_FRAUD + 100 + 1, 1)
    iris = use_case(document, "iris")
    assert (iris["truths"], iris["champion"]) == (100, "gbm:3")
    found = models(document, "iris")
    gbm, logreg, newbie = found["gbm"], found["logreg"], found["newbie"]
    # The last truth of request 1 wins over the wrong one recorded first: logreg is right everywhere.
    assert logreg["quality"]["n"] == 100 and logreg["quality"]["accuracy"]["value"] == 1.0
    assert gbm["quality"]["n"] == 90 and gbm["quality"]["accuracy"]["value"] == pytest.approx(80 / 90)
    assert gbm["quality"]["log_loss"] is not None and gbm["quality"]["probabilities_n"] == 90
    assert gbm["vs_champion"] is None
    versus = logreg["vs_champion"]
    assert (versus["metric"], versus["n"], versus["verdict"], versus["test"]) == (
        "accuracy", 90, "better", "McNemar exact")
    assert versus["p_value"] == pytest.approx(2 * 0.5**10)  # 10 discordant pairs, all for logreg
    assert versus["sentence"].startswith("logreg:1 beats the champion gbm:3 by 11.1 points of accuracy (95% CI")
    assert versus["sentence"].endswith("p = 0.002, n = 90 (McNemar exact)")
    assert newbie["replayed"] and newbie["quality"]["accuracy"]["value"] == pytest.approx(0.8)
    assert newbie["vs_champion"]["verdict"] == "worse"
    classes = {c["label"]: c for c in gbm["quality"]["classes"]}
    assert set(classes) == {"setosa", "versicolor", "virginica"}


def test_numbers_judged_by_error(dataset: Dataset) -> None:
    found = models(report("--data-dir", str(dataset.root)), "fraud")
    champion, shifted = found["fraud-gbm"], found["fraud-shifted"]
    assert champion["quality"]["mae"]["value"] == pytest.approx(0.1)
    assert shifted["quality"]["mae"]["value"] == pytest.approx(0.4)
    assert shifted["quality"]["rmse"]["value"] == pytest.approx(0.4)
    assert shifted["vs_champion"]["verdict"] == "worse" and shifted["vs_champion"]["delta"]["value"] == \
        pytest.approx(-0.3)
    assert "fraud-shifted:2 is worse than the champion fraud-gbm:1 by 0.3 of MAE" in \
        shifted["vs_champion"]["sentence"]


def test_terminal_and_page_say_which_model_is_better(dataset: Dataset, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = CliRunner().invoke(report_command, ["--data-dir", str(dataset.root), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "iris: quality against the truth (100 requests with a truth)" in result.stdout
    assert "logreg:1 beats the champion gbm:3 by 11.1 points of accuracy" in result.stdout
    assert "1 truths name requests no request log holds" in result.stdout
    assert "logreg:1 beats the champion gbm:3 by 11.1 points of accuracy" in page.read_text()


# --- declared outputs ------------------------------------------------------------------------------


def write_diabetes(root: Path, output_key: str = "progression") -> None:
    """m1 (champion) is off by 1, m2 by 3, on 30 requests with a truth."""
    with (LogWriter(root / "requests", "rvz.v1.RequestEnvelope", fsync=False) as requests,
          LogWriter(root / "scores", "rvz.v1.ScoreRecord", fsync=False) as scores,
          LogWriter(root / "results", "rvz.v1.ResultEnvelope", fsync=False) as results,
          LogWriter(root / FEEDBACK, FEEDBACK_RECORD, fsync=False) as feedback):
        logs = Logs(requests, scores, results)
        for i in range(30):
            at = T0 + i * S
            rid = logs.request("diabetes", i, at)
            logs.score(rid, "diabetes", ("m1", "1", "champion"), {output_key: 100.0 + i + 1}, at, 5)
            logs.score(rid, "diabetes", ("m2", "1", "challenger"), {output_key: 100.0 + i + 3}, at, 6)
            logs.result(rid, "diabetes", at, ("m1", "1", "champion"), {output_key: 100.0 + i + 1})
            feedback.append(envelope_pb2.FeedbackRecord(request_id=rid, truth=to_value(100.0 + i))
                            .SerializeToString())


@pytest.fixture
def diabetes(tmp_path: Path) -> Path:
    write_diabetes(tmp_path / "data")
    return tmp_path / "data"


def test_undeclared_outputs_are_named_as_not_compared(diabetes: Path) -> None:
    document = report("--data-dir", str(diabetes))
    found, notes = models(document, "diabetes"), use_case(document, "diabetes")["notes"]
    assert found["m1"]["output_kind"] == "none" and found["m1"]["not_compared"] == 30
    assert found["m1"]["quality"] is None
    assert found["m1"]["not_compared_shape"] == "a dict with keys 'progression'"
    assert any(n.startswith("m2:1: 30 of 30 outputs were not compared (a dict with keys 'progression'") and
               '[[use_cases]] name = "diabetes", output = "FIELD", kind = "number"' in n for n in notes), notes
    result = CliRunner().invoke(report_command, ["--data-dir", str(diabetes)])
    assert "30 of 30 outputs were not compared" in result.stdout


def test_declared_in_the_config(diabetes: Path, tmp_path: Path) -> None:
    config = tmp_path / "rvz.toml"
    config.write_text('[[use_cases]]\nname = "diabetes"\noutput = "progression"\nkind = "number"\n')
    document = report("--data-dir", str(diabetes), "--config", str(config))
    found = models(document, "diabetes")
    assert found["m1"]["not_compared"] == 0 and found["m1"]["quality"]["mae"]["value"] == pytest.approx(1.0)
    assert found["m2"]["vs_champion"]["delta"]["value"] == pytest.approx(-2.0)
    assert found["m2"]["vs_champion"]["verdict"] == "worse"
    assert f"output field 'progression' as a number ([[use_cases]] of {config})" in \
        use_case(document, "diabetes")["outputs"]


def test_declared_once_on_the_command_line(diabetes: Path) -> None:
    found = models(report("--data-dir", str(diabetes), "--output", "progression", "--output-kind", "number"),
                   "diabetes")
    assert found["m2"]["quality"]["mae"]["value"] == pytest.approx(3.0)
    wrong = report("--data-dir", str(diabetes), "--output", "nope", "--output-kind", "number")
    assert any("without the declared field" in n for n in use_case(wrong, "diabetes")["notes"])
    result = CliRunner().invoke(report_command, ["--data-dir", str(diabetes), "--output", "progression"])
    assert result.exit_code == 2 and "--output-kind label|number is required" in result.output
    result = CliRunner().invoke(report_command, ["--data-dir", str(diabetes), "--output-kind", "nominal"])
    assert result.exit_code == 2 and "must be one of 'label', 'number'" in result.output


# --- honest over time -----------------------------------------------------------------------------

AB_POLICY_V2 = admin_pb2.Policy(deadline_ms=100, schedule=[admin_pb2.Window(until_ms=50, accept=["champion"]),
                                                           admin_pb2.Window(until_ms=100, accept=["champion",
                                                                                                  "challenger"])])


def ab_scores(i: int) -> Iterator[tuple[str, str, float]]:
    """a is champion before request 20, then b (a promotion); a answers in 20 ms, b in 40 ms."""
    yield "a", "champion" if i < 20 else "challenger", 20.0
    yield "b", "challenger" if i < 20 else "champion", 40.0


def write_ab(root: Path, history: bool) -> None:
    """Policy v2 (champion window 50 ms) decides requests 30 on; v1 is the config's (30 ms)."""
    with (LogWriter(root / "requests", "rvz.v1.RequestEnvelope", fsync=False) as requests,
          LogWriter(root / "scores", "rvz.v1.ScoreRecord", fsync=False) as scores,
          LogWriter(root / "results", "rvz.v1.ResultEnvelope", fsync=False) as results):
        logs = Logs(requests, scores, results)
        for i in range(40):
            at = T0 + i * S
            rid = logs.request("ab", i, at)
            for name, role, latency in ab_scores(i):
                logs.score(rid, "ab", (name, "1", role), i / 40, at, latency)
            results.append(envelope_pb2.ResultEnvelope(
                request_id=rid, use_case="ab", received_unix_ns=at, model_name="a" if i < 20 else "b",
                model_version="1", role="champion", rule="window 1", outcome=envelope_pb2.ResultEnvelope.ANSWERED,
                policy_version=1 if i < 30 else 2).SerializeToString())
    if history:
        with LogWriter(root / POLICIES, POLICY_CHANGE, fsync=False) as log:
            log.append(envelope_pb2.PolicyChange(use_case="ab", changed_unix_ns=T0 + 29 * S + 500 * MS,
                                                 change="set_policy", version=2, policy=AB_POLICY_V2)
                       .SerializeToString())


def test_on_time_by_the_role_and_policy_of_each_request(tmp_path: Path) -> None:
    write_ab(tmp_path / "data", history=True)
    document = report("--data-dir", str(tmp_path / "data"))
    found = models(document, "ab")
    b = found["b"]
    assert b["role_scores"] == {"challenger": 20, "champion": 20}
    # As challenger (v1): 100 ms, on time; champion under v1: 30 ms, late; champion under v2: 50 ms, on time.
    assert b["on_time_windows"] == [{"window_ms": 30.0, "scores": 10, "on_time_pct": 0.0},
                                    {"window_ms": 50.0, "scores": 10, "on_time_pct": 100.0},
                                    {"window_ms": 100.0, "scores": 20, "on_time_pct": 100.0}]
    assert b["on_time_pct"] == pytest.approx(75.0)
    assert found["a"]["on_time_windows"] == [{"window_ms": 30.0, "scores": 20, "on_time_pct": 100.0},
                                             {"window_ms": 100.0, "scores": 20, "on_time_pct": 100.0}]
    markers = use_case(document, "ab")["markers"]
    assert [(m["kind"], m["text"]) for m in markers] == [("promotion", "b:1 is champion"), ("policy", "policy v2")]
    assert markers[0]["at"].startswith("2025-10-09T08:53:40")  # request 20
    result = CliRunner().invoke(report_command, ["--data-dir", str(tmp_path / "data")])
    assert "challenger 20, champion 20" in result.stdout
    assert "75.0% (0% of 10 <30," in result.stdout and "of 10 <50," in result.stdout


def test_a_policy_the_history_lacks_is_named(tmp_path: Path) -> None:
    write_ab(tmp_path / "data", history=False)
    document = report("--data-dir", str(tmp_path / "data"))
    assert any(n.startswith("Policy version(s) 2 are not in the policy history")
               for n in use_case(document, "ab")["notes"])
    assert models(document, "ab")["b"]["on_time_pct"] == pytest.approx(50.0)  # v2's requests judged by 30 ms


def test_a_truth_of_a_filtered_out_request_is_not_unmatched(dataset: Dataset) -> None:
    assert report("--data-dir", str(dataset.root), "--use-case", "fraud")["unmatched_truths"] == 1


def test_without_scikit_learn_the_report_says_what_to_install(dataset: Dataset,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    iris = use_case(report("--data-dir", str(dataset.root)), "iris")
    assert all(m["quality"] is None for m in iris["models"])
    assert any("needs scikit-learn, which is not installed: pip install 'rvz[report]'" in n for n in iris["notes"])
