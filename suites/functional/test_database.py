"""Functional testing - Database connectivity: read/write operations working end to end."""

from __future__ import annotations

import secrets

import pytest

from postdeploy.contract import PATHS
from postdeploy.expect import expect_status, json_body


@pytest.mark.gating
def test_a_write_is_read_back_from_the_database(api, new_user):
    user = new_user()
    marker = secrets.token_hex(8)
    wanted = {"learning_style": "visual", "preferences": {"postdeploy_marker": marker}}
    expect_status(
        api.put(PATHS.profile, headers=user.auth, json=wanted),
        200,
        what="writing the learning profile",
    )

    new_user.login(user)  # a new session: the answer must come from storage
    response = api.get(PATHS.profile, headers=user.auth)
    expect_status(response, 200)
    stored = json_body(response).get("preferences", {}).get("postdeploy_marker")
    assert stored == marker, (
        f"wrote preferences.postdeploy_marker={marker!r} with PUT {PATHS.profile}, "
        f"read back {stored!r}"
    )


def test_a_deleted_account_is_gone(api, new_user):
    user = new_user()
    expect_status(new_user.delete(user), 204, what="deleting the account")
    response = api.post(PATHS.login, json=user.credentials)
    assert response.status_code == 401, (
        f"the deleted account still logs in: POST {PATHS.login} answered {response.status_code}"
    )
