"""Compressed answers: decoded correctly, and a gzip bomb stopped at the size cap
without inflating it whole in memory."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from distrib.http import FetchError, HttpClient

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>' * 50


@pytest.mark.parametrize(
    "encoding,body",
    [
        ("gzip", gzip.compress(FEED)),
        ("deflate", zlib.compress(FEED)),  # zlib-wrapped, as the RFC says
        ("deflate", zlib.compress(FEED)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_compressed_bodies_decode(httpserver, encoding: str, body: bytes):
    httpserver.expect_request("/feed").respond_with_data(
        body, headers={"Content-Encoding": encoding}
    )
    with HttpClient() as client:
        assert client.get(httpserver.url_for("/feed")).body == FEED


def test_gzip_bomb_is_refused_without_inflating_it(httpserver):
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)  # ~200 KB on the wire
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        with (
            HttpClient(max_bytes=5_000_000) as client,
            pytest.raises(FetchError, match="over 5 MB"),
        ):
            client.get(httpserver.url_for("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000, peak


def test_corrupt_gzip_is_one_clear_error(httpserver):
    httpserver.expect_request("/bad").respond_with_data(
        b"\x1f\x8bnot really gzip", headers={"Content-Encoding": "gzip"}
    )
    with HttpClient() as client, pytest.raises(FetchError, match="cannot be decompressed"):
        client.get(httpserver.url_for("/bad"))
