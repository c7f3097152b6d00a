"""Functional testing - Database connectivity: read/write operations working end to end."""

from __future__ import annotations

import secrets

import pytest

from postdeploy.contract import PATHS
from postdeploy.expect import expect_status, json_body
from postdeploy.instances import check_each


@pytest.mark.gating
def test_a_write_is_read_back_from_the_database(api, new_user, instance_routes):
    user = new_user()

    def round_trip(route):
        marker = secrets.token_hex(8)
        wanted = {"learning_style": "visual", "preferences": {"postdeploy_marker": marker}}
        expect_status(
            api.put(PATHS.profile, headers={**user.auth, **route.headers}, json=wanted),
            200,
            what="writing the learning profile",
        )
        # a new session: the answer must come from storage
        login = api.post(PATHS.login, json=user.credentials, headers=route.headers)
        api.cookies.clear()
        expect_status(login, 200, what="logging in again to read back")
        fresh = {"Authorization": f"Bearer {json_body(login)['access_token']}"}
        response = api.get(PATHS.profile, headers={**fresh, **route.headers})
        expect_status(response, 200)
        stored = json_body(response).get("preferences", {}).get("postdeploy_marker")
        assert stored == marker, (
            f"wrote preferences.postdeploy_marker={marker!r} with PUT {PATHS.profile}, "
            f"read back {stored!r}"
        )

    check_each(instance_routes, round_trip)


def test_a_deleted_account_is_gone(api, new_user):
    user = new_user.fresh()
    expect_status(new_user.delete(user), 204, what="deleting the account")
    response = api.post(PATHS.login, json=user.credentials)
    assert response.status_code == 401, (
        f"the deleted account still logs in: POST {PATHS.login} answered {response.status_code}"
    )
