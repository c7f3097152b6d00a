"""Functional testing - Authentication: login and logout functional."""

from __future__ import annotations

import pytest

from postdeploy.contract import PATHS, SESSION_COOKIE
from postdeploy.expect import expect_error, expect_fields, expect_status, json_body
from postdeploy.instances import check_each


@pytest.mark.gating
def test_login_returns_a_bearer_token_and_a_session_cookie(api, new_user, instance_routes):
    user = new_user.register()  # its own: logging in is what this check is about

    def login(route):
        response = api.post(PATHS.login, json=user.credentials, headers=route.headers)
        api.cookies.clear()
        expect_status(response, 200, what="logging in with valid credentials")
        body = json_body(response)
        expect_fields(body, ("access_token", "token_type", "expires_in"), f"POST {PATHS.login}")
        assert body["token_type"].lower() == "bearer", f"token_type is {body['token_type']!r}"
        assert SESSION_COOKIE in response.cookies, (
            f"POST {PATHS.login} set no {SESSION_COOKIE!r} cookie; Set-Cookie headers: "
            f"{len(response.headers.get_list('set-cookie'))}"
        )

    check_each(instance_routes, login)


@pytest.mark.gating
def test_logged_in_user_can_read_their_account(api, user):
    response = api.get(PATHS.me, headers=user.auth)
    expect_status(response, 200)
    assert json_body(response)["email"] == user.email


@pytest.mark.gating
def test_wrong_password_is_refused(api, user):
    response = api.post(
        PATHS.login, json={"email": user.email, "password": "wrong-" + user.password}
    )
    expect_error(response, 401)


def test_account_requires_credentials(api):
    expect_error(api.get(PATHS.me), 401)


@pytest.mark.gating
def test_logout_revokes_the_session(api, new_user):
    user = new_user.register()  # its own: a target may end every session of the account
    login = api.post(PATHS.login, json=user.credentials)
    expect_status(login, 200, what="logging in before logout")
    token = json_body(login)["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}

    expect_status(api.post(PATHS.logout, headers=bearer), 204, what="logging out")

    expect_error(api.get(PATHS.me, headers=bearer), 401)
    api.cookies.set(SESSION_COOKIE, login.cookies[SESSION_COOKIE])
    response = api.get(PATHS.me)
    api.cookies.clear()
    assert response.status_code == 401, (
        f"the session cookie still works after logout: GET {PATHS.me} answered "
        f"{response.status_code}"
    )
