"""Data consistency across a rollback: a marker record written before, read back after.

At the start of every run with ``--rollback auto`` the harness writes a *marker*: one learning
session (``POST /api/learning/session``) of a dedicated synthetic account, then reads the
account's progress (``GET /api/learning/progress``) and keeps that snapshot. The account is
made once per target and state folder; its credentials stay in the state folder
(``<state>/data-markers/<target>.json``, mode 0600) for the next run and are never printed.

After a rollback the verification logs in as that account and reads the progress again: it
must equal the snapshot of the newest marker - this run's, or, when the failing release could
not even write one, the one the last run that could left. A missing account, a missing
session or changed totals fail the verification (the rollback lost or altered data).

Trouble of the harness itself (no state folder, an unreadable file) is :class:`MarkerError`;
what the target answered is reported in the result, never raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy import paths
from postdeploy.contract import PATHS
from postdeploy.http import new_client
from postdeploy.redact import redact_text

if TYPE_CHECKING:
    from postdeploy.config import Target

MARKER_DIR = "data-markers"
#: The marker account: ``pd-marker-<random>@example.com``, a synthetic user never deleted.
MARKER_EMAIL_PREFIX = "pd-marker-"
MARKER_EMAIL_DOMAIN = "example.com"
MARKER_NAME = "postdeploy data marker"
#: A marker session's duration is random in this range (a plausible lesson, well inside the
#: contract's limit of a day), so a lost or altered one changes the totals.
DURATION_RANGE_S = (60, 3600)
MARKER_SCORE = 0.5
#: The progress fields compared before and after the rollback.
PROGRESS_FIELDS = ("sessions", "total_time_s", "completed_lessons", "lesson_ids")
FILE_MODE = 0o600
QUOTE_CHARS = 200


class MarkerError(Exception):
    """The harness could not keep or read its marker state (not a fault of the target)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _snapshot(progress: Any) -> dict[str, Any]:
    if not isinstance(progress, dict):
        return {}
    return {key: progress.get(key) for key in PROGRESS_FIELDS}


def _said(response: httpx.Response) -> str:
    return redact_text(" ".join(response.text.split())[:QUOTE_CHARS])


class TargetRefused(Exception):
    """The target answered something other than what the marker needs (a message)."""


@dataclass
class MarkerStore:
    """The marker account and the newest marker of one target, in the state folder."""

    path: Path

    @classmethod
    def for_target(cls, target: Target, state_dir: Path | None = None) -> MarkerStore:
        return cls((state_dir or paths.state_dir()) / MARKER_DIR / f"{target.name}.json")

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MarkerError(
                f"the data-marker file {self.path} cannot be read ({type(exc).__name__}); "
                "delete it to start over with a new marker account"
            ) from None
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
            tmp.replace(self.path)
        except OSError as exc:
            raise MarkerError(
                f"the data-marker file {self.path} cannot be written ({exc.strerror}); "
                "check that the state folder is writable"
            ) from None


class MarkerClient:
    """The marker account's calls to the target (bounded by the target's timeouts)."""

    def __init__(self, target: Target, account: dict[str, str], client: httpx.Client) -> None:
        self.target = target
        self.account = account
        self.client = client

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TargetRefused(
                f"{what}: {method} {path} got no answer ({type(exc).__name__})"
            ) from None

    def register(self) -> int:
        response = self._call(
            "POST", PATHS.register, "registering the marker account",
            json={**self.account, "name": MARKER_NAME},
        )  # fmt: skip
        return response.status_code

    def login(self) -> str:
        response = self._call("POST", PATHS.login, "logging in the marker account",
                              json=self.account)  # fmt: skip
        if response.status_code != httpx.codes.OK:
            raise TargetRefused(
                f"the marker account could not log in: POST {PATHS.login} answered "
                f"{response.status_code} ({_said(response)})"
            )
        self.client.cookies.clear()
        try:
            return str(response.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise TargetRefused(
                f"POST {PATHS.login} answered 200 without an access_token"
            ) from None

    def first_lesson(self) -> int:
        response = self._call("GET", PATHS.content, "listing the lessons")
        try:
            body = response.json()
            items = body.get("items", body) if isinstance(body, dict) else body
            return int(items[0]["id"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise TargetRefused(
                f"GET {PATHS.content} answered {response.status_code} without a lesson to "
                "record a session for"
            ) from None

    def record(self, token: str, session: dict[str, Any]) -> dict[str, Any]:
        response = self._call(
            "POST", PATHS.session, "writing the marker session",
            json=session, headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        if response.status_code != httpx.codes.CREATED:
            raise TargetRefused(
                f"POST {PATHS.session} answered {response.status_code} ({_said(response)})"
            )
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def progress(self, token: str) -> dict[str, Any]:
        response = self._call(
            "GET", PATHS.progress, "reading the marker account's progress",
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        if response.status_code != httpx.codes.OK:
            raise TargetRefused(
                f"GET {PATHS.progress} answered {response.status_code} ({_said(response)})"
            )
        try:
            return _snapshot(response.json())
        except ValueError:
            raise TargetRefused(f"GET {PATHS.progress} answered a body that is not JSON") from None


def _target_client(target: Target) -> httpx.Client:
    """A client to ``target`` as the platform's clients reach it (its CA trusted)."""
    from postdeploy.rollback import lifecycle_of

    return new_client(lifecycle_of(target).client_target())


def marker_enabled(target: Target) -> bool:
    """Whether ``target`` keeps a data marker (``rollback.verify_data``, default true)."""
    section = target.sections.get("rollback") if target.sections else None
    if section is None or "verify_data" not in section:
        return True
    return bool(section["verify_data"])


OFF_REASON = (
    "not checked: rollback.verify_data is false for this target, so the rollback is not shown "
    "to keep the data written before it"
)


class DataMarkers:
    """Writes a target's marker at the start of a run and reads it back after a rollback."""

    def __init__(
        self,
        run_id: str,
        state_dir: Path | None = None,
        client: Callable[[Target], httpx.Client] | None = None,
    ) -> None:
        self.run_id = run_id
        self.state_dir = state_dir
        #: builds the HTTP client to a target (tests put a stand-in app under it)
        self.client = client or _target_client

    def _client(self, target: Target) -> httpx.Client:
        return self.client(target)

    def write(self, target: Target) -> dict[str, Any]:
        """Write this run's marker; the result says whether it was written and why not."""
        if not marker_enabled(target):
            return {"status": "not-written", "run_id": self.run_id, "reason": OFF_REASON}
        store = MarkerStore.for_target(target, self.state_dir)
        data = store.load()
        account = data.get("account")
        if not isinstance(account, dict) or not account.get("email"):
            account = {
                "email": f"{MARKER_EMAIL_PREFIX}{secrets.token_hex(6)}@{MARKER_EMAIL_DOMAIN}",
                "password": secrets.token_urlsafe(18),
            }
            data = {"account": account}
        with self._client(target) as client:
            marker = MarkerClient(target, account, client)
            try:
                token = self._log_in(marker, data)
                session = {
                    "content_id": marker.first_lesson(),
                    "duration_s": secrets.SystemRandom().randint(*DURATION_RANGE_S),
                    "score": MARKER_SCORE,
                }
                stored = marker.record(token, session)
                snapshot = marker.progress(token)
            except TargetRefused as exc:
                store.save(data)
                return {"status": "not-written", "run_id": self.run_id, "reason": str(exc)}
        data["marker"] = {
            "run_id": self.run_id,
            "written_at": _now(),
            "session": {**session, "id": stored.get("id")},
            "progress": snapshot,
        }
        store.save(data)
        return {"status": "written", "run_id": self.run_id}

    def _log_in(self, marker: MarkerClient, data: dict[str, Any]) -> str:
        """Log in; an account the target does not know (yet, or any more) is registered."""
        with contextlib.suppress(TargetRefused):
            return marker.login()
        status = marker.register()
        if status == httpx.codes.CONFLICT:
            raise TargetRefused(
                "the marker account exists but could not log in (login is broken on this release)"
            )
        if status != httpx.codes.CREATED:
            raise TargetRefused(f"registering the marker account answered {status}")
        # a new account: an older marker (of an account the target lost) no longer applies
        data.pop("marker", None)
        return marker.login()

    def read_back(self, target: Target) -> dict[str, Any]:
        """After a rollback: the newest marker must still be there, unchanged."""
        if not marker_enabled(target):
            return {"status": "not-run", "reason": OFF_REASON}
        data = MarkerStore.for_target(target, self.state_dir).load()
        account, written = data.get("account"), data.get("marker")
        if not isinstance(account, dict) or not isinstance(written, dict):
            return {
                "status": "failed",
                "reason": "no marker record was ever written for this target (this run's "
                "release could not write one and no earlier run with --rollback auto did), so "
                "the data written before the rollback cannot be shown to be intact; check it "
                "by hand",
            }
        which = (
            "this run's marker"
            if written.get("run_id") == self.run_id
            else (
                f"the marker of run {written.get('run_id')} (this run's release could not "
                "write one)"
            )
        )
        result: dict[str, Any] = {
            "marker_run_id": written.get("run_id"),
            "written_at": written.get("written_at"),
            "expected": written.get("progress"),
        }
        with self._client(target) as client:
            marker = MarkerClient(target, account, client)
            try:
                found = marker.progress(marker.login())
            except TargetRefused as exc:
                return {
                    **result, "status": "failed",
                    "reason": f"{which} could not be read back: {exc} - the "
                    "marker account or its data is gone after the rollback (or the restored "
                    "release cannot log in)",
                }  # fmt: skip
        result["found"] = found
        if found != written.get("progress"):
            return {
                **result, "status": "failed",
                "reason": f"{which} is missing or changed after the rollback: "
                f"progress was {written.get('progress')} when written, is {found} now",
            }  # fmt: skip
        return {**result, "status": "passed", "reason": f"{which} is intact"}
