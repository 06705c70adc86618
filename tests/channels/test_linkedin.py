"""LinkedIn's Posts API against a fake endpoint on 127.0.0.1 shaped like its docs."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from distrib.channels.linkedin import little_text
from distrib.share import run_shares
from tests.channels.conftest import make_post


def test_little_text_escapes_reserved_characters_and_keeps_hashtags():
    assert little_text("Fares (up) & *bold* @ama [x] <y> a_b ~c | {d} \\e") == (
        "Fares \\(up\\) & \\*bold\\* \\@ama \\[x\\] \\<y\\> a\\_b \\~c \\| \\{d\\} \\\\e"
    )
    assert little_text("#Ferries and #Порт_2 now") == "{hashtag|\\#|Ferries} and {hashtag|\\#|Порт\\_2} now"


@pytest.fixture
def linkedin(env, httpserver, monkeypatch):
    monkeypatch.setenv("LI_TOKEN", "li-token")

    def make(**extra):
        return env.channels(
            {
                "name": "li",
                "type": "linkedin",
                "token_env": "LI_TOKEN",
                "author": "urn:li:organization:5515715",
                "api_url": httpserver.url_for("/").rstrip("/"),
                **extra,
            }
        )

    return make


def test_posts_an_article_with_versioned_headers(env, linkedin, httpserver):
    httpserver.expect_request("/rest/posts", method="POST").respond_with_response(
        Response(status=201, headers={"x-restli-id": "urn:li:share:7265000000000000001"})
    )
    post = make_post(1, title="Ferry line (finally) approved")
    ctx, channels = linkedin()
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["urn:li:share:7265000000000000001"]
    [req] = [r for r, _ in httpserver.log if r.path == "/rest/posts"]
    assert req.headers["Authorization"] == "Bearer li-token"
    assert req.headers["LinkedIn-Version"] == "202510"
    assert req.headers["X-Restli-Protocol-Version"] == "2.0.0"
    body = json.loads(req.data)
    assert body["author"] == "urn:li:organization:5515715"
    assert body["commentary"].startswith("Ferry line \\(finally\\) approved")
    assert "{hashtag|\\#|" in body["commentary"]
    assert body["content"]["article"]["source"].startswith(post.url + "?utm_source=linkedin")
    assert body["lifecycleState"] == "PUBLISHED" and body["visibility"] == "PUBLIC"
    assert len(body["commentary"]) <= 3000


def test_duplicate_is_recorded_as_sent(env, linkedin, httpserver):
    httpserver.expect_request("/rest/posts").respond_with_json(
        {"status": 422, "message": "Content is a duplicate of urn:li:share:7265000000000000009"}, status=422
    )
    ctx, channels = linkedin()
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["urn:li:share:7265000000000000009"]
