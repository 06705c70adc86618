"""Attacks on click tracking from outside: hostile post URLs and what the text part
makes of them (the HTML part is the judge of where each link goes)."""

from __future__ import annotations

import re

import pytest

from distrib.config import load_config
from distrib.model import Markers, Post
from distrib.render.email import render_edition
from distrib.tracking import ClickTracker
from tests.conftest import FIXED_NOW
from tests.signup.test_tracking import Tracked, _open, _raw, tracked  # noqa: F401  (fixture)

TRACKING = "[tracking]\nclicks = true\n"
NUMBER = re.compile(r"https://test\.example/c/5/(\d+)/[A-Za-z0-9_-]{22}")

#: post URLs a feed may well give, each ending in or holding what a sentence in plain
#: text also ends with or is quoted by
AWKWARD = [
    "https://x.example/2026/01/snake_case_",
    "https://x.example/it's-here",
    "https://x.example/wiki/Ending.",
    "https://x.example/wiki/Foo_(bar)",
    "https://x.example/search?q=%22a%22&sort=new!",
    'https://x.example/q?a="b"',
]


def test_the_text_part_sends_each_link_where_the_html_part_does(make_config):
    settings = load_config(make_config(TRACKING))
    posts = [
        Post(key=f"k{i}", url=url, title=f"Post {i}", source="s", summary="s.", published=FIXED_NOW)
        for i, url in enumerate(AWKWARD)
    ]
    tracker = ClickTracker("https://test.example", b"k" * 32, 5)
    rendered = render_edition(
        settings,
        posts,
        newsletter=settings.data["digest"],
        name="digest",
        now=FIXED_NOW,
        markers=Markers.new(),
        clicks=tracker,
    )
    in_html = {int(n) for n in NUMBER.findall(rendered.html)}
    in_text = {int(n) for n in NUMBER.findall(rendered.text)}
    # Every post's URL is one link, the same number in both parts...
    for url in AWKWARD:
        assert url in rendered.links, url
    assert in_text <= in_html, [rendered.links[n - 1] for n in in_text - in_html]
    # ...and no truncated copy of one was recorded as a link of its own.
    assert len(rendered.links) == len(in_html)


def test_only_serve_s_own_pages_are_left_untracked_not_pages_named_like_them():
    """A site page whose path merely begins like one of serve's pages
    (/confirmed-cases, /preferences-guide) is a link of the edition like any other."""
    markers = Markers.new()
    tracker = ClickTracker("https://test.example", b"k" * 32, 5)
    for own in (
        "https://test.example/unsubscribe?token=abc",
        "https://test.example/confirm?token=abc",
        "https://test.example/preferences",
        "https://test.example/preferences/",
        "https://test.example/c/1/1/" + "A" * 22,
    ):
        assert tracker.tracked(own, markers) is None, own
    for page in (
        "https://test.example/confirmed-cases-2026",
        "https://test.example/preferences-guide",
        "https://test.example/unsubscribed-readers-survey",
        "https://test.example/cars/",
    ):
        assert tracker.tracked(page, markers) is not None, page
    assert len(tracker.links) == 4


def test_a_url_in_the_text_part_ends_where_the_sentence_takes_over():
    """URLs the HTML part does not have, written in running text."""
    markers = Markers.new()
    tracker = ClickTracker("https://test.example", b"k" * 32, 5)
    text = (
        "(see https://x.example/wiki/Foo_(bar)). "
        'He said "https://x.example/quoted"—then left. '
        "Also https://x.example/plain, and https://x.example/end.\n"
    )
    out = tracker.rewrite_text(text, markers)
    assert tracker.links == [
        "https://x.example/wiki/Foo_(bar)",
        "https://x.example/quoted",
        "https://x.example/plain",
        "https://x.example/end",
    ]
    assert NUMBER.sub("URL", out) == ('(see URL). He said "URL"—then left. Also URL, and URL.\n')


@pytest.mark.parametrize("ledger_backend", ["sqlite"])
def test_a_stored_url_that_is_no_safe_location_is_never_redirected_to(tracked: Tracked):  # noqa: F811
    """Even signed with the ledger's own key: what could not have been written by the
    rewriting (another scheme, a CR/LF that would split the header, a space) is a 404."""
    from distrib.tracking import click_key, sign

    bad = [
        "javascript:alert(document.domain)",
        "data:text/html,<script>alert(1)</script>",
        "https://a.example/\r\nSet-Cookie: stolen=1",
        "https://a.example/x y",
        "//evil.example/",
        "https://a.example/ü",
    ]
    with _open(tracked.ledger) as led:
        other = led.next_edition_id()
        led.set_edition_links(other, bad)
        led.create_edition("digest", ["x"], "Other", "", "<p>x</p>", "x\n", edition_id=other)
        key = click_key(led)
    for n, url in enumerate(bad, 1):
        status, headers = _raw(tracked.url, f"/c/{other}/{n}/{sign(key, other, n, url)}")
        assert status == 404 and "location" not in headers, url
        assert "set-cookie" not in headers
    # HEAD and a body-less POST change nothing either.
    good = tracked.local(tracked.hrefs()[0])
    assert _raw(tracked.url, good, "HEAD")[0] == 302
    assert _raw(tracked.url, good, "POST")[0] == 405
    assert sum(tracked.clicks().values()) == 0
