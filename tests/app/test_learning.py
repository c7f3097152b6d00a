"""Lessons, learning sessions, progress and the learning profile."""

from __future__ import annotations

import pytest

LEARNING_STYLES = {"visual", "auditory", "reading", "kinesthetic"}


def test_lessons_are_public_and_seeded(shared_client):
    response = shared_client.get("/api/learning/content")

    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) >= 4
    assert [item["id"] for item in items] == list(range(1, len(items) + 1))
    for item in items:
        assert set(item) == {"id", "title", "learning_style", "body", "duration_min"}
        assert item["learning_style"] in LEARNING_STYLES


def test_one_lesson_by_id(shared_client):
    assert shared_client.get("/api/learning/content/2").json()["id"] == 2


def test_an_unknown_lesson_is_not_found(shared_client):
    response = shared_client.get("/api/learning/content/999")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_recorded_session_counts_towards_progress(client, account):
    sessions = [(1, 60, 80), (1, 30, 90), (3, 10, 70)]
    for content_id, duration_s, score in sessions:
        response = client.post(
            "/api/learning/session",
            json={"content_id": content_id, "duration_s": duration_s, "score": score},
            headers=account.bearer,
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "content_id", "duration_s", "score", "completed_at"}

    progress = client.get("/api/learning/progress", headers=account.bearer).json()

    assert progress == {
        "completed_lessons": 2,
        "sessions": 3,
        "total_time_s": 100,
        "average_score": 80.0,
        "lesson_ids": [1, 3],
    }


def test_progress_of_a_new_user_is_empty(client, account):
    progress = client.get("/api/learning/progress", headers=account.bearer).json()

    assert progress["sessions"] == 0
    assert progress["average_score"] is None


def test_progress_belongs_to_each_user(client, account, new_account):
    client.post(
        "/api/learning/session",
        json={"content_id": 1, "duration_s": 5, "score": 50},
        headers=account.bearer,
    )
    other = new_account(client)

    assert client.get("/api/learning/progress", headers=other.bearer).json()["sessions"] == 0


def test_a_session_for_an_unknown_lesson_is_not_found(client, account):
    response = client.post(
        "/api/learning/session",
        json={"content_id": 999, "duration_s": 5, "score": 50},
        headers=account.bearer,
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content_id", "1"),
        ("duration_s", -1),
        ("duration_s", 86_401),
        ("score", 100.5),
        ("score", -1),
    ],
)
def test_an_invalid_session_is_rejected(client, account, field, value):
    session = {"content_id": 1, "duration_s": 5, "score": 50, field: value}

    response = client.post("/api/learning/session", json=session, headers=account.bearer)

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(f"{field}:")


def test_sessions_and_progress_require_authentication(shared_client):
    assert shared_client.get("/api/learning/progress").status_code == 401
    session = {"content_id": 1, "duration_s": 5, "score": 50}
    assert shared_client.post("/api/learning/session", json=session).status_code == 401


def test_the_profile_is_stored(client, account):
    profile = {"learning_style": "auditory", "preferences": {"daily_goal_min": 20}}

    assert client.put("/api/learning/profile", json=profile, headers=account.bearer).json() == (
        profile
    )

    assert client.get("/api/learning/profile", headers=account.bearer).json() == profile
    assert client.get("/api/auth/me", headers=account.bearer).json()["learning_style"] == (
        "auditory"
    )


def test_the_profile_rejects_an_unknown_learning_style(client, account):
    response = client.put(
        "/api/learning/profile", json={"learning_style": "osmosis"}, headers=account.bearer
    )

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("learning_style:")
