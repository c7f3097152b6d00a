"""The ``Host`` header must not decide where the site's absolute URLs point.

An app or proxy that builds absolute URLs from the request's ``Host`` (or a trusted
``X-Forwarded-Host``) lets an attacker poison password-reset links, cached pages and
redirects. Each probed path is fetched twice, once with a foreign ``Host`` and once with the
right one and a foreign ``X-Forwarded-Host``; the unique foreign name must appear nowhere in
the answer: not in ``Location``, ``Refresh``, ``Link``, ``Content-Location``, nor in the body
(links, canonical URLs, scripts).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

#: Headers through which an answer points the client somewhere.
URL_HEADERS = ("location", "refresh", "link", "content-location")
#: How much of the body around the foreign host a failure message quotes.
CONTEXT_CHARS = 60
#: The request headers that name the host, each sent alone with the foreign name.
HOST_SPELLINGS = ("Host", "X-Forwarded-Host")


def foreign_host() -> str:
    return f"postdeploy-host-{secrets.token_hex(4)}.example"


@dataclass(frozen=True)
class HostProbe:
    path: str
    header: str
    foreign: str

    def headers(self) -> dict[str, str]:
        return {self.header: self.foreign}

    def describe(self) -> str:
        return f"GET {self.path} with {self.header}: {self.foreign}"


def host_probes(paths: Iterable[str], foreign: str) -> list[HostProbe]:
    return [HostProbe(path, header, foreign) for path in paths for header in HOST_SPELLINGS]


def reflection_problem(probe: HostProbe, response: httpx.Response) -> str | None:
    """Where the foreign host shows up in ``response``, or None."""
    where = f"{probe.describe()} answered HTTP {response.status_code}"
    foreign = probe.foreign.lower()
    for name in URL_HEADERS:
        for value in response.headers.get_list(name):
            if foreign in value.lower():
                return f"{where} with {name.title()}: {value}: a URL built from {probe.header}"
    text = response.text
    index = text.lower().find(foreign)
    if index >= 0:
        start = max(index - CONTEXT_CHARS, 0)
        context = " ".join(text[start : index + len(foreign) + CONTEXT_CHARS].split())
        return f"{where} with the foreign host in its body: ...{context}..."
    return None


def host_header_problems(client: httpx.Client, probes: Iterable[HostProbe]) -> list[str]:
    problems = []
    for probe in probes:
        response = client.get(probe.path, headers=probe.headers(), follow_redirects=False)
        if problem := reflection_problem(probe, response):
            problems.append(problem)
    return problems
