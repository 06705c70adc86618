"""The SMTP mailer: a pool of reused connections, pipelined, rate-limited.

Each connection runs one transaction per message.  With ESMTP PIPELINING (RFC 2920)
one write carries the previous message's content and end-of-data plus the next
message's MAIL FROM, RCPT TO and DATA, so a message costs one round trip; without
it, each command waits for its reply.  The bytes come from
:meth:`PreparedMessage.for_recipient`: already CRLF, dot-safe and 7-bit, so they go
out as they are (no smtplib re-scan).

Everything runs in the calling thread (asyncio), so recipients are pulled (claimed in
the ledger) and reported (marked) there; only the ledger's WAL checkpoints, whose disk
syncs would stall every connection, run in a thread meanwhile
(:meth:`~distrib.ledger.Ledger.checkpoints_in_background`). Recipients are pulled
lazily: a connection takes one when it is ready to send it, so at most two per
connection are in flight (one being transferred, one whose envelope is pipelined
behind it); only the first of the two can have reached the server.

Outcomes from the server's replies (RFC 5321 4.2): 2xx sent; 4xx retried within the
run a few times with a short backoff, then deferred to a later run; 5xx failed, a
hard bounce (5.1.1 and friends) with ``bounce=True`` so the address is suppressed.
A dropped connection (or 421) is reopened and its messages are retried.  Problems a
retry cannot fix (connection refused, TLS, login, the sender refused) raise one
:class:`~distrib.mailers._smtpwire.SmtpError` line naming host:port and the fix, after
reporting every pulled-but-unsent recipient as deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

from ..adapters import Mailer, Report
from ..errors import ConfigError, DistribError
from ..model import Outcome, Recipient
from ..render.message import ascii_address, clean_header
from ..schema import (
    Opt,
    Section,
    choice,
    k_count,
    k_env_name,
    k_number,
    k_path,
    k_positive,
    k_str,
    with_defaults,
)
from ._smtpwire import Connection, ConnectionLost, Endpoint, Reply, SmtpError, open_connection

if TYPE_CHECKING:
    from pathlib import Path

    from ..adapters import Context
    from ..render.message import PreparedMessage

log = logging.getLogger("distrib")

DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
# An envelope address: no spaces, angle brackets or controls can reach the wire.
_ENVELOPE_OK = re.compile(r"[^\s<>()\[\],;:\\\"\x00-\x1f\x7f]+@[^\s<>()\[\],;:\\\"@\x00-\x1f\x7f]+")


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    recipient: Recipient = field(compare=False)
    tries: int = field(default=0, compare=False)
    data: bytes = field(default=b"", compare=False)
    rcpt: str = field(default="", compare=False)
    message_id: str = field(default="", compare=False)


@dataclass
class _Pipeline:
    """One pipelined connection's state between two writes."""

    conn: Connection
    #: With one connection, the next message is pulled (claimed) and built while the
    #: server digests the current one, instead of after its reply.  It has not been
    #: sent, so a kill then cannot make it arrive twice.
    prefetch: bool
    #: Its DATA got 354: its content goes in the next write.
    prev: _Job | None = None
    #: The last envelope was refused: the next one starts with RSET.
    need_rset: bool = False
    #: Pulled and built by the prefetch, not sent yet.
    ahead: _Job | None = None
    #: Written, and its reply not read yet: retried if the connection drops.
    unresolved: list[_Job] = field(default_factory=list)


class SmtpOptions(Section):
    """``[email.smtp]``, typed (the defaults are the ``Opt`` ones of SmtpMailer.options)."""

    __slots__ = ()
    host: str
    port: int | None
    security: str
    username: str | None
    password_env: str | None
    ca_file: Path | None
    helo: str | None
    timeout: float
    connections: int
    rate_per_second: float
    rate_per_hour: int
    rate_per_day: int
    retries: int
    retry_delay: float


class SmtpMailer(Mailer):
    """Delivers over SMTP: ``[email.smtp]`` host, port, security, login, pool, rate limits."""

    options: ClassVar[dict[str, Opt]] = {
        "host": Opt(k_str, "localhost", "the SMTP server's host name"),
        "port": Opt(k_positive, None, "the port; default 25, 587 (starttls) or 465 (ssl)"),
        "security": Opt(
            choice("none", "starttls", "ssl"),
            "starttls",
            "none, starttls (RFC 3207, port 587) or ssl (implicit TLS, port 465)",
        ),
        "username": Opt(k_str, None, "the login; unset: no AUTH"),
        "password_env": Opt(k_env_name, None, "environment variable holding the password"),
        "ca_file": Opt(
            k_path, None, "a CA certificate file to trust (a private server's certificate)"
        ),
        "helo": Opt(k_str, None, "the name sent in EHLO; default: this machine's host name"),
        "timeout": Opt(k_number, 60.0, "seconds to wait for the server before giving up"),
        "connections": Opt(k_positive, 1, "how many connections send at once"),
        "rate_per_second": Opt(k_number, 0.0, "the most messages a second; 0: no limit"),
        "rate_per_hour": Opt(
            k_count, 0, "the most messages an hour (the rest wait for later runs); 0: no limit"
        ),
        "rate_per_day": Opt(
            k_count, 0, "the most messages a day (the rest wait for later runs); 0: no limit"
        ),
        "retries": Opt(k_count, 2, "how many times a temporary failure is retried within the run"),
        "retry_delay": Opt(k_number, 2.0, "seconds before the first retry; doubles each time"),
    }

    def __init__(self, options: Section, ctx: Context) -> None:
        super().__init__(options, ctx)
        self._where = (options.where if isinstance(options, Section) else "") or "email.smtp"
        o = SmtpOptions(with_defaults(self.options, options), self._where)
        security = o.security or "starttls"
        self.endpoint = Endpoint(
            host=o.host or "localhost",
            port=o.port or DEFAULT_PORTS[security],
            security=security,
            helo=clean_header(o.helo or "") or _local_name(),
            timeout=float(o.timeout),
            username=o.username or None,
            password_env=o.password_env or None,
            ca_file=str(o.ca_file) if o.ca_file else None,
        )
        self.connections = int(o.connections)
        self.rate_per_second = float(o.rate_per_second)
        self.rate_per_hour = int(o.rate_per_hour)
        self.rate_per_day = int(o.rate_per_day)
        self.retries = int(o.retries)
        self.retry_delay = float(o.retry_delay)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: counts for the summary and the benchmarks
        self.stats = {"sent": 0, "deferred": 0, "failed": 0, "reconnects": 0}

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> SmtpMailer:
        self._credentials()
        self._loop = asyncio.new_event_loop()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def _credentials(self) -> None:
        ep = self.endpoint
        if not ep.username:
            return
        if not ep.password_env:
            raise ConfigError(
                f"{self._where}.password_env: missing; username is set, so name the environment "
                f'variable that holds the password, such as password_env = "SMTP_PASSWORD"'
            )
        ep.password = self.ctx.settings.secret(self.opts, "password_env", where=self._where)

    def describe(self) -> str:
        return f"to {self.endpoint.host}:{self.endpoint.port}"

    # --- delivery --------------------------------------------------------------------

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        if self._loop is None:
            with self:
                return self.deliver(message, recipients, report)
        if self.endpoint.username and self.endpoint.password is None:
            self._credentials()
        run = _Run(self, message, recipients, report, self._budget())
        # The claims and marks commit in this thread, between the connections' turns:
        # let another thread do the WAL checkpoints, whose syncs would stall them all.
        ledger = self.ctx.ledger
        checkpoints = (
            ledger.checkpoints_in_background() if ledger is not None else contextlib.nullcontext()
        )
        task = self._loop.create_task(run.main())
        try:
            with checkpoints:
                self._loop.run_until_complete(task)
        except BaseException:
            # Ctrl-C or an error from ``report``: close the connections before leaving.
            # Recipients in flight stay claimed in the ledger; the next run sends them.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    self._loop.run_until_complete(task)
            raise

    def _budget(self) -> int | None:
        """How many messages the hour/day quotas allow now (None: no limit)."""
        ledger = self.ctx.ledger
        budgets = []
        for limit, span in (
            (self.rate_per_hour, timedelta(hours=1)),
            (self.rate_per_day, timedelta(days=1)),
        ):
            if limit:
                used = ledger.emails_sent_since(self.ctx.now - span) if ledger is not None else 0
                budgets.append(max(limit - used, 0))
        return min(budgets) if budgets else None


class _Run:
    """One deliver() call: the pool, the retry queue and the bookkeeping."""

    def __init__(
        self,
        mailer: SmtpMailer,
        message: PreparedMessage,
        recipients: Iterator[Recipient],
        report: Report,
        budget: int | None,
    ):
        self.m = mailer
        self.ep = mailer.endpoint
        self.message = message
        self.recipients = recipients
        self._report = report
        self.budget = budget
        self.sender = ascii_address(message.envelope_from)
        self.seq = itertools.count()
        self.retry: list[_Job] = []  # heap by due time
        self.exhausted = False
        self.fatal: BaseException | None = None
        self.alive = 0
        self.next_slot = 0.0  # per-second pacing
        self.reported = 0
        self.pulled = 0
        self.dot_safe = bool(getattr(message, "dot_safe", False))

    # bookkeeping -----------------------------------------------------------------------

    def report(self, job: _Job, outcome: Outcome) -> None:
        self.m.stats[outcome.status.value] = self.m.stats.get(outcome.status.value, 0) + 1
        self.reported += 1
        self._report(job.recipient, outcome)

    def transient(self, job: _Job, why: str) -> None:
        """A temporary failure: retry within the run a few times, then defer."""
        if job.tries < self.m.retries and self.fatal is None:
            job.tries += 1
            job.due = time.monotonic() + self.m.retry_delay * 2 ** (job.tries - 1)
            heapq.heappush(self.retry, job)
        else:
            self.report(job, Outcome.deferred(why))

    def _take(self) -> _Job | None:
        if self.fatal is not None:
            return None
        if self.retry and self.retry[0].due <= time.monotonic():
            return heapq.heappop(self.retry)
        if self.exhausted:
            return None
        if self.budget is not None and self.budget <= 0:
            if not self.exhausted:
                log.info(
                    "%s: the hourly/daily quota is used up; the rest is sent by a later run",
                    self.ep.where,
                )
            self.exhausted = True
            return None
        try:
            recipient = next(self.recipients)
        except StopIteration:
            self.exhausted = True
            return None
        self.pulled += 1
        if self.budget is not None:
            self.budget -= 1
        return _Job(0.0, next(self.seq), recipient)

    async def next_job(self, wait: bool = True) -> _Job | None:
        """The next message for a connection: a due retry, else a fresh recipient.

        ``wait``: sleep until a queued retry is due; else None at once (a connection
        holding a message whose content is not sent yet does not keep it waiting).
        """
        while True:
            job = self._take()
            if job is not None:
                if self.m.rate_per_second > 0:
                    now = time.monotonic()
                    slot = max(self.next_slot, now)
                    self.next_slot = slot + 1.0 / self.m.rate_per_second
                    if slot > now:
                        await asyncio.sleep(slot - now)
                return job
            if wait and self.fatal is None and self.retry:
                await asyncio.sleep(max(self.retry[0].due - time.monotonic(), 0.0) + 0.001)
                continue
            return None

    def prepare(self, job: _Job) -> bool:
        """Build the job's bytes and envelope; False (reported failed) when it cannot go."""
        if job.data:
            return True
        rcpt = ascii_address(job.recipient.email)
        if not _ENVELOPE_OK.fullmatch(rcpt):
            self.report(
                job, Outcome.failed(f"not a valid address for SMTP: {job.recipient.email!r}")
            )
            return False
        data, job.message_id = self.message.message_for(job.recipient)
        # Our messages never need it (no line starts with "."; scanning 60 KB for one
        # costs more than building the message), but a message from elsewhere would
        # be cut short by the server: dot-stuff it (RFC 5321 4.5.2).
        if not self.dot_safe and (data.startswith(b".") or b"\r\n." in data):
            data = re.sub(rb"(^|\r\n)\.", rb"\1..", data)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        job.data = data
        job.rcpt = rcpt
        return True

    def envelope(self, conn: Connection, job: _Job) -> bytes | None:
        params = ""
        if not (self.sender.isascii() and job.rcpt.isascii()):
            if not conn.smtputf8:
                self.report(
                    job,
                    Outcome.failed(
                        f"{self.ep.where} does not accept non-ASCII addresses (SMTPUTF8)"
                    ),
                )
                return None
            params = " SMTPUTF8"
        return f"MAIL FROM:<{self.sender}>{params}\r\nRCPT TO:<{job.rcpt}>\r\n".encode()

    # connections ------------------------------------------------------------------------

    async def connect(self, *, first: bool = False, extra: bool = False) -> Connection | None:
        """A new connection, or None when this worker should stop.

        The first connection is tried once: if the server cannot be used at all, the run
        stops with its error before anything is pulled.  A reconnect after a drop is
        tried a few times; when the last live connection cannot be reopened, the run
        stops with the error.  An extra pool connection that fails is only logged (the
        server may limit connections per client).
        """
        last: BaseException | None = None
        for attempt in range(1 if first else 3):
            if attempt:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
            try:
                return await open_connection(self.ep)
            except SmtpError as e:
                last = e
            except ConnectionLost as e:
                last = SmtpError(
                    f"{self.ep.where}: {e}; try again later or lower [email.smtp] connections"
                )
        if first or (not extra and self.alive <= 1):
            self.fatal = self.fatal or last
        else:
            log.warning("%s: a connection could not be opened (%s)", self.ep.where, last)
        return None

    async def main(self) -> None:
        try:
            first = await self.connect(first=True)
            if first is not None:
                self.alive = 1
                tasks = [asyncio.ensure_future(self.worker(first))]
                for _ in range(self.m.connections - 1):
                    tasks.append(asyncio.ensure_future(self.extra_worker()))
                try:
                    await asyncio.gather(*tasks)
                except BaseException:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
        finally:
            # Whatever happened, nobody pulled is left unreported.
            while self.retry:
                job = heapq.heappop(self.retry)
                self.report(job, Outcome.deferred(str(self.fatal or "not retried in this run")))
        if self.fatal is not None:
            raise (
                self.fatal
                if isinstance(self.fatal, DistribError)
                else DistribError(str(self.fatal))
            )

    async def extra_worker(self) -> None:
        conn = await self.connect(extra=True) if self.fatal is None else None
        if conn is None:
            return
        self.alive += 1
        await self.worker(conn)

    async def worker(self, conn: Connection) -> None:
        last: Connection | None = conn  # the connection to close when done
        try:
            if conn.pipelining:
                last = await self._pipelined(conn)
            else:
                last = await self._stepwise(conn)
        finally:
            self.alive -= 1
            if last is not None:
                await last.close()

    async def reconnect(self, conn: Connection, why: str) -> Connection | None:
        conn.abort()
        self.m.stats["reconnects"] += 1
        log.info("%s: %s; reconnecting", self.ep.where, why)
        return await self.connect()

    # the transaction, pipelined ----------------------------------------------------------

    async def _pipelined(self, conn: Connection) -> Connection | None:
        """Send over a PIPELINING connection: one write and one round trip per message.

        Returns the connection to close, or None when it was lost for good.
        """
        pipe = _Pipeline(conn, prefetch=self.m.connections == 1 and self.m.rate_per_second <= 0)
        while True:
            job = await self._pipeline_job(pipe)
            if job is None and pipe.prev is None:
                return pipe.conn
            env = self._ready(pipe.conn, job) if job is not None else b""
            if env is None:
                continue  # reported failed
            pipe.unresolved = [j for j in (pipe.prev, job) if j is not None]
            try:
                self._send_group(pipe, job, env)
                async with asyncio.timeout(self.ep.timeout):
                    await pipe.conn.writer.drain()
                    await self._settle_previous(pipe)
                    if job is not None:
                        await self._settle_envelope(pipe, job)
            except (ConnectionLost, TimeoutError, ConnectionError, OSError) as e:
                if not await self._pipeline_reconnect(pipe, str(e) or "no answer in time"):
                    return None
                if not pipe.conn.pipelining:
                    self._requeue_ahead(pipe)
                    return await self._stepwise(pipe.conn)

    async def _pipeline_job(self, pipe: _Pipeline) -> _Job | None:
        """The prefetched message, else the next one.

        Waits for a due retry only when no message's content is pending (it would be
        held back meanwhile).
        """
        if pipe.ahead is not None:
            job, pipe.ahead = pipe.ahead, None
            return job
        return await self.next_job(wait=pipe.prev is None)

    def _ready(self, conn: Connection, job: _Job) -> bytes | None:
        """The job built and its MAIL FROM and RCPT TO lines; None when it cannot go
        (reported failed)."""
        if not self.prepare(job):
            return None
        return self.envelope(conn, job)

    def _send_group(self, pipe: _Pipeline, job: _Job | None, env: bytes) -> None:
        """One write: the previous content and end-of-data, then this envelope (RFC 2920
        3.1: message content may start a group, DATA ends one); then the prefetch."""
        out: list[bytes] = []
        if pipe.prev is not None:
            out += (pipe.prev.data, b".\r\n")
        if job is not None:
            if pipe.need_rset:
                out.append(b"RSET\r\n")
            out += (env, b"DATA\r\n")
        pipe.conn.writer.write(b"".join(out))
        if pipe.prefetch and job is not None:
            self._prefetch(pipe)

    def _prefetch(self, pipe: _Pipeline) -> None:
        """Pull and build the next message while the server digests the one just written."""
        pipe.ahead = self._take()
        if pipe.ahead is not None and not self.prepare(pipe.ahead):
            pipe.ahead = None

    async def _settle_previous(self, pipe: _Pipeline) -> None:
        """Read the reply to the previous message's end of data and report its outcome."""
        if pipe.prev is None:
            return
        reply = await pipe.conn.read_reply()
        pipe.unresolved.remove(pipe.prev)
        self.finish(pipe.prev, reply)
        pipe.prev = None

    async def _settle_envelope(self, pipe: _Pipeline, job: _Job) -> None:
        """Read the replies to RSET, MAIL, RCPT and DATA: all yes, the job's content goes
        in the next write; else the job is reported refused."""
        if pipe.need_rset:
            await pipe.conn.read_reply()
            pipe.need_rset = False
        mail = await pipe.conn.read_reply()
        rcpt = await pipe.conn.read_reply()
        data = await pipe.conn.read_reply()
        pipe.unresolved.remove(job)
        if mail.code < 300 and rcpt.code < 300 and data.code == 354:
            pipe.prev = job
            return
        pipe.need_rset = True
        if data.code == 354:
            # A server that takes DATA with no valid recipient: end the empty message at
            # once.
            pipe.conn.writer.write(b".\r\n")
            await pipe.conn.read_reply()
        self._envelope_refused(job, mail, rcpt, data)

    def _envelope_refused(self, job: _Job, mail: Reply, rcpt: Reply, data: Reply) -> None:
        """Report the first refusal among the replies to MAIL, RCPT and DATA."""
        if mail.code >= 300:
            self.sender_refused(job, mail)
        elif rcpt.code >= 300:
            self.refused(job, rcpt)
        else:
            self.refused(job, data)

    async def _pipeline_reconnect(self, pipe: _Pipeline, why: str) -> bool:
        """After a drop: every message written and not answered is retried, and the
        connection reopened.  False when it cannot be (the prefetched message is queued,
        and reported at the end)."""
        for j in pipe.unresolved:
            self.transient(j, f"{self.ep.where}: {why}")
        pipe.prev = None
        pipe.need_rset = False
        new = await self.reconnect(pipe.conn, why)
        if new is None:
            self._requeue_ahead(pipe)
            return False
        pipe.conn = new
        return True

    def _requeue_ahead(self, pipe: _Pipeline) -> None:
        """The prefetched message, pulled but never sent, goes back to the retry queue
        (a later turn sends it, or the end of the run reports it deferred)."""
        if pipe.ahead is not None:
            pipe.ahead.due = 0.0
            heapq.heappush(self.retry, pipe.ahead)
            pipe.ahead = None

    # the transaction, one command at a time ----------------------------------------------

    async def _stepwise(self, conn: Connection) -> Connection | None:
        while True:
            job = await self.next_job()
            if job is None:
                return conn
            if not self.prepare(job):
                continue
            env = self.envelope(conn, job)
            if env is None:
                continue
            mail_line, rcpt_line = env.split(b"\r\n")[:2]
            try:
                async with asyncio.timeout(self.ep.timeout):
                    reply = await conn.command(mail_line.decode("utf-8"))
                    if reply.code >= 300:
                        self.sender_refused(job, reply)
                        await conn.command("RSET")
                        continue
                    reply = await conn.command(rcpt_line.decode("utf-8"))
                    if reply.code >= 300:
                        self.refused(job, reply)
                        await conn.command("RSET")
                        continue
                    reply = await conn.command("DATA")
                    if reply.code != 354:
                        self.refused(job, reply)
                        await conn.command("RSET")
                        continue
                    conn.writer.write(job.data + b".\r\n")
                    await conn.writer.drain()
                    reply = await conn.read_reply()
                self.finish(job, reply)
            except (ConnectionLost, TimeoutError, ConnectionError, OSError) as e:
                why = str(e) or "timed out"
                self.transient(job, f"{self.ep.where}: {why}")
                again = await self.reconnect(conn, why)
                if again is None:
                    return None
                conn = again

    # outcomes --------------------------------------------------------------------------------

    def finish(self, job: _Job, reply: Reply) -> None:
        """The reply to the end of a message's data."""
        if 200 <= reply.code < 300:
            self.report(job, Outcome.sent(job.message_id))
        else:
            self.refused(job, reply)

    def refused(self, job: _Job, reply: Reply) -> None:
        if 400 <= reply.code < 500:
            self.transient(job, str(reply))
        else:
            self.report(job, Outcome.failed(str(reply), bounce=reply.hard_bounce))

    def sender_refused(self, job: _Job, reply: Reply) -> None:
        if 400 <= reply.code < 500:
            self.transient(job, str(reply))
            return
        # A permanent refusal of our own address fails every message alike: stop.
        self.fatal = self.fatal or SmtpError(
            f"{self.ep.where} refused the sender {self.sender} ({reply}); check [email] from "
            f"and that the SMTP account may send as that address"
        )
        self.report(job, Outcome.deferred(str(reply)))


def _local_name() -> str:
    name = socket.getfqdn()
    return name if "." in name else "localhost.localdomain"
