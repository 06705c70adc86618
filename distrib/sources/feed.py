"""The feed source: RSS 0.9x/1.0/2.0, Atom and JSON Feed 1.0/1.1, from a URL or a file.

XML feeds are parsed by feedparser after we decode the bytes ourselves (see
:func:`decode_xml`), JSON Feeds (https://www.jsonfeed.org/version/1.1/) by the code
below.  Every entry becomes a :class:`~distrib.model.Post`; an entry without a usable
link is skipped (counted in one log line), never invented: an RSS ``<guid
isPermaLink="false">`` is not the post's address (RSS 2.0, "<guid> sub-element of
<item>"), nor is an Atom ``<id>`` (RFC 4287 §4.2.6: an identifier, not a link; the
link is ``<link rel="alternate">``, §4.2.7.2), nor a JSON Feed ``external_url`` (JSON
Feed 1.1: the page the item is about; ``url`` is the permalink) or ``id``.  With
``link_fallback = "site"`` such an entry links to its ``xml:base`` or the site instead.

Tags and categories.  Where the format says which is which, we follow it:
JSON Feed ``tags`` are tags; an RSS ``<category domain=...>`` or Atom
``<category scheme=...>`` whose domain/scheme contains "tag" (WordPress writes
``post_tag``; many sites a ``/tag/`` URL) is a tag, one containing "categor",
"section" or "topic" is a category; ``media:keywords`` are tags.  A plain
``<category>`` says nothing (WordPress's RSS lists categories and tags alike that
way), so it goes where the option ``categories_as`` says: ``"both"`` (default, so
that include_tags/include_categories and hashtags all see it), ``"categories"`` or
``"tags"``.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import struct_time
from typing import Any, ClassVar
from urllib.parse import urljoin

from ..adapters import Context, Source
from ..errors import ConfigError, DistribError, SourceError
from ..http import FetchError, HttpClient, HttpResponse
from ..model import Image, Post
from ..paths import SAMPLE_DIR
from ..sanitize import absolute_http_url, clean_html, excerpt, html_to_text, one_line
from ..schema import Opt, choice, k_path, k_url
from .common import (
    SUMMARY_CHARS,
    content_images,
    derive_summary,
    derive_title,
    positive_int,
    post_key,
    strip_tracking,
    unique_terms,
)
from .dates import parse_date
from .page import (
    COMMON_FEED_PATHS,
    FeedLink,
    declared_feeds,
    looks_like_html,
    parse_page,
    wordpress_api_link,
)

log = logging.getLogger("distrib.sources")

ACCEPT = (
    "application/feed+json, application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/json;q=0.8, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
#: Length of a summary we derive from the content, and of a title from the first words.

# WHATWG Encoding Standard labels (https://encoding.spec.whatwg.org/#names-and-labels):
# browsers read these legacy labels as the wider encoding, and so do feeds' authors.
_ENCODING_ALIASES = {
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
    "ascii": "cp1252", "iso-8859-9": "cp1254", "gb2312": "gb18030", "gbk": "gb18030",
    "x-gbk": "gb18030", "tis-620": "cp874", "iso-8859-11": "cp874", "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949", "shift_jis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
    "big5": "big5hkscs", "utf8": "utf-8",
}  # fmt: skip

_DECL_RE = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", re.I)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _ENCODING_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_xml(body: bytes, http_charset: str | None = None) -> str:
    """The text of an XML document: BOM, then the declared encoding, then UTF-8, then
    the HTTP charset, then windows-1252; the first that decodes without error wins.

    The declaration comes before the HTTP charset (against RFC 7303) because servers
    send a default ``charset=utf-8`` far more often than feeds lie in their prolog.
    """
    for bom, bom_enc in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(bom_enc, errors="replace")
    head = body.lstrip()
    m = _DECL_RE.match(head)
    candidates = [_codec(m.group(1).decode("ascii")) if m else None, "utf-8", _codec(http_charset)]
    for enc in candidates:
        if not enc:
            continue
        try:
            return body.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    return body.decode("cp1252", errors="replace")


def _prepare_xml(body: bytes, http_charset: str | None) -> bytes:
    """UTF-8 bytes with the prolog first and declaring UTF-8, ready for feedparser."""
    text = decode_xml(body, http_charset).lstrip("\ufeff \t\r\n")
    text = re.sub(r"^<\?xml[^>]*\?>", '<?xml version="1.0" encoding="utf-8"?>', text, count=1)
    return text.encode("utf-8")


_HTML_RE = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
_ALTERNATE_RE = re.compile(
    r"<link\b[^>]*type=[\"']application/(?:rss|atom|feed)\+(?:xml|json)[\"'][^>]*>", re.I
)
_HREF_RE = re.compile(r"href=[\"']([^\"']+)[\"']", re.I)


def _not_a_feed(source: str, body: bytes, content_type: str, url: str | None) -> SourceError:
    got = content_type or "no content type"
    hint = "check the url" if url else "check the path"
    if not body.strip():
        where = "the server answered with an empty body" if url else "the file is empty"
        return SourceError(source, f"not a feed: {where}; {hint}")
    if _HTML_RE.match(body[:4096]):
        got = content_type or "an HTML page"
        page = body[:65536].decode("utf-8", errors="replace")
        for tag in _ALTERNATE_RE.findall(page):
            href = _HREF_RE.search(tag)
            found = absolute_http_url(href.group(1), url) if href else None
            if found:
                hint = f"the page names a feed at {found}; use that as the url"
                break
        return SourceError(source, f"not a feed (got {got}); {hint}")
    return SourceError(source, f"not a feed (got {got}); {hint}")


def parse_feed(
    body: bytes,
    *,
    source: str,
    url: str | None = None,
    content_type: str = "",
    charset: str | None = None,
    base_url: str | None = None,
    categories_as: str = "both",
    link_fallback: str = "skip",
) -> list[Post]:
    """The posts of one feed document (XML or JSON Feed); SourceError if it is not a feed.

    ``url`` is where the document came from (relative links resolve against it);
    ``base_url`` overrides it (for a feed read from a file).  ``link_fallback``: what
    an entry without a link of its own gets: "skip" (it is left out) or "site".
    """
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"[") or content_type in ("application/feed+json", "application/json"):
        return parse_json_feed(
            body,
            source=source,
            url=url,
            base_url=base_url,
            content_type=content_type,
            link_fallback=link_fallback,
        )
    if _HTML_RE.match(body[:4096]):
        raise _not_a_feed(source, body, content_type, url)
    return parse_xml_feed(
        body, source=source, url=url, content_type=content_type, charset=charset,
        base_url=base_url, categories_as=categories_as, link_fallback=link_fallback,
    )  # fmt: skip


# --- XML ----------------------------------------------------------------------------


def parse_xml_feed(
    body: bytes,
    *,
    source: str,
    url: str | None = None,
    content_type: str = "",
    charset: str | None = None,
    base_url: str | None = None,
    categories_as: str = "both",
    link_fallback: str = "skip",
) -> list[Post]:
    import feedparser

    data = _prepare_xml(body, charset)
    base = base_url or url
    headers = {"content-type": "application/xml; charset=utf-8"}
    if base:
        headers["content-location"] = base
    # feedparser's own sanitiser is off: ours (nh3, an allowlist) runs on every field.
    parsed = feedparser.parse(
        data, response_headers=headers, sanitize_html=False, resolve_relative_uris=True
    )
    entries = parsed.get("entries") or []
    if not entries and (parsed.get("bozo") or not parsed.get("version")):
        if parsed.get("bozo") and not _HTML_RE.match(body[:4096]):
            reason = _short(parsed.get("bozo_exception"))
            hint = "check the url" if url else "check the path"
            raise SourceError(source, f"not a feed: broken XML ({reason}); {hint}")
        raise _not_a_feed(source, body, content_type, url)
    feed = parsed.get("feed") or {}
    feed_base = base or absolute_http_url(feed.get("link"))
    site = absolute_http_url(feed.get("link"), base) or feed_base
    atom = str(parsed.get("version") or "").startswith("atom")
    posts = []
    no_link: list[str] = []
    held = _HeldWarnings()  # shown only if the feed turns out usable
    log.addFilter(held)
    try:
        for entry in entries:
            try:
                post = _xml_entry(
                    entry, source=source, feed_base=feed_base, categories_as=categories_as,
                    atom=atom, site=site if link_fallback == "site" else None,
                )  # fmt: skip
            except _NoLink as e:
                no_link.append(str(e))
                continue
            except Exception as e:  # one odd entry must not lose the others
                log.warning(
                    "source %r: skipped an entry that could not be read (%s)", source, _short(e)
                )
                continue
            if post is not None:
                posts.append(post)
        if no_link:
            _warn_no_link(source, no_link, "entry", "entries")
    finally:
        log.removeFilter(held)
    if parsed.get("bozo") and not posts:
        # Broken XML whose loose parse gave nothing usable is a broken feed, not an
        # empty one: one error line (exit 1) rather than silently sending nothing.
        reason = _short(parsed.get("bozo_exception"))
        hint = "check the url" if url else "check the path"
        raise SourceError(source, f"not a feed: broken XML ({reason}); {hint}")
    if parsed.get("bozo"):
        log.warning(
            "source %r: the feed is not well-formed (%s); kept the %d entries that parsed",
            source, _short(parsed.get("bozo_exception")), len(posts),
        )  # fmt: skip
    for record in held.records:
        log.handle(record)
    return posts


class _HeldWarnings(logging.Filter):
    """Holds the per-entry warnings of one parse until we know the feed is usable."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        # Sources are fetched in threads that share the logger: hold only this
        # thread's records, let the others' through.
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.records.append(record)
        return False


def _struct_dt(value: struct_time | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    return dt if 1995 <= dt.year <= 2200 else None


def _entry_date(entry: Any, *names: str) -> datetime | None:
    for name in names:
        raw = entry.get(name)
        if raw:
            # Our parser first: feedparser reads unknown zone names (CEST) as UTC.
            dt = parse_date(raw) or _struct_dt(entry.get(f"{name}_parsed"))
            if dt:
                return dt
    return None


class _NoLink(Exception):
    """An entry without a link of its own (the message is its title or id, for the log)."""


def _warn_no_link(source: str, titles: list[str], one: str, many: str) -> None:
    more = f" and {len(titles) - 1} more" if len(titles) > 1 else ""
    log.warning(
        "source %r: skipped %d %s without a link of its own (%r%s): a guid or id is not the post's "
        'address; set link_fallback = "site" to link them to the site',
        source, len(titles), one if len(titles) == 1 else many, titles[0], more,
    )  # fmt: skip


def _alternate(entry: Any, base: str | None) -> str | None:
    """RFC 4287 §4.2.7.2: the entry's ``<link>`` whose rel is "alternate" (or absent)."""
    for link in entry.get("links") or []:
        if (link.get("rel") or "alternate") == "alternate" and link.get("href"):
            url = absolute_http_url(link["href"], base)
            if url:
                return url
    return None


def _xml_entry(
    entry: Any,
    *,
    source: str,
    feed_base: str | None,
    categories_as: str,
    atom: bool = False,
    site: str | None = None,
) -> Post | None:
    # The entry's own base (xml:base on the item, or the feed's) for anything
    # feedparser did not resolve itself (media:content, enclosures, guid links).
    base = None
    for detail in ("content", "summary_detail", "title_detail"):
        d = entry.get(detail)
        if isinstance(d, list):
            d = d[0] if d else None
        if d and d.get("base"):
            base = absolute_http_url(d["base"], feed_base) or base
            break
    base = base or feed_base

    guid = (entry.get("id") or "").strip()
    if atom:
        # feedparser copies an Atom <id> into "link" when there is no <link>: not ours.
        link = _alternate(entry, base)
    else:
        # RSS 2.0: <link>, else a <guid> that is a permalink (isPermaLink is not
        # "false"; feedparser then copies it into "link" itself).
        link = absolute_http_url(entry.get("link"), base)
    if link:
        link = strip_tracking(link)
    if not link:
        if site:
            link = base or site
        else:
            raise _NoLink(one_line(entry.get("title"))[:60] or guid[:60])

    content_html = _best_content(entry)
    summary_html = entry.get("summary") or ""
    if not content_html:
        # Yandex's full-text extension carries the whole article where others use content.
        content_html = entry.get("yandex_full-text") or summary_html
        if entry.get("yandex_full-text"):
            content_html = _text_to_html(content_html) if "<" not in content_html else content_html
    content = clean_html(content_html, link)
    summary = derive_summary(summary_html if summary_html != content_html else "", content)

    # feedparser says whether a title is text or HTML; text stays text ("<script>" in
    # a title about tags), HTML loses only its own tags.
    title_type = (entry.get("title_detail") or {}).get("type") or "text/html"
    title = one_line(entry.get("title"), markup=title_type != "text/plain")
    if not title:
        title = derive_title(html_to_text(content) or summary)

    authors = [one_line(a.get("name") or a.get("email") or "") for a in entry.get("authors") or []]
    authors = [a for a in authors if a]
    author = ", ".join(dict.fromkeys(authors)) or one_line(entry.get("author"))

    tags, categories = _split_terms(entry, categories_as)

    published = _entry_date(entry, "published", "created")
    updated = _entry_date(entry, "updated")
    if published is None:
        # Atom requires only <updated>; dc:date lands there too.  Better than no date.
        published = updated
    if updated == published:
        updated = None  # feedparser copies an RSS pubDate into "updated": not an edit

    return Post(
        key=post_key(guid, link),
        url=link,
        title=title,
        source=source,
        summary=summary,
        content=content,
        author=author,
        published=published,
        updated=updated,
        tags=tags,
        categories=categories,
        image=_xml_image(entry, base, content),
    )


def _best_content(entry: Any) -> str:
    contents = entry.get("content") or []
    html_parts = [c for c in contents if c.get("type") in ("text/html", "application/xhtml+xml")]
    plain = [c for c in contents if c.get("type") == "text/plain"]
    if html_parts:
        return max(html_parts, key=lambda c: len(c.get("value") or "")).get("value") or ""
    if plain:
        value = plain[0].get("value") or ""
        return _text_to_html(value) if "<" not in value else value
    return ""


def _text_to_html(text: str) -> str:
    import html

    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join("<p>" + html.escape(p).replace("\n", "<br/>") + "</p>" for p in paras)


def _term_kind(scheme: str) -> str:
    s = scheme.lower()
    if "tag" in s or "keyword" in s:
        return "tag"
    if "categor" in s or "section" in s or "topic" in s:
        return "category"
    return ""


def _split_terms(entry: Any, categories_as: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    keywords = {
        one_line(k).lower()
        for k in re.split(r"[,;]", entry.get("media_keywords") or "")
        if one_line(k)
    }
    tags: list[str] = []
    cats: list[str] = []
    for t in entry.get("tags") or []:
        term = one_line(t.get("label") or t.get("term"))
        if not term:
            continue
        kind = _term_kind(t.get("scheme") or "")
        if not kind and term.lower() in keywords:
            kind = "tag"
        if kind == "tag" or (not kind and categories_as in ("tags", "both")):
            tags.append(term)
        if kind == "category" or (not kind and categories_as in ("categories", "both")):
            cats.append(term)
    return unique_terms(tags), unique_terms(cats)


def _with_alt(image: Image, content_images: list[Image]) -> Image:
    """A feed's media image rarely carries alt text; the same picture in the body may."""
    if image.alt:
        return image
    for img in content_images:
        if img.url == image.url and img.alt:
            return replace(image, alt=img.alt)
    return image


def _is_image(media: dict[str, Any]) -> bool:
    medium = (media.get("medium") or "").lower()
    mime = (media.get("type") or "").lower()
    if medium:
        return medium == "image"
    if mime:
        return mime.startswith("image/")
    return bool(re.search(r"\.(?:jpe?g|png|gif|webp|avif)(?:\?|$)", media.get("url") or "", re.I))


def _xml_image(entry: Any, base: str | None, content: str) -> Image | None:
    in_body = content_images(content)
    candidates: list[dict[str, Any]] = []
    candidates += [m for m in entry.get("media_content") or [] if _is_image(m)]
    candidates += list(entry.get("media_thumbnail") or [])
    candidates += [
        {"url": link.get("href"), "type": link.get("type")}
        for link in entry.get("links") or []
        if link.get("rel") == "enclosure" and (link.get("type") or "").lower().startswith("image/")
    ]
    for media in candidates:
        url = absolute_http_url(media.get("url"), base)
        if url:
            alt = one_line(media.get("alt") or media.get("description") or "")
            return _with_alt(
                Image(
                    url, alt, positive_int(media.get("width")), positive_int(media.get("height"))
                ),
                in_body,
            )
    return in_body[0] if in_body else None


# --- JSON Feed ----------------------------------------------------------------------


def parse_json_feed(
    body: bytes,
    *,
    source: str,
    url: str | None = None,
    base_url: str | None = None,
    content_type: str = "",
    link_fallback: str = "skip",
) -> list[Post]:
    """https://www.jsonfeed.org/version/1.1/ (and 1.0, which differs in ``author``)."""
    hint = "check the url" if url else "check the path"
    try:
        data = json.loads(decode_xml(body, None))
    except RecursionError:
        raise SourceError(source, f"not a feed: JSON nested too deeply to read; {hint}") from None
    except ValueError as e:
        raise SourceError(source, f"not a feed: broken JSON ({_short(e)}); {hint}") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise SourceError(source, f"not a feed: JSON without a JSON Feed 'items' list; {hint}")
    version = str(data.get("version") or "")
    if version and not version.startswith("https://jsonfeed.org/version/"):
        log.warning(
            "source %r: unknown JSON Feed version %r; reading it as 1.1", source, version[:60]
        )
    base = (
        base_url
        or url
        or absolute_http_url(data.get("home_page_url"))
        or absolute_http_url(data.get("feed_url"))
    )
    feed_authors = _json_authors(data)
    site = absolute_http_url(data.get("home_page_url")) if link_fallback == "site" else None
    posts = []
    no_link: list[str] = []
    for item in data["items"]:
        if not isinstance(item, dict):
            continue
        try:
            post = _json_item(item, source=source, base=base, feed_authors=feed_authors, site=site)
        except _NoLink as e:
            no_link.append(str(e))
            continue
        except Exception as e:  # one odd item must not lose the others
            log.warning("source %r: skipped an item that could not be read (%s)", source, _short(e))
            continue
        if post is not None:
            posts.append(post)
    if no_link:
        _warn_no_link(source, no_link, "item", "items")
    return posts


def _json_authors(obj: dict[str, Any]) -> str:
    found: list[Any] = []
    if isinstance(obj.get("authors"), list):
        found = obj["authors"]
    elif obj.get("author"):
        found = [obj["author"]]
    names = []
    for a in found:
        name = a.get("name") if isinstance(a, dict) else a if isinstance(a, str) else None
        if name:
            names.append(one_line(name))
    return ", ".join(n for n in dict.fromkeys(names) if n)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json_item(
    item: dict[str, Any],
    *,
    source: str,
    base: str | None,
    feed_authors: str,
    site: str | None = None,
) -> Post | None:
    # JSON Feed 1.1: "url" is the permalink; "external_url" is the page the item is
    # about (someone else's), and "id" only identifies the item.
    link = absolute_http_url(_str(item.get("url")), base)
    raw_id = item.get("id")
    guid = (
        str(raw_id).strip()
        if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool)
        else ""
    )
    if link:
        link = strip_tracking(link)
    if not link:
        if not site:
            raise _NoLink(one_line(_str(item.get("title")))[:60] or guid[:60])
        link = site
    html_in = _str(item.get("content_html"))
    if not html_in and _str(item.get("content_text")):
        html_in = _text_to_html(item["content_text"])
    content = clean_html(html_in, link)
    summary = " ".join(one_line(_str(item.get("summary"))).split()) or (
        excerpt(html_to_text(content), SUMMARY_CHARS) if content else ""
    )
    title = one_line(_str(item.get("title")), markup=False) or derive_title(
        html_to_text(content) or summary
    )
    tags = unique_terms(
        one_line(t) for t in item.get("tags") or [] if isinstance(t, str) and one_line(t)
    )
    image = None
    for key in ("image", "banner_image"):
        url = absolute_http_url(_str(item.get(key)), link)
        if url:
            image = _with_alt(Image(url), content_images(content))
            break
    if image is None:
        for att in item.get("attachments") or []:
            if isinstance(att, dict) and _str(att.get("mime_type")).lower().startswith("image/"):
                url = absolute_http_url(_str(att.get("url")), link)
                if url:
                    image = Image(url, one_line(_str(att.get("title"))))
                    break
    if image is None:
        body_images = content_images(content)
        image = body_images[0] if body_images else None
    published = parse_date(_str(item.get("date_published")))
    updated = parse_date(_str(item.get("date_modified")))
    return Post(
        key=post_key(guid, link),
        url=link,
        title=title,
        source=source,
        summary=summary,
        content=content,
        author=_json_authors(item) or feed_authors,
        published=published or updated,
        updated=updated,
        tags=tags,
        categories=(),
        image=image,
    )


def _short(e: object) -> str:
    text = str(e or "").strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


# --- the sources --------------------------------------------------------------------


class FeedSource(Source):
    """Posts from an RSS, Atom or JSON Feed document, fetched from ``url`` or read from ``path``."""

    options: ClassVar[dict[str, Opt]] = {
        "url": Opt(k_url, None, "the feed's URL (RSS, Atom or JSON Feed); or set path"),
        "path": Opt(k_path, None, "a feed file on disk, instead of url"),
        "base_url": Opt(
            k_url, None, "resolve relative links against this (default: the feed's URL or link)"
        ),
        "categories_as": Opt(
            choice("both", "categories", "tags"),
            "both",
            "where a plain RSS/Atom category (one the feed does not mark as tag or category) goes",
        ),
        "link_fallback": Opt(
            choice("skip", "site"),
            "skip",
            "an entry without a link of its own: skip it, or link it to its xml:base or the site",
        ),
    }

    def __init__(self, name: str, options: Any, ctx: Context):
        super().__init__(name, options, ctx)
        self._check_options()

    def _check_options(self) -> None:
        url, path = self.opts.get("url"), self.opts.get("path")
        where = getattr(self.opts, "where", "") or f"sources ({self.name})"
        if bool(url) == bool(path):
            raise ConfigError(f"{where}: set exactly one of url and path for a feed source")

    def fetch(self) -> list[Post]:
        url, path = self.opts.get("url"), self.opts.get("path")
        if path:
            body = self._read(Path(path))
            return parse_feed(
                body, source=self.name, base_url=self.opts.get("base_url"),
                categories_as=self.opts.get("categories_as") or "both",
                link_fallback=self.opts.get("link_fallback") or "skip",
            )  # fmt: skip
        try:
            resp = self.ctx.http.get(
                str(url), headers={"Accept": ACCEPT}
            )  # url is set: _check_options
            if looks_like_html(resp.body, resp.content_type):
                # A home page: read the feed it declares (or one at a common path).
                resp = self._feed_of_page(resp)
        except FetchError as e:
            raise SourceError(self.name, str(e)) from None
        return parse_feed(
            resp.body, source=self.name, url=resp.url, content_type=resp.content_type,
            charset=resp.charset, base_url=self.opts.get("base_url"),
            categories_as=self.opts.get("categories_as") or "both",
            link_fallback=self.opts.get("link_fallback") or "skip",
        )  # fmt: skip

    def _feed_of_page(self, page: HttpResponse) -> HttpResponse:
        feed, _api = feed_in_page(page.body, page.headers, page.url, self.ctx.http)
        if feed is None:
            return page  # parse_feed says "not a feed" with the page's own hint
        try:
            return self.ctx.http.get(feed.url, headers={"Accept": ACCEPT})
        except FetchError as e:
            raise SourceError(
                self.name,
                f"not a feed (got {page.content_type or 'an HTML page'}); the page names a feed at "
                f"{e.url}, which answered {e.reason}; check the url",
            ) from None

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SourceError(self.name, f"no feed file at {path}; check the path") from None
        except IsADirectoryError:
            raise SourceError(
                self.name, f"{path} is a folder; path must name a feed file"
            ) from None
        except OSError as e:
            raise SourceError(
                self.name, f"cannot read {path} ({e.strerror}); check the path"
            ) from None


# --- a home page given as the url -----------------------------------------------------


def feed_kind(resp: HttpResponse) -> str | None:
    """ "RSS", "Atom" or "JSON Feed" when the answer parses as a feed with items or a title."""
    if looks_like_html(resp.body, resp.content_type):
        return None
    try:
        parse_feed(
            resp.body,
            source="discover",
            url=resp.url,
            content_type=resp.content_type,
            charset=resp.charset,
        )
    except DistribError:
        return None
    head = resp.body[:2048].lstrip()
    if head.startswith(b"{"):
        return "JSON Feed"
    return "Atom" if b"<feed" in resp.body[:4096] else "RSS"


def probe_common_paths(base: str, http: HttpClient) -> list[FeedLink]:
    """The first common feed path that answers a feed (each probe bounded by the client)."""
    for path in COMMON_FEED_PATHS:
        candidate = urljoin(base, path)
        try:
            resp = http.get(candidate, conditional=False)
        except FetchError:
            continue
        kind = feed_kind(resp)
        if kind:
            return [FeedLink(resp.url, kind, how="probed")]
    return []


def feed_in_page(
    body: bytes, headers: dict[str, str], page_url: str, http: HttpClient
) -> tuple[FeedLink | None, str | None]:
    """For a feed source given a home page: (the feed to read, the WordPress API root if any)."""
    text = body.decode("utf-8", "replace")
    info = parse_page(text)
    feeds = declared_feeds(info, page_url)
    api = wordpress_api_link(info, headers, page_url)
    if not feeds:
        feeds = probe_common_paths(page_url, http)
    feed = next((f for f in feeds if not f.is_comments), feeds[0] if feeds else None)
    return feed, api


SAMPLE_FEED = SAMPLE_DIR / "feed.xml"
#: The newest sample post is this long before "now", whatever today's date is.
SAMPLE_LEAD = timedelta(hours=2)


class SampleSource(FeedSource):
    """The bundled demo site (distrib/sample/feed.xml), its dates moved to end 2 h ago.

    The spacing between posts is kept, so a 7-day window always holds the last week's
    worth of them and the demo config selects posts whatever today's date is.
    """

    options: ClassVar[dict[str, Opt]] = {}

    def _check_options(self) -> None:
        return None

    def fetch(self) -> list[Post]:
        posts = parse_feed(self._read(SAMPLE_FEED), source=self.name)
        return shift_dates(posts, self.ctx.now - SAMPLE_LEAD)


def shift_dates(posts: Iterable[Post], newest: datetime) -> list[Post]:
    """The posts with every date moved by the same amount, so the newest is at ``newest``."""
    posts = list(posts)
    dated = [p.published for p in posts if p.published]
    if not dated:
        return posts
    delta = newest - max(dated)
    return [
        replace(
            p,
            published=p.published + delta if p.published else None,
            updated=p.updated + delta if p.updated else None,
        )
        for p in posts
    ]
