"""What all sources share: canonical URLs, merging several sources, fetching them at once.

Contains no business logic beyond "the same post twice is one post".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import DistribError, SourceError
from ..model import Post

if TYPE_CHECKING:
    from ..adapters import Source

log = logging.getLogger("distrib.sources")

#: Query parameters that track a click and never change the page.
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "_hsenc", "_hsmi"})


def canonical_url(url: str) -> str:
    """``url`` with the scheme and host lower-cased, the default port, the fragment and
    tracking parameters (``utm_*``, ``fbclid`` ...) removed; the rest kept as it was."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and not ((scheme == "http" and parts.port == 80) or (scheme == "https" and parts.port == 443)):
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = parts.netloc.rpartition("@")[0] + "@" + host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
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
    kept = [(k, v) for k, v in pairs if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
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
            return SourceError(source.name, f"unexpected error ({type(e).__name__}: {e}); please report it")
        return [p if p.source == source.name else replace(p, source=source.name) for p in posts]

    for source in sources:
        # Context.http is created on first use; create it here, before the threads
        # start, so that they share one client instead of racing to make several.
        ctx = getattr(source, "ctx", None)
        if ctx is not None and len(sources) > 1 and getattr(ctx, "_http", None) is None:
            ctx.http  # noqa: B018
    if len(sources) <= 1 or max_workers <= 1:
        results = [one(s) for s in sources]
    else:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(sources))) as pool:
            results = list(pool.map(one, sources))
    errors = [r for r in results if isinstance(r, SourceError)]
    lists = [r for r in results if not isinstance(r, SourceError)]
    return merge_posts(lists), errors
