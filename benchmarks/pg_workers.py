"""The ledger's backend and the send: 20,000 digests to Postfix's smtp-sink on 127.0.0.1,
through the real delivery loop (claim, send, mark per message), with the ledger in an
SQLite file and in PostgreSQL (a throwaway cluster on 127.0.0.1, as the tests start one),
each as a ratio to smtp-source sending messages of the same size in the same run.

Several send workers on one edition (``distrib send --worker``) are not built yet: this
measures one process per backend, the baseline they would be compared with.  Needs the
Debian packages postfix (smtp-sink, smtp-source) and postgresql, and psycopg.

    python benchmarks/pg_workers.py [COUNT] [--rounds=N] [--connections=N]
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _edition import KEY, sample_app, sample_edition, send_to_sink  # noqa: E402
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


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    rounds = int(opts.get("rounds", 1))
    connections = int(opts.get("connections", 1))
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

            rates: dict[str, list[float]] = {"smtp-source": [], "SQLite": [], "PostgreSQL": []}
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
            src = median(rates["smtp-source"])
            for name, xs in rates.items():
                rate = median(xs)
                print(f"  {name:<28} {rate:8,.0f} msgs/s  ratio to smtp-source {rate / src:.2f}")
            print(
                f"  PostgreSQL / SQLite: {median(rates['PostgreSQL']) / median(rates['SQLite']):.2f}"
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
