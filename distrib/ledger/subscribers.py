"""Subscribers kept by distrib itself, and the suppression list every send consults."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .common import Row, iso, now, wrap_errors
from .signups import Signups


class Subscribers(Signups):
    """Subscribers and the suppression list; an address erased by ``forget`` (kept in
    :class:`.signups.Signups`) counts as suppressed and is never added again."""

    # --- subscribers and suppression --------------------------------------------

    @wrap_errors
    def suppressed(self) -> set[str]:
        return {
            r[0]
            for r in self.db.execute("SELECT address FROM subscribers WHERE status != 'active'")
        }

    @wrap_errors
    def is_suppressed(self, address: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM subscribers WHERE address = ? AND status != 'active'",
            (address.lower(),),
        ).fetchone()
        return row is not None or self.is_forgotten(address)

    @wrap_errors
    def suppress(self, address: str, status: str, reason: str = "") -> None:
        ts = iso(now())
        self.db.execute_durably(
            """INSERT INTO subscribers (address, status, reason, created, updated)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (address) DO UPDATE SET status = excluded.status,
                      reason = excluded.reason, updated = excluded.updated""",
            (address.lower(), status, reason or None, ts, ts),
        )

    @wrap_errors
    def opt_out(self, address: str, newsletter: str, reason: str = "") -> bool:
        """Take ``address`` off one newsletter (fully synced); False if it was already off."""
        cur = self.db.execute_durably(
            """INSERT INTO newsletter_optouts (address, newsletter, reason, created)
               VALUES (?, ?, ?, ?) ON CONFLICT (newsletter, address) DO NOTHING""",
            (address.lower(), newsletter, reason or None, iso(now())),
        )
        return cur.rowcount == 1

    @wrap_errors
    def is_opted_out(self, address: str, newsletter: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM newsletter_optouts WHERE newsletter = ? AND address = ?",
            (newsletter, address.lower()),
        ).fetchone()
        return row is not None

    @wrap_errors
    def all_opt_outs(self) -> dict[str, list[str]]:
        """Every address that left some newsletters alone, with those newsletters."""
        out: dict[str, list[str]] = {}
        for address, newsletter in self.db.execute(
            "SELECT address, newsletter FROM newsletter_optouts"
        ):
            out.setdefault(address, []).append(newsletter)
        return out

    @wrap_errors
    def opted_out(self, newsletter: str) -> set[str]:
        """The addresses that left ``newsletter`` (and only it)."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT address FROM newsletter_optouts WHERE newsletter = ?", (newsletter,)
            )
        }

    @wrap_errors
    def paused(self) -> set[str]:
        """The active subscribers who paused every edition (the preferences page)."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT address FROM subscribers WHERE paused_at IS NOT NULL AND status = 'active'"
            )
        }

    @wrap_errors
    def add_subscriber(self, address: str, name: str = "") -> bool:
        """Add an active subscriber; False if the address is already known (any status)
        or was erased (``forget``)."""
        if self.is_forgotten(address):
            return False
        ts = iso(now())
        cur = self.db.execute(
            """INSERT INTO subscribers (address, name, status, created, updated)
               VALUES (?, ?, 'active', ?, ?) ON CONFLICT (address) DO NOTHING""",
            (address.lower(), name, ts, ts),
        )
        return cur.rowcount == 1

    @wrap_errors
    def iter_subscribers(self, status: str | None = "active") -> Iterator[tuple[str, str]]:
        """(address, name) pairs, streamed in address order."""
        if status is None:
            cur = self.db.execute("SELECT address, name FROM subscribers ORDER BY address")
        else:
            cur = self.db.execute(
                "SELECT address, name FROM subscribers WHERE status = ? ORDER BY address", (status,)
            )
        yield from cur

    @wrap_errors
    def get_subscriber(self, address: str) -> Row | None:
        """The subscribers row of ``address`` (any status), or None."""
        row: Row | None = self.db.execute(
            "SELECT * FROM subscribers WHERE address = ?", (address.lower(),)
        ).fetchone()
        return row

    @wrap_errors
    def subscriber_page(
        self, status: str | None = "active", after: str = "", limit: int = 1000
    ) -> list[Row]:
        """Up to ``limit`` rows with an address greater than ``after``, in address order.

        Keyset pagination: a million subscribers stream in pages without one long-lived
        read cursor (which would pin the WAL) and without a big list in memory.
        """
        if status is None:
            return self.db.execute(
                "SELECT * FROM subscribers WHERE address > ? ORDER BY address LIMIT ?",
                (after, limit),
            ).fetchall()
        return self.db.execute(
            "SELECT * FROM subscribers WHERE status = ? AND address > ? ORDER BY address LIMIT ?",
            (status, after, limit),
        ).fetchall()

    @wrap_errors
    def subscriber_counts(self) -> dict[str, int]:
        """Rows per status (active, unsubscribed, bounced, complained)."""
        counts = {s: 0 for s in ("active", "unsubscribed", "bounced", "complained")}
        for status, n in self.db.execute(
            "SELECT status, count(*) FROM subscribers GROUP BY status"
        ):
            counts[status] = n
        return counts

    @wrap_errors
    def suppress_active(self, address: str, status: str, reason: str = "") -> bool:
        """Suppress a known *active* subscriber; False if unknown or already suppressed."""
        cur = self.db.execute_durably(
            """UPDATE subscribers SET status = ?, reason = ?, updated = ?
               WHERE address = ? AND status = 'active'""",
            (status, reason or None, iso(now()), address.lower()),
        )
        return cur.rowcount == 1

    @contextlib.contextmanager
    def batches(self, *, dry_run: bool = False) -> Iterator[Callable[[], None]]:
        """One transaction for a long import, committed in pieces by the function it
        gives; a dry run's work is rolled back at the end, so its counts are exact.
        Suppressions from a file's status column must last like any other: every batch
        is committed with a full sync (a handful of syncs for a whole import)."""
        with self.db.batches(dry_run=dry_run, durable=True) as commit_so_far:
            yield commit_so_far
