"""The command line's shared parts, in this process: exit codes and failures in one place, the deployment a
command resolves, --version."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import rvz
from rvz.cli.main import cli
from rvz.cli.options import Deployment, deployment_options
from rvz.config import SECTIONS, ModelConfig
from rvz.config.fields import specs

pytestmark = pytest.mark.timeout(30)
PACKAGE = Path(rvz.__file__).parent
SHARED = PACKAGE / "cli" / "options.py"


def module_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)}
    return names | {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_exit_codes_and_fail_are_declared_once() -> None:
    declared = {str(path.relative_to(PACKAGE)): sorted(n for n in module_level_names(path)
                                                       if n.startswith("EXIT_") or n in ("fail", "_fail"))
                for path in PACKAGE.rglob("*.py") if "proto" not in path.parts}
    assert {path: names for path, names in declared.items() if names} == {
        "cli/options.py": ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "fail"]}


def test_the_config_options_are_declared_once() -> None:
    declaration = re.compile(r'option\(\s*"--(config|data-dir)"|: "--data-dir"')
    declaring = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                       if declaration.search(path.read_text()))
    assert declaring == ["cli/options.py"]


@pytest.mark.parametrize("cls", [*SECTIONS.values(), ModelConfig], ids=lambda c: c.__name__)
def test_every_field_of_the_config_is_a_setting_with_help(cls: type) -> None:
    assert {f.name for f in fields(cls)} == set(specs(cls))
    assert all(spec.help.endswith((".", ")")) for spec in specs(cls).values())


def test_version_comes_from_the_package_metadata() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output == f"rvz {importlib.metadata.version('rvz')}\n"


@click.command()
@deployment_options(target=True, use_case="the frontend's", data_dir=True)
def where(deployment: Deployment) -> None:
    click.echo(f"{deployment.target} {deployment.use_case} {deployment.data_dir} {deployment.target_source}")


def resolve(tmp_path: Path, toml: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    path = tmp_path / "rvz.toml"
    path.write_text(toml)
    result = CliRunner().invoke(where, ["--config", str(path), *args], env=env)
    return result.exit_code, result.output.strip()


@pytest.mark.parametrize(("listen", "target"), [("127.0.0.1:7000", "127.0.0.1:7000"),
                                                ("0.0.0.0:7000", "127.0.0.1:7000"), ("[::]:7000", "[::1]:7000"),
                                                ("rvz.internal:7000", "rvz.internal:7000")])
def test_the_target_is_the_config_frontend(tmp_path: Path, listen: str, target: str) -> None:
    code, output = resolve(tmp_path, f'[frontend]\nlisten = "{listen}"\n[log]\ndir = "logs"\n')
    assert (code, output) == (0, f"{target} None logs frontend.listen of {tmp_path / 'rvz.toml'}")


def test_options_and_the_environment_win_over_the_config(tmp_path: Path) -> None:
    toml = '[frontend]\nlisten = "127.0.0.1:7000"\n[log]\ndir = "logs"\n'
    assert resolve(tmp_path, toml, "--target", "h:1", "--use-case", "x", "--data-dir", "d") == (0, "h:1 x d --target")
    code, output = resolve(tmp_path, toml, env={"RVZ_FRONTEND_LISTEN": "127.0.0.1:7001", "RVZ_LOG_DIR": "e"})
    assert (code, output.split()[:3]) == (0, ["127.0.0.1:7001", "None", "e"])


def test_a_port_chosen_at_start_cannot_be_a_target(tmp_path: Path) -> None:
    code, output = resolve(tmp_path, '[frontend]\nlisten = "127.0.0.1:0"\n')
    assert code == 2 and output == (f"rvz: frontend.listen of {tmp_path / 'rvz.toml'} is '127.0.0.1:0': its port is "
                                    "chosen at start; give --target HOST:PORT (`rvz up` prints it)")


def test_a_bad_config_is_one_line_naming_its_file_and_key(tmp_path: Path) -> None:
    code, output = resolve(tmp_path, "[frontend]\nlisten = 'nowhere'\n")
    assert code == 2 and output == (f"rvz: config error: {tmp_path / 'rvz.toml'}: frontend.listen: must be HOST:PORT "
                                    "with a port from 0 to 65535, got 'nowhere'")
