"""Send workers on a PostgreSQL ledger (`distrib send --worker`, `distrib run --workers N`):
real processes sending one edition to a real SMTP server (aiosmtpd on 127.0.0.1).

Two and four workers drain one edition, each recipient exactly once; one worker killed
with SIGKILL mid-send, the others (after its lease ends) finish the edition with no
recipient lost and duplicates only among the messages it had in flight; a quota holds
across workers; two "hosts" (two configs, one database) send together; on SQLite a
worker is refused in one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_distrib
from tests.test_end_to_end import _slow_smtp_server
from tests.test_postgres_runs import _host_config, _write_subscribers

psycopg = pytest.importorskip("psycopg")


def _env(pg_url: str) -> dict[str, str]:
    return {**os.environ, "DISTRIB_LEDGER_URL": pg_url}


def _make_edition(config: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Record the next edition in the database without sending it (as `run` does before
    its workers start)."""
    from distrib.app import make_app

    monkeypatch.setenv("DISTRIB_LEDGER_URL", pg_url)
    with make_app(config) as app:
        fetched = app.fetch()
        letter = app.newsletter(None)
        batches, _ = app.plan(letter, fetched, force=True)
        return app._record_edition(letter, batches[0], set(), fetched).id


def _worker(config: Path, pg_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "distrib", "send", "--worker", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(pg_url),
    )  # fmt: skip


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


def _rows(pg_url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as db:
        return list(db.execute(sql, params).fetchall())


@pytest.mark.parametrize("n", [2, 4])
def test_workers_drain_one_edition_each_recipient_once(
    make_config, tmp_path: Path, pg_url: str, n: int
) -> None:
    controller, server = _slow_smtp_server(delay=0.01)
    try:
        addresses = _write_subscribers(tmp_path / "subs.csv", 600)
        config = _host_config(make_config, server, tmp_path, 'recipients_file = "subs.csv"')
        proc = run_distrib("run", "--workers", str(n), "--config", str(config), env=_env(pg_url))
        assert proc.returncode == 0, proc.stderr
        assert "digest: edition 1" in proc.stdout and "600 delivered" in proc.stdout, proc.stdout
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert counts == dict.fromkeys(addresses, 1)  # each exactly once
        runs = _rows(pg_url, "SELECT count(DISTINCT run) FROM email_deliveries")[0][0]
        assert runs >= 2, "one worker sent everything: the others never took part"
        assert _rows(pg_url, "SELECT status FROM editions") == [("done",)]
        assert _rows(pg_url, "SELECT count(*) FROM send_workers") == [(0,)]  # leases given up
        again = run_distrib("run", "--workers", str(n), "--config", str(config), env=_env(pg_url))
        assert again.returncode == 0 and len(server.received) == 600, again.stderr
    finally:
        controller.stop()


def test_a_killed_worker_is_finished_by_the_others(
    make_config, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, server = _slow_smtp_server(delay=0.01)
    try:
        addresses = _write_subscribers(tmp_path / "subs.csv", 400)
        config = _host_config(make_config, server, tmp_path, 'recipients_file = "subs.csv"')
        edition = _make_edition(config, pg_url, monkeypatch)
        procs = [_worker(config, pg_url, "--lease", "3", "--batch", "20") for _ in range(3)]
        victim = procs[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and victim.poll() is None:
            mine = _rows(
                pg_url,
                """SELECT count(*) FROM email_deliveries AS d JOIN send_workers AS w ON w.run = d.run
                   WHERE w.pid = %s AND d.status = 'sent'""",
                (victim.pid,),
            )[0][0]
            if mine >= 30:
                break
            time.sleep(0.02)
        assert victim.poll() is None, "the worker finished before it could be killed"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        time.sleep(0.5)  # what the server had accepted from it is recorded by the server
        held = {
            r[0]
            for r in _rows(
                pg_url,
                """SELECT d.address FROM email_deliveries AS d JOIN send_workers AS w ON w.run = d.run
                   WHERE w.pid = %s AND d.status = 'claimed'""",
                (victim.pid,),
            )
        }
        arrived = set(server.by_recipient())
        in_flight = held & arrived  # accepted by the server, not marked: sent again
        assert held, "the killed worker held no rows"
        results = _finish(procs[1:])
        assert all(code == 0 for code, _ in results), results
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert set(counts) == set(addresses)  # none lost
        twice = {a for a, n in counts.items() if n > 1}
        assert twice <= in_flight, (twice, in_flight)
        assert all(n <= 2 for n in counts.values())
        # one connection: one message in flight, plus the marks waiting for their group
        from distrib.ledger.queue import MARK_GROUP

        assert len(in_flight) <= MARK_GROUP + 1
        reclaimed = _rows(pg_url, "SELECT count(*) FROM email_deliveries WHERE reclaims = 1")
        assert reclaimed[0][0] == len(held)  # each of its rows taken once more, no more
        status = _rows(pg_url, "SELECT status FROM editions WHERE id = %s", (edition,))
        assert status == [("done",)]
    finally:
        controller.stop()


def test_a_quota_holds_across_workers(
    make_config, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, server = _slow_smtp_server(delay=0.005)
    try:
        _write_subscribers(tmp_path / "subs.csv", 120)
        config = _host_config(make_config, server, tmp_path, 'recipients_file = "subs.csv"')
        config.write_text(
            config.read_text().replace('security = "none"', 'security = "none"\nrate_per_day = 25')
        )
        _make_edition(config, pg_url, monkeypatch)
        results = _finish([_worker(config, pg_url, "--batch", "4") for _ in range(3)])
        assert all(code == 0 for code, _ in results), results
        assert len(server.received) == 25  # not 25 per worker
        sent = _rows(pg_url, "SELECT count(*) FROM email_deliveries WHERE status = 'sent'")
        assert sent == [(25,)]
        assert _rows(pg_url, "SELECT status FROM editions") == [("sending",)]  # the rest waits
    finally:
        controller.stop()


def test_two_hosts_send_one_edition_together(
    make_config, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, server = _slow_smtp_server(delay=0.01)
    try:
        subs = tmp_path / "subs.csv"
        addresses = _write_subscribers(subs, 300)
        host_a = _host_config(make_config, server, tmp_path / "a", f'recipients_file = "{subs}"')
        host_b = _host_config(make_config, server, tmp_path / "b", f'recipients_file = "{subs}"')
        _make_edition(host_a, pg_url, monkeypatch)
        procs = [_worker(host_a, pg_url, "--batch", "10"), _worker(host_b, pg_url, "--batch", "10")]
        results = _finish(procs)
        assert all(code == 0 for code, _ in results), results
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert counts == dict.fromkeys(addresses, 1)
        assert _rows(pg_url, "SELECT status FROM editions") == [("done",)]
        # a worker with nothing to send says so and exits 0
        idle = run_distrib("send", "--worker", "--config", str(host_b), env=_env(pg_url))
        assert idle.returncode == 0 and "nothing for a worker to do" in idle.stdout, idle
    finally:
        controller.stop()


def test_a_worker_on_sqlite_is_refused(make_config, smtp_server) -> None:
    from tests.test_end_to_end import smtp_config

    config = smtp_config(make_config, smtp_server, 'recipients = ["a@example.com"]')
    for args in (["send", "--worker"], ["run", "--workers", "2"]):
        proc = run_distrib(*args, "--config", str(config))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "PostgreSQL" in proc.stderr, proc.stderr
        assert "url_env" in proc.stderr
    assert not smtp_server.received
    clash = run_distrib("send", "--worker", "--force", "--config", str(config))
    assert clash.returncode == 2 and "--force" in clash.stderr, clash.stderr
