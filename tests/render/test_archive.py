"""write_archive: edition pages without personal data, an index, an Atom feed."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree as ET

from distrib.archive import edition_url, write_archive
from distrib.model import Edition
from distrib.render.email import render_edition

from .cases import FIXED_NOW, make_posts

ATOM = "{http://www.w3.org/2005/Atom}"


def editions(settings, n=3):
    out = []
    for i in range(n):
        posts = make_posts(3 + i)
        created = FIXED_NOW - timedelta(days=7 * (n - i))
        r = render_edition(
            settings,
            posts,
            newsletter=settings.data["digest"],
            name="digest",
            now=created,
            web_url=edition_url(settings, i + 1),
        )
        out.append(
            Edition(
                i + 1,
                "digest",
                tuple(p.key for p in posts),
                r.subject,
                r.preheader,
                created,
                r.html,
                r.text,
                "done",
                r.markers,
            )
        )
    return out


def test_archive_pages_index_and_feed(make_settings, tmp_path):
    settings = make_settings('[theme]\narchive_url = "https://news.harbour.example/letters"\n')
    eds = editions(settings)
    out = tmp_path / "site"
    written = write_archive(settings, eds, out)
    assert {p.relative_to(out).as_posix() for p in written} == {
        "1/index.html",
        "2/index.html",
        "3/index.html",
        "index.html",
        "feed.xml",
    }
    page = (out / "2" / "index.html").read_text(encoding="utf-8")
    # The stored HTML, with nothing personal: no recipient line, the site instead of a token link.
    assert "XDISTRIB" not in page
    assert "This email was sent to" not in page
    assert "You are receiving it because you subscribed to The Harbour Ledger." in page
    assert 'href="https://news.harbour.example/"' in page
    assert 'href="https://news.harbour.example/letters/2/"' in page  # its own "view in browser" URL
    assert (
        'type="application/atom+xml" href="https://news.harbour.example/letters/feed.xml"' in page
    )
    assert eds[1].html.count("Harbour wall extension") == page.count("Harbour wall extension")

    index = (out / "index.html").read_text(encoding="utf-8")
    assert (
        index.index('href="3/"') < index.index('href="2/"') < index.index('href="1/"')
    )  # newest first
    assert "Newsletter archive" in index and '<html lang="en" dir="ltr">' in index

    feed = ET.parse(out / "feed.xml").getroot()
    assert feed.tag == f"{ATOM}feed"
    assert feed.find(f"{ATOM}id").text == "https://news.harbour.example/letters/"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}id").text for e in entries] == [
        "https://news.harbour.example/letters/3/",
        "https://news.harbour.example/letters/2/",
        "https://news.harbour.example/letters/1/",
    ]
    assert entries[0].find(f"{ATOM}title").text == eds[2].subject
    assert entries[0].find(f"{ATOM}updated").text == "2026-11-21T07:00:00Z"
    assert feed.find(f"{ATOM}updated").text == "2026-11-21T07:00:00Z"


def test_archive_without_archive_url_uses_the_site(make_settings, tmp_path):
    settings = make_settings(site='language = "uk"')
    assert edition_url(settings, 5) == "https://news.harbour.example/newsletter/5/"
    write_archive(settings, editions(settings, 1), tmp_path)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Архів розсилки" in index and 'lang="uk"' in index


def test_empty_archive_is_valid(make_settings, tmp_path):
    write_archive(make_settings(), [], tmp_path)
    feed = ET.parse(tmp_path / "feed.xml").getroot()
    assert feed.findall(f"{ATOM}entry") == []
