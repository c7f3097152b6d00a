"""Shared pieces of the monitoring self-tests: the reference app in-process, the local Sentry
stand-in in a thread, and a tiny HTTP server for monitoring APIs that cannot run here."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from postdeploy.local.sentry_standin import StandIn, StandInServer

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
if str(FIXTURES_DIR) not in sys.path:
    sys.path.insert(0, str(FIXTURES_DIR))

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"
API_TOKEN = "standin-api-token-for-tests"


def pytest_configure(config: pytest.Config) -> None:
    # fastapi.testclient wraps httpx, which Starlette 1.x deprecates (same as tests/app).
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """The local Sentry stand-in's server, in a thread of this process."""
    server = StandInServer(0, PUBLIC_KEY, API_TOKEN)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield StandIn(server.server_address[1], PUBLIC_KEY, API_TOKEN)
    server.shutdown()
    server.server_close()


@pytest.fixture
def sentry_reset() -> Iterator[None]:
    """Undo a sentry_sdk.init() made by an app under test (the SDK client is process-global)."""
    yield
    import sentry_sdk

    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


Route = Callable[[BaseHTTPRequestHandler], tuple[int, Any, dict[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: Any = self.server
        server.requests.append((self.path, dict(self.headers)))
        status, body, headers = server.route(self)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[Callable[[Route], Any]]:
    """``start(route)``: a plain-HTTP server answering every GET with ``route(handler)``."""
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> Any:
        server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.route = route
        server.requests = []
        server.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
