"""Files a deployment must never serve: secrets, repository metadata, backups, status pages.

A fixed list of paths is fetched once each. A path fails only when it answers 2xx with content
that *looks like the file*, judged by a signature of its format: a ``.env`` has ``KEY=VALUE``
lines, ``.git/config`` a ``[core]`` section, ``.git/HEAD`` a ``ref:`` or a commit id, a
``.DS_Store`` its ``Bud1`` magic, a backup the bytes of the live file (or source code), a source
map its ``"mappings"``. So a single-page app that answers every path with its ``index.html``
(200, HTML) is not reported: that page is not the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

#: How many leading bytes of a live file a backup must share to be "the same file".
BACKUP_PREFIX_BYTES = 64
#: At least this many KEY=VALUE lines, and most of the meaningful lines, make a .env.
ENV_MIN_ASSIGNMENTS = 1
_ENV_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*=")
_GIT_CONFIG = re.compile(r"(?m)^\s*\[core\]\s*$")
_GIT_HEAD = re.compile(r"^(?:ref: refs/\S+|[0-9a-f]{40}|[0-9a-f]{64})\s*$")
_DS_STORE_MAGIC = b"\x00\x00\x00\x01Bud1"
_SERVER_STATUS = re.compile(
    r"Apache Server Status for|Server uptime:|Active connections:\s*\d+|"
    r"server accepts handled requests"
)
_SOURCE_CODE = re.compile(
    r"(?m)^\s*(?:import \w|from [\w.]+ import |def \w+\(|class \w+[(:]|<\?php|"
    r"(?:const|let|var|function)\s+\w+|module\.exports|require\()"
)
_HTML_START = re.compile(rb"^\s*(?:<!doctype html|<html|<head|<body)", re.IGNORECASE)


def looks_like_html(body: bytes) -> bool:
    return bool(_HTML_START.match(body[:512]))


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_env_file(body: bytes) -> bool:
    text = _text(body)
    if text is None or looks_like_html(body):
        return False
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assignments = [line for line in lines if _ENV_ASSIGNMENT.match(line)]
    return len(assignments) >= ENV_MIN_ASSIGNMENTS and len(assignments) * 2 > len(lines)


def is_git_config(body: bytes) -> bool:
    text = _text(body)
    return text is not None and bool(_GIT_CONFIG.search(text))


def is_git_head(body: bytes) -> bool:
    text = _text(body)
    return text is not None and bool(_GIT_HEAD.match(text.strip() + "\n"))


def is_ds_store(body: bytes) -> bool:
    return body.startswith(_DS_STORE_MAGIC)


def is_server_status(body: bytes) -> bool:
    text = _text(body)
    return text is not None and bool(_SERVER_STATUS.search(text))


def is_source_code(body: bytes) -> bool:
    text = _text(body)
    return text is not None and not looks_like_html(body) and bool(_SOURCE_CODE.search(text))


def is_source_map(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and "mappings" in document and "version" in document


Signature = Callable[[bytes], bool]


@dataclass(frozen=True)
class Exposure:
    """A path that must not be served, what the file is, and how to recognise it."""

    path: str
    what: str
    looks_like: Signature
    secret: bool = True  # exposing it leaks secrets (gating) rather than information


def backup_signature(live: bytes | None) -> Signature:
    """A backup of a live file shares its first bytes; else (the file is not served, or a
    catch-all page answers for it) the backup is recognised as source code."""
    if live and len(live) >= BACKUP_PREFIX_BYTES and not looks_like_html(live):
        prefix = live[:BACKUP_PREFIX_BYTES]
        return lambda body: body.startswith(prefix)
    return is_source_code


#: Suffixes editors and deploy scripts leave next to a file (name -> what it is).
BACKUP_NAMES: tuple[tuple[str, str], ...] = (
    ("{path}~", "an editor backup"),
    ("{path}.bak", "a backup copy"),
    ("{path}.orig", "a merge leftover"),
    ("{path}.old", "an old copy"),
    ("{folder}.{name}.swp", "a vim swap file"),
)

FIXED_EXPOSURES: tuple[Exposure, ...] = (
    Exposure("/.env", "an environment file with secrets (KEY=VALUE lines)", is_env_file),
    Exposure("/.env.production", "an environment file with secrets", is_env_file),
    Exposure("/.git/config", "the git repository's config ([core] section)", is_git_config),
    Exposure("/.git/HEAD", "the git repository's HEAD (ref: refs/...)", is_git_head),
    Exposure("/.DS_Store", "a macOS folder index listing file names", is_ds_store, secret=False),
    Exposure("/server-status", "the web server's status page", is_server_status, secret=False),
)


def backup_exposures(entry_point: str, live: bytes | None) -> list[Exposure]:
    folder, _, name = entry_point.rpartition("/")
    signature = backup_signature(live)
    return [
        Exposure(
            template.format(path=entry_point, folder=folder + "/", name=name),
            f"{what} of {entry_point}",
            signature,
        )
        for template, what in BACKUP_NAMES
    ]


def source_map_exposures(scripts: Iterable[str]) -> list[Exposure]:
    return [
        Exposure(f"{script}.map", f"the source map of {script}", is_source_map, secret=False)
        for script in scripts
        if script.endswith(".js")
    ]


def exposures(
    client: httpx.Client, entry_points: Iterable[str], private_source_maps: bool
) -> list[Exposure]:
    """The bounded list of paths to probe for this target (one GET per served entry point)."""
    entry_points = tuple(entry_points)
    found = list(FIXED_EXPOSURES)
    for entry in entry_points:
        live = None
        if not entry.endswith(".py"):
            response = client.get(entry)
            live = response.content if response.status_code == httpx.codes.OK else None
        found += backup_exposures(entry, live)
    if private_source_maps:
        found += source_map_exposures(entry_points)
    return found


def exposed(client: httpx.Client, candidates: Iterable[Exposure]) -> list[tuple[Exposure, str]]:
    """(exposure, problem) for every candidate served with content that looks like the file."""
    found = []
    for exposure in candidates:
        response = client.get(exposure.path)
        if response.is_success and exposure.looks_like(response.content):
            found.append((exposure, _problem(exposure, response)))
    return found


def _problem(exposure: Exposure, response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type")
    return (
        f"GET {response.url} answered HTTP {response.status_code} ({kind}, "
        f"{len(response.content)} bytes) with {exposure.what}"
    )
