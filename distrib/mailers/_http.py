"""What the HTTP mailers share: one httpx client, batching, retries, error shapes.

The delivery loop's contract (distrib.deliver): a mailer pulls recipients from the
iterator (each pull claims one in the ledger) and reports every pulled recipient
exactly once, in the thread that called ``deliver``.  :func:`deliver_in_batches`
keeps it for any mailer that sends in batches: it pulls one batch, sends it, reports
each recipient, and only then pulls the next, so at most one batch is in flight (the
most a crash can make arrive twice).  A batch that the provider throttles or that
fails as a whole is retried a few times with short waits (nothing sleeps for minutes
inside cron), then deferred; the mailer then stops pulling and the rest of the list
waits, untouched, for the next run.  Contains no provider-specific logic.

Only what provably never reached the provider is retried: a connection that could not
be made, a 429, a 503.  A request that was sent and got no answer (a read timeout, a
dropped connection, a gateway's 502/504, a 500) may have been accepted: none of
Postmark, Mailgun or SES takes an idempotency key, so sending it again could deliver
twice.  Such a request raises :class:`InDoubt`; the mailer reconciles it with the
provider's own log where there is one, and otherwise records its messages as in doubt
(:meth:`HttpMailer.unanswered`).

An answer that shows the account or the config is wrong (an unverified sender,
refused credentials, a missing permission) is a *setup* problem: every message would
get it.  The recipients it concerns are put back as never tried
(:meth:`Outcome.released`), the send stops with one line naming the fix, and the next
run, after the fix, resumes where this one stopped.

The mailers' common lifecycle lives here too: :class:`HttpMailer` (client and thread
pool opened on enter, closed on exit), :class:`ParallelMailer` (one request per
recipient, in parallel: Mailgun, SES) and :class:`HandoffMailer` (one campaign per
edition: listmonk, Buttondown).
"""

from __future__ import annotations

import email.utils
import importlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import httpx

from .. import __version__
from ..adapters import Context, Mailer, Report
from ..errors import AdapterUnavailable, ConfigError, DeliveryError, DistribError
from ..model import DeliveryStatus, Outcome, Recipient

if TYPE_CHECKING:
    from ..render.message import PreparedMessage
    from ..schema import Section

log = logging.getLogger("distrib")

T = TypeVar("T")

USER_AGENT = f"distrib/{__version__}"
#: Waits within a run are short: a longer Retry-After defers to the next run instead.
MAX_WAIT = 10.0


class Transient(Exception):
    """A whole request failed without reaching the provider, or was refused for now
    (throttled, 503): sending it again cannot deliver twice."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class InDoubt(Exception):
    """A request was sent and no usable answer came: the provider may have accepted it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def make_client(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: float = 30.0,
    connections: int = 4,
) -> httpx.Client:
    """The httpx client of one mailer: keep-alive, bounded, no redirects (an API that
    redirects a POST is misconfigured, and following it could send twice)."""
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"} | (headers or {}),
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (RFC 9110 section 10.2.3): delay or HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_text(response: httpx.Response, limit: int = 200) -> str:
    """The provider's own explanation from an error answer, on one short line."""
    text = ""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "Message", "detail", "error", "errors"):
            if data.get(key):
                value = data[key]
                text = value if isinstance(value, str) else str(value)
                break
        code = data.get("code")
        if isinstance(code, str) and code and text:
            text = f"{code}: {text}"  # Buttondown's machine-readable error code
    if not text:
        text = response.text
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def check_transient(response: httpx.Response, name: str, *, repeatable: bool = False) -> None:
    """Raise :class:`Transient` for 429 and 503 (the request was refused, not done) and
    :class:`InDoubt` for the other 5xx answers (a 500, or a gateway's 502/504, may come
    after the provider accepted the request), unless the request is ``repeatable``
    (a GET, or a POST with an idempotency key): then every 5xx is :class:`Transient`."""
    status = response.status_code
    if status == 429:
        raise Transient(f"{name}: rate limited (HTTP 429)", retry_after(response))
    if status < 500:
        return
    reason = f"{name}: server error (HTTP {status}): {error_text(response)}"
    if status == 503 or repeatable:
        raise Transient(reason, retry_after(response))
    raise InDoubt(reason)


def with_retries(
    call: Callable[[], T], *, attempts: int = 3, sleep: Callable[[float], None] = time.sleep
) -> T:
    """``call()``, retried on :class:`Transient` up to ``attempts`` times in all, waiting
    the asked Retry-After (at most :data:`MAX_WAIT`) or 1 s, 2 s, 4 s ...  A Retry-After
    longer than MAX_WAIT is not waited for: the error goes up at once."""
    for attempt in range(attempts):
        try:
            return call()
        except Transient as e:
            wait = e.retry_after if e.retry_after is not None else float(2**attempt)
            if attempt == attempts - 1 or wait > MAX_WAIT:
                raise
            sleep(wait)
    raise AssertionError("unreachable")


#: Failures that happen before a byte of the request reaches the provider.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def transport_guard(
    name: str, call: Callable[[], httpx.Response], *, repeatable: bool = False
) -> httpx.Response:
    """``call()`` with network failures turned into :class:`Transient` when the request
    cannot have reached the provider (or may be repeated), else :class:`InDoubt`."""
    try:
        return call()
    except NOT_SENT as e:
        raise Transient(f"{name}: could not connect ({type(e).__name__})") from None
    except httpx.TimeoutException as e:
        reason = f"{name}: no answer in time ({type(e).__name__})"
        if repeatable:
            raise Transient(reason) from None
        raise InDoubt(reason) from None
    except httpx.TransportError as e:
        reason = f"{name}: the connection failed after the request was sent ({type(e).__name__})"
        if repeatable:
            raise Transient(reason) from None
        raise InDoubt(reason) from None


def batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Lists of up to ``size`` items, each pulled only when the previous one is done."""
    while True:
        batch = list(islice(items, size))
        if not batch:
            return
        yield batch


#: A batch sender: given a batch, yields (index in the batch, outcome) for each recipient.
SendBatch = Callable[[list[Recipient]], Iterable[tuple[int, Outcome]]]


def deliver_in_batches(
    name: str,
    recipients: Iterator[Recipient],
    size: int,
    send_batch: SendBatch,
    report: Callable[[Recipient, Outcome], None],
    *,
    pace: Callable[[int], None] | None = None,
) -> None:
    """Send ``recipients`` ``size`` at a time and report each exactly once.

    ``send_batch`` yields an outcome per index (any order); it may raise
    :class:`Transient` for the whole batch (all deferred, then we stop pulling) or a
    :class:`DistribError` (credentials, configuration: all unreported put back as never
    tried, then it goes up and stops the send).  A batch of which nothing was sent or
    failed for good (all deferred or in doubt) also stops the send: the account is
    throttled or out of quota, or the provider does not answer, and the rest waits for
    the next run.
    ``pace(n)`` is called before each batch of ``n`` (a rate limit may sleep there).
    """
    for batch in batches(recipients, size):
        if pace is not None:
            pace(len(batch))
        done: set[int] = set()
        all_deferred = True
        try:
            for i, outcome in send_batch(batch):
                if i in done:
                    continue
                done.add(i)
                report(batch[i], outcome)
                if outcome.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
                    all_deferred = False
        except Transient as e:
            _defer_rest(batch, done, e.reason, e.retry_after, report)
            log.warning("%s; the rest of the list waits for the next run", e.reason)
            return
        except KeyboardInterrupt:
            # Sent or not is unknown: they stay claimed, and the next run sends them.
            raise
        except DistribError as e:
            _defer_rest(batch, done, str(e), None, report, release=True)
            raise
        except Exception as e:
            _defer_rest(batch, done, f"{name}: {type(e).__name__}: {e}", None, report)
            raise
        _defer_rest(batch, done, f"{name}: no answer for this recipient", None, report)
        if all_deferred:
            log.warning(
                "%s sent nothing of a whole batch; the rest of the list waits for the next run",
                name,
            )
            return


def _defer_rest(
    batch: list[Recipient],
    done: set[int],
    reason: str,
    retry: float | None,
    report: Callable[[Recipient, Outcome], None],
    *,
    release: bool = False,
) -> None:
    for i, recipient in enumerate(batch):
        if i not in done:
            done.add(i)
            report(
                recipient, Outcome.released(reason) if release else Outcome.deferred(reason, retry)
            )


class Pacer:
    """At most ``rate`` messages per second on average (0: no limit), by sleeping in
    the calling thread before a batch: a provider's sending rate (SES: 14/s by
    default) is kept instead of being hit and throttled."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.start: float | None = None
        self.count = 0

    def __call__(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        if self.start is None:
            self.start = now
        due = self.start + self.count / self.rate
        if due > now:
            self.sleep(due - now)
        self.count += n


def display_address(name: str, address: str) -> str:
    """``"Name" <address>`` for JSON APIs that take a display name (UTF-8 allowed there)."""
    name = " ".join(name.split())
    if not name:
        return address
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'


def config_error(name: str, what: str, fix: str) -> DeliveryError:
    """A credentials/configuration failure: stops the send with one line and the fix."""
    return DeliveryError(f"{name}: {what}; {fix}")


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# --- the mailers' lifecycle ------------------------------------------------------------


class HttpMailer(Mailer):
    """A mailer that talks to a provider's API through one client.

    ``with mailer:`` opens :attr:`client` (:meth:`open_client` reads the secret and
    builds it) and, for a :attr:`threaded` mailer, a :attr:`pool` of
    :attr:`connections` threads; leaving closes both.  ``deliver`` also works without
    ``with`` (a one-off test send): it opens on first use with :meth:`_ensure_open`.
    """

    name: ClassVar[str] = ""
    #: Requests go out ``connections`` at a time from a thread pool (Mailgun, SES).
    threaded: ClassVar[bool] = False

    def __init__(self, options: Section, ctx: Context):
        super().__init__(options, ctx)
        self.client: Any = None
        self.pool: ThreadPoolExecutor | None = None
        for module in self.requires:
            # Checked when the mailer is made (check, run, send), not when it first
            # sends: a missing extra is one line with the fix, never a traceback.
            try:
                importlib.import_module(module)
            except ImportError:
                raise AdapterUnavailable(
                    f"the mailer {self.name!r} needs the Python package {module!r}, which is "
                    f"not installed: pip install 'distrib[{self.name}]'"
                ) from None

    def unanswered(self, reason: str) -> Outcome:
        """The outcome of a message whose request got no answer: in doubt (not resent),
        or deferred (resent by the next run) with ``[email] resend_in_doubt = true``."""
        if self.ctx.settings.email.get("resend_in_doubt"):
            return Outcome.deferred(f"{reason}; in doubt, resent (resend_in_doubt = true)")
        return Outcome.in_doubt(
            f"{reason}; in doubt: the provider may have it, so it is not resent "
            "(check the provider's log; resend_in_doubt = true resends such messages)"
        )

    def open_client(self) -> Any:
        """The provider's client, ready to send (credentials read and checked)."""
        raise NotImplementedError

    def close_client(self, client: Any) -> None:
        client.close()

    @property
    def connections(self) -> int:
        """Requests in flight at once: a threaded mailer's ``connections`` option, else 1."""
        return int(self.opts.get("connections") or 4) if self.threaded else 1

    def __enter__(self) -> Self:
        self.client = self.open_client()
        if self.threaded:
            self.pool = ThreadPoolExecutor(
                max_workers=self.connections, thread_name_prefix=f"distrib-{self.name}"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        if self.client is not None:
            self.close_client(self.client)
            self.client = None

    def _ensure_open(self) -> None:
        if self.client is None:
            self.__enter__()

    def required_secret(self, option: str, holds: str) -> str:
        """The secret that ``option`` names; a ConfigError naming the fix when it is unset."""
        value = self.ctx.settings.secret(self.opts, option, where=f"email.{self.name}")
        if not value:
            raise ConfigError(
                f"email.{self.name}.{option}: missing; name the variable that holds {holds}"
            )
        return value

    def http_client(self, base_url: str, **kw: Any) -> httpx.Client:
        """:func:`make_client` with this mailer's ``timeout`` and :attr:`connections`."""
        return make_client(
            base_url,
            timeout=float(self.opts.get("timeout") or 60),
            connections=self.connections,
            **kw,
        )


class FixNamed(str):
    """A setup problem that already names its fix (no generic fix is added)."""


class ParallelMailer(HttpMailer):
    """One request per recipient, :attr:`connections` in parallel, paced to ``rate``.

    A subclass says how one recipient is sent (:meth:`send_one`) and what to fix when
    an answer shows the account or credentials are wrong (:meth:`setup_fix`).
    """

    threaded: ClassVar[bool] = True

    def send_one(self, message: PreparedMessage, recipient: Recipient) -> tuple[Outcome, str]:
        """Send to one recipient (in a pool thread): its outcome, and a setup problem
        that stops the send ("" when there is none)."""
        raise NotImplementedError

    def setup_fix(self) -> str:
        """The fix named when :meth:`send_one` reports a setup problem."""
        raise NotImplementedError

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        self._ensure_open()
        pace = Pacer(float(self.opts.get("rate") or 0))
        deliver_in_batches(
            self.name,
            recipients,
            self.connections,
            lambda batch: self._send(message, batch),
            report,
            pace=pace,
        )

    def _send(
        self, message: PreparedMessage, batch: list[Recipient]
    ) -> Iterable[tuple[int, Outcome]]:
        assert self.pool is not None
        futures = [self.pool.submit(self.send_one, message, r) for r in batch]
        # Wait for every request of the batch before reporting: a setup problem seen in
        # one answer must not turn another, already accepted, message into "deferred".
        results = [f.result() for f in futures]
        problem = ""
        for i, (outcome, setup) in enumerate(results):
            problem = problem or setup
            yield i, Outcome.released(outcome.error) if setup else outcome
        if isinstance(problem, FixNamed):
            raise DeliveryError(f"{self.name}: {problem}")
        if problem:
            raise config_error(self.name, problem, self.setup_fix())


# --- hand-off to a newsletter platform ------------------------------------------------------


def handoff_recipient(mailer_name: str) -> Recipient:
    """The pseudo-recipient a hand-off mailer's one delivery per edition is recorded under."""
    return Recipient(f"handoff:{mailer_name}")


class HandoffMailer(HttpMailer):
    """The delivery loop of a hand-off mailer (listmonk, Buttondown).

    The app gives it an iterator of exactly one pseudo-recipient
    (:func:`handoff_recipient`), claimed in the ledger like any recipient, so a rerun
    never hands the same edition off twice.  :meth:`hand_off` first looks for a campaign
    already carrying the edition's marker (a run that died between creating it and
    marking the ledger), and only creates one when there is none.
    """

    handoff: ClassVar[bool] = True

    def hand_off(self, message: PreparedMessage) -> str:
        """Find or create (and start) the edition's campaign; return its remote id."""
        raise NotImplementedError

    def api(self, method: str, path: str, *, permission: str = "", **kw: Any) -> httpx.Response:
        """One request to the platform's API (see :func:`request`).  Every request of a
        hand-off may be repeated: :meth:`hand_off` looks for the campaign before it
        creates one, or the platform takes an idempotency key."""
        return request(
            self.client, self.name, method, path, permission=permission, repeatable=True, **kw
        )

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        self._ensure_open()
        remote: str | None = None
        for recipient in recipients:
            if not recipient.email.startswith("handoff:"):
                # A real address (a test send, or a caller that forgot the pseudo-
                # recipient): creating a campaign for it would send to the whole list.
                report(recipient, Outcome.deferred(f"{self.name}: not a hand-off recipient"))
                raise DeliveryError(
                    f"{self.name}: a hand-off mailer sends one campaign to the platform's list, "
                    f"not a message to {recipient.email}; use `distrib preview`, or the platform's own test send"
                )
            if remote is not None:
                # Only one campaign per edition, whatever we are given.
                report(recipient, Outcome.sent(remote))
                continue
            try:
                remote = with_retries(lambda: self.hand_off(message))
            except Transient as e:
                report(recipient, Outcome.deferred(e.reason, e.retry_after))
                log.warning("%s; the hand-off is retried by the next run", e.reason)
                return
            except KeyboardInterrupt:
                raise
            except DistribError as e:
                report(recipient, Outcome.released(str(e)))
                raise
            except Exception as e:
                report(recipient, Outcome.deferred(f"{self.name}: {type(e).__name__}: {e}"))
                raise
            report(recipient, Outcome.sent(remote))


def edition_marker(prefix: str, edition_id: int) -> str:
    """The name that ties a platform's campaign to our edition ("distrib-42")."""
    return f"{prefix or 'distrib'}-{edition_id}"


def request(
    client: httpx.Client,
    name: str,
    method: str,
    path: str,
    *,
    permission: str = "",
    repeatable: bool = False,
    **kw: Any,
) -> httpx.Response:
    """One API request; 429/5xx/network become :class:`Transient` (or :class:`InDoubt`,
    see :func:`transport_guard`), other errors a :class:`DeliveryError` with the
    platform's message and the fix.  ``permission`` names what a 403 lacks."""
    response = transport_guard(
        name, lambda: client.request(method, path, **kw), repeatable=repeatable
    )
    check_transient(response, name, repeatable=repeatable)
    text = error_text(response)
    if response.status_code == 401 or (
        # Some platforms answer 403 to a wrong key; their message says so.
        response.status_code == 403
        and any(w in text.lower() for w in ("credential", "token", "password", "api key"))
    ):
        raise config_error(
            name,
            f"the API refused the credentials (HTTP {response.status_code})",
            f"check [email.{name}] and its *_env variable",
        )
    if response.status_code == 403:
        # Authenticated, but not allowed: a missing permission, not a wrong key.
        what = f"the {permission} permission" if permission else "the permission"
        raise config_error(
            name,
            f"{method} {path} was forbidden (HTTP 403: {error_text(response)})",
            f"give the API user {what}",
        )
    if response.status_code >= 400:
        raise config_error(
            name,
            f"{method} {path} was refused (HTTP {response.status_code}): {error_text(response)}",
            f"check [email.{name}]",
        )
    return response
