"""targets.toml + environment overrides -> :class:`Target` objects.

Loading is strict: an unknown key, a missing required key, a value of the wrong type, a bad
URL or an unknown target name raises :class:`ConfigError` with one sentence naming the file,
the key and the valid choices. The plugin turns it into a usage error before any test runs.

Secrets never live in the file; keys ending in ``_env`` name the environment variable that
holds them and :meth:`Target.secret` reads it at the moment it is needed.

Every value can be overridden from the environment:
``POSTDEPLOY_<TARGET>_<KEY>`` for a top-level key (``POSTDEPLOY_FLY_URL``) and
``POSTDEPLOY_<TARGET>_<SECTION>_<KEY>`` for a key in a section
(``POSTDEPLOY_LOCAL_THRESHOLDS_RESPONSE_TIME_MS``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TARGETS_FILE = "targets.toml"
ENV_PREFIX = "POSTDEPLOY_"
ALL_TARGETS = "all"
#: Shapes of the local platform (postdeploy.local.shapes).
LOCAL_SHAPES = ("single", "production")


class ConfigError(Exception):
    """targets.toml or an override is invalid; the message says where and how to fix it."""


_REQUIRED: Any = object()

#: ``*_env`` keys whose environment variable holds no secret (a path, a profile name).
NOT_SECRET_ENV_KEYS = frozenset({"state_dir_env", "profile_env"})


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default (or required) and a one-line help."""

    type: type | tuple[type, ...]
    default: Any = _REQUIRED
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


#: Keys every target may set at its top level.
TARGET_KEYS: dict[str, Key] = {
    "platform": Key(str, help="where it runs: one of PLATFORM_KEYS"),
    "url": Key(str, help="base URL of the deployment, http(s)://host[:port]"),
    "description": Key(str, "", help="free text shown in reports"),
    "timeout_s": Key((int, float), 10.0, help="timeout of every HTTP request to the target"),
    "connect_timeout_s": Key((int, float), 3.0, help="timeout to open a connection"),
    "concurrency": Key(
        (int, float),
        4,
        help="requests in flight at once where checks send many independent ones (the "
        "hostile-input corpus, the response-time samples of different endpoints, the "
        "per-instance probes of the read-only checks); the load test and the web vitals "
        "always run alone",
    ),
    "ca_file": Key(str, "", help="PEM bundle to trust instead of the system store"),
    "http_url": Key(str, "", help="plain-HTTP URL expected to redirect to url"),
    "rollout_timeout_s": Key(
        (int, float), 300.0, help="with --expect-version, how long a rollout may take to finish"
    ),
    "rollout_stable_probes": Key(
        (int, float), 3, help="consecutive probes every instance must answer the version in"
    ),
    "instance_repeats": Key(
        (int, float), 6, help="requests per per-instance check where instances can't be addressed"
    ),
    "baseline_url": Key(
        str, "", help="the stable release the canary judge compares with (--baseline)"
    ),
}

#: Identifiers each platform's driver needs, at the target's top level.
PLATFORM_KEYS: dict[str, dict[str, Key]] = {
    "local": {
        "state_dir_env": Key(str, "POSTDEPLOY_STATE_DIR", help="env var naming the state dir"),
        "shape": Key(str, "single", help="single (one process) or production (edge, instances)"),
        "instances": Key((int, float), 2, help="app instances of the production shape"),
        "port_base": Key(
            (int, float), 19450, help="production shape: instance N on port_base+N, DB on +10"
        ),
        "rate_limit_register": Key(
            str, "", help="production shape: the app's registration limit N/SECONDS; empty: shipped"
        ),
        "rate_limit_login": Key(
            str, "", help="production shape: the app's login limit N/SECONDS; empty: shipped"
        ),
    },
    "fly": {
        "app": Key(str, help="Fly.io app name"),
        "token_env": Key(str, "FLY_API_TOKEN", help="env var holding the Fly.io API token"),
        "flyctl": Key(str, "fly", help="flyctl executable"),
        "machines_api_url": Key(
            str, "https://api.machines.dev", help="Fly.io Machines API (instances of the app)"
        ),
    },
    "railway": {
        "project_id": Key(str, help="Railway project id"),
        "service_id": Key(str, help="Railway service id"),
        "environment_id": Key(str, help="Railway environment id"),
        "token_env": Key(str, "RAILWAY_API_TOKEN", help="env var holding the API token"),
        "api_url": Key(str, "https://backboard.railway.com/graphql/v2", help="GraphQL endpoint"),
    },
    "render": {
        "service_id": Key(str, help="Render service id (srv-...)"),
        "owner_id": Key(str, "", help="workspace id (tea-...) for the logs; default: asked"),
        "token_env": Key(str, "RENDER_API_KEY", help="env var holding the API key"),
        "api_url": Key(str, "https://api.render.com/v1", help="REST API base"),
    },
    "aws": {
        "cluster": Key(str, help="ECS cluster name or ARN"),
        "service": Key(str, help="ECS service name"),
        "region": Key(str, help="AWS region"),
        "profile_env": Key(str, "AWS_PROFILE", help="env var naming the AWS profile"),
        "log_group": Key(str, "", help="CloudWatch log group; default: the awslogs group"),
    },
    "gcp": {
        "project": Key(str, help="GCP project id"),
        "region": Key(str, help="Cloud Run region"),
        "service": Key(str, help="Cloud Run service name"),
        "token_env": Key(str, "GCP_ACCESS_TOKEN", help="env var holding an OAuth access token"),
        "api_url": Key(str, "https://run.googleapis.com", help="Cloud Run Admin API base"),
        "logging_url": Key(str, "https://logging.googleapis.com", help="Cloud Logging API base"),
    },
    "azure": {
        "subscription_id": Key(str, help="Azure subscription id"),
        "resource_group": Key(str, help="resource group of the App Service"),
        "app_name": Key(str, help="App Service name"),
        "slot": Key(str, "staging", help="deployment slot swapped with production"),
        "token_env": Key(str, "AZURE_ACCESS_TOKEN", help="env var holding an ARM access token"),
        "api_url": Key(str, "https://management.azure.com", help="ARM endpoint"),
        "log_analytics_workspace_id": Key(str, "", help="workspace of the app's console logs"),
        "log_analytics_url": Key(str, "https://api.loganalytics.io", help="Log Analytics API"),
        "log_token_env": Key(
            str, "AZURE_LOG_ANALYTICS_TOKEN", help="env var holding a Log Analytics token"
        ),
    },
    "command": {
        "rollback_command": Key(str, help="command run to roll back; release ids in its env"),
        "releases_command": Key(str, "", help="command printing releases as JSON"),
        "logs_command": Key(str, "", help="command printing the app's recent log lines"),
    },
}

#: Sections every target may carry, with their keys. Suites add theirs here.
SECTIONS: dict[str, dict[str, Key]] = {
    "thresholds": {
        "response_time_ms": Key((int, float), 2000.0, help="p95 response time limit"),
        "error_rate": Key((int, float), 0.001, help="largest acceptable error ratio"),
        "health_pass_rate": Key((int, float), 1.0, help="share of health probes that must pass"),
    },
    "rollback": {
        "allowed": Key(bool, True, help="false: never roll this target back"),
        "cooldown_s": Key((int, float), 3600.0, help="no second rollback within this window"),
        "wait_timeout_s": Key((int, float), 300.0, help="how long to wait for the old release"),
        "poll_interval_s": Key((int, float), 1.0, help="how often to ask the platform"),
        "verify_data": Key(
            bool, True, help="false: no data marker (an app without the contract's API)"
        ),
        # the operations plan's objectives: rollback < 5 min, recovery < 10 min, > 99.9 %
        "objective_s": Key(
            (int, float), 300.0, help="longest acceptable rollback (call to serving); escalates"
        ),
        "recovery_objective_s": Key(
            (int, float), 600.0, help="longest acceptable detection-to-verified time; escalates"
        ),
        "availability_objective": Key(
            (int, float), 0.999, help="share of probes answered correctly during the rollback"
        ),
        "availability_interval_s": Key(
            (int, float), 1.0, help="time between availability probes during the rollback"
        ),
        "evidence_log_lines": Key(
            (int, float), 500, help="newest log lines of the failing release kept as evidence"
        ),
    },
    # The target's rate limits on the harness's synthetic traffic (per client): the run plans
    # its registrations and logins within them. Defaults: the Learning Assistant's shipped
    # limits (fixtures/learning_assistant/config.py).
    "limits": {
        "registrations_per_window": Key(
            (int, float), 30, help="registrations the target allows per client and window"
        ),
        "logins_per_window": Key(
            (int, float), 10, help="login attempts the target allows per client, account, window"
        ),
        "window_s": Key((int, float), 60, help="the rate limits' window, in seconds"),
        "retry_after_max_s": Key(
            (int, float), 15, help="longest Retry-After a check waits out once before it breaks"
        ),
    },
    # Incident severity (postdeploy/reporting/severity.py): which failed checks are Sev 1.
    # Patterns are fnmatch patterns over test node ids; other gating failures are Sev 2,
    # non-gating failures and quarantined or flaky checks Sev 3.
    "severity": {
        "sev1_checks": Key(
            (list, str),
            "*monitoring/test_health.py::*,*functional/test_authentication.py::*,"
            "*security/test_auth.py::*,*functional/test_database.py::*,watch::/api/health",
            help="checks whose failure is Sev 1: app down, authentication, data integrity",
        ),
        "sev1_categories": Key(
            (list, str), "journey", help="categories whose gating failures are Sev 1"
        ),
        "page_max_level": Key(
            (int, float), 1, help="severities up to this level page (PagerDuty trigger)"
        ),
    },
    "notify": {
        "slack_webhook_env": Key(str, "", help="env var holding a Slack incoming-webhook URL"),
        "pagerduty_routing_key_env": Key(str, "", help="env var holding a PagerDuty routing key"),
        "pagerduty_url": Key(
            str, "https://events.pagerduty.com/v2/enqueue", help="PagerDuty Events API v2 URL"
        ),
        "webhook_url_env": Key(str, "", help="env var holding a generic JSON webhook URL"),
        "teams_webhook_env": Key(
            str, "", help="env var holding a Microsoft Teams Workflows webhook URL"
        ),
        "smtp_host": Key(str, "", help="SMTP server for e-mail; empty: no e-mail"),
        "smtp_port": Key((int, float), 587, help="SMTP port (STARTTLS submission)"),
        "smtp_starttls": Key(bool, True, help="upgrade the SMTP connection with STARTTLS"),
        "smtp_ca_file": Key(str, "", help="PEM bundle to trust for the SMTP server"),
        "smtp_username_env": Key(str, "", help="env var holding the SMTP user name"),
        "smtp_password_env": Key(str, "", help="env var holding the SMTP password"),
        "email_from": Key(str, "", help="sender address of e-mail notifications"),
        "email_to": Key((list, str), "", help="recipients of e-mail notifications"),
        "statuspage_api_key_env": Key(
            str, "", help="env var holding an Atlassian Statuspage API key"
        ),
        "statuspage_page_id": Key(str, "", help="Statuspage page id"),
        "statuspage_component_id": Key(str, "", help="Statuspage component of this target"),
        "statuspage_url": Key(str, "https://api.statuspage.io/v1", help="Statuspage REST API base"),
        "timeout_s": Key((int, float), 5.0, help="timeout of each notification request"),
    },
    # Security suite: TLS (sslyze) ...
    "tls": {
        "cert_min_days": Key((int, float), 14.0, help="fail when the certificate expires sooner"),
        "mozilla_profile": Key(
            str, "intermediate", help="Mozilla TLS configuration: modern, intermediate or old"
        ),
    },
    # ... and headers, authentication, input handling, rate limiting.
    "security": {
        "min_grade": Key(str, "B", help="lowest HTTP Observatory grade accepted (A+ ... F)"),
        "hsts_min_age_s": Key((int, float), 15552000, help="shortest HSTS max-age (6 months)"),
        "rate_limit_login": Key((int, float), 10, help="login attempts per email before a 429"),
        "forwarded_clients": Key(
            (list, str),
            "",
            help="two client addresses the harness may claim in X-Forwarded-For (the edge "
            "trusts its address): checks that the rate limits are per client behind the edge",
        ),
        "rate_limit_margin": Key(
            (int, float), 3, help="attempts sent past the limit before giving up (never more)"
        ),
        "fuzz_examples": Key(
            (int, float), 10, help="schemathesis examples per API operation and mode (max 20)"
        ),
        # what a deploy gets wrong (suites/security/test_{redirects,exposure,debug,...}.py)
        "api_console": Key(bool, False, help="true: an interactive API console may be served"),
        "openapi_public": Key(bool, True, help="false: the OpenAPI document must not be served"),
        "private_source_maps": Key(
            bool, False, help="true: the scripts' source maps must not be served"
        ),
        "edge": Key(
            bool, False, help="the target is behind a caching edge: check two users' answers"
        ),
        "gating_checks": Key(
            (list, str),
            "open_redirect,exposed_files,debug_pages,private_caching",
            help="deploy-misconfiguration checks whose failure gates (postdeploy.security.gating)",
        ),
    },
    # Monitoring suite; a list may also be written as one comma-separated string.
    "monitoring": {
        "metric_families": Key(
            (list, str),
            "la_http_requests_total,la_http_request_duration_seconds,la_app_info",
            help="metric families /metrics must expose",
        ),
        "synthetic_requests": Key((int, float), 5, help="requests each check sends first"),
        "prometheus_url": Key(
            str, "", help="Prometheus to query; empty: the harness starts one for a local target"
        ),
        "prometheus_token_env": Key(str, "", help="env var holding a Prometheus bearer token"),
        "alertmanager_url": Key(
            str, "", help="Alertmanager whose v2 API says which alerts fire; empty: Prometheus's"
        ),
        "scrape_job": Key(str, "learning-assistant", help="Prometheus job scraping the target"),
        "scrape_interval_s": Key(
            (int, float), 1.0, help="scrape/evaluation interval of a harness-started Prometheus"
        ),
        "required_alert_rules": Key(
            (list, str),
            "LearningAssistantInstanceDown,LearningAssistantHighErrorRate,"
            "LearningAssistantHighLatency",
            help="alerting rules that must be loaded",
        ),
        "severity_label": Key(str, "severity", help="alert label holding the severity"),
        "critical_severity": Key(str, "critical", help="severity of alerts that must not fire"),
        "service_label": Key(str, "job", help="alert label whose value is scrape_job"),
        "query_timeout_s": Key((int, float), 5.0, help="timeout of each monitoring API call"),
        "prometheus_wait_s": Key(
            (int, float), 20.0, help="how long to wait for the scrape and the synthetic traffic"
        ),
        "sentry_api_url": Key(
            str, "", help="Sentry web API base; empty: the local stand-in for a local target"
        ),
        "sentry_org": Key(str, "", help="Sentry organization slug"),
        "sentry_project": Key(str, "", help="Sentry project slug"),
        "sentry_token_env": Key(str, "SENTRY_AUTH_TOKEN", help="env var holding a Sentry token"),
        "sentry_wait_s": Key((int, float), 15.0, help="how long to wait for the error event"),
        "error_trigger_token_env": Key(
            str, "LA_ERROR_TRIGGER_TOKEN", help="env var holding the test-only error route token"
        ),
        "loki_url": Key(str, "", help="Grafana Loki to read logs from; empty: platform driver"),
        "loki_query": Key(
            str, '{service="learning-assistant"}', help="LogQL stream selector of the app's logs"
        ),
        "loki_token_env": Key(str, "", help="env var holding a Loki bearer token"),
        "loki_tenant": Key(str, "", help="X-Scope-OrgID of a multi-tenant Loki"),
        "log_wait_s": Key((int, float), 10.0, help="how long to wait for a request's log line"),
        "log_lines": Key((int, float), 5000, help="newest log lines read per attempt"),
    },
    # Performance suite: response-time SLOs, static assets, page size.
    "performance": {
        "samples": Key((int, float), 20, help="timed requests per key endpoint for its SLO"),
        "warmup": Key((int, float), 3, help="untimed requests per endpoint before sampling"),
        "page_weight_budget_kb": Key(
            (int, float), 500.0, help="largest transfer size of one page with its assets"
        ),
    },
    # Load tests with Locust (suites/performance/test_load.py, load/).
    "load": {
        "profile": Key(str, "smoke", help="load profile run by default (--load-profile)"),
        "workers": Key((int, float), 0, help="Locust worker processes; 0: one process"),
        "max_users": Key((int, float), 100, help="most simulated users a profile may start"),
        "max_duration_s": Key((int, float), 1800.0, help="longest a load run may last"),
        "abort_error_rate": Key(
            (int, float), 0.1, help="stop the run early once the error ratio passes this"
        ),
        "abort_min_requests": Key(
            (int, float), 50, help="requests before the abort rule is applied"
        ),
        "accounts": Key((int, float), 10, help="synthetic accounts per Locust process"),
    },
    # The canary judge: the release against a baseline, or against earlier runs
    # (suites/performance/test_canary.py, docs/canary.md).
    "canary": {
        "samples": Key(
            (int, float), 1000, help="timed requests per key endpoint and arm (docs/canary.md)"
        ),
        "warmup": Key((int, float), 5, help="untimed requests per endpoint and arm first"),
        "max_requests": Key(
            (int, float), 12000, help="traffic budget: most requests per arm, warm-up included"
        ),
        "min_samples": Key((int, float), 50, help="fewer samples in an arm: inconclusive"),
        "false_alarm_rate": Key(
            (int, float), 0.01, help="chance that a healthy release fails a run (Holm-corrected)"
        ),
        "allowed_latency_increase": Key(
            (int, float), 0.10, help="relative latency increase tolerated (0.10 = +10 %)"
        ),
        "min_latency_increase_ms": Key(
            (int, float), 1.0, help="a latency regression is also at least this many ms slower"
        ),
        "allowed_error_increase_pp": Key(
            (int, float), 0.1, help="error-rate increase tolerated, in percentage points"
        ),
        "critical_metrics": Key(
            (list, str),
            "*",
            help="metrics (fnmatch: lessons:latency, *:errors) whose "
            "regression fails the gate whatever the score",
        ),
        "pass_score": Key((int, float), 95.0, help="Kayenta-style score (0-100) to pass"),
        "marginal_score": Key((int, float), 75.0, help="score below which the canary fails"),
        "gating": Key(bool, True, help="a failed canary judgement fails the gate"),
        "instance_header": Key(
            str, "", help="edge header routing a request to one instance (instance arms)"
        ),
        "baseline_ca_file": Key(
            str, "", help="PEM bundle the baseline arm is verified with (default: ca_file)"
        ),
        "baseline_instance": Key(
            str,
            "",
            help='instance_header value of the baseline arm; "auto": the instances on the '
            "previous release against those on the newest (a --canary N deploy)",
        ),
        "canary_instance": Key(str, "", help="instance_header value of the canary arm"),
        "relative_criteria": Key(
            (list, str),
            "",
            help="--compare-with criteria, Keptn-style: 'p95 <= +10%', "
            "'errors <= +0.1pp' (default: the allowed increases above)",
        ),
        "record_history": Key(
            bool, True, help="store every run's samples in the history dir (for --compare-with)"
        ),
        "history_samples": Key(
            (int, float),
            200,
            help="timed requests per key endpoint of the history check's own traffic (stored, "
            "and judged with --compare-with; without a baseline check): every default run pays "
            "them",
        ),
        "history_keep": Key(
            (int, float), 20, help="runs kept per target and load profile in the history dir"
        ),
        "page_loads": Key(
            (int, float),
            10,
            help="loads of each key page per arm in Chromium for the page metrics (LCP, CLS, "
            "TTFB, INP); 0: no page metrics",
        ),
        "min_page_loads": Key(
            (int, float), 8, help="fewer measured loads of a page in an arm: inconclusive"
        ),
        "pages": Key(
            (list, str), "", help="key pages measured (landing, login, ...; default: all)"
        ),
        "allowed_cls_increase": Key(
            (int, float), 0.05, help="CLS increase tolerated (absolute, unitless)"
        ),
    },
    # Core Web Vitals measured in Chromium (suites/performance/test_web_vitals.py).
    "vitals": {
        "runs": Key((int, float), 3, help="page loads per page; the median is judged"),
        "lcp_ms": Key((int, float), 2500.0, help="Largest Contentful Paint limit"),
        "cls": Key((int, float), 0.1, help="Cumulative Layout Shift limit"),
        "inp_ms": Key((int, float), 200.0, help="Interaction to Next Paint limit"),
        "fcp_ms": Key((int, float), 1800.0, help="First Contentful Paint limit"),
        "ttfb_ms": Key((int, float), 800.0, help="Time to First Byte limit"),
    },
}


class Section(Mapping[str, Any]):
    """A read-only configuration section with attribute access (``target.thresholds.x``)."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self._name = name
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        # Only keys: its own attributes are never looked up here, not even while unpickling
        # (a section sent to a process of its own), before they are set.
        values = self.__dict__.get("_values")
        if values is None or key not in values:
            raise AttributeError(f"section [{self.__dict__.get('_name')}] has no key {key!r}")
        return values[key]

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self._values!r})"


@dataclass(frozen=True)
class Target:
    """One deployment to validate."""

    name: str
    platform: str
    url: str
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    concurrency: float = 4
    description: str = ""
    ca_file: str = ""
    http_url: str = ""
    rollout_timeout_s: float = 300.0
    rollout_stable_probes: float = 3
    instance_repeats: float = 6
    baseline_url: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    sections: Mapping[str, Section] = field(default_factory=dict)
    source: str = DEFAULT_TARGETS_FILE

    def __getattr__(self, name: str) -> Section:
        # Sections read as attributes: target.thresholds, target.rollback, ...
        sections = object.__getattribute__(self, "sections")
        if name in sections:
            return sections[name]
        raise AttributeError(f"target {self.name!r} has no attribute {name!r}")

    def setting(self, key: str) -> Any:
        """A platform identifier, e.g. ``target.setting("app")`` for Fly.io."""
        return self.settings[key]

    def secret(self, key: str = "token_env") -> str | None:
        """The secret held by the environment variable that ``key`` names, if set."""
        env_name = self.settings.get(key)
        return os.environ.get(env_name) if env_name else None

    def secret_values(self) -> list[str]:
        """Every secret this target's configuration points at, to scrub from any output: the
        values of the variables its ``*_env`` keys name, and the password of a URL with one."""
        names = [
            str(name)
            for values in (self.settings, *self.sections.values())
            for key, name in values.items()
            if key.endswith("_env") and key not in NOT_SECRET_ENV_KEYS and name
        ]
        found = [os.environ[name] for name in names if os.environ.get(name)]
        for url in (self.url, self.http_url):
            password = urlsplit(url).password if url else None
            if password:
                found.append(password)
        return found

    def with_url(self, url: str) -> Target:
        _check_url(url, self.source, f"targets.{self.name}.url")
        return _replace(self, url=url.rstrip("/"))


def _replace(target: Target, **changes: Any) -> Target:
    from dataclasses import replace

    return replace(target, **changes)


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join({int: "number", float: "number"}.get(x, x.__name__) for x in types)


def _check_type(value: Any, key: Key, source: str, where: str) -> Any:
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{source}: {where} must be a {_type_name(key.type)}, got {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{source}: {where} must be a {_type_name(key.type)}, got {value!r}")
    return float(value) if float in types and isinstance(value, int) else value


def _check_url(url: str, source: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{source}: {where} = {url!r} is not a valid URL; "
            "write it as https://host[:port] (or http:// for a plain-HTTP target)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{source}: {where} = {url!r} has an invalid port") from None


def _parse_env(raw: str, key: Key, where: str) -> Any:
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    if bool in types:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"environment: {where} must be true or false, got {raw!r}")
    if float in types or int in types:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"environment: {where} must be a number, got {raw!r}") from None
    return raw


def _unknown(
    source: str, where: str, key: str, valid: Mapping[str, Any] | list[str]
) -> ConfigError:
    return ConfigError(
        f"{source}: unknown key {key!r} in {where}; valid keys: {', '.join(sorted(valid))}"
    )


def _env_prefix(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper().replace('-', '_')}_"


def _overrides(
    name: str, environ: Mapping[str, str], others: tuple[str, ...] = ()
) -> dict[str, str]:
    """``POSTDEPLOY_<NAME>_*`` variables, except those of a target whose name extends this
    one's (``POSTDEPLOY_LOCAL_PROD_URL`` belongs to ``local-prod``, not to ``local``)."""
    prefix = _env_prefix(name)
    longer = [_env_prefix(o) for o in others if _env_prefix(o).startswith(prefix) and o != name]
    return {
        k[len(prefix) :].lower(): v
        for k, v in environ.items()
        if k.startswith(prefix) and not any(k.startswith(p) for p in longer)
    }


def _build_target(
    name: str,
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any],
    source: str,
    environ: Mapping[str, str],
    others: tuple[str, ...] = (),
) -> Target:
    where = f"[targets.{name}]"
    platform = raw.get("platform", defaults.get("platform"))
    if platform is None:
        raise ConfigError(
            f"{source}: {where} is missing the required key 'platform'; "
            f"valid platforms: {', '.join(PLATFORM_KEYS)}"
        )
    if platform not in PLATFORM_KEYS:
        raise ConfigError(
            f"{source}: {where} platform = {platform!r} is unknown; "
            f"valid platforms: {', '.join(PLATFORM_KEYS)}"
        )
    top_keys = {**TARGET_KEYS, **PLATFORM_KEYS[platform]}
    merged: dict[str, Any] = {}
    for layer, layer_where in ((defaults, "[defaults]"), (raw, where)):
        for key, value in layer.items():
            if key in SECTIONS:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: {layer_where} {key} must be a table")
                merged.setdefault(key, {}).update(value)
            elif key in top_keys:
                merged[key] = value
            else:
                raise _unknown(source, layer_where, key, [*top_keys, *SECTIONS])

    env = _overrides(name, environ, others)
    for env_key, raw_value in sorted(env.items()):
        env_where = f"{ENV_PREFIX}{name.upper()}_{env_key.upper()}"
        section = next((s for s in SECTIONS if env_key.startswith(s + "_")), None)
        if env_key in top_keys:
            merged[env_key] = _parse_env(raw_value, top_keys[env_key], env_where)
        elif section is not None and env_key[len(section) + 1 :] in SECTIONS[section]:
            sub = env_key[len(section) + 1 :]
            value = _parse_env(raw_value, SECTIONS[section][sub], env_where)
            merged.setdefault(section, {})[sub] = value
        else:
            raise ConfigError(
                f"environment: {env_where} does not name a setting of target {name!r}; "
                f"valid keys: {', '.join(sorted(top_keys))} or SECTION_KEY for sections "
                f"{', '.join(SECTIONS)}"
            )

    values: dict[str, Any] = {}
    for key, spec in top_keys.items():
        if key not in merged:
            if spec.required:
                raise ConfigError(
                    f"{source}: {where} is missing the required key {key!r} "
                    f"({spec.help}) for platform {platform!r}"
                )
            values[key] = spec.default
        else:
            values[key] = _check_type(merged[key], spec, source, f"{where} {key}")

    sections: dict[str, Section] = {}
    for section, keys in SECTIONS.items():
        given = merged.get(section, {})
        for key in given:
            if key not in keys:
                raise _unknown(source, f"[targets.{name}.{section}]", key, keys)
        section_values = {}
        for key, spec in keys.items():
            if key in given:
                section_values[key] = _check_type(
                    given[key], spec, source, f"[targets.{name}.{section}] {key}"
                )
            elif spec.required:
                raise ConfigError(
                    f"{source}: [targets.{name}.{section}] is missing the required key {key!r}"
                )
            else:
                section_values[key] = spec.default
        sections[section] = Section(section, section_values)

    if platform == "local" and values["shape"] not in LOCAL_SHAPES:
        raise ConfigError(
            f"{source}: {where} shape = {values['shape']!r} is unknown; "
            f"valid shapes: {', '.join(LOCAL_SHAPES)}"
        )
    url = values.pop("url")
    _check_url(url, source, f"{where} url")
    for optional_url in ("http_url", "baseline_url"):
        if values[optional_url]:
            _check_url(values[optional_url], source, f"{where} {optional_url}")
    common = {k: values.pop(k) for k in list(values) if k in TARGET_KEYS}
    common.pop("platform")
    return Target(
        name=name,
        platform=platform,
        url=url.rstrip("/"),
        settings=values,
        sections=sections,
        source=source,
        **common,
    )


@dataclass(frozen=True)
class TargetsFile:
    """Every target of one targets.toml, in file order."""

    path: Path
    targets: dict[str, Target]

    def select(self, spec: str) -> list[Target]:
        """Targets named by ``--target``: ``NAME``, ``NAME,NAME`` or ``all``."""
        names = [n.strip() for n in spec.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"--target is empty; valid targets: {self.choices()}")
        if names == [ALL_TARGETS]:
            return list(self.targets.values())
        unknown = [n for n in names if n not in self.targets]
        if unknown:
            raise ConfigError(
                f"unknown target {unknown[0]!r} (from --target {spec}); "
                f"valid targets in {self.path}: {self.choices()}"
            )
        return [self.targets[n] for n in dict.fromkeys(names)]

    def choices(self) -> str:
        return ", ".join([*self.targets, ALL_TARGETS])


def load_targets(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> TargetsFile:
    """Read and validate ``path``; raises :class:`ConfigError` on any problem."""
    environ = os.environ if environ is None else environ
    file = Path(path)
    source = str(file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: file not found; create it (see the README) or pass --targets-file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None

    for key in data:
        if key not in ("defaults", "targets"):
            raise _unknown(source, "the top level", key, ["defaults", "targets"])
    defaults = data.get("defaults", {})
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, Mapping) or not raw_targets:
        raise ConfigError(f"{source}: no [targets.NAME] tables; define at least one target")
    targets: dict[str, Target] = {}
    for name, raw in raw_targets.items():
        if name == ALL_TARGETS:
            raise ConfigError(f"{source}: 'all' is reserved and cannot name a target")
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: targets.{name} must be a table ([targets.{name}])")
        targets[name] = _build_target(name, raw, defaults, source, environ, tuple(raw_targets))
    return TargetsFile(file, targets)


def find_targets_file(start: str | os.PathLike[str]) -> Path | None:
    """The nearest ``targets.toml`` in ``start`` or a folder above it, or None.

    Found the way pytest finds its ini file, from where the user stands: pytest settles its
    rootdir before plugin options are parsed, so a path option written ``--reports-dir DIR``
    can move the rootdir out of the project, while the invocation directory cannot move.
    """
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_TARGETS_FILE
        if candidate.is_file():
            return candidate
    return None
