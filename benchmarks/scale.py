"""Scale: 1,000,000 subscribers streamed through the null mailer.

The subscribers are imported from a generated CSV file (distrib.subscribers.import_csv)
into a real ledger by a child process; then this process delivers one ~60 KB edition
to all of them through the real loop (distrib.deliver: claim, build the bytes, mark,
one at a time) with the null mailer, and prints the time and its peak RSS.

    python benchmarks/scale.py [COUNT]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _edition import KEY, sample_app, sample_edition

from distrib.adapters import Context
from distrib.config import Section
from distrib.deliver import deliver_edition
from distrib.ledger import open_ledger
from distrib.mailers.null import NullMailer
from distrib.render.message import prepare_message
from distrib.subscribers import import_csv, recipients


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def populate(ledger_path: Path, count: int) -> None:
    csv_path = ledger_path.with_suffix(".csv")
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write("email,name\n")
        for i in range(count):
            f.write(f"subscriber.{i}@mail{i % 997}.example.com,Subscriber {i}\n")
    ledger = open_ledger(ledger_path)
    report = import_csv(ledger, csv_path)
    ledger.close()
    csv_path.unlink()
    print(f"  import: {report.added:,} added, peak RSS of the importer {rss_mb():.0f} MB")


def main() -> None:
    if sys.argv[1:2] == ["--populate"]:
        populate(Path(sys.argv[2]), int(sys.argv[3]))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--populate", str(path), str(count)], check=True)
        print(f"  setup (CSV + import) {time.perf_counter() - t0:.1f} s")

        app = sample_app()
        edition_t = sample_edition(app)
        ledger = open_ledger(path)
        e = edition_t
        edition = ledger.create_edition(
            e.newsletter, e.post_keys, e.subject, e.preheader, e.html, e.text
        )
        prepared = prepare_message(app.settings, edition, key=KEY)
        size = len(prepared.preview_bytes())
        ctx = Context(settings=app.settings, now=datetime.now(UTC), ledger=ledger)
        mailer = NullMailer(Section({}, "email.null"), ctx)
        before = rss_mb()
        t0 = time.perf_counter()
        report = deliver_edition(ledger, mailer, prepared, recipients(app.settings, ledger))
        seconds = time.perf_counter() - t0
        counts = ledger.email_counts(edition.id)
        ledger.close()
        print(
            f"{report.sent:,} messages of ~{size:,} B ({mailer.bytes / 1e9:.1f} GB built) through "
            f"the null mailer with the ledger in {seconds:.1f} s = {report.sent / seconds:,.0f} msgs/s"
        )
        print(f"  ledger: {counts}; edition finished: {report.finished}")
        print(f"  peak RSS {rss_mb():.0f} MB (before delivery {before:.0f} MB); target <= 150 MB")


if __name__ == "__main__":
    main()
