"""`distrib serve` under attack: a real server on 127.0.0.1, raw sockets as the client.

``endpoint`` runs the server in a thread of the test process (make_server, as the
subscriber tests do); ``serve_process`` runs ``python -m distrib serve`` as a publisher
would, for what only a process shows (its stderr, its system calls).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from distrib import subscribers as subs
from distrib.ledger import open_ledger
from distrib.serve import make_server
from distrib.unsubscribe import signing_key
from tests.subscribers.conftest import make_settings

SECRET = "s3cret-for-serve-tests"
UNSUB = "https://news.example/letters/unsubscribe?token={token}"


@dataclass
class Endpoint:
    url: str
    host: str
    port: int
    key: bytes
    ledger_path: Path
    server: object


@pytest.fixture
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    yield from _endpoint(tmp_path, monkeypatch)


def _endpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    newsletters: list[str] | None = None,
    readers: int = 2,
) -> Iterator[Endpoint]:
    monkeypatch.setenv("DISTRIB_TEST_SECRET", SECRET)
    settings = make_settings(
        tmp_path, email={"unsubscribe_url": UNSUB, "secret_env": "DISTRIB_TEST_SECRET"}
    )
    if newsletters:
        settings.data["newsletters"] = [{"name": n} for n in newsletters]
    ledger_path = tmp_path / "distrib.sqlite"
    with open_ledger(ledger_path) as led:
        for i in range(readers):
            subs.add(led, f"reader{i}@example.org")
        key = signing_key(settings, led)
    server = make_server(settings, ledger_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.url.rsplit("/", 1)[1].rsplit(":", 1)
    try:
        yield Endpoint(server.url, host, int(port), key, ledger_path, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def exchange(
    host: str, port: int, data: bytes, *, quiet: float = 1.0, limit: float = 10.0
) -> tuple[bytes, bool]:
    """Send ``data`` on one connection; everything the server sends back until it closes
    the connection (True) or stays quiet for ``quiet`` seconds (False)."""
    with socket.create_connection((host, port), timeout=limit) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + limit
        s.settimeout(quiet)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_serve_config(tmp_path: Path) -> Path:
    path = tmp_path / "distrib.toml"
    path.write_text(
        f"""
[site]
name = "Harbour Notes"
url = "https://news.example/"
postal_address = "1 Quay Street"

[[sources]]
name = "newsroom"
type = "sample"

[email]
from = "Harbour Notes <news@news.example>"
unsubscribe_url = "{UNSUB}"
secret_env = "DISTRIB_TEST_SECRET"
""",
        encoding="utf-8",
    )
    return path


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    ledger_path: Path
    key: bytes

    def stop(self) -> tuple[str, str]:
        """Ctrl-C, as a terminal or a service manager would; the process's output."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def start_serve(tmp_path: Path, prefix: list[str] | None = None, readers: int = 2) -> ServeProcess:
    config = write_serve_config(tmp_path)
    ledger_path = tmp_path / "distrib.sqlite"
    env = {k: v for k, v in os.environ.items() if k != "DISTRIB_CONFIG"}
    env["DISTRIB_TEST_SECRET"] = SECRET
    with open_ledger(ledger_path) as led:
        for i in range(readers):
            subs.add(led, f"reader{i}@example.org")
    key = SECRET.encode()
    port = free_port()
    cmd = [
        *(prefix or []),
        sys.executable,
        "-m",
        "distrib",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"distrib serve exited: {proc.communicate()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return ServeProcess(proc, url, port, ledger_path, key)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"distrib serve did not answer: {proc.communicate()}")
