"""docs/configuration.md is what the settings' declarations and Config() say, and says it truly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rvz.cli.main import cli
from rvz.cli.options import build_config
from rvz.config import Config, parse_config
from rvz.config.fields import scalar_specs
from rvz.config.overrides import Given, env_name, from_environment
from rvz.config.reference import BEGIN, COMMAND, END, generated_part, reference, rewrite
from rvz.config.settings import SECTIONS

pytestmark = pytest.mark.timeout(60)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_generated_part_matches_the_declarations() -> None:
    text = DOC.read_text()
    assert generated_part(text), f"{DOC} has lost its markers {BEGIN!r} ... {END!r}"
    assert generated_part(text) == reference(cli), (
        f"{DOC} differs from the settings' declarations: regenerate it with `{COMMAND}`")


def test_the_file_of_defaults_reads_back_as_config() -> None:
    block = generated_part(DOC.read_text()).split("```toml\n", 1)[1].split("```", 1)[0]
    assert parse_config(tomllib.loads(block), "<defaults>") == Config()


def test_every_documented_variable_is_read() -> None:
    for section, cls in SECTIONS.items():
        for spec in scalar_specs(cls):
            name = env_name(section, spec.key)
            assert f"`{name}`" in DOC.read_text()
            assert (section, spec.key) in from_environment({name: spec.to_text(spec.default) or "x"})


def test_rewrite_replaces_only_the_generated_part() -> None:
    text = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert rewrite(text, f"{BEGIN}\nnew\n{END}\n") == f"before\n{BEGIN}\nnew\n{END}\nafter\n"
    with pytest.raises(ValueError, match="no generated part"):
        rewrite("no markers", "x")


def test_option_wins_over_environment_over_file_over_default(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RVZ_LOG_DIR", raising=False)
    path = tmp_path / "rvz.toml"
    path.write_text('[log]\ndir = "from-toml"\n')
    option = {("log", "dir"): Given("from-cli", "command line", "--data-dir")}
    assert build_config(None).log.dir == Config().log.dir
    assert build_config(str(path)).log.dir == "from-toml"
    monkeypatch.setenv("RVZ_LOG_DIR", "from-env")
    assert build_config(str(path)).log.dir == "from-env"
    assert build_config(str(path), option).log.dir == "from-cli"
    monkeypatch.setenv("RVZ_LOG_DIR", "")  # empty is unset
    assert build_config(str(path)).log.dir == "from-toml"
