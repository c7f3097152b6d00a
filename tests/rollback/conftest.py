"""Fixtures of the driver tests: a recognisable fake token, targets loaded from TOML, a clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from postdeploy.config import Target, load_targets
from tests.standins._base import FakeClock

#: Recognisable, so that a leak shows up in any text it reaches.
FAKE_TOKEN = "pdtest-TOKEN-s3cr3t-7f3a9c1e5b"


def assert_no_secret(*texts: object, secret: str = FAKE_TOKEN) -> None:
    for text in texts:
        assert secret not in str(text), f"the token leaked into: {str(text)[:200]!r}"
        assert secret[8:20] not in str(text), "a piece of the token leaked"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PD_TEST_TOKEN", FAKE_TOKEN)
    return FAKE_TOKEN


@pytest.fixture
def make_target(tmp_path: Path) -> Callable[..., Target]:
    """A target of ``platform`` read from a real targets.toml, with quick rollback waits."""

    def make(platform: str, *, timeout_s: float = 2.0, wait_timeout_s: float = 30.0,
             **settings: Any) -> Target:  # fmt: skip
        lines = [
            f"[targets.{platform}]",
            f'platform = "{platform}"',
            f'url = "https://{platform}.example.test"',
            f"timeout_s = {timeout_s}",
            *(f"{key} = {_toml_value(value)}" for key, value in settings.items()),
            f"[targets.{platform}.rollback]",
            f"wait_timeout_s = {wait_timeout_s}",
            "poll_interval_s = 0.5",
        ]
        path = tmp_path / f"{platform}-targets.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return load_targets(path, environ={}).targets[platform]

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_secret_anywhere(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., None]:
    """Asserts the token is in none of ``texts``, the captured logs, stdout or stderr."""
    caplog.set_level(logging.DEBUG)

    def check(*texts: object, extra: Iterable[object] = ()) -> None:
        out, err = capsys.readouterr()
        assert_no_secret(*texts, *extra, caplog.text, out, err)

    return check
