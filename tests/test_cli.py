"""The ``postdeploy`` command ends quietly when the reader of its output goes away."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from postdeploy.cli import EXIT_BROKEN_PIPE

REPO = Path(__file__).resolve().parents[1]
CLI_TIMEOUT_S = 60
COMMAND = [sys.executable, "-m", "postdeploy.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "POSTDEPLOY_STATE_DIR": str(tmp_path / "state")}


def _into_closed_pipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write meets EPIPE
    try:
        return subprocess.run(
            [*COMMAND, *args], stdout=write_end, stderr=subprocess.PIPE, cwd=REPO, env=env,
            text=True, timeout=CLI_TIMEOUT_S, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_a_closed_pipe_ends_the_command_quietly_with_141(unbuffered, tmp_path):
    env = {**_env(tmp_path), "PYTHONUNBUFFERED": unbuffered}
    done = _into_closed_pipe(["local", "faults"], env)
    assert done.stderr == ""
    assert done.returncode == EXIT_BROKEN_PIPE


@pytest.mark.parametrize("args", [["--help"], ["local", "--help"]])
def test_help_into_a_closed_pipe_is_quiet(args, tmp_path):
    done = _into_closed_pipe(args, {**_env(tmp_path), "PYTHONUNBUFFERED": ""})
    assert done.stderr == ""
    # buffered, the failure surfaces at our flush (141); argparse itself swallows a failed
    # unbuffered write of its help (0)
    assert done.returncode == EXIT_BROKEN_PIPE


def test_head_reads_the_first_faults_and_nothing_else_is_printed(tmp_path):
    command = " ".join(shlex.quote(part) for part in [*COMMAND, "local", "faults"])
    shell = shutil.which("sh")
    assert shell is not None
    done = subprocess.run(
        [shell, "-c", f"{command} | head -n 1"], capture_output=True, cwd=REPO,
        env=_env(tmp_path), text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr == ""


def test_an_open_pipe_gets_everything_and_status_zero(tmp_path):
    done = subprocess.run(
        [*COMMAND, "local", "faults"], capture_output=True, cwd=REPO, env=_env(tmp_path),
        text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert "login_broken" in done.stdout


def test_the_targets_file_is_found_from_a_subfolder(tmp_path):
    done = subprocess.run(
        [*COMMAND, "watch", "--target", "nosuch", "--rollback", "off"], capture_output=True,
        cwd=REPO / "suites" / "security", env=_env(tmp_path), text=True,
        timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"valid targets in {REPO / 'targets.toml'}: local" in done.stderr
