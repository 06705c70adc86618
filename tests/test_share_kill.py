"""Never twice on a real network API: kill a real `distrib share` mid-post, run again.

A fake Mastodon on 127.0.0.1 (the documented endpoints distrib uses) keeps Mastodon's
idempotency rule: a POST /api/v1/statuses with an Idempotency-Key it has seen returns
the status it already made.  Its POST is slow, so the kill lands while a post is in
flight.  After the rerun each post exists exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import run_distrib

pytestmark = pytest.mark.slow


class FakeMastodon:
    def __init__(self, post_delay: float):
        self.post_delay = post_delay
        self.statuses: list[dict] = []  # made, newest last
        self.by_key: dict[str, dict] = {}
        self.posts_received = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                path = urlsplit(self.path).path
                if path == "/api/v2/instance":
                    return self._json(
                        200,
                        {
                            "domain": "social.test",
                            "configuration": {
                                "statuses": {
                                    "max_characters": 500,
                                    "characters_reserved_per_url": 23,
                                }
                            },
                        },
                    )
                if path == "/api/v1/accounts/verify_credentials":
                    return self._json(200, {"id": "1", "username": "news", "acct": "news"})
                if path == "/api/v1/accounts/1/statuses":
                    with fake.lock:
                        return self._json(200, list(reversed(fake.statuses))[:40])
                return self._json(404, {"error": "Record not found"})

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if urlsplit(self.path).path != "/api/v1/statuses":
                    return self._json(404, {"error": "Record not found"})
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    form = json.loads(raw)
                else:
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
                key = self.headers.get("Idempotency-Key", "")
                with fake.lock:
                    fake.posts_received += 1
                time.sleep(fake.post_delay)  # the kill lands here
                with fake.lock:
                    if key and key in fake.by_key:
                        return self._json(200, fake.by_key[key])
                    n = len(fake.statuses) + 1
                    status = {
                        "id": str(n),
                        "url": f"http://social.test/@news/{n}",
                        "content": f"<p>{form.get('status', '')}</p>",
                    }
                    fake.statuses.append(status)
                    if key:
                        fake.by_key[key] = status
                return self._json(200, status)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def mastodon():
    fake = FakeMastodon(post_delay=0.4)
    yield fake
    fake.close()


def mastodon_config(make_config, mastodon: FakeMastodon) -> Path:
    return make_config(
        f"""
        [[channels]]
        name = "social"
        type = "mastodon"
        instance = "{mastodon.url}"
        token_env = "TEST_MASTODON_TOKEN"
        max_per_run = 20
        backfill = 20
        """
    )


def test_kill_mid_share_then_rerun_posts_each_once(
    make_config, mastodon: FakeMastodon, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("TEST_MASTODON_TOKEN", "t0ken")
    path = mastodon_config(make_config, mastodon)
    env = {"TEST_MASTODON_TOKEN": "t0ken"}
    planned = json.loads(
        run_distrib("share", "--dry-run", "--json", "--config", str(path), env=env).stdout
    )
    assert len(planned) >= 3
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrib", "share", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**__import__("os").environ, **env},
    )
    deadline = time.monotonic() + 60
    while mastodon.posts_received < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # inside the second POST's delay: that post is in flight
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the server finishes the in-flight post
    made_before = len(mastodon.statuses)
    assert 1 <= made_before < len(planned)
    rerun = run_distrib("share", "--config", str(path), env=env)
    assert rerun.returncode == 0, rerun.stderr
    links = [p["link"] for p in planned]
    for link in links:
        count = sum(1 for s in mastodon.statuses if link in s["content"])
        assert count == 1, (link, count)
    assert len(mastodon.statuses) == len(planned)
    # a third run posts nothing
    before = mastodon.posts_received
    third = run_distrib("share", "--config", str(path), env=env)
    assert third.returncode == 0 and mastodon.posts_received == before


def test_ctrl_c_mid_share_finishes_the_post_in_flight_and_records_it(
    make_config, mastodon: FakeMastodon, tmp_path: Path
):
    """Ctrl-C while a post is in flight: it is finished and marked (no reconcile needed);
    nothing else is posted; the rerun posts the rest, each once."""
    import os
    import sqlite3

    env = {"TEST_MASTODON_TOKEN": "t0ken"}
    path = mastodon_config(make_config, mastodon)
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrib", "share", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 60
    while mastodon.posts_received < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # inside the first POST's delay
    _, err = proc.communicate(timeout=30)
    assert (
        proc.returncode == 1
        and "interrupted; run again to finish" in err
        and "Traceback" not in err
    )
    assert mastodon.posts_received == 1 and len(mastodon.statuses) == 1
    db = sqlite3.connect(tmp_path / "distrib.sqlite")
    rows = dict(
        db.execute("SELECT status, count(*) FROM share_deliveries GROUP BY status").fetchall()
    )
    db.close()
    assert rows == {"sent": 1}  # marked, not left claimed

    rerun = run_distrib("share", "--config", str(path), env=env)
    assert rerun.returncode == 0, rerun.stderr
    contents = [s["content"] for s in mastodon.statuses]
    assert len(contents) == len(set(contents)) >= 3  # each once
