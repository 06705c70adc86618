"""Bluesky against the reference server: @atproto/pds (with a PLC directory, from npm
``@atproto/dev-env``), started by these tests on 127.0.0.1 and stopped by them.

The reference is the judge of what "already there" looks like: a ``createRecord`` on a
taken record key answers a generic 500, not a 400 "exists".  Install it with
``cd tests/reference_pds && npm ci`` (about 480 MB; ``.ci/run`` does it).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from distrib.channels.bluesky import make_tid
from distrib.share import run_shares, share_key
from tests.channels.conftest import make_post

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent.parent / "reference_pds"
INSTALL = "cd tests/reference_pds && npm ci"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pds() -> Iterator[dict[str, Any]]:
    """The reference PDS on 127.0.0.1: {service, handle, password, did}."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (HERE / "node_modules" / "@atproto" / "dev-env").is_dir():
        missing = "tests/reference_pds/node_modules is missing"
    if missing:
        how = f"apt-get install nodejs npm && ({INSTALL})"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run must install the reference PDS ({how})")
        pytest.skip(f"{missing}; the reference Bluesky server is needed: {how}")
    pds_port, plc_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        ["node", "pds.js", str(pds_port), str(plc_port)],
        cwd=HERE,
        stdin=subprocess.PIPE,  # the server stops when this closes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(proc, timeout=180)
        if not line:
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            pytest.fail(f"the reference PDS did not start: {err[-2000:]}")
        info = json.loads(line)
        info["service"] = f"http://127.0.0.1:{pds_port}"
        yield info
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    out: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        out.append(proc.stdout.readline())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return out[0].strip() if out else ""


class Account:
    """Direct XRPC calls to the reference PDS, to look at what distrib did."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.http = httpx.Client(base_url=info["service"] + "/xrpc/", timeout=30)
        r = self.http.post(
            "com.atproto.server.createSession",
            json={"identifier": info["handle"], "password": info["password"]},
        )
        r.raise_for_status()
        self.did = r.json()["did"]
        self.http.headers["Authorization"] = f"Bearer {r.json()['accessJwt']}"

    def records(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {
                "repo": self.did,
                "collection": "app.bsky.feed.post",
                "limit": 100,
            }
            if cursor:
                params["cursor"] = cursor
            data = self.http.get("com.atproto.repo.listRecords", params=params).json()
            for rec in data["records"]:
                out[rec["uri"].rsplit("/", 1)[1]] = rec["value"]
            cursor = data.get("cursor")
            if not cursor or not data["records"]:
                return out

    def create(self, rkey: str, text: str) -> httpx.Response:
        record = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": "2026-11-20T09:00:00.000Z",
        }
        return self.http.post(
            "com.atproto.repo.createRecord",
            json={
                "repo": self.did,
                "collection": "app.bsky.feed.post",
                "rkey": rkey,
                "record": record,
            },
        )

    def clear(self) -> None:
        for rkey in self.records():
            self.http.post(
                "com.atproto.repo.deleteRecord",
                json={"repo": self.did, "collection": "app.bsky.feed.post", "rkey": rkey},
            ).raise_for_status()


@pytest.fixture
def account(pds: dict[str, Any]) -> Iterator[Account]:
    acct = Account(pds)
    acct.clear()
    yield acct
    acct.http.close()


def channel_raw(pds: dict[str, Any], service: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": "sky",
        "type": "bluesky",
        "handle": pds["handle"],
        "password_env": "BSKY_PASSWORD",
        "service": service or pds["service"],
        "card": False,
        **extra,
    }


def test_the_reference_answers_a_taken_key_with_500(account: Account):
    rkey = make_tid(1_763_630_000_000_000, 7)
    assert account.create(rkey, "first").status_code == 200
    again = account.create(rkey, "second")
    assert again.status_code == 500  # not a 400 "exists": what distrib must expect


def test_fifty_posts_in_one_run_are_each_published_once(env, pds, account, monkeypatch):
    monkeypatch.setenv("BSKY_PASSWORD", pds["password"])
    posts = [make_post(n) for n in range(1, 51)]
    # With the old keys (the run's time + a 10-bit hash of the share key) these fifty
    # clash: the test would fail on them.
    old = {
        make_tid(
            0,
            int.from_bytes(
                __import__("hashlib").sha256(share_key(p.key, "sky").encode()).digest()[:2], "big"
            )
            & 0x3FF,
        )
        for p in posts
    }
    assert len(old) < 50
    ctx, channels = env.channels(channel_raw(pds, max_per_run=50))
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert len(report.sent) == 50 and report.deferred == [] and report.failed == []
    records = account.records()
    assert len(records) == 50
    assert sorted(r["text"] for r in records.values()) == sorted(i.text for i in report.sent)
    # A second run posts nothing more.
    ctx, channels = env.channels(channel_raw(pds, max_per_run=50))
    assert run_shares(ctx, channels, posts, dry_run=False).sent == []
    assert len(account.records()) == 50


def test_a_key_holding_another_post_gives_this_one_the_next_key(env, pds, account, monkeypatch):
    monkeypatch.setenv("BSKY_PASSWORD", pds["password"])
    post = make_post(1)
    ctx, [channel] = env.channels(channel_raw(pds))
    rkey = channel.record_key(share_key(post.key, "sky"))
    assert account.create(rkey, "Someone else's post, already at that key").status_code == 200
    report = run_shares(ctx, [channel], [post], dry_run=False)
    [sent] = report.sent
    assert not sent.remote_id.endswith(rkey)
    records = account.records()
    assert len(records) == 2 and records[rkey]["text"] == "Someone else's post, already at that key"
    assert sent.text in {r["text"] for r in records.values()}


class DroppingProxy:
    """A proxy on 127.0.0.1 in front of the PDS.  ``drop_after_create``: it forwards the
    first createRecord, lets the PDS write it, and then drops the connection instead of
    answering; from then on every request is dropped (the network is gone) until
    ``heal()``, unless ``stay_dead`` is false."""

    def __init__(self, upstream: str, *, stay_dead: bool = True):
        self.upstream = urlsplit(upstream)
        self.drop_after_create = True
        self.stay_dead = stay_dead
        self.dead = False
        self.creates = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.dead:
                    self.close_connection = True
                    return  # nothing is answered: the client sees the connection drop
                conn = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=60
                )
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                conn.close()
                if "com.atproto.repo.createRecord" in self.path:
                    proxy.creates += 1
                    if proxy.drop_after_create:
                        # Written on the server; the answer never arrives.
                        proxy.drop_after_create = False
                        proxy.dead = proxy.stay_dead
                        self.close_connection = True
                        return
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _forward
            do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def heal(self) -> None:
        self.dead = False
        self.drop_after_create = False

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_killed_between_the_servers_write_and_its_answer(env, pds, account, monkeypatch, clock):
    """The PDS wrote the record, the answer never came, and the network stayed down for
    the rest of the run (the share is deferred).  The rerun reads the key back, finds
    the record is this post's, and marks it sent: one record, never two."""
    from datetime import timedelta

    monkeypatch.setenv("BSKY_PASSWORD", pds["password"])
    proxy = DroppingProxy(pds["service"])
    try:
        post = make_post(1)
        ctx, channels = env.channels(channel_raw(pds, service=proxy.url))
        report = run_shares(ctx, channels, [post], dry_run=False)
        assert report.sent == [] and len(report.deferred) == 1
        assert proxy.creates == 1 and len(account.records()) == 1  # it was written

        proxy.heal()
        clock[0] += timedelta(minutes=20)
        ctx, channels = env.channels(channel_raw(pds, service=proxy.url))
        ctx.now = clock[0]
        report = run_shares(ctx, channels, [post], dry_run=False)
        [sent] = report.sent
        records = account.records()
        assert len(records) == 1 and proxy.creates == 1  # found, not posted again
        [(rkey, record)] = records.items()
        assert sent.remote_id.endswith("/" + rkey) and record["text"] == sent.text
    finally:
        proxy.stop()


def test_a_connection_dropped_after_the_write_is_settled_in_the_same_run(
    env, pds, account, monkeypatch
):
    """Only the createRecord's answer is lost: the channel reads the key back at once."""
    monkeypatch.setenv("BSKY_PASSWORD", pds["password"])
    proxy = DroppingProxy(pds["service"], stay_dead=False)
    try:
        ctx, channels = env.channels(channel_raw(pds, service=proxy.url))
        report = run_shares(ctx, channels, [make_post(2)], dry_run=False)
        assert len(report.sent) == 1 and proxy.creates == 1
        assert len(account.records()) == 1
    finally:
        proxy.stop()


def test_a_dead_runs_claim_with_nothing_at_the_key_is_posted_once(env, pds, account, monkeypatch):
    """Killed before the call: the reference answers getRecord with 400 (not found),
    which must read as "nothing there", and the share is posted once."""
    monkeypatch.setenv("BSKY_PASSWORD", pds["password"])
    missing = account.http.get(
        "com.atproto.repo.getRecord",
        params={
            "repo": account.did,
            "collection": "app.bsky.feed.post",
            "rkey": make_tid(1_763_630_000_000_001, 9),
        },
    )
    assert missing.status_code == 400
    post = make_post(3)
    ctx, [channel] = env.channels(channel_raw(pds))
    channel.record_key(share_key(post.key, "sky"))
    env.ledger.claim_share(post.key, "sky", channel.compose(post).text)
    report = run_shares(ctx, [channel], [post], dry_run=False)
    assert len(report.sent) == 1
    assert len(account.records()) == 1
