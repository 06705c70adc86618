"""The ledger's backend and the send: 20,000 digests to Postfix's smtp-sink on 127.0.0.1,
through the real delivery loop (claim, send, mark per message), with the ledger in an
SQLite file and in PostgreSQL (a throwaway cluster on 127.0.0.1, as the tests start one),
each as a ratio to smtp-source sending messages of the same size in the same run (with as
many connections: N workers open N, so they are also compared with ``smtp-source -s N``).

Then the same edition sent by send workers (``distrib send --worker``, real processes
over the same PostgreSQL), 1, 2 and 4 of them: each claims batches of recipients and
marks outcomes in groups.  The recipients are subscribers in the database, queued before
the clock starts (as ``run --workers`` queues them before it starts its workers); the
time runs from starting the processes to the last one's exit, Python's start-up
included.  Needs the Debian packages postfix (smtp-sink, smtp-source) and postgresql,
and psycopg.

    python benchmarks/pg_workers.py [COUNT] [--rounds=N] [--connections=N] [--workers=1,2,4]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _edition import KEY, people, sample_app, sample_edition, send_to_sink  # noqa: E402
from smtp_sink import free_port, smtp_source, start_sink  # noqa: E402

from distrib.ledger import Ledger, open_ledger  # noqa: E402
from distrib.render.message import prepare_message  # noqa: E402
from tests.pgcluster import throwaway_cluster  # noqa: E402


def send_once(
    open_: Callable[[], Ledger], port: int, count: int, connections: int, app: Any, e: Any
) -> float:
    ledger = open_()
    try:
        return send_to_sink(ledger, app, e, port, count, connections)
    finally:
        ledger.close()


WORKER_CONFIG = """
[site]
name = "Harbourlight"
url = "https://harbourlight.example/"
postal_address = "1 Quay Street, Harbourlight"

[[sources]]
name = "sample"
type = "sample"

[email]
mailer = "smtp"
from = "Harbourlight <news@harbourlight.example>"
unsubscribe_url = "https://harbourlight.example/unsubscribe?token={{token}}"

[email.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {connections}

[ledger]
url_env = "DISTRIB_LEDGER_URL"
"""


def prepare_worker_db(url: str, count: int, template: Any) -> None:
    """``count`` subscribers, the edition recorded and its recipients queued."""
    from distrib.ledger.postgres import open_postgres
    from distrib.ledger.queue import SendQueue

    with open_postgres(url) as led:
        ts = "2026-01-01T00:00:00+00:00"
        rows = [(r.email, r.name, "active", ts, ts) for r in people(count)]
        with led.transaction():
            led.db.executemany(
                "INSERT INTO subscribers (address, name, status, created, updated) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        e = template
        edition = led.create_edition(
            e.newsletter, e.post_keys, e.subject, e.preheader, e.html, e.text
        )
        SendQueue(led, edition.id, lease=120, batch=50).enqueue(r[0] for r in rows)


#: CPU seconds (user + system) the worker processes used, per configuration
CPU: dict[int, list[float]] = {}


def send_by_workers(config: Path, url: str, n: int, count: int) -> float:
    import resource

    env = {**os.environ, "DISTRIB_LEDGER_URL": url}
    cmd = [sys.executable, "-m", "distrib", "send", "--worker", "-q", "--config", str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env) for _ in range(n)]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    CPU.setdefault(n, []).append(cpu)
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*) FROM email_deliveries WHERE status = 'sent'").fetchone()
    sent = row[0] if row else 0
    if any(codes) or sent != count:
        raise SystemExit(f"workers: exit codes {codes}, {sent} of {count} sent")
    return seconds


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    rounds = int(opts.get("rounds", 1))
    connections = int(opts.get("connections", 1))
    workers = [int(x) for x in opts.get("workers", "1,2,4").split(",") if x]
    count = int(args[0]) if args else 20_000
    app = sample_app()
    edition = sample_edition(app)
    size = len(prepare_message(app.settings, edition, key=KEY).preview_bytes())
    print(
        f"{count:,} messages of {size:,} B to smtp-sink on 127.0.0.1, {connections} SMTP connection(s); "
        f"{os.cpu_count()} CPUs; {rounds} interleaved round(s), medians"
    )
    from distrib.ledger.postgres import open_postgres

    port = free_port()
    sink = start_sink(port)
    try:
        with throwaway_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
            import psycopg

            config = Path(tmp) / "workers.toml"
            config.write_text(WORKER_CONFIG.format(port=port, connections=connections))
            names = ["smtp-source", "SQLite", "PostgreSQL"]
            names += [f"smtp-source -s {n * connections}" for n in workers if n > 1]
            names += [f"PG {n} worker(s)" for n in workers]
            rates: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                db = f"bench_{r}"
                with psycopg.connect(cluster.url(), autocommit=True) as admin:
                    admin.execute(f"CREATE DATABASE {db}")
                rates["smtp-source"].append(
                    count / smtp_source(port, count, size, connections, reuse=True)
                )
                path = Path(tmp) / f"l{r}.sqlite"
                rates["SQLite"].append(
                    count
                    / send_once(
                        lambda p=path: open_ledger(p), port, count, connections, app, edition
                    )
                )
                url = cluster.url(db)
                rates["PostgreSQL"].append(
                    count
                    / send_once(
                        lambda u=url: open_postgres(u), port, count, connections, app, edition
                    )
                )
                for n in workers:
                    if n > 1:
                        # the sink's pace with as many connections as the workers open
                        rates[f"smtp-source -s {n * connections}"].append(
                            count / smtp_source(port, count, size, n * connections, reuse=True)
                        )
                    wdb = f"bench_{r}_w{n}"
                    with psycopg.connect(cluster.url(), autocommit=True) as admin:
                        admin.execute(f"CREATE DATABASE {wdb}")
                    prepare_worker_db(cluster.url(wdb), count, edition)
                    rates[f"PG {n} worker(s)"].append(
                        count / send_by_workers(config, cluster.url(wdb), n, count)
                    )
                print(
                    f"  round {r + 1}: "
                    + ", ".join(f"{name} {xs[-1]:,.0f}" for name, xs in rates.items())
                )
            src = median(rates["smtp-source"])
            sqlite = median(rates["SQLite"])
            for name, xs in rates.items():
                rate = median(xs)
                print(
                    f"  {name:<22} {rate:8,.0f} msgs/s  ratio to smtp-source {rate / src:.2f}"
                    f"  to SQLite {rate / sqlite:.2f}"
                )
            for n, cpus in CPU.items():
                print(
                    f"  PG {n} worker(s): {1000 * median(cpus) / count:.2f} ms of CPU per message "
                    f"in the workers (their start-up included); load average {os.getloadavg()[0]:.1f}"
                )
            if 1 in workers:
                one = median(rates["PG 1 worker(s)"])
                for n in workers:
                    if n > 1:
                        mine = median(rates[f"PG {n} worker(s)"])
                        same = median(rates[f"smtp-source -s {n * connections}"])
                        print(
                            f"  PG {n} workers / 1 worker: {mine / one:.2f}; to smtp-source with "
                            f"{n * connections} connections: {mine / same:.2f}"
                        )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
