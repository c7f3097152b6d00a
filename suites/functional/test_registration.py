"""Functional testing - User registration: complete flow working."""

from __future__ import annotations

import pytest

from postdeploy.contract import PATHS
from postdeploy.expect import expect_error, expect_fields, expect_status, json_body


@pytest.mark.gating
def test_user_registration_completes(api, new_user):
    user = new_user.register(name="Registration Check")
    response = api.post(PATHS.login, json=user.credentials)
    expect_status(response, 200, what="a newly registered user logs in")
    me = api.get(
        PATHS.me, headers={"Authorization": f"Bearer {json_body(response)['access_token']}"}
    )
    expect_status(me, 200)
    expect_fields(json_body(me), ("id", "email", "name"), f"GET {PATHS.me}")
    assert json_body(me)["email"] == user.email, (
        f"GET {PATHS.me} returned {json_body(me)['email']!r} for the user registered as "
        f"{user.email!r}"
    )


@pytest.mark.gating
def test_registering_an_existing_email_is_refused(api, new_user):
    user = new_user.register()  # not a pooled one: those need a login, a check of its own
    response = api.post(PATHS.register, json={**user.credentials, "name": "Duplicate"})
    expect_error(response, 409)


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "not-an-email"), ("password", "short"), ("name", "")],
)
def test_invalid_registration_is_rejected(api, new_user, field, value):
    body = {"email": new_user.new_email(), "password": "long-enough-password", "name": "Invalid"}
    body[field] = value
    response = api.post(PATHS.register, json=body)
    expect_error(response, 422)
