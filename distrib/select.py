"""Which posts an edition takes: new, in the window, passing the filters, newest first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .model import Post


def _folded(values: Iterable[str]) -> set[str]:
    return {v.casefold() for v in values}


def passes_filters(post: Post, opts: Mapping[str, Any]) -> bool:
    """include_*/exclude_* by tag, category, author; ``sources`` by source name."""
    tags = _folded(post.tags)
    cats = _folded(post.categories)
    author = {post.author.casefold()} if post.author else set()
    rules = (
        ("tags", tags),
        ("categories", cats),
        ("authors", author),
    )
    for name, have in rules:
        include = _folded(opts.get(f"include_{name}") or ())
        exclude = _folded(opts.get(f"exclude_{name}") or ())
        if include and not (have & include):
            return False
        if exclude and (have & exclude):
            return False
    sources = opts.get("sources") or ()
    return not (sources and post.source not in sources)


def select_posts(
    posts: Iterable[Post],
    opts: Mapping[str, Any],
    *,
    now: datetime,
    already: set[str],
    baseline: datetime | None = None,
    first_seen: Mapping[str, datetime] | None = None,
    first_run: bool = False,
    since: datetime | None = None,
    old: set[str] | None = None,
) -> list[Post]:
    """Every post the next edition takes, newest first.

    ``already``: keys in an earlier edition of this newsletter (an edited post keeps its
    key, so it is not new).  ``baseline``: posts first seen at or before it are skipped.
    ``since``: when the previous edition of this newsletter was made, and ``old``: the
    keys of the posts distrib had seen by then; a post that was already there (seen,
    and published by then) and not taken is not new: an edition never forms out of
    older news left behind.  On the ``first_run``,
    ``backfill = N`` keeps only the newest N.  ``max_posts`` is not applied here: the
    posts beyond it go into the same edition as title links (or are skipped), see
    :func:`split`.
    """
    first_seen = first_seen or {}
    start = now - opts["window"]
    chosen = []
    for post in posts:
        if post.key in already or _left_behind(
            post, first_seen.get(post.key), baseline, since, old
        ):
            continue
        when = post.published or first_seen.get(post.key)
        if when is None or when < start or when > now:
            continue
        if not passes_filters(post, opts):
            continue
        chosen.append(post)
    chosen.sort(key=lambda p: p.published or first_seen.get(p.key) or now, reverse=True)
    if first_run and opts.get("backfill") is not None:
        return chosen[: opts["backfill"]]
    return chosen


def _left_behind(
    post: Post,
    seen: datetime | None,
    baseline: datetime | None,
    since: datetime | None,
    old: set[str] | None,
) -> bool:
    """Seen by the baseline, or there (seen and published) when the previous edition was
    made and not taken by it: not new."""
    if baseline is not None and seen is not None and seen <= baseline:
        return True
    if not old or post.key not in old or since is None:
        return False
    return post.published is None or post.published <= since


def split(posts: list[Post], opts: Mapping[str, Any]) -> tuple[list[Post], list[Post]]:
    """An edition's posts as (shown, skipped): with ``overflow = "list"`` (the default)
    every post is shown, the first ``max_posts`` in full and the rest as title links;
    with ``overflow = "skip"`` the posts beyond ``max_posts`` are left out of the email
    but still belong to the edition (they never form the next one)."""
    if (opts.get("overflow") or "list") == "skip":
        limit = opts["max_posts"]
        return posts[:limit], posts[limit:]
    return posts, []
