"""frontend.grpc_overflow: what gRPC core does with calls the frontend cannot pick up in time.

The frontend is stopped (SIGSTOP, by pid) while calls arrive, then continued: its gRPC core reads
them all at once and queues them for an event loop that takes one at a time, as under overload.
With a small frontend.grpc_backlog, core turns most of them away.
"""

from __future__ import annotations

import pytest

from rvz.config import FrontendConfig
from rvz.frontend.grpc_overflow import experiments_needed

pytestmark = pytest.mark.timeout(120)










def test_refuse_adds_the_experiment_to_what_the_environment_asks_for() -> None:
    refuse, cancel = FrontendConfig(grpc_overflow="refuse"), FrontendConfig()
    assert experiments_needed(cancel, {}) is None
    assert experiments_needed(refuse, {}) == "ph2_server"
    assert experiments_needed(refuse, {"GRPC_EXPERIMENTS": "ph2_server"}) is None  # after the re-exec
    assert experiments_needed(refuse, {"GRPC_EXPERIMENTS": "a, -ph2_server,b"}) == "a,b,ph2_server"
