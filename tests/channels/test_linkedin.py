"""LinkedIn's Posts API against a fake endpoint on 127.0.0.1 shaped like its docs."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from distrib.channels.linkedin import DEFAULT_VERSION, little_text
from distrib.share import run_shares
from tests.channels.conftest import make_post


def test_little_text_escapes_reserved_characters_and_keeps_hashtags():
    assert little_text("Fares (up) & *bold* @ama [x] <y> a_b ~c | {d} \\e") == (
        "Fares \\(up\\) & \\*bold\\* \\@ama \\[x\\] \\<y\\> a\\_b \\~c \\| \\{d\\} \\\\e"
    )
    assert (
        little_text("#Ferries and #Порт_2 now")
        == "{hashtag|\\#|Ferries} and {hashtag|\\#|Порт\\_2} now"
    )


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
    # Not 202510, which LinkedIn stopped serving on 15 October 2026 (issue 10).
    assert req.headers["LinkedIn-Version"] == DEFAULT_VERSION
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
        {"status": 422, "message": "Content is a duplicate of urn:li:share:7265000000000000009"},
        status=422,
    )
    ctx, channels = linkedin()
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert [i.remote_id for i in report.sent] == ["urn:li:share:7265000000000000009"]


# --- versions and auth (issue 10) ------------------------------------------------------


def test_the_default_version_is_served_today_and_not_near_its_sunset():
    """The real clock on purpose: when the default nears its sunset, this fails and the
    default must move on (the old default, 202510, failed every post after 15 Oct 2026)."""
    from datetime import UTC, datetime

    from distrib.channels.linkedin import sunset, version_warning

    today = datetime.now(UTC).date()
    assert sunset(DEFAULT_VERSION) > today
    assert version_warning(DEFAULT_VERSION, today) is None


def test_version_warnings_for_an_injected_date():
    from datetime import date

    from distrib.channels.linkedin import version_warning

    assert version_warning("202603", date(2026, 12, 1)) is None
    near = version_warning("202603", date(2027, 2, 1))
    assert near and "16 March 2027" in near and "43 days" in near and 'set version = "' in near
    gone = version_warning("202510", date(2026, 12, 1))
    assert gone and "stopped serving version 202510 on 15 October 2026" in gone
    assert version_warning("2025-10", date(2026, 12, 1)).startswith(
        "version '2025-10' is not a LinkedIn-Version"
    )


def test_426_nonexistent_version_stops_the_channel_and_names_the_version_to_set(
    env, linkedin, httpserver
):
    httpserver.expect_request("/rest/posts", method="POST").respond_with_json(
        {
            "status": 426,
            "code": "NONEXISTENT_VERSION",
            "message": "Requested version 20251001 is not active",
        },
        status=426,
    )
    ctx, channels = linkedin(version="202510")
    posts = [make_post(1), make_post(2)]
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert report.failed == [] and len(report.deferred) == 1 and len(report.skipped) == 1
    assert sum(1 for r, _ in httpserver.log if r.path == "/rest/posts") == 1
    [error] = report.errors
    assert (
        "no longer serves version 202510 (426 NONEXISTENT_VERSION)" in error
        and 'set version = "' in error
    )
    assert env.ledger.share_row(posts[0].key, "li").status == "deferred"


def test_an_expired_token_stops_the_channel_and_says_which_secret(env, linkedin, httpserver):
    httpserver.expect_request("/rest/posts", method="POST").respond_with_json(
        {
            "serviceErrorCode": 65601,
            "message": "The token used in the request has been revoked by the user",
            "status": 401,
        },
        status=401,
    )
    ctx, channels = linkedin()
    report = run_shares(ctx, channels, [make_post(1), make_post(2), make_post(3)], dry_run=False)
    assert report.failed == [] and len(report.deferred) == 1 and len(report.skipped) == 2
    assert "LI_TOKEN" in report.errors[0] and "60 days" in report.errors[0]
    assert "li-token" not in report.errors[0]


def test_check_warns_about_a_version_near_its_sunset(make_config, clock, monkeypatch):
    from datetime import UTC, datetime

    from distrib.app import App
    from distrib.check import run_checks
    from distrib.config import load_config

    monkeypatch.setenv("LI_TOKEN", "x")
    path = make_config(
        """
        [[channels]]
        name = "li"
        type = "linkedin"
        token_env = "LI_TOKEN"
        author = "urn:li:organization:5515715"
        version = "202603"
        """
    )
    clock[0] = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)  # the injected date
    problems, notes = run_checks(App(load_config(path)))
    assert problems == []
    assert [
        n
        for n in notes
        if n.startswith("warning: channel li: LinkedIn stops serving version 202603")
    ]
    clock[0] = datetime(2027, 4, 1, 9, 0, tzinfo=UTC)
    problems, _ = run_checks(App(load_config(path)))
    assert [p for p in problems if "stopped serving version 202603" in p]
