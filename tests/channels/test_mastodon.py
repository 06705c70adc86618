"""Mastodon against a fake server on 127.0.0.1 answering like the documented API."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from werkzeug import Response

from distrib.model import DeliveryStatus, Image
from distrib.share import run_shares, share_key
from tests.channels.conftest import make_post

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

INSTANCE = {
    "domain": "social.example",
    "title": "Social Example",
    "configuration": {
        "urls": {"streaming": "wss://social.example"},
        "statuses": {
            "max_characters": 1000,
            "max_media_attachments": 4,
            "characters_reserved_per_url": 23,
        },
        "media_attachments": {"image_size_limit": 16777216},
    },
}


def status(n: int, text: str = "", url_in_content: str = "") -> dict:
    content = (
        f'<p>{text}</p><p><a href="{url_in_content}">link</a></p>'
        if url_in_content
        else f"<p>{text}</p>"
    )
    return {
        "id": f"10900000000000000{n}",
        "uri": f"https://social.example/users/news/statuses/10900000000000000{n}",
        "url": f"https://social.example/@news/10900000000000000{n}",
        "content": content,
        "visibility": "public",
        "media_attachments": [],
    }


@pytest.fixture
def mastodon(env, httpserver, monkeypatch):
    monkeypatch.setenv("MASTODON_TOKEN", "token-abc")
    httpserver.expect_request("/api/v2/instance", method="GET").respond_with_json(INSTANCE)

    def make(**extra):
        return env.channels(
            {
                "name": "masto",
                "type": "mastodon",
                "instance": httpserver.url_for("/"),
                "token_env": "MASTODON_TOKEN",
                **extra,
            }
        )

    return make


def test_posts_with_idempotency_key_and_image_with_alt(env, mastodon, httpserver):
    httpserver.expect_request("/img/ferry.png").respond_with_data(PNG, content_type="image/png")
    httpserver.expect_request("/api/v2/media", method="POST").respond_with_json(
        {
            "id": "22348641",
            "type": "image",
            "url": "https://files.social.example/1.png",
            "description": "A ferry",
        }
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(
        status(1, "posted")
    )
    post = make_post(
        1, image=Image(httpserver.url_for("/img/ferry.png"), "A white ferry at the pier")
    )
    ctx, channels = mastodon()

    report = run_shares(ctx, channels, [post], dry_run=False)

    assert [i.remote_id for i in report.sent] == ["https://social.example/@news/109000000000000001"]
    media_req = next(r for r, _ in httpserver.log if r.path == "/api/v2/media")
    assert media_req.headers["Authorization"] == "Bearer token-abc"
    assert media_req.form["description"] == "A white ferry at the pier"
    assert media_req.files["file"].read() == PNG
    req = next(r for r, _ in httpserver.log if r.path == "/api/v1/statuses")
    assert req.headers["Authorization"] == "Bearer token-abc"
    assert req.headers["Idempotency-Key"] == f"distrib-masto-{share_key(post.key, 'masto')}"
    body = json.loads(req.data)
    assert body["media_ids"] == ["22348641"]
    assert body["visibility"] == "public"
    assert body["status"] == channels[0].compose(post).text
    assert body["status"].endswith(
        post.url + "?utm_source=mastodon&utm_medium=social&utm_campaign=distrib"
    )
    assert env.ledger.share_row(post.key, "masto").remote_id == report.sent[0].remote_id


def test_instance_limits_are_read_once_and_cached_in_the_ledger(env, mastodon, httpserver):
    ctx, [channel] = mastodon()
    assert channel.limit() == 1000
    _, [again] = mastodon()
    assert again.limit() == 1000
    assert sum(1 for r, _ in httpserver.log if r.path == "/api/v2/instance") == 1
    # Keyed by the instance, not the channel name (issue 10).
    key = f"mastodon:{httpserver.url_for('/').rstrip('/').lower()}:limits"
    assert env.ledger.kv_get(key) == {"max_characters": 1000, "characters_reserved_per_url": 23}


def test_the_limit_cache_is_the_instances_not_the_channel_names(env, httpserver, monkeypatch):
    """A channel moved to another instance (same name) must not keep the old server's limit."""
    from pytest_httpserver import HTTPServer

    monkeypatch.setenv("MASTODON_TOKEN", "token-abc")
    httpserver.expect_request("/api/v2/instance").respond_with_json(INSTANCE)  # 1000
    small = json.loads(json.dumps(INSTANCE))
    small["configuration"]["statuses"]["max_characters"] = 200
    other = HTTPServer(host="127.0.0.1")
    other.start()
    try:
        other.expect_request("/api/v2/instance").respond_with_json(small)
        _, [first] = env.channels(
            {
                "name": "masto",
                "type": "mastodon",
                "instance": httpserver.url_for("/"),
                "token_env": "MASTODON_TOKEN",
            }
        )
        assert first.limit() == 1000
        _, [moved] = env.channels(
            {
                "name": "masto",
                "type": "mastodon",
                "instance": other.url_for("/"),
                "token_env": "MASTODON_TOKEN",
            }
        )
        assert moved.limit() == 200
        # Two accounts on one instance share what it said.
        _, [a, b] = env.channels(
            {
                "name": "one",
                "type": "mastodon",
                "instance": other.url_for("/"),
                "token_env": "MASTODON_TOKEN",
            },
            {
                "name": "two",
                "type": "mastodon",
                "instance": other.url_for("/"),
                "token_env": "MASTODON_TOKEN",
            },
        )
        assert a.limit() == b.limit() == 200
        assert sum(1 for r, _ in other.log if r.path == "/api/v2/instance") == 1
    finally:
        other.clear()
        other.stop()


def test_a_422_too_long_refetches_the_limit_recomposes_and_retries_once(
    env, httpserver, monkeypatch
):
    """The instance lowered its limit from 1000 to 200 after we cached it: the post is
    recomposed to fit and sent, not recorded as a permanent failure."""
    monkeypatch.setenv("MASTODON_TOKEN", "token-abc")
    small = json.loads(json.dumps(INSTANCE))
    small["configuration"]["statuses"]["max_characters"] = 200
    httpserver.expect_oneshot_request("/api/v2/instance").respond_with_json(INSTANCE)
    httpserver.expect_request("/api/v2/instance").respond_with_json(small)
    posted: list[str] = []

    def statuses(request):
        text = json.loads(request.data)["status"]
        # Counted as Mastodon counts: every URL is 23 characters.
        if len(re.sub(r"https?://\S+", "x" * 23, text)) > 200:
            return Response(
                json.dumps({"error": "Validation failed: Text character limit of 200 exceeded"}),
                status=422,
                content_type="application/json",
            )
        posted.append(text)
        return Response(json.dumps(status(1, text)), content_type="application/json")

    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_handler(statuses)
    ctx, channels = env.channels(
        {
            "name": "masto",
            "type": "mastodon",
            "instance": httpserver.url_for("/"),
            "token_env": "MASTODON_TOKEN",
            "images": False,
        }
    )
    post = make_post(1, summary="A long summary of the council meeting. " * 12)
    assert len(channels[0].compose(post).text) > 200  # composed for the cached 1000

    report = run_shares(ctx, channels, [post], dry_run=False)

    assert len(report.sent) == 1 and report.failed == []
    assert len(posted) == 1 and len(re.sub(r"https?://\S+", "x" * 23, posted[0])) <= 200
    row = env.ledger.share_row(post.key, "masto")
    assert row.status == DeliveryStatus.SENT and row.text == posted[0]
    assert sum(1 for r, _ in httpserver.log if r.path == "/api/v1/statuses") == 2  # retried once


def test_a_refused_token_stops_the_channel_and_keeps_its_posts_owed(
    env, mastodon, httpserver, clock
):
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(
        {"error": "The access token is invalid"}, status=401
    )
    ctx, channels = mastodon(images=False)
    posts = [make_post(1), make_post(2), make_post(3)]
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert report.failed == []
    assert (
        sum(1 for r, _ in httpserver.log if r.path == "/api/v1/statuses") == 1
    )  # the channel stopped
    assert len(report.deferred) == 1 and len(report.skipped) == 2
    [error] = report.errors
    assert "MASTODON_TOKEN" in error and "refused" in error and "next run" in error
    statuses = {
        env.ledger.share_row(p.key, "masto").status
        for p in posts
        if env.ledger.share_row(p.key, "masto")
    }
    assert statuses == {DeliveryStatus.DEFERRED}

    # Renewed: the next run posts all three.
    httpserver.clear()
    httpserver.expect_request("/api/v2/instance").respond_with_json(INSTANCE)
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(status(1))
    httpserver.expect_request("/api/v1/accounts/verify_credentials").respond_with_json({"id": "1"})
    httpserver.expect_request("/api/v1/accounts/1/statuses").respond_with_json([])
    ctx, channels = mastodon(images=False)
    ctx.now += timedelta(minutes=10)  # the next cron run
    clock[0] = ctx.now
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert len(report.sent) == 3


def test_an_unreachable_instance_is_named_once_in_the_limit_warning(env, monkeypatch, caplog):
    monkeypatch.setenv("MASTODON_TOKEN", "token-abc")
    _, [channel] = env.channels(
        {
            "name": "masto",
            "type": "mastodon",
            "instance": "http://127.0.0.1:9",
            "token_env": "MASTODON_TOKEN",
        }
    )
    with caplog.at_level("WARNING"):
        assert channel.limit() == 500
    [line] = [r.getMessage() for r in caplog.records if "assuming" in r.getMessage()]
    assert (
        line.startswith("channel masto: 127.0.0.1:9 unreachable")
        and line.count("channel masto") == 1
    )


def test_the_same_share_always_sends_the_same_idempotency_key(env, mastodon, httpserver):
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(status(1))
    ctx, [channel] = mastodon(images=False)
    post = make_post(1)
    snippet = channel.compose(post)
    channel.publish(snippet, post, share_key(post.key, "masto"))
    channel.publish(snippet, post, share_key(post.key, "masto"))
    keys = [r.headers["Idempotency-Key"] for r, _ in httpserver.log if r.path == "/api/v1/statuses"]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_429_defers_the_channel_for_this_run(env, mastodon, httpserver):
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_response(
        Response(
            json.dumps({"error": "Too many requests"}),
            status=429,
            headers={
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "2026-11-20T09:45:00.000Z",
            },
            content_type="application/json",
        )
    )
    ctx, channels = mastodon()
    posts = [make_post(1), make_post(2)]
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert [i.post_key for i in report.deferred] == [posts[0].key]
    assert [i.post_key for i in report.skipped] == [posts[1].key]  # not tried: the channel waits
    assert sum(1 for r, _ in httpserver.log if r.path == "/api/v1/statuses") == 1
    row = env.ledger.share_row(posts[0].key, "masto")
    assert row.status == DeliveryStatus.DEFERRED
    assert row.not_before is not None and row.not_before > ctx.now


def test_5xx_is_retried_a_bounded_number_of_times_then_deferred(env, mastodon, httpserver):
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_data(
        "bad gateway", status=502
    )
    ctx, channels = mastodon(images=False)
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert len(report.deferred) == 1
    assert sum(1 for r, _ in httpserver.log if r.path == "/api/v1/statuses") == 3


def test_rejected_token_defers_with_one_line_naming_the_variable(env, mastodon, httpserver):
    # Not failed for good (issue 10): the share waits for the renewed token.
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(
        {"error": "The access token is invalid"}, status=401
    )
    ctx, channels = mastodon(images=False)
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert len(report.deferred) == 1 and report.failed == []
    assert "MASTODON_TOKEN" in report.errors[0] and "token-abc" not in report.errors[0]
    assert "\n" not in report.errors[0]


def test_killed_between_call_and_mark_is_found_and_not_posted_again(env, mastodon, httpserver):
    post = make_post(1)
    ctx, [channel] = mastodon(images=False)
    snippet = channel.compose(post)
    env.ledger.claim_share(
        post.key, "masto", snippet.text
    )  # the dead run's claim; its post went out
    httpserver.expect_request("/api/v1/accounts/verify_credentials").respond_with_json(
        {"id": "4242", "username": "news"}
    )
    httpserver.expect_request("/api/v1/accounts/4242/statuses").respond_with_json(
        [status(7, "other"), status(8, "ours", url_in_content=snippet.link.replace("&", "&amp;"))]
    )
    report = run_shares(ctx, [channel], [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["https://social.example/@news/109000000000000008"]
    assert not any(r.path == "/api/v1/statuses" for r, _ in httpserver.log)
    assert env.ledger.share_row(post.key, "masto").status == DeliveryStatus.SENT


def test_killed_before_the_call_is_posted_with_the_same_key(env, mastodon, httpserver):
    post = make_post(1)
    ctx, [channel] = mastodon(images=False)
    snippet = channel.compose(post)
    env.ledger.claim_share(post.key, "masto", snippet.text)
    httpserver.expect_request("/api/v1/accounts/verify_credentials").respond_with_json(
        {"id": "4242"}
    )
    httpserver.expect_request("/api/v1/accounts/4242/statuses").respond_with_json(
        [status(7, "other")]
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(status(9))
    report = run_shares(ctx, [channel], [post], dry_run=False)
    assert len(report.sent) == 1
    req = next(r for r, _ in httpserver.log if r.path == "/api/v1/statuses")
    assert req.headers["Idempotency-Key"] == f"distrib-masto-{share_key(post.key, 'masto')}"
