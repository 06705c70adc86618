"""Bounce and complaint webhooks: payloads shaped as Postmark's and Mailgun's documents
show them, sent to a real `distrib serve`; the ledger is checked after each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distrib import subscribers as subs
from distrib.ledger import open_ledger
from tests.conftest import SmtpServer
from tests.serve.conftest import free_port
from tests.signup.conftest import SECRET, Service, _config, _start

POSTMARK_AUTH = "distrib:pm-hook-password"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
HOOKS = """
[webhooks]
postmark_auth_env = "DISTRIB_PM_AUTH"
mailgun_key_env = "DISTRIB_MG_KEY"
soft_bounces = 3
"""


@pytest.fixture
def hooked(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    monkeypatch.setenv("DISTRIB_PM_AUTH", POSTMARK_AUTH)
    monkeypatch.setenv("DISTRIB_MG_KEY", MAILGUN_KEY)
    gen = _start(tmp_path, smtp_server, monkeypatch, HOOKS)
    service = next(gen)
    with open_ledger(service.ledger_path) as led:
        for who in ("hard", "soft", "spam", "mg", "mgspam", "keep"):
            subs.add(led, f"{who}@example.org")
    yield service
    gen.close()


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def postmark_bounce(address: str, kind: str = "HardBounce") -> dict[str, object]:
    # https://postmarkapp.com/developer/webhooks/bounce-webhook
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": address,
        "From": "news@news.example",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Test subject",
        "Content": "",
        "Metadata": {},
    }


def postmark_complaint(address: str) -> dict[str, object]:
    # https://postmarkapp.com/developer/webhooks/spam-complaint-webhook
    return postmark_bounce(address, "SpamComplaint") | {
        "RecordType": "SpamComplaint",
        "TypeCode": 512,
    }


def mailgun(
    address: str,
    event: str = "failed",
    severity: str = "permanent",
    *,
    key: str = MAILGUN_KEY,
    timestamp: int | None = None,
    token: str | None = None,
) -> dict[str, object]:
    # https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#securing-webhooks
    ts = str(int(time.time()) if timestamp is None else timestamp)
    tok = token or secrets.token_hex(25)
    sig = hmac.new(key.encode(), (ts + tok).encode(), hashlib.sha256).hexdigest()
    data: dict[str, object] = {
        "event": event,
        "recipient": address,
        "timestamp": float(ts),
        "id": "Ase7i2zsRYeDXztHGENqRA",
    }
    if event == "failed":
        data |= {
            "severity": severity,
            "reason": "bounce" if severity == "permanent" else "generic",
            "delivery-status": {
                "code": 550 if severity == "permanent" else 452,
                "message": "5.1.1 The email account that you tried to reach does not exist",
                "description": "",
            },
        }
    return {"signature": {"timestamp": ts, "token": tok, "signature": sig}, "event-data": data}


def test_postmark_hard_bounce_and_complaint_suppress_at_once(hooked: Service):
    r = hooked.http.post(
        "/hooks/postmark", json=postmark_bounce("hard@example.org"), headers=_basic(POSTMARK_AUTH)
    )
    assert r.status_code == 200
    assert hooked.status("hard@example.org") == "bounced"
    r = hooked.http.post(
        "/hooks/postmark",
        json=postmark_complaint("Spam@Example.org"),
        headers=_basic(POSTMARK_AUTH),
    )
    assert r.status_code == 200
    assert hooked.status("spam@example.org") == "complained"
    with open_ledger(hooked.ledger_path) as led:
        events = [(e["event"], e["how"]) for e in led.consent_record("spam@example.org")]
    assert events == [("complained", "postmark")]


def test_soft_bounces_suppress_after_n_in_a_row(hooked: Service):
    for _ in range(2):
        hooked.http.post(
            "/hooks/postmark",
            json=postmark_bounce("soft@example.org", "SoftBounce"),
            headers=_basic(POSTMARK_AUTH),
        )
    assert hooked.status("soft@example.org") == "active"
    hooked.http.post(
        "/hooks/postmark",
        json={"RecordType": "Delivery", "Email": "soft@example.org"},
        headers=_basic(POSTMARK_AUTH),
    )
    for _ in range(2):
        hooked.http.post(
            "/hooks/postmark",
            json=postmark_bounce("soft@example.org", "SoftBounce"),
            headers=_basic(POSTMARK_AUTH),
        )
    assert hooked.status("soft@example.org") == "active"  # a delivery broke the row
    hooked.http.post(
        "/hooks/postmark",
        json=postmark_bounce("soft@example.org", "SoftBounce"),
        headers=_basic(POSTMARK_AUTH),
    )
    assert hooked.status("soft@example.org") == "bounced"


def test_forged_or_unsigned_postmark_calls_are_403_and_change_nothing(hooked: Service):
    for headers in (
        {},
        _basic("distrib:wrong"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer x"},
    ):
        r = hooked.http.post(
            "/hooks/postmark", json=postmark_bounce("keep@example.org"), headers=headers
        )
        assert r.status_code == 403
    assert hooked.status("keep@example.org") == "active"


def test_mailgun_signed_events_and_refused_forgeries_and_replays(hooked: Service):
    good = mailgun("mg@example.org")
    assert hooked.http.post("/hooks/mailgun", json=good).status_code == 200
    assert hooked.status("mg@example.org") == "bounced"
    assert (
        hooked.http.post(
            "/hooks/mailgun", json=mailgun("mgspam@example.org", "complained")
        ).status_code
        == 200
    )
    assert hooked.status("mgspam@example.org") == "complained"
    refused = [
        good
        | {
            "event-data": good["event-data"] | {"recipient": "keep@example.org"}
        },  # replay of a seen token
        mailgun("keep@example.org", key="not-the-key"),  # forged
        mailgun("keep@example.org", timestamp=int(time.time()) - 301),  # older than 5 minutes
        {
            "event-data": {
                "event": "failed",
                "severity": "permanent",
                "recipient": "keep@example.org",
            }
        },  # unsigned
    ]
    for body in refused:
        assert hooked.http.post("/hooks/mailgun", json=body).status_code == 403
    assert hooked.http.post("/hooks/mailgun", content=b"not json").status_code == 403
    assert hooked.status("keep@example.org") == "active"
    with open_ledger(hooked.ledger_path) as led:
        assert led.consent_record("keep@example.org") == []


def test_hooks_without_a_secret_configured_do_not_exist(service: Service):
    r = service.http.post(
        "/hooks/postmark", json=postmark_bounce("x@example.org"), headers=_basic(POSTMARK_AUTH)
    )
    assert r.status_code == 404


def test_a_kill_right_after_the_200_loses_no_suppression(tmp_path: Path, smtp_server: SmtpServer):
    config = _config(tmp_path, smtp_server, HOOKS)
    env = {k: v for k, v in os.environ.items() if k != "DISTRIB_CONFIG"}
    env |= {
        "DISTRIB_SIGNUP_SECRET": SECRET,
        "DISTRIB_PM_AUTH": POSTMARK_AUTH,
        "DISTRIB_MG_KEY": MAILGUN_KEY,
    }
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrib", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.1)
        r = httpx.post(
            f"{url}/hooks/mailgun", json=mailgun("victim@example.org", "complained"), timeout=10
        )
        proc.send_signal(signal.SIGKILL)
        assert r.status_code == 200
    finally:
        proc.kill()
        proc.wait(10)
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        assert led.is_suppressed("victim@example.org")
        assert [e["event"] for e in led.consent_record("victim@example.org")] == ["complained"]


def test_webhook_bodies_are_the_documented_json(hooked: Service):
    # the body is JSON; one that is not is a clear 400 after authentication
    r = hooked.http.post("/hooks/postmark", content=b"<xml/>", headers=_basic(POSTMARK_AUTH))
    assert r.status_code == 400 and "Postmark" in r.text
    assert json.loads(json.dumps(postmark_bounce("a@example.org")))["Type"] == "HardBounce"
