"""Signups: the consent record and the outbox of confirmation emails."""

from __future__ import annotations

from datetime import datetime

from .common import Part, Row, iso, now, wrap_errors


class Signups(Part):
    @wrap_errors
    def record_consent(self, address: str, event: str, how: str, detail: str = "") -> None:
        self.db.execute_durably(
            "INSERT INTO consent_events (address, event, how, detail, at) VALUES (?, ?, ?, ?, ?)",
            (address.lower(), event, how, detail or None, iso(now())),
        )

    @wrap_errors
    def consent_record(self, address: str) -> list[Row]:
        """The events of ``address``, oldest first."""
        return self.db.execute(
            "SELECT event, how, detail, at FROM consent_events WHERE address = ? ORDER BY id",
            (address.lower(),),
        ).fetchall()

    @wrap_errors
    def queue_signup(self, address: str, name: str, newsletters: list[str], how: str = "form") -> int:
        """Record the signup and queue its confirmation email, in one transaction."""
        ts = iso(now())
        chosen = ",".join(newsletters)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO consent_events (address, event, how, detail, at) VALUES (?, 'signup', ?, ?, ?)",
                (address.lower(), how, chosen or None, ts),
            )
            cur = self.db.execute(
                """INSERT INTO mail_outbox (kind, address, name, newsletters, created, updated)
                   VALUES ('confirm', ?, ?, ?, ?, ?)""",
                (address.lower(), name, chosen, ts, ts),
            )
        return int(cur.lastrowid or 0)

    @wrap_errors
    def signups_since(self, address: str, since: datetime) -> int:
        """Confirmation emails queued for ``address`` since ``since``."""
        row = self.db.execute(
            "SELECT count(*) FROM mail_outbox WHERE address = ? AND created >= ?",
            (address.lower(), iso(since)),
        ).fetchone()
        return int(row[0])

    @wrap_errors
    def claim_outbox(self, limit: int = 50) -> list[Row]:
        """Take queued messages (and ones a dead sender left claimed) for sending."""
        with self.db.transaction():
            rows = self.db.execute(
                "SELECT * FROM mail_outbox WHERE status IN ('queued', 'claimed') ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
            self.db.executemany(
                "UPDATE mail_outbox SET status = 'claimed', attempts = attempts + 1, updated = ? WHERE id = ?",
                [(iso(now()), r["id"]) for r in rows],
            )
        return rows

    @wrap_errors
    def mark_outbox(self, message_id: int, status: str, error: str = "") -> None:
        """``sent``, ``failed`` (for good) or ``queued`` (tried again later)."""
        self.db.execute(
            "UPDATE mail_outbox SET status = ?, error = ?, updated = ? WHERE id = ?",
            (status, error or None, iso(now()), message_id),
        )

    @wrap_errors
    def outbox_pending(self) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM mail_outbox WHERE status IN ('queued', 'claimed')"
        ).fetchone()
        return int(row[0])

    @wrap_errors
    def confirm_subscriber(
        self, address: str, name: str, newsletters: list[str], every: list[str]
    ) -> bool:
        """Make ``address`` an active subscriber of ``newsletters`` (all of ``every`` when
        empty); a suppressed address comes back only through here.  Committed with a
        full sync.  False when it was already active with nothing to change (confirming
        twice is harmless)."""
        address = address.lower()
        ts = iso(now())
        wanted = [n for n in newsletters if n in every] or list(every)
        self.db.execute("PRAGMA synchronous = FULL")
        try:
            with self.db.transaction():
                row = self.db.execute(
                    "SELECT status FROM subscribers WHERE address = ?", (address,)
                ).fetchone()
                out = {
                    r[0]
                    for r in self.db.execute(
                        "SELECT newsletter FROM newsletter_optouts WHERE address = ?", (address,)
                    )
                }
                if row is not None and row[0] == "active" and not (out & set(wanted)):
                    return False
                self.db.execute(
                    """INSERT INTO subscribers (address, name, status, created, updated)
                       VALUES (?, ?, 'active', ?, ?)
                       ON CONFLICT (address) DO UPDATE SET status = 'active', reason = NULL,
                              name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END,
                              updated = excluded.updated""",
                    (address, name, ts, ts),
                )
                self.db.executemany(
                    "DELETE FROM newsletter_optouts WHERE address = ? AND newsletter = ?",
                    [(address, n) for n in wanted],
                )
                if row is None and len(every) > 1:
                    # A new reader gets only what they chose.
                    self.db.executemany(
                        """INSERT INTO newsletter_optouts (address, newsletter, reason, created)
                           VALUES (?, ?, 'not chosen at signup', ?) ON CONFLICT DO NOTHING""",
                        [(address, n, ts) for n in every if n not in wanted],
                    )
                self.db.execute(
                    """INSERT INTO consent_events (address, event, how, detail, at)
                       VALUES (?, 'confirmed', 'form', ?, ?)""",
                    (address, ",".join(wanted), ts),
                )
        finally:
            self.db.execute("PRAGMA synchronous = NORMAL")
        return True

    @wrap_errors
    def provider_event(
        self, address: str, event: str, how: str, reason: str = "", soft_limit: int = 3
    ) -> str | None:
        """Record a provider's report on ``address`` and suppress it when it should be:
        at once for a hard bounce (``bounced``) or a complaint (``complained``), after
        ``soft_limit`` soft bounces in a row (``soft_bounce``; a ``delivered`` event
        breaks the row).  One transaction committed with a full sync, so the suppression
        is on disk before the webhook is answered.  The status set, or None."""
        address = address.lower()
        ts = iso(now())
        status: str | None = None
        self.db.execute("PRAGMA synchronous = FULL")
        try:
            with self.db.transaction():
                self.db.execute(
                    "INSERT INTO consent_events (address, event, how, detail, at) VALUES (?, ?, ?, ?, ?)",
                    (address, event, how, reason[:500] or None, ts),
                )
                if event in ("bounced", "complained"):
                    status = event
                elif event == "soft_bounce":
                    recent = [
                        r[0]
                        for r in self.db.execute(
                            """SELECT event FROM consent_events WHERE address = ?
                               AND event IN ('soft_bounce', 'delivered', 'confirmed')
                               ORDER BY id DESC LIMIT ?""",
                            (address, soft_limit),
                        )
                    ]
                    if len(recent) >= soft_limit and all(e == "soft_bounce" for e in recent):
                        status = "bounced"
                        reason = f"{soft_limit} soft bounces in a row: {reason}"
                if status is not None:
                    self.db.execute(
                        """INSERT INTO subscribers (address, status, reason, created, updated)
                           VALUES (?, ?, ?, ?, ?)
                           ON CONFLICT (address) DO UPDATE SET status = excluded.status,
                                  reason = excluded.reason, updated = excluded.updated""",
                        (address, status, f"{how}: {reason}"[:500], ts, ts),
                    )
        finally:
            self.db.execute("PRAGMA synchronous = NORMAL")
        return status
