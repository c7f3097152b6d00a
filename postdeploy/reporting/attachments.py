"""The one way evidence reaches the report: attach to the current test's Allure result, redacted.

Suites, fixtures and the browser attach through these functions only. Text and JSON are redacted
on the way in (credentials, cookies, tokens: ``postdeploy.redact``); images and archives are
attached as they are, so what is drawn on a page must not be a secret. Nothing happens when
Allure is not active.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_data, redact_text

if TYPE_CHECKING:
    import pytest

#: File suffix -> Allure attachment type name, for :func:`attach_file`.
ATTACHMENT_TYPES = {
    ".png": "PNG",
    ".jpg": "JPG",
    ".jpeg": "JPG",
    ".svg": "SVG",
    ".webm": "WEBM",
    ".mp4": "MP4",
    ".zip": "ZIP",
    ".json": "JSON",
    ".txt": "TEXT",
    ".log": "TEXT",
    ".html": "HTML",
    ".csv": "CSV",
}
_TEXT_TYPES = ("TEXT", "CSV", "JSON", "HTML")


def _allure() -> Any:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return None
    return allure


def attach_text(name: str, text: str) -> None:
    """Attach text to the current test's Allure result, redacted."""
    allure = _allure()
    if allure is not None:
        allure.attach(redact_text(text), name=name, attachment_type=allure.attachment_type.TEXT)


def json_text(data: Any) -> str:
    """``data`` (a value, or JSON text) as redacted, indented JSON; text that is not JSON is
    redacted as text."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError:
            return redact_text(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
    return json.dumps(redact_data(data), indent=2, default=str)


def attach_json(name: str, data: Any) -> None:
    """Attach a JSON value or JSON text (load stats, web vitals, a TLS scan), redacted."""
    allure = _allure()
    if allure is not None:
        allure.attach(json_text(data), name=name, attachment_type=allure.attachment_type.JSON)


def attach_image(name: str, png: bytes) -> None:
    """Attach a PNG screenshot (attached as it is)."""
    allure = _allure()
    if allure is not None:
        allure.attach(png, name=name, attachment_type=allure.attachment_type.PNG)


def attach_file(path: Path, name: str | None = None) -> None:
    """Attach a file (Playwright trace, Locust report or CSV) to the current test.

    Text files are read and redacted; binary files are attached as they are.
    """
    allure = _allure()
    if allure is None:
        return
    type_name = ATTACHMENT_TYPES.get(path.suffix.lower(), "")
    kind = getattr(allure.attachment_type, type_name, None)
    if type_name in _TEXT_TYPES:
        text = path.read_text(encoding="utf-8", errors="replace")
        body = json_text(text) if type_name == "JSON" else redact_text(text)
        allure.attach(body, name=name or path.name, attachment_type=kind)
        return
    extension = None if kind is not None else path.suffix.lstrip(".") or None
    allure.attach.file(str(path), name=name or path.name, attachment_type=kind, extension=extension)


def attach_exchanges(item: pytest.Item) -> None:
    """Attach a failed test's recorded HTTP exchanges (recorded already redacted)."""
    from postdeploy.http import RECORDER_KEY

    recording = item.stash.get(RECORDER_KEY, None)
    if recording is not None and recording.exchanges:
        attach_text("HTTP exchanges (credentials redacted)", recording.render())


def attach_incident(rollback: dict[str, Any]) -> None:
    """Attach a rollback's evidence to the check whose failure started it: the failing
    release's logs (kept redacted by the controller) and the incident timeline.

    Called by the run controller right after the rollback, while that check's result is still
    open; where no test result is open (xdist's controller), Allure has nowhere to put it and
    the evidence stays in ``reports/evidence`` and verdict.json.
    """
    from postdeploy.reporting.incident import incident_lines

    lines = incident_lines(rollback)
    evidence = rollback.get("evidence") or {}
    try:
        if lines:
            attach_text("Incident timeline (rollback, objectives, availability)", "\n".join(lines))
        if evidence.get("file") and Path(evidence["file"]).exists():
            attach_file(
                Path(evidence["file"]),
                f"Logs of the failing release {evidence.get('release')} (redacted)",
            )
    except Exception:  # noqa: S110 - no open test result: the evidence stays on disk
        pass
