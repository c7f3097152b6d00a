"""A real HTTP receiver on 127.0.0.1 that records what notifications POST to it.

It answers the way the real receivers do unless told otherwise: Slack's incoming webhooks
200 ``ok``, PagerDuty's Events API v2 202 ``{"status": "success", ...}``, anything else 200.
Tests queue other answers (status, body, headers, a delay) with :meth:`Receiver.answer`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: How often the server loop looks for a shutdown request (its default, 0.5 s, slows tests).
POLL_S = 0.01


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    #: when it arrived (time.time())
    at: float = field(default_factory=time.time)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: deque[Answer] = deque()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                receiver.received.append(
                    Received(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                answer = (
                    receiver._answers.popleft()
                    if receiver._answers
                    else receiver._default(self.path)
                )
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                payload = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )

    def _default(self, path: str) -> Answer:
        if path.startswith("/v2/enqueue"):
            return Answer(202, json.dumps({"status": "success", "message": "Event processed"}))
        return Answer()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, status: int, body: str = "", *, headers: dict[str, str] | None = None,
               delay_s: float = 0.0) -> None:  # fmt: skip
        self._answers.append(Answer(status, body, headers or {}, delay_s))

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
