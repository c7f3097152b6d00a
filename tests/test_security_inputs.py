"""The hostile-input corpus, the probes made of it, the verdicts on answers, forged tokens."""

from __future__ import annotations

import base64
import json
import socket

import httpx
import pytest

from postdeploy.contract import JSON_INPUTS, PAGES, PATH_INPUTS, PATHS
from postdeploy.security import auth as tokens
from postdeploy.security import input_validation as inputs

EXISTING = "pd-existing@example.com"


def new_email() -> str:
    return "pd-fresh@example.com"


@pytest.fixture(scope="module")
def corpus() -> inputs.Corpus:
    return inputs.load_corpus()


def test_the_corpus_has_every_class(corpus):
    kinds = {p.kind for p in corpus.strings}
    assert kinds == set(inputs.STRING_CLASSES)
    assert corpus.wrong_types
    assert corpus.bodies[-1].value == b""  # the empty body is always sent
    assert b"\xff\xfe" in [p.value for p in corpus.byte_strings]
    assert corpus.field_bytes
    assert corpus.body_bytes
    assert corpus.nesting_depth


def test_escapes_are_decoded():
    assert inputs.unescape(r"a\x00b\u202ec\n\\d") == "a\x00b\u202ec\n\\d"
    assert inputs.unescape(r"..\windows\win.ini") == r"..\windows\win.ini"


def test_a_broken_corpus_is_named(tmp_path):
    with pytest.raises(inputs.CorpusError, match="payload directory missing"):
        inputs.load_corpus(tmp_path / "nowhere")
    (tmp_path / "sqli.txt").write_bytes("caf\u00e9\n".encode())
    with pytest.raises(inputs.CorpusError, match=r"sqli.txt: must be ASCII"):
        inputs.load_corpus(tmp_path)


def test_every_input_of_the_contract_is_probed(corpus):
    probes = inputs.hostile_requests(corpus, new_email, EXISTING)
    probed = {probe.input for probe in probes}
    assert {f"{spec.method} {spec.path}" for spec in JSON_INPUTS} <= probed
    assert {f"GET {template.format('{id}')}" for template in PATH_INPUTS} <= probed
    assert {f"GET {page}" for page in PAGES} <= probed
    fields = {(p.input, p.location) for p in probes if p.location.startswith("field")}
    for spec in JSON_INPUTS:
        for name, _ in spec.example:
            assert (f"{spec.method} {spec.path}", f"field {name!r}") in fields


def test_registrations_reuse_an_existing_address_and_logins_a_fresh_one(corpus):
    probes = inputs.hostile_requests(corpus, new_email, EXISTING)
    register = f"POST {PATHS.register}"
    login = f"POST {PATHS.login}"
    name_probe = next(p for p in probes if p.input == register and p.location == "field 'name'")
    assert json.loads(name_probe.body)["email"] == EXISTING
    password_probe = next(
        p for p in probes if p.input == login and p.location == "field 'password'"
    )
    assert json.loads(password_probe.body)["email"] == "pd-fresh@example.com"


def test_structural_payloads_must_be_refused(corpus):
    probes = inputs.hostile_requests(corpus, new_email, EXISTING)
    by_kind = {(p.input, p.location, p.payload.kind, p.payload.label): p for p in probes}
    session = f"POST {PATHS.session}"
    assert by_kind[(session, "field 'content_id'", "wrong_types", "1")].structural
    assert by_kind[(session, "field 'content_id'", "sqli", "'")].structural
    assert not by_kind[(session, "field 'duration_s'", "wrong_types", "0")].structural
    register = f"POST {PATHS.register}"
    assert not by_kind[
        (register, "field 'name'", "xss", "<script>alert('pd-xss')</script>")
    ].structural
    assert all(p.structural for p in probes if p.payload.kind in ("malformed_json", "oversized"))


def test_raw_bodies_carry_invalid_utf8_and_deep_nesting(corpus):
    probes = inputs.hostile_requests(corpus, new_email, EXISTING)
    utf8 = next(p for p in probes if p.payload.kind == "invalid_utf8")
    assert utf8.payload.value in utf8.body
    with pytest.raises(UnicodeDecodeError):
        utf8.body.decode("utf-8")
    nested = next(p for p in probes if "nested" in str(p.payload.value))
    assert b"[" * 1000 in nested.body


def test_pages_get_only_payloads_that_escaping_changes(corpus):
    made = inputs.hostile_requests(corpus, new_email, EXISTING)
    probes = [p for p in made if p.input == "GET /login"]
    assert probes
    assert all("next=" in p.path for p in probes)
    assert {p.payload.kind for p in probes} >= {"xss", "sqli"}


def answer(status, text="", content_type="application/json", kind="xss", value="<b>x</b>"):
    probe = inputs.HostileRequest("POST /x", "field 'a'", inputs.Payload(kind, value), "POST", "/x")
    return inputs.Answer(probe, status=status, content_type=content_type, text=text)


def test_verdicts_on_answers():
    assert inputs.server_error_problems([answer(422), answer(200)]) == []
    (problem,) = inputs.server_error_problems([answer(500, "oops")])
    assert problem == "POST /x field 'a' <- xss '<b>x</b>': HTTP 500: oops"
    html = answer(200, "<p>hello <b>x</b></p>", "text/html; charset=utf-8")
    assert inputs.reflection_problems([html])
    escaped = answer(200, "<p>hello &lt;b&gt;x&lt;/b&gt;</p>", "text/html")
    assert inputs.reflection_problems([escaped]) == []
    assert inputs.reflection_problems([answer(422, "<b>x</b>")]) == []  # JSON is not HTML


@pytest.mark.parametrize(
    "body",
    [
        'Traceback (most recent call last):\n  File "/app/x.py", line 3, in f',
        '{"error": "OperationalError: near \\"x\\": syntax error"}',
        "sqlite3.IntegrityError: UNIQUE constraint failed",
        "pydantic_core._pydantic_core.ValidationError",
        "You have an error in your SQL syntax",
    ],
)
def test_error_details_are_recognised(body):
    (problem,) = inputs.leak_problems([answer(500, body)])
    assert "contains" in problem


def test_ordinary_error_messages_are_not_leaks():
    ok = '{"error": {"code": "validation_error", "message": "email: must be a valid email"}}'
    assert inputs.leak_problems([answer(422, ok)]) == []


def test_a_dead_server_is_no_answer_not_a_crash():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
        got = inputs.send(client, answer(0).request)
    assert got.status is None
    (problem,) = inputs.server_error_problems([got])
    assert "no answer (ConnectError" in problem


def test_summaries_count_and_cut():
    message = inputs.summarize([f"p{i}" for i in range(50)], 900, "broke", limit=3)
    assert message.splitlines() == ["50 of 900 hostile requests broke:", "  p0", "  p1", "  p2",
                                    "  ... and 47 more"]  # fmt: skip


def _jwt(header, claims, signature="c2ln"):
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{signature}"


def test_forged_tokens_keep_the_structure_but_not_the_trust():
    token = _jwt({"alg": "HS256", "typ": "JWT"}, {"sub": "7", "exp": 2_000_000_000, "iat": 1})
    assert tokens.forge(token, tokens.NO_CREDENTIALS) is None
    bad = tokens.forge(token, tokens.BAD_SIGNATURE)
    assert bad.split(".")[:2] == token.split(".")[:2]
    assert bad != token
    header, claims, _ = tokens.split(tokens.forge(token, tokens.EXPIRED, now=1_000_000))
    assert claims["exp"] < 1_000_000
    assert claims["sub"] == "7"
    header, claims, signature = tokens.split(tokens.forge(token, tokens.ALG_NONE))
    assert (header["alg"], signature) == ("none", "")


def test_an_opaque_token_can_only_be_tampered_with():
    assert tokens.forge("opaque-session-id", tokens.BAD_SIGNATURE) == "opaque-sessioAAAA"
    with pytest.raises(tokens.TokenFormatError, match="expected a JWT"):
        tokens.forge("opaque-session-id", tokens.ALG_NONE)
