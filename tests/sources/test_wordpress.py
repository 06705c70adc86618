"""The WordPress source against a real server answering like /wp-json/wp/v2/posts does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.errors import ConfigError, SourceError

from .conftest import NOW, source_of

SITE = "https://wp.example"


def wp_post(n: int, *, title: str | None = None, embed: bool = True, **extra) -> dict:
    """One post as WordPress 6.x returns it with ?_embed (trimmed to the fields we read)."""
    day = datetime(2026, 11, 27, 16, 0, tzinfo=UTC) - timedelta(days=n)
    post = {
        "id": 4000 + n,
        "date": day.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_gmt": day.strftime("%Y-%m-%dT%H:%M:%S"),
        "guid": {"rendered": f"{SITE}/?p={4000 + n}"},
        "modified": day.strftime("%Y-%m-%dT%H:%M:%S"),
        "modified_gmt": day.strftime("%Y-%m-%dT%H:%M:%S"),
        "slug": f"post-{n}",
        "status": "publish",
        "type": "post",
        "link": f"{SITE}/2026/11/post-{n}/",
        "title": {
            "rendered": title
            if title is not None
            else f"Post number {n} &#8211; &#8220;quoted&#8221; &amp; more"
        },
        "content": {
            "rendered": f'<p>Body of post {n}.</p>\n<p><a href="/about/">About</a></p>\n<script>x()</script>',
            "protected": False,
        },
        "excerpt": {"rendered": f"<p>Excerpt of post {n} [&hellip;]</p>\n", "protected": False},
        "author": 2,
        "featured_media": 90 + n,
        "categories": [3],
        "tags": [7, 8],
        "_links": {"self": [{"href": f"{SITE}/wp-json/wp/v2/posts/{4000 + n}"}]},
    }
    if embed:
        post["_embedded"] = {
            "author": [
                {
                    "id": 2,
                    "name": "Hannah Price",
                    "url": "",
                    "link": f"{SITE}/author/hannah/",
                    "slug": "hannah",
                }
            ],
            "wp:featuredmedia": [
                {
                    "id": 90 + n,
                    "alt_text": f"Photo for post {n}",
                    "media_type": "image",
                    "mime_type": "image/jpeg",
                    "media_details": {
                        "width": 2400,
                        "height": 1600,
                        "sizes": {
                            "medium": {
                                "width": 300,
                                "height": 200,
                                "source_url": f"{SITE}/wp-content/uploads/p{n}-300x200.jpg",
                            },
                            "large": {
                                "width": 1024,
                                "height": 683,
                                "source_url": f"{SITE}/wp-content/uploads/p{n}-1024x683.jpg",
                            },
                            "full": {
                                "width": 2400,
                                "height": 1600,
                                "source_url": f"{SITE}/wp-content/uploads/p{n}.jpg",
                            },
                        },
                    },
                    "source_url": f"{SITE}/wp-content/uploads/p{n}.jpg",
                }
            ],
            "wp:term": [
                [
                    {
                        "id": 3,
                        "name": "Local &amp; Regional",
                        "slug": "local",
                        "taxonomy": "category",
                    }
                ],
                [
                    {"id": 7, "name": "council", "slug": "council", "taxonomy": "post_tag"},
                    {"id": 8, "name": "roads", "slug": "roads", "taxonomy": "post_tag"},
                ],
            ],
        }
    post.update(extra)
    return post


def wp_source(make_ctx, url: str, extra: str = ""):
    ctx = make_ctx(f'[[sources]]\nname = "wp"\ntype = "wordpress"\nurl = "{url}"\n{extra}')
    return source_of(ctx)


def test_pages_through_the_window_with_embed(httpserver: HTTPServer, make_ctx) -> None:
    pages = {1: [wp_post(i) for i in range(0, 3)], 2: [wp_post(i) for i in range(3, 5)]}
    seen: list[dict] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.args))
        page = int(request.args["page"])
        return Response(
            json.dumps(pages[page]),
            content_type="application/json; charset=UTF-8",
            headers={"X-WP-Total": "5", "X-WP-TotalPages": "2"},
        )

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(handler)
    source = wp_source(make_ctx, httpserver.url_for("/"), "per_page = 3")
    source.since = NOW - timedelta(days=7)
    posts = source.fetch()
    assert len(posts) == 5 and len(seen) == 2
    assert seen[0]["per_page"] == "3" and "_embed" in seen[0]
    assert seen[0]["after"] == (NOW - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    first = posts[0]
    assert first.title == "Post number 0 – “quoted” & more"
    assert first.key == f"{SITE}/?p=4000"
    assert first.url == f"{SITE}/2026/11/post-0/"
    assert first.author == "Hannah Price"
    assert first.published == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    assert first.updated is None
    assert first.categories == ("Local & Regional",) and first.tags == ("council", "roads")
    assert first.image.url == f"{SITE}/wp-content/uploads/p0-1024x683.jpg"
    assert (first.image.alt, first.image.width, first.image.height) == (
        "Photo for post 0",
        1024,
        683,
    )
    assert first.summary == "Excerpt of post 0…"
    assert "<script" not in first.content and f'href="{SITE}/about/"' in first.content


def test_default_window_is_30_days(httpserver: HTTPServer, make_ctx) -> None:
    seen = []
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(
        lambda r: (seen.append(r.args["after"]), Response("[]", content_type="application/json"))[1]
    )
    assert wp_source(make_ctx, httpserver.url_for("/")).fetch() == []
    assert seen == [(NOW - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S+00:00")]


def test_untitled_old_featured_image_and_single_object(httpserver: HTTPServer, make_ctx) -> None:
    post = wp_post(
        1,
        title="",
        embed=False,
        featured_image={
            "source": "/wp-content/uploads/old.jpg",
            "attachment_meta": {"width": 800, "height": 600},
        },
    )
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json(post)
    (got,) = wp_source(make_ctx, httpserver.url_for("/")).fetch()
    assert got.title == "Body of post 1."
    assert got.image.url == f"{SITE}/wp-content/uploads/old.jpg"
    assert (got.image.width, got.image.height) == (800, 600)
    assert got.author == "" and got.tags == ()


def test_plain_permalinks_fall_back_to_rest_route(httpserver: HTTPServer, make_ctx) -> None:
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_data(
        "<html>Not Found</html>", status=404, content_type="text/html"
    )
    httpserver.expect_request("/").respond_with_handler(
        lambda r: Response(
            json.dumps([wp_post(2)]) if r.args.get("rest_route") == "/wp/v2/posts" else "no",
            content_type="application/json",
        )
    )
    (got,) = wp_source(make_ctx, httpserver.url_for("/")).fetch()
    assert got.key == f"{SITE}/?p=4002"


def test_rest_error_object(httpserver: HTTPServer, make_ctx) -> None:
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json(
        {
            "code": "rest_forbidden",
            "message": "Sorry, you are not allowed to do that.",
            "data": {"status": 401},
        },
        status=401,
    )
    with pytest.raises(SourceError) as e:
        wp_source(make_ctx, httpserver.url_for("/")).fetch()
    text = str(e.value)
    assert text.startswith("source 'wp': the WordPress API at http://")
    assert "answered rest_forbidden: Sorry, you are not allowed to do that.; check username" in text


def test_non_json_answer(httpserver: HTTPServer, make_ctx) -> None:
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_data(
        "<!doctype html><p>Security check</p>", content_type="text/html"
    )
    with pytest.raises(SourceError, match=r"answered text/html, not JSON; check the url"):
        wp_source(make_ctx, httpserver.url_for("/")).fetch()


@pytest.mark.parametrize(
    "answer", [{"hello": "world"}, {"name": "Some other API", "routes": {}}, "posts", 3]
)
def test_json_that_is_not_wordpress_is_an_error_not_zero_posts(
    httpserver: HTTPServer, make_ctx, answer
) -> None:
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json(answer)
    with pytest.raises(
        SourceError, match=r"answered JSON that is not a list of posts; check the url"
    ):
        wp_source(make_ctx, httpserver.url_for("/")).fetch()


def test_page_past_the_end_stops(httpserver: HTTPServer, make_ctx) -> None:
    def handler(request: Request) -> Response:
        if request.args["page"] == "1":
            return Response(json.dumps([wp_post(0), wp_post(1)]), content_type="application/json")
        return Response(
            json.dumps(
                {
                    "code": "rest_post_invalid_page_number",
                    "message": "The page number requested is larger than the number of pages available.",
                    "data": {"status": 400},
                }
            ),
            status=400,
            content_type="application/json",
        )

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(handler)
    posts = wp_source(make_ctx, httpserver.url_for("/"), "per_page = 2").fetch()
    assert len(posts) == 2


def test_application_password_auth(httpserver: HTTPServer, make_ctx, monkeypatch) -> None:
    monkeypatch.setenv("WP_APP_PASSWORD", "abcd efgh ijkl mnop")
    got = {}
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(
        lambda r: (
            got.update(auth=r.authorization),
            Response("[]", content_type="application/json"),
        )[1]
    )
    wp_source(
        make_ctx, httpserver.url_for("/"), 'username = "editor"\npassword_env = "WP_APP_PASSWORD"'
    ).fetch()
    assert (got["auth"].username, got["auth"].password) == ("editor", "abcd efgh ijkl mnop")


def test_missing_password_variable_names_it(make_ctx, monkeypatch) -> None:
    monkeypatch.delenv("WP_APP_PASSWORD", raising=False)
    source = wp_source(
        make_ctx, "https://wp.example/", 'username = "editor"\npassword_env = "WP_APP_PASSWORD"'
    )
    with pytest.raises(ConfigError, match="WP_APP_PASSWORD is not set"):
        source.fetch()


def test_username_without_password_is_a_config_error(make_ctx) -> None:
    with pytest.raises(ConfigError, match="both username and password_env"):
        wp_source(make_ctx, "https://wp.example/", 'username = "editor"')


def test_same_site_as_feed_and_api_gives_each_post_once(httpserver: HTTPServer, make_ctx) -> None:
    from distrib.sources.common import fetch_all

    from .conftest import data

    httpserver.expect_request("/feed/").respond_with_data(
        data("wordpress-rss.xml"), content_type="application/rss+xml"
    )
    same = wp_post(
        0,
        guid={"rendered": "https://millbrook.example/?p=4242"},
        link="https://millbrook.example/2026/11/27/bakers-strike-ends/",
    )
    other = wp_post(1)
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json([same, other])
    ctx = make_ctx(
        f'[[sources]]\nname = "rss"\ntype = "feed"\nurl = "{httpserver.url_for("/feed/")}"\n'
        f'[[sources]]\nname = "api"\ntype = "wordpress"\nurl = "{httpserver.url_for("/")}"\n'
    )
    posts, errors = fetch_all([source_of(ctx, 0), source_of(ctx, 1)])
    assert errors == []
    strikes = [p for p in posts if "bakers-strike" in p.url]
    assert [p.source for p in strikes] == ["rss"]  # the first source in the config wins
    assert any(p.source == "api" and p.key == f"{SITE}/?p=4001" for p in posts)
    assert len(posts) == 5


def test_max_pages_and_embedded_errors(httpserver: HTTPServer, make_ctx) -> None:
    calls = []

    def handler(request: Request) -> Response:
        calls.append(request.args["page"])
        n = int(request.args["page"])
        item = wp_post(n, jetpack_featured_media_url=f"{SITE}/jp{n}.jpg")
        # Private media or a deleted author come back embedded as REST error objects.
        item["_embedded"]["wp:featuredmedia"] = [
            {"code": "rest_forbidden", "message": "Sorry.", "data": {"status": 401}}
        ]
        item["_embedded"]["author"] = [
            {"code": "rest_user_invalid_id", "message": "Invalid user ID.", "data": {"status": 404}}
        ]
        return Response(
            json.dumps([item]), content_type="application/json", headers={"X-WP-TotalPages": "9"}
        )

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(handler)
    posts = wp_source(make_ctx, httpserver.url_for("/"), "per_page = 1\nmax_pages = 3").fetch()
    assert calls == ["1", "2", "3"]
    assert [p.image.url for p in posts] == [f"{SITE}/jp1.jpg", f"{SITE}/jp2.jpg", f"{SITE}/jp3.jpg"]
    assert all(p.author == "" for p in posts)


# --- issue 18: the first <img>, max_pages, protected posts, custom post types ------------


def test_first_content_image_when_no_featured_image(httpserver: HTTPServer, make_ctx) -> None:
    post = wp_post(
        1,
        embed=False,
        featured_media=0,
        content={
            "rendered": '<p>Text</p><img src="/wp-content/uploads/in-body.jpg" alt="In the body"><img src="/second.jpg">',
            "protected": False,
        },
    )
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json([post])
    (got,) = wp_source(make_ctx, httpserver.url_for("/")).fetch()
    assert got.image is not None
    assert (got.image.url, got.image.alt) == (
        f"{SITE}/wp-content/uploads/in-body.jpg",
        "In the body",
    )


def test_max_pages_stop_says_what_is_left(httpserver: HTTPServer, make_ctx, caplog) -> None:
    import logging

    def handler(request: Request) -> Response:
        n = int(request.args["page"])
        return Response(
            json.dumps([wp_post(2 * n), wp_post(2 * n + 1)]),
            content_type="application/json",
            headers={"X-WP-Total": "17", "X-WP-TotalPages": "9"},
        )

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(handler)
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = wp_source(make_ctx, httpserver.url_for("/"), "per_page = 2\nmax_pages = 3").fetch()
    assert len(posts) == 6
    (line,) = [r.getMessage() for r in caplog.records]
    assert (
        line
        == "source 'wp': stopped at max_pages = 3 with 6 more pages, 11 more posts left in the window; raise max_pages to read them"
    )


def test_max_pages_not_reached_says_nothing(httpserver: HTTPServer, make_ctx, caplog) -> None:
    import logging

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json(
        [wp_post(0), wp_post(1)], headers={"X-WP-Total": "2", "X-WP-TotalPages": "1"}
    )
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        assert (
            len(wp_source(make_ctx, httpserver.url_for("/"), "per_page = 2\nmax_pages = 1").fetch())
            == 2
        )
    assert caplog.records == []


def _protected(n: int) -> dict:
    return wp_post(
        n,
        title="Members only",
        content={"rendered": "<p>The secret text.</p>", "protected": True},
        excerpt={"rendered": "<p>The secret excerpt.</p>", "protected": True},
    )


def test_password_protected_posts_are_skipped(httpserver: HTTPServer, make_ctx, caplog) -> None:
    import logging

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json([wp_post(0), _protected(1)])
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = wp_source(make_ctx, httpserver.url_for("/")).fetch()
    assert [p.key for p in posts] == [f"{SITE}/?p=4000"]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "skipped 1 password-protected post" in line and "include_protected = true" in line


def test_include_protected_takes_title_and_link_only(httpserver: HTTPServer, make_ctx) -> None:
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json([_protected(1)])
    (got,) = wp_source(make_ctx, httpserver.url_for("/"), "include_protected = true").fetch()
    assert (got.title, got.url) == ("Members only", f"{SITE}/2026/11/post-1/")
    assert got.content == "" and got.summary == "" and got.image is None
    assert "secret" not in repr(got)


def test_custom_post_type_uses_its_rest_base(httpserver: HTTPServer, make_ctx) -> None:
    types = {
        "post": {"slug": "post", "rest_base": "posts", "name": "Posts"},
        "podcast": {"slug": "podcast", "rest_base": "episodes", "name": "Podcast"},
    }
    httpserver.expect_request("/wp-json/wp/v2/types").respond_with_json(types)
    httpserver.expect_request("/wp-json/wp/v2/episodes").respond_with_json(
        [wp_post(3, type="podcast")]
    )
    (got,) = wp_source(make_ctx, httpserver.url_for("/"), 'post_type = "podcast"').fetch()
    assert got.key == f"{SITE}/?p=4003"
    with pytest.raises(
        ConfigError,
        match=r"post_type: the site has no post type 'recipe' in its REST API; it has podcast, post",
    ):
        wp_source(make_ctx, httpserver.url_for("/"), 'post_type = "recipe"').fetch()


def test_username_help_says_what_it_gives() -> None:
    from distrib.sources.wordpress import WordPressSource

    doc = WordPressSource.options["username"].doc
    assert "private posts" in doc and "never emailed" in doc
