"""Hostile input: the corpus in ``fixtures/payloads/``, the requests made of it, the verdicts.

:func:`load_corpus` reads the payload files; :func:`hostile_requests` turns them into requests
against
every input the contract names (each JSON field, whole JSON bodies, path parameters, and the
query parameters of every page); :func:`send` sends them; the ``*_problems`` functions judge
the answers: no 5xx, structural garbage refused with a 4xx, nothing reflected unescaped into
HTML, and no stack trace, SQL or framework error text in any body.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from postdeploy import paths
from postdeploy.contract import JSON_INPUTS, PAGES, PATH_INPUTS, REFLECTION_PARAMS, JsonInput

if TYPE_CHECKING:
    import httpx

#: Files of string payloads, one class each (the file stem names the class).
STRING_CLASSES = (
    "sqli",
    "xss",
    "path_traversal",
    "command_injection",
    "template_injection",
    "control_characters",
)
WRONG_TYPES_FILE = "wrong_types.json"
MALFORMED_FILE = "malformed_json.txt"
INVALID_UTF8_FILE = "invalid_utf8.txt"
OVERSIZED_FILE = "oversized.json"
COMMENT_PREFIX = "# "
#: Longest part of a payload or body quoted in a failure message.
QUOTE_CHARS = 60
BODY_QUOTE_CHARS = 160
#: How much of each answer is kept to look for leaks and reflections.
KEPT_BODY_CHARS = 50_000
JSON_CONTENT_TYPE = "application/json"
#: Requests in flight at once while the corpus is sent.
DEFAULT_CONCURRENCY = 4
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[nrt0\\])")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\"}

#: What a body must never contain, by kind: evidence of an unhandled error reaching the client.
ERROR_SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a stack trace",
        re.compile(
            r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"
            r"|\bat [\w.$<>]+\([\w.]+\.(?:java|kt|cs|js|ts):\d+\)"
        ),
    ),
    (
        "SQL error text",
        re.compile(
            r"(?i)\bsqlite3?\b|\bOperationalError\b|\bIntegrityError\b|\bProgrammingError\b"
            r"|SQL syntax|syntax error at or near|: syntax error|unrecognized token"
            r"|unterminated quoted string|SQLSTATE|\bpsycopg|\bORA-\d{5}\b|\bPG::|mysql_fetch"
        ),
    ),
    (
        "framework error text",
        re.compile(
            r"pydantic_core|\bstarlette\.|\bfastapi\.|\buvicorn\.|\bwerkzeug\b|\bdjango\."
            r"|Exception in ASGI application|Whitelabel Error Page|ActionController::"
        ),
    ),
)


class CorpusError(Exception):
    """The payload corpus is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Payload:
    kind: str
    value: Any

    @property
    def label(self) -> str:
        """A short, printable form of the payload for failure messages."""
        if isinstance(self.value, bytes):
            text = self.value.decode("latin-1")
        elif isinstance(self.value, str):
            text = self.value
        else:
            text = json.dumps(self.value)
        shown = repr(text)[1:-1] if any(not c.isprintable() for c in text) else text
        return shown if len(shown) <= QUOTE_CHARS else shown[:QUOTE_CHARS] + "..."


@dataclass
class Corpus:
    strings: list[Payload] = field(default_factory=list)
    wrong_types: list[Payload] = field(default_factory=list)
    bodies: list[Payload] = field(default_factory=list)
    byte_strings: list[Payload] = field(default_factory=list)
    field_bytes: list[int] = field(default_factory=list)
    body_bytes: list[int] = field(default_factory=list)
    nesting_depth: list[int] = field(default_factory=list)


def unescape(line: str) -> str:
    """Decode the corpus' escapes (``\\xHH``, ``\\uHHHH``, ``\\n``, ``\\0``, ...)."""

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "xu":
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES[code]

    return _ESCAPE.sub(replace, line)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise CorpusError(
            f"{path}: payload file missing (see fixtures/payloads/README.md)"
        ) from None
    except UnicodeDecodeError:
        raise CorpusError(
            f"{path}: must be ASCII; write other characters as \\xHH or \\uHHHH"
        ) from None
    return [
        unescape(line)
        for line in text.splitlines()
        if line.strip() and not line.startswith(COMMENT_PREFIX) and line != "#"
    ]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(
            f"{path}: payload file missing (see fixtures/payloads/README.md)"
        ) from None
    except ValueError as exc:
        raise CorpusError(f"{path}: not valid JSON: {exc}") from None


def _sizes(spec: dict[str, Any], key: str, path: Path) -> list[int]:
    values = spec.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, int) and v > 0 for v in values):
        raise CorpusError(f"{path}: {key!r} must be a list of positive integers")
    return values


def load_corpus(directory: Path | None = None) -> Corpus:
    """Read every payload file of ``directory`` (default: the repository's fixtures/payloads)."""
    root = directory or paths.payloads_dir()
    if not root.is_dir():
        raise CorpusError(f"{root}: payload directory missing; set {paths.PAYLOADS_DIR_ENV} to it")
    corpus = Corpus()
    for kind in STRING_CLASSES:
        corpus.strings += [Payload(kind, line) for line in _lines(root / f"{kind}.txt")]
    wrong = _json(root / WRONG_TYPES_FILE)
    if not isinstance(wrong, list):
        raise CorpusError(f"{root / WRONG_TYPES_FILE}: must be a JSON array of values")
    corpus.wrong_types = [Payload("wrong_types", value) for value in wrong]
    corpus.bodies = [
        Payload("malformed_json", line.encode("latin-1")) for line in _lines(root / MALFORMED_FILE)
    ]
    corpus.bodies.append(Payload("malformed_json", b""))
    corpus.byte_strings = [
        Payload("invalid_utf8", line.encode("latin-1")) for line in _lines(root / INVALID_UTF8_FILE)
    ]
    spec = _json(root / OVERSIZED_FILE)
    if not isinstance(spec, dict):
        raise CorpusError(f"{root / OVERSIZED_FILE}: must be a JSON object of size lists")
    corpus.field_bytes = _sizes(spec, "field_bytes", root / OVERSIZED_FILE)
    corpus.body_bytes = _sizes(spec, "body_bytes", root / OVERSIZED_FILE)
    corpus.nesting_depth = _sizes(spec, "nesting_depth", root / OVERSIZED_FILE)
    return corpus


# -- the requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileRequest:
    """One hostile request: where the payload goes, and what the answer must be."""

    input: str
    location: str
    payload: Payload
    method: str
    path: str
    body: bytes | None = None
    authenticated: bool = False
    #: must be refused with a 4xx (not just "no 5xx"): the value cannot be valid
    structural: bool = False
    #: a registration: the account to delete if it was created
    account: tuple[str, str] | None = None

    def describe(self) -> str:
        return f"{self.input} {self.location} <- {self.payload.kind} {self.payload.label!r}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _first_string_field(spec: JsonInput) -> str:
    return next((k for k, v in spec.example if isinstance(v, str)), spec.example[0][0])


class _ProbeBuilder:
    def __init__(self, spec: JsonInput, new_email: Callable[[], str], existing_email: str) -> None:
        self.spec = spec
        self.new_email = new_email
        self.existing_email = existing_email
        self.input = f"{spec.method} {spec.path}"

    def body(self, overrides: dict[str, Any]) -> dict[str, Any]:
        body = dict(self.spec.example)
        if self.spec.email_field and self.spec.email_field not in overrides:
            email = self.existing_email if self.spec.creates_account else self.new_email()
            body[self.spec.email_field] = email
        body.update(overrides)
        return body

    def request(
        self, location: str, payload: Payload, raw: bytes, *, structural: bool, fields: Any = None
    ) -> HostileRequest:
        account = None
        if self.spec.creates_account and isinstance(fields, dict):
            email, password = fields.get("email"), fields.get("password")
            if isinstance(email, str) and isinstance(password, str):
                account = (email, password)
        return HostileRequest(
            input=self.input,
            location=location,
            payload=payload,
            method=self.spec.method,
            path=self.spec.path,
            body=raw,
            authenticated=self.spec.authenticated,
            structural=structural,
            account=account,
        )


def json_requests(
    spec: JsonInput, corpus: Corpus, new_email: Callable[[], str], existing_email: str
) -> list[HostileRequest]:
    """Every payload in every field of ``spec``, plus whole-body garbage.

    ``new_email`` makes unused synthetic addresses; ``existing_email`` is a registered one.
    """
    builder = _ProbeBuilder(spec, new_email, existing_email)
    example = dict(spec.example)
    made: list[HostileRequest] = []
    for name, valid in spec.example:
        where = f"field {name!r}"
        for payload in corpus.strings:
            fields = builder.body({name: payload.value})
            made.append(
                builder.request(
                    where,
                    payload,
                    _encode(fields),
                    structural=not isinstance(valid, str),
                    fields=fields,
                )
            )
        for payload in corpus.wrong_types:
            fields = builder.body({name: payload.value})
            wrong = _json_type(payload.value) != _json_type(valid)
            made.append(
                builder.request(where, payload, _encode(fields), structural=wrong, fields=fields)
            )
    target_field = _first_string_field(spec)
    for payload in corpus.bodies:
        made.append(builder.request("whole body", payload, payload.value, structural=True))
    marker = "\u0000pd-bytes\u0000"
    for payload in corpus.byte_strings:
        raw = _encode(builder.body({target_field: marker}))
        raw = raw.replace(json.dumps(marker).encode()[1:-1], payload.value)
        made.append(builder.request(f"field {target_field!r}", payload, raw, structural=True))
    for size in corpus.field_bytes:
        payload = Payload("oversized", f"{size} bytes in one field")
        raw = _encode(builder.body({target_field: "A" * size}))
        made.append(builder.request(f"field {target_field!r}", payload, raw, structural=True))
    for size in corpus.body_bytes:
        payload = Payload("oversized", f"a {size}-byte body")
        raw = _encode({**example, "padding": "A" * size})
        made.append(builder.request("whole body", payload, raw, structural=True))
    for depth in corpus.nesting_depth:
        payload = Payload("oversized", f"JSON nested {depth} levels deep")
        raw = _encode(builder.body({target_field: marker}))
        raw = raw.replace(json.dumps(marker).encode(), b"[" * depth + b"]" * depth)
        made.append(builder.request(f"field {target_field!r}", payload, raw, structural=True))
    return made


def path_requests(template: str, corpus: Corpus) -> list[HostileRequest]:
    """Every string and byte payload as the path parameter of ``template``."""
    made = []
    for payload in [*corpus.strings, *corpus.byte_strings]:
        value = payload.value
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        segment = quote(raw, safe="") if raw else "%20"
        made.append(
            HostileRequest(
                input=f"GET {template.format('{id}')}",
                location="path parameter",
                payload=payload,
                method="GET",
                path=template.format(segment),
                structural=True,
            )
        )
    return made


def page_requests(page: str, corpus: Corpus) -> list[HostileRequest]:
    """Every payload that HTML escaping changes, in the reflection-prone query parameters.

    Pages take no query parameters in the contract; these probe for a page that echoes one.
    """
    return [
        HostileRequest(
            input=f"GET {page}",
            location=f"query {', '.join(REFLECTION_PARAMS)}",
            payload=payload,
            method="GET",
            path=f"{page}?{_query(payload.value)}",
        )
        for payload in corpus.strings
        if html.escape(payload.value) != payload.value
    ]


def _query(value: str) -> str:
    encoded = quote(value.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{name}={encoded}" for name in REFLECTION_PARAMS)


def hostile_requests(
    corpus: Corpus, new_email: Callable[[], str], existing_email: str
) -> list[HostileRequest]:
    """Every hostile request against the contract's inputs (:func:`json_requests` says where)."""
    made: list[HostileRequest] = []
    for spec in JSON_INPUTS:
        made += json_requests(spec, corpus, new_email, existing_email)
    for template in PATH_INPUTS:
        made += path_requests(template, corpus)
    for page in PAGES:
        made += page_requests(page, corpus)
    return made


# -- sending and judging --------------------------------------------------------------------


@dataclass
class Answer:
    request: HostileRequest
    status: int | None = None
    content_type: str = ""
    text: str = ""
    error: str = ""

    def quote(self) -> str:
        text = " ".join(self.text.split())
        return text[:BODY_QUOTE_CHARS] + ("..." if len(text) > BODY_QUOTE_CHARS else "")


def send(
    client: httpx.Client, request: HostileRequest, auth: dict[str, str] | None = None
) -> Answer:
    """Send one hostile request; a transport failure becomes part of the answer, not an error."""
    import httpx

    headers = dict(auth or {}) if request.authenticated else {}
    if request.body is not None:
        headers["Content-Type"] = JSON_CONTENT_TYPE
    try:
        response = client.request(
            request.method,
            request.path,
            content=request.body,
            headers=headers,
        )
    except httpx.TransportError as exc:
        return Answer(request, error=f"{type(exc).__name__}: {exc or 'no answer'}")
    except (httpx.InvalidURL, ValueError) as exc:  # refused by the client: nothing was sent
        return Answer(request, status=0, error=f"not sendable: {exc}")
    return Answer(
        request,
        status=response.status_code,
        content_type=response.headers.get("content-type", ""),
        text=response.text[:KEPT_BODY_CHARS],
    )


def send_all(
    client: httpx.Client,
    to_send: Sequence[HostileRequest],
    auth: dict[str, str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[Answer]:
    """Send every hostile request, ``concurrency`` at a time (bounded: safe against production)."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(lambda request: send(client, request, auth), to_send))


def server_error_problems(answers: Iterable[Answer]) -> list[str]:
    """Answers that are 5xx, or no answer at all."""
    problems = []
    for answer in answers:
        if answer.error and answer.status is None:
            problems.append(f"{answer.request.describe()}: no answer ({answer.error})")
        elif answer.status is not None and answer.status >= 500:
            problems.append(f"{answer.request.describe()}: HTTP {answer.status}: {answer.quote()}")
    return problems


def acceptance_problems(answers: Iterable[Answer]) -> list[str]:
    """Structurally invalid input (wrong type, malformed, oversized, not UTF-8) accepted."""
    return [
        f"{answer.request.describe()}: accepted with HTTP {answer.status}, expected a 4xx"
        for answer in answers
        if answer.request.structural and answer.status is not None and 0 < answer.status < 400
    ]


def reflects_unescaped(answer: Answer) -> bool:
    value = answer.request.payload.value
    return (
        isinstance(value, str)
        and "html" in answer.content_type.lower()
        and html.escape(value) != value
        and value in answer.text
    )


def reflection_problems(answers: Iterable[Answer]) -> list[str]:
    return [
        f"{answer.request.describe()}: the payload comes back unescaped in the HTML "
        f"(HTTP {answer.status})"
        for answer in answers
        if reflects_unescaped(answer)
    ]


def leak_problems(answers: Iterable[Answer]) -> list[str]:
    problems = []
    for answer in answers:
        for kind, pattern in ERROR_SIGNATURES:
            match = pattern.search(answer.text)
            if match:
                start = max(match.start() - 40, 0)
                context = " ".join(answer.text[start : match.end() + 80].split())
                problems.append(
                    f"{answer.request.describe()}: the HTTP {answer.status} body contains "
                    f"{kind}: ...{context}..."
                )
                break
    return problems


def summarize(problems: Sequence[str], total: int, what: str, limit: int = 40) -> str:
    """One failure message: how many of ``total`` requests broke ``what``, then each one."""
    shown = list(problems[:limit])
    more = len(problems) - len(shown)
    lines = [f"{len(problems)} of {total} hostile requests {what}:", *(f"  {p}" for p in shown)]
    if more:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)
