"""Security validation - debug surfaces: no debug page, stack trace or API console in production.

Version banners (``Server``, ``X-Powered-By``) are judged in one place: the header
requirement ``Server and X-Powered-By`` in test_headers.py.
"""

from __future__ import annotations

import secrets

import pytest

from postdeploy.contract import (
    API_CONSOLES,
    ERROR_PROVOKING_PATHS,
    ERROR_TRIGGER_HEADER,
    PATHS,
)
from postdeploy.monitoring.error_tracking import trigger_token
from postdeploy.security.debug import (
    ForcedError,
    console_problems,
    error_page_problems,
    openapi_problem,
)


def _forced_errors(target, run_id: str) -> list[ForcedError]:
    forced = [ForcedError("GET", path) for path in ERROR_PROVOKING_PATHS]
    token = trigger_token(target)
    if token:
        check_id = f"pd-debug-{secrets.token_hex(4)}"
        forced.append(
            ForcedError(
                "POST",
                PATHS.error_trigger,
                ((ERROR_TRIGGER_HEADER, token),),
                {"run_id": run_id, "check_id": check_id},
            )
        )
    return forced


@pytest.mark.deploy_check("debug_pages")
def test_a_forced_error_shows_no_debug_page_or_stack_trace(api, target, run_id):
    forced = _forced_errors(target, run_id)
    problems, provoked = error_page_problems(api, forced)
    assert not problems, "\n".join(problems)
    if not provoked:
        pytest.skip(
            f"none of {len(forced)} requests provoked a server error, so the error page was not "
            f"seen; set ${target.monitoring.error_trigger_token_env} to the deployment's "
            f"error-route token to force one through {PATHS.error_trigger}"
        )


@pytest.mark.deploy_check("api_console")
def test_no_interactive_api_console_is_served(api, target):
    if target.security.api_console:
        pytest.skip(f"target {target.name} allows an API console (security.api_console)")
    problems = console_problems(api, API_CONSOLES)
    assert not problems, "\n".join(problems) + " (security.api_console = false)"


@pytest.mark.deploy_check("openapi_document")
def test_the_openapi_document_is_not_served_when_private(api, target):
    if target.security.openapi_public:
        pytest.skip(f"target {target.name} publishes its OpenAPI document (openapi_public)")
    problem = openapi_problem(api, PATHS.openapi)
    assert problem is None, f"{problem} (security.openapi_public = false)"
