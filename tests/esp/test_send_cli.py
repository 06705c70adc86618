"""`distrib send` with an ESP as a user runs it (a subprocess, a local Postmark): a setup
error stops the edition with one line and exit 1, the next run resumes; `--retry-failed`
re-queues an edition's failed recipients once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ..conftest import run_distrib
from .conftest_cli import esp_config

ENV = {"POSTMARK_TOKEN": "pm-server-token"}


class Postmark:
    """/email/batch answering each message with the ErrorCode set for its address."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.sent: list[str] = []

    def __call__(self, request: Request) -> Response:
        out = []
        for item in request.get_json():
            address = item["To"].rpartition("<")[2].rstrip(">")
            code = self.codes.get(address, 0)
            if code:
                out.append(
                    {
                        "ErrorCode": code,
                        "Message": {
                            413: "Account May Not Send",
                            406: "Inactive recipient",
                            300: "Invalid 'To' address.",
                        }.get(code, "error"),
                    }
                )
            elif item["Metadata"]["distrib-edition"] == "1":  # later editions are not looked at
                self.sent.append(address)
            if not code:
                out.append(
                    {
                        "ErrorCode": 0,
                        "Message": "OK",
                        "MessageID": f"pm-{address}",
                        "To": item["To"],
                    }
                )
        return Response(json.dumps(out), 200, content_type="application/json")


def config(make_config, httpserver: HTTPServer) -> Path:
    return esp_config(
        make_config,
        "postmark",
        f'token_env = "POSTMARK_TOKEN"\nbase_url = "{httpserver.url_for("")}"\n',
    )


def rows(tmp_path: Path) -> dict[str, str]:
    db = sqlite3.connect(tmp_path / "distrib.sqlite")
    try:
        return dict(
            db.execute(
                "SELECT address, status FROM email_deliveries WHERE edition_id = 1"
            ).fetchall()
        )
    finally:
        db.close()


def test_account_that_may_not_send_stops_with_one_line_and_the_next_run_resumes(
    make_config, httpserver, tmp_path
) -> None:
    fake = Postmark()
    fake.codes = {a: 413 for a in ("a@example.com", "b@example.com", "c@example.com")}
    httpserver.expect_request("/email/batch").respond_with_handler(fake)
    path = config(make_config, httpserver)

    first = run_distrib("send", "--config", str(path), env=ENV, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    errors = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, first.stderr
    assert errors[0].startswith(
        "distrib: digest: postmark: ErrorCode 413: Account May Not Send; "
        "the account may not send: contact Postmark support"
    )
    assert "unfinished" in first.stdout
    assert rows(tmp_path) == {}  # every reader still pending

    fake.codes = {}  # Postmark lets the account send again
    second = run_distrib("send", "--config", str(path), env=ENV, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert sorted(fake.sent) == ["a@example.com", "b@example.com", "c@example.com"]
    assert set(rows(tmp_path).values()) == {"sent"}


def test_retry_failed_requeues_the_failed_once(make_config, httpserver, tmp_path) -> None:
    fake = Postmark()
    fake.codes = {"a@example.com": 406, "b@example.com": 300}
    httpserver.expect_request("/email/batch").respond_with_handler(fake)
    path = config(make_config, httpserver)

    first = run_distrib("send", "--config", str(path), env=ENV, cwd=tmp_path)
    assert first.returncode == 1
    assert rows(tmp_path) == {
        "a@example.com": "failed",
        "b@example.com": "failed",
        "c@example.com": "sent",
    }

    fake.codes = {}  # b's address was fixed at the provider; a stays suppressed (inactive)
    again = run_distrib("send", "--retry-failed", "1", "--config", str(path), env=ENV, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "edition 1: 1 failed recipient re-queued" in again.stdout
    assert fake.sent == ["c@example.com", "b@example.com"]
    assert rows(tmp_path) == {
        "a@example.com": "failed",
        "b@example.com": "sent",
        "c@example.com": "sent",
    }

    once = run_distrib("send", "--retry-failed", "1", "--config", str(path), env=ENV, cwd=tmp_path)
    assert once.returncode == 2
    assert "re-queued once already" in once.stderr
    assert fake.sent == ["c@example.com", "b@example.com"]

    missing = run_distrib(
        "send", "--retry-failed", "9", "--config", str(path), env=ENV, cwd=tmp_path
    )
    assert missing.returncode == 2 and "no such edition" in missing.stderr
