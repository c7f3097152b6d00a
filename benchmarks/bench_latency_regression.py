"""Calibration of the reference app's ``latency_regression`` fault: how much slower it answers.

    python benchmarks/bench_latency_regression.py [--requests N] [--database-url URL]

Starts two uvicorn instances of the reference app on free loopback ports, one healthy and one
with ``LA_FAULTS=latency_regression`` (plain HTTP, as behind the production shape's edge; both
on one fresh SQLite file, or on ``--database-url``), then requests each key endpoint from both,
interleaved, and prints the medians and their ratio as a Markdown table: client-side (what a
canary judge sees) and app-side (the ``duration_ms`` of the instances' own request log lines,
less disturbed by a busy machine). The fault is calibrated when the ratio is about 1.3.
Figures, not assertions: the machine decides, and a loaded machine spreads them (the delay is
proportional to the app's own time, which includes waiting for a busy CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
START_TIMEOUT_S = 20
REQUEST_TIMEOUT_S = 10
PASSWORD = "benchmark-password"  # noqa: S105 (a throwaway account on a throwaway database)
#: (label, method, path, needs the bearer token)
ENDPOINTS = (
    ("health", "GET", "/api/health", False),
    ("lessons", "GET", "/api/learning/content", False),
    ("lesson", "GET", "/api/learning/content/1", False),
    ("progress", "GET", "/api/learning/progress", True),
    ("me", "GET", "/api/auth/me", True),
    ("landing page", "GET", "/", False),
    ("dashboard page", "GET", "/dashboard", False),
    ("login", "POST", "/api/auth/login", False),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "learning_assistant.app:create_app", "--factory",
        "--app-dir", str(REPO / "fixtures"), "--host", HOST, "--port", str(port),
        "--no-proxy-headers", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become healthy within {START_TIMEOUT_S} s")


def token_for(client: httpx.Client, email: str) -> str:
    body = {"email": email, "password": PASSWORD, "name": "Bench"}
    client.post("/api/auth/register", json=body)
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    login.raise_for_status()
    return str(login.json()["access_token"])


def app_side_ms(log: Path, method: str, path: str) -> list[float]:
    """The instance's own request durations for ``method path`` from its JSON log lines."""
    durations = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") == "request" and (record["method"], record["path"]) == (
            method,
            path,
        ):
            durations.append(float(record["duration_ms"]))
    return durations


def timed(client: httpx.Client, method: str, path: str, headers: dict[str, str], body) -> float:
    started = time.perf_counter()
    response = client.request(method, path, headers=headers, json=body)
    elapsed = time.perf_counter() - started
    if response.status_code >= 400:
        raise SystemExit(f"{method} {path} answered {response.status_code}: {response.text}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="Per endpoint and instance")
    parser.add_argument("--database-url", default="", help="Default: a fresh SQLite file")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="la-bench-latency-"))
    base_env = {
        **os.environ,
        "LA_DATABASE_URL": args.database_url or f"sqlite://{root}/la.db",
        "LA_SECRET_KEY": "benchmark-secret",
        "LA_RATE_LIMIT_LOGIN": "0",  # the benchmark logs in hundreds of times
        "LA_RATE_LIMIT_REGISTER": "0",
    }
    ports = {"healthy": free_port(), "latency_regression": free_port()}
    processes = [
        start(port, {**base_env, "LA_FAULTS": "" if name == "healthy" else name}, root / name)
        for name, port in ports.items()
    ]
    try:
        clients = {}
        for name, port in ports.items():
            url = f"http://{HOST}:{port}"
            wait_healthy(url)
            clients[name] = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S)
        tokens = {
            name: token_for(client, f"{name}@example.com") for name, client in clients.items()
        }
        print(f"{args.requests} requests per endpoint and instance\n")
        print("| endpoint | healthy ms | faulted ms | ratio | app-side healthy | faulted | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        ratios, app_ratios = [], []
        for label, method, path, authed in ENDPOINTS:
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(args.requests):
                for name, client in clients.items():
                    headers = {"Authorization": f"Bearer {tokens[name]}"} if authed else {}
                    body = None
                    if method == "POST":
                        body = {"email": f"{name}@example.com", "password": PASSWORD}
                    samples[name].append(timed(client, method, path, headers, body))
            healthy = statistics.median(samples["healthy"]) * 1000
            faulted = statistics.median(samples["latency_regression"]) * 1000
            ratios.append(faulted / healthy)
            app = {
                name: statistics.median(app_side_ms(root / name, method, path)) for name in ports
            }
            app_ratios.append(app["latency_regression"] / app["healthy"])
            print(
                f"| {label} | {healthy:.2f} | {faulted:.2f} | {faulted / healthy:.2f} "
                f"| {app['healthy']:.2f} | {app['latency_regression']:.2f} | {app_ratios[-1]:.2f} |"
            )
        print(
            f"\nmedian ratio over the endpoints: client-side {statistics.median(ratios):.2f}, "
            f"app-side {statistics.median(app_ratios):.2f}"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
