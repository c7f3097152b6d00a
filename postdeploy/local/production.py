"""The production shape of the local platform: an edge, instances, PostgreSQL, monitoring.

``postdeploy local deploy VERSION --target local-prod`` (a target with ``shape =
"production"``) runs, under one supervisor process (:mod:`postdeploy.local.supervisor`):

* ``postgres``: a private cluster in the state dir (:mod:`postdeploy.local.postgres`),
  started once and kept across releases;
* ``instance-1`` ... ``instance-N``: the app, one uvicorn process per instance on its own
  loopback port, plain HTTP, with the app's shipped settings (no limit raised);
* ``edge``: nginx terminating TLS on the target's URL (:mod:`postdeploy.local.nginx`);
* ``alertmanager`` and ``prometheus``: the platform's monitoring
  (:mod:`postdeploy.local.platform_monitoring`), on the target's ``monitoring.*_url`` ports.

A new release on a running shape rolls out instance by instance: each instance is stopped,
started with the new release and checked to answer on its own port before the next one is
replaced (``pause_s`` between them; ``canary`` stops after that many instances, leaving a
partial rollout). Rollback is a redeploy of an earlier release, rolled out the same way.

A fault is whole (``login_broken``) or addressed to one instance (``login_broken@1``).
Platform faults (TLS, the alert rules) belong to the edge or Prometheus and are whole only.

State, below ``STATE_DIR/production/``::

    state.json, lock          release history and the running deployment (its supervisor)
    instances.json            which release each instance runs, its port and pid
    postgres/                 the cluster (data/ survives everything but `rm`)
    edge/                     nginx prefix: nginx.conf, logs/access.log, temp/, cache/
    monitoring/               prometheus.yml, rules.yml, alertmanager.yml, data
    logs/instance-N.log       each instance's log; logs/<service>.log for the others
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from postdeploy import paths
from postdeploy.local import binaries, certs, nginx, platform_monitoring, sentry_standin
from postdeploy.local import supervisor as sup
from postdeploy.local.platform import (
    APP_FACTORY,
    STOP_TIMEOUT_S,
    LocalPlatform,
    Status,
    load_faults,
)
from postdeploy.local.postgres import Cluster, PostgresError
from postdeploy.local.state import Deployment, LocalPlatformError, LocalRelease, State
from postdeploy.local.tls_profiles import INTERMEDIATE_CONF, LEGACY_CONF, server_tls

SHAPE = "production"
DEFAULT_INSTANCES = 2
#: Internal ports: instance N on BASE + N, PostgreSQL on BASE + POSTGRES_OFFSET.
DEFAULT_PORT_BASE = 19450
POSTGRES_OFFSET = 10
#: Where Prometheus and Alertmanager listen when the target names no URL for them.
PROMETHEUS_OFFSET = 40
ALERTMANAGER_OFFSET = 43
#: Separates a fault from the instance it is addressed to: ``login_broken@1``.
INSTANCE_SEP = "@"
#: The supervisor's command line carries this, as every local deployment's process does.
LABEL = "learning_assistant-production"
INSTANCE_START_TIMEOUT_S = 20.0
EDGE_START_TIMEOUT_S = 10.0
MONITORING_START_TIMEOUT_S = 20.0
#: How long a rolling release waits for Prometheus to scrape the new instances (1 s apart).
MONITORING_CATCH_UP_S = 3.0
POLL_S = 0.05
PROBE_TIMEOUT_S = 2.0
PROBE_CONNECT_S = 0.5
JOB = "learning-assistant"
#: Instance log lines are served tagged with their source, e.g. ``[instance 1] {...}``.
EDGE_TAG = "[edge]"


def instance_tag(iid: str) -> str:
    return f"[instance {iid}]"


# -- faults ---------------------------------------------------------------------------------


def split_fault(spec: str) -> tuple[str, str]:
    """``login_broken@1`` -> (``login_broken``, ``1``); a whole fault has instance ``""``."""
    name, _, instance = spec.partition(INSTANCE_SEP)
    return name.strip(), instance.strip()


def platform_faults(catalogue: dict[str, str]) -> set[str]:
    """Faults the catalogue marks as the platform's (TLS, Prometheus), not the app's."""
    return {name for name, text in catalogue.items() if text.startswith("platform:")}


def faults_of_instance(faults: Sequence[str], iid: str) -> list[str]:
    """The app faults instance ``iid`` runs with: whole ones and those addressed to it."""
    chosen = []
    for spec in faults:
        name, instance = split_fault(spec)
        if instance in ("", iid):
            chosen.append(name)
    return sorted(set(chosen))


def whole_faults(faults: Sequence[str]) -> set[str]:
    return {split_fault(spec)[0] for spec in faults if not split_fault(spec)[1]}


# -- what runs ------------------------------------------------------------------------------


@dataclass
class InstanceState:
    """One instance as the platform last started it."""

    id: str
    port: int
    release_id: int
    version: str
    faults: list[str] = field(default_factory=list)
    pid: int = 0
    started_at: str = ""


@dataclass(frozen=True)
class ProductionStatus(Status):
    """The release, the supervisor, and every process of the shape (alive or not)."""

    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: list[InstanceState] = field(default_factory=list)
    supervisor_alive: bool = False

    @property
    def dead(self) -> list[str]:
        return sorted(name for name, info in self.processes.items() if not info.get("alive"))

    def describe(self) -> str:
        if self.release is None or self.deployment is None:
            return "nothing deployed (production shape)"
        faults = ", ".join(self.release.faults) or "none"
        lines = [
            f"release {self.release.id}: version {self.release.version}, faults: {faults}",
            f"production shape at {self.deployment.url}, since {self.deployment.started_at}",
        ]
        if not self.supervisor_alive:
            lines.append(
                f"NOT running: the supervisor (pid {self.deployment.pid}) is gone, and with it "
                "every process of the deployment"
            )
            return "\n".join(lines)
        by_id = {i.id: i for i in self.instances}
        for name, info in sorted(self.processes.items(), key=lambda item: _order(item[0])):
            state = "running" if info.get("alive") else f"DEAD (exit status {info['returncode']})"
            extra = ""
            if name.startswith("instance-") and name.removeprefix("instance-") in by_id:
                inst = by_id[name.removeprefix("instance-")]
                extra = f", release {inst.release_id} ({inst.version}), port {inst.port}"
            lines.append(f"  {name:<13} pid {info['pid']:<8} {state}{extra}")
        if self.dead:
            lines.append(f"DEGRADED: {', '.join(self.dead)} not running")
        return "\n".join(lines)


def _port_of(url: str, fallback: int) -> int:
    return urlsplit(url).port or fallback if url else fallback


class ProductionPlatform(LocalPlatform):
    """The local platform's production shape; the same operations as the single process."""

    shape = SHAPE

    def __init__(
        self,
        url: str,
        *,
        instances: int = DEFAULT_INSTANCES,
        port_base: int = DEFAULT_PORT_BASE,
        prometheus_url: str = "",
        alertmanager_url: str = "",
        app_limits: dict[str, str] | None = None,
        state_dir: Path | None = None,
        app_dir: Path | None = None,
    ) -> None:
        base_state = state_dir or paths.state_dir()
        super().__init__(url, base_state / SHAPE, app_dir)
        if instances < 1:
            raise LocalPlatformError(
                f"the production shape needs 1 instance or more, not {instances}"
            )
        self.instance_ids = [str(n) for n in range(1, instances + 1)]
        self.instance_ports = {iid: port_base + int(iid) for iid in self.instance_ids}
        self.postgres_port = port_base + POSTGRES_OFFSET
        self.prometheus_port = _port_of(prometheus_url, port_base + PROMETHEUS_OFFSET)
        self.alertmanager_port = _port_of(alertmanager_url, port_base + ALERTMANAGER_OFFSET)
        self.cluster = Cluster(self.state_dir / "postgres", self.postgres_port)
        #: rate limits the target raises explicitly (empty values: the app's shipped ones)
        self.app_limits = {k: v for k, v in (app_limits or {}).items() if v}
        #: how the next rollout proceeds (set by :meth:`deploy`)
        self._pause_s = 0.0
        self._canary: int | None = None

    # -- files ---------------------------------------------------------------------------

    @property
    def _socket(self) -> Path:
        return self.state_dir / "supervisor.sock"

    @property
    def _instances_file(self) -> Path:
        return self.state_dir / "instances.json"

    def _service_log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _client(self) -> sup.SupervisorClient:
        return sup.SupervisorClient(self._socket)

    def read_instances(self) -> list[InstanceState]:
        """Which release each instance runs (as the platform last started them)."""
        try:
            data = json.loads(self._instances_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [InstanceState(**item) for item in data.get("instances", [])]

    def _write_instances(self, instances: Sequence[InstanceState], edge: dict[str, Any]) -> None:
        tmp = self._instances_file.with_suffix(".tmp")
        document = {"instances": [asdict(i) for i in instances], "edge": edge}
        tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
        tmp.replace(self._instances_file)

    def _edge_settings(self) -> dict[str, Any]:
        try:
            data = json.loads(self._instances_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return dict(data.get("edge") or {})

    # -- inspection ----------------------------------------------------------------------

    def status(self) -> ProductionStatus:
        base = super().status()
        supervisor_alive = base.deployment is not None and sup.alive(base.deployment.pid)
        processes: dict[str, dict[str, Any]] = {}
        if supervisor_alive:
            with contextlib.suppress(sup.SupervisorError):
                processes = self._client().processes()
        return ProductionStatus(
            release=base.release,
            deployment=base.deployment,
            running=supervisor_alive
            and bool(processes)
            and all(p.get("alive") for p in processes.values()),
            processes=processes,
            instances=self.read_instances() if base.deployment else [],
            supervisor_alive=supervisor_alive,
        )

    def current(self) -> LocalRelease | None:
        status = super().status()
        live = status.deployment is not None and sup.alive(status.deployment.pid)
        return status.release if live else None

    def logs(self, limit: int = 200, release_id: int | None = None) -> list[str]:
        """The newest ``limit`` lines of every instance's log and the edge's access log,
        merged in time order, each line tagged with its source (``[instance 1] {...}``)."""
        sources = [(instance_tag(iid), self._service_log(f"instance-{iid}"))
                   for iid in self.instance_ids]  # fmt: skip
        sources.append((EDGE_TAG, self.state_dir / "edge" / "logs" / nginx.ACCESS_LOG))
        merged: list[tuple[dt.datetime, int, str]] = []
        for tag, path in sources:
            if not path.exists():
                continue
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()
            moment = dt.datetime.min.replace(tzinfo=dt.UTC)
            for line in text[-limit:] if limit else text:
                moment = _line_time(line) or moment  # a line without a time follows its own
                merged.append((moment, len(merged), f"{tag} {line}"))
        lines = [line for _, _, line in sorted(merged)]
        return lines[-limit:] if limit else lines

    # -- faults --------------------------------------------------------------------------

    def check_faults(self, faults: Sequence[str]) -> tuple[str, ...]:
        catalogue = load_faults(self.app_dir)
        platform_only = platform_faults(catalogue)
        for spec in faults:
            name, instance = split_fault(spec)
            if name not in catalogue:
                raise LocalPlatformError(
                    f"unknown fault {name!r}; known faults: {', '.join(sorted(catalogue))} "
                    "(see `postdeploy local faults`)"
                )
            if instance and instance not in self.instance_ids:
                raise LocalPlatformError(
                    f"fault {spec!r} names instance {instance!r}, but the production shape has "
                    f"instances {', '.join(self.instance_ids)}; write e.g. {name}@1"
                )
            if instance and name in platform_only:
                raise LocalPlatformError(
                    f"fault {spec!r}: {name} is a platform fault (the edge's or Prometheus's), "
                    f"so it applies to the whole deployment; write {name} without @{instance}"
                )
        return tuple(sorted({f"{n}{INSTANCE_SEP}{i}" if i else n
                             for n, i in map(split_fault, faults)}))  # fmt: skip

    # -- operations ----------------------------------------------------------------------

    def deploy(
        self,
        version: str = "1.0.0",
        faults: Sequence[str] = (),
        *,
        started_by: str = "",
        pause_s: float = 0.0,
        canary: int | None = None,
    ) -> LocalRelease:
        """Deploy a release; on a running shape it rolls out instance by instance."""
        self._pause_s, self._canary = pause_s, canary
        try:
            return super().deploy(version, faults, started_by=started_by)
        finally:
            self._pause_s, self._canary = 0.0, None

    def _launch(
        self,
        state: State,
        version: str,
        faults: tuple[str, ...],
        started_by: str,
        rolled_back_from: int | None = None,
    ) -> LocalRelease:
        release = self._next_release(state, version, faults, rolled_back_from)
        running = state.deployment is not None and sup.alive(state.deployment.pid)
        if running and state.deployment is not None:
            self._roll_out(release)
            state.deployment.release_id = release.id
        else:
            if state.deployment is not None:  # a supervisor that died: clear what it left
                self._terminate(state.deployment.pid)
                state.deployment = None
            pid = self._cold_start(release, started_by)
            state.deployment = Deployment(
                release_id=release.id, pid=pid, url=self.url, started_at=_now(),
                started_by=started_by,
            )  # fmt: skip
        state.releases.append(release)
        return release

    # -- cold start ----------------------------------------------------------------------

    def _check_ports(self) -> None:
        wanted = {
            f"the edge ({self.url})": (self.host, self.port),
            "PostgreSQL": ("127.0.0.1", self.postgres_port),
            "Prometheus (monitoring.prometheus_url)": ("127.0.0.1", self.prometheus_port),
            "Alertmanager (monitoring.alertmanager_url)": ("127.0.0.1", self.alertmanager_port),
            **{f"instance {iid}": ("127.0.0.1", port) for iid, port in self.instance_ports.items()},
        }
        for what, (host, port) in wanted.items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    reason = (
                        "is already in use by another process"
                        if exc.errno == errno.EADDRINUSE
                        else f"cannot be used ({exc.strerror})"
                    )
                    raise LocalPlatformError(
                        f"port {port} on {host}, wanted for {what}, {reason}; stop that process "
                        "(a stale deployment: `postdeploy local stop --target ...`), or move the "
                        "shape's ports (the target's url, port_base, monitoring URLs)"
                    ) from None

    def _cold_start(self, release: LocalRelease, started_by: str) -> int:
        try:
            binaries.require_all()
        except binaries.MissingBinary as exc:
            raise LocalPlatformError(str(exc)) from None
        if not (self.app_dir / "learning_assistant").is_dir():
            raise LocalPlatformError(
                f"the reference app is missing at {self.app_dir / 'learning_assistant'}; "
                f"set {paths.APP_DIR_ENV} to the folder that holds learning_assistant/"
            )
        self._check_ports()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        try:
            self.cluster.check_data_dir()
        except PostgresError as exc:
            raise LocalPlatformError(str(exc)) from None
        owner = os.getpid() if started_by else 0
        try:
            process = sup.start(
                self._socket, self._service_log("supervisor"), owner=owner, label=LABEL
            )
        except sup.SupervisorError as exc:
            raise LocalPlatformError(str(exc)) from None
        client = self._client()
        try:
            # What does not depend on anything starts first, and the waits come last, so the
            # processes start side by side: a cold start costs the slowest, not the sum.
            self._spawn_monitoring(client, release)
            try:
                self.cluster.ensure_created()
            except PostgresError as exc:
                raise LocalPlatformError(str(exc)) from None
            self._spawn_postgres(client)
            instances = [self._spawn_instance(client, iid, release) for iid in self.instance_ids]
            edge = self._spawn_edge(client, release)
            for instance in instances:
                self._wait_instance(client, instance)
            self._wait_edge(client)
            self._wait_monitoring(client)
            self._write_instances(instances, edge)
        except BaseException:
            with contextlib.suppress(sup.SupervisorError):
                client.shutdown()
            self._wait_gone(process.pid)
            raise
        return process.pid

    def _spawn_postgres(self, client: sup.SupervisorClient) -> None:
        cluster = self.cluster
        try:
            client.spawn(
                "postgres", cluster.server_argv(), env=_base_env(), log=cluster.log,
                cwd=cluster.folder, user=cluster.run_as, stop_signal="INT",
            )  # fmt: skip
            cluster.wait_ready(lambda: _alive_in(client, "postgres"))
        except (PostgresError, sup.SupervisorError) as exc:
            raise LocalPlatformError(str(exc)) from None

    def _instance_env(self, iid: str, release: LocalRelease) -> dict[str, str]:
        inherited = {k: v for k, v in _base_env().items() if not k.startswith("LA_")}
        return {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "LA_VERSION": release.version,
            "LA_FAULTS": ",".join(faults_of_instance(release.faults, iid)),
            "LA_DATABASE_URL": self.cluster.app_url(),
            "LA_INSTANCE_ID": iid,
            "LA_TRUSTED_PROXIES": "127.0.0.1",
            "LA_SECRET_KEY": self._secret_key(),
            **sentry_standin.deployment_env(self.state_dir),
            **self.app_limits,
        }

    def _spawn_instance(
        self, client: sup.SupervisorClient, iid: str, release: LocalRelease
    ) -> InstanceState:
        """Start instance ``iid`` with ``release``; :meth:`_wait_instance` waits for it."""
        port = self.instance_ports[iid]
        command = [
            sys.executable, "-m", "uvicorn", APP_FACTORY, "--factory",
            "--app-dir", str(self.app_dir), "--host", "127.0.0.1", "--port", str(port),
            "--no-proxy-headers", "--no-server-header", "--no-access-log",
            "--log-level", "warning", "--timeout-graceful-shutdown", "2",
        ]  # fmt: skip
        name = f"instance-{iid}"
        try:
            pid = client.spawn(
                name, command, env=self._instance_env(iid, release),
                log=self._service_log(name), cwd=self.state_dir,
            )  # fmt: skip
        except sup.SupervisorError as exc:
            raise LocalPlatformError(f"starting {name}: {exc}") from None
        return InstanceState(
            id=iid, port=port, release_id=release.id, version=release.version,
            faults=faults_of_instance(release.faults, iid), pid=pid, started_at=_now(),
        )  # fmt: skip

    def _wait_instance(self, client: sup.SupervisorClient, instance: InstanceState) -> None:
        """Until the instance answers on its own port (checked before the next is replaced)."""
        name = f"instance-{instance.id}"
        self._wait_answering(
            f"http://127.0.0.1:{instance.port}/api/health", name, client,
            self._service_log(name), INSTANCE_START_TIMEOUT_S,
        )  # fmt: skip

    def _start_instance(
        self, client: sup.SupervisorClient, iid: str, release: LocalRelease
    ) -> InstanceState:
        instance = self._spawn_instance(client, iid, release)
        self._wait_instance(client, instance)
        return instance

    def _edge_spec(self, release: LocalRelease) -> tuple[nginx.Edge, dict[str, Any]]:
        whole = whole_faults(release.faults)
        tls = server_tls(sorted(whole))
        valid_days = tls.cert_valid_days or certs.SERVER_CERT_DAYS
        issued = certs.issue_server_tls(self.state_dir, valid_days=valid_days)
        edge = nginx.Edge(
            prefix=self.state_dir / "edge", host=self.host, port=self.port,
            cert_file=issued.cert_file, key_file=issued.key_file,
            instances=dict(self.instance_ports), weak_tls="weak_tls" in whole,
        )  # fmt: skip
        settings = {"weak_tls": edge.weak_tls, "cert_days": valid_days}
        return edge, settings

    def _spawn_edge(self, client: sup.SupervisorClient, release: LocalRelease) -> dict[str, Any]:
        edge, settings = self._edge_spec(release)
        binary = binaries.find(binaries.NGINX)
        nginx.write(edge)
        openssl_conf = LEGACY_CONF if edge.weak_tls else INTERMEDIATE_CONF
        env = {**_base_env(), "OPENSSL_CONF": str(openssl_conf)}
        try:
            nginx.test_config(binary, edge, env)
            client.spawn(
                "edge", nginx.argv(binary, edge), env=env, log=self._service_log("edge"),
                cwd=edge.prefix, stop_signal="QUIT",
            )  # fmt: skip
        except (ValueError, sup.SupervisorError) as exc:
            raise LocalPlatformError(f"starting the edge (nginx): {exc}") from None
        return settings

    def _wait_edge(self, client: sup.SupervisorClient) -> None:
        self._wait_answering(
            f"{self.url}/api/health", "edge", client, self._service_log("edge"),
            EDGE_START_TIMEOUT_S,
        )  # fmt: skip

    def _start_edge(self, client: sup.SupervisorClient, release: LocalRelease) -> dict[str, Any]:
        settings = self._spawn_edge(client, release)
        self._wait_edge(client)
        return settings

    def _monitoring_spec(self, release: LocalRelease) -> platform_monitoring.MonitoringSpec:
        return platform_monitoring.MonitoringSpec(
            folder=self.state_dir / "monitoring", job=JOB, instances=dict(self.instance_ports),
            prometheus_port=self.prometheus_port, alertmanager_port=self.alertmanager_port,
            without_rules="alert_rules_missing" in whole_faults(release.faults),
        )  # fmt: skip

    def _spawn_monitoring(self, client: sup.SupervisorClient, release: LocalRelease) -> None:
        spec = self._monitoring_spec(release)
        prometheus_file, alertmanager_file = platform_monitoring.write(spec)
        data = spec.folder / "data"
        shutil.rmtree(data, ignore_errors=True)  # monitoring lives and dies with the deployment
        try:
            client.spawn(
                "alertmanager",
                platform_monitoring.alertmanager_argv(
                    binaries.find(binaries.ALERTMANAGER), spec, alertmanager_file,
                    data / "alertmanager",
                ),
                env=_base_env(), log=self._service_log("alertmanager"), cwd=spec.folder,
            )  # fmt: skip
            client.spawn(
                "prometheus",
                platform_monitoring.prometheus_argv(
                    binaries.find(binaries.PROMETHEUS), spec, prometheus_file, data / "prometheus"
                ),
                env=_base_env(), log=self._service_log("prometheus"), cwd=spec.folder,
            )  # fmt: skip
        except (binaries.MissingBinary, sup.SupervisorError) as exc:
            raise LocalPlatformError(f"starting the platform's monitoring: {exc}") from None

    def _wait_monitoring(self, client: sup.SupervisorClient) -> None:
        for name, port in (("alertmanager", self.alertmanager_port),
                           ("prometheus", self.prometheus_port)):  # fmt: skip
            self._wait_answering(
                f"http://127.0.0.1:{port}/-/ready", name, client, self._service_log(name),
                MONITORING_START_TIMEOUT_S, want_ok=True,
            )  # fmt: skip

    def _start_monitoring(self, client: sup.SupervisorClient, release: LocalRelease) -> None:
        self._spawn_monitoring(client, release)
        self._wait_monitoring(client)

    def _restart_monitoring(self, client: sup.SupervisorClient, release: LocalRelease) -> None:
        for name in ("prometheus", "alertmanager"):
            client.stop(name)
        self._start_monitoring(client, release)

    # -- rolling deploy ------------------------------------------------------------------

    def _roll_out(self, release: LocalRelease) -> None:
        """Replace the instances one at a time, each answering before the next goes."""
        client = self._client()
        instances = {i.id: i for i in self.read_instances()}
        edge = self._edge_settings()
        new_edge = self._edge_spec(release)[1]
        try:
            if new_edge != edge:  # the release changes the edge (a TLS fault comes or goes)
                client.stop("edge")
                edge = self._start_edge(client, release)
            rules_now = (self.state_dir / "monitoring" / "rules.yml").exists()
            if rules_now == self._monitoring_spec(release).without_rules:
                self._restart_monitoring(client, release)
            targets = self.instance_ids[: self._canary] if self._canary else self.instance_ids
            answered: dict[str, float] = {}
            for n, iid in enumerate(targets):
                if n and self._pause_s:
                    time.sleep(self._pause_s)
                client.stop(f"instance-{iid}")
                instances[iid] = self._start_instance(client, iid, release)
                answered[iid] = time.time()
                self._write_instances([instances[i] for i in sorted(instances)], edge)
        except sup.SupervisorError as exc:
            raise LocalPlatformError(f"rolling out release {release.id}: {exc}") from None
        # the edge's cache holds the replaced release's answers: purged on every deploy and
        # rollback (a canary's too), as Netlify and Vercel purge their edge
        nginx.purge_cache(self.state_dir / "edge")
        self._wait_monitoring_caught_up(answered)

    def _wait_monitoring_caught_up(self, answered: dict[str, float]) -> None:
        """Until the platform's Prometheus has scraped each replaced instance (instance id ->
        when it answered) since it answered.

        A platform's deploy ends when its monitoring sees the new instances: without this, a
        check right after a release that healed an outage could read the old release's last
        scrape (down) and cry wolf. Bounded; monitoring that lags longer is not a failed
        deploy, and the checks judge it.
        """
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/targets"
        deadline = time.monotonic() + MONITORING_CATCH_UP_S
        with httpx.Client(timeout=PROBE_TIMEOUT_S) as http:
            while time.monotonic() < deadline:
                try:
                    targets = http.get(url, params={"state": "active"}).json()["data"]
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    return  # no Prometheus to wait for (stopped, or not ours)
                scraped = {
                    str(t.get("labels", {}).get(platform_monitoring.INSTANCE_LABEL)): t
                    for t in targets.get("activeTargets", [])
                }
                if all(
                    iid in scraped and _scraped_since(scraped[iid], since)
                    for iid, since in answered.items()
                ):
                    return
                time.sleep(POLL_S)

    # -- waiting and stopping ------------------------------------------------------------

    def _wait_answering(
        self,
        url: str,
        name: str,
        client: sup.SupervisorClient,
        log: Path,
        timeout_s: float,
        *,
        want_ok: bool = False,
    ) -> None:
        """Until ``url`` answers over HTTP (any status; 200 if ``want_ok``)."""
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.ca_file) if url.startswith("https") else False
        )
        deadline = time.monotonic() + timeout_s
        probe_timeout = httpx.Timeout(PROBE_TIMEOUT_S, connect=PROBE_CONNECT_S)
        with httpx.Client(verify=verify, timeout=probe_timeout) as http:
            while time.monotonic() < deadline:
                if not _alive_in(client, name):
                    raise LocalPlatformError(
                        f"{name} exited while starting; last lines of {log}:\n{_tail(log)}"
                    )
                try:
                    response = http.get(url)
                    if not want_ok or response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(POLL_S)
        raise LocalPlatformError(
            f"{name} did not answer {url} within {timeout_s:.0f} s; see {log}:\n{_tail(log)}"
        )

    def _terminate(self, pid: int) -> None:  # type: ignore[override]
        """Stop the supervisor and, through it, every process of the shape."""
        if sup.alive(pid):
            with contextlib.suppress(sup.SupervisorError):
                self._client().shutdown()
        self._wait_gone(pid)

    @staticmethod
    def _wait_gone(pid: int) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while sup.alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(POLL_S)
        if sup.alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


#: The order the shape's processes are listed in (and started in).
PROCESS_ORDER = ("postgres", "instance-", "edge", "alertmanager", "prometheus")


def _order(name: str) -> tuple[int, str]:
    rank = next((n for n, p in enumerate(PROCESS_ORDER) if name.startswith(p)), len(PROCESS_ORDER))
    return rank, name


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


#: The first ISO 8601 time on a log line: the app's "ts" field, the edge's $time_iso8601.
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


def _scraped_since(target: dict[str, Any], since: float) -> bool:
    """A Prometheus target scraped up at or after ``since`` (a time.time())."""
    last = str(target.get("lastScrape") or "")
    moment = _line_time(last.replace("Z", "+00:00")) if last else None
    return target.get("health") == "up" and moment is not None and moment.timestamp() >= since


def _line_time(line: str) -> dt.datetime | None:
    found = _TIME.search(line)
    if found is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(found.group().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _base_env() -> dict[str, str]:
    return dict(os.environ)


def _alive_in(client: sup.SupervisorClient, name: str) -> bool:
    try:
        return bool(client.processes().get(name, {}).get("alive"))
    except sup.SupervisorError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
