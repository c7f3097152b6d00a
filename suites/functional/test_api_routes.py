"""Functional testing - API endpoints: every route of the contract responds as documented."""

from __future__ import annotations

import pytest

from postdeploy.contract import PATHS
from postdeploy.expect import expect_fields, expect_status, json_body

#: (method, path, authenticated, expected status, fields of the JSON answer)
ROUTES = [
    ("GET", PATHS.health, False, 200, ("status", "version", "checks")),
    ("GET", PATHS.content, False, 200, ("items",)),
    ("GET", PATHS.lesson(1), False, 200, ("id", "title", "learning_style", "body")),
    ("GET", PATHS.openapi, False, 200, ("openapi", "paths")),
    ("GET", PATHS.me, True, 200, ("id", "email", "name")),
    ("GET", PATHS.csrf, True, 200, ("csrf_token",)),
    ("GET", PATHS.progress, True, 200, ("completed_lessons", "total_time_s", "average_score")),
    ("GET", PATHS.profile, True, 200, ("learning_style", "preferences")),
]

PAGES = [
    PATHS.page_home,
    PATHS.page_register,
    PATHS.page_login,
    PATHS.page_dashboard,
    PATHS.page_lesson(1),
]


@pytest.mark.parametrize(
    ("method", "path", "authenticated", "status", "fields"),
    ROUTES,
    ids=[f"{method} {path}" for method, path, *_ in ROUTES],
)
def test_api_route_responds_as_documented(
    api, new_user, method, path, authenticated, status, fields
):
    headers = new_user().auth if authenticated else {}
    response = api.request(method, path, headers=headers)
    expect_status(response, status)
    expect_fields(json_body(response), fields, f"{method} {path}")


def test_metrics_are_exposed_in_prometheus_format(api):
    response = api.get(PATHS.metrics)
    expect_status(response, 200)
    assert response.headers.get("content-type", "").startswith("text/plain"), (
        f"GET {PATHS.metrics} content type is {response.headers.get('content-type')!r}"
    )
    assert "# TYPE " in response.text, f"GET {PATHS.metrics} has no metric TYPE lines"


@pytest.mark.parametrize("path", PAGES)
def test_html_page_is_served(api, path):
    response = api.get(path)
    expect_status(response, 200)
    assert response.headers.get("content-type", "").startswith("text/html"), (
        f"GET {path} content type is {response.headers.get('content-type')!r}"
    )


def test_an_unknown_route_answers_a_json_404(api):
    response = api.get("/api/does-not-exist")
    expect_status(response, 404)
    assert "error" in json_body(response)
