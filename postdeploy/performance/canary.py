"""Paired synthetic traffic for the canary judge: the same requests to two arms, interleaved.

An *arm* is where a request goes: a URL (the idle colour of a blue/green pair, a production
slot, a revision tag URL) or instances behind a shared edge, each addressed by a routing
header (``Arm.instance``, ``Arm.instances``). After ``postdeploy local deploy VERSION --canary
N`` the instances on the newest release are the canary arm and those on the release before
the baseline (:func:`instance_arms`, ``[canary] baseline_instance = "auto"``). Both arms first
get ``warmup`` untimed rounds, then ``samples`` timed ones. A round sends one request to every
key endpoint, and each endpoint's request to both arms in alternation, the first arm of each
pair alternating from round to round (baseline canary, canary baseline, ...: an ABBA design).
So both arms see the same machine load and network at the same moments, and neither always
follows the other.

The endpoints take turns too (round-robin, not one endpoint's block after another's): a burst
of load on a shared host then touches every endpoint a little instead of one endpoint's whole
block, and the data one endpoint writes (a learning session per request) grows evenly under
the endpoints that read it. That matters most for comparisons with stored runs, which no
alternation of arms protects: measured on this machine, the spread of one endpoint's median
between runs that the host's load does not explain fell from 10 % to 1 % (docs/canary.md).

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
    from postdeploy.rollback.base import Instance

BASELINE = "baseline"
CANARY = "canary"
RATE_LIMITED = 429
#: The baseline is unusable when more than this share of its requests got no expected answer.
BASELINE_MAX_ERROR_SHARE = 0.5
#: The baseline's answers are judged every this many rounds: a failing baseline stops early.
BASELINE_CHECK_ROUNDS = 25
MS = 1000.0


class BaselineUnavailable(Exception):
    """The baseline arm cannot serve as a reference; a harness/config problem (broken)."""


class TrafficThrottled(Exception):
    """An arm answered 429: the traffic crossed a rate limit, so the comparison is void."""


class BudgetTooSmall(Exception):
    """The target's traffic budget leaves fewer samples than the judge needs."""


@dataclass(frozen=True)
class Arm:
    """Where one arm's requests go.

    ``routes`` are header sets that each address one instance behind a shared edge; the arm's
    requests go to them in turn (an arm of several instances spreads its requests evenly).
    """

    name: str
    url: str
    ca_file: str = ""
    #: extra request headers, e.g. the edge's header that routes to one instance
    headers: tuple[tuple[str, str], ...] = ()
    routes: tuple[tuple[tuple[str, str], ...], ...] = ()
    #: what the arm runs, for messages (``release 3 (1.1.0)``)
    serving: str = ""

    @classmethod
    def instance(cls, name: str, edge_url: str, header: str, value: str, ca_file: str = "") -> Arm:
        """One instance behind a shared edge, addressed by a routing header."""
        return cls(name, edge_url, ca_file, ((header, value),))

    @classmethod
    def instances(
        cls, name: str, edge_url: str, instances: Sequence[Instance], ca_file: str = ""
    ) -> Arm:
        """Instances behind a shared edge, each addressed by the headers its platform gives."""
        routes = tuple(tuple(sorted(i.headers.items())) for i in instances)
        return cls(name, edge_url, ca_file, routes=routes, serving=_serving(instances))

    def route(self, n: int) -> dict[str, str]:
        """The routing headers of the ``n``-th request (none for a URL arm)."""
        return dict(self.routes[n % len(self.routes)]) if self.routes else {}

    def describe(self) -> str:
        routed = "".join(f" with {k}: {v}" for k, v in self.headers)
        if self.routes:
            values = ", ".join("/".join(v for _, v in route) for route in self.routes)
            header = "/".join(k for k, _ in self.routes[0])
            routed += f" with {header}: {values}"
        serving = f" ({self.serving})" if self.serving else ""
        return f"{self.name} arm {self.url}{routed}{serving}"


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


class ArmClient:
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
        self.token = ""
        self.sent = 0

    def prepare(self, needs_login: bool) -> None:
        """Check that the arm (each of its instances) answers, and log a synthetic user in if
        an endpoint needs one."""
        for n in range(max(len(self.arm.routes), 1)):
            response = self.client.get(PATHS.health, headers=self.arm.route(n))
            if response.status_code >= 500 and response.status_code != 503:
                raise AssertionError(
                    f"{self.arm.describe()}: GET {PATHS.health} answered {response.status_code}"
                )
        if needs_login:
            user = self.users()
            self.auth, self.token = user.auth, user.token

    def send(self, endpoint: KeyEndpoint) -> tuple[float | None, str]:
        """Latency in ms of an expected answer (else None) and what came back."""
        headers = {**self.arm.route(self.sent), **(self.auth if endpoint.login else {})}
        self.sent += 1
        options: dict[str, Any] = {"headers": headers}
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
def arm_clients(arms: Sequence[Arm], target: Target, run_id: str) -> Iterator[list[ArmClient]]:
    clients = [ArmClient(arm, target, run_id) for arm in arms]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def prepare_arm(client: ArmClient, needs_login: bool) -> None:
    """The arm answers (else :class:`BaselineUnavailable` for the baseline, unreachable for the
    target), with a synthetic user logged in when ``needs_login``."""
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
    """Interleaved samples per endpoint: one ``ArmSamples`` per arm, in the order of ``arms``;
    the endpoints round-robin, the arms ABBA (the module's docstring says why)."""
    tallies = {endpoint.name: [_Tally() for _ in arms] for endpoint in plan.endpoints}
    with arm_clients(arms, target, run_id) as clients:
        needs_login = any(e.login for e in plan.endpoints)
        for client in clients:
            prepare_arm(client, needs_login)
        for _ in range(plan.warmup):
            for endpoint in plan.endpoints:
                for client in clients:
                    client.send(endpoint)
        for i in range(plan.samples):
            for endpoint in plan.endpoints:
                # ABBA: the arm that goes first alternates, so neither arm always follows the
                # other's post-response work (logging, metrics) on a shared CPU.
                order = list(zip(clients, tallies[endpoint.name], strict=True))
                for client, tally in order if i % 2 == 0 else reversed(order):
                    latency, what = client.send(endpoint)
                    if latency is None:
                        tally.note(what)
                    else:
                        tally.latencies_ms.append(latency)
            if (i + 1) % BASELINE_CHECK_ROUNDS == 0 or i + 1 == plan.samples:
                for endpoint in plan.endpoints:
                    _check_baseline(arms, tallies[endpoint.name], endpoint)
    return {
        name: [tally.samples() for tally in arm_tallies] for name, arm_tallies in tallies.items()
    }


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
        Kind.LCP: latency,
        Kind.TTFB: latency,
        Kind.INP: latency,
        Kind.CLS: float(section.allowed_cls_increase),
    }
    if relative:
        where = f"{target.source}: [targets.{target.name}.canary] relative_criteria"
        allowed.update(parse_criteria(_listed(section.relative_criteria), where))
    return Criteria(
        alpha=float(section.false_alarm_rate),
        min_increase_ms=float(section.min_latency_increase_ms),
        allowed=allowed,
        min_samples=int(section.min_samples),
        min_page_samples=int(section.min_page_loads),
        critical=_listed(section.critical_metrics),
        pass_score=float(section.pass_score),
        marginal_score=float(section.marginal_score),
        seed=seed,
    )


def plan_for(
    target: Target,
    endpoints: tuple[KeyEndpoint, ...] = KEY_ENDPOINTS,
    samples: int | None = None,
) -> Plan:
    """The target's traffic plan: ``[canary] samples`` per endpoint and arm, or ``samples``."""
    section = target.canary
    return plan_traffic(
        int(section.samples if samples is None else samples),
        int(section.warmup),
        int(section.max_requests),
        int(section.min_samples),
        endpoints,
    )


#: ``[canary] baseline_instance = "auto"``: the instances on the previous release are the
#: baseline, those on the newest release the canary (``postdeploy local deploy --canary N``).
AUTO = "auto"


class NoBaseline(Exception):
    """Nothing to compare the release with: the check is not judged (skipped), never passed."""


def arms_for(
    target: Target,
    baseline_url: str | None,
    instances: Sequence[Instance] = (),
    expected_version: str | None = None,
) -> tuple[Arm, Arm]:
    """(baseline, canary), in this order of precedence: ``--baseline URL``; the explicit
    instance settings (``instance_header``, ``baseline_instance``, ``canary_instance``);
    with ``baseline_instance = "auto"``, the target's instances when they serve two releases;
    the target's ``baseline_url``. :class:`NoBaseline` says why there is none."""
    section = target.canary
    if baseline_url:
        return _url_arms(target, baseline_url)
    if section.baseline_instance == AUTO:
        try:
            return instance_arms(target, instances, expected_version)
        except NoBaseline:
            if target.baseline_url:
                return _url_arms(target, target.baseline_url)
            raise
    if section.instance_header and section.baseline_instance and section.canary_instance:
        return (
            Arm.instance(
                BASELINE, target.url, section.instance_header, section.baseline_instance,
                section.baseline_ca_file,
            ),
            Arm.instance(CANARY, target.url, section.instance_header, section.canary_instance),
        )  # fmt: skip
    if target.baseline_url:
        return _url_arms(target, target.baseline_url)
    raise NoBaseline(
        "not judged: no baseline - pass --baseline URL or set the target's baseline_url "
        '(or [canary] baseline_instance = "auto" where the platform addresses instances)'
    )


def _url_arms(target: Target, url: str) -> tuple[Arm, Arm]:
    baseline = Arm(BASELINE, url.rstrip("/"), target.canary.baseline_ca_file)
    return baseline, Arm(CANARY, target.url)


def release_of(instance: Instance) -> str:
    """What an instance serves: the platform's release id where it says, else its version."""
    return str(instance.extra.get("release") or instance.version or "")


def _serving(instances: Sequence[Instance]) -> str:
    first = instances[0]
    release = first.extra.get("release")
    if release and first.version:
        return f"release {release}, {first.version}"
    return f"release {release}" if release else first.version


def instance_arms(
    target: Target, instances: Sequence[Instance], expected_version: str | None = None
) -> tuple[Arm, Arm]:
    """The instances on the newest release (the canary) against those on the release before
    (the baseline), both behind the target's URL, each instance addressed by its headers.

    The newest release is the highest release id where the platform numbers them (the local
    platform does), else the group serving ``expected_version``. One release everywhere (no
    canary, or after a rollback) is :class:`NoBaseline`: nothing to compare.
    """
    addressable = [i for i in instances if i.addressable]
    if not addressable:
        raise NoBaseline(
            f'not judged: [canary] baseline_instance = "auto", but the platform of {target.name} '
            "lists no instance it can address; set the target's baseline_url or --baseline"
        )
    groups: dict[str, list[Instance]] = {}
    for instance in addressable:
        groups.setdefault(release_of(instance), []).append(instance)
    if len(groups) < 2:
        raise NoBaseline(
            f"not judged: every instance of {target.name} serves {_serving(addressable)}, so "
            "there is no baseline to compare with (a canary deploy - e.g. `postdeploy local "
            "deploy VERSION --canary N` - leaves the other instances on the previous release)"
        )
    newest, previous = _newest_two(groups, expected_version, target.name)
    return (
        Arm.instances(BASELINE, target.url, groups[previous]),
        Arm.instances(CANARY, target.url, groups[newest]),
    )


def _newest_two(
    groups: dict[str, list[Instance]], expected_version: str | None, name: str
) -> tuple[str, str]:
    keys = list(groups)
    if all(key.isdigit() for key in keys):
        ordered = sorted(keys, key=int, reverse=True)
        return ordered[0], ordered[1]
    expected = [k for k in keys if groups[k][0].version == expected_version]
    if expected_version and len(expected) == 1 and len(keys) == 2:
        newest = expected[0]
        return newest, next(k for k in keys if k != newest)
    raise ValueError(
        f"the instances of {name} serve {len(keys)} releases ({', '.join(keys)}) and the harness "
        "cannot tell which is the canary; pass --expect-version with the canary's version, or "
        "set [canary] instance_header, baseline_instance and canary_instance"
    )


def conclude(judgement: Judgement, against: str, unmeasured: Exception | None = None) -> None:
    """Turn the judgement into the check's outcome: an assertion naming the regressed metrics
    and their figures, or :class:`CanaryInconclusive` (broken) for lack of data.

    ``unmeasured``: why the page metrics could not be measured (the browser, the baseline's
    pages). A regression found without them still fails - what the target answered decides;
    otherwise the judgement is incomplete, and that trouble is raised (broken).
    """
    summary = (
        f"score {_score(judgement.score)} (pass >= {judgement.criteria.pass_score:g}, "
        f"marginal >= {judgement.criteria.marginal_score:g})"
    )
    if judgement.result is Result.FAIL:
        missing = f" (page metrics not measured: {unmeasured})" if unmeasured else ""
        raise AssertionError(
            f"the release regressed against {against}: {judgement.reason}; {summary}{missing}\n"
            + "\n".join(judgement.lines())
        )
    if unmeasured is not None:
        raise unmeasured
    if judgement.result is Result.INCONCLUSIVE:
        raise CanaryInconclusive(
            f"no verdict against {against}: {judgement.reason} (too few samples; raise "
            "[canary] samples or max_requests)"
        )


def _score(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.0f}"
