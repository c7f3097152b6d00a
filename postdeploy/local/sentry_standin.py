"""A local STAND-IN for Sentry, for the local platform only. It is not Sentry.

Sentry cannot run on this machine, so local deployments report their errors here instead:
a small HTTP service on loopback that

* accepts what sentry-sdk sends, as Sentry documents it: envelopes at
  ``POST /api/{project_id}/envelope/`` and the legacy ``POST /api/{project_id}/store/``,
  authenticated by the DSN's public key (``X-Sentry-Auth`` or ``?sentry_key=``), gzip,
  deflate or (when the brotli module is present) br encoded;
* answers the one part of Sentry's web API the monitoring suite uses:
  ``GET /api/0/projects/{org}/{project}/events/`` ("List a Project's Error Events":
  ``statsPeriod``/``start``/``end``, cursor pagination in the ``Link`` header), with a bearer
  token, plus the API root ``GET /api/0/``.

It keeps events in memory. The local platform starts it with a deployment
(:func:`deployment_env`) and stops it with the deployment (:func:`stop`); it also stops by
itself once the state dir has no live deployment, so it never outlives one.

Files (in ``<state dir>/sentry-standin/``): ``standin.json`` (pid and port of the running
stand-in) and ``keys.json`` (the DSN public key and the API token, mode 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from postdeploy import paths
from postdeploy.local.state import LOG_DIR, LocalPlatformError, deployment_alive
from postdeploy.sysutil import free_port, port_is_free, process_alive

HOST = "127.0.0.1"
ORG = "postdeploy-local"
PROJECT = "learning-assistant"
PROJECT_ID = "1"
ENVIRONMENT = "local"
STANDIN_DIR = "sentry-standin"
TRIGGER_TOKEN_FILE = "error-trigger.token"  # noqa: S105 - a file name, not a secret
#: Events kept in memory, oldest dropped first.
MAX_EVENTS = 5000
MAX_BODY_BYTES = 1024 * 1024
PAGE_SIZE = 100
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
POLL_INTERVAL_S = 0.05
#: How often the stand-in looks whether the deployment it serves is still there.
WATCH_INTERVAL_S = 1.0
PROCESS_MARKER = b"sentry_standin"
PERIOD = re.compile(r"^(\d+)([smhdw])$")
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
NOT_FOUND = {"detail": "The requested resource does not exist"}


# -- what the platform and the harness use -------------------------------------------------


@dataclass(frozen=True)
class StandIn:
    """How to reach a running stand-in."""

    port: int
    public_key: str
    api_token: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key}@{HOST}:{self.port}/{PROJECT_ID}"

    def __repr__(self) -> str:  # the API token stays out of reprs and tracebacks
        return f"StandIn(url={self.url!r}, org={ORG!r}, project={PROJECT!r})"


def _dir(state_dir: Path) -> Path:
    return state_dir / STANDIN_DIR


def _secret_file(path: Path, make: Any) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make(), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def _keys(state_dir: Path) -> dict[str, str]:
    text = _secret_file(
        _dir(state_dir) / "keys.json",
        lambda: json.dumps(
            {"public_key": secrets.token_hex(16), "api_token": secrets.token_hex(32)}
        ),
    )
    return dict(json.loads(text))


def _running(state_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((_dir(state_dir) / "standin.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if process_alive(int(info.get("pid", 0)), PROCESS_MARKER) else None


def running(state_dir: Path) -> StandIn | None:
    """The stand-in serving ``state_dir``'s deployments, if one runs."""
    info = _running(state_dir)
    if info is None:
        return None
    keys = _keys(state_dir)
    return StandIn(int(info["port"]), keys["public_key"], keys["api_token"])


def ensure(state_dir: Path) -> StandIn:
    """The running stand-in for ``state_dir``, started if needed (same port when it can)."""
    current = running(state_dir)
    if current is not None:
        return current
    folder = _dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    keys = _keys(state_dir)
    previous = folder / "port"
    port = int(previous.read_text()) if previous.exists() else 0
    if not port or not port_is_free(port, HOST):
        port = free_port(HOST)
    previous.write_text(str(port), encoding="utf-8")
    log_dir = state_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    repo = str(paths.REPO_ROOT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
    }
    with open(log_dir / "sentry-standin.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "postdeploy.local.sentry_standin",
             "--state-dir", str(state_dir), "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=state_dir, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = _running(state_dir)
        if info is not None and info.get("pid") == process.pid:
            return StandIn(port, keys["public_key"], keys["api_token"])
        if process.poll() is not None:
            break
        time.sleep(POLL_INTERVAL_S)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    raise LocalPlatformError(
        f"the local Sentry stand-in did not start on {HOST}:{port} within "
        f"{START_TIMEOUT_S:.0f} s; see {log_dir / 'sentry-standin.log'}"
    )


def stop(state_dir: Path) -> None:
    """Stop the stand-in of ``state_dir``, if it runs."""
    info = _running(state_dir)
    if info is None:
        return
    pid = int(info["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and process_alive(pid, PROCESS_MARKER):
        time.sleep(POLL_INTERVAL_S)
    if process_alive(pid, PROCESS_MARKER):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (_dir(state_dir) / "standin.json").unlink()


def trigger_token(state_dir: Path) -> str:
    """The secret that opens the app's test-only error route on local deployments."""
    return _secret_file(state_dir / TRIGGER_TOKEN_FILE, lambda: secrets.token_urlsafe(32))


def read_trigger_token(state_dir: Path) -> str | None:
    """The trigger token local deployments were given, if any (never creates one)."""
    path = state_dir / TRIGGER_TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def deployment_env(state_dir: Path) -> dict[str, str]:
    """Environment for a local deployment: its Sentry DSN (the stand-in) and trigger token."""
    standin = ensure(state_dir)
    return {
        "LA_SENTRY_DSN": standin.dsn,
        "LA_SENTRY_ENVIRONMENT": ENVIRONMENT,
        "LA_ERROR_TRIGGER_TOKEN": trigger_token(state_dir),
    }


# -- the service ----------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """An envelope's header and its (item header, payload) pairs (Sentry envelope format)."""
    stream = io.BytesIO(body)
    header = json.loads(stream.readline() or b"{}")
    items: list[tuple[dict[str, Any], bytes]] = []
    while line := stream.readline():
        if not line.strip():
            continue
        item_header = json.loads(line)
        length = item_header.get("length")
        if length is None:
            payload = stream.readline().rstrip(b"\n")
        else:
            payload = stream.read(int(length))
            stream.readline()
        items.append((item_header, payload))
    return header, items


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only present when the SDK could use it

        return bytes(brotli.decompress(body))
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _title(event: dict[str, Any]) -> str:
    values = (event.get("exception") or {}).get("values") or []
    if values:
        last = values[-1]
        return f"{last.get('type', 'Error')}: {last.get('value', '')}".strip()
    message = event.get("message") or (event.get("logentry") or {}).get("message") or ""
    return str(message) or "<unlabeled event>"


def _tags(event: dict[str, Any]) -> list[dict[str, str]]:
    raw = event.get("tags") or {}
    pairs = raw.items() if isinstance(raw, dict) else (tuple(p) for p in raw)
    tags = {str(k): str(v) for k, v in pairs}
    for key in ("level", "environment", "release"):
        if event.get(key):
            tags.setdefault(key, str(event[key]))
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


class EventStore:
    """The events received, newest last; thread-safe."""

    def __init__(self) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._groups: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, event: dict[str, Any]) -> str:
        event_id = str(event.get("event_id") or secrets.token_hex(16))
        received = _now()
        created = _parse_time(event.get("timestamp")) or received
        title = _title(event)
        with self._lock:
            group = self._groups.setdefault(title, len(self._groups) + 1)
            self._events.append(
                {
                    "id": event_id,
                    "eventID": event_id,
                    "groupID": str(group),
                    "projectID": PROJECT_ID,
                    "title": title,
                    "message": title,
                    "culprit": str(event.get("transaction") or event.get("culprit") or ""),
                    "location": None,
                    "platform": str(event.get("platform") or "other"),
                    "dateCreated": _iso(created),
                    "event.type": "error",
                    "tags": _tags(event),
                    "user": None,
                    "_received": received,
                    "_full": event,
                }
            )
        return event_id

    def query(
        self, since: dt.datetime | None, until: dt.datetime | None, full: bool
    ) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self._events)
        chosen = []
        for stored in reversed(events):  # newest first, as Sentry lists them
            received = stored["_received"]
            if (since and received < since) or (until and received > until):
                continue
            public = {k: v for k, v in stored.items() if not k.startswith("_")}
            if full:
                public["entries"] = [
                    {"type": "exception", "data": stored["_full"].get("exception")}
                ]
            chosen.append(public)
        return chosen


class Handler(BaseHTTPRequestHandler):
    server: StandInServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stand-in's log holds only its own errors

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    # ingestion ---------------------------------------------------------------------------

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        match = re.fullmatch(r"/api/([^/]+)/(envelope|store)/", parts.path)
        if match is None:
            self._reply(404, NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(413, {"detail": "envelope too large"})
            return
        raw = self.rfile.read(length)
        if match.group(1) != PROJECT_ID:
            self._reply(404, {"detail": f"unknown project {match.group(1)!r}"})
            return
        if self._sentry_key(parts.query) != self.server.public_key:
            self._reply(401, {"detail": "invalid or missing sentry_key"})
            return
        try:
            body = _decode(raw, self.headers.get("Content-Encoding", ""))
            event_id = self._ingest(match.group(2), body)
        except (ValueError, OSError, ImportError) as exc:
            self._reply(400, {"detail": f"cannot read the payload: {exc}"})
            return
        self._reply(200, {"id": event_id})

    def _sentry_key(self, query: str) -> str:
        auth = self.headers.get("X-Sentry-Auth", "")
        for part in auth.removeprefix("Sentry ").split(","):
            key, _, value = part.strip().partition("=")
            if key == "sentry_key":
                return value
        return parse_qs(query).get("sentry_key", [""])[0]

    def _ingest(self, kind: str, body: bytes) -> str | None:
        if kind == "store":
            return self.server.events.add(json.loads(body))
        header, items = parse_envelope(body)
        event_id = header.get("event_id")
        for item_header, payload in items:
            if item_header.get("type") == "event":
                event_id = self.server.events.add(json.loads(payload))
        return event_id

    # web API -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/api/0/":
            self._reply(200, {"version": "0", "auth": None, "user": None})
            return
        match = re.fullmatch(r"/api/0/projects/([^/]+)/([^/]+)/events/", parts.path)
        if match is None:
            self._reply(404, NOT_FOUND)
            return
        supplied = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(supplied.encode(), self.server.api_token.encode()):
            self._reply(401, {"detail": "Invalid token"})
            return
        if match.group(1) != ORG or match.group(2) not in (PROJECT, PROJECT_ID):
            self._reply(404, NOT_FOUND)
            return
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            since, until = self._window(query)
            offset = int(query.get("cursor", "0:0:0").split(":")[1])
        except (ValueError, IndexError) as exc:
            self._reply(400, {"detail": str(exc)})
            return
        events = self.server.events.query(since, until, query.get("full") == "true")
        page = events[offset : offset + PAGE_SIZE]
        self._reply(200, page, {"Link": self._links(parts.path, query, offset, len(events))})

    @staticmethod
    def _window(query: dict[str, str]) -> tuple[dt.datetime | None, dt.datetime | None]:
        period = query.get("statsPeriod")
        if period:
            found = PERIOD.fullmatch(period)
            if found is None:
                raise ValueError(f"invalid statsPeriod {period!r}")
            seconds = int(found.group(1)) * PERIOD_SECONDS[found.group(2)]
            return _now() - dt.timedelta(seconds=seconds), None
        return _parse_time(query.get("start")), _parse_time(query.get("end"))

    def _links(self, path: str, query: dict[str, str], offset: int, total: int) -> str:
        base = f"http://{self.headers.get('Host', HOST)}{path}"

        def link(rel: str, at: int, results: bool) -> str:
            cursor = f"0:{at}:{int(rel == 'previous')}"
            url = f"{base}?{urlencode({**query, 'cursor': cursor})}"
            return f'<{url}>; rel="{rel}"; results="{str(results).lower()}"; cursor="{cursor}"'

        previous = link("previous", max(offset - PAGE_SIZE, 0), offset > 0)
        following = link("next", offset + PAGE_SIZE, offset + PAGE_SIZE < total)
        return f"{previous}, {following}"


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, public_key: str, api_token: str) -> None:
        super().__init__((HOST, port), Handler)
        self.public_key = public_key
        self.api_token = api_token
        self.events = EventStore()


def serve(state_dir: Path, port: int) -> None:
    """Run the stand-in until SIGTERM or until the state dir has no live deployment."""
    keys = _keys(state_dir)
    server = StandInServer(port, keys["public_key"], keys["api_token"])
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    info = _dir(state_dir) / "standin.json"
    tmp = info.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port}), encoding="utf-8")
    tmp.replace(info)
    while not stopping.wait(WATCH_INTERVAL_S):
        if deployment_alive(state_dir) is False:
            break
    server.shutdown()
    server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Sentry stand-in (not Sentry)")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.state_dir, args.port)


if __name__ == "__main__":
    main()
