"""Personalisation: bytes of 100,000 messages from one ~60 KB edition.

Prints msgs/s for distrib's PreparedMessage.for_recipient next to the stdlib
baseline (one EmailMessage per recipient, serialised) measured in the same run.

    python benchmarks/personalise.py [COUNT]
"""

from __future__ import annotations

import platform
import sys
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from _edition import KEY, sample_app, sample_edition

from distrib.model import Recipient
from distrib.render.message import prepare_message


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(f"subscriber.{i}@mail{i % 97}.example.com", f"Subscriber {i}") for i in range(n)
    ]


def stdlib_message(edition, r: Recipient, url: str, sender: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = f"{r.name} <{r.email}>"
    msg["Subject"] = edition.subject
    msg["Date"] = format_datetime(edition.created)
    msg["Message-ID"] = make_msgid(domain="harbourlight.example")
    msg["List-Unsubscribe"] = f"<{url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = edition.markers.fill(edition.text, url=url, email=r.email)
    html = edition.markers.fill(edition.html, url=url, email=r.email)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    app = sample_app()
    edition = sample_edition(app)
    t0 = time.perf_counter()
    prepared = prepare_message(app.settings, edition, key=KEY)
    prepare_s = time.perf_counter() - t0
    people = recipients(count)
    size = len(prepared.preview_bytes())

    t0 = time.perf_counter()
    total = 0
    for r in people:
        total += len(prepared.for_recipient(r))
    ours = time.perf_counter() - t0

    # The baseline: as many as fit in ~5 seconds (it is ~100x slower).
    sender = app.settings.email["from"]
    n_base = 0
    t0 = time.perf_counter()
    base_bytes = 0
    while time.perf_counter() - t0 < 5 and n_base < count:
        r = people[n_base]
        base_bytes += len(stdlib_message(edition, r, prepared.unsubscribe_url(r), sender))
        n_base += 1
    base = time.perf_counter() - t0

    ours_rate = count / ours
    base_rate = n_base / base
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(
        f"edition: {len(edition.html.encode()):,} B HTML + {len(edition.text.encode()):,} B text; "
        f"message {size:,} B; prepared once in {prepare_s * 1000:.1f} ms"
    )
    print(
        f"distrib for_recipient: {count:,} messages, {total / 1e6:,.0f} MB in {ours:.2f} s "
        f"= {ours_rate:,.0f} msgs/s ({total / ours / 1e6:,.0f} MB/s)"
    )
    print(
        f"stdlib EmailMessage:   {n_base:,} messages in {base:.2f} s = {base_rate:,.0f} msgs/s "
        f"(avg {base_bytes // max(n_base, 1):,} B)"
    )
    print(
        f"ratio: {ours_rate / base_rate:,.0f}x; target >= 20,000 msgs/s: "
        f"{'met' if ours_rate >= 20_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
