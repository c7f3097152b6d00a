"""Security validation - exposed files: secrets, repository metadata and backups are not served.

A bounded list of paths (``postdeploy.security.exposure``); a path fails only when its 2xx
answer looks like the file (a signature of its format), so a catch-all page does not count.
"""

from __future__ import annotations

import pytest

from postdeploy.contract import ENTRY_POINTS
from postdeploy.security.exposure import exposed, exposures


@pytest.fixture
def served_files(api, target):
    """(exposure, problem) for every probed path served with content that looks like it."""
    candidates = exposures(api, ENTRY_POINTS, bool(target.security.private_source_maps))
    return exposed(api, candidates)


@pytest.mark.deploy_check("exposed_files")
def test_no_secret_repository_or_backup_file_is_served(served_files):
    problems = [problem for exposure, problem in served_files if exposure.secret]
    assert not problems, f"{len(problems)} file(s) that must never be served:\n" + "\n".join(
        problems
    )


@pytest.mark.deploy_check("exposed_information")
def test_no_folder_index_status_page_or_private_source_map_is_served(served_files):
    problems = [problem for exposure, problem in served_files if not exposure.secret]
    assert not problems, f"{len(problems)} revealing file(s) served:\n" + "\n".join(problems)
