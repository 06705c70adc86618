"""The name a reader types into the signup form is the subscriber's name once confirmed
(it was dropped at the confirmation: the token carries only the address and the
newsletters)."""

from __future__ import annotations

import email
import re
from email import policy
from urllib.parse import parse_qs, urlsplit

from distrib.ledger import open_ledger
from tests.signup.conftest import Service


def _token(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    m = re.search(
        r"https://news\.example/confirm\?token=\S+", msg.get_body(("plain",)).get_content()
    )
    assert m
    return parse_qs(urlsplit(m.group(0)).query)["token"][0]


def test_the_name_from_the_form_is_kept_when_the_reader_confirms(service: Service):
    assert service.subscribe(email="ana@example.org", name="  Ana   Lima ").status_code == 200
    service.wait_for_mail(1)
    done = service.http.post("/confirm", data={"token": _token(service.smtp.received[0].data)})
    assert done.status_code == 200
    with open_ledger(service.ledger_path) as led:
        row = led.get_subscriber("ana@example.org")
        assert row["status"] == "active" and row["name"] == "Ana Lima"


def test_a_confirmation_keeps_a_name_already_known(service: Service):
    with open_ledger(service.ledger_path) as led:
        led.queue_signup("bo@example.org", "Bo", [])
        assert led.confirm_subscriber("bo@example.org", "", [], ["digest"])
        led.queue_signup("bo@example.org", "", [])  # signs up again, no name this time
        led.confirm_subscriber("bo@example.org", "", [], ["digest"])
        assert led.get_subscriber("bo@example.org")["name"] == "Bo"
