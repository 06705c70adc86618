"""Share deliveries: one row per (post, channel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import DeliveryStatus, Outcome
from .common import Part, from_iso, iso, now, wrap_errors
from .runs import RunLock


@dataclass(frozen=True, slots=True)
class ShareRow:
    post_key: str
    channel: str
    status: str
    attempts: int
    remote_id: str | None
    text: str | None
    error: str | None
    not_before: datetime | None
    updated: datetime


class Shares(RunLock, Part):
    # --- share deliveries --------------------------------------------------------

    @wrap_errors
    def claim_share(self, post_key: str, channel: str, text: str) -> bool:
        """Claim (post, channel) before posting; same rules as :meth:`claim_email`."""
        exclusive = self._exclusive()
        ts = iso(now())
        cur = self.db.execute(
            """
            INSERT INTO share_deliveries AS d (post_key, channel, status, attempts, text, updated, run)
            VALUES (?, ?, 'claimed', 1, ?, ?, ?)
            ON CONFLICT (post_key, channel) DO UPDATE SET
                status = 'claimed', attempts = d.attempts + 1, text = excluded.text,
                updated = excluded.updated, run = excluded.run
            WHERE (d.status = 'claimed' AND (d.run IS excluded.run OR ?))
               OR (d.status = 'deferred' AND (d.not_before IS NULL OR d.not_before <= excluded.updated))
            """,
            (post_key, channel, text, ts, self.run, exclusive),
        )
        return cur.rowcount == 1

    @wrap_errors
    def mark_share(self, post_key: str, channel: str, outcome: Outcome) -> None:
        not_before = None
        if outcome.status is DeliveryStatus.DEFERRED:
            not_before = iso(now() + timedelta(seconds=outcome.retry_after or 900))
        self.db.execute(
            """UPDATE share_deliveries SET status = ?, remote_id = ?, error = ?,
                      not_before = ?, updated = ?
               WHERE post_key = ? AND channel = ?""",
            (
                outcome.status.value,
                outcome.remote_id or None,
                outcome.error or None,
                not_before,
                iso(now()),
                post_key,
                channel,
            ),
        )

    @wrap_errors
    def set_share_text(self, post_key: str, channel: str, text: str) -> None:
        """A share recomposed while in flight (the network refused the first text
        without posting it): its retries send this text."""
        self.db.execute(
            "UPDATE share_deliveries SET text = ? WHERE post_key = ? AND channel = ?",
            (text, post_key, channel),
        )

    @wrap_errors
    def share_row(self, post_key: str, channel: str) -> ShareRow | None:
        row = self.db.execute(
            "SELECT * FROM share_deliveries WHERE post_key = ? AND channel = ?",
            (post_key, channel),
        ).fetchone()
        if not row:
            return None
        return ShareRow(
            post_key=row["post_key"],
            channel=row["channel"],
            status=row["status"],
            attempts=row["attempts"],
            remote_id=row["remote_id"],
            text=row["text"],
            error=row["error"],
            not_before=from_iso(row["not_before"]),
            updated=datetime.fromisoformat(row["updated"]),
        )

    @wrap_errors
    def shares_since(self, channel: str, since: datetime) -> list[datetime]:
        """When this channel's sent or in-flight posts went out, since ``since`` (newest first)."""
        return [
            datetime.fromisoformat(r[0])
            for r in self.db.execute(
                """SELECT updated FROM share_deliveries
                   WHERE channel = ? AND status IN ('sent', 'claimed') AND updated >= ?
                   ORDER BY updated DESC""",
                (channel, iso(since)),
            )
        ]

    @wrap_errors
    def claimed_shares(self, channel: str) -> list[str]:
        """Posts a dead run left in flight on this channel, oldest claim first.

        Without the run lock only this process's own claims: another's may be alive.
        """
        # Asked, not taken: a dry run lists beside a running run without locking it out.
        exclusive = self._holds_run_lock()
        return [
            r[0]
            for r in self.db.execute(
                """SELECT post_key FROM share_deliveries
                   WHERE channel = ? AND status = 'claimed' AND (run IS ? OR ?)
                   ORDER BY updated""",
                (channel, self.run, exclusive),
            )
        ]

    @wrap_errors
    def shared_keys(self, channel: str) -> set[str]:
        """Posts that have a row for this channel in any state."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT post_key FROM share_deliveries WHERE channel = ?", (channel,)
            )
        }
