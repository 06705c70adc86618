"""Amazon SES notifications through SNS: messages signed (SignatureVersion 1 and 2) with
a locally generated key and certificate, served by a local HTTP server that the config
allows in place of https://sns.<region>.amazonaws.com/."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

from distrib import subscribers as subs
from distrib.hooks import _SNS_FIELDS, HookRoutes
from distrib.ledger import open_ledger
from tests.conftest import SmtpServer
from tests.signup.conftest import Service, _start

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"


def _keypair() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


KEY, CERT = _keypair()
OTHER_KEY, _ = _keypair()


def sign(
    msg: dict[str, str], cert_url: str, version: str = "1", key: rsa.RSAPrivateKey = KEY
) -> dict[str, str]:
    msg = msg | {"SignatureVersion": version, "SigningCertURL": cert_url}
    fields = [f for f in _SNS_FIELDS[msg["Type"]] if f in msg]
    signed = "".join(f"{f}\n{msg[f]}\n" for f in fields).encode()
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    return msg | {
        "Signature": base64.b64encode(key.sign(signed, padding.PKCS1v15(), digest)).decode()
    }


def sns_time(ago: dt.timedelta = dt.timedelta(seconds=2)) -> str:
    """A Timestamp as SNS writes it (UTC, milliseconds, "Z"), ``ago`` before now."""
    return (dt.datetime.now(dt.UTC) - ago).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(
    note: dict[str, object], ago: dt.timedelta = dt.timedelta(seconds=2)
) -> dict[str, str]:
    # https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(note),
        "Timestamp": sns_time(ago),
    }


def bounce(address: str, kind: str = "Permanent") -> dict[str, object]:
    # https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "timestamp": "2026-12-01T21:59:00.000Z",
            "feedbackId": "0000-abc",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {"messageId": "0000-def", "source": "news@news.example", "destination": [address]},
    }


def complaint(address: str) -> dict[str, object]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-12-01T21:59:00.000Z",
            "feedbackId": "0000-ghi",
        },
        "mail": {"messageId": "0000-jkl", "source": "news@news.example", "destination": [address]},
    }


@pytest.fixture
def ses(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> Iterator[tuple[Service, HTTPServer]]:
    httpserver.expect_request("/SimpleNotificationService-abc.pem").respond_with_data(
        CERT, content_type="application/x-pem-file"
    )
    prefix = httpserver.url_for("/")
    extra = (
        f'\n[webhooks]\nses = true\nses_topic_arn = "{TOPIC}"\nsns_cert_url_prefix = "{prefix}"\n'
    )
    gen = _start(tmp_path, smtp_server, monkeypatch, extra)
    service = next(gen)
    with open_ledger(service.ledger_path) as led:
        for who in ("v1", "v2", "spam", "soft", "keep"):
            subs.add(led, f"{who}@example.org")
    yield service, httpserver
    gen.close()


def test_signed_bounces_and_complaints_suppress(ses: tuple[Service, HTTPServer]):
    service, http = ses
    cert = http.url_for("/SimpleNotificationService-abc.pem")
    assert (
        service.http.post(
            "/hooks/ses",
            content=json.dumps(sign(notification(bounce("v1@example.org")), cert, "1")),
        ).status_code
        == 200
    )
    assert (
        service.http.post(
            "/hooks/ses",
            content=json.dumps(sign(notification(bounce("v2@example.org")), cert, "2")),
        ).status_code
        == 200
    )
    assert (
        service.http.post(
            "/hooks/ses",
            content=json.dumps(sign(notification(complaint("spam@example.org")), cert)),
        ).status_code
        == 200
    )
    assert (
        service.http.post(
            "/hooks/ses",
            content=json.dumps(sign(notification(bounce("soft@example.org", "Transient")), cert)),
        ).status_code
        == 200
    )
    assert [service.status(f"{w}@example.org") for w in ("v1", "v2", "spam", "soft")] == [
        "bounced",
        "bounced",
        "complained",
        "active",
    ]


def test_forged_unsigned_and_foreign_certificates_are_403(ses: tuple[Service, HTTPServer]):
    service, http = ses
    cert = http.url_for("/SimpleNotificationService-abc.pem")
    good = sign(notification(bounce("keep@example.org")), cert)
    altered = good | {"Message": json.dumps(bounce("v1@example.org"))}
    other_key = sign(notification(bounce("keep@example.org")), cert, key=OTHER_KEY)
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    elsewhere = sign(notification(bounce("keep@example.org")), "https://evil.example/cert.pem")
    wrong_topic = sign(
        notification(bounce("keep@example.org")) | {"TopicArn": TOPIC + "-other"}, cert
    )
    bad_version = good | {"SignatureVersion": "3"}
    for msg in (altered, other_key, unsigned, elsewhere, wrong_topic, bad_version):
        assert service.http.post("/hooks/ses", content=json.dumps(msg)).status_code == 403
    assert service.http.post("/hooks/ses", content=b"{not json").status_code == 403
    assert service.status("keep@example.org") == "active"
    assert service.status("v1@example.org") == "active"


def test_subscription_confirmation_is_followed(ses: tuple[Service, HTTPServer]):
    service, http = ses
    http.expect_request("/confirm-subscription", query_string="Token=t0k").respond_with_data(
        "<ConfirmSubscriptionResponse/>"
    )
    msg = sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": "t0k",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": http.url_for("/confirm-subscription") + "?Token=t0k",
            "Timestamp": sns_time(),
        },
        http.url_for("/SimpleNotificationService-abc.pem"),
    )
    r = service.http.post("/hooks/ses", content=json.dumps(msg))
    assert r.status_code == 200, r.text
    assert any(req.path == "/confirm-subscription" for req, _ in http.log)


def test_old_and_future_timestamps_are_403_and_change_nothing(ses: tuple[Service, HTTPServer]):
    # A signed message replayed after the window (or dated ahead of our clock) is refused,
    # like Mailgun's old signatures: SNS itself retries for about an hour.
    service, http = ses
    cert = http.url_for("/SimpleNotificationService-abc.pem")
    for ago in (
        dt.timedelta(hours=1, minutes=1),
        dt.timedelta(days=3),
        dt.timedelta(minutes=-6),
    ):
        for version in ("1", "2"):
            msg = sign(notification(bounce("v1@example.org"), ago), cert, version)
            r = service.http.post("/hooks/ses", content=json.dumps(msg))
            assert r.status_code == 403, (ago, r.text)
    msg = sign(notification(complaint("v2@example.org"), dt.timedelta(minutes=59)), cert)
    garbled = msg | {"Timestamp": "yesterday"}
    assert service.http.post("/hooks/ses", content=json.dumps(garbled)).status_code == 403
    assert service.status("v1@example.org") == "active"
    with open_ledger(service.ledger_path) as led:
        assert led.consent_record("v1@example.org") == []
    # within the window (and a little ahead, for clock skew) it is handled
    assert service.http.post("/hooks/ses", content=json.dumps(msg)).status_code == 200
    assert service.status("v2@example.org") == "complained"
    ahead = sign(notification(bounce("v1@example.org"), dt.timedelta(minutes=-4)), cert)
    assert service.http.post("/hooks/ses", content=json.dumps(ahead)).status_code == 200
    assert service.status("v1@example.org") == "bounced"


def test_sns_max_age_is_configurable(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
):
    httpserver.expect_request("/SimpleNotificationService-abc.pem").respond_with_data(CERT)
    extra = (
        f'\n[webhooks]\nses = true\nsns_max_age = "10m"\n'
        f'sns_cert_url_prefix = "{httpserver.url_for("/")}"\n'
    )
    gen = _start(tmp_path, smtp_server, monkeypatch, extra)
    service = next(gen)
    try:
        with open_ledger(service.ledger_path) as led:
            subs.add(led, "late@example.org")
        cert = httpserver.url_for("/SimpleNotificationService-abc.pem")
        msg = sign(notification(bounce("late@example.org"), dt.timedelta(minutes=11)), cert)
        assert service.http.post("/hooks/ses", content=json.dumps(msg)).status_code == 403
        assert service.status("late@example.org") == "active"
    finally:
        gen.close()


def test_only_sns_hosts_are_trusted_by_default():
    routes = HookRoutes.__new__(HookRoutes)
    routes.cert_prefix = None
    assert routes._sns_url_ok(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
    )
    for url in (
        "http://sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
        "https://s3.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/x.pem",
    ):
        assert not routes._sns_url_ok(url), url


def test_a_flood_of_forged_messages_does_not_make_serve_fetch_for_each(
    ses: tuple[Service, HTTPServer],
):
    """Each forged message names a certificate URL of its own on an SNS host: serve may
    not fetch every one (an outside caller would turn it into a fetching machine and
    tie up its threads); past a few new URLs a minute it answers 503, which SNS retries."""
    service, http = ses
    cert = http.url_for("/SimpleNotificationService-abc.pem")
    ok = sign(notification(bounce("v1@example.org")), cert)
    assert service.http.post("/hooks/ses", content=json.dumps(ok)).status_code == 200
    answers = []
    for i in range(40):
        forged = sign(
            notification(bounce("keep@example.org")),
            http.url_for(f"/SimpleNotificationService-{i:032x}.pem"),
            key=OTHER_KEY,
        )
        answers.append(service.http.post("/hooks/ses", content=json.dumps(forged)).status_code)
    assert set(answers) <= {403, 503}, answers
    assert len(http.log) <= 1 + 10, len(http.log)
    assert service.status("keep@example.org") == "active"
    # The known certificate still verifies at once.
    again = sign(notification(bounce("v2@example.org")), cert)
    assert service.http.post("/hooks/ses", content=json.dumps(again)).status_code == 200
    assert service.status("v2@example.org") == "bounced"
