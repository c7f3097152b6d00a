"""Security validation - HTTP methods: TRACE/TRACK refused, unexpected methods answered 405."""

from __future__ import annotations

import pytest

from postdeploy.contract import API_METHODS, PATHS
from postdeploy.security.methods import trace_problems, unexpected_method_problems

#: Where TRACE is tried: a page, the API, an unknown path (the server's default handling).
TRACE_PATHS = (PATHS.page_home, PATHS.health, "/postdeploy-no-such-page")


@pytest.mark.deploy_check("http_methods")
def test_trace_and_track_are_refused(api):
    problems = trace_problems(api, TRACE_PATHS)
    assert not problems, "\n".join(problems)


@pytest.mark.deploy_check("http_methods")
def test_unexpected_methods_are_answered_405_with_allow(api):
    problems = unexpected_method_problems(api, API_METHODS)
    assert not problems, "\n".join(problems)
