"""Amazon SES v2 against moto (raw MIME, our bytes unchanged) and, for throttling, a
local server answering like the SES API's documented errors."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from distrib.errors import DeliveryError
from distrib.model import DeliveryStatus, Recipient

from .conftest import Run, people

pytest.importorskip("boto3", reason="pip install 'distrib[ses]'")


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
def aws():
    from moto import mock_aws

    with mock_aws():
        yield


def sent_raw() -> list:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages


def test_sends_our_bytes_unchanged(aws, make_env) -> None:
    import boto3

    boto3.client("sesv2", region_name="eu-west-1").create_email_identity(EmailIdentity="news@news.example")
    env = make_env("ses", {"region": "eu-west-1", "rate": 0})
    recipients = people(5)
    run = Run(window=4)
    run.deliver(env.mailer(), env.message, recipients)
    assert all(o.status is DeliveryStatus.SENT and o.remote_id for _, o in run.reported)
    messages = {m.destinations[0]: m for m in sent_raw()}
    for r in recipients:
        m = messages[r.email]
        assert m.source == "news@news.example"
        assert m.raw_data.encode("utf-8") == env.message.for_recipient(r)


def test_unverified_sender_is_rejected_per_message(aws, make_env) -> None:
    env = make_env("ses", {"region": "eu-west-1", "rate": 0, "connections": 2})
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(3))
    for _, outcome in run.reported:
        assert outcome.status is DeliveryStatus.FAILED
        assert outcome.error.startswith("ses MessageRejected: Did not have authority")


def test_throttling_defers_and_stops_pulling(make_env, httpserver: HTTPServer) -> None:
    # SES v2 is a REST-JSON API: the error code travels in x-amzn-ErrorType.
    httpserver.expect_request("/v2/email/outbound-emails", method="POST").respond_with_json(
        {"message": "Maximum sending rate exceeded."}, status=429,
        headers={"x-amzn-ErrorType": "TooManyRequestsException"},
    )
    env = make_env("ses", {"region": "eu-west-1", "endpoint_url": httpserver.url_for(""), "retries": 0,
                           "connections": 2, "rate": 0})
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(6))
    assert len(run.pulled) == 2
    for _, outcome in run.reported:
        assert outcome.status is DeliveryStatus.DEFERRED
        assert outcome.error == "ses TooManyRequestsException: Maximum sending rate exceeded."
    body = httpserver.log[0][0].get_json()
    assert body["Destination"] == {"ToAddresses": ["reader0@example.org"]} or body["Destination"] == {
        "ToAddresses": ["reader1@example.org"]
    }
    assert body["FromEmailAddress"] == "news@news.example"
    assert "Raw" in body["Content"]


def test_refused_credentials_stop_the_send(make_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/email/outbound-emails").respond_with_json(
        {"message": "The security token included in the request is invalid."}, status=403,
        headers={"x-amzn-ErrorType": "UnrecognizedClientException"},
    )
    env = make_env("ses", {"region": "eu-west-1", "endpoint_url": httpserver.url_for(""), "retries": 0, "rate": 0})
    run = Run(window=4)
    with pytest.raises(DeliveryError, match="ses: the AWS access key was refused"):
        run.deliver(env.mailer(), env.message, [Recipient("a@example.org")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED
