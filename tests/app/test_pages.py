"""The HTML pages browser journeys drive."""

from __future__ import annotations

import pytest

CSP_UNSAFE = ("<script>", "style=", "onclick=", "onload=")


@pytest.mark.parametrize(
    ("path", "ids"),
    [
        ("/", ['id="hero"', 'href="/lessons/1"', 'href="/register"', 'href="/login"']),
        ("/register", ['id="register-form"', 'name="name"', 'id="register-submit"']),
        ("/login", ['id="login-form"', 'name="password"', 'id="login-submit"', 'id="form-error"']),
        (
            "/dashboard",
            ['id="welcome"', 'id="progress-completed"', 'id="progress-time"', 'id="logout-button"'],
        ),
        (
            "/lessons/1",
            ['id="lesson-title"', 'id="lesson-body"', 'id="score"', 'id="complete-lesson"'],
        ),
    ],
)
def test_each_page_renders_its_elements(shared_client, path, ids):
    response = shared_client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for fragment in ids:
        assert fragment in response.text
    assert '<script src="/static/app.js" defer></script>' in response.text
    for unsafe in CSP_UNSAFE:
        assert unsafe not in response.text


@pytest.mark.parametrize("path", ["/lessons/999", "/lessons/abc"])
def test_an_unknown_lesson_page_is_an_html_404(shared_client, path):
    response = shared_client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_lesson_text_is_escaped(client):
    database = client.app.state.services.database
    with database.connect() as conn:
        conn.execute("UPDATE lessons SET title = '<script>alert(1)</script>' WHERE id = 1")

    response = client.get("/lessons/1")

    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
