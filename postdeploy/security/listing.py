"""Directory listings: a static folder must not list its files.

A listing hands out every file name (backups, uploads, unlinked assets) of the folder. The
signatures are those of the listings web servers generate: Apache and nginx ``autoindex``
("Index of /folder"), Python's ``http.server`` ("Directory listing for"), IIS
("[To Parent Directory]"), Caddy's browse template and Express ``serve-index``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

LISTING_SIGNATURE = re.compile(
    r"(?i)<title>\s*Index of /|<h1>\s*Index of /|Directory listing for /|"
    r"\[To Parent Directory\]|<title>\s*listing directory /|class=\"listing\"[^>]*>\s*<table"
)


def listing_problems(client: httpx.Client, folders: Iterable[str]) -> list[str]:
    """Each folder, asked for with and without its trailing slash, must not list its files."""
    problems = []
    for folder in folders:
        for path in dict.fromkeys((folder, folder.rstrip("/") or "/")):
            response = client.get(path, follow_redirects=False)
            if response.is_success and LISTING_SIGNATURE.search(response.text):
                problems.append(
                    f"GET {response.url} answered HTTP {response.status_code} with a directory "
                    "listing of the folder's files"
                )
                break
    return problems
