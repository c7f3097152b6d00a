"""Which deploy-misconfiguration checks gate, per target (``security.gating_checks``).

Each check of the redirect, exposure, debug, methods, host-header, caching, listing and
mixed-content suites names its class with ``@pytest.mark.deploy_check("name")``. A class
listed in the target's ``security.gating_checks`` makes the check ``gating`` for that target:
by default the four whose failure exposes users or secrets right away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postdeploy.config import Target

#: Check class -> what a failure means (the classes a target may list).
DEPLOY_CHECKS: dict[str, str] = {
    "open_redirect": "a redirect parameter sends users to another site",
    "exposed_files": "secrets, repository files or source backups are served",
    "exposed_information": "a folder index, a status page or a private source map is served",
    "debug_pages": "a forced error shows a debug page or a stack trace",
    "private_caching": "a user's data may be stored by a shared cache",
    "edge_caching": "the edge serves one user's answer to another",
    "api_console": "an interactive API console is served",
    "openapi_document": "the OpenAPI document is served though it must not be",
    "http_methods": "TRACE is enabled or unexpected methods are not refused with 405",
    "host_header": "absolute URLs are built from the request's Host",
    "directory_listing": "a static folder lists its files",
    "mixed_content": "an HTTPS page loads a subresource over plain HTTP",
}
MARKER = "deploy_check"


class GatingConfigError(ValueError):
    """``security.gating_checks`` names a check class that does not exist."""


def split_names(value: list[str] | str) -> list[str]:
    """A list, or one comma-separated string, as a list of names."""
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]


def gating_checks(target: Target) -> frozenset[str]:
    """The check classes that gate for ``target``; GatingConfigError names an unknown one."""
    names = split_names(target.security.gating_checks)
    unknown = [name for name in names if name not in DEPLOY_CHECKS]
    if unknown:
        raise GatingConfigError(
            f"{target.source}: [targets.{target.name}.security] gating_checks: unknown check "
            f"class {unknown[0]!r}; valid classes: {', '.join(DEPLOY_CHECKS)}"
        )
    return frozenset(names)
