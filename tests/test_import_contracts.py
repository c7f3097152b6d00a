"""The import contracts in pyproject.toml hold, and they catch a new cycle or upward import.

``lint-imports`` reads the contracts from pyproject.toml; the second test runs the same
contracts on a throwaway copy of the package into which a cycle was written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
TIMEOUT_S = 120


def _lint(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: pip install -e '.[dev]' (import-linter)")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip


def test_the_package_keeps_its_import_contracts() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package and its contracts, with ``line`` appended to ``module``."""
    shutil.copytree(
        REPO / "postdeploy", tmp_path / "postdeploy",
        ignore=shutil.ignore_patterns("__pycache__"),
    )  # fmt: skip
    target = tmp_path / "postdeploy" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    config = tmp_path / ".importlinter"
    lines = ["[importlinter]", f"root_package = {contracts['root_package']}"]
    for index, contract in enumerate(contracts["contracts"]):
        lines.append(f"\n[importlinter:contract:{index}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines.extend(f"    {item}" for item in value)
            else:
                lines.append(f"{key} = {value}")
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.mark.parametrize(
    ("module", "line", "broken", "named"),
    [
        # a cycle at the bottom: the foundations reaching up to a probe
        ("paths.py", "import postdeploy.security.tls", "No import cycles", ".paths"),
        # an upward import that makes no cycle by itself is still a broken layer
        (
            "reporting/channels.py", "import postdeploy.run", "Layers",
            "postdeploy.reporting.channels -> postdeploy.run",
        ),
        # one driver reaching into another
        (
            "rollback/render.py", "import postdeploy.rollback.railway", "platform drivers",
            "postdeploy.rollback.render -> postdeploy.rollback.railway",
        ),
    ],
)  # fmt: skip
def test_a_new_cycle_or_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: str, named: str
) -> None:
    config = _copy_with(tmp_path, module, line)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = _lint(tmp_path, "--config", str(config), env=env)
    assert done.returncode != 0, f"{module}: `{line}` went unnoticed\n{done.stdout[-2000:]}"
    broken_section = done.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section, done.stdout[-3000:]
    assert named in broken_section, done.stdout[-3000:]
