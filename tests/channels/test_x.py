"""X through tweepy against a fake API on 127.0.0.1 answering like the documented v2 API."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from distrib.model import DeliveryStatus, Image
from distrib.share import run_shares
from tests.channels.conftest import FIXED_NOW, make_post

PNG = b"\x89PNG\r\n\x1a\n" + b"\2" * 80
CREATED = {
    "data": {
        "id": "1445880548472328192",
        "text": "Harbour council votes",
        "edit_history_tweet_ids": ["1445880548472328192"],
    }
}
DUPLICATE = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}


@pytest.fixture
def x(env, httpserver, monkeypatch):
    for var, value in (("X_CK", "ck-1"), ("X_CS", "cs-1"), ("X_AT", "at-1"), ("X_ATS", "ats-1")):
        monkeypatch.setenv(var, value)

    def make(**extra):
        return env.channels(
            {
                "name": "x-main",
                "type": "x",
                "consumer_key_env": "X_CK",
                "consumer_secret_env": "X_CS",
                "access_token_env": "X_AT",
                "access_token_secret_env": "X_ATS",
                "api_url": httpserver.url_for("/").rstrip("/"),
                **extra,
            }
        )

    return make


def _tweets(httpserver):
    return [r for r, _ in httpserver.log if r.path == "/2/tweets"]


def test_posts_through_tweepy_signed_with_oauth1_and_an_image(env, x, httpserver):
    httpserver.expect_request("/img/a.png").respond_with_data(PNG, content_type="image/png")
    httpserver.expect_request("/2/media/upload", method="POST").respond_with_json(
        {
            "data": {
                "id": "1880028106020515840",
                "media_key": "3_1880028106020515840",
                "size": len(PNG),
                "expires_after_secs": 86400,
                "image": {"image_type": "image/png", "w": 1200, "h": 630},
            }
        }
    )
    httpserver.expect_request("/2/media/metadata", method="POST").respond_with_json(
        {"data": {"id": "1880028106020515840", "associated_metadata": True}}
    )
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(CREATED, status=201)
    post = make_post(1, image=Image(httpserver.url_for("/img/a.png"), "Harbour at dusk"))
    ctx, channels = x()

    report = run_shares(ctx, channels, [post], dry_run=False)

    assert [i.remote_id for i in report.sent] == ["1445880548472328192"]
    [upload] = [r for r, _ in httpserver.log if r.path == "/2/media/upload"]
    assert upload.form["media_category"] == "tweet_image"
    assert upload.files["media"].read() == PNG
    assert upload.headers["Authorization"].startswith("OAuth ")
    [meta] = [r for r, _ in httpserver.log if r.path == "/2/media/metadata"]
    assert json.loads(meta.data) == {
        "id": "1880028106020515840",
        "metadata": {"alt_text": {"text": "Harbour at dusk"}},
    }
    [tweet] = _tweets(httpserver)
    auth = tweet.headers["Authorization"]
    assert (
        auth.startswith("OAuth ")
        and 'oauth_consumer_key="ck-1"' in auth
        and 'oauth_token="at-1"' in auth
    )
    assert "oauth_signature=" in auth and "cs-1" not in auth and "ats-1" not in auth
    body = json.loads(tweet.data)
    assert body == {
        "text": channels[0].compose(post).text,
        "media": {"media_ids": ["1880028106020515840"]},
    }
    assert "?utm_source=x&utm_medium=social&utm_campaign=distrib" in body["text"]


def test_duplicate_content_is_recorded_as_already_posted(env, x, httpserver):
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(DUPLICATE, status=403)
    ctx, channels = x(images=False)
    post = make_post(1)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.sent) == 1 and report.failed == []
    assert env.ledger.share_row(post.key, "x-main").status == DeliveryStatus.SENT


def test_killed_between_call_and_mark_does_not_post_twice(env, x, httpserver):
    # The dead run's tweet went out; X now refuses the same text as a duplicate.
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(DUPLICATE, status=403)
    ctx, channels = x(images=False)
    post = make_post(1)
    text = channels[0].compose(post).text
    env.ledger.claim_share(post.key, "x-main", text)
    report = run_shares(ctx, channels, [post], dry_run=False)
    [tweet] = _tweets(httpserver)
    assert json.loads(tweet.data)["text"] == text  # the very text that was in flight
    assert len(report.sent) == 1
    assert env.ledger.share_row(post.key, "x-main").status == DeliveryStatus.SENT


def test_429_defers_with_the_reset_time(env, x, httpserver):
    reset = int(FIXED_NOW.timestamp()) + 600
    httpserver.expect_request("/2/tweets", method="POST").respond_with_response(
        Response(
            json.dumps(
                {
                    "title": "Too Many Requests",
                    "detail": "Too Many Requests",
                    "type": "about:blank",
                    "status": 429,
                }
            ),
            status=429,
            headers={
                "x-rate-limit-limit": "17",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset),
            },
            content_type="application/json",
        )
    )
    ctx, channels = x(images=False)
    posts = [make_post(1), make_post(2)]
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert len(report.deferred) == 1 and len(report.skipped) == 1
    assert len(_tweets(httpserver)) == 1
    row = env.ledger.share_row(posts[0].key, "x-main")
    assert row.status == DeliveryStatus.DEFERRED and row.not_before is not None


def test_5xx_retried_then_deferred(env, x, httpserver):
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(
        {"title": "Service Unavailable"}, status=503
    )
    ctx, channels = x(images=False)
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert len(report.deferred) == 1
    assert len(_tweets(httpserver)) == 3


def test_bad_credentials_fail_in_one_line_without_secrets(env, x, httpserver):
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(
        {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
        status=401,
    )
    ctx, channels = x(images=False)
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    [error] = report.errors
    assert "401" in error and "\n" not in error
    assert not any(secret in error for secret in ("ck-1", "cs-1", "at-1", "ats-1"))


def test_x_counts_weighted_length(env, x):
    _, [channel] = x()
    snippet = channel.compose(make_post(1, title="港のフェリー " * 15))
    assert snippet.limit == 280 and snippet.length <= 280


ME = {"data": {"id": "2244994945", "name": "Harbour Light", "username": "harbourlight"}}


def test_reconcile_finds_the_dead_runs_tweet_when_x_lets_us_read(env, x, httpserver):
    ctx, channels = x(images=False)
    post = make_post(1)
    text = channels[0].compose(post).text
    env.ledger.claim_share(post.key, "x-main", text)
    httpserver.expect_request("/2/users/me").respond_with_json(ME)
    httpserver.expect_request(
        "/2/users/2244994945/tweets", query_string="max_results=10"
    ).respond_with_json(
        {
            "data": [
                {
                    "id": "1861000000000000002",
                    "text": "Something else https://t.co/abc",
                    "edit_history_tweet_ids": ["1861000000000000002"],
                },
                {
                    "id": "1861000000000000001",
                    "text": text.split("\n")[0] + "\n\nThe council met… https://t.co/xyz",
                    "edit_history_tweet_ids": ["1861000000000000001"],
                },
            ],
            "meta": {
                "result_count": 2,
                "newest_id": "1861000000000000002",
                "oldest_id": "1861000000000000001",
            },
        }
    )
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["1861000000000000001"]
    assert _tweets(httpserver) == []
    me = next(r for r, _ in httpserver.log if r.path == "/2/users/me")
    assert me.headers["Authorization"].startswith("OAuth ")


def test_reading_not_allowed_falls_back_to_the_duplicate_check(env, x, httpserver):
    ctx, channels = x(images=False)
    post = make_post(1)
    env.ledger.claim_share(post.key, "x-main", channels[0].compose(post).text)
    httpserver.expect_request("/2/users/me").respond_with_json(
        {
            "title": "Client Forbidden",
            "type": "https://api.twitter.com/2/problems/client-forbidden",
            "reason": "client-not-enrolled",
            "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.",
            "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
        },
        status=403,
    )
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(DUPLICATE, status=403)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == [""]
    assert len(_tweets(httpserver)) == 1


# --- issue 10 ----------------------------------------------------------------------------


def test_a_hanging_x_times_out_instead_of_holding_the_cron_run(env, x, httpserver, monkeypatch):
    """tweepy's session had no timeout: a server that never answers held the run for
    ever.  (The timeout is shortened here so the test is quick.)"""
    import threading

    import distrib.channels.x as xmod

    monkeypatch.setattr(xmod, "TIMEOUT", (2.0, 0.3))
    release = threading.Event()

    def hang(request):
        release.wait(5)
        return Response(json.dumps(CREATED), status=201, content_type="application/json")

    httpserver.expect_request("/2/tweets", method="POST").respond_with_handler(hang)
    ctx, channels = x(images=False)
    try:
        report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    finally:
        release.set()
    assert len(report.deferred) == 1 and report.sent == []
    assert "unreachable (ReadTimeout)" in report.deferred[0].error


def test_429_honours_the_24_hour_cap_reset(env, x, httpserver, clock):
    """The daily cap is spent: waiting for the 15-minute window would only be refused
    again.  The share waits for x-user-limit-24hour-reset."""
    import time

    now = time.time()
    window, day = int(now) + 600, int(now) + 20 * 3600
    httpserver.expect_request("/2/tweets", method="POST").respond_with_response(
        Response(
            json.dumps(
                {
                    "title": "Too Many Requests",
                    "detail": "Too Many Requests",
                    "type": "about:blank",
                    "status": 429,
                }
            ),
            status=429,
            headers={
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "99",
                "x-rate-limit-reset": str(window),
                "x-user-limit-24hour-limit": "17",
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(day),
                "x-app-limit-24hour-limit": "1667",
                "x-app-limit-24hour-remaining": "1500",
                "x-app-limit-24hour-reset": str(day + 3600),
            },
            content_type="application/json",
        )
    )
    ctx, channels = x(images=False)
    post = make_post(1)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.deferred) == 1
    row = env.ledger.share_row(post.key, "x-main")
    waited = (row.not_before - clock[0]).total_seconds()
    assert 20 * 3600 - 120 <= waited <= 20 * 3600 + 5
    assert "20 hours" in report.deferred[0].error


def test_x_retry_after_picks_the_exhausted_limit():
    from distrib.channels.x import x_retry_after

    now = 1_800_000_000.0
    assert (
        x_retry_after(
            {"x-rate-limit-reset": str(int(now) + 300), "x-rate-limit-remaining": "0"}, now
        )
        == 300
    )
    app_cap = {
        "x-rate-limit-reset": str(int(now) + 300),
        "x-rate-limit-remaining": "0",
        "x-app-limit-24hour-reset": str(int(now) + 7200),
        "x-app-limit-24hour-remaining": "0",
    }
    assert x_retry_after(app_cap, now) == 7200


def test_reconcile_compares_with_the_html_unescaped_tweet_text(env, x, httpserver):
    ctx, channels = x(images=False)
    post = make_post(1, title='Fares & ferries <2027> "final"')
    text = channels[0].compose(post).text
    env.ledger.claim_share(post.key, "x-main", text)
    httpserver.expect_request("/2/users/me").respond_with_json(ME)
    escaped = 'Fares &amp; ferries &lt;2027&gt; "final"'
    httpserver.expect_request(
        "/2/users/2244994945/tweets", query_string="max_results=10"
    ).respond_with_json(
        {
            "data": [
                {
                    "id": "1861000000000000007",
                    "text": escaped + "\n\nThe council met… https://t.co/xyz",
                    "edit_history_tweet_ids": ["1861000000000000007"],
                }
            ],
            "meta": {"result_count": 1},
        }
    )
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["1861000000000000007"]
    assert _tweets(httpserver) == []


def test_a_gif_is_not_dropped_silently(env, x, httpserver, caplog):
    gif = b"GIF89a" + b"\0" * 40
    httpserver.expect_request("/img/a.gif").respond_with_data(gif, content_type="image/gif")
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(CREATED, status=201)
    post = make_post(1, image=Image(httpserver.url_for("/img/a.gif"), "Animated ferry"))
    ctx, channels = x()
    with caplog.at_level("WARNING"):
        report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.sent) == 1
    assert [r for r, _ in httpserver.log if r.path == "/2/media/upload"] == []
    assert any(
        "GIF" in r.getMessage() and "without the image" in r.getMessage() for r in caplog.records
    )


def test_refused_credentials_stop_the_channel_and_keep_the_posts(env, x, httpserver):
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(
        {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
        status=401,
    )
    ctx, channels = x(images=False)
    report = run_shares(ctx, channels, [make_post(1), make_post(2)], dry_run=False)
    assert report.failed == [] and len(report.deferred) == 1 and len(report.skipped) == 1
    assert len(_tweets(httpserver)) == 1
    assert "X_CK" in report.errors[0] and "X_ATS" in report.errors[0]


def test_a_deferred_share_is_sent_again_with_its_first_text_even_if_the_post_was_edited(
    env, x, httpserver, clock
):
    """A 5xx may have posted: X's duplicate check compares the exact text, so the retry
    must send the text first composed, not a recomposition of the edited post."""
    from datetime import timedelta

    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(
        {"title": "Service Unavailable"}, status=503
    )
    ctx, channels = x(images=False)
    post = make_post(1)
    first = channels[0].compose(post).text
    assert len(run_shares(ctx, channels, [post], dry_run=False).deferred) == 1

    httpserver.clear()
    httpserver.expect_request("/2/tweets", method="POST").respond_with_json(DUPLICATE, status=403)
    clock[0] += timedelta(minutes=20)
    edited = make_post(1, title="Harbour council votes on the new ferry line, part 1 (corrected)")
    ctx, channels = x(images=False)
    ctx.now = clock[0]
    assert channels[0].compose(edited).text != first
    report = run_shares(ctx, channels, [edited], dry_run=False)
    [tweet] = _tweets(httpserver)
    assert json.loads(tweet.data)["text"] == first
    assert len(report.sent) == 1
