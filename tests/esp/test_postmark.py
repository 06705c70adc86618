"""Postmark against a local server answering like POST /email/batch."""

from __future__ import annotations

import json
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.errors import DeliveryError
from distrib.model import DeliveryStatus

from .conftest import Run, people


@pytest.fixture
def env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POSTMARK_TOKEN", "pm-server-token")
    return make_env(
        "postmark",
        {"token_env": "POSTMARK_TOKEN", "base_url": httpserver.url_for(""), "batch_size": 2},
    )


def answer_batch(codes: dict[str, int]):
    """A /email/batch handler: per-message ErrorCode by address (0 when not listed)."""

    def handler(request: Request) -> Response:
        out = []
        for item in request.get_json():
            address = item["To"].rpartition("<")[2].rstrip(">")
            code = codes.get(address, 0)
            if code == 0:
                out.append(
                    {
                        "ErrorCode": 0,
                        "Message": "OK",
                        "MessageID": f"pm-{address}",
                        "To": item["To"],
                        "SubmittedAt": "2026-11-20T09:30:00.0000000-05:00",
                    }
                )
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
        {"ErrorCode": 429, "Message": "Rate limit exceeded"},
        status=429,
        headers={"Retry-After": "120"},
    )
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(5))
    assert len(run.pulled) == 2  # one batch pulled, the other three left for the next run
    assert all(
        o.status is DeliveryStatus.DEFERRED and o.retry_after == 120 for _, o in run.reported
    )
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
        {
            "ErrorCode": 10,
            "Message": "No Account or Server API tokens were supplied in the HTTP headers.",
        },
        status=401,
    )
    run = Run(window=2)
    with pytest.raises(
        DeliveryError, match="postmark: the server token was refused .*POSTMARK_TOKEN"
    ):
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


# --- answers as Postmark's error-code table gives them -------------------------------


def test_account_may_not_send_stops_the_edition_and_the_next_run_resumes(
    env, httpserver: HTTPServer
) -> None:
    from distrib.deliver import deliver_edition

    readers = people(5)
    may_not_send = {r.email: 413 for r in readers}
    httpserver.expect_ordered_request("/email/batch").respond_with_handler(
        answer_batch(may_not_send)
    )
    first = deliver_edition(env.ledger, env.mailer(), env.message, readers)
    assert (first.sent, first.failed, first.finished) == (0, 0, False)
    [error] = first.errors
    assert error.startswith(
        "postmark: ErrorCode 413: code 413 for reader0@example.org; the account may not send"
    )
    assert len(httpserver.log) == 1  # stopped after the first such answer
    assert env.ledger.db.execute("SELECT count(*) FROM email_deliveries").fetchone()[0] == 0

    httpserver.expect_ordered_request("/email/batch").respond_with_handler(answer_batch({}))
    httpserver.expect_ordered_request("/email/batch").respond_with_handler(answer_batch({}))
    httpserver.expect_ordered_request("/email/batch").respond_with_handler(answer_batch({}))
    second = deliver_edition(env.ledger, env.mailer(), env.message, readers)
    assert (second.sent, second.failed, second.finished) == (5, 0, True)


@pytest.mark.parametrize("code", [505, 510, 1235])
def test_api_codes_of_500_and_above_are_setup_problems_not_server_faults(
    env, httpserver, code
) -> None:
    httpserver.expect_request("/email/batch").respond_with_handler(
        answer_batch({"reader0@example.org": code, "reader1@example.org": code})
    )
    run = Run(window=2)
    with pytest.raises(DeliveryError, match=f"postmark: ErrorCode {code}: "):
        run.deliver(env.mailer(), env.message, people(4))
    assert len(run.pulled) == 2
    assert all(o.status is DeliveryStatus.DEFERRED and o.release for _, o in run.reported)


def test_code_300_fails_one_recipient_but_a_from_that_is_not_a_sender_stops(
    env, httpserver
) -> None:
    def handler(request: Request) -> Response:
        out = []
        for item in request.get_json():
            if "reader1@" in item["To"]:
                out.append(
                    {"ErrorCode": 300, "Message": "Invalid 'To' address: 'reader1@example.org'."}
                )
            else:
                out.append({"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1", "To": item["To"]})
        return Response(json.dumps(out), 200, content_type="application/json")

    httpserver.expect_request("/email/batch").respond_with_handler(handler)
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(2))
    assert run.outcome("reader1@example.org").status is DeliveryStatus.FAILED
    assert run.outcome("reader0@example.org").status is DeliveryStatus.SENT


def test_whole_request_refused_for_the_from_stops_with_the_fix(env, httpserver) -> None:
    httpserver.expect_request("/email/batch").respond_with_json(
        {
            "ErrorCode": 300,
            "Message": "Invalid 'From' address: 'news@news.example' is not a verified sender signature.",
        },
        status=422,
    )
    run = Run(window=2)
    with pytest.raises(
        DeliveryError, match="not a verified sender signature: verify it in Postmark"
    ):
        run.deliver(env.mailer(), env.message, people(3))
    assert all(o.release for _, o in run.reported)


class SlowPostmark:
    """Takes the batch (keeps its messages in the outbound log), then answers late;
    /messages/outbound searches that log as Postmark's message search does."""

    def __init__(self, delay: float, log_visible: bool = True) -> None:
        self.delay = delay
        self.log_visible = log_visible
        self.posts = 0
        self.outbound: list[dict] = []
        self.idle = threading.Event()

    def batch(self, request: Request) -> Response:
        self.posts += 1
        for n, item in enumerate(request.get_json()):
            address = item["To"].rpartition("<")[2].rstrip(">")
            self.outbound.append(
                {
                    "MessageID": f"pm-{self.posts}-{n}",
                    "Recipients": [address],
                    "To": [{"Email": address, "Name": None}],
                    "Status": "Sent",
                    "Metadata": item.get("Metadata", {}),
                    "Subject": item["Subject"],
                }
            )
        time.sleep(self.delay)
        self.idle.set()
        return Response("[]", 200, content_type="application/json")

    def search(self, request: Request) -> Response:
        assert request.headers["X-Postmark-Server-Token"] == "pm-server-token"
        assert int(request.args["count"]) <= 500 and "offset" in request.args
        found = [
            m
            for m in self.outbound
            if self.log_visible
            and request.args.get("recipient", "").lower() in [a.lower() for a in m["Recipients"]]
            and all(
                m["Metadata"].get(k[len("metadata_") :]) == v
                for k, v in request.args.items()
                if k.startswith("metadata_")
            )
        ]
        return Response(
            json.dumps({"TotalCount": len(found), "Messages": found}),
            200,
            content_type="application/json",
        )


@pytest.mark.parametrize("visible", [True, False])
def test_a_batch_without_answer_is_reconciled_never_resent(
    make_env, threaded_server, monkeypatch, visible
) -> None:
    httpserver = threaded_server
    from distrib.mailers import postmark

    monkeypatch.setattr(postmark.PostmarkMailer, "sleep", staticmethod(lambda s: None))
    monkeypatch.setenv("POSTMARK_TOKEN", "pm-server-token")
    env = make_env(
        "postmark",
        {
            "token_env": "POSTMARK_TOKEN",
            "base_url": httpserver.url_for(""),
            "batch_size": 3,
            "timeout": 1,
        },
    )
    fake = SlowPostmark(delay=2.5, log_visible=visible)
    httpserver.expect_request("/email/batch", method="POST").respond_with_handler(fake.batch)
    httpserver.expect_request("/messages/outbound", method="GET").respond_with_handler(fake.search)
    run = Run(window=3)
    run.deliver(env.mailer(), env.message, people(3))
    fake.idle.wait(10)
    assert fake.posts == 1  # today's code sent the whole batch again
    if visible:
        assert [o.status for _, o in run.reported] == [DeliveryStatus.SENT] * 3
        assert run.outcome("reader2@example.org").remote_id == "pm-1-2"
    else:
        assert [o.status for _, o in run.reported] == [DeliveryStatus.IN_DOUBT] * 3
        assert len(run.pulled) == 3  # and nothing more is pulled after a batch in doubt


def test_batches_are_split_to_fit_50_mb_of_the_bytes_sent(
    make_env, httpserver, monkeypatch, ledger
) -> None:
    from datetime import UTC, datetime

    from distrib.mailers import postmark
    from distrib.render.message import prepare_message

    from .conftest import TEXT

    monkeypatch.setenv("POSTMARK_TOKEN", "pm-server-token")
    env = make_env(
        "postmark",
        {"token_env": "POSTMARK_TOKEN", "base_url": httpserver.url_for(""), "batch_size": 500},
    )
    # A CJK digest full of quoted attributes: its JSON (each '"' escaped, the headers,
    # the per-recipient links) is bigger than its UTF-8 size, which is all an estimate sees.
    html = (
        "<!doctype html><html><body>"
        + ('<p class="x" title="潮汐" data-a="1" data-b="2">潮汐表と"港"の記録</p>\n' * 400)
        + '<a href="XDISTRIBUNSUBSCRIBEURLX">解除</a></body></html>'
    )
    edition = ledger.create_edition("digest", ["post-2"], "潮汐表", "潮汐", html, TEXT)
    message = prepare_message(
        env.settings, edition, key=b"k", date=datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    )
    # The limit lets an estimate from the UTF-8 bodies put two messages in a request.
    estimate = len(message.html.encode()) + len(message.text.encode()) + 2048
    limit = 2 * estimate + 100
    monkeypatch.setattr(postmark, "MAX_BATCH_BYTES", limit)
    sizes: list[int] = []

    def handler(request: Request) -> Response:
        sizes.append(len(request.get_data()))
        if sizes[-1] > limit:  # as Postmark refuses a request over its limit
            return Response(
                json.dumps({"ErrorCode": 300, "Message": "Request too large"}),
                422,
                content_type="application/json",
            )
        return answer_batch({})(request)

    httpserver.expect_request("/email/batch").respond_with_handler(handler)
    run = Run(window=500)
    run.deliver(env.mailer(), message, people(6))
    assert all(size <= limit for size in sizes), (sizes, limit)
    assert len(sizes) > 1
    assert [o.status for _, o in run.reported] == [DeliveryStatus.SENT] * 6
