"""Security validation - mixed content: HTTPS pages load nothing over plain http://."""

from __future__ import annotations

import pytest

from postdeploy.contract import PAGES
from postdeploy.expect import expect_status
from postdeploy.security.mixed_content import insecure_subresources


@pytest.mark.deploy_check("mixed_content")
def test_https_pages_load_no_subresource_over_http(api, target):
    if not target.url.startswith("https://"):
        pytest.skip(f"target {target.name} is served over plain HTTP: nothing can be mixed")
    problems = []
    for path in PAGES:
        page = api.get(path)
        expect_status(page, 200, what="loading a page to list its subresources")
        problems += [f"GET {page.url}: {found}" for found in insecure_subresources(page.text)]
    assert not problems, (
        f"{len(problems)} subresource(s) loaded over plain HTTP on HTTPS pages:\n"
        + "\n".join(problems)
    )
