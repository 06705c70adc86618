"""Signups: the consent record and the outbox of confirmation emails."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from .common import Part, Row, iso, now, wrap_errors

#: How long a claimed confirmation email belongs to the sender that claimed it; after
#: that the sender is taken for dead and another sends it (a batch of 50 through a slow
#: mail server takes minutes at worst).
OUTBOX_LEASE = timedelta(minutes=15)


class Signups(Part):
    _forget_key: bytes | None = None
    #: the rate-limit bucket this process last swept expired counters at
    _limits_swept: int | None = None

    def forgotten_hash(self, address: str) -> str:
        """The keyed hash that stands for an erased address (the key is the ledger's own)."""
        if self._forget_key is None:
            stored = self.kv_get("forget:key")  # type: ignore[attr-defined]
            if not stored:
                stored = secrets.token_hex(32)
                self.kv_put("forget:key", stored)  # type: ignore[attr-defined]
            self._forget_key = bytes.fromhex(stored)
        return hmac.new(
            self._forget_key, address.strip().lower().encode("utf-8"), hashlib.sha256
        ).hexdigest()

    @wrap_errors
    def is_forgotten(self, address: str) -> bool:
        if self.db.execute("SELECT 1 FROM forgotten LIMIT 1").fetchone() is None:
            return False  # nobody erased: no key to make
        row = self.db.execute(
            "SELECT 1 FROM forgotten WHERE hash = ?", (self.forgotten_hash(address),)
        ).fetchone()
        return row is not None

    @wrap_errors
    def forget(self, address: str) -> bool:
        """Erase everything the ledger holds on ``address`` (its subscriber row, consent
        record, opt-outs, queued mail; its deliveries keep only the hash) and keep its
        keyed hash on the suppression list.  Committed with a full sync.  False if the
        ledger knew nothing of it (the hash is kept anyway)."""
        address = address.strip().lower()
        digest = self.forgotten_hash(address)
        known = 0
        # one transaction committed with a full sync (on either backend)
        with self.db.batches(durable=True):
            for table in ("subscribers", "newsletter_optouts", "consent_events", "mail_outbox"):
                known += self.db.execute(
                    f"DELETE FROM {table} WHERE address = ?", (address,)
                ).rowcount
            known += self.db.execute(
                "UPDATE email_deliveries SET address = ? WHERE address = ?",
                (f"forgotten:{digest[:32]}", address),
            ).rowcount
            self.db.execute(
                "INSERT INTO forgotten (hash, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (digest, iso(now())),
            )
        return known > 0

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
    def queue_signup(
        self, address: str, name: str, newsletters: list[str], how: str = "form"
    ) -> int:
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
            """SELECT count(*) FROM mail_outbox
               WHERE address = ? AND kind = 'confirm' AND created >= ?""",
            (address.lower(), iso(since)),
        ).fetchone()
        return int(row[0])

    @wrap_errors
    def rate_limit_hit(self, key: str, limit: int, window: timedelta) -> bool:
        """Count one event of ``key`` (such as ``signup-ip:192.0.2.1``) if fewer than
        ``limit`` happened in the last ``window``; False (and nothing counted) when the
        limit is reached.  The counters are rows of the ledger, so every `distrib serve`
        replica on one ledger shares them, and a restart forgets nothing.

        The window slides: hits are counted in fixed buckets of one window, and those of
        the previous bucket still count for the part of it that lies within the last
        ``window`` (the usual sliding-window counter: two rows a key, not one per hit).
        One small transaction; the increment is conditional, so concurrent callers on
        PostgreSQL cannot pass the limit together."""
        size = max(1, int(window.total_seconds()))
        t = now().timestamp()
        bucket = int(t // size) * size
        with self.db.transaction():
            prev = self.db.execute(
                "SELECT hits FROM rate_limits WHERE key = ? AND bucket = ?", (key, bucket - size)
            ).fetchone()
            carried = int(prev[0] * (1 - (t - bucket) / size)) if prev is not None else 0
            allowance = limit - carried
            if allowance <= 0:
                return False
            cur = self.db.execute(
                """INSERT INTO rate_limits AS d (key, bucket, hits, expires) VALUES (?, ?, 1, ?)
                   ON CONFLICT (key, bucket) DO UPDATE SET hits = d.hits + 1
                   WHERE d.hits < ?""",
                (key, bucket, bucket + 2 * size, allowance),
            )
            counted = cur.rowcount == 1
            if self._limits_swept != bucket:  # once a bucket per process: drop old rows
                self.db.execute("DELETE FROM rate_limits WHERE expires < ?", (int(t),))
                self._limits_swept = bucket
        return counted

    @wrap_errors
    def claim_outbox(self, limit: int = 50) -> list[Row]:
        """Take queued messages (and ones a dead sender left claimed) for sending.

        A row another sender claimed (serve's thread beside `distrib run`, or another
        serve replica on the same PostgreSQL ledger) is in flight: it is taken only once
        its claim is older than ``OUTBOX_LEASE``, when that sender is taken for dead.
        Each row is claimed by an UPDATE that re-checks its state, so two senders that
        read the same rows at once (PostgreSQL's READ COMMITTED) never both get one.  A
        welcome whose reader has left, been suppressed or paused since is not sent: it
        is marked ``failed`` ("not sent") instead."""
        ts = now()
        stale = iso(ts - OUTBOX_LEASE)
        claimable = "(status = 'queued' OR (status = 'claimed' AND updated < ?))"
        taken: list[Row] = []
        with self.db.transaction():
            rows = self.db.execute(
                f"""SELECT * FROM mail_outbox WHERE status IN ('queued', 'claimed')
                    AND {claimable} ORDER BY id LIMIT ?""",
                (stale, limit),
            ).fetchall()
            for r in rows:
                if r["kind"] == "welcome" and not self._receiving(r["address"]):
                    # left, suppressed or paused since it was queued: it asked for nothing
                    self.db.execute(
                        f"""UPDATE mail_outbox SET status = 'failed', error = ?, updated = ?
                            WHERE id = ? AND {claimable}""",
                        ("no longer an active subscriber: not sent", iso(ts), r["id"], stale),
                    )
                    continue
                cur = self.db.execute(
                    f"""UPDATE mail_outbox SET status = 'claimed', attempts = attempts + 1,
                        updated = ? WHERE id = ? AND {claimable}""",
                    (iso(ts), r["id"], stale),
                )
                if cur.rowcount == 1:
                    taken.append(r)
        return taken

    def _receiving(self, address: str) -> bool:
        """Whether ``address`` is an active subscriber that has not paused."""
        row = self.db.execute(
            """SELECT 1 FROM subscribers
               WHERE address = ? AND status = 'active' AND paused_at IS NULL""",
            (address,),
        ).fetchone()
        return row is not None

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
        self,
        address: str,
        name: str,
        newsletters: list[str],
        every: list[str],
        *,
        welcome: bool = False,
    ) -> bool:
        """Make ``address`` an active subscriber of ``newsletters`` (all of ``every`` when
        empty); a suppressed address comes back only through here.  Without ``name``, the
        one given at its latest signup is kept (an empty one keeps the name known).
        Committed with a full sync.  False when it was already active with nothing to
        change (confirming twice is harmless); a paused subscriber's confirmation
        resumes it (a ``resumed`` event).  ``welcome``: queue a welcome email in the same
        transaction when the address was not an active subscriber before (a repeated
        confirmation, or one that adds a newsletter or resumes, queues none)."""
        address = address.lower()
        ts = iso(now())
        wanted = [n for n in newsletters if n in every] or list(every)
        forgotten = self.forgotten_hash(address)
        # one transaction committed with a full sync (on either backend)
        with self.db.batches(durable=True):
            row = self.db.execute(
                "SELECT status, paused_at FROM subscribers WHERE address = ?", (address,)
            ).fetchone()
            out = {
                r[0]
                for r in self.db.execute(
                    "SELECT newsletter FROM newsletter_optouts WHERE address = ?", (address,)
                )
            }
            status = row[0] if row is not None else None
            # a paused reader's confirmation resumes them (paused_at = NULL below)
            paused = status == "active" and row[1] is not None
            if status == "active" and not paused and not (out & set(wanted)):
                return False
            name = name or self._name_at_signup(address)
            self.db.execute(
                """INSERT INTO subscribers AS d (address, name, status, created, updated)
                   VALUES (?, ?, 'active', ?, ?)
                   ON CONFLICT (address) DO UPDATE SET status = 'active', reason = NULL,
                          name = CASE WHEN excluded.name != '' THEN excluded.name ELSE d.name END,
                          paused_at = NULL, updated = excluded.updated""",
                (address, name, ts, ts),
            )
            self.db.executemany(
                "DELETE FROM newsletter_optouts WHERE address = ? AND newsletter = ?",
                [(address, n) for n in wanted],
            )
            if status is None and len(every) > 1:
                # A new reader gets only what they chose.
                self.db.executemany(
                    """INSERT INTO newsletter_optouts (address, newsletter, reason, created)
                       VALUES (?, ?, 'not chosen at signup', ?) ON CONFLICT DO NOTHING""",
                    [(address, n, ts) for n in every if n not in wanted],
                )
            # The person's own confirmation is new consent, also after an erasure.
            self.db.execute("DELETE FROM forgotten WHERE hash = ?", (forgotten,))
            events: list[tuple[str, str | None]] = [("confirmed", ",".join(wanted))]
            if paused:
                events.append(("resumed", None))
            self.db.executemany(
                """INSERT INTO consent_events (address, event, how, detail, at)
                   VALUES (?, ?, 'form', ?, ?)""",
                [(address, event, detail, ts) for event, detail in events],
            )
            if welcome and status != "active":
                # a new subscriber, or one coming back: not one adding a newsletter
                self.db.execute(
                    """INSERT INTO mail_outbox (kind, address, name, newsletters, created, updated)
                       VALUES ('welcome', ?, ?, ?, ?, ?)""",
                    (address, name, ",".join(wanted), ts, ts),
                )
        return True

    def _name_at_signup(self, address: str) -> str:
        """The name given at the latest signup, kept with its confirmation email."""
        given = self.db.execute(
            """SELECT name FROM mail_outbox WHERE address = ? AND kind = 'confirm'
               ORDER BY id DESC LIMIT 1""",
            (address,),
        ).fetchone()
        return str(given[0]) if given else ""

    # --- the preferences page ---------------------------------------------------------

    @wrap_errors
    def newsletters_left(self, address: str) -> set[str]:
        """The newsletters ``address`` opted out of."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT newsletter FROM newsletter_optouts WHERE address = ?", (address.lower(),)
            )
        }

    @wrap_errors
    def update_preferences(
        self, address: str, every: list[str], wanted: list[str], paused: bool
    ) -> list[str] | None:
        """Set an active subscriber's choice from the preferences page: receive the
        newsletters of ``every`` that are in ``wanted`` (the others are opted out of),
        and pause everything or not.  Each change is a consent-record event; all of it is
        one transaction committed with a full sync.  The changes made (``["paused",
        "opted_out:weekly"]``), or None when ``address`` is not an active subscriber
        (nothing changed)."""
        address = address.lower()
        ts = iso(now())
        changes: list[str] = []
        # one transaction committed with a full sync (on either backend)
        with self.db.batches(durable=True):
            row = self.db.execute(
                "SELECT status, paused_at FROM subscribers WHERE address = ?", (address,)
            ).fetchone()
            if row is None or row["status"] != "active":
                return None  # suppressed, erased (no row) or never subscribed
            left = self.newsletters_left(address)
            for n in every:
                if n in wanted and n in left:
                    self.db.execute(
                        "DELETE FROM newsletter_optouts WHERE address = ? AND newsletter = ?",
                        (address, n),
                    )
                    changes.append(f"opted_in:{n}")
                elif n not in wanted and n not in left:
                    self.db.execute(
                        """INSERT INTO newsletter_optouts (address, newsletter, reason, created)
                           VALUES (?, ?, 'preferences', ?) ON CONFLICT DO NOTHING""",
                        (address, n, ts),
                    )
                    changes.append(f"opted_out:{n}")
            if paused != (row["paused_at"] is not None):
                self.db.execute(
                    "UPDATE subscribers SET paused_at = ?, updated = ? WHERE address = ?",
                    (ts if paused else None, ts, address),
                )
                changes.append("paused" if paused else "resumed")
            self.db.executemany(
                """INSERT INTO consent_events (address, event, how, detail, at)
                   VALUES (?, ?, 'preferences', ?, ?)""",
                [
                    (address, event, newsletter or None, ts)
                    for event, _, newsletter in (c.partition(":") for c in changes)
                ],
            )
        return changes

    @wrap_errors
    def unsubscribe_everything(self, address: str, how: str) -> bool:
        """Suppress an active subscriber (``unsubscribed``) and record it in the consent
        record, in one transaction committed with a full sync; False (nothing changed)
        when ``address`` is not an active subscriber."""
        address = address.lower()
        ts = iso(now())
        # one transaction committed with a full sync (on either backend)
        with self.db.batches(durable=True):
            cur = self.db.execute(
                """UPDATE subscribers SET status = 'unsubscribed', reason = ?, updated = ?
                   WHERE address = ? AND status = 'active'""",
                (how, ts, address),
            )
            if cur.rowcount != 1:
                return False
            self.db.execute(
                """INSERT INTO consent_events (address, event, how, detail, at)
                   VALUES (?, 'unsubscribed', ?, NULL, ?)""",
                (address, how, ts),
            )
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
        # one transaction committed with a full sync (on either backend)
        with self.db.batches(durable=True):
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
        return status
