"""The security, performance and journey fault catalogues on the production shape (issue 15).

tests/test_local_production.py proves the functional and monitoring catalogues on
``local-prod``; this module proves the rest there, behind the real nginx edge (which is a
shared cache, see :mod:`postdeploy.local.nginx`): each fault caught by its check with kind
``failed`` and a message naming the defect, and a healthy release green on the whole security
suite with zero broken checks - the two-client edge check included, since ``local-prod`` has
``security.edge = true``.

The fault tables are the single-process shape's (imported, not copied). Faults that break
different checks share a release, as tests/test_security_local.py does, and each run selects
only the checks concerned (``-k=EXPR``), so the module stays within a few minutes on 2 cores.

Not here, by design of the shape:

* ``http_not_redirected`` is a stand-in of a platform's plain-HTTP listener that the
  single-process tests start themselves; the edge has no plain-HTTP listener (``local-prod``
  has no ``http_url``), so the redirect check skips there and the class is proven on ``local``.
* ``weak_tls`` and ``cert_expiring`` do apply here: they are *edge* faults in this shape (the
  edge terminates TLS, and the platform gives it the legacy protocols or the short-lived
  certificate), so the TLS checks judge nginx, not uvicorn. nginx never allows
  client-initiated renegotiation, so ``weak_tls`` is caught by the protocol and Mozilla checks
  here, not by the vulnerability check as on ``local``.
* ``http_methods_open`` enables ``TRACE`` and ``TRACK`` in the app; nginx answers ``TRACE`` itself
  (405) before any upstream sees it, but passes ``TRACK`` on, so the check still fails here,
  naming ``TRACK``. PostgreSQL's error text is not SQLite's, so ``sqli_500``'s leak is named
  by what the check says of it (SQL error text), not by SQLite's exception name.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postdeploy.local import nginx
from tests import test_performance_local as perf
from tests import test_security_deploy as deploy
from tests import test_security_local as seclocal
from tests.conftest import SuiteRun, junit_cases
from tests.test_local_production import TARGET, ProdEnv, prod_env

#: This module registers more users a minute than the shipped 30/60 s: the app's limit is raised
#: in the open by ``_env`` (as tests/test_local_production.py does) and the traffic budget's
#: declared limit to match. The login limit, which the rate-limit checks judge, stays as shipped.
RAISED = {"POSTDEPLOY_LOCAL_PROD_LIMITS_REGISTRATIONS_PER_WINDOW": "1000"}
SECURITY = seclocal.SECURITY


@pytest.fixture(scope="module")
def prod() -> Iterator[ProdEnv]:
    yield from prod_env(RAISED)


def _run(
    prod: ProdEnv, *args: str, suites: tuple[str, ...], env: dict[str, str] | None = None
) -> SuiteRun:
    run = prod.run(*args, suites=suites, env=env)
    assert isinstance(run, SuiteRun)
    return run


def _cases(prod: ProdEnv) -> dict[str, str]:
    """passed/failed/skipped of every test case (with its parameters) of the last run."""
    return junit_cases(prod.root / f"run-{prod.runs}" / "junit.xml")


def _here(case: str) -> str:
    """A test case id of the ``local`` tables, as it reads against this target."""
    return case.replace("[local", f"[{TARGET}")


def _assert_caught(run: SuiteRun, fault: str, checks: dict[str, str]) -> None:
    for check in checks:
        assert run.outcomes.get(check) == "failed", (
            f"{fault} not caught by {check} ({run.outcomes.get(check)})\n{run.output[-3000:]}"
        )
    run.assert_caught(checks)


# -- a healthy release -----------------------------------------------------------------------


def test_a_healthy_release_passes_the_whole_security_suite_behind_the_edge(prod: ProdEnv) -> None:
    prod.platform.deploy("1.0.0")
    run = _run(prod, "-rs", suites=SECURITY)
    assert run.returncode == 0, run.output[-4000:]
    assert run.target(TARGET)["gate"] == "passed"
    assert not run.failed(), run.output[-4000:]
    assert not run.broken(), run.output[-4000:]
    assert deploy.EDGE in run.passed(), run.outcomes.get(deploy.EDGE)
    assert run.passed() >= deploy.ALWAYS_RUN, f"not passed: {deploy.ALWAYS_RUN - run.passed()}"


def test_the_edge_caches_what_the_app_lets_a_shared_cache_store(prod: ProdEnv) -> None:
    """The healthy release: static files (public, max-age) are cached, the API (no-store) and
    a request addressed to one instance never are, and a new release starts with an empty
    cache."""
    platform = prod.platform
    trust = ssl.create_default_context(cafile=str(platform.ca_file))

    def statuses(path: str, **headers: str) -> list[str | None]:
        with httpx.Client(base_url=platform.url, verify=trust, timeout=10.0) as client:
            answers = [client.get(path, headers=headers) for _ in range(2)]
        return [answer.headers.get(nginx.CACHE_STATUS_HEADER) for answer in answers]

    assert statuses("/static/app.js")[1] == "HIT"
    assert "HIT" not in statuses("/api/health")
    assert statuses("/static/app.js", **{nginx.INSTANCE_HEADER: "1"}) == ["BYPASS", "BYPASS"]
    platform.deploy("1.0.1")
    assert statuses("/static/app.js")[0] == "MISS"  # purged by the release


def test_the_edge_config_keys_the_cache_like_a_cdn(tmp_path: Path) -> None:
    edge = nginx.Edge(
        prefix=tmp_path, host="127.0.0.1", port=1, cert_file=tmp_path / "c",
        key_file=tmp_path / "k", instances={"1": 2},
    )  # fmt: skip
    config = nginx.render_config(edge)
    assert f'proxy_cache_key "{nginx.CACHE_KEY}"' in config
    assert "authorization" not in nginx.CACHE_KEY.lower()
    assert "cookie" not in nginx.CACHE_KEY.lower()
    assert "proxy_cache_valid" not in config  # no default lifetime: only the app's headers
    stored = edge.cache_dir / "a" / "bc" / "entry"
    stored.parent.mkdir(parents=True)
    stored.write_text("an earlier release's answer")
    nginx.purge_cache(tmp_path)
    assert edge.cache_dir.is_dir()
    assert not any(edge.cache_dir.iterdir())


# -- security: transport, auth, input, rate limits ---------------------------------------------

#: Failure messages that differ in this shape (check -> words): PostgreSQL's error text is not
#: SQLite's, and nginx answers TRACE itself (405) while TRACK reaches the app.
WORDS_HERE = {
    seclocal.LEAKS: "the HTTP 500 body contains SQL error text",
    deploy.TRACE: "TRACK is enabled and echoes",
}


#: Checks a fault cannot fail in this shape: nginx never allows client-initiated TLS
#: renegotiation, even with the legacy protocols of ``weak_tls`` (uvicorn's OpenSSL does).
NOT_HERE = {"weak_tls": {seclocal.VULNERABILITIES}}


def _words_here(checks: dict[str, str], fault: str = "") -> dict[str, str]:
    return {
        check: WORDS_HERE.get(check, words)
        for check, words in checks.items()
        if check not in NOT_HERE.get(fault, set())
    }


#: test_security_local's groups as they apply here: without its stand-in platform fault, and
#: the two fuzz faults in one release (each breaks one of the two fuzz checks).
SECURITY_GROUPS: dict[str, tuple[tuple[str, ...], dict[str, dict[str, str]]]] = {
    name: (
        spec,
        {f: _words_here(c, f) for f, c in caught.items() if f not in seclocal.STAND_IN_FAULTS},
    )
    for name, (spec, caught, _) in seclocal.GROUPS.items()
    if not name.startswith("fuzz")
}
SECURITY_GROUPS["fuzz"] = (
    seclocal.GROUPS["fuzz-500"][0],
    {**seclocal.GROUPS["fuzz-500"][1], **seclocal.GROUPS["fuzz-schema"][1]},
)


@pytest.mark.parametrize("group", sorted(SECURITY_GROUPS))
def test_each_security_fault_is_caught_behind_the_edge(prod: ProdEnv, group: str) -> None:
    spec, caught_by = SECURITY_GROUPS[group]
    suites = tuple(part for part in spec if part.startswith("suites/"))
    args = tuple(part for part in spec if not part.startswith("suites/"))
    # -k=EXPR: the tables' own selection, in the form the rootdir check does not misread
    args = tuple(f"-k={args[i + 1]}" for i, a in enumerate(args) if a == "-k")
    prod.platform.deploy("1.1.0", sorted(caught_by))
    run = _run(prod, *args, suites=suites)
    for fault, checks in caught_by.items():
        _assert_caught(run, fault, checks)
    assert not run.broken(), run.output[-3000:]


# -- security: what a deploy gets wrong (issue 15) ---------------------------------------------

#: The edge is a shared cache: a user's answer marked public reaches the next user through it.
EDGE_CAUGHT = {deploy.EDGE: "the edge served one user's answer to another"}


def _deploy_groups() -> dict[str, tuple[dict[str, dict[str, str]], bool]]:
    groups = {}
    for name, (caught_by, gates) in deploy.GROUPS.items():
        here = {fault: _words_here(checks) for fault, checks in caught_by.items()}
        if "private_cacheable" in here:
            here["private_cacheable"] = {**here["private_cacheable"], **EDGE_CAUGHT}
        groups[name] = (here, gates)
    return groups


DEPLOY_GROUPS = _deploy_groups()


@pytest.mark.parametrize("group", sorted(DEPLOY_GROUPS))
def test_each_deploy_fault_is_caught_behind_the_edge(prod: ProdEnv, group: str) -> None:
    caught_by, gates = DEPLOY_GROUPS[group]
    prod.platform.deploy("1.2.0", sorted(caught_by))
    run = _run(prod, suites=deploy.DEPLOY_SUITES)
    for fault, checks in caught_by.items():
        _assert_caught(run, fault, checks)
    touched = {check for checks in caught_by.values() for check in checks}
    untouched = (deploy.ALWAYS_RUN | {deploy.EDGE}) - touched
    assert untouched <= run.passed(), f"collateral: {untouched - run.passed()}"
    assert not run.broken(), run.output[-3000:]
    assert run.target(TARGET)["gate"] == ("failed" if gates else "passed"), run.target(TARGET)


# -- performance and the journeys --------------------------------------------------------------

#: Faults of test_performance_local.FAULTS that share a release: each pair breaks checks of two
#: different suites (the static-asset faults break each other's checks, so one to a release).
PERFORMANCE_RELEASES = (
    ("slow_endpoint", "uncompressed_assets"),
    ("error_burst", "static_uncached"),
    ("journey_broken", "page_bloat"),
)


#: The slow endpoint answers in 2.5 s: no warm-up requests.
NO_WARMUP = {"POSTDEPLOY_LOCAL_PROD_PERFORMANCE_WARMUP": "0"}


@pytest.mark.parametrize("faults", PERFORMANCE_RELEASES, ids="+".join)
def test_each_performance_and_journey_fault_is_caught_behind_the_edge(
    prod: ProdEnv, faults: tuple[str, ...]
) -> None:
    specs = [perf.FAULTS[fault] for fault in faults]
    suites = tuple(dict.fromkeys(spec[0] for spec in specs))
    # each table entry's selection, or its whole suite file
    selections = [spec[1] or spec[0].rsplit("/", 1)[-1].removesuffix(".py") for spec in specs]
    selections = [s if s != "journeys" else "test_journeys" for s in selections]
    prod.platform.deploy("1.4.0", list(faults))
    run = _run(
        prod, f"-k={' or '.join(f'({s})' for s in selections)}", suites=suites,
        env=NO_WARMUP,
    )  # fmt: skip
    cases = _cases(prod)
    for fault, (_, _, must_fail, must_pass, words) in zip(faults, specs, strict=True):
        failed = {_here(case) for case in must_fail}
        passed = {_here(case) for case in must_pass}
        assert all(cases.get(c) == "failed" for c in failed), (
            f"{fault} not caught: {[(c, cases.get(c)) for c in failed]}\n{run.output[-3000:]}"
        )
        assert all(cases.get(c) == "passed" for c in passed), (
            f"{fault}: collateral {[(c, cases.get(c)) for c in passed]}\n{run.output[-3000:]}"
        )
        for check in {case.split("[")[0] for case in failed}:
            for word in words:
                run.assert_caught({check: word})
    assert not run.broken(), run.output[-3000:]


def test_web_vitals_faults_are_caught_behind_the_edge(prod: ProdEnv) -> None:
    prod.platform.deploy("1.5.0", ["slow_lcp", "layout_shift", "slow_interaction"])
    # one page load each: the median of 3 is for healthy runs
    run = _run(
        prod, "-k=landing or dashboard", suites=(perf.VITALS,),
        env={"POSTDEPLOY_LOCAL_PROD_VITALS_RUNS": "1"},
    )  # fmt: skip
    cases = _cases(prod)
    landing = f"{perf.VITALS_CHECK}[{TARGET}-landing]"
    dashboard = f"{perf.VITALS_CHECK}[{TARGET}-dashboard]"
    assert cases.get(landing) == cases.get(dashboard) == "failed", run.output[-3000:]
    run.assert_caught({perf.VITALS_CHECK: "LCP"})
    run.assert_caught({perf.VITALS_CHECK: "CLS"})
    run.assert_caught({perf.VITALS_CHECK: "INP"})
