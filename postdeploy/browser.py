"""Chromium for the browser journeys and web vitals, driven by Playwright's sync API.

* **Which browser.** Playwright's own Chromium where it is installed
  (``python -m playwright install chromium``), else the system one: ``POSTDEPLOY_CHROMIUM``
  if set, else Chromium's headless shell (``/usr/bin/chromium-headless-shell``, Debian package
  ``chromium-headless-shell``), else the full Chromium (``/usr/bin/chromium``, package
  ``chromium``). The headless shell comes first because it is what Playwright itself runs
  for a headless launch since 1.49 (its ``chromium-headless-shell`` build); the full
  Chromium runs Chrome's "new" headless mode, the whole browser without a window, which costs
  more CPU. With none, every test that needs a browser fails with one message saying how to
  install one — never a silent skip. That failure is the harness's, not the product's: the
  test is *broken* and the gate inconclusive, never a rollback.
* **How it runs.** Headless, ``--no-sandbox`` (the harness often runs as root in CI) and
  background networking off, so Chromium talks to nothing but the target.
* **Trusting a private CA.** For a target with its own CA (the local platform), the harness
  fetches the server certificate, verifies it against that CA in Python, and starts Chromium
  with ``--ignore-certificate-errors-spki-list`` set to that certificate's public-key hash:
  the browser accepts exactly that key, still checks the host name, and trusts nothing
  else. Public targets use Chromium's normal verification.
* **Evidence.** Every test records a Playwright trace; when it fails, a screenshot and the
  trace (credentials redacted) are attached to the Allure report.

pytest-playwright is not used: its ``--base-url`` option collides with postdeploy's. The
fixtures here follow its shape (``browser`` -> ``browser_context_args`` -> ``context`` ->
``page``); the plugin registers them for every suite.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from postdeploy import paths
from postdeploy.gate import MISCONFIGURED, SETUP_FAILED, BackendError
from postdeploy.http import RATE_LIMITED_STATUS
from postdeploy.redact import REDACTED, SECRET_HEADERS, redact_data, redact_text

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator, Sequence

    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

    from postdeploy.config import Target

CHROMIUM_ENV = "POSTDEPLOY_CHROMIUM"
#: The system Chromiums, in the order they are preferred.
SYSTEM_CHROMIUMS = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
#: Headless Chromium that talks to nothing but the target.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
)
SPKI_FLAG = "--ignore-certificate-errors-spki-list"
NODE_COMPILE_CACHE_ENV = "NODE_COMPILE_CACHE"
NODE_COMPILE_CACHE_DIR = "node-compile-cache"
VIEWPORT = {"width": 1280, "height": 720}
#: Timeout of each browser action and navigation.
ACTION_TIMEOUT_MS = 15_000
CERT_FETCH_TIMEOUT_S = 5.0
INSTALL_HINT = (
    "no browser for the journeys and web vitals: Playwright's Chromium is not installed "
    "(install it with `python -m playwright install chromium`) and there is no system Chromium "
    "at {system} (install it with `apt-get install chromium-headless-shell` or `apt-get install "
    "chromium`, or set POSTDEPLOY_CHROMIUM to its path)"
)
PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


#: The system named when the browser fails (the verdict's ``backend``).
SYSTEM = "browser"


class BrowserUnavailable(BackendError):
    """No usable Chromium, or it would not start: the message says how to install one. The
    harness's side: the checks that need it are broken, never failed."""

    def __init__(self, message: str, how: str = MISCONFIGURED) -> None:
        super().__init__(message, system=SYSTEM, how=how)


@dataclass(frozen=True)
class BrowserChoice:
    """The Chromium to launch: ``executable`` None means Playwright's own."""

    executable: str | None
    source: str

    def describe(self) -> str:
        return f"{self.source} Chromium" + (f" ({self.executable})" if self.executable else "")


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def system_chromium() -> str:
    """POSTDEPLOY_CHROMIUM if set, else the first system Chromium installed (or, with none,
    the last: the one the install hint names)."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return named
    return next((path for path in SYSTEM_CHROMIUMS if _executable(path)), SYSTEM_CHROMIUMS[-1])


def choose_browser(playwright: Playwright) -> BrowserChoice:
    """Playwright's own Chromium where installed, else the system one; else fail clearly."""
    with contextlib.suppress(Exception):
        if Path(playwright.chromium.executable_path).exists():
            return BrowserChoice(None, "Playwright's")
    system = system_chromium()
    if _executable(system):
        return BrowserChoice(system, "system")
    shown = system if os.environ.get(CHROMIUM_ENV) else " or ".join(SYSTEM_CHROMIUMS)
    raise BrowserUnavailable(INSTALL_HINT.format(system=shown))


def certificate_pin(target: Target) -> str | None:
    """Base64 SHA-256 of the target's public key, verified against its CA file first."""
    if not target.ca_file or not target.url.startswith("https://"):
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    parts = urlsplit(target.url)
    host = parts.hostname or ""
    context = ssl.create_default_context(cafile=target.ca_file)
    with (
        socket.create_connection((host, parts.port or 443), timeout=CERT_FETCH_TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:  # pragma: no cover - a verified handshake always has a certificate
        raise ssl.SSLError(f"{target.url} presented no certificate")
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def launch_args(target: Target, also: Sequence[Target] = ()) -> list[str]:
    """Chromium's arguments; the certificates of ``target`` (and of ``also``: e.g. the canary
    judge's baseline with a CA of its own) pinned where they come from a private CA."""
    args = list(LAUNCH_ARGS)
    pins = [pin for pin in (certificate_pin(t) for t in (target, *also)) if pin]
    if pins:
        args.append(f"{SPKI_FLAG}={','.join(dict.fromkeys(pins))}")
    return args


def launch(playwright: Playwright, target: Target, also: Sequence[Target] = ()) -> Browser:
    choice = choose_browser(playwright)
    options: dict[str, Any] = {"headless": True, "args": launch_args(target, also)}
    if choice.executable:
        options["executable_path"] = choice.executable
    from playwright.sync_api import Error as PlaywrightError

    try:
        return playwright.chromium.launch(**options)
    except PlaywrightError as exc:
        raise BrowserUnavailable(
            f"{choice.describe()} did not start: {str(exc).splitlines()[0] if str(exc) else exc}"
            f"; {INSTALL_HINT.format(system=system_chromium())}",
            SETUP_FAILED,
        ) from None


# -- redaction of traces --------------------------------------------------------------------


def _redact_header_objects(data: Any) -> Any:
    """``{"name": "Cookie", "value": ...}`` pairs (how traces store headers) lose the value."""
    if isinstance(data, dict):
        name = data.get("name")
        if isinstance(name, str) and name.lower() in SECRET_HEADERS and "value" in data:
            return {**data, "value": REDACTED}
        return {key: _redact_header_objects(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact_header_objects(value) for value in data]
    return data


def _redact_member(text: str, secrets: Iterable[str]) -> str:
    text = redact_text(text, secrets)
    lines = text.splitlines()
    try:
        decoded = [json.loads(line) for line in lines if line.strip()]
    except ValueError:
        return text
    return "\n".join(
        json.dumps(redact_data(_redact_header_objects(item)), ensure_ascii=False)
        for item in decoded
    )


def redact_trace(path: Path, secrets: Iterable[str] = ()) -> None:
    """Rewrite a Playwright trace zip with credentials removed from every text member."""
    secrets = [s for s in secrets if s]
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".zip", delete=False) as tmp:
        clean = Path(tmp.name)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(clean, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            data = source.read(member)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                out.writestr(member, data)
                continue
            out.writestr(member, _redact_member(text, secrets))
    clean.replace(path)


# -- fixtures -------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def failed(node: pytest.Item) -> bool:
    reports = node.stash.get(PHASE_REPORTS, {})
    return any(report.failed for report in reports.values())


@contextlib.contextmanager
def _node_compile_cache() -> Iterator[None]:
    """While the driver starts: Node.js keeps the code it compiles in the user's cache
    (``NODE_COMPILE_CACHE``, unless set already: :func:`postdeploy.paths.user_cache_dir`), so
    later runs start it quicker (0.29 s to 0.23 s alone here). Node creates the folder, and
    runs without the cache if it cannot."""
    if os.environ.get(NODE_COMPILE_CACHE_ENV):
        yield
        return
    os.environ[NODE_COMPILE_CACHE_ENV] = str(paths.user_cache_dir() / NODE_COMPILE_CACHE_DIR)
    try:
        yield
    finally:
        os.environ.pop(NODE_COMPILE_CACHE_ENV, None)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver (a Node.js process); the sync API, no event loop in pytest."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    try:
        with _node_compile_cache():
            manager = sync_playwright().start()
    except (PlaywrightError, OSError) as exc:
        raise BrowserUnavailable(
            f"Playwright's driver did not start: {type(exc).__name__}: {exc}", SETUP_FAILED
        ) from None
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright, target: Target) -> Iterator[Browser]:
    """Headless Chromium for one target (its certificate pinned when it has a private CA)."""
    chromium = launch(playwright_driver, target)
    yield chromium
    chromium.close()


@pytest.fixture
def browser_context_args(target: Target) -> dict[str, Any]:
    """Options of each test's browser context; override this fixture to change them."""
    return {
        "base_url": target.url,
        "viewport": dict(VIEWPORT),
        "service_workers": "block",
        "locale": "en-US",
    }


@pytest.fixture
def browser_secrets() -> list[str]:
    """Values a test typed into the browser (passwords); redacted from its trace."""
    return []


#: id(context) -> the requests its pages sent that the target answered 429.
_RATE_LIMITED: dict[int, list[str]] = {}


@pytest.fixture
def context(
    request: pytest.FixtureRequest,
    browser: Browser,
    browser_context_args: dict[str, Any],
    browser_secrets: list[str],
    tmp_path: Path,
) -> Iterator[BrowserContext]:
    """A fresh browser context (cold cache, no cookies), traced; evidence kept on failure."""
    ctx = browser.new_context(**browser_context_args)
    ctx.set_default_timeout(ACTION_TIMEOUT_MS)
    limited: list[str] = []
    _RATE_LIMITED[id(ctx)] = limited
    ctx.on(
        "response",
        lambda response: (
            limited.append(f"{response.request.method} {urlsplit(response.url).path}")
            if response.status == RATE_LIMITED_STATUS
            else None
        ),
    )
    ctx.tracing.start(screenshots=True, snapshots=True)
    yield ctx
    if failed(request.node):
        attach_evidence(ctx, tmp_path / "trace.zip", browser_secrets)
    else:
        ctx.tracing.stop()
    ctx.close()
    _RATE_LIMITED.pop(id(ctx), None)


def rate_limited(ctx: BrowserContext) -> list[str]:
    """The requests of ``ctx``'s pages the target answered 429 ("METHOD /path")."""
    return list(_RATE_LIMITED.get(id(ctx), ()))


def check_rate_limit(ctx: BrowserContext, what: str) -> None:
    """Raise :class:`~postdeploy.http.TargetRateLimited` (broken, never failed) when a page
    of ``ctx`` met the target's rate limit: a journey step that then did not get where it
    should says nothing about the release."""
    from postdeploy.http import TargetRateLimited

    limited = rate_limited(ctx)
    if limited:
        raise TargetRateLimited(
            f"{what}: the target rate-limited the harness ({', '.join(limited)} answered "
            "HTTP 429): the browser's traffic exceeded the target's limits; the journey was "
            "not judged"
        )


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def attach_evidence(ctx: BrowserContext, trace: Path, secrets: list[str]) -> None:
    """Attach a screenshot of each open page and the redacted trace to the Allure report."""
    from postdeploy.reporting.attachments import attach_file, attach_image

    for index, open_page in enumerate(ctx.pages):
        with contextlib.suppress(Exception):
            attach_image(
                f"screenshot {index + 1}: {open_page.url}", open_page.screenshot(full_page=True)
            )
    ctx.tracing.stop(path=str(trace))
    redact_trace(trace, secrets)
    attach_file(trace, "Playwright trace (open with: python -m playwright show-trace trace.zip)")
