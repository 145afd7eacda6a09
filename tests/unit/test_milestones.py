"""rvz.milestones: repeated warnings about growing counts are rare but never silent."""

from __future__ import annotations

import pytest

from rvz.telemetry.throttle import passed_milestone


@pytest.mark.parametrize(("before", "after", "passed"), [
    (0, 1, True), (1, 5, False), (5, 12, True), (12, 99, False), (99, 100, True), (0, 64, True),
    (100, 999, False), (999, 1000, True), (1001, 1999, False), (1990, 2010, True),
])
def test_milestones(before: int, after: int, passed: bool) -> None:
    assert passed_milestone(before, after) is passed
