"""Compression bombs stop at the size cap, whatever the coding chain, with little memory.

A real HTTP server on 127.0.0.1 answers a feed, an error page and a share image with
a few KB that inflate to 512 MiB: "gzip, gzip", "deflate, gzip", zstd, br.  Each fetch
runs in its own process, which reports its peak memory: under 100 MB for every one,
and a one-line answer.  The peak is VmHWM of /proc/self/status, the high-water mark of
the process's own memory: getrusage's maxrss also counts what the forked test process
held before exec (Linux keeps it across execve), which is not the fetch's doing.  Deeply nested JSON from a JSON Feed or the
WordPress API is one line naming the source, not "unexpected error (RecursionError)".
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from .conftest import REPO, run_distrib

BOMB_SIZE = 512 * 1024 * 1024
MiB = 1024 * 1024


def _gzip_stream(size: int) -> bytes:
    """gzip of ``size`` zero bytes, made a MiB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    parts = [packer.compress(zeros) for _ in range(size // MiB)]
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bombs() -> dict[str, tuple[bytes, str]]:
    """name -> (body, Content-Encoding)."""
    inner = _gzip_stream(BOMB_SIZE)
    out = {
        "gzip-gzip": (gzip.compress(inner, 9), "gzip, gzip"),
        "gzip": (inner, "gzip"),
    }
    # a zlib-wrapped deflate layer under a gzip one: "deflate, gzip"
    deflated = zlib.compressobj(9)
    zeros = bytes(MiB)
    raw = b"".join(deflated.compress(zeros) for _ in range(BOMB_SIZE // MiB)) + deflated.flush()
    out["deflate-gzip"] = (gzip.compress(raw, 9), "deflate, gzip")
    try:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=19)
        chunker = cctx.compressobj()
        out["zstd"] = (
            b"".join(chunker.compress(zeros) for _ in range(BOMB_SIZE // MiB)) + chunker.flush(),
            "zstd",
        )
    except ImportError:
        out["zstd"] = (b"\x28\xb5\x2f\xfd" + bytes(64), "zstd")  # refused before any decoding
    out["br"] = (b"\x1b\xff\xff\x7f" + bytes(64), "br")
    return out


PEAK = textwrap.dedent(
    """
    def peak_mb():
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    """
)

FETCH = PEAK + textwrap.dedent(
    """
    import json, sys
    from distrib.http import FetchError, HttpClient

    url = sys.argv[1]
    with HttpClient(max_bytes=20_000_000) as http:
        try:
            r = http.get(url)
            result = {"ok": len(r.body)}
        except FetchError as e:
            result = {"error": str(e), "status": e.status, "body": len(e.body)}
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))
    """
)

IMAGE = PEAK + textwrap.dedent(
    """
    import json, logging, sys
    from pathlib import Path
    from tests.channels.conftest import Env

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    env = Env(Path(sys.argv[2]), None)
    _, [channel] = env.channels({"name": "o", "type": "outbox"})
    got = channel.fetch_image(sys.argv[1], 5_000_000)
    print(json.dumps({"got": None if got is None else len(got[0]),
                      "peak_mb": peak_mb()}))
    """
)


def _run(code: str, *args: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def _serve(
    httpserver: HTTPServer,
    path: str,
    body: bytes,
    encoding: str,
    *,
    status: int = 200,
    ctype: str = "application/rss+xml",
) -> str:
    httpserver.expect_request(path).respond_with_response(
        Response(body, status=status, headers={"Content-Type": ctype, "Content-Encoding": encoding})
    )
    return httpserver.url_for(path)


@pytest.mark.parametrize("name", ["gzip-gzip", "deflate-gzip", "gzip", "zstd", "br"])
def test_a_bomb_feed_stops_at_the_cap_in_little_memory(httpserver: HTTPServer, bombs, name: str):
    body, encoding = bombs[name]
    url = _serve(httpserver, "/feed.xml", body, encoding)
    result, _ = _run(FETCH, url)
    assert result["peak_mb"] < 100, result
    if name in ("zstd", "br"):
        assert result["error"] == (
            f"an answer in Content-Encoding {encoding!r}, which distrib did not ask for from {url}; "
            "the server must honour Accept-Encoding: gzip, deflate"
        )
    else:
        assert result["error"] == (
            f"an answer over 20 MB from {url}; point the source at a smaller feed (fewer items per page)"
        )
    ((request, _),) = httpserver.log
    assert request.headers["Accept-Encoding"] == "gzip, deflate"


def test_a_bomb_error_page_is_read_only_up_to_its_cap(httpserver: HTTPServer, bombs):
    body, encoding = bombs["gzip-gzip"]
    url = _serve(httpserver, "/feed.xml", body, encoding, status=500, ctype="text/html")
    result, _ = _run(FETCH, url)
    assert result["peak_mb"] < 100, result
    assert result["status"] == 500 and result["body"] == 65_536


def test_honest_compressed_feeds_still_read(httpserver: HTTPServer):
    text = b"<rss><channel><title>x</title></channel></rss>" * 1000
    deflate_raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    cases = {
        "/gz": (gzip.compress(text), "gzip"),
        "/zlib": (zlib.compress(text), "deflate"),
        "/raw-deflate": (deflate_raw.compress(text) + deflate_raw.flush(), "deflate"),
        "/gz-gz": (gzip.compress(gzip.compress(text)), "gzip, gzip"),
        "/id": (gzip.compress(text), "identity, gzip"),
    }
    for path, (body, encoding) in cases.items():
        url = _serve(httpserver, path, body, encoding)
        result, _ = _run(FETCH, url)
        assert result == {"ok": len(text), "peak_mb": result["peak_mb"]}, (path, result)


@pytest.mark.parametrize("name", ["gzip-gzip", "zstd"])
def test_a_bomb_share_image_is_dropped_in_little_memory(
    httpserver: HTTPServer, bombs, tmp_path: Path, name: str
):
    body, encoding = bombs[name]
    url = _serve(httpserver, "/pic.png", body, encoding, ctype="image/png")
    result, stderr = _run(IMAGE, url, str(tmp_path))
    assert result["got"] is None
    assert result["peak_mb"] < 100, result
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    if name == "zstd":
        assert (
            lines[0]
            == f"channel o: image {url} came in Content-Encoding 'zstd', not asked for; posting without it"
        )
    else:
        assert lines[0] == f"channel o: image {url} is over 5000000 bytes; posting without it"


def test_an_honest_gzipped_image_still_arrives(httpserver: HTTPServer, tmp_path: Path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    url = _serve(httpserver, "/pic.png", gzip.compress(png), "gzip", ctype="image/png")
    result, _ = _run(IMAGE, url, str(tmp_path))
    assert result["got"] == len(png)


# --- deeply nested JSON ---------------------------------------------------------------


def test_deeply_nested_json_names_the_source(make_config, httpserver: HTTPServer, tmp_path: Path):
    deep = b"[" * 200_000 + b"]" * 200_000
    httpserver.expect_request("/feed.json").respond_with_data(
        deep, content_type="application/feed+json"
    )
    deep_obj = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_data(
        deep_obj, content_type="application/json"
    )
    cfg = make_config(
        sources=f"""
        [[sources]]
        name = "jsonfeed"
        type = "feed"
        url = "{httpserver.url_for("/feed.json")}"

        [[sources]]
        name = "blog"
        type = "wordpress"
        url = "{httpserver.url_for("/")}"
        """
    )
    proc = run_distrib("posts", "--config", str(cfg))
    lines = proc.stderr.splitlines()
    assert "RecursionError" not in proc.stderr and "Traceback" not in proc.stderr
    assert (
        "distrib: source 'jsonfeed': not a feed: JSON nested too deeply to read; check the url"
        in lines
    ), proc.stderr
    wp = [line for line in lines if line.startswith("distrib: source 'blog': ")]
    assert wp and "nested too deeply" in wp[0], proc.stderr
