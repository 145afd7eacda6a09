from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import Deployment, base_config, short_tempdir
from in_process import InProcessDeployment, logs_captured
from rvz.config import load_config

TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: ``unit`` (no child processes) or ``e2e`` (real processes)."""
    for item in items:
        folder = item.path.relative_to(TESTS_DIR).parts[0]
        if folder in ("unit", "e2e"):
            item.add_marker(getattr(pytest.mark, folder))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_tempdir()


@pytest.fixture
def deployment(request: pytest.FixtureRequest, root: Path) -> Iterator[Callable[..., Deployment]]:
    """Factory: ``deployment(policy=..., frontend=...)`` writes a config and returns an empty Deployment.

    Everything it starts is stopped by PID at the end; on failure, each process's stderr is printed.
    """
    made: list[Deployment] = []

    def make(**config: str) -> Deployment:
        config_path = root / f"rvz-{len(made)}.toml"
        config_path.write_text(base_config(root, **config))
        made.append(Deployment(root, config_path))
        return made[-1]

    yield make
    for d in made:
        d.close()
    if request.node.stash.get(_FAILED, False):
        for d in made:
            for proc in d.procs:
                print(f"----- {proc.name} (pid {proc.pid}) stderr -----\n{proc.stderr()}")


@pytest.fixture
def in_process(root: Path) -> Iterator[Callable[..., InProcessDeployment]]:
    """Factory: ``in_process(policy=..., frontend=...)`` -> an InProcessDeployment of that config, not started.

    The same configuration as ``deployment``'s; every part it starts is stopped and its thread joined
    at the end. rvz's log records (INFO and above) are in its ``log`` while the test runs.
    """
    made: list[InProcessDeployment] = []
    with logs_captured() as log:

        def make(**config: str) -> InProcessDeployment:
            config_path = root / f"rvz-in-process-{len(made)}.toml"
            config_path.write_text(base_config(root, **config))
            made.append(InProcessDeployment(root, load_config(config_path), config_path, log))
            return made[-1]

        yield make
        for d in made:
            d.close()
