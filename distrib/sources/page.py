"""Reading a web page for what it declares about itself, and the feeds it links to.

Used by the feed source (a home page given as its url: read the feed the page names)
and by `distrib init URL` (:mod:`distrib.discover`).  A leaf: it parses HTML and
``Link`` headers and fetches nothing; finding a feed at the common paths, which needs
the feed parser, is :func:`distrib.sources.feed.probe_common_paths`.

What a page declares:

- feeds: ``<link rel="alternate">`` of type RSS, Atom or JSON Feed (comment feeds last);
- the WordPress REST API: ``<link rel="https://api.w.org/">`` or the same in the
  ``Link`` header;
- its title, ``<html lang>``, ``<meta>`` tags, every ``<link>``, JSON-LD blocks and a
  schema.org ``PostalAddress`` in microdata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from ..sanitize import absolute_http_url

#: Paths tried, in order, when a page declares no feed.
COMMON_FEED_PATHS = ("/feed", "/rss.xml", "/atom.xml", "/index.xml", "/feed.json", "/feed.xml")
WP_REL = "https://api.w.org/"
#: The schema.org PostalAddress properties, in the order an address is written.
ADDRESS_PROPS = (
    "streetAddress",
    "postOfficeBoxNumber",
    "addressLocality",
    "addressRegion",
    "postalCode",
    "addressCountry",
)

_FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
    "application/json": "JSON Feed",
    "application/rdf+xml": "RSS",
}
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
#: Elements that have no end tag: they never open a nesting level.
_VOID_TAGS = frozenset(
    ("meta", "link", "img", "br", "hr", "input", "source", "area", "base", "col", "embed", "wbr")
)
#: At most this many <link> elements are kept from one page.
_MAX_LINKS = 500


@dataclass(frozen=True)
class FeedLink:
    url: str
    kind: str  # RSS, Atom, JSON Feed
    title: str = ""
    how: str = "declared"  # declared (<link rel=alternate>) | probed (a common path)

    @property
    def is_comments(self) -> bool:
        return "comment" in self.title.lower() or "/comments/" in self.url.lower()


@dataclass
class PageInfo:
    """What one HTML page declares about itself."""

    title: str = ""
    lang: str = ""
    meta: dict[str, str] = field(default_factory=dict)  # name/property (lower-case) -> content
    links: list[dict[str, str]] = field(default_factory=list)  # each <link>'s attributes
    json_ld: list[Any] = field(default_factory=list)
    microdata_address: dict[str, str] = field(default_factory=dict)


# --- the HTML parser ---------------------------------------------------------------------


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.info = PageInfo()
        self._in_title = False
        self._title: list[str] = []
        self._script_ld = False
        self._script: list[str] = []
        self._address_depth = 0  # inside an itemtype=PostalAddress element
        self._prop: str | None = None
        self._prop_text: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        read = self._READERS.get(tag)
        if read is not None:
            read(self, a)
        if tag not in _VOID_TAGS:
            self._open_element(tag, a)

    # One reader per element that declares something, called with its attributes.

    def _read_html(self, a: dict[str, str]) -> None:
        """``<html lang>``: the page's language (the first one given)."""
        if a.get("lang") and not self.info.lang:
            self.info.lang = a["lang"].strip()

    def _read_title(self, a: dict[str, str]) -> None:
        """``<title>``: its text is collected until ``</title>`` (the first title only)."""
        if not self.info.title:
            self._in_title = True

    def _read_meta(self, a: dict[str, str]) -> None:
        """``<meta name|property content>`` (the first of each name), and a microdata
        address property given as ``content`` inside a PostalAddress."""
        key = (a.get("property") or a.get("name") or "").strip().lower()
        if key and "content" in a and key not in self.info.meta:
            self.info.meta[key] = a["content"].strip()
        if self._address_depth and a.get("itemprop") in ADDRESS_PROPS and a.get("content"):
            self.info.microdata_address.setdefault(a["itemprop"], a["content"].strip())

    def _read_link(self, a: dict[str, str]) -> None:
        """``<link>``: every attribute kept, up to a bound."""
        if len(self.info.links) < _MAX_LINKS:
            self.info.links.append(a)

    def _read_script(self, a: dict[str, str]) -> None:
        """``<script type="application/ld+json">``: its text is collected as JSON-LD."""
        if a.get("type", "").lower().strip() == "application/ld+json":
            self._script_ld = True
            self._script = []

    _READERS: ClassVar[dict[str, Callable[[_PageParser, dict[str, str]], None]]] = {
        "html": _read_html,
        "title": _read_title,
        "meta": _read_meta,
        "link": _read_link,
        "script": _read_script,
    }

    def _open_element(self, tag: str, a: dict[str, str]) -> None:
        """One nesting level more, tracking a schema.org PostalAddress in microdata."""
        self._stack.append(tag)
        if self._address_depth:
            self._address_depth += 1
        elif "postaladdress" in a.get("itemtype", "").lower():
            self._address_depth = 1
        if self._address_depth and a.get("itemprop") in ADDRESS_PROPS:
            self._prop = a["itemprop"]
            self._prop_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.info.title = " ".join("".join(self._title).split())
        elif tag == "script" and self._script_ld:
            self._script_ld = False
            try:
                self.info.json_ld.append(json.loads("".join(self._script)))
            except ValueError:
                pass
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
            if self._prop and self._address_depth:
                text = " ".join("".join(self._prop_text).split())
                if text:
                    self.info.microdata_address.setdefault(self._prop, text)
                self._prop = None
            if self._address_depth:
                self._address_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        elif self._script_ld:
            self._script.append(data)
        elif self._prop is not None:
            self._prop_text.append(data)


def parse_page(html: str) -> PageInfo:
    """The page's title, language, meta tags, links and schema.org data."""
    parser = _PageParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; a pathological page keeps what was read
        pass
    return parser.info


def looks_like_html(body: bytes, content_type: str = "") -> bool:
    return content_type in ("text/html", "application/xhtml+xml") or bool(
        _HTML_START.match(body[:4096])
    )


# --- what the page links to --------------------------------------------------------------


def link_rels(link: dict[str, str]) -> list[str]:
    """A ``<link>``'s rel values, lower-case."""
    return link.get("rel", "").lower().split()


def declared_feeds(info: PageInfo, base: str) -> list[FeedLink]:
    """The page's ``<link rel="alternate">`` feeds, in page order, comment feeds last."""
    out: list[FeedLink] = []
    for link in info.links:
        kind = _FEED_TYPES.get(link.get("type", "").split(";")[0].strip().lower())
        if not kind or "alternate" not in link_rels(link):
            continue
        if (
            kind == "JSON Feed"
            and link.get("type", "").startswith("application/json")
            and "oembed" in link.get("href", "").lower()
        ):
            continue  # WordPress's oEmbed links are application/json alternates too
        url = absolute_http_url(link.get("href", ""), base)
        if url and all(f.url != url for f in out):
            out.append(FeedLink(url, kind, " ".join(link.get("title", "").split())))
    return sorted(out, key=lambda f: f.is_comments)


def wordpress_api_link(info: PageInfo | None, headers: dict[str, str], base: str) -> str | None:
    """The WordPress REST API root from ``<link rel="https://api.w.org/">`` or the Link header."""
    for part in _split_link_header(headers.get("link", "")):
        m = re.match(r"\s*<([^>]*)>(.*)$", part, re.S)
        if m and re.search(r"""rel\s*=\s*["']?https://api\.w\.org/["']?""", m.group(2), re.I):
            url = absolute_http_url(m.group(1), base)
            if url:
                return url
    for link in info.links if info else []:
        if WP_REL in link_rels(link):
            url = absolute_http_url(link.get("href", ""), base)
            if url:
                return url
    return None


def _split_link_header(value: str) -> Iterator[str]:
    depth = False
    start = 0
    for i, ch in enumerate(value):
        if ch == "<":
            depth = True
        elif ch == ">":
            depth = False
        elif ch == "," and not depth:
            yield value[start:i]
            start = i + 1
    if value[start:].strip():
        yield value[start:]


def wordpress_site_url(api_root: str) -> str:
    """The address a wordpress source takes, from the API root it advertises."""
    parts = urlsplit(api_root)
    path = parts.path
    if "/wp-json" in path:
        path = path[: path.index("/wp-json")]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/") or "", "", "")) or api_root
