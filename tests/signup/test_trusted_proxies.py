"""`distrib serve` behind a reverse proxy: the per-IP signup limit counts the client that
a trusted proxy names in X-Forwarded-For or Forwarded, never a header a client sent to
serve directly (every test client here connects from 127.0.0.1)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from distrib.web import client_address, parse_networks
from tests.conftest import SmtpServer, run_distrib
from tests.signup.conftest import SECRET, Service, _config, _start

LIMIT = 3


def _proxied(
    tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, serve: str
) -> Iterator[Service]:
    yield from _start(tmp_path, smtp, monkeypatch, f"[signup]\nper_ip = {LIMIT}\n{serve}")


@pytest.fixture
def behind_proxy(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    yield from _proxied(
        tmp_path,
        smtp_server,
        monkeypatch,
        '[serve]\ntrusted_proxies = ["10.0.0.0/8", "127.0.0.1"]\n',
    )


@pytest.fixture
def no_proxy(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    yield from _proxied(tmp_path, smtp_server, monkeypatch, "")


def _codes(service: Service, headers: list[dict[str, str]]) -> list[int]:
    return [
        service.http.post("/subscribe", data={"email": f"p{i}@example.org"}, headers=h).status_code
        for i, h in enumerate(headers)
    ]


def test_two_forwarded_clients_each_get_their_own_limit(behind_proxy: Service):
    a = {"X-Forwarded-For": "203.0.113.7"}
    b = {"X-Forwarded-For": "198.51.100.9"}
    # before: the proxy's address counted for both, and b got 429 at once
    assert _codes(behind_proxy, [a] * LIMIT + [b] * LIMIT) == [200] * (2 * LIMIT)
    assert _codes(behind_proxy, [a, b]) == [429, 429]


def test_forwarded_header_of_rfc_7239_names_the_client(behind_proxy: Service):
    a = {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}
    b = {"Forwarded": "for=192.0.2.60;proto=http;by=203.0.113.43"}
    assert _codes(behind_proxy, [a] * LIMIT + [b] * LIMIT) == [200] * (2 * LIMIT)
    assert _codes(behind_proxy, [a, b]) == [429, 429]


def test_without_trusted_proxies_the_header_is_ignored(no_proxy: Service):
    spoofed = [{"X-Forwarded-For": f"203.0.113.{i}"} for i in range(LIMIT + 2)]
    assert _codes(no_proxy, spoofed) == [200] * LIMIT + [429, 429]


def test_a_spoofed_hop_before_the_real_client_is_ignored(behind_proxy: Service):
    # The client sent "X-Forwarded-For: <anything>"; the proxy appended the real address
    # (and a second, internal proxy appended the first proxy's).
    spoofed = [{"X-Forwarded-For": f"203.0.113.{i}, 198.51.100.9, 10.1.2.3"} for i in range(5)]
    assert _codes(behind_proxy, spoofed) == [200] * LIMIT + [429, 429]


def test_a_malformed_header_counts_the_peer(behind_proxy: Service):
    bad = [
        {"X-Forwarded-For": "not-an-address"},
        {"X-Forwarded-For": "203.0.113.7,,"},
        {"Forwarded": "for=unknown"},
        {"Forwarded": "proto=https"},
    ]
    # four different values, one client (the peer, 127.0.0.1): its limit is reached
    assert _codes(behind_proxy, bad + [{}]) == [200] * LIMIT + [429, 429]


NETS = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.7"}, "203.0.113.7"),
        ("10.9.8.7", {"x-forwarded-for": "1.1.1.1, 203.0.113.7, 10.0.0.2"}, "203.0.113.7"),
        ("::1", {"x-forwarded-for": "2001:db8::5"}, "2001:db8::5"),
        ("::ffff:127.0.0.1", {"x-forwarded-for": "203.0.113.7"}, "203.0.113.7"),
        ("127.0.0.1", {"x-forwarded-for": "10.0.0.1, 10.0.0.2"}, "10.0.0.1"),  # all trusted
        ("127.0.0.1", {"x-forwarded-for": "garbage, 203.0.113.7"}, "203.0.113.7"),
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.7, garbage"}, "127.0.0.1"),
        ("127.0.0.1", {"x-forwarded-for": ""}, "127.0.0.1"),
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.7:8080"}, "203.0.113.7"),
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.7:http"}, "127.0.0.1"),
        ("127.0.0.1", {"x-forwarded-for": "[2001:db8::5]:443"}, "2001:db8::5"),
        ("127.0.0.1", {"x-forwarded-for": "[2001:db8::5]junk"}, "127.0.0.1"),
        ("127.0.0.1", {"x-forwarded-for": '"203.0.113.7'}, "127.0.0.1"),
        ("127.0.0.1", {"x-forwarded-for": "::ffff:203.0.113.7"}, "203.0.113.7"),
        ("127.0.0.1", {"forwarded": "for=192.0.2.43, for=198.51.100.17"}, "198.51.100.17"),
        ("127.0.0.1", {"forwarded": 'For="_gazonk"'}, "127.0.0.1"),
        ("127.0.0.1", {"forwarded": "for=192.0.2.43, proto=https"}, "127.0.0.1"),
        ("127.0.0.1", {}, "127.0.0.1"),
        ("203.0.113.50", {"x-forwarded-for": "198.51.100.1"}, "203.0.113.50"),  # untrusted
        ("203.0.113.50", {"forwarded": "for=198.51.100.1"}, "203.0.113.50"),
    ],
)
def test_client_address(peer: str, headers: dict[str, str], expected: str):
    assert client_address(peer, headers, NETS) == expected


def test_no_trusted_proxies_trusts_no_header():
    assert client_address("127.0.0.1", {"x-forwarded-for": "203.0.113.7"}, ()) == "127.0.0.1"


def test_parse_networks():
    assert parse_networks(["10.0.0.0/8", "::1"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1"),
    )
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.300"])


@pytest.mark.parametrize(
    "value",
    ['["10.0.0.0/33"]', '["nginx"]', '"127.0.0.1"', "[127]"],
)
def test_an_invalid_trusted_proxy_is_a_config_error(
    tmp_path: Path, smtp_server: SmtpServer, value: str
):
    path = _config(tmp_path, smtp_server, f"[serve]\ntrusted_proxies = {value}\n")
    out = run_distrib(
        "serve", "--config", str(path), "--port", "65000", env={"DISTRIB_SIGNUP_SECRET": SECRET}
    )
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "serve.trusted_proxies" in lines[0]
    assert "10.0.0.0/8" in lines[0]  # the fix: what an entry looks like
    assert "Traceback" not in out.stderr
