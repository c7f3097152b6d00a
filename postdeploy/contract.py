"""The one place that names the application's HTTP paths.

The suites ask for ``PATHS.health`` or ``PATHS.lesson(3)``, never a literal path, so
validating another application means editing this module and the suites' expectations,
not hunting for strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    health: str = "/api/health"
    metrics: str = "/metrics"
    openapi: str = "/openapi.json"
    register: str = "/api/auth/register"
    login: str = "/api/auth/login"
    logout: str = "/api/auth/logout"
    me: str = "/api/auth/me"
    csrf: str = "/api/csrf"
    content: str = "/api/learning/content"
    session: str = "/api/learning/session"
    progress: str = "/api/learning/progress"
    profile: str = "/api/learning/profile"
    account: str = "/api/users/me"
    page_home: str = "/"
    page_register: str = "/register"
    page_login: str = "/login"
    page_dashboard: str = "/dashboard"

    def lesson(self, content_id: int | str) -> str:
        return f"{self.content}/{content_id}"

    def page_lesson(self, content_id: int | str) -> str:
        return f"/lessons/{content_id}"


PATHS = Paths()

#: Name of the session cookie the application sets at login.
SESSION_COOKIE = "la_session"
#: Header that carries the CSRF token on cookie-authenticated writes.
CSRF_HEADER = "X-CSRF-Token"
#: Header the health endpoint uses to state its verdict.
HEALTH_HEADER = "X-Health-Status"
#: Request-id header the application honours and echoes.
REQUEST_ID_HEADER = "X-Request-ID"

LEARNING_STYLES = ("visual", "auditory", "reading", "kinesthetic")

#: Routes that must refuse anonymous callers: (method, path).
PROTECTED_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", PATHS.me),
    ("GET", PATHS.csrf),
    ("POST", PATHS.logout),
    ("POST", PATHS.session),
    ("GET", PATHS.progress),
    ("GET", PATHS.profile),
    ("PUT", PATHS.profile),
    ("DELETE", PATHS.account),
)
