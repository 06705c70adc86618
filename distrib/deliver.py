"""The email delivery loop: claim, send, mark, one recipient at a time.

The mailer pulls recipients from an iterator; pulling one *claims* it in the ledger (a
committed row) before the mailer sees it, and the mailer's report *marks* it.  So a run
killed at any instant leaves every recipient either untouched (sent next run), marked
(never sent again) or claimed (in flight at the kill: sent again next run, the only
possible duplicates, at most the mailer's in-flight window).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .adapters import Mailer
from .errors import DistribError
from .ledger import Ledger
from .model import DeliveryStatus, Outcome, Recipient
from .render.message import PreparedMessage

log = logging.getLogger("distrib")

#: A recipient deferred this many times is given up on (marked failed).
MAX_ATTEMPTS = 8


@dataclass
class SendReport:
    edition_id: int
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    in_doubt: int = 0  # sent, but no answer came: the provider may have them
    skipped: int = 0  # already sent or failed in an earlier run, or deferred until later
    finished: bool = False  # every recipient has a final state: the edition is done
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def attempted(self) -> int:
        return self.sent + self.deferred + self.failed + self.in_doubt


def deliver_edition(
    ledger: Ledger,
    mailer: Mailer,
    message: PreparedMessage,
    recipients: Iterable[Recipient],
    *,
    progress: Progress | None = None,
) -> SendReport:
    """Deliver one edition to every recipient not yet done; record each as it happens."""
    edition_id = message.edition_id
    report = SendReport(edition_id)
    exhausted = False
    started = time.monotonic()

    stop = StopRequest()

    def claimed() -> Iterator[Recipient]:
        nonlocal exhausted
        for recipient in recipients:
            if stop.requested:
                return  # the mailer finishes what it has in flight, then returns
            if ledger.claim_email(edition_id, recipient.email):
                yield recipient
            else:
                report.skipped += 1
        exhausted = True

    def on_outcome(recipient: Recipient, outcome: Outcome) -> None:
        ledger.mark_email(edition_id, recipient.email, outcome)
        count_outcome(report, recipient, outcome)
        if progress:
            progress.update(report)

    if progress:
        progress.start()
    try:
        with stop, mailer:
            mailer.deliver(message, claimed(), on_outcome)
    except DistribError as e:
        # Claimed-but-unreported recipients stay "claimed": the next run sends them.
        report.errors.append(str(e))
    finally:
        if progress:
            progress.update(report, final=True)
    if stop.requested:
        # Everything that went out is marked; the rest is untouched, for the next run.
        raise SendInterrupted(report)
    report.seconds = time.monotonic() - started
    ledger.fail_stale_deferred(edition_id, MAX_ATTEMPTS)
    counts = ledger.email_counts(edition_id)
    report.finished = (
        exhausted and not report.errors and counts["claimed"] == 0 and counts["deferred"] == 0
    )
    if report.finished:
        ledger.finish_edition(edition_id)
    return report


def count_outcome(report: SendReport, recipient: Recipient, outcome: Outcome) -> None:
    """Count one mailer's report in ``report`` (and log what did not go)."""
    if outcome.status is DeliveryStatus.SENT:
        report.sent += 1
    elif outcome.status is DeliveryStatus.DEFERRED:
        report.deferred += 1
    elif outcome.status is DeliveryStatus.IN_DOUBT:
        report.in_doubt += 1
        log.warning("%s: in doubt: %s", recipient.email, outcome.error)
    else:
        report.failed += 1
        log.warning("%s: %s", recipient.email, outcome.error)


class SendInterrupted(KeyboardInterrupt):
    """A send stopped by Ctrl-C or SIGTERM, with what it did: the command line says it
    in its one line, terminal or not (cron mails it)."""

    def __init__(self, report: SendReport) -> None:
        super().__init__()
        self.report = report

    def summary(self) -> str:
        r = self.report
        parts = [f"{r.sent} delivered"]
        if r.deferred:
            parts.append(f"{r.deferred} deferred")
        if r.failed:
            parts.append(f"{r.failed} failed")
        return f"edition {r.edition_id}: {', '.join(parts)} before the stop"


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM during a send: stop *taking* recipients, let the
    mailer finish and record the messages it has in flight, then stop.

    Interrupting the mailer itself would leave those messages "claimed" although the
    server may have them, and the next run would send them again.  A second signal
    acts at once (the handlers in place before are restored after the first).
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        import signal

        self.requested = True
        log.warning("stopping once what is in flight is recorded (again to stop at once)")
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if not self.requested:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}


class Progress:
    """A progress line with rate and ETA on a terminal; silent otherwise (cron).

    ``total`` is the number of recipients of the edition (counted by the caller, only
    when the line is shown); those done in earlier runs count as done at once.
    """

    def __init__(self, total: int | None, stream: object, *, enabled: bool):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def start(self, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, report: SendReport, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last < 0.2:
            return
        self._last = now
        sent_now = report.attempted
        done = sent_now + report.skipped
        rate = sent_now / max(now - self.started, 1e-6)
        text = f"\r  edition {report.edition_id}: {done}"
        if self.total:
            left = max(self.total - done, 0)
            eta = f"{left / rate:.0f}s" if rate else "?"
            text += f"/{self.total} ({100 * done // max(self.total, 1)}%), ETA {eta}"
        text += f", {rate:.0f} msg/s"
        self.stream.write(text + ("\n" if final else ""))  # type: ignore[attr-defined]
        self.stream.flush()  # type: ignore[attr-defined]
