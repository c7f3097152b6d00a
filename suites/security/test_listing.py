"""Security validation - directory listing: static folders do not list their files."""

from __future__ import annotations

import pytest

from postdeploy.contract import STATIC_FOLDERS
from postdeploy.security.listing import listing_problems


@pytest.mark.deploy_check("directory_listing")
def test_static_folders_are_not_listed(api):
    problems = listing_problems(api, STATIC_FOLDERS)
    assert not problems, "\n".join(problems)
