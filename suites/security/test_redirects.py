"""Security validation - open redirects: a redirect parameter never sends users elsewhere.

Every redirect route of the contract x every redirect parameter name x every bypass spelling
(``postdeploy.security.redirects``), pointing at a unique foreign host, and a CR LF that tries
to add a header of its own.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import pytest

from postdeploy.contract import PATHS, REDIRECT_PARAMS, REDIRECT_ROUTES
from postdeploy.security.input_validation import summarize
from postdeploy.security.redirects import (
    browser_destination,
    crlf_spellings,
    header_injection_problems,
    open_redirect_problems,
    origin_of,
    probe_host,
    redirect_probes,
    spellings,
)


@pytest.mark.deploy_check("open_redirect")
def test_redirect_parameters_never_send_users_to_another_site(api, target):
    own = origin_of(target.url)
    _expect_redirect_route(api, own)
    values = spellings(probe_host(), urlsplit(target.url).netloc)
    probes = redirect_probes(REDIRECT_ROUTES, REDIRECT_PARAMS, values)
    problems, sent = open_redirect_problems(api, probes, own)
    assert not problems, summarize(problems, sent, "were redirected to another site")


@pytest.mark.deploy_check("open_redirect")
def test_a_crlf_in_a_redirect_target_never_adds_a_header(api, target):
    token = secrets.token_hex(8)
    probes = redirect_probes(REDIRECT_ROUTES, REDIRECT_PARAMS[:1], crlf_spellings(token))
    problems, sent = header_injection_problems(api, probes, token)
    assert not problems, summarize(problems, sent, "injected a header")


def _expect_redirect_route(api, own) -> None:
    """The probed route is live: a same-site destination is followed (else nothing is proven)."""
    response = api.get(PATHS.page_continue, params={REDIRECT_PARAMS[0]: PATHS.page_dashboard})
    location = response.headers.get("location", "")
    stays = response.is_redirect and browser_destination(str(response.url), location) == own
    assert stays, (
        f"GET {response.url}: the redirect route does not redirect to a page of the site "
        f"(HTTP {response.status_code}, Location: {location or 'none'}); the contract's "
        "REDIRECT_ROUTES must name the routes that redirect"
    )
