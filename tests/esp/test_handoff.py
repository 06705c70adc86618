"""listmonk and Buttondown hand-off against local servers shaped like their APIs: one
campaign per edition, found again after a crash instead of created twice."""

from __future__ import annotations

import json
import re
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.deliver import deliver_edition
from distrib.errors import DeliveryError
from distrib.mailers._http import handoff_recipient
from distrib.model import DeliveryStatus

from .conftest import Run


def campaign_json(campaign_id: int, name: str, status: str) -> dict:
    return {
        "id": campaign_id,
        "uuid": "5e91dda1-1c16-467d-9bf9-2a21bf22ae21",
        "name": name,
        "status": status,
        "subject": "Harbour Notes: the tide tables",
        "type": "regular",
        "content_type": "html",
        "lists": [{"id": 3, "name": "Readers"}],
        "created_at": "2026-11-20T09:30:00Z",
    }


class Listmonk:
    """A tiny listmonk: campaigns in a dict, the endpoints distrib calls."""

    def __init__(self) -> None:
        self.campaigns: dict[int, dict] = {}
        self.created: list[dict] = []
        self.status_changes: list[tuple[int, str]] = []
        self.fail_start = 0
        self.forbid_start = False

    def list(self, request: Request) -> Response:
        # As listmonk does: `query` is a case-insensitive substring match on the name
        # (ILIKE '%query%'), per_page is capped at 50, pages count from 1.
        query = request.args.get("query", "")
        per_page = min(int(request.args.get("per_page", 20)), 50)
        page = max(int(request.args.get("page", 1)), 1)
        matches = [
            c for _, c in sorted(self.campaigns.items()) if query.lower() in c["name"].lower()
        ]
        results = matches[(page - 1) * per_page : page * per_page]
        return Response(
            json.dumps(
                {
                    "data": {
                        "results": results,
                        "query": query,
                        "total": len(matches),
                        "per_page": per_page,
                        "page": page,
                    }
                }
            ),
            content_type="application/json",
        )

    def create(self, request: Request) -> Response:
        body = request.get_json()
        self.created.append(body)
        cid = max([6, *self.campaigns]) + 1
        self.campaigns[cid] = campaign_json(cid, body["name"], "draft")
        return Response(json.dumps({"data": self.campaigns[cid]}), content_type="application/json")

    def status(self, request: Request) -> Response:
        cid = int(request.path.split("/")[3])
        if self.forbid_start:
            return Response(
                json.dumps({"message": "Permission denied: campaigns:send"}),
                403,
                content_type="application/json",
            )
        if self.fail_start:
            self.fail_start -= 1
            return Response(
                json.dumps({"message": "database busy"}), 502, content_type="application/json"
            )
        status = request.get_json()["status"]
        self.status_changes.append((cid, status))
        self.campaigns[cid]["status"] = status
        return Response(json.dumps({"data": self.campaigns[cid]}), content_type="application/json")

    def install(self, server: HTTPServer) -> None:
        server.expect_request("/api/campaigns", method="GET").respond_with_handler(self.list)
        server.expect_request("/api/campaigns", method="POST").respond_with_handler(self.create)
        server.expect_request(
            re.compile(r"/api/campaigns/\d+/status"), method="PUT"
        ).respond_with_handler(self.status)


@pytest.fixture
def listmonk_env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LISTMONK_TOKEN", "lm-token")
    return make_env(
        "listmonk",
        {
            "url": httpserver.url_for("/"),
            "username": "distrib-api",
            "token_env": "LISTMONK_TOKEN",
            "lists": [3],
            "template_id": 4,
        },
    )


def test_listmonk_creates_and_starts_one_campaign(listmonk_env, httpserver: HTTPServer) -> None:
    fake = Listmonk()
    fake.install(httpserver)
    env = listmonk_env
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert run.reported == [(handoff_recipient("listmonk"), run.reported[0][1])]
    assert run.reported[0][1].status is DeliveryStatus.SENT and run.reported[0][1].remote_id == "7"

    name = f"distrib-{env.message.edition_id}"
    assert fake.created == [
        {
            "name": name,
            "subject": "Harbour Notes: the tide tables",
            "lists": [3],
            "from_email": "Harbour Notes <news@news.example>",
            "type": "regular",
            "content_type": "html",
            "messenger": "email",
            "body": env.message.html.replace(
                "XDISTRIBRECIPIENTEMAILX", "{{ .Subscriber.Email }}"
            ).replace("XDISTRIBUNSUBSCRIBEURLX", "{{ UnsubscribeURL }}"),
            "altbody": "Harbour Notes\n\nHello {{ .Subscriber.Email }}\nUnsubscribe: {{ UnsubscribeURL }}\n",
            "tags": ["distrib"],
            "template_id": 4,
        }
    ]
    assert '<a href="{{ UnsubscribeURL }}">' in fake.created[0]["body"]
    assert fake.status_changes == [(7, "running")]
    first = httpserver.log[0][0]
    assert (first.method, first.args["query"]) == ("GET", name)
    assert all(
        req.headers["Authorization"] == "token distrib-api:lm-token" for req, _ in httpserver.log
    )


def test_listmonk_finds_the_campaign_a_crashed_run_created(
    listmonk_env, httpserver: HTTPServer
) -> None:
    fake = Listmonk()
    env = listmonk_env
    fake.campaigns[7] = campaign_json(7, f"distrib-{env.message.edition_id}", "draft")
    fake.campaigns[8] = campaign_json(
        8, f"distrib-{env.message.edition_id}0", "finished"
    )  # a near name
    fake.install(httpserver)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert run.reported[0][1].remote_id == "7"
    assert fake.created == [] and fake.status_changes == [(7, "running")]


def test_listmonk_reads_every_page_and_matches_the_name_exactly(
    listmonk_env, httpserver: HTTPServer
) -> None:
    fake = Listmonk()
    env = listmonk_env
    name = f"distrib-{env.message.edition_id}"
    # 60 campaigns whose names contain ours (listmonk's search is a substring match),
    # and ours, made by a run that died before marking the ledger, on page 2.
    for n in range(60):
        fake.campaigns[100 + n] = campaign_json(100 + n, f"{name}{n}", "finished")
    fake.campaigns[300] = campaign_json(300, name, "draft")
    fake.install(httpserver)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert run.reported[0][1].remote_id == "300"
    assert fake.created == [] and fake.status_changes == [(300, "running")]
    pages = [req.args for req, _ in httpserver.log if req.method == "GET"]
    assert [(a["page"], a["per_page"]) for a in pages] == [("1", "50"), ("2", "50")]


def test_listmonk_without_campaigns_send_stops_and_the_next_run_starts_it(
    listmonk_env, httpserver: HTTPServer
) -> None:
    fake = Listmonk()
    fake.forbid_start = True
    fake.install(httpserver)
    env = listmonk_env
    pseudo = [handoff_recipient("listmonk")]
    first = deliver_edition(env.ledger, env.mailer(), env.message, pseudo)
    assert (first.sent, first.failed, first.finished) == (0, 0, False)
    [error] = first.errors
    assert error == (
        "listmonk: PUT /api/campaigns/7/status was forbidden (HTTP 403: Permission denied: "
        "campaigns:send); give the API user the campaigns:send permission"
    )
    assert (
        env.ledger.email_status(env.message.edition_id, "handoff:listmonk") is None
    )  # pending, untouched

    fake.forbid_start = False  # the permission was granted
    second = deliver_edition(env.ledger, env.mailer(), env.message, pseudo)
    assert (second.sent, second.finished) == (1, True)
    assert len(fake.created) == 1 and fake.status_changes == [(7, "running")]


def test_listmonk_start_failure_defers_then_the_rerun_starts_it(
    listmonk_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    env = make_env(
        "listmonk",
        {
            "url": httpserver.url_for("/"),
            "username": "admin",
            "password_env": "LISTMONK_PASSWORD",
            "lists": 3,
            "start": False,
        },
    )
    fake = Listmonk()
    fake.install(httpserver)
    Run(window=1).deliver(env.mailer(), env.message, [handoff_recipient("listmonk")])
    assert len(fake.created) == 1 and "template_id" not in fake.created[0]
    assert fake.status_changes == []
    assert httpserver.log[0][0].authorization.username == "admin"


def test_listmonk_refused_credentials(listmonk_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/campaigns").respond_with_json(
        {"message": "invalid API credentials"}, status=403
    )
    run = Run(window=1)
    with pytest.raises(
        DeliveryError, match=r"listmonk: the API refused the credentials \(HTTP 403\)"
    ):
        run.deliver(listmonk_env.mailer(), listmonk_env.message, [handoff_recipient("listmonk")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED


# --- Buttondown -------------------------------------------------------------------------


@pytest.fixture
def buttondown_env(make_env, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BUTTONDOWN_KEY", "bd-key")
    return make_env(
        "buttondown",
        {"token_env": "BUTTONDOWN_KEY", "base_url": httpserver.url_for(""), "status": "draft"},
    )


def email_json(email_id: str, subject: str, body: str, status: str) -> dict:
    return {
        "id": email_id,
        "subject": subject,
        "body": body,
        "status": status,
        "creation_date": "2026-11-20T09:30:00Z",
        "email_type": "public",
        "slug": "tide-tables",
    }


def test_buttondown_creates_a_draft(buttondown_env, httpserver: HTTPServer) -> None:
    env = buttondown_env
    httpserver.expect_request("/v1/emails", method="GET").respond_with_json(
        {"results": [], "next": None, "count": 0}
    )
    httpserver.expect_request("/v1/emails", method="POST").respond_with_json(
        email_json("3f8e6b1c-0b7e-4b8a-9a57-0d1c9d0e5e11", "s", "b", "draft"), status=201
    )
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    outcome = run.reported[0][1]
    assert (outcome.status, outcome.remote_id) == (
        DeliveryStatus.SENT,
        "3f8e6b1c-0b7e-4b8a-9a57-0d1c9d0e5e11",
    )
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


def test_buttondown_finds_the_email_a_crashed_run_created(
    buttondown_env, httpserver: HTTPServer
) -> None:
    env = buttondown_env
    marker = f"<!-- distrib-{env.message.edition_id} -->"
    page2 = httpserver.url_for("/v1/emails") + "?page=2"
    httpserver.expect_ordered_request(
        "/v1/emails", method="GET", query_string="ordering=-creation_date"
    ).respond_with_json(
        {"results": [email_json("other", "Older", "<p>old</p>", "sent")], "next": page2, "count": 2}
    )
    httpserver.expect_ordered_request(
        "/v1/emails", method="GET", query_string="page=2"
    ).respond_with_json(
        {
            "results": [email_json("ours", "Harbour Notes", marker + "\n<html>…</html>", "draft")],
            "next": None,
            "count": 2,
        }
    )
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].remote_id == "ours"
    assert all(req.method == "GET" for req, _ in httpserver.log)


def test_buttondown_refused_key(buttondown_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/emails").respond_with_json(
        {"detail": "Invalid token."}, status=401
    )
    run = Run(window=1)
    with pytest.raises(DeliveryError, match="buttondown: the API refused the credentials"):
        run.deliver(
            buttondown_env.mailer(), buttondown_env.message, [handoff_recipient("buttondown")]
        )
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED
    assert "bd-key" not in run.reported[0][1].error


def test_a_real_address_is_refused_without_creating_anything(
    listmonk_env, httpserver: HTTPServer
) -> None:
    from distrib.model import Recipient

    run = Run(window=1)
    with pytest.raises(
        DeliveryError,
        match="listmonk: a hand-off mailer sends one campaign .* not a message to ana@example.org",
    ):
        run.deliver(listmonk_env.mailer(), listmonk_env.message, [Recipient("ana@example.org")])
    assert run.reported[0][1].status is DeliveryStatus.DEFERRED
    assert len(httpserver.log) == 0


class Buttondown:
    """A tiny Buttondown on API version 2026-04-01: emails newest first, the
    ``sending_requires_confirmation`` 400 until a key has confirmed once, and
    ``X-Idempotency-Key`` answered with the first response."""

    def __init__(self, delay_first_post: float = 0.0) -> None:
        self.emails: list[dict] = []
        self.keys: dict[str, str] = {}
        self.confirmed = False
        self.posts: list[Request] = []
        self.delay_first_post = delay_first_post

    def create(self, request: Request) -> Response:
        assert request.headers.get("X-API-Version") == "2026-04-01"
        self.posts.append(request)
        key = request.headers.get("X-Idempotency-Key")
        if key and key in self.keys:
            return Response(self.keys[key], 201, content_type="application/json")
        body = request.get_json()
        if body.get("status", "draft") == "about_to_send" and not self.confirmed:
            if request.headers.get("X-Buttondown-Live-Dangerously") != "true":
                return Response(
                    json.dumps(
                        {
                            "code": "sending_requires_confirmation",
                            "detail": "Pass X-Buttondown-Live-Dangerously: true to send.",
                        }
                    ),
                    400,
                    content_type="application/json",
                )
            self.confirmed = True
        email = email_json(
            f"em-{len(self.emails) + 1}", body["subject"], body["body"], body.get("status", "draft")
        )
        email["metadata"] = body.get("metadata") or {}
        self.emails.insert(0, email)
        answer = json.dumps(email)
        if key:
            self.keys[key] = answer
        if len(self.posts) == 1 and self.delay_first_post:
            time.sleep(self.delay_first_post)
        return Response(answer, 201, content_type="application/json")

    def list(self, request: Request) -> Response:
        return Response(
            json.dumps({"results": self.emails, "next": None, "count": len(self.emails)}),
            content_type="application/json",
        )

    def install(self, server: HTTPServer) -> None:
        server.expect_request("/v1/emails", method="GET").respond_with_handler(self.list)
        server.expect_request("/v1/emails", method="POST").respond_with_handler(self.create)


def bd_env(make_env, server: HTTPServer, monkeypatch: pytest.MonkeyPatch, **options):
    monkeypatch.setenv("BUTTONDOWN_KEY", "bd-key")
    return make_env(
        "buttondown", {"token_env": "BUTTONDOWN_KEY", "base_url": server.url_for("")} | options
    )


def test_buttondown_default_is_a_draft(make_env, httpserver: HTTPServer, monkeypatch) -> None:
    fake = Buttondown()
    fake.install(httpserver)
    env = bd_env(make_env, httpserver, monkeypatch)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].status is DeliveryStatus.SENT
    assert [e["status"] for e in fake.emails] == ["draft"]


def test_buttondown_sending_is_explicit_and_confirmed(
    make_env, httpserver: HTTPServer, monkeypatch
) -> None:
    fake = Buttondown()
    fake.install(httpserver)
    env = bd_env(make_env, httpserver, monkeypatch, status="about_to_send")
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].status is DeliveryStatus.SENT
    assert [e["status"] for e in fake.emails] == ["about_to_send"]
    assert fake.posts[0].headers["X-Buttondown-Live-Dangerously"] == "true"


def test_buttondown_a_timed_out_create_is_repeated_with_the_same_key(
    make_env, threaded_server, monkeypatch
) -> None:
    from distrib.mailers import _http

    monkeypatch.setattr(_http, "MAX_WAIT", 10.0)
    fake = Buttondown(delay_first_post=2.5)
    # The list lags behind the create: only the idempotency key prevents a second email.
    fake.list = lambda request: Response(
        json.dumps({"results": [], "next": None, "count": 0}),  # type: ignore[method-assign]
        content_type="application/json",
    )
    fake.install(threaded_server)
    env = bd_env(make_env, threaded_server, monkeypatch, status="about_to_send", timeout=1)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].status is DeliveryStatus.SENT
    assert len(fake.posts) == 2 and len(fake.emails) == 1
    keys = {p.headers["X-Idempotency-Key"] for p in fake.posts}
    assert len(keys) == 1


def test_buttondown_finds_the_email_by_its_metadata(
    make_env, httpserver: HTTPServer, monkeypatch
) -> None:
    fake = Buttondown()
    env = bd_env(make_env, httpserver, monkeypatch, status="about_to_send")
    ours = email_json("ours", "Harbour Notes", "<html>…</html>", "sent")
    ours["metadata"] = {"distrib_edition": f"distrib-{env.message.edition_id}"}
    near = email_json("near", "Harbour Notes", "<html>…</html>", "sent")
    near["metadata"] = {"distrib_edition": f"distrib-{env.message.edition_id}0"}
    fake.emails = [near, ours]
    fake.install(httpserver)
    run = Run(window=1)
    run.deliver(env.mailer(), env.message, [handoff_recipient("buttondown")])
    assert run.reported[0][1].remote_id == "ours"
    assert fake.posts == []


def test_check_says_whether_buttondown_sends(make_config, monkeypatch) -> None:
    from .conftest_cli import run_check

    for status, expected in (
        ("about_to_send", "is SENT to your Buttondown subscribers at once"),
        ("draft", "is left as a draft"),
    ):
        out = run_check(
            make_config,
            "buttondown",
            f'token_env = "BUTTONDOWN_KEY"\nstatus = "{status}"',
            {"BUTTONDOWN_KEY": "bd-key"},
        )
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
