"""Policy: window lookups in integer ns and the end of a model's acceptance window."""

from __future__ import annotations

from rvz.config import RendezvousConfig, Window
from rvz.rendezvous.policy import Policy

POLICY = Policy.from_config(RendezvousConfig(schedule=(Window(8.2, ("champion",)),
                                                       Window(100, ("champion", "challenger", "fraud-v2")))))


def test_window_ends_are_rounded_up_to_whole_ns() -> None:
    assert POLICY.ends_ns == (8_200_000, 100_000_000)
    assert POLICY.window_at(8_199_999) == 0
    assert POLICY.window_at(8_200_000) == 1
    assert POLICY.window_at(100_000_000) is None


def test_acceptance_end_by_role_or_by_name() -> None:
    assert POLICY.acceptance_end_ns("champion", "gbm") == 8_200_000
    assert POLICY.acceptance_end_ns("challenger", "rf") == 100_000_000
    assert POLICY.acceptance_end_ns("canary", "fraud-v2") == 100_000_000
    assert POLICY.acceptance_end_ns("canary", "rules") is None
