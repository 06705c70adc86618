"""The feed source against a real HTTP server on 127.0.0.1, one fixture per real-world shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.errors import ConfigError, SourceError
from distrib.sources.common import fetch_all
from distrib.sources.feed import decode_xml

from .conftest import data, source_of


def serve(httpserver: HTTPServer, name: str, content_type: str, path: str | None = None) -> str:
    path = path or f"/{name}"
    httpserver.expect_request(path).respond_with_data(data(name), content_type=content_type)
    return httpserver.url_for(path)


def feed_source(make_ctx, url: str, extra: str = "", name: str = "blog"):
    ctx = make_ctx(f'[[sources]]\nname = "{name}"\ntype = "feed"\nurl = "{url}"\n{extra}')
    return source_of(ctx)


def by_url(posts, fragment: str):
    return next(p for p in posts if fragment in p.url)


def test_wordpress_rss(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "wordpress-rss.xml", "application/rss+xml; charset=UTF-8")
    posts = feed_source(make_ctx, url).fetch()
    # Four usable items; the one without any link is skipped, not invented.
    assert len(posts) == 4
    strike = by_url(posts, "bakers-strike")
    # Padded CDATA, a numeric entity and a double-escaped ampersand.
    assert strike.title == "Bakers’ strike ends & bread is back"
    assert strike.key == "https://millbrook.example/?p=4242"
    assert strike.url == "https://millbrook.example/2026/11/27/bakers-strike-ends/"  # utm_* gone
    assert strike.author == "Hannah Price"
    assert strike.published == datetime(2026, 11, 27, 16, 12, 9, tzinfo=UTC)
    assert strike.updated is None
    # WordPress lists categories and tags alike: both, by default.
    assert strike.tags == ("Business", "bakeries") and strike.categories == ("Business", "bakeries")
    # Relative links resolved against the feed's URL; scripts, iframes, handlers gone.
    base = httpserver.url_for("/")
    assert f'href="{base}2026/11/20/strike-begins/" rel="noopener"' in strike.content
    assert strike.image.url == f"{base}wp-content/uploads/2026/11/loaves.jpg"
    assert strike.image.alt == "Fresh loaves on a rack"
    assert (strike.image.width, strike.image.height) == (800, 533)
    for bad in ("<script", "<iframe", "javascript:", "onmouseover", "srcset"):
        assert bad not in strike.content
    # The WordPress excerpt's "[…]" and "The post … appeared first on …" are dropped.
    assert strike.summary == (
        "The two-week strike at the town’s largest bakery ended on Friday after staff accepted a new offer."
    )
    # No title: the first sentence of the content stands in.
    aside = by_url(posts, "untitled-aside")
    assert aside.title == "Road works on Station Street finish a week early."
    # A French date with a named zone (CET = UTC+1).
    assert aside.published == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    # An impossible date and no date: None (the app uses first_seen), never a guess.
    assert by_url(posts, "market-day").published is None
    undated = by_url(posts, "no-date")
    assert undated.published is None
    assert undated.title == "No date at all – still a post"
    assert undated.key == "https://millbrook.example/2026/11/24/no-date/"  # canonical: no fragment


def test_user_agent_and_accept(httpserver: HTTPServer, make_ctx) -> None:
    seen = {}

    def handler(request: Request) -> Response:
        seen.update(request.headers)
        return Response(data("rss091.xml"), content_type="text/xml")

    httpserver.expect_request("/ua").respond_with_handler(handler)
    feed_source(make_ctx, httpserver.url_for("/ua")).fetch()
    assert seen["User-Agent"].startswith("distrib/")
    assert "application/rss+xml" in seen["Accept"]


def test_hugo_atom_with_xml_base(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "hugo-atom.xml", "application/atom+xml")
    posts = feed_source(make_ctx, url).fetch()
    pools = by_url(posts, "tidal-pools")
    assert pools.url == "https://notes.example/blog/posts/tidal-pools/"
    assert pools.title == "Tidal pools & what lives in them"
    assert pools.author == "Ines Duarte, Kofi Mensah"
    assert pools.key.startswith("tag:notes.example")
    # Atom category schemes say which is which; a plain one goes to both.
    assert pools.tags == ("Marine life", "photography")
    assert pools.categories == ("field-trips", "photography")
    assert 'href="https://notes.example/blog/posts/tidal-pools/counts.csv"' in pools.content
    assert pools.image.url == "https://notes.example/blog/posts/tidal-pools/anemone.jpg"
    assert pools.image.alt == "A red anemone, closed"
    assert pools.published == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert pools.updated == datetime(2026, 11, 27, 11, 30, tzinfo=UTC)
    assert pools.summary == "A morning with a bucket and a hand lens."
    only = by_url(posts, "only-updated")
    assert only.published == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # Atom's <updated>
    assert only.content == "<p>An <em>XHTML</em> body.</p>"


def test_jekyll_atom_media(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "jekyll-atom.xml", "application/atom+xml")
    (post,) = feed_source(make_ctx, url, 'categories_as = "tags"').fetch()
    assert post.image.url == "https://quill.example/assets/press.jpg"
    assert post.tags == ("craft", "printing") and post.categories == ()
    assert post.author == "Rui Tanaka"


def test_microblog_json_feed(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "microblog.json", "application/feed+json")
    posts = feed_source(make_ctx, url).fetch()
    # Skipped: the non-object, the item without any link, and the item with only an
    # external_url (JSON Feed 1.1: the page it is about, not its permalink).
    assert len(posts) == 2
    snow = by_url(posts, "151200")
    assert snow.title == "First snow on the hills this morning."
    assert snow.author == "Pia Lindqvist"
    assert snow.tags == ("Weather", "Family") and snow.categories == ()
    assert snow.image.alt == "Snow on low green hills"
    assert snow.published == datetime(2026, 11, 27, 14, 12, tzinfo=UTC)
    plain = by_url(posts, "090000")
    assert "&lt;b&gt;angle brackets&lt;/b&gt;" in plain.content  # content_text is text
    assert plain.image.url == "https://pia.micro.example/uploads/2026/cover.jpg"
    assert plain.updated == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert not [p for p in posts if "elsewhere.example" in p.url]
    linked = feed_source(make_ctx, url, 'link_fallback = "site"').fetch()
    assert len(linked) == 4
    external = next(p for p in linked if p.key == "pia.micro.example:7734")
    assert external.url == "https://pia.micro.example/"  # the site, never the external page
    assert external.published is None
    assert external.image.alt == "A chart"


def test_json_feed_1_0_authors(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "jsonfeed-1.0.json", "application/json")
    posts = feed_source(make_ctx, url).fetch()
    assert [p.author for p in sorted(posts, key=lambda p: p.title)] == [
        "Item Author",
        "Feed Author",
        "A String Author",
    ]
    one = by_url(posts, "/posts/one")
    assert one.url == httpserver.url_for("/posts/one")
    assert one.published == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "content_type", "title", "author"),
    [
        (
            "yandex-windows-1251.xml",
            "application/rss+xml",
            "Паром возобновил рейсы после шторма",
            "Ирина Соколова",
        ),
        ("gb2312.xml", "text/xml", "渔港新冷库正式启用", ""),
        # The server's default charset=utf-8 must not beat the prolog's declaration.
        (
            "iso-8859-1.xml",
            "application/rss+xml; charset=utf-8",
            "Fête de la mer : programme complet — l’édition 2026",
            "",
        ),
        ("rss091.xml", "text/xml", "Lighthouse open day", ""),
        ("rss10.rdf", "application/rdf+xml", "RSS 1.0 item", "Dana Whit"),
        ("arabic-atom.xml", "application/atom+xml", "افتتاح مكتبة جديدة على الكورنيش", "سلمى يوسف"),
    ],
)
def test_formats_and_encodings(
    httpserver: HTTPServer, make_ctx, name: str, content_type: str, title: str, author: str
) -> None:
    url = serve(httpserver, name, content_type)
    (post,) = feed_source(make_ctx, url).fetch()
    assert post.title == title
    assert post.author == author
    assert "\ufffd" not in post.title + post.content + post.summary


def test_yandex_extensions(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "yandex-windows-1251.xml", "application/rss+xml")
    (post,) = feed_source(make_ctx, url).fetch()
    # yandex:full-text is the article; media:keywords are tags; the enclosure is the image.
    assert "Капитан порта" in post.content
    assert post.tags == ("Транспорт", "паром", "шторм")
    assert post.image.url == "https://vesti-primorya.example/img/parom.jpg"
    assert post.published == datetime(2026, 11, 27, 11, 30, tzinfo=UTC)  # "Пт, 27 ноября … MSK"


def test_arabic_keeps_direction(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "arabic-atom.xml", "application/atom+xml")
    (post,) = feed_source(make_ctx, url).fetch()
    assert post.content.startswith('<p dir="rtl">')
    assert post.tags == ("مكتبات",) and post.categories == ("ثقافة",)


def test_hostile_feed_is_inert(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "hostile.xml", "application/rss+xml")
    posts = feed_source(make_ctx, url).fetch()
    (post,) = posts  # the javascript: link item is skipped
    assert "\r" not in post.title and "\n" not in post.title
    # The title's escaped "<script>" is text: kept as text (escaped wherever shown).
    assert post.title == "Breaking Bcc: everyone@example.org <script>alert(1)</script>"
    for bad in (
        "<script",
        "<iframe",
        "<svg",
        "<form",
        "<style",
        "onerror",
        "onload",
        "javascript:",
        "data:",
    ):
        assert bad not in post.content
    assert post.tags == ("tag",)


def test_partly_broken_feed_keeps_good_entries(httpserver: HTTPServer, make_ctx) -> None:
    url = serve(httpserver, "partial.xml", "application/rss+xml")
    posts = feed_source(make_ctx, url).fetch()
    assert sorted(p.title for p in posts) == ["Good one", "Good two"]


@pytest.mark.parametrize(
    ("name", "content_type", "message"),
    [
        (
            "page.html",
            "text/html; charset=utf-8",
            "not a feed (got text/html); the page names a feed at ",
        ),
        ("broken.xml", "application/rss+xml", "not a feed: broken XML ("),
    ],
)
def test_not_a_feed(
    httpserver: HTTPServer, make_ctx, name: str, content_type: str, message: str
) -> None:
    url = serve(httpserver, name, content_type)
    with pytest.raises(SourceError) as e:
        feed_source(make_ctx, url).fetch()
    assert str(e.value).startswith("source 'blog': ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_json_that_is_not_a_feed(httpserver: HTTPServer, make_ctx) -> None:
    httpserver.expect_request("/api").respond_with_json({"hello": "world"})
    with pytest.raises(SourceError, match="JSON without a JSON Feed 'items' list"):
        feed_source(make_ctx, httpserver.url_for("/api")).fetch()


@pytest.mark.parametrize("body", ["", "  \n"])
def test_an_empty_answer_says_it_is_empty(httpserver: HTTPServer, make_ctx, body: str) -> None:
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="application/rss+xml"
    )
    with pytest.raises(SourceError) as e:
        feed_source(make_ctx, httpserver.url_for("/feed.xml")).fetch()
    assert (
        str(e.value)
        == "source 'blog': not a feed: the server answered with an empty body; check the url"
    )


def test_http_errors_name_the_source_and_url(httpserver: HTTPServer, make_ctx) -> None:
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    with pytest.raises(SourceError) as e:
        feed_source(make_ctx, httpserver.url_for("/gone")).fetch()
    assert (
        str(e.value)
        == f"source 'blog': HTTP 404 from {httpserver.url_for('/gone')}; check the source's url"
    )


def test_one_broken_source_does_not_stop_the_others(httpserver: HTTPServer, make_ctx) -> None:
    good = serve(httpserver, "rss091.xml", "text/xml")
    serve(httpserver, "page.html", "text/html")
    ctx = make_ctx(
        f'[[sources]]\nname = "good"\ntype = "feed"\nurl = "{good}"\n'
        f'[[sources]]\nname = "html"\ntype = "feed"\nurl = "{httpserver.url_for("/page.html")}"\n'
        '[[sources]]\nname = "demo"\ntype = "sample"\n'
    )
    posts, errors = fetch_all([source_of(ctx, i) for i in range(3)])
    assert [e.source for e in errors] == ["html"]
    assert {p.source for p in posts} == {"good", "demo"}


def test_path_source_and_base_url(tmp_path, make_ctx) -> None:
    feed = tmp_path / "index.xml"
    feed.write_bytes(data("wordpress-rss.xml"))
    ctx = make_ctx(
        '[[sources]]\nname = "local"\ntype = "feed"\npath = "index.xml"\nbase_url = "https://millbrook.example/"\n'
    )
    posts = source_of(ctx).fetch()
    strike = by_url(posts, "bakers-strike")
    assert strike.image.url == "https://millbrook.example/wp-content/uploads/2026/11/loaves.jpg"
    ctx = make_ctx('[[sources]]\nname = "local"\ntype = "feed"\npath = "missing.xml"\n')
    with pytest.raises(SourceError, match=r"no feed file at .*missing.xml; check the path"):
        source_of(ctx).fetch()


def test_url_or_path_exactly_one(make_ctx) -> None:
    ctx = make_ctx('[[sources]]\nname = "x"\ntype = "feed"\n')
    with pytest.raises(ConfigError, match="exactly one of url and path"):
        source_of(ctx)


def test_decode_xml_order() -> None:
    declared = '<?xml version="1.0" encoding="windows-1251"?><a>Привет</a>'.encode("cp1251")
    assert "Привет" in decode_xml(declared, "utf-8")
    utf8_undeclared = "<a>Grüße</a>".encode()
    assert "Grüße" in decode_xml(utf8_undeclared, "iso-8859-1")
    bom = b"\xef\xbb\xbf<a>x</a>"
    assert decode_xml(bom) == "<a>x</a>"


def test_unchanged_feed_costs_one_304(httpserver: HTTPServer, make_ctx) -> None:
    seen: list[str | None] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"rev-7"':
            return Response(status=304)
        return Response(data("rss091.xml"), content_type="text/xml", headers={"ETag": '"rev-7"'})

    httpserver.expect_request("/cond.xml").respond_with_handler(handler)
    source = feed_source(make_ctx, httpserver.url_for("/cond.xml"))
    first = source.fetch()
    second = source.fetch()
    assert seen == [None, '"rev-7"']
    assert first == second and first[0].title == "Lighthouse open day"


def test_feed_served_as_text_html_is_still_read(httpserver: HTTPServer, make_ctx) -> None:
    # Misconfigured servers send feeds as text/html; the body decides, not the header.
    url = serve(httpserver, "hugo-atom.xml", "text/html; charset=iso-8859-1")
    posts = feed_source(make_ctx, url).fetch()
    assert len(posts) == 2
