"""Open redirects and header injection through redirect parameters.

Every redirect-capable route of the contract gets every redirect parameter name with each
bypass spelling a naive validator lets through (absolute, scheme-relative, backslashes,
controls a browser strips, encoded, ``user@host``), pointing at a unique foreign host. The
answer's ``Location`` (and ``Refresh``) is resolved the way a browser resolves it (WHATWG URL
rules for the cases that matter: controls stripped, ``\\`` read as ``/``, any number of
slashes before the host) and must stay on the target's origin. A CR LF in the parameter must
never become a header of its own. A fixed number of GETs: routes x parameters x spellings.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Where a probe points: a reserved name (RFC 2606), unique per run so nothing else matches.
PROBE_DOMAIN = "example"
INJECTED_HEADER = "X-Postdeploy-Injected"
INJECTED = INJECTED_HEADER.lower()
#: Headers through which a server sends the browser elsewhere.
REDIRECT_HEADERS = ("location", "refresh")
SPECIAL_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BROWSER_REMOVED = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_REFRESH_URL = re.compile(r"(?i)^\s*\d*\s*[;,]?\s*url\s*=\s*['\"]?([^'\"]*)")


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        default = SPECIAL_SCHEMES.get(self.scheme)
        shown = f":{self.port}" if self.port and self.port != default else ""
        return f"{self.scheme}:" if not self.host else f"{self.scheme}://{self.host}{shown}"


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or SPECIAL_SCHEMES.get(scheme)
    return Origin(scheme, (parts.hostname or "").lower(), port)


def _authority(rest: str, scheme: str) -> Origin:
    """The origin of ``rest`` = what follows the slashes of ``scheme://`` (or ``//``)."""
    authority = re.split(r"[/\\?#]", rest.lstrip("/\\"), maxsplit=1)[0]
    host_port = unquote(authority.rsplit("@", 1)[-1]).lower()
    if host_port.startswith("["):  # an IPv6 literal
        host, _, tail = host_port[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = host_port.partition(":")
    return Origin(scheme, host, int(port) if port.isdigit() else SPECIAL_SCHEMES.get(scheme))


def browser_destination(base: str, location: str) -> Origin:
    """The origin a browser on ``base`` goes to when told ``location`` (WHATWG rules).

    Leading and trailing controls and spaces are stripped and tabs/newlines removed; for
    http(s) ``\\`` counts as ``/``; ``//host``, ``///host`` and ``/\\host`` name a host;
    ``https:/host`` does too when the scheme differs from the page's or is followed by a
    slash. Anything else is a path on ``base``'s origin.
    """
    here = origin_of(base)
    seen = _BROWSER_REMOVED.sub("", location).strip(_C0_AND_SPACE)
    scheme_match = _SCHEME.match(seen)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        rest = seen[scheme_match.end() :]
        if scheme not in SPECIAL_SCHEMES:
            return Origin(scheme, "", None)  # javascript:, data:, ... leave the site too
        if scheme == here.scheme and not rest.startswith(("/", "\\")):
            return here  # "https:path" on an https page is a relative path
        return _authority(rest, scheme)
    if len(seen) >= 2 and seen[0] in "/\\" and seen[1] in "/\\":
        return _authority(seen, here.scheme)
    return here


def probe_host(token: str | None = None) -> str:
    """A foreign host no one serves: ``postdeploy-redirect-<random>.example``."""
    return f"postdeploy-redirect-{token or secrets.token_hex(4)}.{PROBE_DOMAIN}"


def spellings(foreign: str, own_host: str) -> dict[str, str]:
    """Bypass spellings of a redirect to ``foreign``: name -> parameter value."""
    return {
        "absolute https URL": f"https://{foreign}/",
        "absolute http URL": f"http://{foreign}/",
        "scheme-relative //host": f"//{foreign}/",
        "triple slash ///host": f"///{foreign}/",
        "backslashes \\\\host": f"\\\\{foreign}/",
        "slash-backslash /\\host": f"/\\{foreign}/",
        "tab inside /<TAB>/host": f"/\t/{foreign}/",
        "leading space": f" //{foreign}/",
        "scheme with one slash https:/host": f"https:/{foreign}/",
        "own host as userinfo (@)": f"https://{own_host}@{foreign}/",
        "percent-encoded //host": f"%2F%2F{foreign}%2F",
        "encoded backslash /%5Chost": f"/%5C{foreign}/",
    }


def crlf_spellings(token: str) -> dict[str, str]:
    """Values trying to add a header ``X-Postdeploy-Injected: token`` after a redirect target."""
    line = f"{INJECTED_HEADER}: {token}"
    return {
        "raw CR LF": f"/\r\n{line}",
        "encoded %0d%0a": f"/%0d%0a{line.replace(' ', '%20')}",
        "raw LF": f"/\n{line}",
    }


@dataclass(frozen=True)
class Probe:
    route: str
    param: str
    spelling: str
    value: str

    def describe(self) -> str:
        return f"GET {self.route}?{self.param}= ({self.spelling}, {self.value!r})"


def redirect_probes(
    routes: Iterable[str], params: Iterable[str], values: dict[str, str]
) -> list[Probe]:
    params = tuple(params)
    return [
        Probe(route, param, name, value)
        for route in routes
        for param in params
        for name, value in values.items()
    ]


def _redirect_targets(response: httpx.Response) -> list[tuple[str, str]]:
    targets = []
    if location := response.headers.get("location"):
        targets.append(("Location", location))
    if refresh := response.headers.get("refresh"):
        match = _REFRESH_URL.match(refresh)
        if match and match.group(1):
            targets.append(("Refresh", match.group(1)))
    return targets


def foreign_redirect(probe: Probe, response: httpx.Response, own: Origin) -> str | None:
    """A problem if ``response`` sends the browser to another origin; else None."""
    for header, value in _redirect_targets(response):
        destination = browser_destination(str(response.request.url), value)
        if destination != own:
            return (
                f"{probe.describe()} answered HTTP {response.status_code} with "
                f"{header}: {value!r}: an open redirect to {destination}"
            )
    return None


def injected_header(probe: Probe, response: httpx.Response, token: str) -> str | None:
    """A problem if the CR LF in ``probe`` became a header (or split the answer)."""
    leaked = [
        name
        for name, value in response.headers.multi_items()
        if name.lower() not in REDIRECT_HEADERS and (token in value or name.lower() == INJECTED)
    ]
    if leaked:
        return (
            f"{probe.describe()} answered HTTP {response.status_code} with header(s) "
            f"{', '.join(sorted(set(leaked)))} taken from the parameter: CR LF header injection"
        )
    return None


def send(client: httpx.Client, probe: Probe) -> httpx.Response:
    return client.get(probe.route, params={probe.param: probe.value}, follow_redirects=False)


def open_redirect_problems(
    client: httpx.Client, probes: Iterable[Probe], own: Origin
) -> tuple[list[str], int]:
    """(problems, requests sent) for the open-redirect probes."""
    problems, sent = [], 0
    for probe in probes:
        response = send(client, probe)
        sent += 1
        if problem := foreign_redirect(probe, response, own):
            problems.append(problem)
    return problems, sent


def header_injection_problems(
    client: httpx.Client, probes: Iterable[Probe], token: str
) -> tuple[list[str], int]:
    """(problems, requests sent) for the CR LF probes; a malformed answer is a finding too."""
    problems, sent = [], 0
    for probe in probes:
        sent += 1
        try:
            response = send(client, probe)
        except httpx.RemoteProtocolError as exc:
            problems.append(
                f"{probe.describe()}: the answer was not valid HTTP ({exc}): the CR LF "
                "reached the response head"
            )
            continue
        if problem := injected_header(probe, response, token):
            problems.append(problem)
    return problems, sent
