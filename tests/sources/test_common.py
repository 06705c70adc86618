"""Canonical URLs, merging sources, and hostile input through whole feeds (property tests)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distrib.model import Post
from distrib.sources.common import canonical_url, merge_posts
from distrib.sources.feed import parse_feed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTPS://Example.ORG:443/a/?utm_source=x&b=2&utm_medium=y#frag",
            "https://example.org/a/?b=2",
        ),
        ("http://example.org:80", "http://example.org/"),
        ("http://example.org:8080/x?fbclid=abc", "http://example.org:8080/x"),
        ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def post(key: str, url: str, source: str, day: int | None) -> Post:
    published = datetime(2026, 11, day, tzinfo=UTC) if day else None
    return Post(key=key, url=url, title=key, source=source, published=published)


def test_merge_posts_dedupes_and_sorts() -> None:
    a = [
        post("g1", "https://s.example/1", "feed", 1),
        post("g2", "https://s.example/2?utm_source=rss", "feed", 3),
    ]
    b = [
        post(
            "https://s.example/?p=2", "https://s.example/2#comments", "wp", 3
        ),  # same canonical URL
        post("g1", "https://mirror.example/1", "wp", 1),  # same guid
        post("g9", "https://s.example/9", "wp", 2),
        post("g0", "https://s.example/0", "wp", None),
    ]
    merged = merge_posts([a, b])
    assert [(p.key, p.source) for p in merged] == [
        ("g0", "wp"),
        ("g2", "feed"),
        ("g9", "wp"),
        ("g1", "feed"),
    ]


# --- property: arbitrary text and markup never becomes active HTML, never crashes ------

_nasty = st.lists(
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            '<a href="javascript:alert(1)">x</a>',
            "<iframe src=//evil.example>",
            "&lt;script&gt;",
            "&amp;lt;script&amp;gt;",
            "\r\n",
            "\x00",
            "\x1b",
            "]]>",
            "<![CDATA[",
            "&",
            "<",
            ">",
            '"',
            "'",
            "<svg onload=x>",
            "&#x6A;avascript:",
            "é",
            "مرحبا",
            "👨‍👩‍👧",
            "<p>",
            "</p>",
            "<style>*{}</style>",
            "<b",
            "onclick=",
            "&nbsp;",
            "&#0;",
            "\u2028",
        ]
    )
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10),
    max_size=12,
).map("".join)

_ACTIVE = re.compile(
    r"<(script|iframe|svg|style|object|embed|form|math|link|meta|base)\b|\son\w+\s*=|\sstyle\s*=|(href|src)\s*=\s*\"(?!https?:|mailto:)",
    re.I,
)


def _xml_text(text: str) -> str:
    # Characters XML 1.0 cannot carry at all; a real feed cannot contain them either.
    text = "".join(
        ch for ch in text if ch in "\t\n\r" or (ord(ch) >= 0x20 and ch not in "\ufffe\uffff")
    )
    return escape(text)


def _check(posts: list[Post]) -> None:
    for p in posts:
        # One-line fields are text: no line breaks, no control characters.  What looks
        # like a tag in them is text the feed escaped ("Why <script> tags are
        # dangerous"): kept, and escaped by every template that shows it.
        for field in (p.title, p.author, *p.tags, *p.categories):
            assert not re.search(r"[\x00-\x1f\x7f]", field), field
        # The summary is plain text (escaped by every template), without control characters.
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", p.summary)
        # Every "<" left in content starts a tag our serialiser wrote; look inside those.
        for tag in re.findall(r"<[^>]*>", p.content):
            assert not _ACTIVE.search(tag), p.content
        if p.image:
            assert p.image.url.startswith(("http://", "https://"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=_nasty, content=_nasty, tag=_nasty)
def test_property_rss_fields_stay_inert(title: str, content: str, tag: str) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        "<link>https://p.example/</link><item>"
        f"<title>{_xml_text(title)}</title><link>https://p.example/a</link>"
        f"<category>{_xml_text(tag)}</category>"
        f"<content:encoded>{_xml_text(content)}</content:encoded>"
        f"<description>{_xml_text(content)}</description>"
        "</item></channel></rss>"
    ).encode()
    posts = parse_feed(body, source="p", url="https://p.example/feed")
    # The item came back (a parser that dropped it would pass every check below).
    assert [p.url for p in posts] == ["https://p.example/a"]
    _check(posts)


@settings(max_examples=60, deadline=None)
@given(title=_nasty, content=_nasty, tag=_nasty)
def test_property_json_feed_fields_stay_inert(title: str, content: str, tag: str) -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "t",
        "items": [
            {
                "id": "1",
                "url": "https://p.example/a",
                "title": title,
                "content_html": content,
                "summary": content,
                "tags": [tag],
                "authors": [{"name": title}],
                "image": content,
            },
            {"id": "2", "url": "https://p.example/b", "content_text": content},
        ],
    }
    posts = parse_feed(json.dumps(doc).encode(), source="p", url="https://p.example/feed.json")
    # Both items came back (a parser that dropped them would pass every check below).
    assert sorted(p.url for p in posts) == ["https://p.example/a", "https://p.example/b"]
    _check(posts)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_property_garbage_bytes_never_crash(raw: bytes) -> None:
    from distrib.errors import SourceError

    try:
        posts = parse_feed(raw, source="p", url="https://p.example/feed")
    except SourceError as e:
        assert "\n" not in str(e)
    else:
        _check(posts)
