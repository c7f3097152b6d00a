"""Error tracking: the local Sentry stand-in speaks what sentry-sdk sends and the documented
events API; the harness's Sentry client finds events by tag and fails clearly."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest
import sentry_sdk

from postdeploy.local import sentry_standin
from postdeploy.local.sentry_standin import ORG, PROJECT, PROJECT_ID, parse_envelope
from postdeploy.monitoring.error_tracking import (
    ErrorNotTracked,
    ErrorTrackingError,
    SentryAPI,
    SentryProject,
    wait_for_event,
)

from .conftest import API_TOKEN, PUBLIC_KEY

EVENTS = f"/api/0/projects/{ORG}/{PROJECT}/events/"


def project(standin, token: str = API_TOKEN) -> SentryProject:
    return SentryProject(standin.url, ORG, PROJECT, token, "$SENTRY_STANDIN_TOKEN", standin=True)


def send_with_the_sdk(dsn: str, tags: dict[str, str]) -> str:
    """Report one exception with a real sentry-sdk client; returns its event id."""
    sentry_sdk.init(dsn=dsn, default_integrations=False, release="9.9.9")
    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        try:
            raise RuntimeError("boom for the stand-in")
        except RuntimeError as exc:
            event_id = sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=5)
    assert event_id
    return event_id


def test_an_sdk_envelope_becomes_a_listed_event_with_its_tags(standin, sentry_reset):
    event_id = send_with_the_sdk(standin.dsn, {"postdeploy_check_id": "c-7"})

    api = SentryAPI(project(standin), timeout_s=5)
    [event] = list(api.events(window_s=60))

    assert event["eventID"] == event_id
    assert event["title"] == "RuntimeError: boom for the stand-in"
    assert {"key": "postdeploy_check_id", "value": "c-7"} in event["tags"]
    assert {"key": "release", "value": "9.9.9"} in event["tags"]
    assert {"id", "groupID", "dateCreated", "event.type", "platform"} <= set(event)
    assert api.find_tagged("postdeploy_check_id", "c-7", 60)["eventID"] == event_id
    assert api.find_tagged("postdeploy_check_id", "other", 60) is None


def test_the_legacy_store_endpoint_and_gzip_are_accepted(standin):
    body = gzip.compress(json.dumps({"event_id": "a" * 32, "message": "stored"}).encode())
    response = httpx.post(
        f"{standin.url}/api/{PROJECT_ID}/store/?sentry_key={PUBLIC_KEY}",
        content=body,
        headers={"Content-Encoding": "gzip"},
    )

    assert response.json() == {"id": "a" * 32}
    assert SentryAPI(project(standin), 5).find_tagged("level", "x", 60) is None
    assert next(SentryAPI(project(standin), 5).events(60))["title"] == "stored"


def test_an_envelope_with_a_wrong_key_is_refused(standin):
    response = httpx.post(
        f"{standin.url}/api/{PROJECT_ID}/envelope/",
        content=b'{}\n{"type":"event"}\n{}\n',
        headers={"X-Sentry-Auth": "Sentry sentry_key=wrong, sentry_version=7"},
    )

    assert response.status_code == 401


def test_envelope_items_with_and_without_length_are_parsed():
    body = b'{"event_id":"e1"}\n{"type":"event","length":9}\n{"a":"b"}\n{"type":"session"}\n{}\n'

    header, items = parse_envelope(body)

    assert header == {"event_id": "e1"}
    assert [(h["type"], p) for h, p in items] == [("event", b'{"a":"b"}'), ("session", b"{}")]


def test_events_are_paginated_through_the_link_header(standin):
    items = b"".join(
        b'{"type":"event"}\n'
        + json.dumps({"message": f"m{number}", "tags": {"n": str(number)}}).encode()
        + b"\n"
        for number in range(sentry_standin.PAGE_SIZE + 5)
    )
    httpx.post(
        f"{standin.url}/api/{PROJECT_ID}/envelope/?sentry_key={PUBLIC_KEY}",
        content=b"{}\n" + items,
    )
    api = SentryAPI(project(standin), timeout_s=5)

    events = list(api.events(window_s=60))

    assert len(events) == sentry_standin.PAGE_SIZE + 5
    assert events[0]["title"] == f"m{sentry_standin.PAGE_SIZE + 4}"  # newest first
    assert api.find_tagged("n", "0", 60) is not None  # found on the second page


def test_a_wrong_token_is_a_clear_failure_that_never_shows_the_token(standin):
    api = SentryAPI(project(standin, token="wrong-token-value"), timeout_s=5)

    with pytest.raises(ErrorTrackingError) as failure:
        api.find_tagged("k", "v", 60)

    message = str(failure.value)
    assert "refused the token from $SENTRY_STANDIN_TOKEN (HTTP 401: Invalid token)" in message
    assert f"GET {EVENTS}" in message
    assert "wrong-token-value" not in message


def test_an_unknown_project_says_which_settings_to_check(standin):
    wrong = SentryProject(standin.url, ORG, "nope", API_TOKEN, "$T")

    with pytest.raises(ErrorTrackingError, match="no project postdeploy-local/nope; check"):
        SentryAPI(wrong, 5).find_tagged("k", "v", 60)


def test_an_unreachable_sentry_fails_fast():
    api = SentryAPI(SentryProject("http://127.0.0.1:9", ORG, PROJECT, "t", "$T"), 2)

    with pytest.raises(ErrorTrackingError, match=r"Sentry at http://127.0.0.1:9 .*unreachable"):
        api.find_tagged("k", "v", 60)


def test_an_event_that_never_comes_fails_within_the_bound(standin):
    api = SentryAPI(project(standin), timeout_s=5)
    started = time.monotonic()

    with pytest.raises(ErrorNotTracked, match=r"no event tagged k=v arrived .* within 0.6 s"):
        wait_for_event(api, "k", "v", timeout_s=0.6, started=time.time())

    assert time.monotonic() - started < 3


def test_the_stand_in_needs_a_bearer_token_for_the_api(standin):
    response = httpx.get(f"{standin.url}{EVENTS}")

    assert response.status_code == 401
    assert httpx.get(f"{standin.url}/api/0/").status_code == 200
