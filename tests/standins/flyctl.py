"""Puts the fake flyctl (``fake_flyctl.py``) on disk as an executable named ``fly``."""

from __future__ import annotations

import hashlib
import json
import stat
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("fake_flyctl.py")
APP = "la-test-app"


def release(version: int, status: str = "complete", image: str | None = None) -> dict[str, Any]:
    """A release as flyctl's ``releases --json`` prints it."""
    return {
        "ID": f"rel_{version:04d}", "Version": version, "Stable": status == "complete",
        "InProgress": False, "Reason": "", "Description": f"Deploy image v{version}",
        "Status": status, "DeploymentStrategy": "ROLLING", "Metadata": None,
        "User": {"ID": "u1", "Name": "CI", "Email": "ci@example.test"}, "EvaluationID": "",
        "CreatedAt": f"2026-05-{version:02d}T12:00:00Z",
        "ImageRef": f"registry.fly.io/{APP}:deployment-{version:02d}" if image is None else image,
    }  # fmt: skip


class FakeFlyctl:
    """A ``fly`` executable in ``directory`` backed by a state file the test can change."""

    def __init__(self, directory: Path, token: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.state_file = directory / "flyctl-state.json"
        self.executable = directory / "fly"
        self.executable.write_text(
            f'#!/bin/sh\nFAKE_FLYCTL_STATE="{self.state_file}" exec "{sys.executable}" -S -I '
            f'"{SCRIPT}" "$@"\n',
            encoding="utf-8",
        )
        self.executable.chmod(self.executable.stat().st_mode | stat.S_IXUSR)
        self.state: dict[str, Any] = {
            "app": APP,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
            "releases": [release(1), release(2), release(3, "failed"), release(4)],
            "current": 4,
            "fail": {},
            "hang": [],
        }
        self.save()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state), encoding="utf-8")

    def load(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text(encoding="utf-8"))

    def update(self, **changes: Any) -> None:
        self.state.update(changes)
        self.save()

    def calls(self) -> list[dict[str, Any]]:
        log = Path(f"{self.state_file}.calls.jsonl")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]

    @property
    def serving(self) -> str:
        state = self.load()
        return next(r["ImageRef"] for r in state["releases"] if r["Version"] == state["current"])
