"""DKIM signing cost: signed beside unsigned, in the same run.

1. Per message, in process: ``PreparedMessage.message_for`` unsigned, signed with
   RSA-2048, signed with Ed25519 (each message differs per recipient, so each is
   signed: one SHA-256 over the ~60 KB body and one private-key operation).
2. SMTP throughput through the real delivery loop (ledger claim and mark) to Postfix's
   smtp-sink on 127.0.0.1 (Debian package postfix), unsigned vs RSA-2048 vs Ed25519,
   interleaved rounds, medians.  Targets: RSA >= 0.5x unsigned, Ed25519 >= 0.9x.

    python benchmarks/dkim.py [COUNT] [--rounds=N] [--connections=N]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from _edition import KEY, people, sample_app, sample_edition, send_to_sink
from smtp_sink import SINK, free_port, start_sink

from distrib.dkim import DkimSigner, generate_key, load_key
from distrib.ledger import open_ledger
from distrib.render.message import prepare_message

SIGNERS = {
    "unsigned": None,
    "rsa-2048": DkimSigner("harbourlight.example", [load_key(generate_key(), "rsa", "bench")]),
    "ed25519": DkimSigner(
        "harbourlight.example", [load_key(generate_key("ed25519-sha256"), "ed", "bench")]
    ),
}


def per_message(app, edition, count: int) -> dict[str, float]:
    prepared = prepare_message(app.settings, edition, key=KEY)
    out = {}
    for name, signer in SIGNERS.items():
        prepared.signer = signer
        t0 = time.perf_counter()
        for r in people(count):
            prepared.message_for(r)
        out[name] = count / (time.perf_counter() - t0)
    return out


def over_smtp(port: int, count: int, connections: int, app, template, signer) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(Path(tmp) / "ledger.sqlite")
        try:
            return count / send_to_sink(ledger, app, template, port, count, connections, signer)
        finally:
            ledger.close()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = next((int(a[9:]) for a in sys.argv[1:] if a.startswith("--rounds=")), 3)
    connections = next((int(a[14:]) for a in sys.argv[1:] if a.startswith("--connections=")), 1)
    count = int(args[0]) if args else 5_000
    app = sample_app()
    edition = sample_edition(app)
    size = len(prepare_message(app.settings, edition, key=KEY).preview_bytes())
    print(f"{count:,} messages of {size:,} B; {os.cpu_count()} CPUs; {rounds} rounds, medians")
    cpu = [per_message(app, edition, min(count, 2_000)) for _ in range(rounds)]
    base = median(c["unsigned"] for c in cpu)
    for name in SIGNERS:
        rate = median(c[name] for c in cpu)
        print(f"  build per message, {name:9}: {rate:9,.0f} msgs/s  ratio {rate / base:.2f}")
    if not os.path.exists(SINK):
        print("  (no smtp-sink: apt-get install postfix for the SMTP figures)")
        return
    port = free_port()
    sink = start_sink(port)
    try:
        got: dict[str, list[float]] = {name: [] for name in SIGNERS}
        for _ in range(rounds):
            for name, signer in SIGNERS.items():
                got[name].append(over_smtp(port, count, connections, app, edition, signer))
        base = median(got["unsigned"])
        for name, rates in got.items():
            rate = median(rates)
            print(
                f"  SMTP, {connections} connection(s), {name:9}: {rate:7,.0f} msgs/s  ratio {rate / base:.2f}"
                f"  (rounds {', '.join(f'{r:,.0f}' for r in rates)})"
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
