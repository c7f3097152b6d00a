"""Security validation - Host header: a foreign Host never ends up in URLs, redirects or links."""

from __future__ import annotations

import pytest

from postdeploy.contract import PATHS, REDIRECT_PARAMS
from postdeploy.security.host_header import foreign_host, host_header_problems, host_probes

#: Pages (with links), a redirect, an error page and JSON.
HOST_PATHS = (
    PATHS.page_home,
    PATHS.page_login,
    f"{PATHS.page_continue}?{REDIRECT_PARAMS[0]}={PATHS.page_dashboard}",
    "/postdeploy-no-such-page",
    PATHS.health,
)


@pytest.mark.deploy_check("host_header")
def test_a_foreign_host_header_never_reaches_urls_or_links(api):
    problems = host_header_problems(api, host_probes(HOST_PATHS, foreign_host()))
    assert not problems, "\n".join(problems)
