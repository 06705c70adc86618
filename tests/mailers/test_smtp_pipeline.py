"""The pipelined SMTP exchange's rarer turns, each recipient reported exactly once.

The common turns (sent, refused at RCPT or at the end of data, a drop mid-message, the
sender refused) are in test_smtp.py.  These are the others: the DATA command itself
refused, a server that answers DATA with 354 after refusing the only recipient, a
reconnect that lands on a server without PIPELINING, and a recipient whose address
cannot go out found while it is prefetched.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from distrib.adapters import Context
from distrib.model import DeliveryStatus, Edition, Recipient
from distrib.render.message import PreparedMessage, prepare_message
from tests.mailers.conftest import KEY
from tests.mailers.smtpservers import Handler, smtp_server
from tests.mailers.test_smtp import Tally, mailer, people


@pytest.fixture
def prepared(ctx: Context, edition: Edition) -> PreparedMessage:
    return prepare_message(ctx.settings, edition, key=KEY)


@contextmanager
def scripted_server(
    rcpt_replies: dict[str, str], data_command_replies: dict[str, str]
) -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    """A bare SMTP server offering PIPELINING, one session at a time, whose replies to
    RCPT TO and to the DATA command are scripted per recipient (aiosmtpd cannot refuse
    the DATA command of a transaction whose recipient it took, nor take DATA after
    refusing every recipient).  Yields (port, [(recipient, content) accepted])."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    got: list[tuple[str, bytes]] = []

    def session(conn: socket.socket) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 scripted.example ESMTP\r\n")
        rcpt, accepted, data = "", False, None
        for line in f:
            if data is not None:
                if line != b".\r\n":
                    data.append(line)
                    continue
                if accepted:
                    got.append((rcpt, b"".join(data)))
                    conn.sendall(b"250 2.0.0 queued\r\n")
                else:
                    conn.sendall(b"554 5.5.1 No valid recipients\r\n")
                data = None
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-scripted.example\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL":
                rcpt, accepted = "", False
                conn.sendall(b"250 OK\r\n")
            elif verb == b"RCPT":
                rcpt = line.decode().split("<", 1)[1].split(">", 1)[0]
                reply = rcpt_replies.get(rcpt, "250 OK")
                accepted = reply.startswith("2")
                conn.sendall(reply.encode() + b"\r\n")
            elif verb == b"DATA":
                default = "354 go ahead" if accepted else "554 5.5.1 No valid recipients"
                reply = data_command_replies.get(rcpt, default)
                if reply.startswith("354"):
                    data = []
                conn.sendall(reply.encode() + b"\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:  # RSET, NOOP
                rcpt, accepted = "", False
                conn.sendall(b"250 OK\r\n")

    stop = threading.Event()
    listener.settimeout(0.05)  # a closed listener does not wake a blocked accept()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            with conn:
                session(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, got
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_data_command_refused_is_each_recipients_outcome(
    ctx: Context, prepared: PreparedMessage
) -> None:
    names = ["ok1", "spam", "busy", "ok2"]
    tally = Tally([Recipient(f"{n}@example.com") for n in names])
    with scripted_server(
        rcpt_replies={},
        data_command_replies={
            "spam@example.com": "554 5.7.1 Transaction failed",
            "busy@example.com": "451 4.3.0 Try again later",
        },
    ) as (port, got):
        tally.run(mailer(ctx, port, retries=0), prepared)
    out = tally.outcomes
    assert set(out) == {f"{n}@example.com" for n in names}
    assert out["ok1@example.com"].status is DeliveryStatus.SENT
    assert out["spam@example.com"].status is DeliveryStatus.FAILED
    assert "5.7.1" in out["spam@example.com"].error and not out["spam@example.com"].bounce
    assert out["busy@example.com"].status is DeliveryStatus.DEFERRED
    assert "4.3.0" in out["busy@example.com"].error
    # after each refusal the next envelope starts with RSET, so ok2's replies line up
    assert out["ok2@example.com"].status is DeliveryStatus.SENT
    assert [r for r, _ in got] == ["ok1@example.com", "ok2@example.com"]


def test_data_taken_after_the_recipient_was_refused(
    ctx: Context, prepared: PreparedMessage
) -> None:
    tally = Tally([Recipient("gone@example.com"), Recipient("fine@example.com")])
    with scripted_server(
        rcpt_replies={"gone@example.com": "550 5.1.1 User unknown"},
        data_command_replies={"gone@example.com": "354 go ahead"},
    ) as (port, got):
        tally.run(mailer(ctx, port), prepared)
    # the empty message is ended at once; the refusal is the RCPT's, a hard bounce
    gone = tally.outcomes["gone@example.com"]
    assert gone.status is DeliveryStatus.FAILED and gone.bounce and "5.1.1" in gone.error
    assert tally.status("fine@example.com") is DeliveryStatus.SENT
    assert [r for r, _ in got] == ["fine@example.com"]
    assert got[0][1] == prepared.for_recipient(Recipient("fine@example.com"))


class PipeliningOnce(Handler):
    """Offers PIPELINING to the first session only."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        self.pipelining = False
        return responses


def test_reconnect_to_a_server_without_pipelining_goes_on_one_command_at_a_time(
    ctx: Context, prepared: PreparedMessage
) -> None:
    # One connection, so the next message is prefetched while the server reads the
    # current one: the drop leaves one in flight and one pulled but never written.
    handler = PipeliningOnce(drop_once={"reader2@example.com"})
    tally = Tally(people(6))
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port, connections=1), prepared)
    assert len(handler.sessions) == 2
    assert len(tally.outcomes) == 6
    assert all(o.status is DeliveryStatus.SENT for o in tally.outcomes.values())
    # each message arrived exactly once
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(
        r.email for r in tally.recipients
    )


def test_a_prefetched_recipient_that_cannot_go_is_failed_once(
    ctx: Context, prepared: PreparedMessage
) -> None:
    bad = Recipient("evil@example.com>\r\nRCPT TO:<other@example.com")
    tally = Tally([Recipient("first@example.com"), bad, Recipient("last@example.com")])
    handler = Handler()
    with smtp_server(handler) as port:
        tally.run(mailer(ctx, port, connections=1), prepared)
    assert tally.status(bad.email) is DeliveryStatus.FAILED
    assert tally.status("first@example.com") is DeliveryStatus.SENT
    assert tally.status("last@example.com") is DeliveryStatus.SENT
    assert [r.rcpt_tos for r in handler.received] == [["first@example.com"], ["last@example.com"]]
