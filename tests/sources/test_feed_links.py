"""A feed entry's link is its own permalink, never its guid, Atom id or external_url.

RSS 2.0 ("<guid> sub-element of <item>": isPermaLink="false" means the guid is not a
URL to the item), RFC 4287 §4.2.6 (atom:id is an identifier) and §4.2.7.2 (the
alternate link is the entry's page), JSON Feed 1.1 (url is the permalink).
"""

from __future__ import annotations

import logging
from typing import Any

from distrib.model import Post
from distrib.sources.common import merge_posts
from distrib.sources.feed import parse_feed

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Site</title><link>https://site.example/</link><description>d</description>
<item><title>Opaque guid</title><guid isPermaLink="false">https://site.example/?p=1</guid></item>
<item><title>Permalink guid</title><guid>https://site.example/permalink-guid/</guid></item>
<item><title>Real link</title><link>https://site.example/real/</link><guid isPermaLink="false">42</guid></item>
<item><title>Another opaque guid</title><guid isPermaLink="false">urn:x:2</guid></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://site.example/blog/">
<title>Site</title><link href="https://site.example/"/><id>urn:site</id><updated>2026-11-20T00:00:00Z</updated>
<entry><title>Id only</title><id>https://site.example/id-only</id><updated>2026-11-20T00:00:00Z</updated></entry>
<entry><title>Enclosure only</title><id>tag:site.example,2026:2</id>
  <link rel="enclosure" type="audio/mpeg" href="https://site.example/a.mp3"/><updated>2026-11-20T00:00:00Z</updated></entry>
<entry><title>Alternate</title><id>https://site.example/alt-id</id>
  <link rel="alternate" type="text/html" href="alternate/"/><updated>2026-11-20T00:00:00Z</updated></entry>
</feed>"""


def warnings(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_rss_guid_not_a_permalink_is_never_the_link(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = parse_feed(RSS, source="s")
    assert {p.title: p.url for p in posts} == {
        "Permalink guid": "https://site.example/permalink-guid/",
        "Real link": "https://site.example/real/",
    }
    (line,) = warnings(caplog)
    assert line.startswith(
        "source 's': skipped 2 entries without a link of its own ('Opaque guid' and 1 more)"
    )
    assert 'link_fallback = "site"' in line


def test_rss_link_fallback_site() -> None:
    posts = parse_feed(RSS, source="s", link_fallback="site")
    by_title = {p.title: p for p in posts}
    assert by_title["Opaque guid"].url == "https://site.example/"
    assert by_title["Opaque guid"].key == "https://site.example/?p=1"  # the guid stays the key
    assert by_title["Another opaque guid"].url == "https://site.example/"
    # Two posts sharing the site's address are still two posts.
    assert len(merge_posts([posts])) == 4


def test_atom_id_is_never_the_link(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = parse_feed(ATOM, source="s")
    assert {p.title: p.url for p in posts} == {"Alternate": "https://site.example/blog/alternate/"}
    (line,) = warnings(caplog)
    assert "skipped 2 entries without a link of its own ('Id only' and 1 more)" in line


def test_atom_link_fallback_is_the_xml_base() -> None:
    posts = parse_feed(ATOM, source="s", link_fallback="site")
    by_title = {p.title: p for p in posts}
    assert by_title["Id only"].url == "https://site.example/blog/"
    assert by_title["Id only"].key == "https://site.example/id-only"


def test_json_feed_external_url_is_not_ours(caplog: Any) -> None:
    body = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "t", "home_page_url": "https://site.example/",
    "items": [{"id": "https://site.example/1", "external_url": "https://other.example/story", "content_text": "About it."},
              {"id": "2", "url": "https://site.example/2", "external_url": "https://other.example/x", "content_text": "Ours."}]}"""
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = parse_feed(body, source="s")
    assert [p.url for p in posts] == ["https://site.example/2"]
    assert "skipped 1 item without a link of its own" in warnings(caplog)[0]
    linked = parse_feed(body, source="s", link_fallback="site")
    assert sorted(p.url for p in linked) == ["https://site.example/", "https://site.example/2"]


def test_merge_still_dedupes_one_url_across_sources() -> None:
    a = [Post(key="a1", url="https://site.example/x", title="x", source="a")]
    b = [Post(key="b1", url="https://site.example/x", title="x", source="b")]
    assert [p.source for p in merge_posts([a, b])] == ["a"]
