"""Mixed content: an HTTPS page must load none of its subresources over plain ``http://``.

A subresource fetched over HTTP can be read and replaced by anyone on the network path (a
script or stylesheet takes over the page); browsers block or warn. Every page of the contract
is parsed and every URL that the browser fetches with it is looked at: scripts, stylesheets
and other ``<link>`` loads, images (``src`` and ``srcset``), media, frames, objects, and
``url(...)`` in inline styles; a form posting to ``http://`` is reported too (its data would
leave in clear text). Plain links (``<a href>``) are navigation, not mixed content.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: (tag, attribute) pairs whose URL the browser fetches with the page, or submits to.
SUBRESOURCE_ATTRIBUTES = frozenset({
    ("script", "src"), ("img", "src"), ("img", "srcset"), ("source", "src"),
    ("source", "srcset"), ("audio", "src"), ("video", "src"), ("video", "poster"),
    ("track", "src"), ("iframe", "src"), ("frame", "src"), ("embed", "src"),
    ("object", "data"), ("input", "src"), ("form", "action"),
})  # fmt: skip
#: ``<link rel=...>`` values that make the browser fetch the URL (not rel=canonical/alternate).
FETCHED_LINK_RELS = frozenset(
    {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest", "apple-touch-icon"}
)
_CSS_URL = re.compile(r"""url\(\s*['"]?(http://[^'")\s]+)""", re.IGNORECASE)
INSECURE_SCHEME = "http://"


class _Subresources(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.insecure: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self._in_style = tag == "style"
        for name, value in values.items():
            if name == "style":
                self._css(value, f"<{tag} style>")
            fetched = (tag, name) in SUBRESOURCE_ATTRIBUTES or (
                tag == "link" and name == "href" and self._fetched_link(values.get("rel", ""))
            )
            if fetched:
                for url in _urls(name, value):
                    if url.lower().startswith(INSECURE_SCHEME):
                        self.insecure.append(f"<{tag} {name}={url!r}>")

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data, "<style>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def _css(self, css: str, where: str) -> None:
        self.insecure += [f"{where} url({url!r})" for url in _CSS_URL.findall(css)]

    @staticmethod
    def _fetched_link(rel: str) -> bool:
        return bool(set(rel.lower().split()) & FETCHED_LINK_RELS)


def _urls(attribute: str, value: str) -> list[str]:
    if attribute != "srcset":
        return [value.strip()]
    return [candidate.strip().split()[0] for candidate in value.split(",") if candidate.strip()]


def insecure_subresources(page_html: str) -> list[str]:
    """The elements of ``page_html`` that load (or submit to) a plain ``http://`` URL."""
    parser = _Subresources()
    parser.feed(page_html)
    parser.close()
    return parser.insecure
