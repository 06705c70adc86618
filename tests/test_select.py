"""Selection: new posts in the window, filters, newest first, max_posts, backfill."""

from __future__ import annotations

from datetime import timedelta

from distrib.model import Post
from distrib.select import select_posts, split

from .conftest import FIXED_NOW


def post(n: int, hours_ago: float, **kw) -> Post:
    return Post(
        key=f"k{n}",
        url=f"https://x.example/{n}",
        title=f"Post {n}",
        source=kw.pop("source", "blog"),
        published=FIXED_NOW - timedelta(hours=hours_ago),
        **kw,
    )


OPTS = {
    "window": timedelta(days=7),
    "max_posts": 3,
    "backfill": None,
}


def test_newest_first_within_window_and_max():
    posts = [post(1, 5), post(2, 1), post(3, 200), post(4, 30), post(5, 2), post(6, -5)]
    chosen = select_posts(posts, OPTS, now=FIXED_NOW, already=set())
    # Everything new: max_posts no longer leaves posts behind for the next edition.
    assert [p.key for p in chosen] == ["k2", "k5", "k1", "k4"]  # k3 too old, k6 in the future
    # max_posts shapes the edition: listed beyond it by default, or skipped.
    assert split(chosen, OPTS) == (chosen, [])
    assert split(chosen, OPTS | {"overflow": "skip"}) == (chosen[:3], chosen[3:])


def test_posts_already_there_at_the_previous_edition_are_not_new():
    since = FIXED_NOW - timedelta(hours=3)
    posts = [post(1, 5), post(2, 1), post(3, 4), post(7, -1)]
    # k1 was there at the last edition and not taken: old news.  k3 was published
    # before it but first seen after (feed lag): new.  k7 was seen before, scheduled
    # for later: new once it is due.
    old = {"k1", "k7"}
    chosen = select_posts(posts, OPTS, now=FIXED_NOW, already=set(), since=since, old=old)
    assert [p.key for p in chosen] == ["k2", "k3"]
    later = select_posts(
        posts, OPTS, now=FIXED_NOW + timedelta(hours=2), already=set(), since=since, old=old
    )
    assert [p.key for p in later] == ["k7", "k2", "k3"]


def test_already_sent_and_baseline_are_skipped():
    posts = [post(1, 5), post(2, 1), post(3, 2)]
    seen = {
        "k1": FIXED_NOW - timedelta(days=1),
        "k2": FIXED_NOW,
        "k3": FIXED_NOW - timedelta(days=2),
    }
    chosen = select_posts(
        posts,
        OPTS,
        now=FIXED_NOW,
        already={"k2"},
        baseline=FIXED_NOW - timedelta(hours=30),
        first_seen=seen,
    )
    assert [p.key for p in chosen] == ["k1"]


def test_filters_by_tag_category_author_source():
    posts = [
        post(1, 1, tags=("Harbour",), author="Ana"),
        post(2, 2, tags=("sport",), categories=("Sport",)),
        post(3, 3, source="wire", author="Bo"),
    ]
    opts = OPTS | {"max_posts": 10}
    assert [
        p.key
        for p in select_posts(
            posts, opts | {"include_tags": ("harbour",)}, now=FIXED_NOW, already=set()
        )
    ] == ["k1"]
    assert [
        p.key
        for p in select_posts(
            posts, opts | {"exclude_categories": ("sport",)}, now=FIXED_NOW, already=set()
        )
    ] == ["k1", "k3"]
    assert [
        p.key
        for p in select_posts(
            posts, opts | {"include_authors": ("bo",)}, now=FIXED_NOW, already=set()
        )
    ] == ["k3"]
    assert [
        p.key
        for p in select_posts(posts, opts | {"sources": ("wire",)}, now=FIXED_NOW, already=set())
    ] == ["k3"]


def test_backfill_limits_the_first_run_only():
    posts = [post(i, i) for i in range(1, 6)]
    opts = OPTS | {"max_posts": 10, "backfill": 2}
    assert len(select_posts(posts, opts, now=FIXED_NOW, already=set(), first_run=True)) == 2
    assert len(select_posts(posts, opts, now=FIXED_NOW, already=set(), first_run=False)) == 5
