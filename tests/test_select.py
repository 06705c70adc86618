"""Selection: new posts in the window, filters, newest first, max_posts, backfill."""

from __future__ import annotations

from datetime import timedelta

from distrib.model import Post
from distrib.select import select_posts

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
    assert [p.key for p in chosen] == ["k2", "k5", "k1"]  # k3 too old, k6 in the future


def test_already_sent_and_baseline_are_skipped():
    posts = [post(1, 5), post(2, 1), post(3, 2)]
    seen = {"k1": FIXED_NOW - timedelta(days=1), "k2": FIXED_NOW, "k3": FIXED_NOW - timedelta(days=2)}
    chosen = select_posts(
        posts, OPTS, now=FIXED_NOW, already={"k2"}, baseline=FIXED_NOW - timedelta(hours=30), first_seen=seen
    )
    assert [p.key for p in chosen] == ["k1"]


def test_filters_by_tag_category_author_source():
    posts = [
        post(1, 1, tags=("Harbour",), author="Ana"),
        post(2, 2, tags=("sport",), categories=("Sport",)),
        post(3, 3, source="wire", author="Bo"),
    ]
    opts = OPTS | {"max_posts": 10}
    assert [p.key for p in select_posts(posts, opts | {"include_tags": ("harbour",)}, now=FIXED_NOW, already=set())] == ["k1"]
    assert [p.key for p in select_posts(posts, opts | {"exclude_categories": ("sport",)}, now=FIXED_NOW, already=set())] == ["k1", "k3"]
    assert [p.key for p in select_posts(posts, opts | {"include_authors": ("bo",)}, now=FIXED_NOW, already=set())] == ["k3"]
    assert [p.key for p in select_posts(posts, opts | {"sources": ("wire",)}, now=FIXED_NOW, already=set())] == ["k3"]


def test_backfill_limits_the_first_run_only():
    posts = [post(i, i) for i in range(1, 6)]
    opts = OPTS | {"max_posts": 10, "backfill": 2}
    assert len(select_posts(posts, opts, now=FIXED_NOW, already=set(), first_run=True)) == 2
    assert len(select_posts(posts, opts, now=FIXED_NOW, already=set(), first_run=False)) == 5
