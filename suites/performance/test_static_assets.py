"""Performance - Static assets load fast: compressed, cacheable, and pages within budget.

For each key page the HTML and the same-origin assets it references (stylesheets, scripts,
images) are fetched the way a browser asks for them (``Accept-Encoding: gzip, deflate, br``):

* text assets of ``COMPRESS_MIN_BYTES`` or more come compressed (gzip or br);
* static files carry a cache lifetime and a validator (ETag or Last-Modified) that works:
  a conditional request answers 304;
* a page and its assets together stay within ``[performance] page_weight_budget_kb``
  (bytes on the wire, as compressed as the server sends them).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from postdeploy.contract import KEY_PAGES, STATIC_PREFIX
from postdeploy.expect import expect_status
from postdeploy.reporting.attachments import attach_text

#: Below this size compression saves too little to matter (Lighthouse uses a similar floor).
COMPRESS_MIN_BYTES = 1024
COMPRESSED = ("gzip", "br", "zstd", "deflate")
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")
KIB = 1024
MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.IGNORECASE)


class _AssetFinder(HTMLParser):
    """Collects what a page makes the browser fetch: stylesheets, scripts, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and "stylesheet" in (values.get("rel") or ""):
            self._add(values.get("href"))
        elif tag in ("script", "img"):
            self._add(values.get("src"))

    def _add(self, url: str | None) -> None:
        if url and not url.startswith("data:"):
            self.urls.append(url)


def _assets(api, page_path: str, html: str) -> list[str]:
    finder = _AssetFinder()
    finder.feed(html)
    base = str(api.base_url).rstrip("/")
    own = urlsplit(base).netloc
    paths = []
    for url in finder.urls:
        absolute = urljoin(base + page_path, url)
        if urlsplit(absolute).netloc == own:  # third-party assets are not this app's to fix
            paths.append(urlsplit(absolute).path)
    return list(dict.fromkeys(paths))


def _is_text(response) -> bool:
    content_type = response.headers.get("content-type", "")
    return content_type.startswith(TEXT_TYPES)


@pytest.fixture
def key_pages(api):
    """Each key page: its path, HTML response and the responses of its assets."""
    pages = {}
    for name, path in KEY_PAGES.items():
        response = api.get(path)
        expect_status(response, 200, what=f"the {name} page")
        assets = {asset: api.get(asset) for asset in _assets(api, path, response.text)}
        for asset, asset_response in assets.items():
            expect_status(asset_response, 200, what=f"{asset}, referenced by {path}")
        pages[name] = (path, response, assets)
    return pages


def test_text_assets_are_sent_compressed(key_pages):
    seen, judged, uncompressed = set(), [], []
    for path, page, assets in key_pages.values():
        for url, response in [(path, page), *assets.items()]:
            if url in seen or not _is_text(response):
                continue
            seen.add(url)
            size = len(response.content)
            if size < COMPRESS_MIN_BYTES:
                continue
            judged.append(url)
            encoding = response.headers.get("content-encoding", "")
            if encoding not in COMPRESSED:
                uncompressed.append(
                    f"{url} ({size:,} bytes of {response.headers.get('content-type')}, "
                    f"Content-Encoding: {encoding or 'none'})"
                )
    assert judged, (
        f"no data: none of the {len(seen)} text responses of the key pages and their assets "
        f"({', '.join(sorted(seen)) or 'none'}) is {COMPRESS_MIN_BYTES} bytes or larger, so "
        "nothing could show whether compression is on"
    )
    assert not uncompressed, (
        "text responses sent uncompressed although the client accepts gzip and br: "
        + "; ".join(uncompressed)
    )


def _cache_problems(api, url: str, response) -> list[str]:
    problems = []
    cache_control = response.headers.get("cache-control", "")
    max_age = MAX_AGE.search(cache_control)
    if "no-store" in cache_control or "no-cache" in cache_control:
        problems.append(f"Cache-Control: {cache_control}")
    elif not (max_age and int(max_age.group(1)) > 0) and "immutable" not in cache_control:
        problems.append(f"no cache lifetime (Cache-Control: {cache_control or 'absent'})")
    etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
    if not (etag or modified):
        problems.append("no validator (neither ETag nor Last-Modified)")
        return problems
    conditional = {"If-None-Match": etag} if etag else {"If-Modified-Since": modified}
    revalidated = api.get(url, headers=conditional)
    if revalidated.status_code != 304:
        problems.append(
            f"a conditional request ({', '.join(conditional)}) answered "
            f"{revalidated.status_code}, not 304"
        )
    return problems


def test_static_files_are_cacheable_and_revalidate(api, key_pages):
    checked, problems = set(), []
    for _, _, assets in key_pages.values():
        for url, response in assets.items():
            if url in checked or not url.startswith(STATIC_PREFIX):
                continue
            checked.add(url)
            problems += [f"{url}: {p}" for p in _cache_problems(api, url, response)]
    assert checked, f"the key pages reference no static files under {STATIC_PREFIX}"
    assert not problems, "static files a browser has to fetch again every time: " + "; ".join(
        problems
    )


def test_each_key_page_stays_within_its_size_budget(target, key_pages):
    budget = float(target.performance.page_weight_budget_kb) * KIB
    rows, over = [], []
    for name, (path, page, assets) in key_pages.items():
        weights = {path: page.num_bytes_downloaded}
        weights.update({url: r.num_bytes_downloaded for url, r in assets.items()})
        total = sum(weights.values())
        heaviest = max(weights, key=weights.__getitem__)
        rows.append(
            f"{name:<10} {path:<14} {total / KIB:>9.1f} KB  {len(weights):>3} requests  "
            f"heaviest {heaviest} ({weights[heaviest] / KIB:.1f} KB)"
        )
        if total > budget:
            over.append(
                f"the {name} page ({path}) weighs {total / KIB:.1f} KB on the wire, over the "
                f"{budget / KIB:.0f} KB budget; heaviest: {heaviest} "
                f"({weights[heaviest] / KIB:.1f} KB)"
            )
    attach_text("page weight (bytes on the wire)", "\n".join(rows))
    assert not over, "; ".join(over)
