"""The local platform: real deployments of the reference app, history, rollback, errors."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from postdeploy.config import Target, load_targets
from postdeploy.local import sentry_standin
from postdeploy.local.platform import DEFAULT_VERSION, LocalPlatform, LocalPlatformError
from postdeploy.rollback import DriverError
from postdeploy.rollback.local import LocalDriver


def health(env) -> dict:
    context = ssl.create_default_context(cafile=env.platform.ca_file)
    with httpx.Client(verify=context, timeout=5) as client:
        return client.get(f"{env.url}/api/health").json()


def test_deploy_serves_the_release_over_https_with_the_local_ca(local_env):
    release = local_env.platform.deploy("2.0.0")
    assert health(local_env)["version"] == "2.0.0"
    status = local_env.platform.status()
    assert status.running
    assert status.release == release


def test_a_faulty_release_carries_its_faults_and_rollback_restores_the_previous(local_env):
    platform = local_env.platform
    good = platform.deploy("3.0.0")
    bad = platform.deploy("3.1.0", ["health_down"])
    assert health(local_env)["status"] == "unhealthy"
    restored = platform.rollback()
    assert (restored.version, restored.faults, restored.rolled_back_from) == ("3.0.0", (), bad.id)
    assert health(local_env)["status"] == "healthy"
    assert [r.id for r in platform.releases()[:3]] == [restored.id, bad.id, good.id]


def test_the_database_survives_a_redeploy(local_env):
    platform = local_env.platform
    platform.deploy("4.0.0")
    context = ssl.create_default_context(cafile=platform.ca_file)
    with httpx.Client(base_url=local_env.url, verify=context, timeout=5) as client:
        creds = {"email": "persist-check@example.com", "password": "persisted-pass-1"}
        client.post("/api/auth/register", json={**creds, "name": "P"})
        platform.deploy("4.0.1")
        assert client.post("/api/auth/login", json=creds).status_code == 200


def test_an_unknown_fault_is_refused_and_names_the_known_ones(local_env):
    with pytest.raises(
        LocalPlatformError, match=r"unknown fault 'gremlins'; known faults: .*login_broken"
    ):
        local_env.platform.deploy("5.0.0", ["gremlins"])


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        platform = LocalPlatform(f"https://127.0.0.1:{port}", state_dir=tmp_path)
        with pytest.raises(LocalPlatformError, match=f"port {port} on 127.0.0.1 is already in use"):
            platform.deploy("1.0.0")


def test_a_non_https_local_url_is_refused(tmp_path):
    with pytest.raises(LocalPlatformError, match="must be https://HOST:PORT"):
        LocalPlatform("http://127.0.0.1:8080", state_dir=tmp_path)


def test_the_cli_manages_the_local_deployment(local_env):
    deployed = local_env.cli("local", "deploy", "6.0.0", "--faults", "wrong_version")
    assert deployed.returncode == 0, deployed.stderr
    assert "(6.0.0+wrong_version)" in deployed.stdout
    status = local_env.cli("local", "status")
    assert "version 6.0.0, faults: wrong_version" in status.stdout
    faults = local_env.cli("local", "faults")
    assert "login_broken" in faults.stdout
    logs = local_env.cli("local", "logs", "-n", "5")
    assert logs.returncode == 0
    rolled = local_env.cli("local", "rollback")
    assert rolled.returncode == 0, rolled.stderr
    stopped = local_env.cli("local", "stop")
    assert "stopped release" in stopped.stdout
    assert "nothing deployed" in local_env.cli("local", "status").stdout


def test_the_cli_reports_bad_input_without_a_traceback(local_env):
    bad = local_env.cli("local", "deploy", "1.0.0", "--faults", "nope")
    assert bad.returncode == 1
    assert "unknown fault 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    wrong = local_env.cli("local", "--target", "fly", "status")
    assert wrong.returncode == 2
    assert "'fly' is not a local target" in wrong.stderr


# -- the local driver's part in a run (the lifecycle hooks of the driver protocol) ----------


def local_target(tmp_path, url: str) -> Target:
    path = tmp_path / "targets.toml"
    path.write_text(f'[targets.local]\nplatform = "local"\nurl = "{url}"\n', encoding="utf-8")
    return load_targets(path, environ={}).targets["local"]


def test_a_run_deploys_when_nothing_serves_and_stops_only_what_it_started(local_env, tmp_path):
    platform = local_env.platform
    platform.stop()
    driver = LocalDriver(local_target(tmp_path, local_env.url), platform)

    prepared = driver.prepare("run-a", None)
    assert prepared.ca_file == str(platform.ca_file)
    assert driver.current_app_version() == DEFAULT_VERSION
    assert health(local_env)["version"] == DEFAULT_VERSION

    driver.prepare("run-b", "9.9.9")  # something serves: a second run leaves it alone
    assert driver.current_app_version() == DEFAULT_VERSION
    driver.finish("run-b")
    assert platform.status().running

    driver.finish("run-a")
    assert not platform.status().running
    assert driver.current_app_version() is None


def test_the_local_driver_reports_the_monitoring_services_of_the_platform(local_env, tmp_path):
    platform = local_env.platform
    platform.deploy("6.0.0")
    services = LocalDriver(local_target(tmp_path, local_env.url), platform).services()

    sentry = services.sentry()
    standin = sentry_standin.running(platform.state_dir)
    assert standin is not None
    assert (sentry.api_url, sentry.token, sentry.standin) == (standin.url, standin.api_token, True)
    assert standin.api_token not in repr(sentry)
    assert services.error_trigger_token() == sentry_standin.read_trigger_token(platform.state_dir)

    platform.stop()
    with pytest.raises(DriverError, match="the local Sentry stand-in is not running"):
        services.sentry()
