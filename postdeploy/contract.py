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
    #: where the login flow sends a user back to the page they wanted (``?next=/path``)
    page_continue: str = "/continue"
    #: test-only route raising an unhandled error (guarded by ERROR_TRIGGER_HEADER)
    error_trigger: str = "/api/_test/error"

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
#: Header carrying the secret token of the test-only error route.
ERROR_TRIGGER_HEADER = "X-Postdeploy-Token"
#: Query parameter of PATHS.login asking for a token of N seconds (1-60), honoured only with
#: the test-only token in ERROR_TRIGGER_HEADER: the expired-token check's short lifetime.
SHORT_TTL_PARAM = "ttl_s"
#: Sentry tags the test-only error route puts on the error it raises.
ERROR_RUN_ID_TAG = "postdeploy_run_id"
ERROR_CHECK_ID_TAG = "postdeploy_check_id"

#: Prometheus metrics the application exposes at PATHS.metrics, and their route label.
METRIC_REQUESTS = "la_http_requests_total"
METRIC_LATENCY = "la_http_request_duration_seconds"
METRIC_APP_INFO = "la_app_info"
METRIC_ROUTE_LABEL = "route"
#: Header marking the harness's own synthetic requests, and the metric label (value "true")
#: under which the app counts them apart from everyone else's (platform health checkers).
SYNTHETIC_HEADER = "X-Postdeploy-Synthetic"
METRIC_SYNTHETIC_LABEL = "synthetic"
METRIC_SYNTHETIC_VALUE = "true"

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

# -- security suite ------------------------------------------------------------------------

#: HTML pages a browser loads (graded, and probed for reflected input); lesson 1 always exists.
PAGES: tuple[str, ...] = (
    PATHS.page_home,
    PATHS.page_register,
    PATHS.page_login,
    PATHS.page_dashboard,
    PATHS.page_lesson(1),
)
#: Query parameters sent with hostile values to every page: names pages commonly echo back.
REFLECTION_PARAMS = ("next", "q", "error")
#: Parameters an attacker adds to name another user's records; they must change nothing.
OWNER_PARAMS = ("user_id",)
#: Protected routes that end the caller's session or account (called last, or without
#: credentials, by checks that must not end their own session).
SESSION_ENDING_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", PATHS.logout),
    ("DELETE", PATHS.account),
)


@dataclass(frozen=True)
class JsonInput:
    """A JSON body the API accepts, with a valid example whose fields get hostile values.

    When it does not carry the payload, ``email_field`` gets a fresh synthetic address, or,
    where the input ``creates_account``, the address of an existing synthetic account: the
    request then runs through validation, hashing and the insert, and ends as a duplicate
    (409) instead of leaving an account behind.
    """

    method: str
    path: str
    example: tuple[tuple[str, object], ...]
    authenticated: bool = False
    email_field: str | None = None
    creates_account: bool = False


JSON_INPUTS: tuple[JsonInput, ...] = (
    JsonInput(
        "POST",
        PATHS.register,
        (("email", ""), ("password", "correct-horse-battery"), ("name", "Synthetic Learner")),
        email_field="email",
        creates_account=True,
    ),
    JsonInput(
        "POST", PATHS.login, (("email", ""), ("password", "not-the-password")), email_field="email"
    ),
    JsonInput(
        "POST",
        PATHS.session,
        (("content_id", 1), ("duration_s", 60), ("score", 80)),
        authenticated=True,
    ),
    JsonInput(
        "PUT",
        PATHS.profile,
        (("learning_style", "visual"), ("preferences", {})),
        authenticated=True,
    ),
)
#: Paths with a parameter, as templates for ``str.format`` (the parameter gets the payload).
PATH_INPUTS: tuple[str, ...] = (PATHS.lesson("{}"), PATHS.page_lesson("{}"))

# -- security suite: what a deploy gets wrong ----------------------------------------------

#: Routes that redirect to a destination named in the query, and the names such a parameter
#: has in real apps: every route is probed with every name.
REDIRECT_ROUTES: tuple[str, ...] = (PATHS.page_continue, PATHS.page_login)
REDIRECT_PARAMS: tuple[str, ...] = ("next", "return_to", "redirect", "url")
#: Answers that carry the calling user's data (never storable by a shared cache).
USER_DATA_PATHS: tuple[str, ...] = (PATHS.me, PATHS.progress, PATHS.profile)
#: Files the deployment serves on purpose (their backups must not be served) and the server
#: side's entry points (never served at all, nor their backups).
ENTRY_POINTS: tuple[str, ...] = ("/static/app.js", "/static/app.css", "/app.py", "/main.py")
#: Folders static files are served from (never listed).
STATIC_FOLDERS: tuple[str, ...] = ("/static/",)
#: Interactive API consoles frameworks serve when they are left on.
API_CONSOLES: tuple[str, ...] = ("/docs", "/redoc", "/swagger-ui.html", "/api/docs", "/graphql")
#: API routes and the methods each implements (HEAD comes with GET).
API_METHODS: tuple[tuple[str, frozenset[str]], ...] = (
    (PATHS.health, frozenset({"GET", "HEAD"})),
    (PATHS.content, frozenset({"GET", "HEAD"})),
    (PATHS.lesson(1), frozenset({"GET", "HEAD"})),
    (PATHS.login, frozenset({"POST"})),
    (PATHS.me, frozenset({"GET", "HEAD"})),
    (PATHS.progress, frozenset({"GET", "HEAD"})),
    (PATHS.profile, frozenset({"GET", "HEAD", "PUT"})),
    (PATHS.account, frozenset({"DELETE"})),
)
#: GETs that commonly reach a handler's error path (an id past 64 bits, a NUL, bad UTF-8).
ERROR_PROVOKING_PATHS: tuple[str, ...] = (
    PATHS.lesson("99999999999999999999999"),
    PATHS.lesson("%00"),
    PATHS.lesson("%ff%fe"),
    PATHS.page_lesson("99999999999999999999999"),
)

# -- performance suite and browser journeys ------------------------------------------------

#: Where the static files are served from (compression, caching, page weight).
STATIC_PREFIX = "/static/"
#: Key pages judged for web vitals and page weight: name -> path (lesson 1 always exists).
KEY_PAGES: dict[str, str] = {
    "landing": PATHS.page_home,
    "login": PATHS.page_login,
    "dashboard": PATHS.page_dashboard,
    "lesson": PATHS.page_lesson(1),
}
#: Key pages that show their real content only to a logged-in user.
PAGES_NEEDING_LOGIN = frozenset({"dashboard"})


@dataclass(frozen=True)
class Selectors:
    """The page elements browser journeys and web-vitals interactions use (CSS selectors)."""

    register_form: str = "#register-form"
    register_submit: str = "#register-submit"
    login_form: str = "#login-form"
    login_submit: str = "#login-submit"
    form_error: str = "#form-error"
    name_input: str = 'input[name="name"]'
    email_input: str = 'input[name="email"]'
    password_input: str = 'input[name="password"]'  # noqa: S105 - a CSS selector
    welcome: str = "#welcome"
    progress_completed: str = "#progress-completed"
    progress_sessions: str = "#progress-sessions"
    progress_time: str = "#progress-time"
    progress_score: str = "#progress-score"
    logout_button: str = "#logout-button"
    lesson_links: str = 'main a[href^="/lessons/"]'
    lesson_title: str = "#lesson-title"
    lesson_body: str = "#lesson-body"
    score: str = "#score"
    complete_lesson: str = "#complete-lesson"
    lesson_status: str = "#lesson-status"
    back_to_dashboard: str = "#back-to-dashboard"
    hero: str = "#hero"


UI = Selectors()
#: What a web-vitals run clicks on each key page: a real interaction, measured for INP.
VITALS_INTERACTIONS: dict[str, str] = {
    "landing": UI.hero,
    "login": UI.email_input,
    "dashboard": UI.progress_completed,
    "lesson": UI.score,
}
#: What the lesson page shows once the learning session is stored.
LESSON_COMPLETED_TEXT = "Lesson completed"


@dataclass(frozen=True)
class KeyEndpoint:
    """A key endpoint as a user meets it: what to send and the status a healthy app answers."""

    name: str
    method: str
    path: str
    status: int = 200
    login: bool = False
    body: tuple[tuple[str, object], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


#: The key endpoints and pages as a user meets them: the response-time SLO checks and the canary
#: judge both measure these. Login is left out: it is rate limited per account (10 a minute),
#: so the load test measures it instead.
KEY_ENDPOINTS: tuple[KeyEndpoint, ...] = (
    KeyEndpoint("health", "GET", PATHS.health),
    KeyEndpoint("lessons", "GET", PATHS.content),
    KeyEndpoint("lesson", "GET", PATHS.lesson(1)),
    KeyEndpoint("me", "GET", PATHS.me, login=True),
    KeyEndpoint("progress", "GET", PATHS.progress, login=True),
    KeyEndpoint("profile", "GET", PATHS.profile, login=True),
    KeyEndpoint(
        "record-session",
        "POST",
        PATHS.session,
        status=201,
        login=True,
        body=(("content_id", 1), ("duration_s", 60), ("score", 80)),
    ),
    KeyEndpoint("landing-page", "GET", PATHS.page_home),
    KeyEndpoint("login-page", "GET", PATHS.page_login),
    KeyEndpoint("dashboard-page", "GET", PATHS.page_dashboard),
    KeyEndpoint("lesson-page", "GET", PATHS.page_lesson(1)),
)
