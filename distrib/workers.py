"""Send workers: one edition drained by several processes over a PostgreSQL ledger.

``distrib send --worker`` runs :func:`work_edition` for each unfinished edition: claim
a batch of the edition's queued recipients, send it through the mailer, mark the
outcomes in small groups, claim the next (the queue, its leases and what a kill costs
are in :mod:`distrib.ledger.queue`).  ``distrib run --workers N`` does a run's usual
work under the run lock, queues the edition's recipients, then lets N ``send --worker``
processes of this host send it (:func:`spawn_workers`), holding the run lock shared
meanwhile so that no other run starts beside them.

On SQLite one process sends an edition (:mod:`distrib.deliver`); asking for workers
there is a usage error (:func:`require_workers`).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .deliver import MAX_ATTEMPTS, SendInterrupted, SendReport, StopRequest, count_outcome
from .errors import DistribError, UsageError
from .ledger.queue import MARK_GROUP, Claimed, LeaseLost, SendQueue
from .model import DeliveryStatus, Edition, Outcome, Recipient

if TYPE_CHECKING:
    from .adapters import Mailer
    from .config import Settings
    from .ledger import Ledger


class App(Protocol):
    """What the workers use of :class:`distrib.app.App` (which imports this module)."""

    settings: Settings

    @property
    def ledger(self) -> Ledger: ...

    @property
    def ledger_url(self) -> str | None: ...

    def mailer(self) -> Mailer: ...

    def prepare(self, edition: Edition) -> Any: ...

    def recipients(self, newsletter: str | None = None) -> Iterator[Recipient]: ...


log = logging.getLogger("distrib")

#: Seconds a worker's claimed rows stay its own without a renewal (renewed per batch).
#: Longer than a message can take (the SMTP timeout and its retries): a worker that is
#: alive but slower than its lease could see its rows sent by another.
DEFAULT_LEASE = 120.0
#: Recipients claimed at a time.
DEFAULT_BATCH = 50
#: A mark waits at most this long for its group (seconds).
MARK_WAIT = 0.05


@dataclass(frozen=True)
class Workers:
    """How workers send: ``n`` processes (for ``run --workers``), each lease and batch."""

    n: int = 1
    lease: float = DEFAULT_LEASE
    batch: int = DEFAULT_BATCH


def require_workers(app: App, flag: str) -> None:
    """Workers need the ledger in PostgreSQL and a mailer that sends per recipient."""
    from .adapters import load_mailer

    if app.ledger_url is None:
        raise UsageError(
            f"{flag} needs the ledger in PostgreSQL, shared by the workers: set [ledger] url_env "
            "(or url) to a postgresql:// database (`distrib ledger copy --to URL` moves this one); "
            "on SQLite one process sends an edition"
        )
    name = app.settings.email.mailer
    if load_mailer(name).handoff:
        raise UsageError(
            f"{flag}: the {name} mailer hands each edition to its platform in one request; "
            "send without workers"
        )


def quotas(app: App) -> list[tuple[int, timedelta]]:
    """The hourly and daily quotas of ``[email]``'s mailer (0: none)."""
    from .config import mailer_settings

    opts = mailer_settings(app.settings)
    return [
        (int(opts.get("rate_per_hour") or 0), timedelta(hours=1)),
        (int(opts.get("rate_per_day") or 0), timedelta(days=1)),
    ]


@dataclass
class _Worker:
    """One worker's send of one edition: the recipients it hands the mailer and the
    outcomes it records."""

    app: App
    edition: Edition
    queue: SendQueue
    report: SendReport
    stop: StopRequest
    fixed: dict[str, Recipient] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)
    marks: list[tuple[str, str, Outcome]] = field(default_factory=list)  # (run, address, outcome)
    first_mark: float = 0.0
    rest: list[str] = field(default_factory=list)  # claimed, not handed to the mailer yet
    rate: float = 0.0
    next_slot: float = 0.0

    # --- claiming --------------------------------------------------------------------

    def claim(self) -> list[Recipient]:
        """The next batch, as recipients to send; empty when nothing is claimable."""
        while True:
            try:
                rows = self.queue.claim()
            except LeaseLost:
                continue  # a new lease was taken: claim under it
            if not rows:
                return []
            batch = self._recipients(rows)
            if batch:
                return batch

    def _recipients(self, rows: Sequence[Claimed]) -> list[Recipient]:
        """The claimed rows as recipients: a row taken from two stopped workers is
        recorded in doubt, a reader who left since the queueing is dropped."""
        doubtful = [row.address for row in rows if row.reclaims >= 2]
        if doubtful:
            outcome = Outcome.in_doubt(
                "the workers that held it stopped twice while sending; "
                "`distrib send --retry-failed` with resend_in_doubt sends it again"
            )
            self.queue.mark([(a, outcome) for a in doubtful])
            for address in doubtful:
                count_outcome(self.report, Recipient(address), outcome)
        out: list[Recipient] = []
        gone: list[str] = []
        for row in rows:
            if row.reclaims >= 2:
                continue
            recipient = self._still_recipient(row)
            if recipient is None:
                gone.append(row.address)
            else:
                out.append(recipient)
        self.queue.drop(gone)
        self.rest = [r.email for r in out]
        return out

    def _still_recipient(self, row: Claimed) -> Recipient | None:
        """As :func:`distrib.subscribers.recipients` would yield it now, or None."""
        if row.address in self.left:
            return None
        if row.address in self.fixed:
            ledger = self.app.ledger
            return None if ledger.is_suppressed(row.address) else self.fixed[row.address]
        return Recipient(row.address, row.name) if row.subscriber == "active" else None

    def recipients(self, first: list[Recipient]) -> Iterator[Recipient]:
        """What the mailer pulls: this batch, then the next ones as they are claimed."""
        batch = first
        while batch:
            for recipient in batch:
                if self.stop.requested:
                    return  # the rest goes back to the queue (give_back)
                if self.queue.due_for_renewal():
                    self.flush()
                    if not self.queue.renew():
                        # The lease had ended: these rows may be another worker's now.
                        log.warning("the lease ended before it was renewed; leaving its rows")
                        self.rest = []
                        break
                self._pace()
                self.rest.remove(recipient.email)
                yield recipient
            self.flush()
            batch = self.claim()

    def _pace(self) -> None:
        """``rate_per_second`` shared among the live workers."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.queue.live / self.rate
        if slot > now:
            time.sleep(slot - now)

    def give_back(self) -> None:
        """Rows claimed but never handed to the mailer (a stop, a mailer error) go back
        to the queue at once, for any worker."""
        if self.rest:
            self.queue.give_back(self.rest)
            self.rest = []

    # --- outcomes --------------------------------------------------------------------

    def on_outcome(self, recipient: Recipient, outcome: Outcome) -> None:
        count_outcome(self.report, recipient, outcome)
        if outcome.release or outcome.bounce:
            self.flush()
            if outcome.release:
                self.queue.release(recipient.email, outcome.error)
            else:
                self.app.ledger.mark_email(self.edition.id, recipient.email, outcome)
            return
        if not self.marks:
            self.first_mark = time.monotonic()
        self.marks.append((self.queue.run, recipient.email, outcome))
        if len(self.marks) >= MARK_GROUP or time.monotonic() - self.first_mark > MARK_WAIT:
            self.flush()

    def flush(self) -> None:
        """Commit the marks waiting in the group (one statement per run they were
        claimed under: normally one)."""
        marks, self.marks = self.marks, []
        for run in dict.fromkeys(m[0] for m in marks):
            group = [(address, outcome) for r, address, outcome in marks if r == run]
            held = self.queue.mark(group, run)
            if held < len(group):
                log.warning(
                    "%d message(s) were marked after another worker took them over "
                    "(this worker's lease had ended)",
                    len(group) - held,
                )


def _drain(worker: _Worker, message: Any, lease: float) -> None:
    """Claim and send batches until nothing is claimable; wait while live workers hold
    rows of the edition (they finish them, or stop and leave them to this one)."""
    app, queue, report = worker.app, worker.queue, worker.report
    while not worker.stop.requested:
        first = worker.claim()
        if not first:
            if queue.quota_left == 0 or not queue.held_by_others():
                return
            time.sleep(min(1.0, lease / 4))
            continue
        mailer = app.mailer()
        try:
            with mailer:
                mailer.deliver(message, worker.recipients(first), worker.on_outcome)
        except DistribError as e:
            report.errors.append(str(e))
            return
        finally:
            worker.flush()
            worker.give_back()


def work_edition(
    app: App, edition: Edition, *, lease: float = DEFAULT_LEASE, batch: int = DEFAULT_BATCH
) -> SendReport:
    """Send ``edition`` as one of its workers; returns what this worker did."""
    from .config import mailer_settings
    from .subscribers import fixed_recipients

    ledger = app.ledger
    report = SendReport(edition.id)
    started = time.monotonic()
    queue = SendQueue(ledger, edition.id, lease=lease, batch=batch, quotas=quotas(app))
    queue.join()
    try:
        if not queue.queued():
            queue.enqueue(r.email for r in app.recipients(edition.newsletter))
        message = app.prepare(edition)
        with StopRequest() as stop:
            worker = _Worker(app, edition, queue, report, stop)
            worker.fixed = {r.email.lower(): r for r in fixed_recipients(app.settings)}
            worker.left = ledger.opted_out(edition.newsletter)
            worker.rate = float(mailer_settings(app.settings).get("rate_per_second") or 0)
            _drain(worker, message, lease)
    finally:
        with contextlib.suppress(DistribError):
            queue.leave()
    if stop.requested:
        raise SendInterrupted(report)
    report.seconds = time.monotonic() - started
    ledger.fail_stale_deferred(edition.id, MAX_ATTEMPTS)
    report.finished = not report.errors and not queue.open_rows()
    if report.finished:
        ledger.finish_edition(edition.id)
    return report


# --- `distrib run --workers N`: the workers of one host --------------------------------


def spawn_workers(
    app: App, edition: Edition, n: int, *, lease: float, batch: int, quiet: bool = True
) -> SendReport:
    """Queue ``edition``, then send it with ``n`` ``distrib send --worker`` processes
    and wait for them; the report counts what they recorded."""
    ledger = app.ledger
    queue = SendQueue(ledger, edition.id, lease=lease, batch=batch)
    if not queue.queued():
        queue.enqueue(r.email for r in app.recipients(edition.newsletter))
    before = ledger.email_counts(edition.id)
    started = time.monotonic()
    cmd = [
        sys.executable, "-m", "distrib", "send", "--worker",
        "--config", str(app.settings.path), "--newsletter", edition.newsletter,
        "--lease", str(lease), "--batch", str(batch), *(["-q"] if quiet else []),
    ]  # fmt: skip
    ledger.share_run_lock()  # the workers claim beside this process; no other run starts
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(n)]
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            p.terminate()  # each records what it has in flight, then stops
        for p in procs:
            p.wait()
        raise
    finally:
        ledger.take_run_lock_back()
    return _spawned_report(app, edition, before, codes, time.monotonic() - started)


def _spawned_report(
    app: App, edition: Edition, before: dict[str, int], codes: list[int], seconds: float
) -> SendReport:
    after = app.ledger.email_counts(edition.id)
    report = SendReport(edition.id, seconds=seconds)
    report.sent = after["sent"] - before["sent"]
    report.failed = after["failed"] - before["failed"]
    report.deferred = max(after["deferred"] - before["deferred"], 0)
    report.in_doubt = after.get(DeliveryStatus.IN_DOUBT.value, 0) - before.get(
        DeliveryStatus.IN_DOUBT.value, 0
    )
    for i, code in enumerate(codes, 1):
        if code not in (0, 1):
            report.errors.append(f"worker {i} of {len(codes)} stopped with exit code {code}")
    done = app.ledger.get_edition(edition.id)
    report.finished = done is not None and done.status == "done"
    return report
