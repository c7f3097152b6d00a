"""targets.toml loading: strict, clear errors, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from postdeploy.config import ConfigError, load_targets

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """
[targets.web]
platform = "render"
url = "https://web.example.com"
service_id = "srv-1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


def test_the_shipped_targets_file_loads_every_platform():
    targets = load_targets(REPO / "targets.toml", environ={}).targets
    assert {t.platform for t in targets.values()} == {
        "local",
        "fly",
        "railway",
        "render",
        "aws",
        "gcp",
        "azure",
    }
    assert targets["fly"].setting("app")
    assert targets["local"].thresholds.response_time_ms == 2000


def test_defaults_apply_and_targets_override_them(tmp_path):
    path = write(tmp_path, "[defaults.thresholds]\nresponse_time_ms = 900\n" + MINIMAL)
    target = load_targets(path, environ={}).targets["web"]
    assert target.thresholds.response_time_ms == 900
    assert target.rollback.allowed is True


def test_environment_overrides_url_and_section_keys(tmp_path):
    environ = {
        "POSTDEPLOY_WEB_URL": "https://other.example.com/",
        "POSTDEPLOY_WEB_THRESHOLDS_RESPONSE_TIME_MS": "1500",
        "POSTDEPLOY_WEB_ROLLBACK_ALLOWED": "false",
    }
    target = load_targets(write(tmp_path, MINIMAL), environ=environ).targets["web"]
    assert target.url == "https://other.example.com"
    assert target.thresholds.response_time_ms == 1500
    assert target.rollback.allowed is False


def test_secrets_are_read_from_the_named_environment_variable(tmp_path, monkeypatch):
    target = load_targets(write(tmp_path, MINIMAL), environ={}).targets["web"]
    monkeypatch.setenv("RENDER_API_KEY", "rnd_test")
    assert target.secret() == "rnd_test"


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (MINIMAL + "colour = 'red'\n", {}, "unknown key 'colour' in [targets.web]; valid keys:"),
        (
            MINIMAL.replace('service_id = "srv-1"\n', ""),
            {},
            "missing the required key 'service_id'",
        ),
        (MINIMAL.replace("https://web.example.com", "web.example.com"), {}, "is not a valid URL"),
        (MINIMAL.replace('"render"', '"heroku"'), {}, "platform = 'heroku' is unknown; valid"),
        (MINIMAL + "timeout_s = 'soon'\n", {}, "timeout_s must be a number"),
        (MINIMAL + "[targets.web.rollback]\nallow = true\n", {}, "unknown key 'allow'"),
        ("[targets.web\n", {}, "not valid TOML"),
        ("", {}, "no [targets.NAME] tables"),
        (MINIMAL, {"POSTDEPLOY_WEB_COLOUR": "red"}, "POSTDEPLOY_WEB_COLOUR does not name"),
        (MINIMAL, {"POSTDEPLOY_WEB_ROLLBACK_ALLOWED": "maybe"}, "must be true or false"),
    ],
    ids=[
        "unknown-key",
        "missing-key",
        "bad-url",
        "unknown-platform",
        "wrong-type",
        "unknown-section-key",
        "bad-toml",
        "no-targets",
        "unknown-env",
        "bad-env-bool",
    ],
)
def test_bad_configuration_names_file_key_and_choices(tmp_path, text, environ, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_targets(path, environ=environ)
    assert message in str(error.value)
    if "POSTDEPLOY_" not in message and "environment" not in str(error.value):
        assert str(path) in str(error.value)


def test_a_missing_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigError, match="file not found; create it"):
        load_targets(tmp_path / "nope.toml")


def test_selecting_targets(tmp_path):
    text = MINIMAL + MINIMAL.replace("targets.web", "targets.api")
    targets = load_targets(write(tmp_path, text), environ={})
    assert [t.name for t in targets.select("all")] == ["web", "api"]
    assert [t.name for t in targets.select("api,web")] == ["api", "web"]
    with pytest.raises(
        ConfigError, match=r"unknown target 'fly'.*valid targets in .*: web, api, all"
    ):
        targets.select("web,fly")
