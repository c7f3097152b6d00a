"""The command driver: a user's own rollback (and releases) command, run without a shell."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import LOG_WINDOW_S, DriverError, DriverUnavailable, previous_good
from postdeploy.rollback.command import CommandDriver
from tests.standins._base import FakeClock

#: A tiny "platform": releases in a JSON file, a rollback script that moves "current".
ROLLBACK_SCRIPT = """
import json, os, sys
state = sys.argv[1]
data = json.load(open(state))
with open(state + ".env", "w") as seen:
    json.dump({k: v for k, v in os.environ.items() if k.startswith("POSTDEPLOY_")}, seen)
if data.get("fail"):
    sys.stderr.write("step 1 ok\\nerror: the platform said no\\n")
    sys.exit(3)
for r in data["releases"]:
    r["current"] = r["id"] == os.environ["POSTDEPLOY_TO_RELEASE"]
json.dump(data, open(state, "w"))
print(json.dumps({"id": os.environ["POSTDEPLOY_TO_RELEASE"], "status": "live"}))
"""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "releases.json"
    path.write_text(json.dumps({"releases": [
        {"id": "r3", "version": "3.0", "ref": "img:3", "current": True},
        {"id": "r2", "version": "2.0", "ref": "img:2", "can_rollback": False},
        {"id": "r1", "version": "1.0", "ref": "img:1"},
    ]}))  # fmt: skip
    return path


@pytest.fixture
def driver(tmp_path: Path, state: Path, make_target: Callable[..., Target]) -> CommandDriver:
    script = tmp_path / "rollback.py"
    script.write_text(ROLLBACK_SCRIPT)
    py = shlex.quote(sys.executable)
    target = make_target(
        "command",
        rollback_command=f"{py} -S {shlex.quote(str(script))} {shlex.quote(str(state))}",
        releases_command=f"{py} -S -c 'import sys; print(open(sys.argv[1]).read())' {state}",
    )
    clock = FakeClock()
    return CommandDriver(target, clock=clock, sleep=clock.sleep)


def test_releases_come_from_the_releases_command(driver: CommandDriver) -> None:
    releases = driver.releases()
    assert [(r.id, r.version, r.ref, r.can_rollback) for r in releases] == [
        ("r3", "3.0", "img:3", True), ("r2", "2.0", "img:2", False), ("r1", "1.0", "img:1", True),
    ]  # fmt: skip
    assert driver.current().id == "r3"
    assert previous_good(releases, driver.current()).id == "r1"


def test_plan_shows_the_command_and_its_environment(driver: CommandDriver) -> None:
    (call,) = driver.plan(driver.releases()[2])
    assert str(call).startswith(f"run `{shlex.quote(sys.executable)} -S ")
    assert "POSTDEPLOY_TARGET=command" in str(call)
    assert "POSTDEPLOY_TO_RELEASE=r1" in str(call)


#: What the driver adds to the command's environment (the rest is inherited).
RELEASE_ENV = ("POSTDEPLOY_TARGET", "POSTDEPLOY_FROM_RELEASE", "POSTDEPLOY_TO_RELEASE")


def test_rollback_runs_the_command_with_the_release_ids_in_its_environment(
    driver: CommandDriver, state: Path
) -> None:
    new = driver.rollback(driver.releases()[2])
    assert new.id == "r1"
    assert new.status == "live"
    env = json.loads(Path(f"{state}.env").read_text())
    release_env = {k: v for k, v in env.items() if k in RELEASE_ENV}
    assert release_env == {
        "POSTDEPLOY_TARGET": "command", "POSTDEPLOY_FROM_RELEASE": "r3",
        "POSTDEPLOY_TO_RELEASE": "r1",
    }  # fmt: skip
    assert driver.wait_until_serving(new, timeout_s=5)
    assert driver.current().id == "r1"


def test_a_failing_command_is_a_driver_error_with_the_end_of_its_stderr(
    driver: CommandDriver, state: Path
) -> None:
    data = json.loads(state.read_text())
    state.write_text(json.dumps({**data, "fail": True}))
    with pytest.raises(
        DriverError, match=r"(?s)exited 3; its stderr ends with:\n.*the platform said no"
    ):
        driver.rollback(driver.releases()[2])


def test_a_command_that_hangs_is_stopped(make_target: Callable[..., Target]) -> None:
    sleep = f"{shlex.quote(sys.executable)} -S -c 'import time; time.sleep(30)'"
    target = make_target("command", rollback_command=sleep, wait_timeout_s=0.3)
    with pytest.raises(DriverError, match=r"did not finish within 0.3 s and was stopped"):
        CommandDriver(target).rollback(CommandDriver(target).releases()[1])


def test_without_a_releases_command_the_command_decides_what_previous_is(
    make_target: Callable[..., Target],
) -> None:
    driver = CommandDriver(make_target("command", rollback_command="true"))
    releases = driver.releases()
    to = previous_good(releases, driver.current())
    assert (driver.current().id, to.id) == ("current", "previous")
    assert driver.rollback(to).id == "previous"
    assert driver.wait_until_serving(to, timeout_s=1)


def test_a_releases_command_that_prints_no_json_is_a_driver_error(
    make_target: Callable[..., Target],
) -> None:
    driver = CommandDriver(
        make_target("command", rollback_command="true", releases_command="echo hi")
    )
    with pytest.raises(DriverError, match=r"not JSON"):
        driver.releases()


def test_preflight_finds_the_commands(make_target: Callable[..., Target]) -> None:
    CommandDriver(make_target("command", rollback_command="true")).preflight()
    missing = make_target("command", rollback_command="no-such-rollback-tool --now")
    with pytest.raises(DriverUnavailable, match=r"'no-such-rollback-tool', which is not on PATH"):
        CommandDriver(missing).preflight()


LOGS_SCRIPT = """
import os, sys
if os.environ.get("LOGS_FAIL"):
    sys.stderr.write("error: the log service said no\\n")
    sys.exit(2)
for i in range(int(os.environ["POSTDEPLOY_LOG_LINES"]) + 3):
    print(f"line {i}")
if os.environ.get("LOGS_SHOW_ENV"):
    print("since", os.environ["POSTDEPLOY_LOG_SINCE"], "for", os.environ["POSTDEPLOY_TARGET"])
"""


@pytest.fixture
def logs_driver(tmp_path: Path, make_target: Callable[..., Target]) -> CommandDriver:
    script = tmp_path / "logs.py"
    script.write_text(LOGS_SCRIPT)
    target = make_target(
        "command", rollback_command="true",
        logs_command=f"{shlex.quote(sys.executable)} -S {shlex.quote(str(script))}",
    )  # fmt: skip
    return CommandDriver(target)


def test_logs_are_the_newest_lines_the_logs_command_prints(logs_driver: CommandDriver) -> None:
    assert logs_driver.logs(limit=2) == ["line 3", "line 4"]


def test_the_logs_command_is_told_the_window_and_the_target(
    logs_driver: CommandDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGS_SHOW_ENV", "1")
    _, since, _, target = logs_driver.logs(limit=1)[0].split()
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    assert abs(age.total_seconds() - LOG_WINDOW_S) < 60
    assert target == "command"


def test_a_failing_logs_command_is_a_driver_error_with_its_stderr(
    logs_driver: CommandDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGS_FAIL", "1")
    with pytest.raises(DriverError, match=r"(?s)exited 2.*the log service said no"):
        logs_driver.logs()


def test_a_hanging_logs_command_is_stopped_at_the_target_s_timeout(
    tmp_path: Path, make_target: Callable[..., Target]
) -> None:
    target = make_target("command", rollback_command="true", logs_command="sleep 30",
                         timeout_s=0.3)  # fmt: skip
    with pytest.raises(DriverError, match=r"did not finish within 0.3 s"):
        CommandDriver(target).logs()


def test_without_a_logs_command_the_logs_are_unavailable_naming_the_setting(
    driver: CommandDriver,
) -> None:
    with pytest.raises(DriverUnavailable, match=r"logs_command"):
        driver.logs()
