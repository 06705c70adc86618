"""Postmark against a local server answering like POST /email/batch."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.errors import DeliveryError
from distrib.model import DeliveryStatus

from .conftest import Run, people


@pytest.fixture
def env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POSTMARK_TOKEN", "pm-server-token")
    return make_env("postmark", {"token_env": "POSTMARK_TOKEN", "base_url": httpserver.url_for(""), "batch_size": 2})


def answer_batch(codes: dict[str, int]):
    """A /email/batch handler: per-message ErrorCode by address (0 when not listed)."""

    def handler(request: Request) -> Response:
        out = []
        for item in request.get_json():
            address = item["To"].rpartition("<")[2].rstrip(">")
            code = codes.get(address, 0)
            if code == 0:
                out.append({"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{address}", "To": item["To"],
                            "SubmittedAt": "2026-11-20T09:30:00.0000000-05:00"})
            else:
                out.append({"ErrorCode": code, "Message": f"code {code} for {address}"})
        return Response(json.dumps(out), 200, content_type="application/json")

    return handler


def test_batches_with_per_message_outcomes(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/email/batch", method="POST").respond_with_handler(
        answer_batch({"reader1@example.org": 406, "reader2@example.org": 300})
    )
    recipients = people(3)
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, recipients)

    assert run.outcome("reader0@example.org").status is DeliveryStatus.SENT
    assert run.outcome("reader0@example.org").remote_id == "pm-reader0@example.org"
    bounced = run.outcome("reader1@example.org")
    assert (bounced.status, bounced.bounce) == (DeliveryStatus.FAILED, True)
    invalid = run.outcome("reader2@example.org")
    assert (invalid.status, invalid.bounce) == (DeliveryStatus.FAILED, False)

    requests = [req for req, _ in httpserver.log]
    assert [len(r.get_json()) for r in requests] == [2, 1]
    first = requests[0]
    assert first.headers["X-Postmark-Server-Token"] == "pm-server-token"
    assert first.headers["Content-Type"] == "application/json"
    item = first.get_json()[0]
    r0 = recipients[0]
    assert item == {
        "From": '"Harbour Notes" <news@news.example>',
        "To": '"Reader 0" <reader0@example.org>',
        "Subject": "Harbour Notes: the tide tables",
        "HtmlBody": env.message.html_for(r0),
        "TextBody": env.message.text_for(r0),
        "Headers": [
            {"Name": "List-Unsubscribe", "Value": f"<{env.message.unsubscribe_url(r0)}>"},
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        ],
        "MessageStream": "broadcast",
        "TrackOpens": False,
        "TrackLinks": "None",
        "Metadata": {"distrib-edition": str(env.message.edition_id)},
        "ReplyTo": "Desk <desk@news.example>",
    }
    assert "token=" in item["HtmlBody"] and "reader0@example.org" in item["TextBody"]


def test_throttled_batch_is_deferred_and_the_rest_waits(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/email/batch").respond_with_json(
        {"ErrorCode": 429, "Message": "Rate limit exceeded"}, status=429, headers={"Retry-After": "120"}
    )
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(5))
    assert len(run.pulled) == 2  # one batch pulled, the other three left for the next run
    assert all(o.status is DeliveryStatus.DEFERRED and o.retry_after == 120 for _, o in run.reported)
    assert len(httpserver.log) == 1  # a long Retry-After is not waited for


def test_server_error_is_retried_within_the_run(env, httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/email/batch").respond_with_json(
        {"ErrorCode": 500, "Message": "oops"}, status=503, headers={"Retry-After": "0"}
    )
    httpserver.expect_ordered_request("/email/batch").respond_with_handler(answer_batch({}))
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(1))
    assert run.outcome("reader0@example.org").status is DeliveryStatus.SENT
    assert len(httpserver.log) == 2


def test_refused_token_stops_the_send(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/email/batch").respond_with_json(
        {"ErrorCode": 10, "Message": "No Account or Server API tokens were supplied in the HTTP headers."}, status=401
    )
    run = Run(window=2)
    with pytest.raises(DeliveryError, match="postmark: the server token was refused .*POSTMARK_TOKEN"):
        run.deliver(env.mailer(), env.message, people(4))
    assert len(run.pulled) == 2
    assert all(o.status is DeliveryStatus.DEFERRED for _, o in run.reported)
    assert "pm-server-token" not in str(run.reported)


def test_unconfirmed_sender_defers_and_stops(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/email/batch").respond_with_handler(
        answer_batch({"reader0@example.org": 400, "reader1@example.org": 400})
    )
    run = Run(window=2)
    with pytest.raises(DeliveryError, match="ErrorCode 400: .*not a sender signature in Postmark"):
        run.deliver(env.mailer(), env.message, people(3))
    assert len(run.pulled) == 2
    assert all(o.status is DeliveryStatus.DEFERRED for _, o in run.reported)
