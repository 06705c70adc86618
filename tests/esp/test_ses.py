"""Amazon SES v2 against moto running as a real server on 127.0.0.1 (an unverified
From really answers MessageRejected there) and, for answers moto does not give
(throttling, refused keys, a read timeout), a local server answering like the SES
API's documented errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.deliver import deliver_edition
from distrib.errors import DeliveryError
from distrib.model import DeliveryStatus, Recipient

from .conftest import Run, people

pytest.importorskip("boto3", reason="pip install 'distrib[ses]'")
pytest.importorskip("flask", reason="moto's server needs flask: pip install 'moto[server]'")


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto_url() -> Iterator[str]:
    """moto's SES as an HTTP server on 127.0.0.1 (a free port), reset and stopped after."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url
    finally:
        import httpx

        httpx.post(f"{url}/moto-api/reset")
        server.stop()


def ses_client(url: str):
    import boto3

    return boto3.client("sesv2", region_name="eu-west-1", endpoint_url=url)


def sent_raw() -> list:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages


def test_sends_our_bytes_unchanged(moto_url, make_env) -> None:
    ses_client(moto_url).create_email_identity(EmailIdentity="news@news.example")
    env = make_env("ses", {"region": "eu-west-1", "rate": 0, "endpoint_url": moto_url})
    recipients = people(5)
    run = Run(window=4)
    run.deliver(env.mailer(), env.message, recipients)
    assert all(o.status is DeliveryStatus.SENT and o.remote_id for _, o in run.reported)
    messages = {m.destinations[0]: m for m in sent_raw()}
    for r in recipients:
        m = messages[r.email]
        assert m.source == "news@news.example"
        assert m.raw_data.encode("utf-8") == env.message.for_recipient(r)


def test_unverified_sender_stops_the_send_and_the_next_run_resumes(moto_url, make_env) -> None:
    # Today's wrong behaviour was: 20 permanent failures, and 0 of 20 sent after the fix.
    env = make_env(
        "ses", {"region": "eu-west-1", "rate": 0, "connections": 2, "endpoint_url": moto_url}
    )
    readers = people(20)
    first = deliver_edition(env.ledger, env.mailer(), env.message, readers)
    assert first.failed == 0 and first.sent == 0
    assert not first.finished
    [error] = first.errors
    assert "\n" not in error
    assert error.startswith(
        "ses: SES refused the From address news@news.example (MessageRejected: "
    )
    assert "verify it or its domain in SES in eu-west-1" in error
    # Every reader is still pending: none is failed, deferred or counted as an attempt.
    assert env.ledger.db.execute("SELECT count(*) FROM email_deliveries").fetchone()[0] == 0
    assert sent_raw() == []

    ses_client(moto_url).create_email_identity(EmailIdentity="news@news.example")
    second = deliver_edition(env.ledger, env.mailer(), env.message, readers)
    assert (second.sent, second.failed, second.finished) == (20, 0, True)
    assert sorted(m.destinations[0] for m in sent_raw()) == sorted(r.email for r in readers)


def test_throttling_defers_and_stops_pulling(make_env, httpserver: HTTPServer) -> None:
    # SES v2 is a REST-JSON API: the error code travels in x-amzn-ErrorType.
    httpserver.expect_request("/v2/email/outbound-emails", method="POST").respond_with_json(
        {"message": "Maximum sending rate exceeded."},
        status=429,
        headers={"x-amzn-ErrorType": "TooManyRequestsException"},
    )
    env = make_env(
        "ses",
        {
            "region": "eu-west-1",
            "endpoint_url": httpserver.url_for(""),
            "retries": 0,
            "connections": 2,
            "rate": 0,
        },
    )
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(6))
    assert len(run.pulled) == 2
    for _, outcome in run.reported:
        assert outcome.status is DeliveryStatus.DEFERRED
        assert outcome.error == "ses TooManyRequestsException: Maximum sending rate exceeded."
    body = httpserver.log[0][0].get_json()
    assert body["Destination"] == {"ToAddresses": ["reader0@example.org"]} or body[
        "Destination"
    ] == {"ToAddresses": ["reader1@example.org"]}
    assert body["FromEmailAddress"] == "news@news.example"
    assert "Raw" in body["Content"]


def test_refused_credentials_stop_the_send(make_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/email/outbound-emails").respond_with_json(
        {"message": "The security token included in the request is invalid."},
        status=403,
        headers={"x-amzn-ErrorType": "UnrecognizedClientException"},
    )
    env = make_env(
        "ses",
        {"region": "eu-west-1", "endpoint_url": httpserver.url_for(""), "retries": 0, "rate": 0},
    )
    run = Run(window=4)
    with pytest.raises(DeliveryError, match="ses: the AWS access key was refused"):
        run.deliver(env.mailer(), env.message, [Recipient("a@example.org")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED
    assert run.reported[0][1].release


def test_paused_account_stops_the_send(make_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/email/outbound-emails").respond_with_json(
        {"message": "Sending is paused for this account."},
        status=400,
        headers={"x-amzn-ErrorType": "SendingPausedException"},
    )
    env = make_env(
        "ses", {"region": "eu-west-1", "endpoint_url": httpserver.url_for(""), "rate": 0}
    )
    readers = people(6)
    report = deliver_edition(env.ledger, env.mailer(), env.message, readers)
    assert report.failed == 0 and len(httpserver.log) <= 4
    assert report.errors == [
        "ses: sending is paused for the SES account or its configuration set: "
        "see the SES console; check the AWS credentials, region and [email.ses]"
    ]
    assert env.ledger.db.execute("SELECT count(*) FROM email_deliveries").fetchone()[0] == 0


class SlowAccept:
    """Takes the message (counts it), then answers after the client gave up."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = 0
        self.lock = threading.Lock()
        self.idle = threading.Event()  # the (one-threaded) server is free again

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.requests += 1
        time.sleep(self.delay)
        self.idle.set()
        return Response('{"MessageId": "late"}', 200, content_type="application/json")


@pytest.mark.parametrize("resend", [False, True])
def test_read_timeout_is_in_doubt_and_never_retried(
    make_env, httpserver: HTTPServer, resend: bool
) -> None:
    slow = SlowAccept(delay=2.5)
    httpserver.expect_request("/v2/email/outbound-emails").respond_with_handler(slow)
    env = make_env(
        "ses",
        {
            "region": "eu-west-1",
            "endpoint_url": httpserver.url_for(""),
            "rate": 0,
            "timeout": 1,
            "connections": 1,
        },
        resend_in_doubt=resend,
    )
    report = deliver_edition(env.ledger, env.mailer(), env.message, [Recipient("a@example.org")])
    slow.idle.wait(10)
    assert slow.requests == 1  # botocore's standard retry mode would have sent it 3 times
    status = env.ledger.email_status(env.message.edition_id, "a@example.org")
    if resend:
        assert (status, report.deferred) == ("deferred", 1)
    else:
        assert (status, report.in_doubt, report.failed) == ("in_doubt", 1, 0)


def test_internal_failure_is_in_doubt(make_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/email/outbound-emails").respond_with_json(
        {"message": "Internal failure."},
        status=500,
        headers={"x-amzn-ErrorType": "InternalFailure"},
    )
    env = make_env(
        "ses", {"region": "eu-west-1", "endpoint_url": httpserver.url_for(""), "rate": 0}
    )
    run = Run(window=4)
    run.deliver(env.mailer(), env.message, [Recipient("a@example.org")])
    assert run.reported[0][1].status is DeliveryStatus.IN_DOUBT
    assert len(httpserver.log) == 1
