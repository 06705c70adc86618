"""What all sources share: canonical URLs, post keys, summaries, titles and images derived
from a post's text, merging several sources, fetching them at once.

Contains no business logic beyond "the same post twice is one post".
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import DistribError, SourceError
from ..model import Image, Post
from ..sanitize import excerpt, html_to_text, one_line

if TYPE_CHECKING:
    from ..adapters import Source

log = logging.getLogger("distrib.sources")

#: Query parameters that track a click and never change the page.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "_hsenc", "_hsmi"}
)


def canonical_url(url: str) -> str:
    """``url`` with the scheme and host lower-cased, the default port, the fragment and
    tracking parameters (``utm_*``, ``fbclid`` ...) removed; the rest kept as it was."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and not (
        (scheme == "http" and parts.port == 80) or (scheme == "https" and parts.port == 443)
    ):
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = parts.netloc.rpartition("@")[0] + "@" + host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [
            (k, v)
            for k, v in pairs
            if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
        ]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    path = parts.path or ("/" if host else "")
    return urlunsplit((scheme, host, path, query, ""))


def strip_tracking(url: str) -> str:
    """``url`` without ``utm_*`` and click-id parameters, otherwise untouched.

    Feeds tag their links for their own analytics (WordPress plugins add
    ``utm_source=rss``); the channels add their own, so the feed's must go.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [
        (k, v)
        for k, v in pairs
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    ]
    if len(kept) == len(pairs):
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


_OLDEST = datetime.min.replace(tzinfo=UTC)


def merge_posts(post_lists: Iterable[list[Post]]) -> list[Post]:
    """All posts once, newest first.  A post whose key or canonical URL was already
    seen is a duplicate: the first source (in config order) wins.  A URL that several
    posts of one source share (a feed's entries without links of their own, linked to
    the site by ``link_fallback = "site"``) is no one post's address: only their keys
    tell them apart.  Undated posts come first: the app dates them by when they were
    first seen, which is now or later."""
    seen: set[str] = set()
    merged: list[Post] = []
    for posts in post_lists:
        keys_by_url: dict[str, set[str]] = {}
        for post in posts:
            keys_by_url.setdefault(canonical_url(post.url), set()).add(post.key)
        for post in posts:
            url = canonical_url(post.url)
            ids = {post.key} if len(keys_by_url[url]) > 1 else {post.key, url}
            if ids & seen:
                continue
            seen |= ids
            merged.append(post)
    merged.sort(key=lambda p: (p.published is None, p.published or _OLDEST), reverse=True)
    return merged


def fetch_all(sources: list[Source], max_workers: int = 4) -> tuple[list[Post], list[SourceError]]:
    """Every source's posts merged (see :func:`merge_posts`), fetched concurrently.

    One broken source does not stop the others: its error is returned, in config order.
    """

    def one(source: Source) -> list[Post] | SourceError:
        try:
            posts = source.fetch()
        except SourceError as e:
            return e
        except DistribError as e:
            return SourceError(source.name, str(e))
        except Exception as e:  # a bug in a source, maybe a third party's: report, go on
            log.debug("source %r failed", source.name, exc_info=True)
            return SourceError(
                source.name, f"unexpected error ({type(e).__name__}: {e}); please report it"
            )
        return [p if p.source == source.name else replace(p, source=source.name) for p in posts]

    for source in sources:
        # Context.http is created on first use; create it here, before the threads
        # start, so that they share one client instead of racing to make several.
        ctx = source.ctx
        if len(sources) > 1 and ctx._http is None:
            ctx.http  # noqa: B018
    if len(sources) <= 1 or max_workers <= 1:
        results = [one(s) for s in sources]
    else:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(sources))) as pool:
            results = list(pool.map(one, sources))
    errors = [r for r in results if isinstance(r, SourceError)]
    lists = [r for r in results if not isinstance(r, SourceError)]
    return merge_posts(lists), errors


# --- what every source derives the same way -------------------------------------------

#: The longest summary made from a post's text, and the longest title made from it.
SUMMARY_CHARS = 300
TITLE_CHARS = 80


def post_key(guid: str, link: str) -> str:
    """The guid / id when there is one, else the canonical URL (ARCHITECTURE.md, "The nouns").

    A guid that is not a URL, URN or tag URI ("1", "4242") is only unique inside its
    feed; it is prefixed with the post's host so that two sites' "1" stay two posts.
    """
    guid = guid.strip()
    if not guid:
        return canonical_url(link)
    if ":" in guid:
        return guid
    host = urlsplit(link).hostname or ""
    return f"{host}:{guid}" if host else guid


def derive_summary(summary_html: str, content: str) -> str:
    """Plain-text summary: the feed's own (minus WordPress boilerplate), else the content's start."""
    text = html_to_text(summary_html) if summary_html else ""
    # WordPress ends excerpts with "[&#8230;]" and "The post X appeared first on Y".
    text = re.sub(
        r"([.!?…])?\s*\[(?:…|\.\.\.|&hellip;)\]\s*", lambda m: (m.group(1) or "…") + " ", text
    )
    text = re.sub(r"\s*The post .{1,300} appeared first on .{1,200}\.?\s*$", "", text, flags=re.S)
    text = " ".join(text.split())
    if not text and content:
        text = excerpt(html_to_text(content), SUMMARY_CHARS)
    return text


def derive_title(text: str) -> str:
    """A title for a post without one: its first sentence, cut to a title's length."""
    text = one_line(text)  # a title is one plain line, even when the body shows markup as text
    if not text:
        return ""
    first = re.split(r"(?<=[.!?。！？])\s", text, maxsplit=1)[0]
    return excerpt(first, TITLE_CHARS)


def unique_terms(terms: Iterable[str]) -> tuple[str, ...]:
    """Terms without repeats, compared case-insensitively; the first spelling wins."""
    seen: dict[str, str] = {}
    for term in terms:
        seen.setdefault(term.casefold(), term)
    return tuple(seen.values())


_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_ATTR_RE = re.compile(r'([a-zA-Z-]+)="([^"]*)"')


def content_images(content: str) -> list[Image]:
    """The <img>s of sanitised content (our serialiser writes attributes one way only)."""
    out = []
    for tag in _IMG_RE.findall(content):
        attrs = {k: html.unescape(v) for k, v in _ATTR_RE.findall(tag)}
        if attrs.get("src"):
            out.append(
                Image(
                    attrs["src"],
                    one_line(attrs.get("alt")),
                    positive_int(attrs.get("width")),
                    positive_int(attrs.get("height")),
                )
            )
    return out


def positive_int(value: Any) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
