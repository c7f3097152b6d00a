"""Units of the production shape that need no deployment: faults per instance, the edge's
configuration, the rollout wait, per-instance checks, and the errors for bad input."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from postdeploy.config import ConfigError, load_targets
from postdeploy.instances import Route, check_each, routes
from postdeploy.local import binaries, nginx
from postdeploy.local.platform import LocalPlatformError
from postdeploy.local.postgres import Cluster, PostgresError
from postdeploy.local.production import ProductionPlatform, faults_of_instance, split_fault
from postdeploy.rollback.base import Instance
from postdeploy.rollout import wait_for_rollout
from tests.standins._base import FakeClock

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def platform(tmp_path: Path) -> ProductionPlatform:
    return ProductionPlatform("https://127.0.0.1:19443", state_dir=tmp_path / "state")


# -- faults per instance --------------------------------------------------------------------


def test_a_fault_goes_to_its_instance_only() -> None:
    faults = ("health_down", "login_broken@1", "wrong_version@2")
    assert split_fault("login_broken@1") == ("login_broken", "1")
    assert faults_of_instance(faults, "1") == ["health_down", "login_broken"]
    assert faults_of_instance(faults, "2") == ["health_down", "wrong_version"]


def test_faults_are_checked_against_the_catalogue_and_the_instances(
    platform: ProductionPlatform,
) -> None:
    assert platform.check_faults(["login_broken@1", "weak_tls"]) == ("login_broken@1", "weak_tls")
    with pytest.raises(LocalPlatformError, match=r"instances 1, 2; write e\.g\. login_broken@1"):
        platform.check_faults(["login_broken@3"])
    with pytest.raises(LocalPlatformError, match=r"platform fault .* write weak_tls without @1"):
        platform.check_faults(["weak_tls@1"])
    with pytest.raises(LocalPlatformError, match="unknown fault 'nope'"):
        platform.check_faults(["nope@1"])


# -- the edge -------------------------------------------------------------------------------


def test_the_edge_serves_mozilla_intermediate_and_routes_on_the_instance_header(
    tmp_path: Path,
) -> None:
    edge = nginx.Edge(
        tmp_path, "127.0.0.1", 19443, tmp_path / "c.pem", tmp_path / "k.pem", {"1": 1, "2": 2}
    )
    conf = nginx.render_config(edge)
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in conf
    assert "ssl_session_tickets off;" in conf
    assert '"1" app_1;' in conf
    assert '"2" app_2;' in conf
    assert "map $http_x_postdeploy_instance $instance_upstream" in conf
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in conf
    assert "X-Forwarded-Proto $scheme" in conf
    assert f"pid {tmp_path / 'nginx.pid'};" in conf
    assert "daemon off;" in conf
    weak = nginx.render_config(
        nginx.Edge(tmp_path, "127.0.0.1", 1, tmp_path, tmp_path, {"1": 1}, weak_tls=True)
    )
    assert "TLSv1 TLSv1.1" in weak


# -- bad input ------------------------------------------------------------------------------


def test_a_missing_program_names_its_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binaries.shutil, "which", lambda name: None)
    monkeypatch.setattr(binaries.glob, "glob", lambda pattern: [])
    for program, package in (
        (binaries.NGINX, "nginx"),
        (binaries.ALERTMANAGER, "prometheus-alertmanager"),
    ):
        with pytest.raises(binaries.MissingBinary, match=f"apt-get install -y {package}"):
            binaries.find(program)
    with pytest.raises(binaries.MissingBinary, match="apt-get install -y postgresql"):
        binaries.postgres_bin_dir()


def test_a_missing_program_is_one_clear_deploy_error(
    platform: ProductionPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = binaries.shutil.which
    monkeypatch.setattr(
        binaries.shutil, "which", lambda name: None if name == "nginx" else real_which(name)
    )
    monkeypatch.setattr(binaries, "NGINX", binaries.Program("nginx", "nginx", ()))
    with pytest.raises(
        LocalPlatformError, match=r"^nginx is not installed.*apt-get install -y nginx"
    ):
        platform.deploy("1.0.0")
    assert platform.status().deployment is None


def test_a_port_in_use_is_a_clear_error(
    platform: ProductionPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binaries, "require_all", lambda: {})
    platform.port, platform.postgres_port = _free_port(), _free_port()
    platform.prometheus_port, platform.alertmanager_port = _free_port(), _free_port()
    platform.instance_ports = {"1": _free_port(), "2": _free_port()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        platform.instance_ports["2"] = port
        with pytest.raises(
            LocalPlatformError, match=f"port {port} .* instance 2, is already in use"
        ):
            platform.deploy("1.0.0")


def test_a_data_dir_that_is_not_postgres_is_refused_and_kept(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "postgres", 19999)
    cluster.data.mkdir(parents=True)
    (cluster.data / "precious.txt").write_text("keep me")
    with pytest.raises(
        PostgresError, match=r"not a PostgreSQL data directory.*Nothing was changed"
    ):
        cluster.ensure_created()
    assert (cluster.data / "precious.txt").read_text() == "keep me"


def test_a_bad_shape_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text('[targets.x]\nplatform = "local"\nshape = "huge"\nurl = "https://h:1"\n')
    with pytest.raises(ConfigError, match="shape = 'huge' is unknown; valid shapes: single"):
        load_targets(path, environ={})


def test_local_prod_overrides_do_not_leak_into_local() -> None:
    targets = load_targets(
        REPO / "targets.toml", environ={"POSTDEPLOY_LOCAL_PROD_URL": "https://127.0.0.1:1"}
    ).targets
    assert targets["local-prod"].url == "https://127.0.0.1:1"
    assert targets["local"].url == "https://127.0.0.1:18443"


# -- checks per instance --------------------------------------------------------------------


def _target(repeats: int = 6):
    return load_targets(
        REPO / "targets.toml", environ={"POSTDEPLOY_FLY_INSTANCE_REPEATS": str(repeats)}
    ).targets["fly"]


def test_addressable_instances_are_checked_one_by_one() -> None:
    found = [
        Instance("a", headers={"fly-force-instance-id": "a"}),
        Instance("b", headers={"x": "b"}),
    ]
    assert [r.label for r in routes(_target(), found)] == ["instance a", "instance b"]


def test_without_addressing_a_check_is_repeated() -> None:
    assert len(routes(_target(4), [])) == 4
    assert len(routes(_target(4), [Instance("1")])) == 1


def test_check_each_names_every_instance_that_failed() -> None:
    def check(route: Route) -> None:
        assert route.label != "instance 1", "login answered 401"

    with pytest.raises(AssertionError, match=r"failed on 1 of 2 .*instance 1: login answered 401"):
        check_each([Route("instance 1"), Route("instance 2")], check)


def test_check_each_runs_read_only_checks_at_most_in_flight_at_once() -> None:
    """The same failure message as one at a time, in route order, with at most ``in_flight``
    routes checked at once. Each check waits for two others (a barrier of 3): the 6 routes go
    in two waves of 3, and a fourth at once would show in the peak."""
    lock, running, peak = threading.Lock(), [0], [0]
    waves = threading.Barrier(3, timeout=10)

    def check(route: Route, barrier: threading.Barrier | None = None) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if barrier is not None:
            barrier.wait()
        with lock:
            running[0] -= 1
        assert route.label not in ("instance 2", "instance 5"), "health answered 503"

    each = [Route(f"instance {n}") for n in range(1, 7)]
    with pytest.raises(AssertionError) as concurrent:
        check_each(each, lambda route: check(route, waves), in_flight=3)
    assert peak[0] == 3
    with pytest.raises(AssertionError) as sequential:
        check_each(each, check)
    assert str(concurrent.value) == str(sequential.value)
    assert str(concurrent.value).startswith("failed on 2 of 6 (4 passed) - instance 2: health")


def test_check_each_raises_the_first_error_that_is_not_a_failed_assertion() -> None:
    """An error of the harness or the connection (not a verdict) is raised as it is: the
    first in route order, whether the routes ran one at a time or at once."""
    ran: list[str] = []

    def check(route: Route) -> None:
        ran.append(route.label)
        if route.label == "instance 1":
            raise AssertionError("version 1.0.0")
        if route.label in ("instance 2", "instance 3"):
            raise ConnectionError(f"{route.label} refused the connection")

    each = [Route(f"instance {n}") for n in range(1, 5)]
    with pytest.raises(ConnectionError, match="instance 2 refused"):
        check_each(each, check)
    assert ran == ["instance 1", "instance 2"]  # one at a time: it stops there
    with pytest.raises(ConnectionError, match="instance 2 refused"):
        check_each(each, check, in_flight=4)


# -- the rollout wait -----------------------------------------------------------------------


class _Rollout:
    """Instances whose versions change as the fake clock moves."""

    def __init__(self, plan: list[tuple[float, dict[str, str], dict[str, str]]]) -> None:
        self.plan = plan  # (from time, platform versions, app versions)
        self.clock = FakeClock()

    def _now(self) -> tuple[dict[str, str], dict[str, str]]:
        return next((p, a) for t, p, a in reversed(self.plan) if self.clock.now >= t)

    def instances(self) -> list[Instance]:
        return [Instance(i, v, headers={"X-I": i}) for i, v in self._now()[0].items()]

    def client(self) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            version = self._now()[1][request.headers["X-I"]]
            return httpx.Response(200, json={"status": "healthy", "version": version})

        return httpx.Client(transport=httpx.MockTransport(handle), base_url="https://t")

    def wait(self, expected: str, timeout_s: float = 60.0):
        return wait_for_rollout(
            self.client(), expected, self.instances,
            lambda found: [Route(f"instance {i.id}", i.headers, i) for i in found],
            timeout_s=timeout_s, stable_probes=3, poll_s=1.0,
            clock=self.clock, sleep=self.clock.sleep,
        )  # fmt: skip


def test_mixed_versions_during_a_rollout_are_waited_for() -> None:
    rollout = _Rollout(
        [
            (0, {"1": "2", "2": "1"}, {"1": "2.0", "2": "1.0"}),
            (10, {"1": "2", "2": "2"}, {"1": "2.0", "2": "2.0"}),
        ]
    )
    result = rollout.wait("2.0")
    assert result.done, result.message
    assert 10 <= result.waited_s <= 13


def test_a_stalled_rollout_fails_with_what_was_seen() -> None:
    rollout = _Rollout([(0, {"1": "2", "2": "1"}, {"1": "2.0", "2": "1.0"})])
    result = rollout.wait("2.0", timeout_s=20)
    assert not result.done
    assert "did not finish within 20 s" in result.message
    assert "instance 2 reports '1.0' (for 20 s)" in result.message


def test_a_wrong_version_on_a_settled_platform_fails_at_once() -> None:
    rollout = _Rollout([(0, {"1": "2", "2": "2"}, {"1": "9.9", "2": "2.0"})])
    result = rollout.wait("2.0", timeout_s=300)
    assert not result.done
    assert result.waited_s < 10
    assert "instance 1 do(es) not report version '2.0'" in result.message


def test_logs_merge_every_source_in_time_order_within_the_limit(
    platform: ProductionPlatform,
) -> None:
    logs = platform.state_dir / "logs"
    edge = platform.state_dir / "edge" / "logs"
    logs.mkdir(parents=True)
    edge.mkdir(parents=True)
    (logs / "instance-1.log").write_text(
        '{"ts": "2026-01-01T10:00:01.000+00:00", "request_id": "a"}\nTraceback (no time)\n'
        '{"ts": "2026-01-01T10:00:05.000+00:00", "request_id": "c"}\n'
    )
    (logs / "instance-2.log").write_text(
        '{"ts": "2026-01-01T10:00:03.000+00:00", "request_id": "b"}\n'
    )
    (edge / "access.log").write_text('2026-01-01T10:00:04+00:00 127.0.0.1 "GET / HTTP/1.1" 200\n')
    lines = platform.logs(limit=4)
    assert [line.split(" ", 2)[:2] for line in lines] == [
        ["[instance", "1]"], ["[instance", "2]"], ["[edge]", "2026-01-01T10:00:04+00:00"],
        ["[instance", "1]"],
    ]  # fmt: skip
    assert '"request_id": "c"' in lines[-1]
    assert "Traceback" in platform.logs(limit=0)[1]


def test_an_alertmanager_that_cannot_be_asked_breaks_the_check() -> None:
    from postdeploy.gate import BackendError
    from postdeploy.monitoring.alertmanager import AlertmanagerAPI, AlertmanagerUnavailable

    api = AlertmanagerAPI(f"http://127.0.0.1:{_free_port()}", timeout_s=1.0)
    with pytest.raises(AlertmanagerUnavailable, match="unreachable") as failure:
        api.active_alerts()
    api.close()
    assert isinstance(failure.value, BackendError)
    assert not isinstance(failure.value, AssertionError)
    assert failure.value.label() == "Alertmanager: unreachable"
