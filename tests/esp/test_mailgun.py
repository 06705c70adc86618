"""Mailgun against a local server answering like POST /v3/<domain>/messages.mime."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.errors import DeliveryError
from distrib.model import DeliveryStatus, Recipient

from .conftest import Run, people

PATH = "/v3/mg.news.example/messages.mime"


@pytest.fixture
def env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MAILGUN_KEY", "key-mg-secret")
    return make_env(
        "mailgun",
        {"domain": "mg.news.example", "api_key_env": "MAILGUN_KEY", "base_url": httpserver.url_for(""), "connections": 2},
    )


class Mailgun:
    """Answers like Mailgun: 200 {"id", "message"}; a chosen status for some addresses."""

    def __init__(self, statuses: dict[str, int] | None = None):
        self.statuses = statuses or {}
        self.received: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        to = request.form["to"]
        status = self.statuses.get(to, 200)
        if status != 200:
            return Response(json.dumps({"message": f"'to' parameter is not a valid address: {to}"}), status,
                            content_type="application/json")
        with self.lock:
            self.received[to] = request.files["message"].read()
        return Response(json.dumps({"id": f"<mg.{to}>", "message": "Queued. Thank you."}), 200,
                        content_type="application/json")


def test_each_recipient_gets_our_exact_bytes(env, httpserver: HTTPServer) -> None:
    fake = Mailgun({"reader2@example.org": 400})
    httpserver.expect_request(PATH, method="POST").respond_with_handler(fake)
    recipients = people(3) + [Recipient("reader3@xn--bcher-kva.example")]
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, recipients)

    for r in (recipients[0], recipients[1], recipients[3]):
        assert run.outcome(r.email).status is DeliveryStatus.SENT
        assert run.outcome(r.email).remote_id == f"<mg.{r.email}>"
        assert fake.received[r.email] == env.message.for_recipient(r)
    failed = run.outcome("reader2@example.org")
    assert failed.status is DeliveryStatus.FAILED and "not a valid address" in failed.error

    request = httpserver.log[0][0]
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"api:key-mg-secret").decode()
    assert request.form["o:tracking"] == "no"
    assert request.form["v:distrib-edition"] == str(env.message.edition_id)
    assert request.files["message"].content_type == "message/rfc822"
    assert len(httpserver.log) == 4


def test_refused_key_stops_the_send(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_data("Forbidden", status=401)
    run = Run(window=2)
    with pytest.raises(DeliveryError, match="mailgun: the API key was refused .*MAILGUN_KEY"):
        run.deliver(env.mailer(), env.message, people(5))
    assert len(run.pulled) == 2 and all(o.status is DeliveryStatus.DEFERRED for _, o in run.reported)


def test_unknown_domain_names_the_fix(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_json({"message": "Domain not found: mg.news.example"}, status=404)
    with pytest.raises(DeliveryError, match="wrong domain or region"):
        Run(window=2).deliver(env.mailer(), env.message, people(1))


def test_rate_limited_defers_and_stops_pulling(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_json({"message": "slow down"}, status=429,
                                                      headers={"Retry-After": "600"})
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(6))
    assert len(run.pulled) == 2
    assert all(o.status is DeliveryStatus.DEFERRED and o.retry_after == 600 for _, o in run.reported)


def test_region_chooses_the_base_url(make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILGUN_KEY", "k")
    env = make_env("mailgun", {"domain": "mg.news.example", "api_key_env": "MAILGUN_KEY", "region": "eu"})
    assert env.mailer().base_url == "https://api.eu.mailgun.net"
