"""The production shape's own monitoring: a Prometheus scraping each instance, an Alertmanager.

They are run by the platform, not by a validation run, and live and die with the deployment,
as a platform's monitoring would. Prometheus scrapes every instance directly on its own port
(as a platform's service discovery would, not through the edge), evaluates the app's alert
rules (the same rules as the single-process shape, :func:`postdeploy.local.prometheus.
alert_rules`, with a production-like hold) and sends alerts to the Alertmanager. A target
reaches both through ``monitoring.prometheus_url`` and ``monitoring.alertmanager_url``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postdeploy.contract import PATHS
from postdeploy.local.prometheus import ScrapeSpec, alert_rules

#: The shape's scrape and evaluation interval.
SCRAPE_INTERVAL_S = 1.0
#: How long a condition must hold before an alert fires: longer than an instance is away
#: while a rolling deploy replaces it, so a healthy rollout raises no alert.
ALERT_HOLD_S = 5.0
#: Operations plan thresholds the rules alert on.
ERROR_RATIO = 0.001
LATENCY_S = 2.0
SEVERITY_LABEL = "severity"
CRITICAL = "critical"
#: Label carrying the instance id on every scraped series.
INSTANCE_LABEL = "instance_id"
#: Alertmanager groups quickly here: the checks read it right after a deploy.
GROUP_WAIT_S = 1
GROUP_INTERVAL_S = 5
REPEAT_INTERVAL = "1h"
#: Local data is kept briefly: the servers live as long as the deployment.
RETENTION = "6h"


@dataclass(frozen=True)
class MonitoringSpec:
    folder: Path
    job: str
    instances: dict[str, int]  # instance id -> port
    prometheus_port: int
    alertmanager_port: int
    without_rules: bool = False  # the alert_rules_missing fault


def _duration(seconds: float) -> str:
    return f"{max(round(seconds * 1000), 1)}ms"


def rules(spec: MonitoringSpec) -> dict[str, Any]:
    document = alert_rules(
        ScrapeSpec(
            url="", ca_file="", job=spec.job, interval_s=SCRAPE_INTERVAL_S,
            error_ratio=ERROR_RATIO, latency_s=LATENCY_S, severity_label=SEVERITY_LABEL,
            critical=CRITICAL,
        )
    )  # fmt: skip
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = _duration(ALERT_HOLD_S)
    return document


def prometheus_config(spec: MonitoringSpec, rules_file: Path | None) -> dict[str, Any]:
    interval = _duration(SCRAPE_INTERVAL_S)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_file)] if rules_file else [],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{spec.alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": spec.job,
                "scheme": "http",
                "metrics_path": PATHS.metrics,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {INSTANCE_LABEL: iid}}
                    for iid, port in spec.instances.items()
                ],
            }
        ],
    }


def alertmanager_config() -> dict[str, Any]:
    """One receiver that delivers nowhere: the checks read the alerts through the API."""
    return {
        "route": {
            "receiver": "platform",
            "group_by": ["alertname", "job"],
            "group_wait": f"{GROUP_WAIT_S}s",
            "group_interval": f"{GROUP_INTERVAL_S}s",
            "repeat_interval": REPEAT_INTERVAL,
        },
        "receivers": [{"name": "platform"}],
    }


def write(spec: MonitoringSpec) -> tuple[Path, Path]:
    """Write both configurations (JSON is YAML); returns (prometheus.yml, alertmanager.yml)."""
    spec.folder.mkdir(parents=True, exist_ok=True)
    rules_file: Path | None = None
    # FAULT alert_rules_missing: the platform starts Prometheus without its rules file.
    if not spec.without_rules:
        rules_file = spec.folder / "rules.yml"
        rules_file.write_text(json.dumps(rules(spec), indent=2), encoding="utf-8")
    prometheus_file = spec.folder / "prometheus.yml"
    prometheus_file.write_text(
        json.dumps(prometheus_config(spec, rules_file), indent=2), encoding="utf-8"
    )
    alertmanager_file = spec.folder / "alertmanager.yml"
    alertmanager_file.write_text(json.dumps(alertmanager_config(), indent=2), encoding="utf-8")
    return prometheus_file, alertmanager_file


def prometheus_argv(binary: str, spec: MonitoringSpec, config: Path, data: Path) -> list[str]:
    return [
        binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{spec.prometheus_port}", "--log.level=warn",
        f"--storage.tsdb.retention.time={RETENTION}",
    ]  # fmt: skip


def alertmanager_argv(binary: str, spec: MonitoringSpec, config: Path, data: Path) -> list[str]:
    return [
        binary, f"--config.file={config}", f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{spec.alertmanager_port}",
        "--cluster.listen-address=", "--log.level=warn",
    ]  # fmt: skip
