"""`distrib` itself on a PostgreSQL ledger (`[ledger] url_env`): a real send to a real SMTP
server, killed with SIGKILL and run again; two "hosts" (two configs in two folders, two
processes) meeting one advisory lock; the configuration and connection errors, one line."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_distrib
from tests.test_end_to_end import _slow_smtp_server, smtp_config

psycopg = pytest.importorskip("psycopg")


def _write_subscribers(path: Path, n: int) -> list[str]:
    addresses = [f"reader{i:03d}@example.com" for i in range(n)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name"])
        w.writerows([a, f"Reader {i}"] for i, a in enumerate(addresses))
    return addresses


def _host_config(make_config, server, folder: Path, recipients: str) -> Path:
    """A config of its own folder (a "host"), on the shared database named by DISTRIB_LEDGER_URL."""
    folder.mkdir(exist_ok=True)
    path = smtp_config(make_config, server, recipients)
    text = path.read_text() + '\n[ledger]\nurl_env = "DISTRIB_LEDGER_URL"\n'
    target = folder / "distrib.toml"
    target.write_text(text)
    return target


def _send_until(path: Path, env: dict[str, str], server, received: int) -> subprocess.Popen[bytes]:
    """`distrib send` started as cron would, returned once the SMTP server has ``received``
    messages (or the send ended, or a minute passed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrib", "send", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=path.parent,
        env={**__import__("os").environ, **env},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(server.received) < received and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    return proc


def test_kill_mid_send_then_rerun_on_postgresql(make_config, tmp_path: Path, pg_url: str) -> None:
    controller, server = _slow_smtp_server(delay=0.01)
    env = {"DISTRIB_LEDGER_URL": pg_url}
    try:
        addresses = _write_subscribers(tmp_path / "subscribers.csv", 300)
        path = _host_config(make_config, server, tmp_path, 'recipients_file = "subscribers.csv"')
        proc = _send_until(path, env, server, received=100)
        assert proc.poll() is None, (
            proc.stderr.read() if proc.stderr else "the send finished before it could be killed"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with psycopg.connect(pg_url) as db:
            in_flight = {
                r[0]
                for r in db.execute("SELECT address FROM email_deliveries WHERE status = 'claimed'")
            }
            sent = db.execute(
                "SELECT count(*) FROM email_deliveries WHERE status = 'sent'"
            ).fetchone()[0]
        assert 0 < sent < 300
        assert not (tmp_path / "distrib.sqlite").exists()  # the state is in PostgreSQL only
        rerun = run_distrib("send", "--config", str(path), env=env)
        assert rerun.returncode == 0, rerun.stderr
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert set(counts) == set(addresses)  # none lost
        twice = {a for a, n in counts.items() if n > 1}
        assert twice <= in_flight, (twice, in_flight)
        assert len(twice) <= 1  # one connection: at most one message in flight
        before = len(server.received)
        third = run_distrib("send", "--config", str(path), env=env)
        assert third.returncode == 0 and len(server.received) == before
    finally:
        controller.stop()


def test_two_hosts_one_run_at_a_time(make_config, tmp_path: Path, pg_url: str) -> None:
    controller, server = _slow_smtp_server(delay=0.05)
    env = {"DISTRIB_LEDGER_URL": pg_url}
    try:
        _write_subscribers(tmp_path / "subs.csv", 200)
        host_a = _host_config(
            make_config, server, tmp_path / "a", f'recipients_file = "{tmp_path / "subs.csv"}"'
        )
        host_b = _host_config(
            make_config, server, tmp_path / "b", f'recipients_file = "{tmp_path / "subs.csv"}"'
        )
        first = subprocess.Popen(
            [sys.executable, "-m", "distrib", "run", "--config", str(host_a)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**__import__("os").environ, **env},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not server.received and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.received, "the first run sent nothing"
            second = run_distrib("run", "--config", str(host_b), env=env)
            quiet = run_distrib("run", "-q", "--config", str(host_b), env=env)
        finally:
            first.kill()
            first.wait()
        assert second.returncode == 1, second.stderr
        assert (
            "another distrib run (pid" in second.stderr and "this run does nothing" in second.stderr
        )
        assert second.stderr.count("\n") == 1, second.stderr  # one line
        assert pg_url.split("@")[0].split(":")[-1] not in second.stderr  # never the password
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (
            0,
            "",
            "",
        )  # cron: quietly nothing
        # the killed host's lock went with its connection: the other host finishes the edition
        done = run_distrib("run", "--config", str(host_b), env=env)
        assert done.returncode == 0, done.stderr
        assert len(server.by_recipient()) == 200
    finally:
        controller.stop()


def test_config_errors_are_one_line(make_config, tmp_path: Path, pg_cluster) -> None:
    with_password = make_config('[ledger]\nurl = "postgresql://u:hunter2@127.0.0.1/db"\n')
    proc = run_distrib("check", "--config", str(with_password))
    assert proc.returncode == 2 and "ledger.url" in proc.stderr and "url_env" in proc.stderr
    assert "hunter2" not in proc.stderr

    both = make_config(
        '[ledger]\npath = "x.sqlite"\nurl = "postgresql://u@127.0.0.1/db"\n', name="both.toml"
    )
    proc = run_distrib("send", "--config", str(both))
    assert proc.returncode == 2 and "keep one" in proc.stderr, proc.stderr

    not_pg = make_config('[ledger]\nurl = "mysql://u@127.0.0.1/db"\n', name="mysql.toml")
    proc = run_distrib("send", "--config", str(not_pg))
    assert proc.returncode == 2 and "PostgreSQL URL" in proc.stderr, proc.stderr

    env_cfg = make_config('[ledger]\nurl_env = "DISTRIB_LEDGER_URL"\n', name="env.toml")
    proc = run_distrib(
        "send",
        "--config",
        str(env_cfg),
        env={"DISTRIB_LEDGER_URL": pg_cluster.url("postgres", password="wrong-pw")},
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.count("\n") == 1
        and "refused the credentials" in proc.stderr
        and "wrong-pw" not in proc.stderr
    )

    proc = run_distrib(
        "send", "--config", str(env_cfg), env={"DISTRIB_LEDGER_URL": "/tmp/ledger.sqlite"}
    )
    assert proc.returncode == 2 and "does not hold a PostgreSQL URL" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1


def test_two_serve_replicas_share_the_database(make_config, tmp_path: Path, pg_url: str) -> None:
    """Two `distrib serve` processes on one database, started at once (both may make the
    signing key): a link signed for a reader works on either, and an unsubscribe through
    one is the suppression the other (and every send) sees."""
    import os

    import httpx

    from distrib.config import load_config
    from distrib.ledger.postgres import open_postgres
    from distrib.unsubscribe import make_token, signing_key
    from tests.conftest import free_port

    config = make_config('[ledger]\nurl_env = "DISTRIB_LEDGER_URL"\n')
    env = {"DISTRIB_LEDGER_URL": pg_url}
    for address in ("reader@example.org", "other@example.org"):
        assert (
            run_distrib("subscribers", "add", address, "--config", str(config), env=env).returncode
            == 0
        )
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distrib",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )  # fmt: skip
        for port in ports
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "unsubscribe endpoint on" in line, (
                line,
                proc.stderr.read() if proc.poll() is not None else "",
            )
        with open_postgres(pg_url) as led:
            key = signing_key(load_config(config), led)
        for port, address in zip(ports, ("reader@example.org", "other@example.org"), strict=True):
            r = httpx.post(
                f"http://127.0.0.1:{port}/unsubscribe", params={"token": make_token(key, address, "digest")},
                content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
            assert r.status_code == 200, r.text
        # the reader's link, retried by the provider on the other replica: verified there too
        r = httpx.post(
            f"http://127.0.0.1:{ports[1]}/unsubscribe",
            params={"token": make_token(key, "reader@example.org", "digest")},
            content=b"List-Unsubscribe=One-Click",
        )
        assert r.status_code == 200
        with psycopg.connect(pg_url) as db:
            rows = dict(db.execute("SELECT address, status FROM subscribers").fetchall())
        assert rows == {"reader@example.org": "unsubscribed", "other@example.org": "unsubscribed"}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_a_connection_dropped_mid_send_defers_and_the_rerun_duplicates_nothing_settled(
    make_config, tmp_path: Path, pg_url: str
) -> None:
    """The database ends the send's connections mid-send (a failover, an idle-killer, a
    restart): the send stops with one line and no traceback, every recipient it had marked
    stays marked, and the rerun sends the rest; a copy twice only for what was in flight."""
    controller, server = _slow_smtp_server(delay=0.01)
    env = {"DISTRIB_LEDGER_URL": pg_url}
    try:
        addresses = _write_subscribers(tmp_path / "subscribers.csv", 300)
        path = _host_config(make_config, server, tmp_path, 'recipients_file = "subscribers.csv"')
        proc = _send_until(path, env, server, received=100)
        assert proc.poll() is None, "the send finished before its connection could be dropped"
        with psycopg.connect(pg_url, autocommit=True) as db:
            ended = db.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        assert ended >= 1
        _, err = proc.communicate(timeout=60)
        stderr = err.decode("utf-8", "replace")
        assert proc.returncode in (1, 2), stderr
        assert "Traceback" not in stderr and stderr.strip(), stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        with psycopg.connect(pg_url) as db:
            in_flight = {
                r[0]
                for r in db.execute("SELECT address FROM email_deliveries WHERE status = 'claimed'")
            }
            marked = {
                r[0]
                for r in db.execute("SELECT address FROM email_deliveries WHERE status = 'sent'")
            }
        received_before = {a for a, v in server.by_recipient().items() if v}
        assert marked <= received_before  # nothing marked that was not sent
        rerun = run_distrib("send", "--config", str(path), env=env)
        assert rerun.returncode == 0, rerun.stderr
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert set(counts) == set(addresses)  # none lost
        twice = {a for a, n in counts.items() if n > 1}
        assert not twice & marked  # a recipient marked sent is never sent again
        assert twice <= in_flight, (twice, in_flight)
        assert len(twice) <= 1  # one connection: at most one message in flight
    finally:
        controller.stop()
