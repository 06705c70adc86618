"""Request smuggling: a body the server does not read, or frames differently from a
proxy, must never become a second request on the same connection.

Each case sends one request whose body (or what follows it) is a complete second
request for /healthz.  The server must give exactly one response, and either refuse
the request (400/413) and close the connection, or have read the body as a body.
"""

from __future__ import annotations

import re

import pytest

from distrib.unsubscribe import make_token
from tests.serve.conftest import exchange

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: news.example\r\n\r\n"


def _statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"(?m)^HTTP/1\.[01] (\d{3}) ", raw)]


def _request(
    endpoint, method: str, headers: list[str], body: bytes
) -> tuple[list[int], bool, bytes]:
    # The token does not matter here (a bad one is a 400 that keeps the connection):
    # how the server frames what follows does.
    head = f"{method} /letters/unsubscribe?token=not-a-token HTTP/1.1\r\nHost: news.example\r\n"
    head += "".join(h + "\r\n" for h in headers) + "\r\n"
    raw, closed = exchange(endpoint.host, endpoint.port, head.encode() + body)
    return _statuses(raw), closed, raw


def _one_response_then_refused_or_closed(statuses: list[int], closed: bool, raw: bytes) -> None:
    assert len(statuses) == 1, f"{len(statuses)} responses on one connection: {raw[:600]!r}"
    assert statuses[0] in (400, 413) or closed, (statuses, closed)
    assert b"\r\n\r\nok\n" not in raw  # the smuggled /healthz was never answered


def test_get_with_a_body(endpoint) -> None:
    statuses, closed, raw = _request(
        endpoint, "GET", [f"Content-Length: {len(SMUGGLED)}"], SMUGGLED
    )
    _one_response_then_refused_or_closed(statuses, closed, raw)


def test_head_with_a_chunked_body(endpoint) -> None:
    body = f"{len(SMUGGLED):x}\r\n".encode() + SMUGGLED + b"\r\n0\r\n\r\n"
    statuses, closed, raw = _request(endpoint, "HEAD", ["Transfer-Encoding: chunked"], body)
    _one_response_then_refused_or_closed(statuses, closed, raw)


def test_post_over_64_kib(endpoint) -> None:
    body = SMUGGLED * 2 + b"x" * (70 * 1024)
    statuses, closed, raw = _request(
        endpoint,
        "POST",
        [f"Content-Length: {len(body)}", "Content-Type: application/x-www-form-urlencoded"],
        body,
    )
    _one_response_then_refused_or_closed(statuses, closed, raw)
    assert statuses == [413] and closed


@pytest.mark.parametrize("length", ["abc", "-1", "0x26", "+38", "38 38", ""])
def test_malformed_content_length(endpoint, length: str) -> None:
    statuses, closed, raw = _request(endpoint, "POST", [f"Content-Length: {length}"], SMUGGLED)
    _one_response_then_refused_or_closed(statuses, closed, raw)
    assert statuses == [400] and closed


def test_two_different_content_lengths(endpoint) -> None:
    body = b"List-Unsubscribe=One-Click" + SMUGGLED
    statuses, closed, raw = _request(
        endpoint, "POST", ["Content-Length: 26", f"Content-Length: {len(body)}"], body
    )
    _one_response_then_refused_or_closed(statuses, closed, raw)
    assert statuses == [400] and closed


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_content_length_with_chunked(endpoint, order: str) -> None:
    # CL.TE: a proxy going by Content-Length forwards the whole thing, a server going by
    # the chunks ends the body at "0" and reads the rest as a new request.
    body = b"0\r\n\r\n" + SMUGGLED
    cl, te = f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"
    statuses, closed, raw = _request(
        endpoint, "POST", [cl, te] if order == "cl-first" else [te, cl], body
    )
    _one_response_then_refused_or_closed(statuses, closed, raw)
    assert statuses == [400] and closed


def test_obfuscated_transfer_encoding(endpoint) -> None:
    body = b"0\r\n\r\n" + SMUGGLED
    statuses, closed, raw = _request(
        endpoint, "POST", ["Transfer-Encoding: xchunked", f"Content-Length: {len(body)}"], body
    )
    _one_response_then_refused_or_closed(statuses, closed, raw)


def test_a_well_framed_keep_alive_pair_still_works(endpoint) -> None:
    # The strictness costs nothing to a correct client: two requests, two answers.
    body = b"List-Unsubscribe=One-Click"
    token = make_token(endpoint.key, "reader1@example.org", "digest")
    first = (
        f"POST /letters/unsubscribe?token={token} HTTP/1.1\r\nHost: news.example\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    raw, _ = exchange(endpoint.host, endpoint.port, first + SMUGGLED)
    assert _statuses(raw) == [200, 200]


def test_other_methods_absolute_targets_and_oversized_heads(endpoint) -> None:
    raw, _ = exchange(
        endpoint.host,
        endpoint.port,
        b"PUT /letters/unsubscribe?token=x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    )
    assert _statuses(raw) == [405] and b"Allow: GET, HEAD, POST" in raw
    raw, _ = exchange(
        endpoint.host,
        endpoint.port,
        b"GET http://news.example/healthz HTTP/1.1\r\nHost: news.example\r\n\r\n",
    )
    assert _statuses(raw) == [200] and raw.endswith(b"\r\n\r\nok\n")
    huge = (
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n" + SMUGGLED
    )
    raw, closed = exchange(endpoint.host, endpoint.port, huge)
    assert _statuses(raw) == [431] and closed


@pytest.mark.parametrize(
    "headers",
    [
        ["Transfer-Encoding: chunked, chunked"],
        ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
        ["Content_Length: 34"],
        ["Transfer_Encoding: chunked"],
    ],
)
def test_framing_a_proxy_might_read_differently(endpoint, headers: list[str]) -> None:
    # Each is framed one way by waitress and another way by some proxy: refused.
    statuses, closed, raw = _request(endpoint, "POST", headers, b"0\r\n\r\n" + SMUGGLED)
    _one_response_then_refused_or_closed(statuses, closed, raw)
    assert statuses == [400] and closed


def test_a_chunked_one_click_post_still_works(endpoint) -> None:
    import httpx

    token = make_token(endpoint.key, "reader0@example.org", "digest")
    r = httpx.post(
        f"{endpoint.url}/letters/unsubscribe",
        params={"token": token},
        content=iter([b"List-Unsubscribe=", b"One-Click"]),  # no length: sent chunked
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.request.headers["transfer-encoding"] == "chunked"
