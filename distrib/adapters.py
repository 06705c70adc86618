"""The three adapter interfaces (sources, mailers, channels) and what they are given.

An adapter is a subclass of :class:`Source`, :class:`Mailer` or :class:`Channel`,
registered under an entry-point group (see registry.py).  Everything the app reads from
an adapter is declared here, with its default; the app never probes an adapter for an
attribute.  An adapter declares its config options in ``options`` (validated under its
own table) and the optional modules it needs in ``requires`` (imported inside its
methods only, so ``distrib --help`` stays fast).  CONTRIBUTING.md shows how to add one.
Contains no business logic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from .model import Outcome, Post, Recipient, Snippet

if TYPE_CHECKING:
    from .config import Settings
    from .http import HttpClient
    from .ledger import Ledger
    from .render.message import PreparedMessage
    from .schema import Opt, Section, Table, TableList

log = logging.getLogger("distrib")

#: What an adapter's ``options`` maps its keys to: an option or a sub-table.
Options: TypeAlias = "Mapping[str, Opt | Table | TableList]"


@dataclass
class Context:
    """What every adapter may use.  ``ledger`` is None where nothing may be written."""

    settings: Settings
    now: datetime
    ledger: Ledger | None = None
    dry_run: bool = False
    _http: HttpClient | None = field(default=None, repr=False)

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

    #: the source's own options, validated under its ``[[sources]]`` table
    options: ClassVar[Options] = {}
    #: modules it needs that may not be installed (an extra): checked by `distrib check`
    requires: ClassVar[tuple[str, ...]] = ()
    #: Set by the app before ``fetch``: the oldest post any newsletter's window can take.
    #: A source that pages by date (WordPress) asks only for what is newer; a source
    #: that reads everything at once may ignore it.
    since: datetime | None = None

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

    #: the mailer's own options, validated under ``[email.<mailer>]``
    options: ClassVar[Options] = {}
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

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the mail went, for the run's summary line ("to smtp.example.org:587")."""
        return ""

    def check_notes(self) -> list[str]:
        """Lines `distrib check` prints about this mailer (what it will do when it sends)."""
        return []


class Channel:
    """Posts share posts on one account of one network."""

    #: the channel's own options, validated under its ``[[channels]]`` table
    options: ClassVar[Options] = {}
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, options: Section, ctx: Context):
        self.name = name
        self.opts = options
        self.ctx = ctx

    def template_names(self) -> list[str]:
        """The share templates this channel composes with, loaded now: a broken one
        raises :class:`~distrib.errors.TemplateError` before anything is sent.
        Empty: it composes without templates."""
        return []

    def close(self) -> None:
        """Release what the channel holds (an HTTP client); called once after the run."""
        return None

    def check_warnings(self, today: date) -> tuple[list[str], list[str]]:
        """(problems, warnings) `distrib check` adds for this channel on ``today`` (such
        as an API version near its sunset).  Default: none."""
        return [], []

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


def load_source(name: str) -> type[Source]:
    """The source class registered as ``name`` (entry point group ``distrib.sources``)."""
    from . import registry

    return registry.load_as("distrib.sources", name, Source)


def load_mailer(name: str) -> type[Mailer]:
    """The mailer class registered as ``name`` (entry point group ``distrib.mailers``)."""
    from . import registry

    return registry.load_as("distrib.mailers", name, Mailer)


def load_channel(name: str) -> type[Channel]:
    """The channel class registered as ``name`` (entry point group ``distrib.channels``)."""
    from . import registry

    return registry.load_as("distrib.channels", name, Channel)


#: The class every adapter of an entry point group subclasses.
BASES: dict[str, type[Source] | type[Mailer] | type[Channel]] = {
    "distrib.sources": Source,
    "distrib.mailers": Mailer,
    "distrib.channels": Channel,
}
