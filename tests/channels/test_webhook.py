"""Slack, Discord and Telegram against fake endpoints on 127.0.0.1 shaped like their docs."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from distrib.model import DeliveryStatus, Image
from distrib.share import run_shares
from tests.channels.conftest import make_post


def _bodies(httpserver, path):
    return [json.loads(r.data) for r, _ in httpserver.log if r.path == path]


def test_slack_section_block_with_escaped_text(env, httpserver, monkeypatch):
    monkeypatch.setenv("SLACK_URL", httpserver.url_for("/services/T000/B000/XXXX"))
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")
    post = make_post(
        1, title="Fares <up> & ferries", image=Image("https://news.example/i.jpg", "A ferry")
    )
    ctx, channels = env.channels({"name": "team", "type": "slack", "url_env": "SLACK_URL"})
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.sent) == 1
    [body] = _bodies(httpserver, "/services/T000/B000/XXXX")
    text = body["text"]
    assert text.startswith("Fares &lt;up&gt; &amp; ferries")
    assert body["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": text, "verbatim": True},
    }
    assert body["blocks"][1] == {
        "type": "image",
        "image_url": "https://news.example/i.jpg",
        "alt_text": "A ferry",
    }
    assert len(text) <= 3000


def test_slack_error_names_host_not_the_secret_url(env, httpserver, monkeypatch):
    monkeypatch.setenv("SLACK_URL", httpserver.url_for("/services/T000/B000/SECRET"))
    httpserver.expect_request("/services/T000/B000/SECRET").respond_with_data(
        "no_service", status=404
    )
    ctx, channels = env.channels({"name": "team", "type": "slack", "url_env": "SLACK_URL"})
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    [error] = report.errors
    assert "404" in error and "no_service" in error and "SECRET" not in error


def test_discord_waits_for_the_message_id_and_disables_mentions(env, httpserver, monkeypatch):
    monkeypatch.setenv("DISCORD_URL", httpserver.url_for("/api/webhooks/123/tok"))
    httpserver.expect_request(
        "/api/webhooks/123/tok", method="POST", query_string="wait=true"
    ).respond_with_json(
        {"id": "1177000000000000001", "type": 0, "channel_id": "99", "content": "..."}
    )
    post = make_post(1, title="@everyone the ferry is late")
    ctx, channels = env.channels(
        {"name": "guild", "type": "discord", "url_env": "DISCORD_URL", "username": "Harbour Light"}
    )
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["1177000000000000001"]
    [body] = _bodies(httpserver, "/api/webhooks/123/tok")
    assert body["allowed_mentions"] == {"parse": []}
    assert body["username"] == "Harbour Light"
    assert (
        body["content"].startswith("@everyone the ferry is late") and len(body["content"]) <= 2000
    )


def test_discord_429_defers_with_retry_after(env, httpserver, monkeypatch):
    monkeypatch.setenv("DISCORD_URL", httpserver.url_for("/api/webhooks/123/tok"))
    httpserver.expect_request("/api/webhooks/123/tok").respond_with_response(
        Response(
            json.dumps(
                {"message": "You are being rate limited.", "retry_after": 64.57, "global": False}
            ),
            status=429,
            content_type="application/json",
        )
    )
    ctx, channels = env.channels({"name": "guild", "type": "discord", "url_env": "DISCORD_URL"})
    post = make_post(1)
    report = run_shares(ctx, channels, [post, make_post(2)], dry_run=False)
    assert len(report.deferred) == 1 and len(report.skipped) == 1
    row = env.ledger.share_row(post.key, "guild")
    assert row.status == DeliveryStatus.DEFERRED
    assert 60 <= (row.not_before - ctx.now).total_seconds() <= 70


def test_a_deferred_channel_says_why_in_its_summary_line(env, httpserver, monkeypatch):
    monkeypatch.setenv("SLACK_URL", httpserver.url_for("/services/T0/B0/x"))
    httpserver.expect_request("/services/T0/B0/x").respond_with_data("gone fishing", status=503)
    ctx, channels = env.channels({"name": "team", "type": "slack", "url_env": "SLACK_URL"})
    report = run_shares(ctx, channels, [make_post(1), make_post(2)], dry_run=False)
    host = httpserver.url_for("/").split("/")[2]
    tries = len(httpserver.log)
    assert report.summary_lines() == [
        f"shares: team: 0 posted to Slack, 1 deferred ({host} answered 503 {tries} time{'s' if tries != 1 else ''}; "
        "deferred for 15 minutes: the first run after that retries it), 1 waiting"
    ]


def test_telegram_send_message(env, httpserver, monkeypatch):
    monkeypatch.setenv("TG_TOKEN", "123456:ABC-DEF1234ghIkl")
    httpserver.expect_request(
        "/bot123456:ABC-DEF1234ghIkl/sendMessage", method="POST"
    ).respond_with_json(
        {
            "ok": True,
            "result": {
                "message_id": 42,
                "date": 1763630000,
                "chat": {"id": -100123, "type": "channel"},
                "text": "...",
            },
        }
    )
    ctx, channels = env.channels(
        {
            "name": "tg",
            "type": "telegram",
            "token_env": "TG_TOKEN",
            "chat_id": "@harbourlight",
            "api_url": httpserver.url_for("/").rstrip("/"),
        }
    )
    post = make_post(1)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["@harbourlight/42"]
    [body] = _bodies(httpserver, "/bot123456:ABC-DEF1234ghIkl/sendMessage")
    assert body["chat_id"] == "@harbourlight"
    assert body["text"] == channels[0].compose(post).text
    assert body["link_preview_options"]["url"].startswith(post.url + "?utm_source=telegram")


@pytest.mark.parametrize(
    ("status", "answer", "outcome"),
    [
        (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
            "deferred",
        ),
        (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
            "failed",
        ),
        # A refused token stops the channel and the share waits (issue 10; was "failed").
        (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, "deferred"),
    ],
)
def test_telegram_errors(env, httpserver, monkeypatch, status, answer, outcome):
    monkeypatch.setenv("TG_TOKEN", "999:SECRET")
    httpserver.expect_request("/bot999:SECRET/sendMessage").respond_with_json(answer, status=status)
    ctx, channels = env.channels(
        {
            "name": "tg",
            "type": "telegram",
            "token_env": "TG_TOKEN",
            "chat_id": "-1001",
            "api_url": httpserver.url_for("/").rstrip("/"),
        }
    )
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert len(getattr(report, outcome)) == 1
    for error in report.errors:
        assert "SECRET" not in error
    if status == 400:
        assert "chat not found" in report.errors[0]


# --- issue 10 ----------------------------------------------------------------------------


def test_slack_retries_without_an_image_it_cannot_fetch(env, httpserver, monkeypatch):
    """Slack refuses the whole message when it cannot fetch an image block (400
    invalid_blocks); the share goes out without the image instead of failing for good."""
    monkeypatch.setenv("SLACK_URL", httpserver.url_for("/services/T0/B0/x"))

    def hook(request):
        body = json.loads(request.data)
        if any(b["type"] == "image" for b in body["blocks"]):
            return Response("invalid_blocks", status=400, content_type="text/plain")
        return Response("ok", content_type="text/plain")

    httpserver.expect_request("/services/T0/B0/x", method="POST").respond_with_handler(hook)
    post = make_post(1, image=Image("https://news.example/private/i.jpg", "A ferry"))
    ctx, channels = env.channels({"name": "team", "type": "slack", "url_env": "SLACK_URL"})
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.sent) == 1 and report.failed == []
    first, second = _bodies(httpserver, "/services/T0/B0/x")
    assert [b["type"] for b in first["blocks"]] == ["section", "image"]
    assert [b["type"] for b in second["blocks"]] == ["section"]


def test_slack_text_is_verbatim_so_a_title_mentions_nobody(env, httpserver, monkeypatch):
    monkeypatch.setenv("SLACK_URL", httpserver.url_for("/services/T0/B0/x"))
    httpserver.expect_request("/services/T0/B0/x").respond_with_data("ok")
    ctx, channels = env.channels({"name": "team", "type": "slack", "url_env": "SLACK_URL"})
    run_shares(ctx, channels, [make_post(1, title="@channel #general vote tonight")], dry_run=False)
    [body] = _bodies(httpserver, "/services/T0/B0/x")
    assert body["blocks"][0]["text"]["verbatim"] is True


@pytest.mark.parametrize(
    ("kind", "status", "answer", "variable"),
    [
        ("slack", 403, "invalid_token", "SLACK_URL"),
        ("slack", 404, "no_service", "SLACK_URL"),
        ("discord", 404, {"message": "Unknown Webhook", "code": 10015}, "HOOK_URL"),
        ("discord", 401, {"message": "401: Unauthorized", "code": 0}, "HOOK_URL"),
        (
            "telegram",
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was kicked from the channel chat",
            },
            "TG_TOKEN",
        ),
    ],
)
def test_a_refused_webhook_or_token_stops_the_channel_and_keeps_its_posts(
    env, httpserver, monkeypatch, kind, status, answer, variable
):
    monkeypatch.setenv("SLACK_URL", httpserver.url_for("/services/T0/B0/SECRET"))
    monkeypatch.setenv("HOOK_URL", httpserver.url_for("/api/webhooks/1/SECRET"))
    monkeypatch.setenv("TG_TOKEN", "999:SECRET")
    path = {
        "slack": "/services/T0/B0/SECRET",
        "discord": "/api/webhooks/1/SECRET",
        "telegram": "/bot999:SECRET/sendMessage",
    }[kind]
    if isinstance(answer, str):
        httpserver.expect_request(path).respond_with_data(answer, status=status)
    else:
        httpserver.expect_request(path).respond_with_json(answer, status=status)
    raw = {
        "slack": {"name": "c", "type": "slack", "url_env": "SLACK_URL"},
        "discord": {"name": "c", "type": "discord", "url_env": "HOOK_URL"},
        "telegram": {
            "name": "c",
            "type": "telegram",
            "token_env": "TG_TOKEN",
            "chat_id": "-1001",
            "api_url": httpserver.url_for("/").rstrip("/"),
        },
    }[kind]
    ctx, channels = env.channels(raw)
    posts = [make_post(1), make_post(2)]
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert report.failed == [] and len(report.deferred) == 1 and len(report.skipped) == 1
    assert len(httpserver.log) == 1  # the second post was not tried
    [error] = report.errors
    assert variable in error and "SECRET" not in error and f"({status}" in error
    assert env.ledger.share_row(posts[0].key, "c").status == DeliveryStatus.DEFERRED


def test_discord_forum_channel_gets_a_thread_name(env, httpserver, monkeypatch):
    monkeypatch.setenv("HOOK_URL", httpserver.url_for("/api/webhooks/1/tok"))
    httpserver.expect_request("/api/webhooks/1/tok", method="POST").respond_with_json(
        {"id": "1", "channel_id": "2"}
    )
    ctx, channels = env.channels(
        {"name": "forum", "type": "discord", "url_env": "HOOK_URL", "thread_name": "📰 {title}"}
    )
    post = make_post(1, title="Ferry " + "line " * 40)
    run_shares(ctx, channels, [post], dry_run=False)
    [body] = _bodies(httpserver, "/api/webhooks/1/tok")
    assert body["thread_name"].startswith("📰 Ferry line line") and len(body["thread_name"]) <= 100


def test_three_5xx_say_when_the_share_is_really_retried(env, httpserver, monkeypatch, clock):
    """Deferred for 900 s: the message must not say "retried on the next run" (a run 10
    minutes later does not retry it)."""
    from datetime import timedelta

    monkeypatch.setenv("TG_TOKEN", "1:x")
    httpserver.expect_request("/bot1:x/sendMessage").respond_with_json(
        {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
    )
    ctx, channels = env.channels(
        {
            "name": "tg",
            "type": "telegram",
            "token_env": "TG_TOKEN",
            "chat_id": "-1001",
            "api_url": httpserver.url_for("/").rstrip("/"),
        }
    )
    post = make_post(1)
    report = run_shares(ctx, channels, [post], dry_run=False)
    [item] = report.deferred
    assert "next run" not in item.error and "deferred for 15 minutes" in item.error
    row = env.ledger.share_row(post.key, "tg")
    assert row.not_before - clock[0] == timedelta(seconds=900)
