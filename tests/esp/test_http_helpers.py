"""The shared batching helpers: every pulled recipient reported once, lazy pulls,
retries with short waits only, pacing, Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from distrib.errors import DeliveryError
from distrib.mailers._http import (
    Pacer,
    Transient,
    deliver_in_batches,
    display_address,
    retry_after,
    with_retries,
)
from distrib.model import DeliveryStatus, Outcome

from .conftest import Run, people


def test_a_bug_mid_batch_still_reports_everyone_pulled() -> None:
    def send(batch):
        yield 0, Outcome.sent("x")
        raise RuntimeError("boom")

    run = Run(window=3)
    with pytest.raises(RuntimeError):
        deliver_in_batches("t", run.recipients(people(7)), 3, send, run.report)
    assert len(run.pulled) == 3
    assert [o.status for _, o in run.reported] == [
        DeliveryStatus.SENT,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.DEFERRED,
    ]


def test_missing_answers_are_deferred_and_duplicates_ignored() -> None:
    def send(batch):
        yield 1, Outcome.sent("a")
        yield 1, Outcome.failed("again")  # a confused provider: reported once only

    run = Run(window=2)
    deliver_in_batches("t", run.recipients(people(4)), 2, send, run.report)
    # each batch has one deferred ("no answer") and one sent: not wholly deferred, so all 4 go
    assert len(run.reported) == 4
    assert [o.status for _, o in run.reported].count(DeliveryStatus.SENT) == 2


def test_config_error_defers_the_batch_and_goes_up() -> None:
    def send(batch):
        raise DeliveryError("t: bad key; fix it")
        yield  # pragma: no cover

    run = Run(window=2)
    with pytest.raises(DeliveryError):
        deliver_in_batches("t", run.recipients(people(5)), 2, send, run.report)
    assert [o.error for _, o in run.reported] == ["t: bad key; fix it"] * 2


def test_with_retries_waits_briefly_then_gives_up() -> None:
    waits: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        raise Transient("busy")

    with pytest.raises(Transient):
        with_retries(flaky, attempts=3, sleep=waits.append)
    assert waits == [1.0, 2.0] and len(calls) == 3

    waits.clear()

    def long_wait():
        raise Transient("later", retry_after=3600)

    with pytest.raises(Transient):
        with_retries(long_wait, sleep=waits.append)
    assert waits == []  # a long Retry-After defers to the next run instead


def test_pacer_spaces_batches() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pace = Pacer(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pace(2)  # 2 messages per batch at 4/s: a batch every 0.5 s
    assert slept == [0.5, 0.5]
    Pacer(0)(100)  # no limit: never sleeps


def test_retry_after_forms() -> None:
    req = httpx.Request("POST", "https://x.example/")
    assert retry_after(httpx.Response(429, headers={"Retry-After": "30"}, request=req)) == 30
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    got = retry_after(httpx.Response(429, headers={"Retry-After": later}, request=req))
    assert got is not None and 60 < got <= 120
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"}, request=req)) is None
    assert retry_after(httpx.Response(429, request=req)) is None


def test_display_address_quotes() -> None:
    assert (
        display_address('Ann "The Tide" O\'Neil', "ann@example.org")
        == '"Ann \\"The Tide\\" O\'Neil" <ann@example.org>'
    )
    assert display_address("", "a@example.org") == "a@example.org"


# --- what is retried: only what provably never reached the provider --------------------


def _post(url: str, *, repeatable: bool = False, timeout: float = 5.0) -> httpx.Response:
    from distrib.mailers._http import check_transient, transport_guard

    with httpx.Client(timeout=httpx.Timeout(timeout)) as client:
        response = transport_guard(
            "esp", lambda: client.post(url, content=b"{}"), repeatable=repeatable
        )
        check_transient(response, "esp", repeatable=repeatable)
        return response


def test_a_refused_connection_is_transient() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused
        with pytest.raises(Transient, match="could not connect"):
            _post(f"http://127.0.0.1:{port}/send")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "Transient"), (503, "Transient"), (500, "InDoubt"), (502, "InDoubt"), (504, "InDoubt")],
)
def test_server_answers_that_may_follow_an_accepted_request_are_in_doubt(
    httpserver, status, kind
) -> None:
    from distrib.mailers import _http

    httpserver.expect_request("/send").respond_with_json({"message": "x"}, status=status)
    with pytest.raises(getattr(_http, kind)):
        _post(httpserver.url_for("/send"))
    if kind == "InDoubt":  # a request that may be repeated (a GET, an idempotency key) is retried
        with pytest.raises(Transient):
            _post(httpserver.url_for("/send"), repeatable=True)


def test_a_read_timeout_is_in_doubt(threaded_server) -> None:
    import time as _time

    from distrib.mailers._http import InDoubt

    def slow(request):
        _time.sleep(1.5)
        from werkzeug import Response

        return Response("{}", 200)

    threaded_server.expect_request("/send").respond_with_handler(slow)
    with pytest.raises(InDoubt, match="no answer in time"):
        _post(threaded_server.url_for("/send"), timeout=0.5)
