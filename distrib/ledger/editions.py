"""Editions (one digest issue, rendered once) and their email deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..model import DeliveryStatus, Edition, Markers, Outcome
from .common import Part, iso, now, wrap_errors
from .runs import RunLock
from .subscribers import Subscribers


def mark_values(outcome: Outcome) -> tuple[str, str | None, str | None, str | None, str]:
    """(status, remote_id, error, not_before, updated) of a delivery marked with ``outcome``."""
    not_before = None
    if outcome.status is DeliveryStatus.DEFERRED:
        not_before = iso(now() + timedelta(seconds=outcome.retry_after or 300))
    return (
        outcome.status.value,
        outcome.remote_id or None,
        outcome.error or None,
        not_before,
        str(iso(now())),
    )


class Editions(RunLock, Subscribers, Part):
    @wrap_errors
    def create_edition(
        self,
        newsletter: str,
        post_keys: Iterable[str],
        subject: str,
        preheader: str,
        html: str,
        text: str,
        *,
        edition_id: int | None = None,
        markers: Markers | None = None,
        status: str = "sending",
        editor: dict[str, Any] | None = None,
    ) -> Edition:
        """Record an edition; ``edition_id`` from :meth:`next_edition_id` when the
        rendered HTML already links to its own number (the archive's page); ``markers``
        the renderer's per-recipient gaps in ``html`` and ``text``."""
        markers = markers or Markers()
        created = now()
        keys = tuple(post_keys)
        with self.db.transaction():
            cur = self.db.execute(
                """INSERT INTO editions (id, newsletter, subject, preheader, created, html, text, markers,
                                        status, editor)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    edition_id, newsletter, subject, preheader, iso(created), html, text, markers.nonce,
                    status, json.dumps(editor) if editor else "",
                ),
            )  # fmt: skip
            edition_id = cur.lastrowid
            assert edition_id is not None
            self.db.executemany(
                "INSERT INTO edition_posts (edition_id, post_key, position) VALUES (?, ?, ?)",
                [(edition_id, k, i) for i, k in enumerate(keys)],
            )
        return Edition(
            edition_id,
            newsletter,
            keys,
            subject,
            preheader,
            created,
            html,
            text,
            status=status,
            markers=markers,
        )

    @wrap_errors
    def next_edition_id(self) -> int:
        """The number the next edition will get (stable under the run lock)."""
        return int(self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM editions").fetchone()[0])

    def _edition(self, row: Any) -> Edition:
        keys = tuple(
            r[0]
            for r in self.db.execute(
                "SELECT post_key FROM edition_posts WHERE edition_id = ? ORDER BY position",
                (row["id"],),
            )
        )
        return Edition(
            id=row["id"],
            newsletter=row["newsletter"],
            post_keys=keys,
            subject=row["subject"],
            preheader=row["preheader"],
            created=datetime.fromisoformat(row["created"]),
            html=row["html"],
            text=row["text"],
            status=row["status"],
            markers=Markers(row["markers"]),
        )

    @wrap_errors
    def unfinished_editions(self, newsletter: str) -> list[Edition]:
        rows = self.db.execute(
            "SELECT * FROM editions WHERE newsletter = ? AND status = 'sending' ORDER BY id",
            (newsletter,),
        ).fetchall()
        return [self._edition(r) for r in rows]

    @wrap_errors
    def last_edition(self, newsletter: str) -> Edition | None:
        row = self.db.execute(
            # A rejected edition was never sent: the one before it is the last.
            "SELECT * FROM editions WHERE newsletter = ? AND status != 'rejected' ORDER BY id DESC LIMIT 1",
            (newsletter,),
        ).fetchone()
        return self._edition(row) if row else None

    @wrap_errors
    def get_edition(self, edition_id: int) -> Edition | None:
        row = self.db.execute("SELECT * FROM editions WHERE id = ?", (edition_id,)).fetchone()
        return self._edition(row) if row else None

    @wrap_errors
    def editions(self, newsletter: str | None = None) -> list[Edition]:
        if newsletter is None:
            rows = self.db.execute("SELECT * FROM editions ORDER BY id").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM editions WHERE newsletter = ? ORDER BY id", (newsletter,)
            ).fetchall()
        return [self._edition(r) for r in rows]

    @wrap_errors
    def awaiting_editions(self, newsletter: str | None = None) -> list[Edition]:
        """Editions waiting for `distrib approve` (all newsletters when None)."""
        rows = self.db.execute(
            "SELECT * FROM editions WHERE status = 'awaiting' AND (? IS NULL OR newsletter = ?) ORDER BY id",
            (newsletter, newsletter),
        ).fetchall()
        return [self._edition(r) for r in rows]

    @wrap_errors
    def edition_editor(self, edition_id: int) -> dict[str, Any]:
        """What an awaiting edition was rendered with: {"inputs": fingerprint, "base": [keys]}."""
        row = self.db.execute("SELECT editor FROM editions WHERE id = ?", (edition_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    @wrap_errors
    def set_edition_editor(self, edition_id: int, editor: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE editions SET editor = ? WHERE id = ?", (json.dumps(editor), edition_id)
        )

    @wrap_errors
    def rerender_edition(
        self,
        edition_id: int,
        post_keys: Iterable[str],
        subject: str,
        preheader: str,
        html: str,
        text: str,
        markers: Markers,
        editor: dict[str, Any],
    ) -> bool:
        """Replace an awaiting edition's content; False when it is no longer awaiting."""
        keys = tuple(post_keys)
        with self.db.transaction():
            cur = self.db.execute(
                """UPDATE editions SET subject = ?, preheader = ?, html = ?, text = ?, markers = ?, editor = ?
                   WHERE id = ? AND status = 'awaiting'""",
                (subject, preheader, html, text, markers.nonce, json.dumps(editor), edition_id),
            )
            if cur.rowcount != 1:
                return False
            self.db.execute("DELETE FROM edition_posts WHERE edition_id = ?", (edition_id,))
            self.db.executemany(
                "INSERT INTO edition_posts (edition_id, post_key, position) VALUES (?, ?, ?)",
                [(edition_id, k, i) for i, k in enumerate(keys)],
            )
        return True

    @wrap_errors
    def set_edition_status(self, edition_id: int, old: str, new: str) -> bool:
        """Move an edition from ``old`` to ``new`` status; False if it was not ``old``."""
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE editions SET status = ? WHERE id = ? AND status = ?", (new, edition_id, old)
            )
        return cur.rowcount == 1

    # --- the editor's picks ------------------------------------------------------

    @wrap_errors
    def editor_picks(self, newsletter: str) -> list[tuple[str, str]]:
        """(post key, "pin" | "skip") for the next edition, pins in the order given."""
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT post_key, action FROM editor_picks WHERE newsletter = ? ORDER BY position, created",
                (newsletter,),
            )
        ]

    @wrap_errors
    def set_editor_pick(self, newsletter: str, post_key: str, action: str) -> None:
        with self.db.transaction():
            (position,) = self.db.execute(
                "SELECT coalesce(max(position), 0) + 1 FROM editor_picks WHERE newsletter = ?",
                (newsletter,),
            ).fetchone()
            self.db.execute(
                """INSERT INTO editor_picks (newsletter, post_key, action, position, created) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (newsletter, post_key) DO UPDATE SET action = excluded.action,
                       position = excluded.position, created = excluded.created""",
                (newsletter, post_key, action, position, iso(now())),
            )

    @wrap_errors
    def clear_editor_picks(self, newsletter: str, post_key: str | None = None) -> int:
        """Forget the picks (and the note) for the next edition; one post's pick with ``post_key``."""
        with self.db.transaction():
            if post_key is None:
                self.db.execute("DELETE FROM kv WHERE key = ?", (f"editor:{newsletter}:note",))
                cur = self.db.execute(
                    "DELETE FROM editor_picks WHERE newsletter = ?", (newsletter,)
                )
            else:
                cur = self.db.execute(
                    "DELETE FROM editor_picks WHERE newsletter = ? AND post_key = ?",
                    (newsletter, post_key),
                )
        return int(cur.rowcount)

    def editor_note(self, newsletter: str) -> str:
        """The note given with `send --note` for the next edition ("" when none)."""
        return str(self.kv_get(f"editor:{newsletter}:note") or "")

    def set_editor_note(self, newsletter: str, text: str) -> None:
        self.kv_put(f"editor:{newsletter}:note", text)

    @wrap_errors
    def finish_edition(self, edition_id: int) -> None:
        self.db.execute("UPDATE editions SET status = 'done' WHERE id = ?", (edition_id,))

    # --- email deliveries --------------------------------------------------------

    @wrap_errors
    def claim_email(self, edition_id: int, address: str) -> bool:
        """Claim (edition, address) before sending; False if it is not to be sent now.

        A row already ``sent`` or ``failed`` is never claimed again; a ``deferred`` one
        once its ``not_before`` has passed; a ``claimed`` one only by the run that
        claimed it, or (in flight when a run died) by the run holding the run lock: that
        is the only way a message can go out twice.  A ``pending`` row (queued for send
        workers, see :mod:`.queue`) is claimed as if there were none.  The claim is one statement whose
        row count says whether this process won it, so two processes on one ledger
        never both claim a row, even without the run lock.
        """
        exclusive = self._exclusive()
        ts = iso(now())
        cur = self.db.execute(
            """
            INSERT INTO email_deliveries AS d (edition_id, address, status, attempts, updated, run)
            VALUES (?, ?, 'claimed', 1, ?, ?)
            ON CONFLICT (edition_id, address) DO UPDATE SET
                status = 'claimed', attempts = d.attempts + 1, updated = excluded.updated,
                run = excluded.run
            WHERE (d.status = 'claimed' AND (d.run IS excluded.run OR ?))
               OR d.status = 'pending'
               OR (d.status = 'deferred' AND (d.not_before IS NULL OR d.not_before <= excluded.updated))
            """,
            (edition_id, address.lower(), ts, self.run, exclusive),
        )
        return cur.rowcount == 1

    @wrap_errors
    def mark_email(self, edition_id: int, address: str, outcome: Outcome) -> None:
        if outcome.release:
            self.release_email(edition_id, address, outcome.error)
            return
        self.db.execute(
            """UPDATE email_deliveries SET status = ?, remote_id = ?, error = ?,
                      not_before = ?, updated = ?
               WHERE edition_id = ? AND address = ?""",
            (*mark_values(outcome), edition_id, address.lower()),
        )
        if outcome.bounce:
            self.suppress(address, "bounced", outcome.error)

    @wrap_errors
    def release_email(self, edition_id: int, address: str, error: str = "") -> None:
        """Put a claimed delivery back as it was before this run's claim: a setup problem
        (an unverified sender, refused credentials) stopped the send, not the recipient.
        A first claim is removed (the recipient is untouched); an earlier deferral stays,
        due at once, without counting this attempt."""
        with self.db.transaction() as db:
            db.execute(
                """DELETE FROM email_deliveries
                   WHERE edition_id = ? AND address = ? AND status = 'claimed' AND attempts <= 1""",
                (edition_id, address.lower()),
            )
            db.execute(
                """UPDATE email_deliveries SET status = 'deferred', attempts = attempts - 1,
                          error = ?, not_before = NULL, updated = ?
                   WHERE edition_id = ? AND address = ? AND status = 'claimed'""",
                (error or None, iso(now()), edition_id, address.lower()),
            )

    @wrap_errors
    def requeue_failed(self, edition_id: int, *, in_doubt: bool = False) -> int:
        """Forget the failed (and, with ``in_doubt``, the in-doubt) deliveries of an
        edition so that the next send tries them again, and reopen the edition.  Allowed
        once per edition: the time and the count are kept in ``kv`` under
        ``retry-failed:<edition id>``.  Addresses suppressed since (bounced, unsubscribed)
        stay failed.  Returns how many were re-queued."""
        key = f"retry-failed:{edition_id}"
        statuses = ("failed", "in_doubt") if in_doubt else ("failed",)
        marks = ", ".join("?" for _ in statuses)
        with self.db.transaction() as db:
            cur = db.execute(
                f"""DELETE FROM email_deliveries
                    WHERE edition_id = ? AND status IN ({marks})
                      AND address NOT IN (SELECT address FROM subscribers WHERE status != 'active')""",
                (edition_id, *statuses),
            )
            n = cur.rowcount
            if n:
                db.execute("UPDATE editions SET status = 'sending' WHERE id = ?", (edition_id,))
                db.execute(
                    """INSERT INTO kv (key, value, updated) VALUES (?, ?, ?)
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                      updated = excluded.updated""",
                    (key, json.dumps({"requeued": n, "at": iso(now())}), iso(now())),
                )
        return n

    @wrap_errors
    def failed_requeued(self, edition_id: int) -> dict[str, Any] | None:
        """When and how many failed deliveries of the edition ``requeue_failed`` put back."""
        row = self.db.execute(
            "SELECT value FROM kv WHERE key = ?", (f"retry-failed:{edition_id}",)
        ).fetchone()
        return json.loads(row[0]) if row else None

    @wrap_errors
    def email_status(self, edition_id: int, address: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM email_deliveries WHERE edition_id = ? AND address = ?",
            (edition_id, address.lower()),
        ).fetchone()
        return row[0] if row else None

    @wrap_errors
    def email_counts(self, edition_id: int) -> dict[str, int]:
        # The four states every ledger knows, and any other found (in_doubt).  Rows
        # queued for send workers and not claimed yet (pending) count as no row at all.
        counts = {s.value: 0 for s in DeliveryStatus if s is not DeliveryStatus.IN_DOUBT}
        for status, n in self.db.execute(
            """SELECT status, count(*) FROM email_deliveries
               WHERE edition_id = ? AND status != 'pending' GROUP BY status""",
            (edition_id,),
        ):
            counts[status] = n
        return counts

    @wrap_errors
    def emails_sent_since(self, since: datetime) -> int:
        """Messages sent (any edition) since ``since``: what a per-hour/per-day quota has used."""
        row = self.db.execute(
            "SELECT count(*) FROM email_deliveries WHERE status = 'sent' AND updated >= ?",
            (iso(since),),
        ).fetchone()
        return int(row[0])

    @wrap_errors
    def fail_stale_deferred(self, edition_id: int, max_attempts: int) -> int:
        """Give up on deliveries deferred ``max_attempts`` times."""
        cur = self.db.execute(
            """UPDATE email_deliveries SET status = 'failed',
                      error = 'gave up after ' || attempts || ' attempts: ' || coalesce(error, '')
               WHERE edition_id = ? AND status = 'deferred' AND attempts >= ?""",
            (edition_id, max_attempts),
        )
        return cur.rowcount
