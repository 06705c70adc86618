"""A real edition for the benchmarks: the bundled sample site, rendered by distrib.

The sample posts are repeated (with distinct keys) until the message for one
recipient reaches the wanted size, so the figures are for a realistic digest: MJML
output, non-ASCII text, links, the footer with the unsubscribe placeholders.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from distrib.adapters import Context  # noqa: E402
from distrib.app import App, make_app  # noqa: E402
from distrib.config import Section  # noqa: E402
from distrib.deliver import deliver_edition  # noqa: E402
from distrib.dkim import DkimSigner  # noqa: E402
from distrib.ledger import Ledger  # noqa: E402
from distrib.mailers.smtp import SmtpMailer  # noqa: E402
from distrib.model import Edition, Recipient  # noqa: E402
from distrib.render.message import prepare_message  # noqa: E402

KEY = b"benchmark-signing-key"


def sample_app() -> App:
    os.environ.pop("DISTRIB_CONFIG", None)
    return make_app(REPO / "config.example.toml")


def sample_edition(app: App, target_bytes: int = 60 * 1024, edition_id: int = 1) -> Edition:
    """An edition whose message is at least ``target_bytes`` (as few posts as that takes)."""
    posts = sorted(app.fetch(record=False).posts, key=lambda p: p.published, reverse=True)
    letter = app.newsletter(None)
    pool = list(posts)
    round_ = 1
    n = min(len(pool), 8)
    while True:
        while n > len(pool):
            round_ += 1
            pool += [
                dataclasses.replace(p, key=f"{p.key}#{round_}", url=f"{p.url}?r={round_}")
                for p in posts
            ]
        chosen = pool[:n]
        r = app.render(letter, chosen)
        edition = Edition(
            edition_id,
            letter.name,
            tuple(p.key for p in chosen),
            r.subject,
            r.preheader,
            datetime.now(UTC),
            r.html,
            r.text,
            markers=r.markers,
        )
        size = len(prepare_message(app.settings, edition, key=KEY).preview_bytes())
        if size >= target_bytes or n > 200:
            return edition
        n += 1


def people(count: int) -> Iterator[Recipient]:
    """``count`` distinct subscribers spread over 97 domains."""
    return (
        Recipient(f"subscriber.{i}@mail{i % 97}.example.com", f"Subscriber {i}")
        for i in range(count)
    )


def send_to_sink(
    ledger: Ledger,
    app: App,
    template: Edition,
    port: int,
    count: int,
    connections: int,
    signer: DkimSigner | None = None,
) -> float:
    """Seconds for distrib's real delivery loop (ledger claim and mark per message) to
    send ``template`` as a new edition of ``ledger`` to ``count`` people over SMTP on
    127.0.0.1:``port``, optionally DKIM-signed.  Every message must be accepted."""
    e = template
    edition = ledger.create_edition(
        e.newsletter, e.post_keys, e.subject, e.preheader, e.html, e.text
    )
    prepared = prepare_message(app.settings, edition, key=KEY)
    prepared.signer = signer
    ctx = Context(settings=app.settings, now=datetime.now(UTC), ledger=ledger)
    opts = {"host": "127.0.0.1", "port": port, "security": "none", "connections": connections}
    mailer = SmtpMailer(Section(opts, "email.smtp"), ctx)
    t0 = time.perf_counter()
    report = deliver_edition(ledger, mailer, prepared, people(count))
    seconds = time.perf_counter() - t0
    if report.sent != count or report.errors:
        raise SystemExit(f"not all sent: {report}")
    return seconds
