"""Functional testing - Learning sessions (content delivery) and progress tracking."""

from __future__ import annotations

import pytest

from postdeploy.contract import LEARNING_STYLES, PATHS
from postdeploy.expect import expect_error, expect_fields, expect_status, json_body
from postdeploy.instances import check_each

LESSON_FIELDS = ("id", "title", "learning_style", "body")


def _lessons(api) -> list[dict]:
    response = api.get(PATHS.content)
    expect_status(response, 200)
    items = json_body(response).get("items")
    assert items, f"GET {PATHS.content} delivered no lessons"
    return items


@pytest.mark.gating
def test_learning_content_is_delivered(api):
    for lesson in _lessons(api):
        expect_fields(lesson, LESSON_FIELDS, f"a lesson from GET {PATHS.content}")
        assert lesson["learning_style"] in LEARNING_STYLES, (
            f"lesson {lesson['id']} has learning style {lesson['learning_style']!r}"
        )


def test_a_single_lesson_is_delivered_by_id(api):
    first = _lessons(api)[0]
    response = api.get(PATHS.lesson(first["id"]))
    expect_status(response, 200)
    assert json_body(response)["title"] == first["title"]


def test_an_unknown_lesson_is_not_found(api):
    expect_error(api.get(PATHS.lesson(999_999)), 404)


@pytest.mark.gating
def test_a_learning_session_is_recorded_and_progress_reflects_it(api, new_user, instance_routes):
    user = new_user()
    lesson = _lessons(api)[0]

    def recorded(route):
        before = json_body(api.get(PATHS.progress, headers={**user.auth, **route.headers}))
        response = api.post(
            PATHS.session,
            headers={**user.auth, **route.headers},
            json={"content_id": lesson["id"], "duration_s": 120, "score": 90},
        )
        expect_status(response, 201, what="recording a learning session")

        # Read back through a new login, so nothing cached with the first token can answer.
        login = api.post(PATHS.login, json=user.credentials, headers=route.headers)
        api.cookies.clear()
        expect_status(login, 200, what="logging in again to read progress back")
        fresh = {"Authorization": f"Bearer {json_body(login)['access_token']}"}
        response = api.get(PATHS.progress, headers={**fresh, **route.headers})
        expect_status(response, 200)
        after = json_body(response)
        assert after["sessions"] == before["sessions"] + 1, (
            f"progress did not count the new session: sessions {before['sessions']} before, "
            f"{after['sessions']} after (data not persisted?)"
        )
        assert after["total_time_s"] == before["total_time_s"] + 120, (
            f"total time went from {before['total_time_s']} to {after['total_time_s']}, "
            "expected +120 s"
        )
        assert after["completed_lessons"] >= 1
        average = after["average_score"]
        assert average == pytest.approx(90), f"average score {average}"

    check_each(instance_routes, recorded)


def test_a_session_for_unknown_content_is_refused(api, user):
    response = api.post(
        PATHS.session, headers=user.auth, json={"content_id": 999_999, "duration_s": 1, "score": 1}
    )
    expect_error(response, 404)


def test_the_learning_profile_round_trips(api, user):
    wanted = {"learning_style": "kinesthetic", "preferences": {"pace": "fast"}}
    expect_status(api.put(PATHS.profile, headers=user.auth, json=wanted), 200)
    response = api.get(PATHS.profile, headers=user.auth)
    expect_status(response, 200)
    stored = json_body(response)
    got = {key: stored.get(key) for key in wanted}
    assert got == wanted, (
        f"PUT {PATHS.profile} answered 200, but GET {PATHS.profile} reads back {got}, not "
        f"{wanted}: the profile was not stored"
    )


def test_an_unknown_learning_style_is_rejected(api, user):
    response = api.put(PATHS.profile, headers=user.auth, json={"learning_style": "telepathic"})
    expect_error(response, 422)
