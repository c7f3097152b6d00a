"""schemathesis against the target's OpenAPI document: bounded, reproducible, cleaned up.

Each operation gets at most ``examples`` positive and ``examples`` negative test cases,
generated with Hypothesis derandomized (the same document always yields the same requests)
and without its example database; every case goes through the harness's own HTTP client and
is judged by schemathesis' ``not_a_server_error`` and ``response_schema_conformance`` checks.

Safety: protected operations are called as one synthetic user; operations that end the
caller's session or account are called without credentials; positive registrations use the
address of that existing synthetic user, so they run through validation, hashing and the
insert and end as a duplicate instead of creating an account; any registration that still
succeeds is reported through ``on_account`` so the caller deletes the account afterwards.
Positive logins use a fresh address of the run for each case, as the hostile-input corpus's
do: the generated ones are the same in every run (derandomized), and the target limits logins
per address, so back-to-back runs - a gate and its rollback's verification - would wait for
that limit, then be refused by it.

Generation and sending are apart: :func:`generate` makes every case first, then each is sent.
The cases of a document are kept in ``cache_dir`` (``fuzz_cache``) and the next run of the
same document sends them again instead of generating them: the same requests, judged the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_body, redact_text
from postdeploy.security.fuzz_cache import Batch, CaseCache

if TYPE_CHECKING:
    import httpx

#: Upper bound of ``examples``: more than this is a load test, not a security check.
MAX_EXAMPLES = 20
NOT_A_SERVER_ERROR = "not_a_server_error"
REGISTRATION_STATUS = 201
BODY_QUOTE_CHARS = 200


class FuzzError(Exception):
    """The OpenAPI document cannot be used; the message says why."""


@dataclass(frozen=True)
class Operation:
    """What the fuzzer needs to know about one operation of the document."""

    method: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    duration_s: float = 0.0
    #: operation -> why it could not be fuzzed at all
    skipped: dict[str, str] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    nonconformant: list[str] = field(default_factory=list)
    #: the cases were those an earlier run generated for the same document (``fuzz_cache``)
    replayed: bool = False


@dataclass(frozen=True)
class FuzzPlan:
    """How each operation is called: as whom, and what is special about it."""

    auth_headers: dict[str, str]
    #: (method, path) of operations that need credentials
    protected: frozenset[tuple[str, str]]
    #: (method, path) of operations that end the caller's session or account
    destructive: frozenset[tuple[str, str]]
    #: (method, path) of the registration, and the field that holds the email
    registration: tuple[str, str] | None = None
    #: the address of an existing (synthetic) account, used by positive registrations
    existing_email: str = ""
    #: positive registrations sent at most (each spends one of the target's registrations per
    #: window, even as a duplicate); the others are generated and left out
    max_registrations: int = 3
    #: (method, path) of the login, and the address of its positive cases: a format string
    #: whose ``{}`` is the case's number, fresh for each run
    login: tuple[str, str] | None = None
    login_email: str = ""
    #: fixed values of cookie parameters (not sent; they only stop pointless variation)
    cookies: dict[str, str] = field(default_factory=dict)
    email_field: str = "email"
    password_field: str = "password"  # noqa: S105 - the name of a field, not a secret


def fuzz(
    client: httpx.Client,
    document: dict[str, Any],
    plan: FuzzPlan,
    *,
    examples: int,
    on_account: Callable[[str, str], None],
    cache_dir: Path | None = None,
) -> FuzzReport:
    """Run schemathesis against every operation of ``document`` through ``client``: the
    cases kept in ``cache_dir`` for this document if there are, else generated (and kept)."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import response_schema_conformance

    if not 1 <= examples <= MAX_EXAMPLES:
        raise FuzzError(f"examples must be between 1 and {MAX_EXAMPLES}, got {examples}")
    try:
        schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    except Exception as exc:
        raise FuzzError(f"the OpenAPI document cannot be loaded: {exc}") from None
    report = FuzzReport()
    started = time.monotonic()
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            error = result.err()
            report.skipped[str(getattr(error, "path", "") or error)[:80]] = str(error)[:200]
            continue
        operations.append(result.ok())
    report.operations = len(operations)
    cache = _case_cache(cache_dir, document, plan, examples) if cache_dir else None
    batches = cache.load(operations) if cache else None
    report.replayed = batches is not None
    if batches is None:
        batches = generate(operations, plan, examples)
        if cache:
            cache.store(batches)
    seen: set[tuple[str, str, str]] = set()
    checks = [not_a_server_error, response_schema_conformance]
    for batch in batches:
        sender = _Sender(client, plan, batch.key, batch.positive)
        run_case = _case_runner(sender, report, seen, checks, FailureGroup, on_account)
        for case in batch.cases:
            run_case(case)
        if batch.skipped:
            mode = "positive" if batch.positive else "negative"
            report.skipped[f"{Operation(*batch.key).label} ({mode})"] = batch.skipped
    report.duration_s = time.monotonic() - started
    return report


def _case_cache(
    directory: Path, document: dict[str, Any], plan: FuzzPlan, examples: int
) -> CaseCache:
    """Where the cases :func:`generate` makes of ``document`` are kept between runs."""
    generation = {
        "examples": examples,
        "protected": sorted(map(list, plan.protected)),
        "destructive": sorted(map(list, plan.destructive)),
        "fixed_headers": sorted(plan.auth_headers),
        "cookies": plan.cookies,
        "generator": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    return CaseCache.of(directory, document, generation, plan.auth_headers)


def generate(operations: Iterable[Any], plan: FuzzPlan, examples: int) -> list[Batch]:
    """The cases of each operation, positive and negative, as Hypothesis generates them
    (derandomized: the same operations always give the same cases). Nothing is sent."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import HypothesisException, Unsatisfiable
    from schemathesis import GenerationMode

    hypothesis_settings = settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    batches = []
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        authenticated = key in plan.protected and key not in plan.destructive
        headers = plan.auth_headers if authenticated else None
        # Negative cases of an operation without parameters could only break the credentials,
        # which are fixed here: Hypothesis would search in vain until it gives up.
        has_inputs = any((operation.body, operation.query, operation.path_parameters))
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if has_inputs
            else (GenerationMode.POSITIVE,)
        )
        for mode in modes:
            batch = Batch(operation, mode == GenerationMode.POSITIVE)
            batches.append(batch)
            # Fixed cookies: the session cookie is never sent (credentials are the header's
            # job), so varying it would only repeat the same request.
            strategy = operation.as_strategy(mode, headers=headers, cookies=plan.cookies)
            try:
                hypothesis_settings(given(case=strategy)(_keeper(batch.cases)))()
            except Unsatisfiable:
                pass  # nothing to negate (an operation without parameters or body)
            except HypothesisException as exc:
                batch.skipped = str(exc)[:200]
    return batches


def _keeper(cases: list[Any]) -> Callable[[Any], None]:
    """The body of one Hypothesis test: keep the case (it is sent later)."""

    def keep(case: Any) -> None:
        cases.append(case)

    return keep


@dataclass(frozen=True)
class _Sender:
    client: httpx.Client
    plan: FuzzPlan
    key: tuple[str, str]
    positive: bool
    #: positive registrations sent so far (bounded by ``plan.max_registrations``)
    registrations: list[int] = field(default_factory=lambda: [0])
    #: positive logins sent so far (each with its own address)
    logins: list[int] = field(default_factory=lambda: [0])


def _case_runner(
    sender: _Sender,
    report: FuzzReport,
    seen: set[tuple[str, str, str]],
    checks: list[Any],
    failure_group: type[BaseException],
    on_account: Callable[[str, str], None],
) -> Callable[[Any], None]:
    """The body of one Hypothesis test: send the case, run the checks, record failures."""

    def run_case(case: Any) -> None:
        response = _send(sender, case, on_account)
        if response is None:
            return
        report.cases += 1
        try:
            case.validate_response(response, checks=checks)
        except failure_group as group:
            for failure in getattr(group, "exceptions", ()):
                _record(report, seen, sender.key, case, response, failure)

    return run_case


def _send(
    sender: _Sender, case: Any, on_account: Callable[[str, str], None]
) -> httpx.Response | None:
    """Send one case through the harness' client; None when the client cannot send it."""
    import httpx

    client, plan, key = sender.client, sender.plan, sender.key
    registering = key == plan.registration
    body = case.body
    if registering and sender.positive and isinstance(body, dict) and plan.existing_email:
        if sender.registrations[0] >= plan.max_registrations:
            return None  # the traffic budget's share of the fuzz checks is spent
        sender.registrations[0] += 1
        body = {**body, plan.email_field: plan.existing_email}
        case.body = body
    elif key == plan.login and sender.positive and isinstance(body, dict) and plan.login_email:
        sender.logins[0] += 1
        body = {**body, plan.email_field: plan.login_email.format(sender.logins[0])}
        case.body = body
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"))
    headers = {
        name: value
        for name, value in (kwargs.get("headers") or {}).items()
        if name.lower() not in ("cookie", "host", "content-length")
    }
    content = kwargs.get("data")
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
    if isinstance(content, str):
        content = content.encode()
    try:
        response = client.request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params") or None,
            headers=headers,
            content=content if isinstance(content, bytes) else None,
            cookies=None,
        )
    except (httpx.LocalProtocolError, httpx.InvalidURL, ValueError, TypeError):
        return None  # values no HTTP client could send (e.g. control characters in a header)
    if registering and response.status_code == REGISTRATION_STATUS and isinstance(body, dict):
        email, password = body.get(plan.email_field), body.get(plan.password_field)
        if isinstance(email, str) and isinstance(password, str):
            on_account(email, password)
    return response


def _record(
    report: FuzzReport,
    seen: set[tuple[str, str, str]],
    key: tuple[str, str],
    case: Any,
    response: httpx.Response,
    failure: Any,
) -> None:
    name = getattr(failure, "title", type(failure).__name__)
    marker = (*key, name)
    if marker in seen:
        return
    seen.add(marker)
    sent = _describe_request(case)
    body = " ".join(response.text.split())[:BODY_QUOTE_CHARS]
    message = redact_text(str(getattr(failure, "message", "") or "").strip())
    line = (
        f"{Operation(*key).label}: {name}: {message} "
        f"(answered HTTP {response.status_code}: {body}; request: {sent})"
    )
    if type(failure).__name__ == "ServerError" or NOT_A_SERVER_ERROR in repr(failure):
        report.server_errors.append(line)
    else:
        report.nonconformant.append(line)


def _describe_request(case: Any) -> str:
    parts = [case.formatted_path]
    if case.query:
        parts.append(f"query {redact_text(json.dumps(case.query, default=str))}")
    if case.body is not None and not isinstance(case.body, bytes):
        text = json.dumps(case.body, default=str)
        parts.append(f"body {redact_body(text, 'application/json')[:BODY_QUOTE_CHARS]}")
    return " ".join(parts)


def no_cases(report: FuzzReport) -> str:
    """Why a run that sent no case proves nothing ("no data" is never a pass); empty when
    cases were sent."""
    if report.cases:
        return ""
    skipped = "; ".join(f"{op}: {why}" for op, why in report.skipped.items())
    why = f" (not fuzzed: {skipped})" if skipped else ""
    return (
        f"no data: schemathesis sent no test case over {report.operations} operation(s) of "
        f"the OpenAPI document, so nothing was judged{why}"
        "; check the OpenAPI document the target serves and security.fuzz_examples"
    )


def summarize(lines: Iterable[str], report: FuzzReport, what: str) -> str:
    shown = list(lines)
    return "\n".join(
        [
            f"schemathesis: {len(shown)} problem(s) ({what}) in {report.cases} cases over "
            f"{report.operations} operations:",
            *(f"  {line}" for line in shown),
        ]
    )
