"""The send workers' queue: several processes drain one edition together (PostgreSQL).

``distrib send --worker`` (and ``distrib run --workers N``) send one edition from several
processes, on one host or several, over one PostgreSQL ledger.  The edition's recipients
are queued once as ``pending`` rows of ``email_deliveries`` (``INSERT ... ON CONFLICT DO
NOTHING``, so whichever worker gets there first queues them and a second queueing changes
nothing).  Then each worker, in a loop:

- **claims a batch** in one statement and one round trip: the first ``batch`` rows of the edition that are
  ``pending``, ``deferred`` and due, or ``claimed`` by a process whose lease has ended,
  locked ``FOR UPDATE SKIP LOCKED`` (two workers never wait for, nor take, the same row)
  and set ``claimed`` with its run.  The same statement renews the worker's lease
  (``send_workers``): one lease row per worker, renewed per batch, never per message;
- **sends** them through the mailer, the suppression list consulted first (a reader who
  left since the queueing is dropped from the queue, as if never queued);
- **marks** them in small groups (:meth:`SendQueue.mark`): one statement, one commit
  and one round trip for up to :data:`MARK_GROUP` outcomes, flushed at the latest when
  the next batch is claimed or the mailer returns.

What a kill costs.  A worker killed with ``kill -9`` leaves its batch ``claimed``; once
its lease has ended, another worker takes those rows and sends them.  Of them, only the
messages the server had accepted and whose mark was not yet committed arrive twice:
the mailer's in-flight window (one message per SMTP connection can have reached the
server) plus the marks waiting in the group (at most :data:`MARK_GROUP`).  The rest of the batch had never been handed to the
mailer, so sending it is its first send.  A row taken from a stopped worker counts it in
``reclaims``; when the worker that took it stops holding it as well, it is not sent a
third time but recorded ``in_doubt`` (``[email] resend_in_doubt`` and ``send
--retry-failed`` send it again), so no row is resent more than once per stopped holder,
and a message that kills every worker that tries it cannot stop the edition.

Quotas hold across workers: with ``rate_per_hour``/``rate_per_day`` set, a claim takes
a transaction-scoped advisory lock and counts the messages sent in the window plus
every row claimed now (each is about to be sent), so N workers together claim no more
than the quota leaves.  ``rate_per_second`` is shared among the live workers (each
paces at the rate divided by their number, counted at every claim).

Everything here is PostgreSQL's (``FOR UPDATE SKIP LOCKED``, advisory locks); on SQLite
one process sends an edition (:mod:`distrib.deliver`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ..model import Outcome
from .common import iso, now, wrap_errors
from .editions import mark_values
from .schema import APPLICATION_ID

#: The advisory-lock key (APPLICATION_ID, QUOTA_KEY) serialising quota-limited claims.
QUOTA_KEY = 2
#: Outcomes committed together: a kill loses at most these marks (their messages are
#: sent again), beside the mailer's own in-flight window.
MARK_GROUP = 16
#: Recipients queued per transaction.
QUEUE_PAGE = 1000

_CLAIM = """
WITH lease AS (
    UPDATE send_workers SET lease_until = ? WHERE run = ? AND lease_until > ?
    RETURNING (SELECT count(*) FROM send_workers WHERE lease_until > ?) AS live
),
picked AS (
    SELECT d.edition_id, d.address FROM email_deliveries AS d
    WHERE d.edition_id = ?
      AND EXISTS (SELECT 1 FROM lease)
      AND (d.status = 'pending'
           OR (d.status = 'deferred' AND (d.not_before IS NULL OR d.not_before <= ?))
           OR (d.status = 'claimed' AND NOT EXISTS (
                   SELECT 1 FROM send_workers AS w WHERE w.run = d.run AND w.lease_until > ?)))
    ORDER BY d.address
    LIMIT ?
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE email_deliveries AS d
    SET status = 'claimed', run = ?, attempts = d.attempts + 1, updated = ?,
        reclaims = d.reclaims + CASE WHEN d.status = 'claimed' THEN 1 ELSE 0 END
    FROM picked
    WHERE d.edition_id = picked.edition_id AND d.address = picked.address
    RETURNING d.address, d.reclaims
)
SELECT CAST(NULL AS TEXT), live, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM lease
UNION ALL
SELECT c.address, c.reclaims,
       (SELECT s.status FROM subscribers AS s WHERE s.address = c.address),
       (SELECT s.name FROM subscribers AS s WHERE s.address = c.address)
FROM claimed AS c
"""

_RENEW = """
UPDATE send_workers SET lease_until = ? WHERE run = ? AND lease_until > ?
RETURNING (SELECT count(*) FROM send_workers WHERE lease_until > ?)
"""


def _ts(when: datetime) -> str:
    return str(iso(when))


class Claimed(NamedTuple):
    """A claimed row: its address, how often it was taken from a stopped worker, and
    the address's subscriber status and name now (None: not a subscriber)."""

    address: str
    reclaims: int
    subscriber: str | None
    name: str


class LeaseLost(Exception):
    """This worker's lease had ended before it renewed it: its rows may be another's."""


class SendQueue:
    """One worker's view of one edition's queue (see the module's docstring)."""

    def __init__(
        self,
        ledger: Any,
        edition_id: int,
        *,
        lease: float,
        batch: int,
        quotas: Sequence[tuple[int, timedelta]] = (),
    ):
        self.ledger = ledger
        self.db = ledger.db
        self.edition_id = edition_id
        self.lease = float(lease)
        self.batch = int(batch)
        self.quotas = [(limit, span) for limit, span in quotas if limit]
        self.run = ""
        #: live workers (this one included) at the last claim: the per-second rate's share
        self.live = 1
        self.renewed = 0.0  # time.monotonic() of the last renewal
        #: what the quotas left at the last claim (None: no quota)
        self.quota_left: int | None = None

    def _until(self) -> str:
        return _ts(now() + timedelta(seconds=self.lease))

    # --- the lease -----------------------------------------------------------------

    @wrap_errors
    def join(self) -> None:
        """Take a lease under a new run id (a lost lease is never taken back)."""
        self.run = secrets.token_hex(8)
        with self.db.transaction():
            self.db.execute(
                """INSERT INTO send_workers (run, host, pid, started, lease_until)
                   VALUES (?, ?, ?, ?, ?)""",
                (self.run, socket.gethostname(), os.getpid(), iso(now()), self._until()),
            )
        self.renewed = time.monotonic()

    @wrap_errors
    def leave(self) -> None:
        """Give the lease up (the rows this worker still holds are free at once)."""
        if self.run:
            self.db.execute("DELETE FROM send_workers WHERE run = ?", (self.run,))

    def _renew(self) -> None:
        ts = _ts(now())
        self._renewed(self.db.execute(_RENEW, (self._until(), self.run, ts, ts)).fetchall())

    def _renewed(self, rows: Sequence[Any]) -> None:
        if not rows:
            raise LeaseLost(self.run)
        self.live = max(int(rows[0][0]), 1)
        self.renewed = time.monotonic()

    @wrap_errors
    def renew(self) -> bool:
        """Renew the lease; False (and a new run id) when it had ended meanwhile."""
        try:
            with self.db.transaction():
                self._renew()
        except LeaseLost:
            self.join()
            return False
        return True

    def due_for_renewal(self) -> bool:
        return time.monotonic() - self.renewed > self.lease / 3

    # --- queueing ------------------------------------------------------------------

    @wrap_errors
    def queued(self) -> bool:
        return self.ledger.kv_get(f"edition:{self.edition_id}:queued") is not None

    @wrap_errors
    def enqueue(self, addresses: Iterable[str]) -> None:
        """Queue ``addresses`` as pending rows (those with a row already keep it)."""
        page: list[tuple[int, str, str]] = []
        for address in addresses:
            page.append((self.edition_id, address.lower(), _ts(now())))
            if len(page) >= QUEUE_PAGE:
                self._insert(page)
                page = []
        if page:
            self._insert(page)
        # Fresh statistics, so that the planner looks marks up by key (without them, a
        # table just filled is taken for a small one and scanned for every group).
        self.db.execute("ANALYZE email_deliveries")
        self.ledger.kv_put(f"edition:{self.edition_id}:queued", iso(now()))

    def _insert(self, page: list[tuple[int, str, str]]) -> None:
        with self.db.transaction():
            self.db.executemany(
                """INSERT INTO email_deliveries (edition_id, address, status, attempts, updated)
                   VALUES (?, ?, 'pending', 0, ?)
                   ON CONFLICT (edition_id, address) DO NOTHING""",
                page,
            )

    # --- claims ----------------------------------------------------------------------

    @wrap_errors
    def claim(self) -> list[Claimed]:
        """Claim the next batch, renewing the lease, in one statement.  Empty when
        nothing is claimable now (or the quota is used up: :attr:`quota_left` is 0
        then).  Raises :class:`LeaseLost` (after taking a new lease) when this worker's
        lease had ended: the rows it holds may be another's, so it sends none of them."""
        self.quota_left = None
        try:
            with contextlib.ExitStack() as stack:
                limit = self.batch
                if self.quotas:
                    # the quota counted and the rows claimed under one lock, in one transaction
                    stack.enter_context(self.db.transaction())
                    self.quota_left = self._quota_left()
                    limit = min(limit, self.quota_left)
                ts = _ts(now())
                params = (self._until(), self.run, ts, ts, self.edition_id, ts, ts)
                rows = self.db.execute(_CLAIM, (*params, max(limit, 0), self.run, ts)).fetchall()
            lease = [r for r in rows if r[0] is None]
            self._renewed([(lease[0][1],)] if lease else [])
        except LeaseLost:
            self.join()
            raise
        return sorted(
            Claimed(str(r[0]), int(r[1]), r[2], str(r[3] or "")) for r in rows if r[0] is not None
        )

    def _quota_left(self) -> int:
        self.db.execute("SELECT pg_advisory_xact_lock(?, ?)", (APPLICATION_ID, QUOTA_KEY))
        (claimed,) = self.db.execute(
            "SELECT count(*) FROM email_deliveries WHERE status = 'claimed'"
        ).fetchone()
        left = []
        for limit, span in self.quotas:
            (sent,) = self.db.execute(
                "SELECT count(*) FROM email_deliveries WHERE status = 'sent' AND updated >= ?",
                (iso(now() - span),),
            ).fetchone()
            left.append(limit - int(sent) - int(claimed))
        return max(min(left), 0)

    # --- marks -----------------------------------------------------------------------

    @wrap_errors
    def mark(self, outcomes: Sequence[tuple[str, Outcome]], run: str | None = None) -> int:
        """Record the outcomes of rows this worker holds (claimed under ``run``, by
        default its run now), in one statement and one commit; returns how many rows
        were still this worker's."""
        if not outcomes:
            return 0
        values = ", ".join("(?, ?, ?, ?, ?, ?)" for _ in outcomes)
        params: list[Any] = []
        for address, outcome in outcomes:
            params += [address.lower(), *mark_values(outcome)]
        cur = self.db.execute(
            f"""WITH v (address, status, remote_id, error, not_before, updated) AS (VALUES {values})
                UPDATE email_deliveries AS d
                SET status = v.status, remote_id = v.remote_id, error = v.error,
                    not_before = v.not_before, updated = v.updated
                FROM v
                WHERE d.edition_id = ? AND d.address = v.address AND d.run = ?""",
            (*params, self.edition_id, run or self.run),
        )
        return int(cur.rowcount)

    def _held(self, sql: str, addresses: Sequence[str], extra: Sequence[Any] = ()) -> int:
        if not addresses:
            return 0
        marks = ", ".join("?" for _ in addresses)
        cur = self.db.execute(
            sql.format(marks=marks),
            (*extra, self.edition_id, self.run, *(a.lower() for a in addresses)),
        )
        return int(cur.rowcount)

    @wrap_errors
    def give_back(self, addresses: Sequence[str]) -> int:
        """Rows this worker claimed and never handed to the mailer: pending again, this
        claim not counted."""
        return self._held(
            """UPDATE email_deliveries SET status = 'pending', attempts = attempts - 1
               WHERE edition_id = ? AND run = ? AND status = 'claimed' AND address IN ({marks})""",
            addresses,
        )

    @wrap_errors
    def drop(self, addresses: Sequence[str]) -> int:
        """Rows of readers who left (or were suppressed) since the queueing: removed,
        as the single-process send never makes a row for them."""
        return self._held(
            """DELETE FROM email_deliveries
               WHERE edition_id = ? AND run = ? AND status = 'claimed' AND address IN ({marks})""",
            addresses,
        )

    @wrap_errors
    def release(self, address: str, error: str) -> None:
        """A setup problem stopped the send (see ``Ledger.release_email``): the row goes
        back to the queue, this attempt not counted."""
        self.db.execute(
            """UPDATE email_deliveries SET status = 'pending', attempts = attempts - 1,
                      error = ?, updated = ?
               WHERE edition_id = ? AND run = ? AND status = 'claimed' AND address = ?""",
            (error or None, iso(now()), self.edition_id, self.run, address.lower()),
        )

    # --- the edition's state -----------------------------------------------------------

    @wrap_errors
    def held_by_others(self) -> bool:
        """Whether live workers (not this one) hold rows of the edition: they finish
        them, or stop and leave them to this one once their lease ends."""
        row = self.db.execute(
            """SELECT 1 FROM email_deliveries AS d JOIN send_workers AS w ON w.run = d.run
               WHERE d.edition_id = ? AND d.status = 'claimed' AND w.run != ? AND w.lease_until > ?
               LIMIT 1""",
            (self.edition_id, self.run, iso(now())),
        ).fetchone()
        return row is not None

    @wrap_errors
    def open_rows(self) -> dict[str, int]:
        """Rows still to send: pending, claimed, deferred (due or not)."""
        return {
            str(status): int(n)
            for status, n in self.db.execute(
                """SELECT status, count(*) FROM email_deliveries
                   WHERE edition_id = ? AND status IN ('pending', 'claimed', 'deferred')
                   GROUP BY status""",
                (self.edition_id,),
            )
        }
