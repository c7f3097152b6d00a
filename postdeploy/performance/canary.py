"""Paired synthetic traffic for the canary judge: the same requests to two arms, interleaved.

An *arm* is where a request goes: a URL (the idle colour of a blue/green pair, a production
slot, a revision tag URL) or one instance behind a shared edge, addressed by a routing header
(``Arm.instance``) - the shape ``postdeploy local deploy --canary N`` gives. For each key
endpoint both arms first get ``warmup`` untimed requests, then ``samples`` timed ones in
alternation, the first arm of each pair alternating (baseline canary, canary baseline, ...:
an ABBA design), so both arms see the same machine load and network at the same moments and
neither always follows the other; endpoint after endpoint.

What counts against an arm: an answer other than the expected status, or no answer (the
latency is kept only for expected answers, so like is compared with like). Trouble on the
*baseline* arm is the harness's problem, not the release's: :class:`BaselineUnavailable` is
raised (the check is then broken, never failed). A 429 from either arm means the planned
traffic crossed a rate limit: :class:`TrafficThrottled`, inconclusive.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy.contract import KEY_ENDPOINTS, PATHS, KeyEndpoint
from postdeploy.gate import TargetUnreachable
from postdeploy.http import USER_AGENT, timeout
from postdeploy.performance.judge import PERCENT, ArmSamples, Criteria, Judgement, Kind, Result
from postdeploy.users import UserFactory

if TYPE_CHECKING:
    from postdeploy.config import Target

BASELINE = "baseline"
CANARY = "canary"
RATE_LIMITED = 429
#: The baseline is unusable when more than this share of its requests got no expected answer.
BASELINE_MAX_ERROR_SHARE = 0.5
MS = 1000.0


class BaselineUnavailable(Exception):
    """The baseline arm cannot serve as a reference; a harness/config problem (broken)."""


class TrafficThrottled(Exception):
    """An arm answered 429: the traffic crossed a rate limit, so the comparison is void."""


class BudgetTooSmall(Exception):
    """The target's traffic budget leaves fewer samples than the judge needs."""


@dataclass(frozen=True)
class Arm:
    """Where one arm's requests go."""

    name: str
    url: str
    ca_file: str = ""
    #: extra request headers, e.g. the edge's header that routes to one instance
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def instance(cls, name: str, edge_url: str, header: str, value: str, ca_file: str = "") -> Arm:
        """One instance behind a shared edge, addressed by a routing header."""
        return cls(name, edge_url, ca_file, ((header, value),))

    def describe(self) -> str:
        routed = "".join(f" with {k}: {v}" for k, v in self.headers)
        return f"{self.name} arm {self.url}{routed}"


@dataclass(frozen=True)
class Plan:
    """How much traffic each arm gets."""

    samples: int
    warmup: int
    endpoints: tuple[KeyEndpoint, ...] = KEY_ENDPOINTS

    @property
    def requests_per_arm(self) -> int:
        return len(self.endpoints) * (self.samples + self.warmup)


def plan_traffic(
    samples: int,
    warmup: int,
    budget: int,
    min_samples: int,
    endpoints: tuple[KeyEndpoint, ...] = KEY_ENDPOINTS,
) -> Plan:
    """``samples`` per endpoint and arm, fewer when the budget (requests per arm) says so."""
    affordable = budget // max(len(endpoints), 1) - warmup
    planned = min(samples, affordable)
    if planned < min_samples:
        raise BudgetTooSmall(
            f"the traffic budget of {budget} requests per arm allows {max(planned, 0)} samples "
            f"per endpoint ({len(endpoints)} endpoints, {warmup} warm-up requests each), fewer "
            f"than the {min_samples} the judge needs; raise [canary] max_requests or lower "
            "[canary] warmup"
        )
    return Plan(planned, warmup, endpoints)


@dataclass
class _Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def note(self, what: str) -> None:
        self.errors += 1
        self.statuses[what] = self.statuses.get(what, 0) + 1

    def samples(self) -> ArmSamples:
        return ArmSamples(
            tuple(self.latencies_ms), len(self.latencies_ms) + self.errors, self.errors
        )


class _ArmClient:
    """An arm's client and synthetic user; times one request at a time."""

    def __init__(self, arm: Arm, target: Target, run_id: str) -> None:
        self.arm = arm
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=arm.ca_file or target.ca_file)
            if arm.ca_file or target.ca_file
            else True
        )
        self.client = httpx.Client(
            base_url=arm.url,
            timeout=timeout(target),
            verify=verify,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, **dict(arm.headers)},
        )
        self.users = UserFactory(self.client, run_id)
        self.auth: dict[str, str] = {}

    def prepare(self, needs_login: bool) -> None:
        """Check that the arm answers, and log a synthetic user in if an endpoint needs one."""
        response = self.client.get(PATHS.health)
        if response.status_code >= 500 and response.status_code != 503:
            raise AssertionError(
                f"{self.arm.describe()}: GET {PATHS.health} answered {response.status_code}"
            )
        if needs_login:
            self.auth = self.users().auth

    def send(self, endpoint: KeyEndpoint) -> tuple[float | None, str]:
        """Latency in ms of an expected answer (else None) and what came back."""
        options: dict[str, Any] = {"headers": self.auth if endpoint.login else {}}
        if endpoint.body:
            options["json"] = dict(endpoint.body)
        started = time.perf_counter()
        try:
            response = self.client.request(endpoint.method, endpoint.path, **options)
        except httpx.TransportError as exc:
            return None, type(exc).__name__
        elapsed_ms = (time.perf_counter() - started) * MS
        if response.status_code == RATE_LIMITED:
            raise TrafficThrottled(
                f"{self.arm.describe()}: {endpoint.label} answered 429; the canary traffic "
                "crossed a rate limit - lower [canary] samples or raise the target's limit"
            )
        if response.status_code != endpoint.status:
            return None, f"HTTP {response.status_code}"
        return elapsed_ms, ""

    def close(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.users.cleanup()
        self.client.close()


@contextlib.contextmanager
def _clients(arms: Sequence[Arm], target: Target, run_id: str) -> Iterator[list[_ArmClient]]:
    clients = [_ArmClient(arm, target, run_id) for arm in arms]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def _prepare(client: _ArmClient, plan: Plan) -> None:
    needs_login = any(e.login for e in plan.endpoints)
    try:
        client.prepare(needs_login)
    except (httpx.TransportError, AssertionError) as exc:
        if client.arm.name == BASELINE:
            raise BaselineUnavailable(
                f"the {client.arm.describe()} cannot serve as the reference: {exc}. The "
                "baseline is not the release under validation: check --baseline / the target's "
                "baseline_url and that the stable release is up"
            ) from None
        if isinstance(exc, httpx.TransportError):
            raise TargetUnreachable(f"{client.arm.describe()} is unreachable: {exc}") from None
        raise


def collect(
    target: Target, arms: Sequence[Arm], plan: Plan, run_id: str
) -> dict[str, list[ArmSamples]]:
    """Interleaved samples per endpoint: one ``ArmSamples`` per arm, in the order of ``arms``."""
    result: dict[str, list[ArmSamples]] = {}
    with _clients(arms, target, run_id) as clients:
        for client in clients:
            _prepare(client, plan)
        for endpoint in plan.endpoints:
            for _ in range(plan.warmup):
                for client in clients:
                    client.send(endpoint)
            tallies = [_Tally() for _ in clients]
            for i in range(plan.samples):
                # ABBA: the arm that goes first alternates, so neither arm always follows the
                # other's post-response work (logging, metrics) on a shared CPU.
                order = list(zip(clients, tallies, strict=True))
                for client, tally in order if i % 2 == 0 else reversed(order):
                    latency, what = client.send(endpoint)
                    if latency is None:
                        tally.note(what)
                    else:
                        tally.latencies_ms.append(latency)
            _check_baseline(arms, tallies, endpoint)
            result[endpoint.name] = [tally.samples() for tally in tallies]
    return result


def _check_baseline(arms: Sequence[Arm], tallies: list[_Tally], endpoint: KeyEndpoint) -> None:
    for arm, tally in zip(arms, tallies, strict=True):
        total = tally.errors + len(tally.latencies_ms)
        if arm.name == BASELINE and total and tally.errors / total > BASELINE_MAX_ERROR_SHARE:
            raise BaselineUnavailable(
                f"the {arm.describe()} failed {tally.errors} of {total} requests to "
                f"{endpoint.label} ({tally.statuses}); a baseline that fails cannot be the "
                "reference - check that the stable release is healthy"
            )


def paired(samples: dict[str, list[ArmSamples]]) -> dict[str, tuple[ArmSamples, ArmSamples]]:
    """(baseline, canary) per endpoint, from a two-arm :func:`collect`."""
    return {name: (arms[0], arms[1]) for name, arms in samples.items()}


# -- from the target's configuration ---------------------------------------------------------


class CanaryInconclusive(Exception):
    """The judge had too little data to decide: never a pass, and never a rollback."""


#: Keptn-style relative criterion: ``p95 <= +10%`` or ``errors <= +0.1pp``.
CRITERION = re.compile(r"\s*(latency|p95|p99|errors)\s*<=\s*\+?\s*([0-9.]+)\s*(%|pp)\s*")


def _listed(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def parse_criteria(texts: Sequence[str], source: str) -> dict[str, float]:
    """Keptn-style criteria -> allowed increase per metric kind (relative, or pp for errors)."""
    allowed: dict[str, float] = {}
    for text in texts:
        match = CRITERION.fullmatch(text)
        if match is None or (match.group(1) == Kind.ERRORS) != (match.group(3) == "pp"):
            raise ValueError(
                f"{source}: relative criterion {text!r} is not understood; write e.g. "
                "'p95 <= +10%', 'latency <= +10%' or 'errors <= +0.1pp'"
            )
        number = float(match.group(2))
        allowed[match.group(1)] = number if match.group(3) == "pp" else number / PERCENT
    return allowed


def criteria_for(target: Target, relative: bool = False, seed: int | None = None) -> Criteria:
    """The judge's criteria from the target's ``[canary]`` section (``relative``: the
    ``--compare-with`` criteria, which default to the same allowed increases)."""
    section = target.canary
    latency = float(section.allowed_latency_increase)
    allowed: dict[str, float] = {
        Kind.LATENCY: latency,
        Kind.P95: latency,
        Kind.P99: latency,
        Kind.ERRORS: float(section.allowed_error_increase_pp),
    }
    if relative:
        where = f"{target.source}: [targets.{target.name}.canary] relative_criteria"
        allowed.update(parse_criteria(_listed(section.relative_criteria), where))
    return Criteria(
        alpha=float(section.false_alarm_rate),
        min_increase_ms=float(section.min_latency_increase_ms),
        allowed=allowed,
        min_samples=int(section.min_samples),
        critical=_listed(section.critical_metrics),
        pass_score=float(section.pass_score),
        marginal_score=float(section.marginal_score),
        seed=seed,
    )


def plan_for(target: Target, endpoints: tuple[KeyEndpoint, ...] = KEY_ENDPOINTS) -> Plan:
    section = target.canary
    return plan_traffic(
        int(section.samples),
        int(section.warmup),
        int(section.max_requests),
        int(section.min_samples),
        endpoints,
    )


def arms_for(target: Target, baseline_url: str | None) -> tuple[Arm, Arm] | None:
    """(baseline, canary) from ``--baseline``/``baseline_url`` or the instance settings;
    None when the target names no baseline."""
    section = target.canary
    if section.instance_header and section.baseline_instance and section.canary_instance:
        return (
            Arm.instance(
                BASELINE, target.url, section.instance_header, section.baseline_instance,
                section.baseline_ca_file,
            ),
            Arm.instance(CANARY, target.url, section.instance_header, section.canary_instance),
        )  # fmt: skip
    url = baseline_url or target.baseline_url
    if not url:
        return None
    return Arm(BASELINE, url.rstrip("/"), section.baseline_ca_file), Arm(CANARY, target.url)


def conclude(judgement: Judgement, against: str) -> None:
    """Turn the judgement into the check's outcome: an assertion naming the regressed metrics
    and their figures, or :class:`CanaryInconclusive` (broken) for lack of data."""
    summary = (
        f"score {_score(judgement.score)} (pass >= {judgement.criteria.pass_score:g}, "
        f"marginal >= {judgement.criteria.marginal_score:g})"
    )
    if judgement.result is Result.FAIL:
        raise AssertionError(
            f"the release regressed against {against}: {judgement.reason}; {summary}\n"
            + "\n".join(judgement.lines())
        )
    if judgement.result is Result.INCONCLUSIVE:
        raise CanaryInconclusive(
            f"no verdict against {against}: {judgement.reason} (too few samples; raise "
            "[canary] samples or max_requests)"
        )


def _score(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.0f}"
