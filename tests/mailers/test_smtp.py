"""SmtpMailer against real aiosmtpd servers on 127.0.0.1: what the server received."""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from distrib.adapters import Context
from distrib.config import Section
from distrib.errors import ConfigError, DistribError
from distrib.mailers.smtp import SmtpMailer
from distrib.model import DeliveryStatus, Edition, Outcome, Recipient
from distrib.render.message import PreparedMessage, prepare_message
from tests.mailers.conftest import KEY
from tests.mailers.smtpservers import (
    Handler,
    authenticator,
    make_certificate,
    server_tls,
    smtp_server,
)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def prepared(ctx: Context, edition: Edition) -> PreparedMessage:
    return prepare_message(ctx.settings, edition, key=KEY)


def mailer(ctx: Context, port: int, **opts: Any) -> SmtpMailer:
    base = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "timeout": 5,
        "retry_delay": 0.01,
    }
    return SmtpMailer(Section(base | opts, "email.smtp"), ctx)


class Tally:
    """The recipients iterator and the report callback, checking the mailer's contract."""

    def __init__(self, recipients: list[Recipient], in_flight_limit: int | None = None):
        self.recipients = recipients
        self.pulled: list[Recipient] = []
        self.outcomes: dict[str, Outcome] = {}
        self.max_in_flight = 0
        self.limit = in_flight_limit

    def __iter__(self) -> Iterator[Recipient]:
        for r in self.recipients:
            self.pulled.append(r)
            self.max_in_flight = max(self.max_in_flight, len(self.pulled) - len(self.outcomes))
            yield r

    def report(self, r: Recipient, o: Outcome) -> None:
        assert r.email not in self.outcomes, f"{r.email} reported twice"
        self.outcomes[r.email] = o

    def status(self, email: str) -> DeliveryStatus:
        return self.outcomes[email].status

    def run(self, m: SmtpMailer, message: PreparedMessage) -> None:
        with m:
            m.deliver(message, iter(self), self.report)


def people(n: int) -> list[Recipient]:
    return [Recipient(f"reader{i}@example.com", f"Reader {i}") for i in range(n)]


@pytest.mark.parametrize("pipelining", [True, False])
def test_delivers_over_one_reused_connection(
    ctx: Context, prepared: PreparedMessage, edition: Edition, pipelining: bool
) -> None:
    handler = Handler(pipelining=pipelining)
    tally = Tally(people(6))
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port), prepared)
    assert len(handler.sessions) == 1
    got = handler.by_rcpt()
    assert sorted(got) == sorted(r.email for r in tally.recipients)
    for r in tally.recipients:
        rec = got[r.email]
        assert rec.mail_from == "news@gazette.example.org"
        assert rec.data == prepared.for_recipient(r)  # the bytes arrive unchanged
        msg = BytesParser(policy=policy.default).parsebytes(rec.data)
        assert msg["To"].addresses[0].addr_spec == r.email
        assert msg["Subject"] == edition.subject
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        parts = list(msg.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert "Harbour lights return" in parts[0].get_content()
        assert "Story 19 – café ☕" in parts[1].get_content()
        assert r.email in parts[1].get_content()
        outcome = tally.outcomes[r.email]
        assert outcome.status is DeliveryStatus.SENT
        assert outcome.remote_id == msg["Message-ID"]


def test_pool_of_connections_pulls_lazily(ctx: Context, prepared: PreparedMessage) -> None:
    handler = Handler()
    tally = Tally(people(40))
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port, connections=3), prepared)
    assert len(handler.received) == 40
    assert all(o.status is DeliveryStatus.SENT for o in tally.outcomes.values())
    assert len(handler.sessions) == 3
    # one message being transferred and one envelope behind it, per connection
    assert tally.max_in_flight <= 2 * 3


def test_replies_decide_each_outcome(ctx: Context, prepared: PreparedMessage) -> None:
    handler = Handler(
        rcpt_replies={
            "gone@example.com": [
                "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
            ],
            "full@example.com": ["552 5.2.2 Mailbox full"],
            "grey@example.com": ["450 4.2.0 Greylisted, try again later"],
            "flaky@example.com": ["451 4.3.0 Temporary lookup failure", "250 OK"],
            "old@example.com": ["550 No such user here"],
        },
        data_replies={"spam@example.com": ["554 5.7.1 Message rejected as spam"]},
    )
    names = ["ok1", "gone", "full", "grey", "flaky", "spam", "old", "ok2"]
    tally = Tally([Recipient(f"{n}@example.com") for n in names])
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port, retries=1), prepared)
    out = tally.outcomes
    assert set(out) == {f"{n}@example.com" for n in names}
    assert out["ok1@example.com"].status is DeliveryStatus.SENT
    assert out["ok2@example.com"].status is DeliveryStatus.SENT
    assert out["gone@example.com"].status is DeliveryStatus.FAILED
    assert out["gone@example.com"].bounce and "5.1.1" in out["gone@example.com"].error
    assert out["old@example.com"].bounce
    assert out["full@example.com"].status is DeliveryStatus.FAILED
    assert not out["full@example.com"].bounce
    assert out["spam@example.com"].status is DeliveryStatus.FAILED
    assert not out["spam@example.com"].bounce
    # 4xx: retried within the run, then deferred to a later one
    assert out["grey@example.com"].status is DeliveryStatus.DEFERRED
    assert "Greylisted" in out["grey@example.com"].error
    assert handler.rcpt_attempts["grey@example.com"] == 2
    assert out["flaky@example.com"].status is DeliveryStatus.SENT
    assert sorted(handler.by_rcpt()) == ["flaky@example.com", "ok1@example.com", "ok2@example.com"]


@pytest.mark.parametrize("pipelining", [True, False])
def test_dropped_connection_is_reopened_and_retried(
    ctx: Context, prepared: PreparedMessage, pipelining: bool
) -> None:
    handler = Handler(
        pipelining=pipelining, drop_once={"reader2@example.com", "reader5@example.com"}
    )
    tally = Tally(people(8))
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port), prepared)
    assert all(o.status is DeliveryStatus.SENT for o in tally.outcomes.values())
    assert len(tally.outcomes) == 8
    # each message arrived exactly once; three sessions (two drops)
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(
        r.email for r in tally.recipients
    )
    assert len(handler.sessions) == 3


def test_sender_refused_stops_and_reports_in_flight_deferred(
    ctx: Context, prepared: PreparedMessage
) -> None:
    handler = Handler(refuse_sender_after=3)
    tally = Tally(people(10))
    with smtp_server(handler) as port, pytest.raises(DistribError) as e:
        tally.run(mailer(ctx, port), prepared)
    assert f"127.0.0.1:{port}" in str(e.value) and "refused the sender" in str(e.value)
    assert "\n" not in str(e.value)
    assert len(handler.received) == 3
    # every recipient pulled was reported exactly once; the rest were never pulled
    assert set(tally.outcomes) == {r.email for r in tally.pulled}
    sent = [e for e, o in tally.outcomes.items() if o.status is DeliveryStatus.SENT]
    assert len(sent) == 3
    assert all(
        o.status is DeliveryStatus.DEFERRED for e, o in tally.outcomes.items() if e not in sent
    )
    assert len(tally.pulled) < 10


def test_starttls_and_auth(
    ctx: Context,
    prepared: PreparedMessage,
    cert: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    handler = Handler()
    tally = Tally(people(3))
    with smtp_server(
        handler,
        tls_context=server_tls(*cert),
        require_starttls=True,
        authenticator=authenticator({"news": "s3cret"}),
        auth_required=True,
    ) as port:
        m = mailer(
            ctx,
            port,
            security="starttls",
            username="news",
            password_env="TEST_SMTP_PASSWORD",
            ca_file=cert[0],
        )
        tally.run(m, prepared)
    assert len(handler.received) == 3
    assert all(r.tls and r.login == "news" for r in handler.received)


def test_auth_login_when_plain_is_not_offered(
    ctx: Context,
    prepared: PreparedMessage,
    cert: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "pä55 wörd")
    handler = Handler(pipelining=False)
    tally = Tally(people(2))
    with smtp_server(
        handler,
        tls_context=server_tls(*cert),
        authenticator=authenticator({"news@gazette.example.org": "pä55 wörd"}),
        auth_exclude_mechanism=["PLAIN"],
        auth_required=True,
    ) as port:
        m = mailer(
            ctx,
            port,
            security="starttls",
            username="news@gazette.example.org",
            password_env="TEST_SMTP_PASSWORD",
            ca_file=cert[0],
        )
        tally.run(m, prepared)
    assert [r.login for r in handler.received] == ["news@gazette.example.org"] * 2
    assert m.describe() == f"to 127.0.0.1:{port}"


def test_rate_per_second_still_delivers_everything(ctx: Context, prepared: PreparedMessage) -> None:
    handler = Handler()
    tally = Tally(people(6))
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port, rate_per_second=500, connections=2), prepared)
    assert len(handler.received) == 6
    assert all(o.status is DeliveryStatus.SENT for o in tally.outcomes.values())


def test_implicit_tls(ctx: Context, prepared: PreparedMessage, cert: tuple[Path, Path]) -> None:
    handler = Handler()
    tally = Tally(people(2))
    with smtp_server(handler, ssl_context=server_tls(*cert)) as port:
        tally.run(mailer(ctx, port, security="ssl", ca_file=cert[0]), prepared)
    assert len(handler.received) == 2 and all(r.tls for r in handler.received)


def test_wrong_password(
    ctx: Context,
    prepared: PreparedMessage,
    cert: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    handler = Handler()
    tally = Tally(people(3))
    with smtp_server(
        handler, tls_context=server_tls(*cert), authenticator=authenticator({"news": "s3cret"})
    ) as port:
        m = mailer(
            ctx,
            port,
            security="starttls",
            username="news",
            password_env="TEST_SMTP_PASSWORD",
            ca_file=cert[0],
        )
        with pytest.raises(DistribError) as e:
            tally.run(m, prepared)
    msg = str(e.value)
    assert f"127.0.0.1:{port}" in msg and "refused the login for 'news'" in msg
    assert "$TEST_SMTP_PASSWORD" in msg and "wrong" not in msg.replace("wrong password", "")
    assert tally.pulled == [] and handler.received == []


def test_untrusted_certificate(
    ctx: Context, prepared: PreparedMessage, cert: tuple[Path, Path]
) -> None:
    tally = Tally(people(1))
    with smtp_server(Handler(), tls_context=server_tls(*cert)) as port:
        with pytest.raises(DistribError, match=rf"127.0.0.1:{port}: TLS failed .*certificate"):
            tally.run(mailer(ctx, port, security="starttls"), prepared)
    assert tally.pulled == []


def test_connection_refused(ctx: Context, prepared: PreparedMessage) -> None:
    from tests.mailers.smtpservers import free_port

    port = free_port()
    tally = Tally(people(2))
    with pytest.raises(
        DistribError, match=rf"smtp 127.0.0.1:{port}: cannot connect .* host and port"
    ):
        tally.run(mailer(ctx, port), prepared)
    assert tally.pulled == []


def test_missing_password_variable(
    ctx: Context, prepared: PreparedMessage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_SMTP_PASSWORD", raising=False)
    m = mailer(ctx, 25, username="news", password_env="NOPE_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="NOPE_SMTP_PASSWORD"):
        with m:
            pass


def test_daily_quota_stops_pulling(ctx: Context, prepared: PreparedMessage, tmp_path: Path) -> None:
    from distrib.ledger import open_ledger

    ledger = open_ledger(tmp_path / "ledger.sqlite")
    ed = ledger.create_edition("digest", ["a"], "s", "p", "<p>x</p>", "x")
    for i in range(2):
        ledger.claim_email(ed.id, f"earlier{i}@example.com")
        ledger.mark_email(ed.id, f"earlier{i}@example.com", Outcome.sent("<id>"))
    ctx.ledger = ledger
    handler = Handler()
    tally = Tally(people(10))
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port, rate_per_day=5, connections=2), prepared)
    # 5 a day, 2 already sent today: 3 go now, the rest stay for the next run
    assert len(tally.pulled) == 3 and len(handler.received) == 3
    assert all(o.status is DeliveryStatus.SENT for o in tally.outcomes.values())
    ledger.close()


def test_invalid_address_never_reaches_the_wire(ctx: Context, prepared: PreparedMessage) -> None:
    handler = Handler()
    bad = Recipient("evil@example.com>\r\nRCPT TO:<other@example.com")
    tally = Tally([bad, Recipient("fine@example.com")])
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port), prepared)
    assert tally.status(bad.email) is DeliveryStatus.FAILED
    assert [r.rcpt_tos for r in handler.received] == [["fine@example.com"]]


def test_starttls_not_offered(ctx: Context, prepared: PreparedMessage) -> None:
    tally = Tally(people(1))
    with smtp_server(Handler()) as port:
        with pytest.raises(DistribError, match=rf"127.0.0.1:{port} does not offer STARTTLS"):
            tally.run(mailer(ctx, port, security="starttls"), prepared)
    assert tally.pulled == []


def test_through_the_delivery_loop_and_ledger(
    ctx: Context, edition: Edition, tmp_path: Path
) -> None:
    """The real claim/send/mark loop: sent rows carry the Message-ID, a hard bounce is
    suppressed, a 4xx stays deferred for the next run, and a rerun sends nothing twice."""
    from distrib.deliver import deliver_edition
    from distrib.ledger import open_ledger

    ledger = open_ledger(tmp_path / "ledger.sqlite")
    ed = ledger.create_edition(
        "digest", edition.post_keys, edition.subject, "", edition.html, edition.text
    )
    ctx.ledger = ledger
    prepared = prepare_message(ctx.settings, ed, key=KEY)
    handler = Handler(
        rcpt_replies={
            "gone@example.com": ["550 5.1.1 User unknown"],
            "later@example.com": ["451 4.3.2 Try again later"],
        }
    )
    everyone = people(5) + [Recipient("gone@example.com"), Recipient("later@example.com")]
    with smtp_server(handler) as port:
        report = deliver_edition(
            ledger, mailer(ctx, port, retries=0, connections=2), prepared, iter(everyone)
        )
        assert (report.sent, report.failed, report.deferred) == (5, 1, 1)
        assert not report.finished
        assert ledger.email_status(ed.id, "later@example.com") == "deferred"
        assert ledger.is_suppressed("gone@example.com")
        row = ledger.db.execute(
            "SELECT remote_id FROM email_deliveries WHERE address = ?", ("reader0@example.com",)
        ).fetchone()
        assert row[0] == prepared.message_id(Recipient("reader0@example.com"))
        # A rerun: the sent and failed are skipped; the deferred one waits for its time.
        again = deliver_edition(ledger, mailer(ctx, port), prepared, iter(everyone))
        assert again.sent == 0 and again.skipped == 7
    assert len(handler.received) == 5
    ledger.close()


def test_server_gone_mid_run_reports_the_pulled_deferred(
    ctx: Context, prepared: PreparedMessage
) -> None:
    from tests.mailers.smtpservers import one_session_server

    tally = Tally(people(10))
    with one_session_server() as (port, got):
        with pytest.raises(DistribError, match=rf"smtp 127.0.0.1:{port}: cannot connect"):
            tally.run(mailer(ctx, port), prepared)
    assert len(got) == 1
    # Every recipient pulled was reported once: the one accepted as sent, the ones in
    # flight deferred (retried by the next run); the rest were never pulled.
    assert set(tally.outcomes) == {r.email for r in tally.pulled}
    statuses = [o.status for o in tally.outcomes.values()]
    assert statuses.count(DeliveryStatus.SENT) == 1
    assert statuses.count(DeliveryStatus.DEFERRED) == len(tally.pulled) - 1 >= 1
    assert len(tally.pulled) <= 3


@pytest.mark.parametrize(
    ("stall_at", "expect"),
    [
        (
            "greeting",
            'during the greeting; check [email.smtp] security ("ssl" needs port 465) and port',
        ),
        (
            "auth",
            "during the login (AUTH); check [email.smtp] username and the password in $TEST_SMTP_PASSWORD",
        ),
    ],
)
def test_a_server_that_stalls_is_named_with_the_stage_and_its_fix(
    ctx: Context,
    prepared: PreparedMessage,
    monkeypatch: pytest.MonkeyPatch,
    stall_at: str,
    expect: str,
) -> None:
    import socket
    import threading

    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            if stall_at != "greeting":
                conn.sendall(b"220 stall.example ESMTP\r\n")
                conn.recv(1024)  # EHLO
                conn.sendall(b"250-stall.example\r\n250 AUTH PLAIN LOGIN\r\n")
                conn.recv(1024)  # AUTH PLAIN ...: never answered
            done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        m = mailer(ctx, port, timeout=0.5, username="news", password_env="TEST_SMTP_PASSWORD")
        with pytest.raises(DistribError) as e:
            Tally(people(1)).run(m, prepared)
    finally:
        done.set()
        listener.close()
    assert str(e.value).endswith(f"127.0.0.1:{port}: the server stopped answering {expect}")
    assert "s3cret" not in str(e.value)


@pytest.mark.parametrize("smtputf8", [True, False])
def test_non_ascii_local_part_needs_smtputf8(
    ctx: Context, prepared: PreparedMessage, smtputf8: bool
) -> None:
    """Issue 9: a non-ASCII local part was written raw into To: whatever the server
    offered.  With SMTPUTF8 it goes with the SMTPUTF8 parameter (RFC 6531) and a UTF-8
    To: (RFC 6532); without it, that recipient fails with the reason and the rest go."""
    handler = Handler()
    uni = Recipient("üser@bücher.example", "Jürgen")
    tally = Tally([uni, Recipient("fine@example.com")])
    with smtp_server(handler, enable_SMTPUTF8=smtputf8, decode_data=False) as port:
        tally.run(mailer(ctx, port), prepared)
    assert tally.status("fine@example.com") is DeliveryStatus.SENT
    by_rcpt = {r.rcpt_tos[0]: r for r in handler.received}
    if smtputf8:
        assert tally.status(uni.email) is DeliveryStatus.SENT
        got = by_rcpt["üser@xn--bcher-kva.example"]
        from email import message_from_string

        msg = message_from_string(got.data.decode("utf-8"), policy=policy.SMTPUTF8)
        assert msg["To"].addresses[0].addr_spec == "üser@xn--bcher-kva.example"
        assert msg["To"].addresses[0].display_name == "Jürgen"
    else:
        assert tally.status(uni.email) is DeliveryStatus.FAILED
        assert "SMTPUTF8" in tally.outcomes[uni.email].error
        assert list(by_rcpt) == ["fine@example.com"]


def test_messages_name_the_mailers_own_table(ctx: Context) -> None:
    """Issue 12: the mailer read its table's path as ``options.path`` (a Section calls it
    ``where``), so a message always said "email.smtp", even for an SMTP mailer registered
    under another name (a subclass at ``[email.relay]``)."""
    m = SmtpMailer(Section({"host": "127.0.0.1", "username": "ana"}, "email.relay"), ctx)
    with pytest.raises(ConfigError) as e:
        m.__enter__()
    assert str(e.value).startswith("email.relay.password_env: missing; username is set")
