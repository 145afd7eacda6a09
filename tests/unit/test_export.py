"""`rvz log export`: the logs joined into one table per use case, read back with pandas and pyarrow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from report_logs import FRAUD_TRUTH_SHIFT, N_FRAUD, N_IRIS, Dataset, build_dataset, iris_truth
from rvz.cli.main import cli

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("export") / "data")


def export(*args: str) -> str:
    result = CliRunner().invoke(cli, ["log", "export", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_parquet_one_joined_table_per_use_case(dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    printed = export("--data-dir", str(dataset.root), "--out", str(out))
    assert f"{out / 'iris.parquet'}: use case iris, {N_IRIS} requests, 4 models" in printed
    iris = pd.read_parquet(out / "iris.parquet")
    assert len(iris) == N_IRIS and str(iris["received"].dtype) == "datetime64[ns, UTC]"
    assert list(iris.columns[:4]) == ["request_id", "received", "deadline", "features"]
    for model in ("gbm:3", "logreg:1", "rules:1", "newbie:0.1 (replayed)"):
        assert {f"{model}/{f}" for f in ("output", "label", "number", "latency_ms", "role", "error",
                                         "after_answer")} <= set(iris.columns)
    assert list(iris["truth_label"]) == [iris_truth(i) for i in range(N_IRIS)]  # request 1: the last truth
    first = iris.iloc[0]
    assert (first["outcome"], first["answered_model"], first["rule"]) == ("answered", "gbm",
                                                                           "window 1 (0-30 ms): champion")
    assert json.loads(first["gbm:3/output"])["label"] == first["gbm:3/label"]
    assert first["gbm:3/latency_ms"] == pytest.approx(10.0) and first["newbie:0.1 (replayed)/latency_ms"] == 5.0
    assert iris["gbm:3/error"].notna().sum() == 10 and iris["logreg:1/after_answer"].sum() == 5
    assert iris.iloc[99]["outcome"] == "timeout" and pd.isna(iris.iloc[99]["answered_model"])
    # How a data scientist uses it: accuracy of each model where the truth is known.
    accuracy = {m: float((iris[f"{m}/label"] == iris["truth_label"]).mean()) for m in ("logreg:1", "gbm:3")}
    assert accuracy == {"logreg:1": 1.0, "gbm:3": 0.8}
    fraud = pq.read_table(out / "fraud.parquet").to_pandas()
    assert len(fraud) == N_FRAUD
    errors = (fraud["fraud-gbm:1/number"] - fraud["truth_number"]).abs()
    assert errors.mean() == pytest.approx(FRAUD_TRUTH_SHIFT)


def test_csv_and_filters(dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    printed = export("--data-dir", str(dataset.root), "--out", str(out), "--format", "csv", "--use-case", "fraud")
    assert "use case fraud, 40 requests, 3 models" in printed and not (out / "iris.csv").exists()
    fraud = pd.read_csv(out / "fraud.csv")
    assert len(fraud) == N_FRAUD and fraud["fraud-shifted:2/number"].iloc[0] == pytest.approx(0.5)
    assert "nothing written" in export("--data-dir", str(dataset.root), "--out", str(out), "--since", "1m")


def test_bad_arguments(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["log", "export", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(cli, ["log", "export", "--data-dir", str(tmp_path), "--out", str(tmp_path),
                                      "--format", "xlsx"])
    assert result.exit_code == 2 and "'xlsx' is not one of 'parquet', 'csv'" in result.output
