"""`rvz report` on real logs written with LogWriter: exact figures through --json, the tables, the page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from report_logs import N_FRAUD, N_IRIS, Dataset, S, build_dataset, report
from rvz.cli.report import report_command
from rvz.compare.outputs import extract
from rvz.report.command import parse_time
from rvz.wire.codec import to_value

pytestmark = pytest.mark.timeout(60)

@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("report") / "data")




def models_of(document: dict[str, Any], use_case: str) -> dict[str, dict[str, Any]]:
    (found,) = [u for u in document["use_cases"] if u["use_case"] == use_case]
    return {m["name"]: m for m in found["models"]}


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, UTC).isoformat().replace("+00:00", "Z")


def test_counts_latency_on_time_and_times_chosen(dataset: Dataset) -> None:
    document = report("--data-dir", str(dataset.root))
    assert [u["use_case"] for u in document["use_cases"]] == ["fraud", "iris"]
    (iris,) = [u for u in document["use_cases"] if u["use_case"] == "iris"]
    assert iris["requests"] == N_IRIS
    assert iris["outcomes"] == {"answered": 99, "timeout": 1}
    assert iris["canary"] == "rules:1"
    models = models_of(document, "iris")
    assert list(models) == ["gbm", "logreg", "rules", "newbie"]  # champion, challenger, canary, then replayed

    gbm = models["gbm"]
    assert (gbm["version"], gbm["role"], gbm["replayed"]) == ("3", "champion", False)
    assert (gbm["requests_seen"], gbm["scores"], gbm["errors"], gbm["late"], gbm["orphans"]) == (100, 100, 10, 0, 0)
    assert gbm["error_rate"] == pytest.approx(0.1)
    assert gbm["latency_basis"] == "arrival"
    assert gbm["latency_ms"]["p50"] == pytest.approx(10.0)
    assert gbm["latency_ms"]["p99"] == pytest.approx(50.0)
    assert gbm["compute_ms"]["p50"] == pytest.approx(8.0)
    assert gbm["window_ms"] == 30.0
    assert gbm["on_time_pct"] == pytest.approx(100 * 80 / 90)  # 10 of its 90 answers came at 50 ms
    assert gbm["times_chosen"] == 90
    assert gbm["agreement"] is None  # the champion is not compared with itself

    logreg = models["logreg"]
    assert (logreg["scores"], logreg["errors"], logreg["late"]) == (100, 0, 5)
    assert logreg["window_ms"] == 100.0
    assert logreg["on_time_pct"] == pytest.approx(95.0)
    assert logreg["times_chosen"] == 9

    rules = models["rules"]
    assert (rules["requests_seen"], rules["scores"], rules["orphans"]) == (100, 101, 1)
    assert rules["on_time_pct"] == pytest.approx(100.0)
    assert rules["times_chosen"] == 0


def test_agreement_with_the_champion_and_with_what_was_answered(dataset: Dataset) -> None:
    models = models_of(report("--data-dir", str(dataset.root)), "iris")
    logreg = models["logreg"]["agreement"]
    # Compared where both answered: 90 requests (gbm failed on 10); they differ on the 10 with i%10 == 0.
    assert logreg == {"reference": "champion", "kind": "label", "pairs": 90,
                      "same_label_pct": pytest.approx(100 * 80 / 90), "mean_abs_diff": None, "pearson_r": None}
    assert models["rules"]["agreement"]["same_label_pct"] == pytest.approx(100.0)

    newbie = models["newbie"]
    assert newbie["replayed"] is True
    assert (newbie["scores"], newbie["requests_seen"], newbie["times_chosen"]) == (100, 100, None)
    assert newbie["latency_basis"] == "compute"
    assert newbie["latency_ms"]["p50"] == pytest.approx(5.0)
    assert newbie["window_ms"] is None and newbie["on_time_pct"] is None
    # 99 requests were answered (one timed out), half of them known only through the answering model's score.
    assert newbie["agreement"]["reference"] == "answered"
    assert newbie["agreement"]["pairs"] == 99
    assert newbie["agreement"]["same_label_pct"] == pytest.approx(100 * 89 / 99)


def test_numbers_are_compared_by_difference_correlation_and_divergence(dataset: Dataset) -> None:
    document = report("--data-dir", str(dataset.root))
    models = models_of(document, "fraud")
    shifted, champion, canary = models["fraud-shifted"], models["fraud-gbm"], models["fraud-canary"]
    assert shifted["output_kind"] == champion["output_kind"] == canary["output_kind"] == "number"
    agreement = shifted["agreement"]
    assert agreement["kind"] == "number" and agreement["pairs"] == N_FRAUD
    assert agreement["mean_abs_diff"] == pytest.approx(0.5)
    assert agreement["pearson_r"] == pytest.approx(1.0)
    assert agreement["same_label_pct"] is None

    assert shifted["distribution"]["reference"] == "fraud-canary:1"
    assert shifted["distribution"]["divergence_metric"] == "ks"
    assert shifted["distribution"]["divergence"] == pytest.approx(0.5)  # half the canary lies below 0.5
    assert champion["distribution"]["divergence"] == pytest.approx(0.0)
    assert shifted["distribution"]["divergence"] > champion["distribution"]["divergence"]
    assert canary["distribution"]["divergence"] is None  # the reference itself
    quantiles = shifted["distribution"]["quantiles"]
    assert list(quantiles) == ["1", "5", "25", "50", "75", "95", "99"]
    assert quantiles["50"] == pytest.approx(canary["distribution"]["quantiles"]["50"] + 0.5)


def test_labels_are_compared_by_frequency(dataset: Dataset) -> None:
    models = models_of(report("--data-dir", str(dataset.root)), "iris")
    rules = models["rules"]["distribution"]
    # 34 requests with i%3 == 0, and the orphan score, say setosa.
    assert rules["label_pct"] == {"setosa": pytest.approx(35 * 100 / 101), "versicolor": pytest.approx(33 * 100 / 101),
                                  "virginica": pytest.approx(33 * 100 / 101)}
    newbie = models["newbie"]["distribution"]
    assert newbie["divergence_metric"] == "jensen_shannon"
    assert 0 < newbie["divergence"] < 0.1
    assert models["gbm"]["distribution"]["quantiles"]["50"] == pytest.approx(0.8)  # top class probability


def test_since_until_and_use_case_filter_by_request_time(dataset: Dataset) -> None:
    start, end = dataset.iris_t0 + 50 * S, dataset.iris_t0 + 80 * S
    document = report("--data-dir", str(dataset.root), "--since", iso(start), "--until", iso(end))
    assert [u["use_case"] for u in document["use_cases"]] == ["iris"]
    assert document["use_cases"][0]["requests"] == 30
    assert document["use_cases"][0]["outcomes"] == {"answered": 30}
    models = models_of(document, "iris")
    assert models["gbm"]["times_chosen"] == 27 and models["logreg"]["times_chosen"] == 3
    assert models["newbie"]["scores"] == 30
    assert models["rules"]["orphans"] == 0  # its request would have come after --until

    assert [u["use_case"] for u in report("--data-dir", str(dataset.root), "--since", "1h")["use_cases"]] == ["fraud"]
    assert [u["use_case"] for u in report("--data-dir", str(dataset.root), "--until", "1h")["use_cases"]] == ["iris"]
    only = report("--data-dir", str(dataset.root), "--use-case", "fraud")
    assert [u["use_case"] for u in only["use_cases"]] == ["fraud"] and only["use_case"] == "fraud"


def test_schedule_comes_from_the_config(dataset: Dataset, tmp_path: Path) -> None:
    config = tmp_path / "rvz.toml"
    config.write_text("[rendezvous]\n[[rendezvous.schedule]]\nuntil_ms = 45\naccept = ['logreg', 'champion']\n")
    models = models_of(report("--data-dir", str(dataset.root), "--config", str(config)), "iris")
    assert models["gbm"]["window_ms"] == 45.0 and models["gbm"]["on_time_pct"] == pytest.approx(100 * 80 / 90)
    assert models["logreg"]["window_ms"] == 45.0 and models["logreg"]["on_time_pct"] == pytest.approx(95.0)
    assert models["rules"]["window_ms"] is None and models["rules"]["on_time_pct"] is None  # no window accepts it


def test_tables_and_html_page(dataset: Dataset, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = CliRunner().invoke(report_command, ["--data-dir", str(dataset.root), "--html", str(page)])
    assert result.exit_code == 0, result.output
    for text in ("use case iris", "use case fraud", "gbm:3", "newbie:0.1 (replayed)", "88.9% same vs champ",
                 "89.9% same vs answered", "KS 0.500", "score distribution vs canary rules:1"):
        assert text in result.stdout
    html = page.read_text()
    assert html.count("<svg") >= 6  # per use case: latency CDF, Q-Q, agreement over time (+ label frequencies)
    for text in ("latency CDF", "Q-Q vs canary", "agreement over time", "label frequencies", "gbm:3", "logreg:1",
                 "rules:1", "newbie:0.1", "fraud-shifted:2"):
        assert text in html, text
    assert "<script" not in html and "<link" not in html and 'src="http' not in html and 'href="http' not in html




def test_empty_missing_and_bad_arguments(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report("--data-dir", str(empty))["use_cases"] == []
    result = CliRunner().invoke(report_command, ["--data-dir", str(empty)])
    assert result.exit_code == 0 and "No requests, scores or results" in result.stdout
    result = CliRunner().invoke(report_command, ["--data-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(report_command, ["--data-dir", str(empty), "--since", "yesterday"])
    assert result.exit_code == 2 and "neither an ISO-8601 time" in result.output
    result = CliRunner().invoke(report_command, ["--data-dir", str(empty), "--since", "1h", "--until", "2h"])
    assert result.exit_code == 2 and "--since must be before --until" in result.output


@pytest.mark.parametrize(("output", "expected"), [
    ("fraud", ("fraud", None)),
    (0.25, (None, 0.25)),
    (True, ("true", None)),
    ({"label": "a", "probabilities": {"a": 0.7, "b": 0.3}}, ("a", 0.7)),
    ({"label": 2}, ("2", None)),
    ({"label": 1234567, "score": 0.5}, ("1234567", 0.5)),
    ({"score": 0.1, "value": 0.2}, (None, 0.1)),
    ({"value": "high", "prediction": 3}, (None, 3.0)),
    ({"probabilities": {"a": 0.2, "b": 0.5}}, (None, 0.5)),
    ([1, 2], (None, None)),
    (None, (None, None)),
])
def test_output_extraction_rule(output: Any, expected: tuple[str | None, float | None]) -> None:
    assert extract(to_value(output)) == expected


def test_times() -> None:
    now = 1_700_000_000 * S
    assert parse_time("30m", now) == now - 30 * 60 * S
    assert parse_time("1h30m", now) == now - 90 * 60 * S
    assert parse_time("2d", now) == now - 2 * 86400 * S
    assert parse_time("2024-05-01T10:00:00Z", now) == 1_714_557_600 * S
    assert parse_time("2024-05-01T12:00:00+02:00", now) == 1_714_557_600 * S
    with pytest.raises(ValueError, match="neither"):
        parse_time("1 hour", now)
