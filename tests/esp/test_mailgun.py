"""Mailgun against a local server answering like POST /v3/<domain>/messages.mime."""

from __future__ import annotations

import base64
import json
import threading
import time

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
        {
            "domain": "mg.news.example",
            "api_key_env": "MAILGUN_KEY",
            "base_url": httpserver.url_for(""),
            "connections": 2,
        },
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
            return Response(
                json.dumps({"message": f"'to' parameter is not a valid address: {to}"}),
                status,
                content_type="application/json",
            )
        with self.lock:
            self.received[to] = request.files["message"].read()
        return Response(
            json.dumps({"id": f"<mg.{to}>", "message": "Queued. Thank you."}),
            200,
            content_type="application/json",
        )


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
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"api:key-mg-secret").decode()
    )
    assert request.form["o:tracking"] == "no"
    assert request.form["v:distrib-edition"] == str(env.message.edition_id)
    assert request.files["message"].content_type == "message/rfc822"
    assert len(httpserver.log) == 4


def test_refused_key_stops_the_send(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_data("Forbidden", status=401)
    run = Run(window=2)
    with pytest.raises(DeliveryError, match="mailgun: the API key was refused .*MAILGUN_KEY"):
        run.deliver(env.mailer(), env.message, people(5))
    assert len(run.pulled) == 2 and all(
        o.status is DeliveryStatus.DEFERRED for _, o in run.reported
    )


def test_unknown_domain_names_the_fix(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_json(
        {"message": "Domain not found: mg.news.example"}, status=404
    )
    with pytest.raises(DeliveryError, match="wrong domain or region"):
        Run(window=2).deliver(env.mailer(), env.message, people(1))


def test_rate_limited_defers_and_stops_pulling(env, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_json(
        {"message": "slow down"}, status=429, headers={"Retry-After": "600"}
    )
    run = Run(window=2)
    run.deliver(env.mailer(), env.message, people(6))
    assert len(run.pulled) == 2
    assert all(
        o.status is DeliveryStatus.DEFERRED and o.retry_after == 600 for _, o in run.reported
    )


def test_region_chooses_the_base_url(make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILGUN_KEY", "k")
    env = make_env(
        "mailgun", {"domain": "mg.news.example", "api_key_env": "MAILGUN_KEY", "region": "eu"}
    )
    assert env.mailer().base_url == "https://api.eu.mailgun.net"


def test_more_than_three_tags_is_a_config_error(tmp_path) -> None:
    from distrib.config import Ctx, Table, validate_table
    from distrib.mailers.mailgun import MailgunMailer

    ctx = Ctx(base_dir=tmp_path)
    validate_table(
        Table(MailgunMailer.options),
        {"domain": "mg.news.example", "api_key_env": "K", "tags": ["a", "b", "c", "d"]},
        "email.mailgun",
        ctx,
    )
    [problem] = ctx.problems
    assert problem.startswith(
        "email.mailgun.tags: expected at most 3 tags (Mailgun's limit per message), not 4"
    )


def test_sandbox_domain_refusal_stops_the_send(env, httpserver: HTTPServer) -> None:
    from distrib.deliver import deliver_edition

    httpserver.expect_request(PATH).respond_with_json(
        {
            "message": "Domain mg.news.example is not allowed to send: Free accounts are for test purposes only. "
            "Please upgrade or add the address to authorized recipients in Account Settings."
        },
        status=403,
    )
    report = deliver_edition(env.ledger, env.mailer(), env.message, people(6))
    assert report.failed == 0 and report.sent == 0
    [error] = report.errors
    assert "Mailgun does not let this account or domain send (HTTP 403" in error
    assert len(httpserver.log) == 2  # the first batch of two in flight, then it stopped
    assert env.ledger.db.execute("SELECT count(*) FROM email_deliveries").fetchone()[0] == 0


class SlowMailgun:
    """Queues the message, then answers late; /events shows an ``accepted`` event for
    each queued Message-ID, as Mailgun's events API does."""

    def __init__(self, delay: float, log_visible: bool = True) -> None:
        self.delay = delay
        self.log_visible = log_visible
        self.posts = 0
        self.accepted: list[str] = []
        self.lock = threading.Lock()
        self.idle = threading.Event()

    def send(self, request: Request) -> Response:
        raw = request.files["message"].read()
        mid = next(
            line.split(b":", 1)[1].strip()
            for line in raw.split(b"\r\n")
            if line.lower().startswith(b"message-id:")
        )
        with self.lock:
            self.posts += 1
            self.accepted.append(mid.decode().strip("<>"))
        time.sleep(self.delay)
        self.idle.set()
        return Response(
            json.dumps({"id": f"<{mid.decode()}>", "message": "Queued. Thank you."}),
            200,
            content_type="application/json",
        )

    def events(self, request: Request) -> Response:
        mid = request.args.get("message-id", "")
        items = [
            {"event": "accepted", "message": {"headers": {"message-id": mid}}, "recipient": "x"}
            for m in self.accepted
            if m == mid and self.log_visible
        ]
        return Response(
            json.dumps({"items": items, "paging": {}}), 200, content_type="application/json"
        )


@pytest.mark.parametrize("visible", [True, False])
def test_a_send_without_answer_is_reconciled_by_message_id(
    make_env, threaded_server, monkeypatch, visible
) -> None:
    monkeypatch.setenv("MAILGUN_KEY", "key-mg-secret")
    env = make_env(
        "mailgun",
        {
            "domain": "mg.news.example",
            "api_key_env": "MAILGUN_KEY",
            "timeout": 1,
            "base_url": threaded_server.url_for(""),
            "connections": 1,
        },
    )
    fake = SlowMailgun(delay=2.5, log_visible=visible)
    threaded_server.expect_request(PATH, method="POST").respond_with_handler(fake.send)
    threaded_server.expect_request("/v3/mg.news.example/events", method="GET").respond_with_handler(
        fake.events
    )
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [Recipient("ana@example.org")])
    fake.idle.wait(10)
    assert fake.posts == 1  # today's code posted it again after the timeout
    outcome = run.outcome("ana@example.org")
    if visible:
        assert outcome.status is DeliveryStatus.SENT
        assert outcome.remote_id == env.message.message_id(Recipient("ana@example.org"))
    else:
        assert outcome.status is DeliveryStatus.IN_DOUBT
