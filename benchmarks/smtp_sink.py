"""SMTP throughput: 20,000 digests of ~60 KB to Postfix's smtp-sink on 127.0.0.1.

distrib's SmtpMailer is driven through the real delivery loop (distrib.deliver:
claim in a real SQLite ledger, send, mark), and compared with Postfix's own
smtp-source sending messages of the same size with the same number of sessions to
the same smtp-sink, in the same run.  Needs the Debian package postfix (only its
smtp-sink and smtp-source programs are run; no daemon).

    python benchmarks/smtp_sink.py [COUNT] [CONNECTIONS ...] [--rounds=N]
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from _edition import KEY, sample_app, sample_edition, send_to_sink

from distrib.ledger import open_ledger
from distrib.render.message import prepare_message

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(port: int) -> subprocess.Popen[bytes]:
    cmd = [SINK]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root otherwise
    proc = subprocess.Popen(cmd + [f"127.0.0.1:{port}", "256"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("smtp-sink did not start")


def smtp_source(port: int, count: int, size: int, sessions: int, reuse: bool) -> float:
    cmd = [SOURCE, "-s", str(sessions), "-l", str(size), "-m", str(count)]
    if reuse:
        cmd.append("-d")  # keep each session's connection for many messages, as we do
    cmd += ["-f", "news@harbourlight.example", "-t", "reader@example.com", f"127.0.0.1:{port}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def ours(port: int, count: int, connections: int, app, edition_template) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(Path(tmp) / "ledger.sqlite")
        seconds = send_to_sink(ledger, app, edition_template, port, count, connections)
        counts = ledger.email_counts(ledger.editions()[-1].id)
        ledger.close()
        return seconds, counts


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--rounds=")]
    rounds = next((int(a[9:]) for a in sys.argv[1:] if a.startswith("--rounds=")), 3)
    count = int(args[0]) if args else 20_000
    concurrencies = [int(x) for x in args[1:]] or [1, 4]
    app = sample_app()
    edition = sample_edition(app)
    size = len(prepare_message(app.settings, edition, key=KEY).preview_bytes())
    print(
        f"{count:,} messages of {size:,} B to smtp-sink on 127.0.0.1; {os.cpu_count()} CPUs; "
        f"{rounds} interleaved rounds, medians"
    )
    port = free_port()
    sink = start_sink(port)
    try:
        for n in concurrencies:
            new, reuse, mine = [], [], []
            for _ in range(rounds):
                new.append(count / smtp_source(port, count, size, n, reuse=False))
                reuse.append(count / smtp_source(port, count, size, n, reuse=True))
                mine.append(count / ours(port, count, n, app, edition)[0])
            src_new, src, rate = median(new), median(reuse), median(mine)
            print(
                f"  {n} connection(s): distrib {rate:,.0f} msgs/s with the ledger "
                f"(claim + mark per message); smtp-source {src:,.0f} msgs/s reusing "
                f"connections (-d), {src_new:,.0f} msgs/s with a connection per message "
                f"(its default); ratio {rate / src:.2f} (-d), {rate / src_new:.2f} (default)"
            )
            print(
                "      rounds: distrib "
                + ", ".join(f"{x:,.0f}" for x in mine)
                + "; smtp-source -d "
                + ", ".join(f"{x:,.0f}" for x in reuse)
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
