"""`distrib init URL` and a feed source given as a home page, against real sites on 127.0.0.1.

Each site is a real HTTP server shaped like what it imitates: a WordPress site (the
API link in the page and the Link header, /wp-json/ and /wp-json/wp/v2/posts), a Hugo
site with only /index.xml, a page with two feeds, a page with none, a 20 MB page and a
redirect loop.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.discover import discover, parse_page
from distrib.http import HttpClient

from .conftest import run_distrib


def _rss(base: str, n: int = 3, title: str = "Hugo Notes", age: timedelta = timedelta(0)) -> str:
    now = datetime.now(UTC) - age
    items = "".join(
        f"<item><title>Note {i}</title><link>{base}/notes/{i}/</link><guid>{base}/notes/{i}/</guid>"
        f"<pubDate>{(now - timedelta(hours=i + 1)).strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
        f"<description>Summary of note {i}.</description></item>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>{base}/</link><description>d</description>{items}</channel></rss>"
    )


def _wp_post(base: str, n: int) -> dict:
    day = datetime.now(UTC) - timedelta(hours=n + 1)
    stamp = day.strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "id": 100 + n,
        "date_gmt": stamp,
        "modified_gmt": stamp,
        "date": stamp,
        "modified": stamp,
        "guid": {"rendered": f"{base}/?p={100 + n}"},
        "link": f"{base}/2026/post-{n}/",
        "title": {"rendered": f"Lighthouse story {n}"},
        "content": {"rendered": f"<p>Body {n}.</p>", "protected": False},
        "excerpt": {"rendered": f"<p>Excerpt {n}</p>", "protected": False},
        "author": 1,
        "featured_media": 0,
        "categories": [],
        "tags": [],
        "status": "publish",
        "type": "post",
        "_embedded": {"author": [{"id": 1, "name": "Orla Byrne"}]},
    }


def serve_wordpress(httpserver: HTTPServer, *, header_only: bool = False) -> str:
    base = httpserver.url_for("").rstrip("/")
    api = f"{base}/wp-json/"
    link_tag = "" if header_only else f'<link rel="https://api.w.org/" href="{api}" />'
    page = f"""<!DOCTYPE html>
<html lang="en-IE"><head><meta charset="utf-8">
<title>Harbour Light &#8211; News from the bay</title>
<meta property="og:site_name" content="Harbour Light">
<meta name="theme-color" content="#0b5394">
<link rel="alternate" type="application/rss+xml" title="Harbour Light &raquo; Feed" href="{base}/feed/">
<link rel="alternate" type="application/rss+xml" title="Harbour Light &raquo; Comments Feed" href="{base}/comments/feed/">
<link rel="alternate" type="application/json+oembed" href="{base}/wp-json/oembed/1.0/embed?url=x">
{link_tag}
<link rel="icon" href="{base}/favicon.ico">
<script type="application/ld+json">{{"@context":"https://schema.org","@graph":[{{"@type":"WebSite","name":"Harbour Light"}},
 {{"@type":"NewsMediaOrganization","name":"Harbour Light","address":{{"@type":"PostalAddress",
 "streetAddress":"12 Quay Street","addressLocality":"Port Avery","postalCode":"PA1 2BC","addressCountry":"IE"}}}}]}}</script>
</head><body><h1>Harbour Light</h1></body></html>"""
    headers = {"Link": f'<{api}>; rel="https://api.w.org/"'}
    httpserver.expect_request("/").respond_with_data(
        page, content_type="text/html; charset=UTF-8", headers=headers
    )
    root = {
        "name": "Harbour Light",
        "description": "News from the bay",
        "url": base,
        "home": base,
        "gmt_offset": 1,
        "timezone_string": "Europe/Dublin",
        "site_icon_url": f"{base}/wp-content/uploads/icon-512.png",
        "namespaces": ["wp/v2"],
    }
    httpserver.expect_request("/wp-json/").respond_with_json(root)
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json(
        [_wp_post(base, n) for n in range(3)]
    )
    httpserver.expect_request("/feed/").respond_with_data(
        _rss(base), content_type="application/rss+xml"
    )
    return base


def test_wordpress_site_is_found_by_its_api_link_and_preferred(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = serve_wordpress(httpserver)
    proc = run_distrib("init", f"{base}/", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "chose the WordPress REST API" in proc.stdout and "authors" in proc.stdout
    assert "next: distrib preview --open" in proc.stdout
    text = (tmp_path / "distrib.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert config["sources"] == [{"name": "site", "type": "wordpress", "url": base}]
    site = config["site"]
    assert site["name"] == "Harbour Light"
    assert site["language"] == "en-IE"
    assert site["timezone"] == "Europe/Dublin"
    assert site["logo"] == f"{base}/wp-content/uploads/icon-512.png"  # the site icon, not the .ico
    assert site["postal_address"] == "12 Quay Street, Port Avery, PA1 2BC, IE"
    assert config["theme"]["brand_color"] == "#0b5394"
    # TODO only where a person must decide: the mailer, the From, the recipients, the unsubscribe URL
    todos = [line for line in text.splitlines() if "# TODO:" in line]
    assert len(todos) == 4 and not any("postal_address" in t or "language" in t for t in todos)
    # The next command renders the site's real latest posts.
    preview = run_distrib("preview", "--out", "pv", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    html = (tmp_path / "pv" / "digest.html").read_text(encoding="utf-8")
    assert "Lighthouse story 0" in html and "#0b5394" in html and "icon-512.png" in html
    check = run_distrib("check", "--no-domain", cwd=tmp_path)
    assert check.returncode == 0, check.stderr + check.stdout


def test_wordpress_api_found_by_the_link_header_alone(httpserver: HTTPServer) -> None:
    base = serve_wordpress(httpserver, header_only=True)
    with HttpClient() as http:
        found = discover(base, http)
    assert found.chosen == "wordpress" and found.wordpress_api == f"{base}/wp-json/"
    assert found.feed is not None and found.feed.url == f"{base}/feed/"  # not the comments feed


def test_hugo_site_with_only_index_xml(httpserver: HTTPServer, tmp_path: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(
        '<!doctype html><html lang="de"><head><title>Hugo Notes</title>'
        '<link rel="apple-touch-icon" sizes="180x180" href="/apple-touch-icon.png">'
        '<meta property="og:image" content="/cover.jpg"></head><body>hi</body></html>',
        content_type="text/html",
    )
    httpserver.expect_request("/index.xml").respond_with_data(
        _rss(base), content_type="application/xml"
    )
    # /feed, /rss.xml, /atom.xml are 500/404 here, as on a static host
    proc = run_distrib("init", base, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"chose the RSS feed {base}/index.xml, found at a common feed path" in proc.stdout
    config = tomllib.loads((tmp_path / "distrib.toml").read_text(encoding="utf-8"))
    assert config["sources"][0] == {"name": "site", "type": "feed", "url": f"{base}/index.xml"}
    assert config["site"]["name"] == "Hugo Notes" and config["site"]["language"] == "de"
    assert config["site"]["logo"] == f"{base}/apple-touch-icon.png"
    assert config["site"]["postal_address"] == ""  # not found: a TODO
    assert "TODO: required to send" in (tmp_path / "distrib.toml").read_text(encoding="utf-8")


def test_page_with_two_feeds_takes_the_first_and_lists_the_other(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(
        "<html><head><title>Two</title>"
        '<link rel="alternate" type="application/atom+xml" title="Posts (Atom)" href="/atom.xml">'
        '<link rel="alternate" type="application/feed+json" title="Posts (JSON)" href="/feed.json">'
        "</head></html>",
        content_type="text/html",
    )
    proc = run_distrib("init", base, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "chose the Atom feed" in proc.stdout and "1 other feed" in proc.stdout
    text = (tmp_path / "distrib.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text)["sources"][0]["url"] == f"{base}/atom.xml"
    assert f'# url = "{base}/feed.json"  # JSON Feed' in text


def test_page_with_no_feed_says_so_and_writes_nothing(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(
        "<html><head><title>Plain</title></head></html>", content_type="text/html"
    )
    proc = run_distrib("init", base, cwd=tmp_path)
    assert proc.returncode == 1
    assert (
        proc.stderr.count("\n") == 1
        and "found no feed" in proc.stderr
        and "/index.xml" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "distrib.toml").exists()


def test_hostile_20_mb_page_is_refused_at_the_cap(httpserver: HTTPServer, tmp_path: Path) -> None:
    chunk = b"<html><head><title>x</title></head><body>" + b"A" * 1_000_000

    def endless(request: Request) -> Response:
        def body():  # no Content-Length: the cap must stop the stream itself
            yield chunk
            for _ in range(20):
                yield b"A" * 1_000_000

        return Response(body(), content_type="text/html")

    httpserver.expect_request("/").respond_with_handler(endless)
    proc = run_distrib("init", httpserver.url_for("/"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "over 5 MB" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "distrib.toml").exists()


def test_redirect_loop_is_one_line(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    proc = run_distrib("init", httpserver.url_for("/a"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "more than 5 redirects" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "distrib.toml").exists()


def test_a_feed_url_given_to_init_is_taken_as_it_is(httpserver: HTTPServer, tmp_path: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed.xml").respond_with_data(
        _rss(base), content_type="application/rss+xml"
    )
    proc = run_distrib("init", f"{base}/feed.xml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        tomllib.loads((tmp_path / "distrib.toml").read_text(encoding="utf-8"))["sources"][0]["url"]
        == f"{base}/feed.xml"
    )


def test_not_a_web_address_is_exit_2(tmp_path: Path) -> None:
    proc = run_distrib("init", "ftp://example.org/", cwd=tmp_path)
    assert proc.returncode == 2 and "not a web address" in proc.stderr


def test_hostile_identity_cannot_break_the_toml(httpserver: HTTPServer, tmp_path: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    evil = 'Evil"\nname = "x" # \u202e'
    httpserver.expect_request("/").respond_with_data(
        f'<html lang="en"><head><meta property="og:site_name" content="{evil.replace(chr(34), "&quot;")}">'
        '<meta name="theme-color" content="red;background:url(x)">'
        '<link rel="alternate" type="application/rss+xml" title="a\nb" href="/index.xml"></head></html>',
        content_type="text/html",
    )
    httpserver.expect_request("/index.xml").respond_with_data(
        _rss(base), content_type="application/rss+xml"
    )
    proc = run_distrib("init", base, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = tomllib.loads((tmp_path / "distrib.toml").read_text(encoding="utf-8"))
    assert config["site"]["name"] == evil  # a value, exactly as the page gave it; nothing injected
    assert "theme" not in config  # not a colour: left out


def test_feed_source_given_a_home_page_finds_its_feed(
    httpserver: HTTPServer, make_config, tmp_path: Path
) -> None:
    base = serve_wordpress(httpserver)
    path = make_config(sources=f'[[sources]]\nname = "blog"\ntype = "feed"\nurl = "{base}/"\n')
    proc = run_distrib("posts", "--all", "--json", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert [p["title"] for p in json.loads(proc.stdout)][:1] == ["Note 0"]
    check = run_distrib("check", "--no-domain", "--config", str(path))
    assert check.returncode == 0, check.stderr
    assert f"source blog: {base}/ is a web page; reading its RSS feed {base}/feed/" in check.stdout
    assert "WordPress REST API" in check.stdout  # and it says the better source is there


def test_parse_page_reads_microdata_address() -> None:
    info = parse_page(
        '<div itemscope itemtype="https://schema.org/PostalAddress">'
        '<span itemprop="streetAddress">1 Main St</span> <span itemprop="addressLocality">Springfield</span>'
        '<meta itemprop="postalCode" content="12345"></div>'
    )
    assert info.microdata_address == {
        "streetAddress": "1 Main St",
        "addressLocality": "Springfield",
        "postalCode": "12345",
    }


@pytest.mark.parametrize(
    "offset,zone", [(0, "UTC"), (2, "Etc/GMT-2"), (-5, "Etc/GMT+5"), (5.5, None)]
)
def test_wordpress_gmt_offset_becomes_a_zone(offset: float, zone: str | None) -> None:
    from distrib.discover import _timezone

    assert _timezone({"timezone_string": "", "gmt_offset": offset}) == zone


def test_a_quiet_site_previews_its_newest_posts_after_init(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(
        '<html lang="en"><head><title>Quiet</title><link rel="alternate" type="application/rss+xml" href="/index.xml"></head></html>',
        content_type="text/html",
    )
    # The newest post is a month old: nothing in the 7-day window.
    httpserver.expect_request("/index.xml").respond_with_data(
        _rss(base, age=timedelta(days=30)), content_type="application/rss+xml"
    )
    assert run_distrib("init", base, cwd=tmp_path).returncode == 0
    preview = run_distrib("preview", "--out", "pv", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert "showing the newest 3 posts the sources give instead" in preview.stderr
    assert "Note 0" in (tmp_path / "pv" / "digest.html").read_text(encoding="utf-8")
