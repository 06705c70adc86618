"""The three adapter interfaces (sources, mailers, channels) and what they are given.

An adapter is a class registered under an entry-point group (see registry.py).  It
declares its config options in ``options`` (validated under its own table) and the
optional modules it needs in ``requires`` (imported inside its methods only, so
``distrib --help`` stays fast).  Contains no business logic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from .model import Outcome, Post, Recipient, Snippet

if TYPE_CHECKING:
    from .config import Settings
    from .http import HttpClient
    from .ledger import Ledger
    from .render.message import PreparedMessage
    from .schema import Opt, Section

log = logging.getLogger("distrib")


@dataclass
class Context:
    """What every adapter may use.  ``ledger`` is None where nothing may be written."""

    settings: Settings
    now: datetime
    ledger: Ledger | None = None
    dry_run: bool = False
    _http: Any = field(default=None, repr=False)

    @property
    def http(self) -> HttpClient:
        """The one HTTP client of the run (created on first use)."""
        if self._http is None:
            from .http import HttpClient

            self._http = HttpClient(ledger=self.ledger)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class Source:
    """Gives posts.  ``fetch`` raises :class:`~distrib.errors.SourceError` on failure."""

    options: ClassVar[dict[str, Opt]] = {}
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, options: Section, ctx: Context):
        self.name = name
        self.opts = options
        self.ctx = ctx

    def fetch(self) -> list[Post]:
        raise NotImplementedError


#: A mailer calls this once for every recipient it pulled, in the thread that called
#: ``deliver``; the app marks the ledger from it.
Report = Callable[[Recipient, Outcome], None]


class Mailer:
    """Delivers an edition's prepared message to recipients.

    The app claims each recipient in the ledger as the mailer pulls it from the
    iterator, and marks it when the mailer reports; a mailer holds at most a bounded
    number of recipients in flight (its connections).  Use as a context manager:
    connections open on enter and close on exit.
    """

    options: ClassVar[dict[str, Opt]] = {}
    requires: ClassVar[tuple[str, ...]] = ()
    #: True for hand-off mailers (listmonk, buttondown): one delivery per edition,
    #: recorded under the pseudo-recipient ``handoff_recipient``.
    handoff: ClassVar[bool] = False

    def __init__(self, options: Section, ctx: Context):
        self.opts = options
        self.ctx = ctx

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def deliver(self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the mail went, for the run's summary line ("to smtp.example.org:587")."""
        return ""


class Channel:
    """Posts share posts on one account of one network."""

    options: ClassVar[dict[str, Opt]] = {}
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, options: Section, ctx: Context):
        self.name = name
        self.opts = options
        self.ctx = ctx

    def compose(self, post: Post) -> Snippet:
        """The snippet for ``post``, fitted to this network's length rule."""
        raise NotImplementedError

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        """Post it.  ``key`` is stable per (post, channel): use it as the idempotency key."""
        raise NotImplementedError

    def reconcile(self, snippet: Snippet, post: Post, key: str) -> Outcome | None:
        """For a share a dead run left ``claimed``: was it posted?  None: unknown."""
        return None

    def describe(self) -> str:
        return ""
