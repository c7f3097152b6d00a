"""postdeploy vs wapiti on deploy misconfigurations: who catches which fault, and how fast.

    python benchmarks/bench_wapiti.py [--wapiti /tmp/wapiti-venv/bin/wapiti] [--max-scan-time S]

wapiti (GPL) is a peer for comparison only, never a dependency: install it in a throwaway
venv (``python3 -m venv /tmp/wapiti-venv && /tmp/wapiti-venv/bin/pip install wapiti3``).

For the healthy release and each fault of issue 15 plus ``xss_reflected`` and ``sqli_500``,
one release is deployed on a private local platform (state dir and port of its own), then

* postdeploy runs the deploy-misconfiguration suites and the hostile-input corpus
  (``-k "not fuzzed"``) in a fresh pytest process; the fault is *caught* when one of its
  checks fails;
* wapiti scans the same release with the modules for these classes (``nikto`` is left out:
  it downloads its database from GitHub, and this machine has no network), bounded by
  ``--max-scan-time``, given the same knowledge postdeploy has (the start URLs of the
  contract's redirect route, static folder and API, and the OpenAPI document); the fault is
  *caught* when the scan reports a finding of the fault's class that the healthy release's
  scan did not.

Prints a Markdown table (fault, caught by each, wall time of each, wapiti's new findings).
Wall times are process start to exit on a shared 2-core machine: compare, do not quote alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from postdeploy.local.platform import LocalPlatform

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WAPITI = "/tmp/wapiti-venv/bin/wapiti"  # noqa: S108 - the throwaway venv, by design
DEFAULT_MAX_SCAN_S = 120
MAX_ATTACK_S = 30
RUN_TIMEOUT_S = 600
WAPITI_MODULES = (
    "redirect,crlf,exec,file,backup,buster,htaccess,methods,xss,sql,http_headers,cookieflags,csp"
)
SUITES = (
    *(f"suites/security/test_{name}.py" for name in (
        "redirects", "exposure", "debug", "methods", "host_header", "caching", "listing",
        "mixed_content")),
    "suites/security/test_input_validation.py",
)  # fmt: skip
#: What wapiti is told besides the site's root (what postdeploy knows from its contract).
START_PATHS = (
    "/continue?next=/dashboard",
    "/login?next=/dashboard",
    "/static/",
    "/api/health",
    "/api/learning/content/1",
)
OPENAPI_PATH = "/openapi.json"


@dataclass(frozen=True)
class Case:
    """A fault, the postdeploy checks that catch it, the wapiti finding classes that would."""

    fault: str
    checks: frozenset[str]
    wapiti: frozenset[str]
    wapiti_info: str = ""  # a finding's text must also match this (e.g. TRACE among methods)


CASES = (
    Case("open_redirect", frozenset({"test_redirect_parameters_never_send_users_to_another_site"}),
         frozenset({"Open Redirect"})),
    Case("secrets_exposed",
         frozenset({"test_no_secret_repository_or_backup_file_is_served",
                    "test_no_folder_index_status_page_or_private_source_map_is_served"}),
         frozenset({"Backup file", "Potentially dangerous file", "Htaccess Bypass",
                    "Review Webserver Metafiles for Information Leakage"}),
         wapiti_info=r"\.env|\.git|\.DS_Store|server-status|\.bak"),
    Case("debug_mode", frozenset({"test_a_forced_error_shows_no_debug_page_or_stack_trace"}),
         frozenset({"Internal Server Error", "Fingerprint web application framework"})),
    Case("api_console_exposed", frozenset({"test_no_interactive_api_console_is_served"}),
         frozenset({"Potentially dangerous file", "Fingerprint web technology",
                    "Review Webserver Metafiles for Information Leakage"}),
         wapiti_info="/docs|/redoc"),
    Case("http_methods_open",
         frozenset({"test_trace_and_track_are_refused",
                    "test_unexpected_methods_are_answered_405_with_allow"}),
         frozenset({"HTTP Methods"}), wapiti_info="TRACE"),
    Case("host_header_trusted",
         frozenset({"test_a_foreign_host_header_never_reaches_urls_or_links"}),
         frozenset({"Open Redirect", "CRLF Injection"})),
    Case("private_cacheable",
         frozenset({"test_a_users_data_is_never_storable_by_a_shared_cache"}), frozenset()),
    Case("directory_listing", frozenset({"test_static_folders_are_not_listed"}),
         frozenset({"Potentially dangerous file", "Review Webserver Metafiles for Information "
                    "Leakage", "Backup file"}), wapiti_info="/static"),
    Case("mixed_content", frozenset({"test_https_pages_load_no_subresource_over_http"}),
         frozenset({"Unencrypted Channels"})),
    Case("xss_reflected", frozenset({"test_no_payload_is_reflected_unescaped_in_html"}),
         frozenset({"Reflected Cross Site Scripting", "HTML Injection"})),
    Case("sqli_500",
         frozenset({"test_hostile_input_never_causes_a_server_error",
                    "test_no_stack_trace_or_error_detail_leaks"}),
         frozenset({"SQL Injection", "Blind SQL Injection", "Internal Server Error"})),
)  # fmt: skip


@dataclass
class Result:
    fault: str
    postdeploy_caught: bool = False
    postdeploy_s: float = 0.0
    postdeploy_failed: list[str] = field(default_factory=list)
    wapiti_caught: bool = False
    wapiti_s: float = 0.0
    wapiti_new: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def failed_tests(junit: Path) -> set[str]:
    if not junit.exists():
        return set()
    failed = set()
    # our own pytest's junit file, not untrusted input
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314
        if any(child.tag in ("failure", "error") for child in case):
            failed.add(case.get("name", "").split("[")[0])
    return failed


def run_postdeploy(env: dict[str, str], reports: Path) -> tuple[float, set[str]]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", *SUITES, "--target", "local", "-q", "-k", "not fuzzed",
         "-p", "no:cacheprovider", "-p", "no:locust", "--reports-dir", str(reports)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    return time.perf_counter() - started, failed_tests(reports / "junit.xml")


def findings(report: Path, port: int) -> set[tuple[str, str]]:
    """(class, info) of every finding of a wapiti JSON report, the port normalised away."""
    if not report.exists():
        return set()
    data = json.loads(report.read_text())
    found = set()
    for section in ("vulnerabilities", "anomalies", "additionals"):
        for category, items in (data.get(section) or {}).items():
            for item in items:
                info = re.sub(rf":{port}\b", ":PORT", str(item.get("info", "")))
                found.add((category, info))
    return found


def run_wapiti(wapiti: str, url: str, out: Path, max_scan_s: int) -> float:
    starts = [arg for path in START_PATHS for arg in ("-s", url + path)]
    started = time.perf_counter()
    subprocess.run(
        [wapiti, "-u", url + "/", *starts, "--swagger", url + OPENAPI_PATH, "--scope", "domain",
         "-m", WAPITI_MODULES, "--max-scan-time", str(max_scan_s),
         "--max-attack-time", str(MAX_ATTACK_S), "--flush-session", "--verify-ssl", "0",
         "--store-session", str(out.parent / "session"), "-f", "json", "-o", str(out),
         "-v", "0"],
        capture_output=True, text=True, timeout=max_scan_s * 3 + 60, check=False,
    )  # fmt: skip
    return time.perf_counter() - started


def caught_by_wapiti(case: Case, new: set[tuple[str, str]]) -> list[str]:
    return sorted(
        f"{category}: {info[:70]}"
        for category, info in new
        if category in case.wapiti and re.search(case.wapiti_info, info)
    )


def table(results: list[Result], healthy: Result, max_scan_s: int) -> str:
    def mark(caught: bool) -> str:
        return "yes" if caught else "**no**"

    lines = [
        f"| fault | postdeploy | time | wapiti (max-scan-time {max_scan_s} s) | time | "
        "wapiti's new findings of the fault's class |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| (healthy release) | {len(healthy.postdeploy_failed)} failed | "
        f"{healthy.postdeploy_s:.1f} s | baseline | {healthy.wapiti_s:.1f} s | |",
    ]
    for r in results:
        lines.append(
            f"| `{r.fault}` | {mark(r.postdeploy_caught)} | {r.postdeploy_s:.1f} s | "
            f"{mark(r.wapiti_caught)} | {r.wapiti_s:.1f} s | "
            f"{'; '.join(r.wapiti_new[:3]) or '-'} |"
        )
    total_pd = sum(r.postdeploy_s for r in results)
    total_wp = sum(r.wapiti_s for r in results)
    lines.append(
        f"| **caught** | {sum(r.postdeploy_caught for r in results)}/{len(results)} | "
        f"{total_pd:.0f} s | {sum(r.wapiti_caught for r in results)}/{len(results)} | "
        f"{total_wp:.0f} s | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wapiti", default=DEFAULT_WAPITI, help="wapiti executable")
    parser.add_argument(
        "--max-scan-time", type=int, default=DEFAULT_MAX_SCAN_S, help="wapiti's bound per scan"
    )
    parser.add_argument("--only", default="", help="Comma-separated faults (default: all)")
    args = parser.parse_args()
    if not Path(args.wapiti).exists():
        sys.exit(
            f"wapiti not found at {args.wapiti}: python3 -m venv /tmp/wapiti-venv && "
            "/tmp/wapiti-venv/bin/pip install wapiti3 (or pass --wapiti PATH)"  # noqa: S108
        )
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    cases = [case for case in CASES if not only or case.fault in only]

    root = Path(tempfile.mkdtemp(prefix="pd-bench-wapiti-"))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTHONPATH": str(REPO), "PYTEST_ADDOPTS": ""}  # fmt: skip
    platform = LocalPlatform(url, state_dir=root / "state")
    results = []
    try:
        platform.deploy("1.0.0")
        healthy = Result("healthy")
        healthy.postdeploy_s, failed = run_postdeploy(env, root / "pd-healthy")
        healthy.postdeploy_failed = sorted(failed)
        healthy.wapiti_s = run_wapiti(args.wapiti, url, root / "wapiti-healthy.json",
                                      args.max_scan_time)  # fmt: skip
        baseline = findings(root / "wapiti-healthy.json", port)
        print(f"healthy: postdeploy failed {healthy.postdeploy_failed or 'nothing'}; "
              f"wapiti {len(baseline)} findings", flush=True)  # fmt: skip
        for case in cases:
            platform.deploy("1.1.0", [case.fault])
            result = Result(case.fault)
            result.postdeploy_s, failed = run_postdeploy(env, root / f"pd-{case.fault}")
            result.postdeploy_failed = sorted(failed)
            result.postdeploy_caught = bool(failed & case.checks)
            report = root / f"wapiti-{case.fault}.json"
            result.wapiti_s = run_wapiti(args.wapiti, url, report, args.max_scan_time)
            result.wapiti_new = caught_by_wapiti(case, findings(report, port) - baseline)
            result.wapiti_caught = bool(result.wapiti_new)
            other = sorted({c for c, _ in findings(report, port) - baseline} - case.wapiti)
            print(f"{case.fault}: postdeploy {result.postdeploy_caught} "
                  f"({result.postdeploy_s:.1f} s, failed {result.postdeploy_failed}); wapiti "
                  f"{result.wapiti_caught} ({result.wapiti_s:.1f} s) {result.wapiti_new[:3]} "
                  f"other new classes: {other}", flush=True)  # fmt: skip
            results.append(result)
    finally:
        platform.stop()
    print()
    print(table(results, healthy, args.max_scan_time))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"reports: {root}")


if __name__ == "__main__":
    main()
