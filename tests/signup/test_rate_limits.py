"""The per-IP signup limit lives in the ledger: replicas of `distrib serve` on one ledger
count together (each kept its own count in memory, so N replicas let N times the limit
through), a restart forgets nothing, and the window slides."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import distrib.ledger
from distrib.config import load_config
from distrib.serve import make_server
from tests.conftest import SmtpServer
from tests.signup.conftest import SECRET, _config

HOUR = timedelta(hours=1)


@pytest.fixture
def two_replicas(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    settings = load_config(_config(tmp_path, smtp_server, "[signup]\nper_ip = 4\n"))
    servers = [make_server(settings, tmp_path / "distrib.sqlite", "127.0.0.1", 0) for _ in "ab"]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    clients = [httpx.Client(base_url=s.url, timeout=10) for s in servers]
    try:
        yield clients[0], clients[1]
    finally:
        for c in clients:
            c.close()
        for s, t in zip(servers, threads, strict=True):
            s.shutdown()
            s.server_close()
            t.join(5)


def test_replicas_on_one_ledger_share_the_per_ip_limit(two_replicas):
    a, b = two_replicas
    codes = [
        (a if i % 2 else b).post("/subscribe", data={"email": f"r{i}@example.org"}).status_code
        for i in range(6)
    ]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_the_counter_slides_and_survives_a_restart(open_any_ledger, monkeypatch):
    t0 = distrib.ledger.now().replace(minute=30, second=0, microsecond=0)
    clock = [t0]
    monkeypatch.setattr(distrib.ledger, "now", lambda: clock[0])
    with open_any_ledger() as led:
        assert [led.rate_limit_hit("ip:a", 3, HOUR) for _ in range(4)] == [True] * 3 + [False]
        assert led.rate_limit_hit("ip:b", 3, HOUR)  # another key counts apart
    with open_any_ledger() as led:  # a restarted (or another) serve
        assert not led.rate_limit_hit("ip:a", 3, HOUR)
        # 45 minutes on, in the next bucket: the 3 hits of 15-75 minutes ago weigh
        # (1 - 15/60) * 3 = 2.25 -> 2, so one more is allowed, then none
        clock[0] = t0 + timedelta(minutes=45)
        assert led.rate_limit_hit("ip:a", 3, HOUR)
        assert not led.rate_limit_hit("ip:a", 3, HOUR)
        # two hours on, everything has slid out; the expired rows are swept
        clock[0] = t0 + timedelta(hours=3)
        assert [led.rate_limit_hit("ip:a", 3, HOUR) for _ in range(4)] == [True] * 3 + [False]
        keys = led.db.execute("SELECT DISTINCT key FROM rate_limits").fetchall()
        assert [k[0] for k in keys] == ["ip:a"]
