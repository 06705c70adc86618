"""listmonk and Buttondown hand-off against local servers shaped like their APIs: one
campaign per edition, found again after a crash instead of created twice."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.deliver import deliver_edition
from distrib.errors import DeliveryError
from distrib.mailers._http import handoff_recipient
from distrib.model import DeliveryStatus

from .conftest import Run


def campaign_json(campaign_id: int, name: str, status: str) -> dict:
    return {"id": campaign_id, "uuid": "5e91dda1-1c16-467d-9bf9-2a21bf22ae21", "name": name, "status": status,
            "subject": "Harbour Notes: the tide tables", "type": "regular", "content_type": "html",
            "lists": [{"id": 3, "name": "Readers"}], "created_at": "2026-11-20T09:30:00Z"}


class Listmonk:
    """A tiny listmonk: campaigns in a dict, the endpoints distrib calls."""

    def __init__(self) -> None:
        self.campaigns: dict[int, dict] = {}
        self.created: list[dict] = []
        self.status_changes: list[tuple[int, str]] = []
        self.fail_start = 0

    def list(self, request: Request) -> Response:
        query = request.args.get("query", "")
        results = [c for c in self.campaigns.values() if query in c["name"]]
        return Response(json.dumps({"data": {"results": results, "query": query, "total": len(results),
                                             "per_page": 100, "page": 1}}), content_type="application/json")

    def create(self, request: Request) -> Response:
        body = request.get_json()
        self.created.append(body)
        cid = 7 + len(self.campaigns)
        self.campaigns[cid] = campaign_json(cid, body["name"], "draft")
        return Response(json.dumps({"data": self.campaigns[cid]}), content_type="application/json")

    def status(self, request: Request) -> Response:
        cid = int(request.path.split("/")[3])
        if self.fail_start:
            self.fail_start -= 1
            return Response(json.dumps({"message": "database busy"}), 502, content_type="application/json")
        status = request.get_json()["status"]
        self.status_changes.append((cid, status))
        self.campaigns[cid]["status"] = status
        return Response(json.dumps({"data": self.campaigns[cid]}), content_type="application/json")

    def install(self, server: HTTPServer) -> None:
        server.expect_request("/api/campaigns", method="GET").respond_with_handler(self.list)
        server.expect_request("/api/campaigns", method="POST").respond_with_handler(self.create)
        for cid in range(7, 12):
            server.expect_request(f"/api/campaigns/{cid}/status", method="PUT").respond_with_handler(self.status)


@pytest.fixture
def listmonk_env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LISTMONK_TOKEN", "lm-token")
    return make_env("listmonk", {"url": httpserver.url_for("/"), "username": "distrib-api",
                                 "token_env": "LISTMONK_TOKEN", "lists": [3], "template_id": 4})


def test_listmonk_creates_and_starts_one_campaign(listmonk_env, httpserver: HTTPServer) -> None:
    fake = Listmonk()
    fake.install(httpserver)
    env = listmonk_env
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert run.reported == [(handoff_recipient("listmonk"), run.reported[0][1])]
    assert run.reported[0][1].status is DeliveryStatus.SENT and run.reported[0][1].remote_id == "7"

    name = f"distrib-{env.message.edition_id}"
    assert fake.created == [{
        "name": name,
        "subject": "Harbour Notes: the tide tables",
        "lists": [3],
        "from_email": "Harbour Notes <news@news.example>",
        "type": "regular",
        "content_type": "html",
        "messenger": "email",
        "body": env.message.html.replace("XDISTRIBRECIPIENTEMAILX", "{{ .Subscriber.Email }}").replace(
            "XDISTRIBUNSUBSCRIBEURLX", "{{ UnsubscribeURL }}"),
        "altbody": "Harbour Notes\n\nHello {{ .Subscriber.Email }}\nUnsubscribe: {{ UnsubscribeURL }}\n",
        "tags": ["distrib"],
        "template_id": 4,
    }]
    assert '<a href="{{ UnsubscribeURL }}">' in fake.created[0]["body"]
    assert fake.status_changes == [(7, "running")]
    first = httpserver.log[0][0]
    assert (first.method, first.args["query"]) == ("GET", name)
    assert all(req.headers["Authorization"] == "token distrib-api:lm-token" for req, _ in httpserver.log)


def test_listmonk_finds_the_campaign_a_crashed_run_created(listmonk_env, httpserver: HTTPServer) -> None:
    fake = Listmonk()
    env = listmonk_env
    fake.campaigns[7] = campaign_json(7, f"distrib-{env.message.edition_id}", "draft")
    fake.campaigns[8] = campaign_json(8, f"distrib-{env.message.edition_id}0", "finished")  # a near name
    fake.install(httpserver)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert run.reported[0][1].remote_id == "7"
    assert fake.created == [] and fake.status_changes == [(7, "running")]


def test_listmonk_start_failure_defers_then_the_rerun_starts_it(listmonk_env, httpserver: HTTPServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from distrib.mailers import _http

    monkeypatch.setattr(_http, "MAX_WAIT", 0.0)  # no waiting: defer at once
    fake = Listmonk()
    fake.fail_start = 1
    fake.install(httpserver)
    env = listmonk_env
    pseudo = [handoff_recipient("listmonk")]

    first = deliver_edition(env.ledger, env.mailer(), env.message, pseudo)
    assert (first.sent, first.deferred, first.finished) == (0, 1, False)
    assert env.ledger.email_status(env.message.edition_id, "handoff:listmonk") == "deferred"
    assert len(fake.created) == 1 and fake.status_changes == []

    # the next run, once the deferral is due: the same campaign is started, no second one
    env.ledger.db.execute("UPDATE email_deliveries SET not_before = NULL")
    second = deliver_edition(env.ledger, env.mailer(), env.message, pseudo)
    assert (second.sent, second.finished) == (1, True)
    assert len(fake.created) == 1 and fake.status_changes == [(7, "running")]

    third = deliver_edition(env.ledger, env.mailer(), env.message, pseudo)
    assert (third.sent, third.skipped) == (0, 1)
    assert len(fake.created) == 1


def test_listmonk_draft_only_and_basic_auth(make_env, httpserver: HTTPServer, monkeypatch) -> None:
    monkeypatch.setenv("LISTMONK_PASSWORD", "pw")
    env = make_env("listmonk", {"url": httpserver.url_for("/"), "username": "admin", "password_env": "LISTMONK_PASSWORD",
                                "lists": 3, "start": False})
    fake = Listmonk()
    fake.install(httpserver)
    Run(window=1).deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert len(fake.created) == 1 and "template_id" not in fake.created[0]
    assert fake.status_changes == []
    assert httpserver.log[0][0].authorization.username == "admin"


def test_listmonk_refused_credentials(listmonk_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/campaigns").respond_with_json({"message": "invalid API credentials"}, status=403)
    run = Run(window=1)
    with pytest.raises(DeliveryError, match=r"listmonk: the API refused the credentials \(HTTP 403\)"):
        run.deliver(listmonk_env.mailer(), listmonk_env.message, [handoff_recipient("listmonk")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED


# --- Buttondown -------------------------------------------------------------------------


@pytest.fixture
def buttondown_env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BUTTONDOWN_KEY", "bd-key")
    return make_env("buttondown", {"token_env": "BUTTONDOWN_KEY", "base_url": httpserver.url_for(""), "status": "draft"})


def email_json(email_id: str, subject: str, body: str, status: str) -> dict:
    return {"id": email_id, "subject": subject, "body": body, "status": status,
            "creation_date": "2026-11-20T09:30:00Z", "email_type": "public", "slug": "tide-tables"}


def test_buttondown_creates_a_draft(buttondown_env, httpserver: HTTPServer) -> None:
    env = buttondown_env
    httpserver.expect_request("/v1/emails", method="GET").respond_with_json({"results": [], "next": None, "count": 0})
    httpserver.expect_request("/v1/emails", method="POST").respond_with_json(
        email_json("3f8e6b1c-0b7e-4b8a-9a57-0d1c9d0e5e11", "s", "b", "draft"), status=201)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    outcome = run.reported[0][1]
    assert (outcome.status, outcome.remote_id) == (DeliveryStatus.SENT, "3f8e6b1c-0b7e-4b8a-9a57-0d1c9d0e5e11")
    post = httpserver.log[1][0]
    assert post.headers["Authorization"] == "Token bd-key"
    assert post.headers["X-API-Version"] == "2026-04-01"
    assert "X-Buttondown-Live-Dangerously" not in post.headers  # a draft needs no confirmation
    assert post.headers["X-Idempotency-Key"].startswith(f"distrib-{env.message.edition_id}-")
    body = post.get_json()
    # The edition id travels in the documented metadata field, not in the body.
    assert set(body) == {"subject", "body", "status", "metadata"}
    assert body["metadata"] == {"distrib_edition": f"distrib-{env.message.edition_id}"}
    assert body["subject"] == "Harbour Notes: the tide tables" and body["status"] == "draft"
    assert body["body"].startswith("<!doctype html>")
    assert "Hello {{ subscriber.email }}" in body["body"]
    assert '<a href="{{ unsubscribe_url }}">' in body["body"]


def test_buttondown_finds_the_email_a_crashed_run_created(buttondown_env, httpserver: HTTPServer) -> None:
    env = buttondown_env
    marker = f"<!-- distrib-{env.message.edition_id} -->"
    page2 = httpserver.url_for("/v1/emails") + "?page=2"
    httpserver.expect_ordered_request("/v1/emails", method="GET", query_string="ordering=-creation_date").respond_with_json(
        {"results": [email_json("other", "Older", "<p>old</p>", "sent")], "next": page2, "count": 2})
    httpserver.expect_ordered_request("/v1/emails", method="GET", query_string="page=2").respond_with_json(
        {"results": [email_json("ours", "Harbour Notes", marker + "\n<html>…</html>", "draft")], "next": None, "count": 2})
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].remote_id == "ours"
    assert all(req.method == "GET" for req, _ in httpserver.log)


def test_buttondown_refused_key(buttondown_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/emails").respond_with_json({"detail": "Invalid token."}, status=401)
    run = Run(window=1)
    with pytest.raises(DeliveryError, match="buttondown: the API refused the credentials"):
        run.deliver(buttondown_env.mailer(), buttondown_env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED
    assert "bd-key" not in run.reported[0][1].error


def test_a_real_address_is_refused_without_creating_anything(listmonk_env, httpserver: HTTPServer) -> None:
    from distrib.model import Recipient

    run = Run(window=1)
    with pytest.raises(DeliveryError, match="listmonk: a hand-off mailer sends one campaign .* not a message to ana@example.org"):
        run.deliver(listmonk_env.mailer(), listmonk_env.message, [Recipient("ana@example.org")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED
    assert len(httpserver.log) == 0
