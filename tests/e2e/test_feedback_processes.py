"""Truths through a real frontend (rvz.Client, rvz.AsyncClient, `rvz feedback import`), offline import,
and `rvz models --json` as a script reads it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

import rvz
from harness import TESTS_DIR, Deployment
from rvz.errors import CallFailed
from rvz.feedback.log import iter_feedback
from rvz.wire.codec import value_to_python

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]
FUTURE_ID = "f" * 32


def rvz_cli(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    return subprocess.run([sys.executable, "-m", "rvz", *args], capture_output=True, text=True, timeout=60, env=env,
                          cwd=d.root)


def truths(d: Deployment) -> list[tuple[str, object]]:
    return [(r.request_id, value_to_python(r.truth)) for r in iter_feedback(d.root / "data")]


def test_truths_through_the_client_and_the_cli(deployment: Make, tmp_path: Path) -> None:
    d = deployment().start([("champ", "rvz_test_models:numeric", "champion")])
    with rvz.Client(d.address) as client:
        answers = [client.score({"v": v}) for v in range(4)]
        assert answers[0].output == 0.0 and answers[0].model_name == "champ"
        client.feedback(answers[0].request_id, 0.5)
        assert client.feedback_many([(answers[1].request_id, 1.5), (answers[0].request_id, 0.25)]) == 2
        with pytest.raises(CallFailed) as refused:
            client.feedback("not-an-id", 1.0)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not an rvz request id" in refused.value.details
        with pytest.raises(CallFailed) as refused:
            client.feedback_many([(answers[2].request_id, 2.0), (FUTURE_ID, 1.0)])
        assert "truths[1]" in refused.value.details and "nothing recorded" in refused.value.details
        unknown = f"{time.time_ns() // 10**6 - 1000:012x}{'0' * 20}"  # well formed, in no request log: kept
        client.feedback(unknown, 9.0)
    assert truths(d) == [(answers[0].request_id, 0.5), (answers[1].request_id, 1.5), (answers[0].request_id, 0.25),
                         (unknown, 9.0)]

    async def asynchronously() -> str:
        async with rvz.AsyncClient(d.address) as client:
            answer = await client.score({"v": 7})
            await client.feedback(answer.request_id, 7.5)
            assert await client.feedback_many([(answer.request_id, 7.25)]) == 1
            assert [m.name for m in await client.models()] == ["champ"]
            return answer.request_id

    async_id = asyncio.run(asynchronously())
    assert truths(d)[-2:] == [(async_id, 7.5), (async_id, 7.25)]

    csv = tmp_path / "truths.csv"
    csv.write_text(f"request_id,truth\n{answers[2].request_id},2.5\n{answers[3].request_id},3.5\n")
    result = rvz_cli(d, "feedback", "import", str(csv), "--target", d.address, "--config", str(d.config_path))
    assert result.returncode == 0, result.stderr
    assert f"recorded 2 truths from {csv} through the frontend at {d.address}" in result.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f'{{"request_id": "{answers[2].request_id}", "truth": 1}}\n{{"request_id": "x", "truth": 1}}\n')
    result = rvz_cli(d, "feedback", "import", str(bad), "--target", d.address, "--config", str(d.config_path))
    assert result.returncode == 1 and f"nothing recorded: {bad}:2: request_id 'x'" in result.stderr
    assert "Traceback" not in result.stderr

    d.close()  # no frontend holds the feedback log any more: the import writes it itself
    result = rvz_cli(d, "feedback", "import", str(csv), "--data-dir", str(d.root / "data"))
    assert result.returncode == 0, result.stderr
    assert f"through the feedback log {d.root / 'data' / 'feedback'}" in result.stdout
    assert truths(d)[-4:] == [(answers[2].request_id, 2.5), (answers[3].request_id, 3.5)] * 2


def test_models_json_has_numbers_nulls_a_stable_order_and_gone_workers_once(deployment: Make) -> None:
    d = deployment(frontend="model_timeout_ms = 400").start([
        ("zed", "rvz_test_models:echo", "challenger"), ("champ", "rvz_test_models:echo", "champion")])
    for x in range(5):
        d.score({"x": x})
    d.proc("model-zed").stop(signal.SIGKILL)
    d.procs.remove(d.proc("model-zed"))  # killed on purpose: not a part that died
    d.start_model("zed", "rvz_test_models:echo", role="challenger", wait=True)
    deadline = time.monotonic() + 30
    while True:
        listed = json.loads(rvz_cli(d, "models", "--target", d.address, "--json").stdout)
        if [(m["name"], m["live"]) for m in listed] == [("champ", True), ("zed", True), ("zed", False)]:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)  # the killed worker turns gone after model_timeout_ms without heartbeats
    champ, zed, gone = listed
    assert champ["times_chosen"] == 5 and isinstance(champ["scores_total"], int)
    assert isinstance(champ["latency_p50_ms"], float) and champ["divergence"] is None  # no canary
    assert zed["scores_total"] == 5 and isinstance(zed["latency_p50_ms"], float)  # the model's, shown once
    assert all(gone[k] is None for k in ("scores_per_s", "error_rate", "latency_p50_ms", "times_chosen",
                                         "scores_total", "on_time_pct", "divergence"))
