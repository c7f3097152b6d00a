"""Error tracking: is the deployment's error reaching Sentry? Asked through Sentry's web API.

The check triggers one synthetic error on the target (the app's test-only error route, see
``PATHS.error_trigger``), tagged with the run id and a check id, then looks for an event with
that tag through the documented endpoint "List a Project's Error Events"
(``GET /api/0/projects/{org}/{project}/events/``, newest first, cursor pagination in the
``Link`` header). That endpoint takes no tag query, so the events of a short recent window are
read page by page and matched on their ``tags``.

With no ``monitoring.sentry_api_url``, the API is the one the target's platform runs beside
the deployment, as its driver reports it (``services().sentry()``): for the local platform, the
local Sentry stand-in it starts with each deployment (``postdeploy.local.sentry_standin``).
When Sentry's API itself fails (unreachable, a timeout, a refused token, a 5xx, an answer that
is not a list of events) or the settings are incomplete, :class:`ErrorTrackingError` names
Sentry, the URL and the request - never the token; it is a
:class:`~postdeploy.gate.BackendError`, so the check is *broken*, never failed. Only "the event
never arrived" (:class:`ErrorNotTracked`, an assertion) fails the check: that is the target's.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy.gate import (
    MISCONFIGURED,
    TIMEOUT,
    UNPARSEABLE,
    BackendError,
    http_failure,
    transport_failure,
)

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.rollback.base import PlatformServices

#: Pages of events read per attempt (100 events a page on sentry.io).
MAX_PAGES = 5
POLL_INTERVAL_S = 0.5
#: Margin added to the events window, for clock skew between the harness and Sentry.
WINDOW_MARGIN_S = 120
QUOTE_CHARS = 300
#: The system named when Sentry's API fails (the verdict's ``backend``).
SYSTEM = "Sentry API"


class ErrorTrackingError(BackendError):
    """Sentry's API could not be asked (``how``: unreachable, timeout, refused, server error,
    unparseable, misconfigured); the message says where and why. The check is broken."""

    def __init__(self, message: str, how: str) -> None:
        super().__init__(message, system=SYSTEM, how=how)


class ErrorNotTracked(AssertionError):
    """Sentry answered, and the deployment's error is not there: the check fails."""


@dataclass(frozen=True)
class SentryProject:
    """Where to ask: a Sentry web API, an organization and a project, and a token."""

    api_url: str
    org: str
    project: str
    token: str = field(repr=False)
    #: how the token was found, for messages: "$SENTRY_AUTH_TOKEN" or "the local stand-in"
    token_source: str = ""
    standin: bool = False

    @property
    def events_path(self) -> str:
        return f"/api/0/projects/{self.org}/{self.project}/events/"

    def describe(self) -> str:
        kind = "the local Sentry stand-in" if self.standin else "Sentry"
        return f"{kind} at {self.api_url} (project {self.org}/{self.project})"


def sentry_project(target: Target) -> SentryProject | None:
    """The Sentry project of ``target``; None when the target configures none."""
    settings = target.monitoring
    env_name = settings.sentry_token_env
    token = os.environ.get(env_name, "") if env_name else ""
    if settings.sentry_api_url:
        if not (settings.sentry_org and settings.sentry_project):
            raise ErrorTrackingError(
                f"target {target.name!r}: monitoring.sentry_api_url is set but sentry_org "
                "and sentry_project are not; set both in targets.toml",
                MISCONFIGURED,
            )
        if not token:
            raise ErrorTrackingError(
                f"target {target.name!r}: no Sentry token: set ${env_name or 'SENTRY_AUTH_TOKEN'}"
                " (monitoring.sentry_token_env) to a token with the project:read scope",
                MISCONFIGURED,
            )
        return SentryProject(
            settings.sentry_api_url.rstrip("/"),
            settings.sentry_org,
            settings.sentry_project,
            token,
            f"${env_name}",
        )
    services = _platform_services(target)
    if services is None:
        return None
    from postdeploy.rollback import DriverError

    try:
        endpoint = services.sentry()
    except DriverError as exc:
        raise ErrorTrackingError(f"target {target.name!r}: {exc}", MISCONFIGURED) from None
    if endpoint is None:
        return None
    return SentryProject(
        endpoint.api_url,
        settings.sentry_org or endpoint.org,
        settings.sentry_project or endpoint.project,
        token or endpoint.token,
        f"${env_name}" if token else endpoint.token_source,
        standin=endpoint.standin,
    )


def trigger_token(target: Target) -> str | None:
    """The secret of the app's test-only error route, from the environment (or the platform)."""
    env_name = target.monitoring.error_trigger_token_env
    token = os.environ.get(env_name) if env_name else None
    if token:
        return token
    services = _platform_services(target)
    return services.error_trigger_token() if services else token


def _platform_services(target: Target) -> PlatformServices | None:
    """The monitoring services the target's platform runs beside it (its driver says)."""
    from postdeploy.rollback import lifecycle_of

    return lifecycle_of(target).services()


class SentryAPI:
    """The one Sentry web API endpoint the check needs, with bounded timeouts."""

    def __init__(self, project: SentryProject, timeout_s: float) -> None:
        self.project = project
        self._client = httpx.Client(
            base_url=project.api_url,
            timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {project.token}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def _get(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        where = f"{self.project.describe()}: GET {self.project.events_path}"
        try:
            response = self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise ErrorTrackingError(
                f"{where} did not answer within {self._client.timeout.read} s "
                "(monitoring.query_timeout_s)",
                TIMEOUT,
            ) from None
        except httpx.TransportError as exc:
            raise ErrorTrackingError(
                f"{where}: Sentry is unreachable ({type(exc).__name__}: {exc}); check "
                "monitoring.sentry_api_url",
                transport_failure(exc),
            ) from None
        if response.status_code in (401, 403):
            raise ErrorTrackingError(
                f"{where} refused the token from {self.project.token_source} "
                f"(HTTP {response.status_code}: {_detail(response)}); use a valid token "
                "with the project:read scope",
                http_failure(response.status_code),
            )
        if response.status_code == 404:
            raise ErrorTrackingError(
                f"{where} answered 404: no project {self.project.org}/{self.project.project}; "
                "check monitoring.sentry_org and monitoring.sentry_project",
                MISCONFIGURED,
            )
        if response.status_code != 200:
            raise ErrorTrackingError(
                f"{where} answered HTTP {response.status_code}: {_detail(response)}",
                http_failure(response.status_code),
            )
        return response

    def events(self, window_s: float) -> Iterator[dict[str, Any]]:
        """Error events of the last ``window_s`` seconds, newest first (at most MAX_PAGES)."""
        period = f"{max(1, math.ceil(window_s / 60))}m"
        url: str = self.project.events_path
        params: dict[str, str] | None = {"statsPeriod": period}
        for _ in range(MAX_PAGES):
            response = self._get(url, params)
            try:
                page = response.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise ErrorTrackingError(
                    f"{self.project.describe()}: GET {self.project.events_path} did not answer "
                    f"a JSON list of events: {response.text[:QUOTE_CHARS]}",
                    UNPARSEABLE,
                )
            yield from (event for event in page if isinstance(event, dict))
            following = response.links.get("next", {})
            if following.get("results") != "true" or not following.get("url"):
                return
            url, params = following["url"], None

    def find_tagged(self, key: str, value: str, window_s: float) -> dict[str, Any] | None:
        for event in self.events(window_s):
            if any(t.get("key") == key and t.get("value") == value for t in _tags(event)):
                return event
        return None


def _tags(event: dict[str, Any]) -> list[dict[str, Any]]:
    tags = event.get("tags") or []
    return [t for t in tags if isinstance(t, dict)]


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:QUOTE_CHARS]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:QUOTE_CHARS]
    return str(body)[:QUOTE_CHARS]


def wait_for_event(
    api: SentryAPI, key: str, value: str, timeout_s: float, started: float
) -> dict[str, Any]:
    """The event tagged ``key=value``, polled until ``timeout_s``; a failure if it never came.

    ``started`` is the ``time.time()`` at which the error was triggered.
    """
    deadline = time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        window = time.time() - started + WINDOW_MARGIN_S
        found = api.find_tagged(key, value, window)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    raise ErrorNotTracked(
        f"no event tagged {key}={value} arrived in {api.project.describe()} within "
        f"{timeout_s:g} s ({attempts} reads of GET {api.project.events_path}): the deployment's "
        "error tracking is off or not reporting (is a DSN configured and used?)"
    )
