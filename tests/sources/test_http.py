"""The shared HTTP client against a real server: conditional GET, redirects, caps, errors."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from distrib.http import FetchError, HttpClient, redact_url
from distrib.ledger import open_ledger


@pytest.fixture
def ledger(tmp_path):
    led = open_ledger(tmp_path / "l.sqlite")
    yield led
    led.close()


def test_conditional_get_304_returns_cached_body(httpserver: HTTPServer, ledger) -> None:
    seen: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(
            b"<rss>body</rss>",
            content_type="application/rss+xml",
            headers={"ETag": '"v1"', "Last-Modified": "Fri, 27 Nov 2026 10:00:00 GMT"},
        )

    httpserver.expect_request("/feed").respond_with_handler(handler)
    url = httpserver.url_for("/feed")
    with HttpClient(ledger) as client:
        first = client.get(url)
        second = client.get(url)
    assert (first.status, first.not_modified, first.body) == (200, False, b"<rss>body</rss>")
    assert (second.status, second.not_modified, second.body) == (304, True, b"<rss>body</rss>")
    assert "If-None-Match" not in seen[0]
    assert seen[1]["If-None-Match"] == '"v1"'
    assert seen[1]["If-Modified-Since"] == "Fri, 27 Nov 2026 10:00:00 GMT"


def test_no_ledger_no_conditional(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("a", headers={"ETag": '"e"'})
    with HttpClient(None) as client:
        assert client.get(httpserver.url_for("/x")).body == b"a"
        assert client.get(httpserver.url_for("/x")).not_modified is False


def test_redirects_followed_up_to_five(httpserver: HTTPServer) -> None:
    for i in range(7):
        httpserver.expect_request(f"/r{i}").respond_with_data(
            "", status=301, headers={"Location": f"/r{i + 1}"}
        )
    httpserver.expect_request("/r7").respond_with_data("end")
    with HttpClient() as client:
        resp = client.get(httpserver.url_for("/r3"))
        assert resp.body == b"end" and resp.url == httpserver.url_for("/r7")
        with pytest.raises(
            FetchError, match=r"more than 5 redirects from .*/r0; use the final URL"
        ):
            client.get(httpserver.url_for("/r0"))


def test_size_cap_while_streaming(httpserver: HTTPServer) -> None:
    def chunks():
        for _ in range(100):
            yield b"x" * 10_000

    httpserver.expect_request("/big").respond_with_handler(lambda r: Response(chunks()))
    httpserver.expect_request("/declared").respond_with_data(b"y" * 300_000)
    with HttpClient(max_bytes=200_000) as client:
        with pytest.raises(FetchError, match="an answer over 0 MB from"):
            client.get(httpserver.url_for("/big"))
        with pytest.raises(FetchError):
            client.get(httpserver.url_for("/declared"))


def test_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with (
        HttpClient(timeout=0.2) as client,
        pytest.raises(FetchError, match=r"no answer within 0.2 s"),
    ):
        client.get(httpserver.url_for("/slow"))


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check the credentials"),
        (404, "check the source's url"),
        (429, "rate limiting"),
        (503, "the server failed"),
    ],
)
def test_status_errors(httpserver: HTTPServer, status: int, hint: str) -> None:
    httpserver.expect_request("/s").respond_with_data("err", status=status)
    with HttpClient() as client, pytest.raises(FetchError) as e:
        client.get(httpserver.url_for("/s"))
    assert str(e.value).startswith(f"HTTP {status} from http://")
    assert hint in str(e.value)
    assert e.value.status == status


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://files.example/feed.xml"])
def test_a_redirect_away_from_http_is_named_as_such(httpserver: HTTPServer, location: str) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    with HttpClient() as client, pytest.raises(FetchError) as e:
        client.get(httpserver.url_for("/feed"))
    assert (
        str(e.value)
        == f"a redirect to a URL that is not http(s) from {httpserver.url_for('/feed')}; check the source's url"
    )


def test_connection_refused_and_bad_urls() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with HttpClient(timeout=2) as client:
        with pytest.raises(FetchError, match="cannot connect"):
            client.get(f"http://127.0.0.1:{port}/feed")
        with pytest.raises(FetchError, match="not an http"):
            client.get("file:///etc/passwd")


def test_credentials_never_in_messages(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/private").respond_with_data("no", status=403)
    url = (
        httpserver.url_for("/private").replace("http://", "http://alice:s3cret@")
        + "?api_key=TOPSECRET&page=2"
    )
    with HttpClient() as client, pytest.raises(FetchError) as e:
        client.get(url)
    text = str(e.value)
    assert "s3cret" not in text and "TOPSECRET" not in text and "alice" not in text
    assert "page=2" in text
    assert redact_url("https://u:p@h.example/x?token=abc") == "https://h.example/x?token=***"


def test_basic_auth_is_sent(httpserver: HTTPServer) -> None:
    got = {}
    httpserver.expect_request("/auth").respond_with_handler(
        lambda r: (got.update(auth=r.headers.get("Authorization")), Response("ok"))[1]
    )
    with HttpClient() as client:
        client.get(httpserver.url_for("/auth"), auth=("editor", "app pass"))
    assert got["auth"].startswith("Basic ")


@pytest.fixture
def threaded_server():
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_get_many_runs_concurrently_and_keeps_order(threaded_server: HTTPServer, ledger) -> None:
    httpserver = threaded_server
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.15)
        with lock:
            active["now"] -= 1
        return Response(request.path, headers={"ETag": f'"{request.path}"'})

    for i in range(4):
        httpserver.expect_request(f"/c{i}").respond_with_handler(handler)
    httpserver.expect_request("/c-missing").respond_with_data("x", status=404)
    urls = [httpserver.url_for(f"/c{i}") for i in range(4)] + [httpserver.url_for("/c-missing")]
    with HttpClient(ledger) as client:
        results = client.get_many(urls, max_workers=4)
    assert [r.body for r in results[:4]] == [b"/c0", b"/c1", b"/c2", b"/c3"]
    assert isinstance(results[4], FetchError)
    assert active["max"] >= 2
    assert ledger.http_cache_get(urls[2])[0] == '"/c2"'
