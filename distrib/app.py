"""The core: fetch, select, plan, render, deliver, record.

:func:`make_app` returns the :class:`App` the command line drives; every command is a
few lines over one of its methods.  Each phase is a plain call on plain data; the
ledger is read by selection and written one item at a time by delivery.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapters import Channel, Context, Mailer, Source, load_channel, load_mailer, load_source
from .config import Settings, load_config, mailer_settings
from .errors import EXIT_OK, ConfigError, DistribError, SourceError, TemplateError, UsageError
from .ledger import Ledger, open_ledger
from .model import Edition, Post, Recipient, RenderedEdition
from .schema import Section
from .select import split

if TYPE_CHECKING:
    from .deliver import Progress, SendReport
    from .model import Outcome
    from .share import ShareReport

log = logging.getLogger("distrib")


def now() -> datetime:
    """The app's clock; tests patch ``distrib.ledger.now`` and this together."""
    from . import ledger

    return ledger.now()


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class NothingNew(DistribError):
    """There are no new posts for the next edition: nothing to do (exit 0)."""

    exit_code = EXIT_OK


@dataclass(frozen=True)
class Newsletter:
    """One newsletter: ``[digest]`` (named "digest") or one of ``[[newsletters]]``."""

    name: str
    opts: Section


@dataclass
class FetchResult:
    posts: list[Post]
    errors: list[SourceError]
    first_seen: dict[str, datetime] = field(default_factory=dict)
    #: Keys of the posts that came without a date (dated here by when first seen).
    undated: frozenset[str] = frozenset()
    seq: int | None = None  # ledger.post_seq() right after this fetch recorded its posts


@dataclass
class EditionPlan:
    newsletter: Newsletter
    posts: list[Post]
    rendered: RenderedEdition
    skipped: list[Post] = field(default_factory=list)  # overflow = "skip": left out


def layout_of(rendered: RenderedEdition, skipped: list[Post]) -> dict[str, int]:
    """How an edition shows its posts: in full, as title links, in the "N more
    stories" line, and left out (overflow = "skip"); kept for `status` and `posts`."""
    return {
        "full": len(rendered.full_keys),
        "listed": len(rendered.overflow_keys) - rendered.more,
        "more": rendered.more,
        "skipped": len(skipped),
    }


@dataclass
class EditionResult:
    newsletter: str
    edition: Edition
    report: SendReport
    resumed: bool
    target: str = ""  # where the mailer put it, for the summary line
    layout: dict[str, int] | None = None  # see layout_of


@dataclass
class RunResult:
    fetch: FetchResult | None = None
    editions: list[EditionResult] = field(default_factory=list)
    planned: list[EditionPlan] = field(default_factory=list)  # dry runs: what would be sent
    skipped: list[str] = field(default_factory=list)  # one line per newsletter not due
    shares: ShareReport | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Exit 1: something failed and was recorded."""
        if self.errors or (self.fetch and self.fetch.errors):
            return True
        if any(r.report.failed or r.report.errors or r.report.in_doubt for r in self.editions):
            return True
        return bool(self.shares and (self.shares.failed or self.shares.errors))


class App:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._ledger: Ledger | None = None
        self._ctx: Context | None = None
        #: An editor's note for this command only (`send --note` with --dry-run or --to).
        self.note_override: str | None = None

    # --- resources ---------------------------------------------------------------

    @property
    def ledger_path(self) -> Path:
        return self.settings.ledger.path or (self.settings.base_dir / "distrib.sqlite")

    @property
    def ledger_url(self) -> str | None:
        """The PostgreSQL database of ``[ledger] url`` or ``url_env``; None: the SQLite file."""
        section = self.settings.ledger
        if section.get("url_env"):
            url = self.settings.secret(section, "url_env", where="ledger")
            if url and not url.startswith(("postgresql://", "postgres://")):
                raise ConfigError(
                    f"ledger.url_env: the variable {section['url_env']} does not hold a PostgreSQL URL "
                    "(postgresql://user:password@host/db)"
                )
            return url
        url = section.get("url")
        return str(url) if url else None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            url = self.ledger_url
            if url:
                from .ledger.postgres import open_postgres

                self._ledger = open_postgres(url)
            else:
                self._ledger = open_ledger(self.ledger_path)
        return self._ledger

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            self._ctx = Context(settings=self.settings, now=now(), ledger=self.ledger)
        return self._ctx

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()
        if self._ledger is not None:
            self._ledger.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self) -> None:
        """One run at a time per ledger (cron-safe)."""
        self.ledger.lock()

    # --- adapters ----------------------------------------------------------------

    @cached_property
    def sources(self) -> list[Source]:
        out = []
        for opts in self.settings.sources:
            out.append(load_source(opts.type)(opts.name, opts, self.ctx))
        return out

    def mailer(self) -> Mailer:
        name = self.settings.email.mailer
        return load_mailer(name)(mailer_settings(self.settings), self.ctx)

    @cached_property
    def channels(self) -> list[Channel]:
        out = []
        for opts in self.settings.channels:
            out.append(load_channel(opts.type)(opts.name, opts, self.ctx))
        return out

    @property
    def newsletters(self) -> list[Newsletter]:
        listed = self.settings.newsletters
        if listed:
            return [Newsletter(n.name, n) for n in listed]
        return [Newsletter("digest", self.settings.digest)]

    def newsletter(self, name: str | None) -> Newsletter:
        letters = self.newsletters
        if name is None:
            return letters[0]
        for n in letters:
            if n.name == name:
                return n
        raise ConfigError(
            f"no newsletter named {name!r}; the config has {', '.join(n.name for n in letters)}"
        )

    # --- phases ------------------------------------------------------------------

    def fetch(self, *, record: bool = True) -> FetchResult:
        """Every source's posts, merged and deduplicated; broken sources reported, not fatal."""
        from .sources.common import fetch_all

        for source in self.sources:
            # Sources that page by date (WordPress) ask only for what a window can take.
            widest = max(n.opts.window for n in self.newsletters)
            source.since = self.ctx.now - widest
        posts, errors = fetch_all(self.sources)
        first_seen: dict[str, datetime] = {}
        seq = None
        if record:
            first_seen = self.ledger.record_posts(posts)
            seq = self.ledger.post_seq()
        # A post without a usable date gets the time distrib first saw it.
        undated = frozenset(p.key for p in posts if p.published is None)
        posts = [
            dataclasses.replace(p, published=first_seen.get(p.key, self.ctx.now))
            if p.published is None
            else p
            for p in posts
        ]
        return FetchResult(posts, errors, first_seen, undated, seq)

    def select(
        self, newsletter: Newsletter, fetched: FetchResult, *, picks: bool = True
    ) -> list[Post]:
        """The posts the next edition takes; with ``picks``, the editor's pins first and
        skips left out (``distrib posts --pin/--skip``)."""
        selected = self._select(newsletter, fetched)
        if not picks:
            return selected
        return self.apply_picks(newsletter, selected, fetched.posts)

    def apply_picks(
        self,
        newsletter: Newsletter,
        selected: list[Post],
        fetched: list[Post],
        *,
        own: tuple[str, ...] = (),
    ) -> list[Post]:
        """``selected`` with the editor's pins first and skips left out.  A pinned post
        already in another edition of this newsletter (not ``own``) is never taken again."""
        from .editor import apply_picks, picks

        pinned_keys, skipped = picks(self.ledger, newsletter.name)
        if not pinned_keys and not skipped:
            return selected
        already = self.ledger.posts_in_editions(newsletter.name) - set(own)
        by_key = {p.key: p for p in fetched}
        pinned = [by_key.get(k) or self.ledger.get_post(k) for k in pinned_keys if k not in already]
        return apply_picks(selected, [p for p in pinned if p is not None], skipped)

    def _select(self, newsletter: Newsletter, fetched: FetchResult) -> list[Post]:
        from .select import select_posts

        ledger = self.ledger
        baseline = ledger.baseline(f"newsletter:{newsletter.name}")
        last = ledger.last_edition(newsletter.name)
        first_run = last is None and baseline is None
        old: set[str] = set()
        if last is not None:
            # What distrib had seen when it made the last edition (ledgers from before
            # this was noted: what it had seen before that edition's second).
            seq = ledger.kv_get(f"newsletter:{newsletter.name}:seen")
            old = ledger.posts_seen_by(seq, before=last.created)
        return select_posts(
            fetched.posts,
            newsletter.opts,
            now=self.ctx.now,
            already=ledger.posts_in_editions(newsletter.name),
            baseline=baseline,
            first_seen=fetched.first_seen,
            first_run=first_run,
            since=last.created if last else None,
            old=old,
        )

    def render(
        self, newsletter: Newsletter, posts: list[Post], *, edition_id: int | None = None
    ) -> RenderedEdition:
        """Render an edition; with an ``edition_id`` and a [theme] archive_url, its
        "view in browser" link points at the edition's archive page; with an
        ``edition_id`` and [tracking] clicks, its links are counted (the originals are
        recorded in the ledger under that id)."""
        from .render.email import render_edition

        web_url = None
        if edition_id is not None and self.settings.theme.archive_url:
            from .archive import edition_url

            web_url = edition_url(self.settings, edition_id)
        from .editor import note_of
        from .tracking import tracker_for

        # Links are tracked in a recorded edition only (not in previews, dry runs, tests).
        clicks = None if edition_id is None else tracker_for(self.settings, self.ledger, edition_id)
        rendered = render_edition(
            self.settings,
            posts,
            newsletter=newsletter.opts,
            name=newsletter.name,
            now=self.ctx.now,
            web_url=web_url,
            max_full=newsletter.opts.max_posts,
            note=note_of(newsletter.opts, self._note(newsletter)),
            clicks=clicks,
        )
        if edition_id is not None and (clicks is not None or self.ledger.link_clicks(edition_id)):
            # Kept with the edition, before its row is written; a render of an awaiting
            # edition replaces them, a recorded one being sent keeps its own.
            self.ledger.set_edition_links(edition_id, rendered.links)
        return rendered

    def _note(self, newsletter: Newsletter) -> str:
        if self.note_override is not None:
            return self.note_override
        return self.ledger.editor_note(newsletter.name)

    def find_post(self, text: str) -> Post:
        """A post by its key or its URL, from the sources (or the ledger): for pins and skips."""
        from .sources.common import canonical_url

        fetched = self.fetch(record=False)
        for error in fetched.errors:
            log.warning("%s", error)
        wanted = {text, text.rstrip("/")}
        try:
            wanted.add(canonical_url(text))
        except Exception:  # not a URL: a guid
            pass
        for post in fetched.posts:
            if post.key in wanted or post.url in wanted or post.url.rstrip("/") in wanted:
                self.ledger.record_posts([post])  # so the edition can be rendered from the ledger
                return post
        known = self.ledger.get_post(text)
        if known is not None:
            return known
        raise UsageError(
            f"no post with the key or URL {text!r}; `distrib posts --all --json` lists the keys"
        )

    def editor_inputs(self, newsletter: Newsletter) -> str:
        """The fingerprint of what the editor gave the next edition: note, picks, sponsor."""
        from .editor import fingerprint, note_of, picks, sponsor_view

        pinned, skipped = picks(self.ledger, newsletter.name)
        note = note_of(newsletter.opts, self._note(newsletter))
        sponsor = sponsor_view(newsletter.opts, self.settings.site.url, "")
        return fingerprint(note, pinned, skipped, sponsor)

    def plan(
        self,
        newsletter: Newsletter,
        fetched: FetchResult,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> tuple[list[list[Post]], str]:
        """The editions due now for ``newsletter`` (lists of posts), or a reason for none.

        An edition takes everything new since the previous edition of its newsletter;
        what is beyond ``max_posts`` goes into the same edition (title links) or is
        skipped, never into the next one.  Scheduled cadences (daily, weekly, monthly)
        send only at the first run at or after a slot; the run that meets a slot with
        nothing new passes it, and the very first edition waits for the first slot
        (``--force`` sends now).  per-post sends one edition per new post, at most
        ``max_per_day`` in 24 hours; a bigger burst is one digest.

        Planning writes a first run's baseline (``backfill = 0``) and, for scheduled
        cadences, when a run last looked at the schedule; a dry run writes nothing.
        """
        from .cadence import ALWAYS, is_due, next_scheduled

        opts = newsletter.opts
        last = self.ledger.last_edition(newsletter.name)
        if last is None and not force:
            baseline = self._first_run_baseline(newsletter, dry_run=dry_run)
            if baseline:
                return [], baseline
        now = self.ctx.now
        tz = self.settings.site.timezone
        scheduled = opts.cadence not in ALWAYS
        checked_key = f"cadence:{newsletter.name}:checked"

        def look(reason: str = "") -> None:
            # This run has looked at the schedule: a slot at or before now is used up.
            # Not when a source failed and nothing was new: the posts may be behind it.
            if scheduled and not dry_run and not (fetched.errors and reason):
                self.ledger.kv_put(checked_key, now.isoformat())

        def next_slot() -> str:
            when = next_scheduled(opts, tz, now)
            return f"; the next slot is {self.site_time(when)}" if when else ""

        if scheduled and not force:
            stored = self.ledger.kv_get(checked_key)
            # Ledgers from before this rule: the last edition stands for the last look.
            checked = datetime.fromisoformat(stored) if stored else (last.created if last else None)
            if checked is None:
                look()
                return [], (
                    f"{newsletter.name}: the first edition goes at the first {opts.cadence} slot"
                    f"{next_slot()} (--force sends now)"
                )
            if not is_due(opts, tz, checked, now):
                return [], f"{newsletter.name}: not due yet (cadence {opts.cadence}{next_slot()})"
        posts = self.select(newsletter, fetched)
        need = max(opts.min_posts, 1) if not force else 1
        if len(posts) < need:
            reason = f"{newsletter.name}: nothing new to send ({len(posts)} new, min_posts {need})"
            look(reason)
            if scheduled and not fetched.errors:
                reason += f"; this slot is passed{next_slot()}"
            return [], reason
        look()
        if opts.cadence == "per-post":
            return self._per_post(newsletter, posts, force=force)
        return [posts], ""

    def _first_run_baseline(self, newsletter: Newsletter, *, dry_run: bool) -> str:
        """With ``backfill = 0``, a newsletter's first run takes a baseline (everything
        there now counts as seen) and sends nothing: the reason why, or "" when a
        baseline was taken before or backfill is on."""
        scope = f"newsletter:{newsletter.name}"
        if newsletter.opts.backfill != 0 or self.ledger.baseline(scope) is not None:
            return ""
        if dry_run:
            return f"{newsletter.name}: first run in baseline mode; nothing would be sent"
        self.ledger.set_baseline(scope, self.ctx.now)
        return f"{newsletter.name}: first run, baseline taken; from now on new posts are sent"

    def _per_post(
        self, newsletter: Newsletter, posts: list[Post], *, force: bool
    ) -> tuple[list[list[Post]], str]:
        """per-post: one edition per new post, at most ``max_per_day`` in 24 hours; a
        bigger burst is one digest."""
        from datetime import timedelta

        opts = newsletter.opts
        day_ago = self.ctx.now - timedelta(days=1)
        sent_today = sum(1 for e in self.ledger.editions(newsletter.name) if e.created > day_ago)
        allowed = opts.max_per_day - sent_today
        if allowed <= 0 and not force:
            return [], (
                f"{newsletter.name}: {sent_today} editions in the last 24 hours "
                f"(max_per_day {opts.max_per_day}); the {_n(len(posts), 'new post')} wait"
            )
        if len(posts) <= allowed:
            return [[p] for p in reversed(posts)], ""
        # A burst: one digest rather than a reader's inbox full of us.
        return [posts], ""

    def site_time(self, when: datetime) -> str:
        """A time as the site's readers see it: local, with its UTC offset."""
        from zoneinfo import ZoneInfo

        return when.astimezone(ZoneInfo(self.settings.site.timezone)).strftime("%Y-%m-%d %H:%M %z")

    def has_recipients(self, newsletter: str | None = None) -> bool:
        """Whether an edition would reach anyone (a hand-off platform always counts)."""
        if load_mailer(self.settings.email.mailer).handoff:
            return True
        return next(self.recipients(newsletter), None) is not None

    def recipients(self, newsletter: str | None = None) -> Iterator[Recipient]:
        """The recipients of an edition of ``newsletter`` (None: of any newsletter,
        leaving out only the suppressed)."""
        from .subscribers import recipients

        return recipients(self.settings, self.ledger, newsletter)

    def prepare(self, edition: Edition) -> Any:
        from .render.message import prepare_message
        from .unsubscribe import signing_key

        return prepare_message(self.settings, edition, key=signing_key(self.settings, self.ledger))

    def compliance_problems(self) -> list[str]:
        """Bulk mail needs a postal address and an unsubscribe link (CAN-SPAM, RFC 8058)."""
        email = self.settings.email
        problems = []
        if not self.settings.site.postal_address.strip():
            problems.append(
                "site.postal_address: missing; bulk mail must show the sender's postal address"
            )
        for letter in self.newsletters:
            if letter.opts.get("approval") and not email.get("editors"):
                where = "digest" if letter.name == "digest" else f"newsletters ({letter.name})"
                problems.append(
                    f"{where}.approval: true, but [email] editors is empty; name who gets the "
                    "test copy of an edition waiting for approval"
                )
        handoff = load_mailer(email.mailer).handoff
        if not handoff and not (email.unsubscribe_url or email.unsubscribe_mailto):
            problems.append(
                "email.unsubscribe_url: missing; set it (or unsubscribe_mailto) so that every "
                "message can be unsubscribed from"
            )
        return problems

    def check_template_compliance(self, rendered: RenderedEdition) -> None:
        html, template = rendered.html, rendered.template
        if rendered.markers.url not in html:
            raise TemplateError(
                f"the email template {template!r} has no unsubscribe link; "
                "keep {{ unsubscribe_url }} in its footer"
            )

    # --- commands ----------------------------------------------------------------

    def send(
        self,
        *,
        newsletter: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        fetched: FetchResult | None = None,
        progress: Any = None,
        result: RunResult | None = None,
    ) -> RunResult:
        """Finish unfinished editions, then plan, record and deliver the ones due."""
        from .deliver import deliver_edition

        result = result or RunResult()
        letters = self.newsletters if newsletter is None else [self.newsletter(newsletter)]
        problems = self.compliance_problems()
        if problems:
            raise ConfigError(problems)
        if not dry_run:
            self.mailer()  # a missing extra (boto3 for ses) stops here, before any edition is made
        if fetched is None:
            fetched = self.fetch(record=not dry_run)
            result.fetch = fetched
        for letter in letters:
            unfinished = self.ledger.unfinished_editions(letter.name)
            if dry_run:
                if unfinished:
                    result.skipped.append(
                        f"{letter.name}: edition {unfinished[0].id} is unfinished and would be resumed"
                    )
                    continue
                waiting = (
                    self.ledger.awaiting_editions(letter.name)
                    if letter.opts.get("approval")
                    else []
                )
                if waiting:
                    result.skipped.append(
                        f"{letter.name}: edition {waiting[0].id} is waiting for approval; nothing new "
                        f"would be made (`distrib approve {waiting[0].id}` sends it)"
                    )
                    continue
                batches, reason = self.plan(letter, fetched, force=force, dry_run=True)
                if reason:
                    result.skipped.append(reason)
                if batches and not self.has_recipients(letter.name):
                    # The same words as a real run: a dry run says what the run would do.
                    result.skipped.append(self._no_recipients(letter))
                    continue
                for posts in batches:
                    shown, skipped = split(posts, letter.opts)
                    result.planned.append(
                        EditionPlan(letter, posts, self.render(letter, shown), skipped)
                    )
                continue
            for edition in unfinished:
                result.editions.append(self._deliver(edition, True, deliver_edition, progress))
            if any(not r.report.finished for r in result.editions if r.newsletter == letter.name):
                result.skipped.append(
                    f"{letter.name}: an earlier edition is still being delivered; new posts wait"
                )
                continue
            if unfinished:
                # Finishing an edition is this run's edition: what is new waits for the
                # next run (and the cadence), never a second email in the same minute.
                continue
            if letter.opts.get("approval"):
                waiting = self.ledger.awaiting_editions(letter.name)
                if waiting:
                    # Nothing new is planned while an edition waits for its editor.
                    for edition in waiting:
                        changed = self.refresh_awaiting(letter, edition, result)
                        again = (
                            f" ({changed}; a new test copy went to the editors)" if changed else ""
                        )
                        result.skipped.append(
                            f"{letter.name}: edition {edition.id} is waiting for approval{again}; "
                            f"`distrib approve {edition.id}` sends it, `distrib reject {edition.id}` drops it"
                        )
                    continue
            batches, reason = self.plan(letter, fetched, force=force)
            if reason:
                result.skipped.append(reason)
            if batches and not self.has_recipients(letter.name):
                # An edition with nobody to send it to would use the posts up for nothing.
                result.skipped.append(self._no_recipients(letter))
                continue
            approval = bool(letter.opts.get("approval"))
            base = {p.key for p in self.select(letter, fetched, picks=False)} if approval else set()
            for posts in batches:
                edition_id = self.ledger.next_edition_id()
                shown, skipped = split(posts, letter.opts)
                rendered = self.render(letter, shown, edition_id=edition_id)
                self.check_template_compliance(rendered)
                editor = None
                if approval:
                    # The posts selection took (before the editor's picks), so a change
                    # of pins or skips can be rendered again from the same posts; and
                    # what distrib had seen before, restored if the edition is rejected.
                    editor = {
                        "inputs": self.editor_inputs(letter),
                        "base": [p.key for p in posts if p.key in base],
                        "seen_before": self.ledger.kv_get(f"newsletter:{letter.name}:seen"),
                    }
                # Every post goes into the edition, listed or skipped: none is left to
                # form the next edition on its own.
                edition = self.ledger.create_edition(
                    letter.name,
                    [*rendered.full_keys, *rendered.overflow_keys, *(p.key for p in skipped)],
                    rendered.subject,
                    rendered.preheader,
                    rendered.html,
                    rendered.text,
                    edition_id=edition_id,
                    markers=rendered.markers,
                    status="awaiting" if approval else "sending",
                    editor=editor,
                )
                layout = layout_of(rendered, skipped)
                self.ledger.kv_put(f"edition:{edition.id}:layout", layout)
                if fetched.seq is not None:
                    self.ledger.kv_put(f"newsletter:{letter.name}:seen", fetched.seq)
                if approval:
                    self.send_test_copies(edition, result)
                    result.skipped.append(
                        f"{letter.name}: edition {edition.id} ({len(posts)} post{'s' if len(posts) != 1 else ''}) "
                        f"is waiting for approval; a test copy went to {', '.join(self.settings.email.editors)}; "
                        f"`distrib approve {edition.id}` sends it"
                    )
                    continue
                self.ledger.clear_editor_picks(letter.name)  # used up by this edition
                result.editions.append(self._deliver(edition, False, deliver_edition, progress))
        return result

    @staticmethod
    def _no_recipients(letter: Newsletter) -> str:
        return (
            f"{letter.name}: no recipients (all suppressed, or none configured); nothing "
            "sent, the posts wait: add recipients, a recipients_file or subscribers"
        )

    def _deliver(
        self, edition: Edition, resumed: bool, deliver_edition: Any, progress: Any
    ) -> EditionResult:
        message = self.prepare(edition)
        mailer = self.mailer()
        if mailer.handoff:
            # The platform keeps the subscribers: one delivery per edition and platform.
            from .mailers._http import handoff_recipient

            recipients: Any = iter([handoff_recipient(self.settings.email.mailer)])
        else:
            recipients = self.recipients(edition.newsletter)
        if progress is not None and progress.enabled and not mailer.handoff:
            progress.total = sum(
                1 for _ in self.recipients(edition.newsletter)
            )  # only when the line is shown
        report = deliver_edition(self.ledger, mailer, message, recipients, progress=progress)
        layout = self.ledger.kv_get(f"edition:{edition.id}:layout")
        return EditionResult(
            edition.newsletter, edition, report, resumed, mailer.describe(), layout
        )

    def retry_failed(self, edition_id: int) -> int:
        """Re-queue the failed recipients of an edition, once (``send --retry-failed``)."""
        if self.ledger.get_edition(edition_id) is None:
            raise UsageError(
                f"--retry-failed {edition_id}: no such edition; `distrib status` lists them"
            )
        earlier = self.ledger.failed_requeued(edition_id)
        if earlier:
            raise UsageError(
                f"--retry-failed {edition_id}: its failed recipients were re-queued once already "
                f"({earlier.get('requeued')} on {earlier.get('at')}); what failed again stays failed"
            )
        in_doubt = bool(self.settings.email.get("resend_in_doubt"))
        return self.ledger.requeue_failed(edition_id, in_doubt=in_doubt)

    # --- approval ------------------------------------------------------------------

    def send_test_copies(self, edition: Edition, result: RunResult | None = None) -> list[str]:
        """Mail ``edition`` to ``[email] editors``, subject marked; records no delivery.
        Failures are errors of ``result`` (exit 1), not exceptions."""
        from email.utils import parseaddr

        from .model import DeliveryStatus

        errors: list[str] = []
        mailer = self.mailer()
        if mailer.handoff:
            self._copied(edition)
            line = (
                f"edition {edition.id}: no test copy (the {self.settings.email.mailer} mailer hands "
                f"editions to its platform); look at it with `distrib preview --edition {edition.id}`"
            )
            (result.skipped if result else errors).append(line)
            return []
        marked = dataclasses.replace(
            edition, subject=f"[for approval: edition {edition.id}] {edition.subject}"
        )
        message = self.prepare(marked)
        recipients = []
        for text in self.settings.email.editors:
            name, addr = parseaddr(text)
            recipients.append(Recipient((addr or text).strip().lower(), name))
        outcomes: list[tuple[Recipient, Outcome]] = []
        try:
            with mailer:
                mailer.deliver(message, iter(recipients), lambda r, o: outcomes.append((r, o)))
        except DistribError as e:  # the mail server is down: the next run tries again
            errors.append(
                f"edition {edition.id}: the test copy to the editors was not sent ({e}); the next run tries again"
            )
        sent = [r.email for r, o in outcomes if o.status is DeliveryStatus.SENT]
        for r, o in outcomes:
            if o.status is not DeliveryStatus.SENT:
                errors.append(
                    f"edition {edition.id}: the test copy to {r.email} {o.status.value}: {o.error}"
                )
        if not errors:
            self._copied(edition)
        if result is not None:
            result.errors.extend(errors)
        elif errors:
            raise DistribError("; ".join(errors))
        return sent

    def _copied(self, edition: Edition) -> None:
        """Note that the editors have the test copy of what ``edition`` is now; a run
        that finds an awaiting edition without it (a kill, the mail server down) sends it."""
        editor = self.ledger.edition_editor(edition.id)
        if editor:
            self.ledger.set_edition_editor(edition.id, editor | {"copied": editor.get("inputs")})

    def rerender_awaiting(self, letter: Newsletter, edition: Edition) -> Edition | None:
        """Render an awaiting edition again with the current note, picks and sponsor, from
        the posts it was made of; None when every post is skipped."""
        editor = self.ledger.edition_editor(edition.id)
        base_keys = editor.get("base") or list(edition.post_keys)
        base = [p for p in (self.ledger.get_post(k) for k in base_keys) if p is not None]
        posts = self.apply_picks(letter, base, [], own=edition.post_keys)
        if not posts:
            return None
        shown, skipped = split(posts, letter.opts)
        rendered = self.render(letter, shown, edition_id=edition.id)
        self.check_template_compliance(rendered)
        keys = [*rendered.full_keys, *rendered.overflow_keys, *(p.key for p in skipped)]
        editor = editor | {"inputs": self.editor_inputs(letter), "base": base_keys}
        editor.pop("copied", None)
        if not self.ledger.rerender_edition(
            edition.id, keys, rendered.subject, rendered.preheader, rendered.html, rendered.text,
            rendered.markers, editor,
        ):  # fmt: skip
            return None
        self.ledger.kv_put(f"edition:{edition.id}:layout", layout_of(rendered, skipped))
        return self.ledger.get_edition(edition.id)

    def refresh_awaiting(
        self, letter: Newsletter, edition: Edition, result: RunResult | None = None
    ) -> str:
        """Re-render an awaiting edition whose note, picks or sponsor changed and send the
        editors a new test copy; what changed ("" when nothing did)."""
        editor = self.ledger.edition_editor(edition.id)
        if editor.get("inputs") == self.editor_inputs(letter):
            if editor.get("copied") != editor.get("inputs"):
                # Made, but its test copy never went out (killed between, or the mail
                # server was down): send it now; nothing else changed.
                self.send_test_copies(edition, result)
                return "its test copy had not gone out"
            return ""
        fresh = self.rerender_awaiting(letter, edition)
        if fresh is None:
            line = f"{letter.name}: every post of edition {edition.id} is skipped; `distrib reject {edition.id}` drops it"
            if result is not None:
                result.errors.append(line)
                return ""
            raise DistribError(line)
        self.send_test_copies(fresh, result)
        return "rendered again: the note, the pins, the skips or the sponsor changed"

    def approve(self, edition_id: int) -> Edition:
        """Let an awaiting edition go: it becomes an unfinished edition that is delivered
        now and by every later run until done.  If the editor's inputs changed since the
        test copy, it is rendered again, a new test copy goes out, and nothing is approved."""
        edition = self._awaiting(edition_id, "approve")
        letter = self.newsletter(edition.newsletter)
        changed = self.refresh_awaiting(letter, edition)
        if changed:
            why = (
                "changed since its test copy (the note, pins, skips or sponsor): it was rendered again"
                if changed.startswith("rendered again") else "had no test copy yet"
            )  # fmt: skip
            raise DistribError(
                f"edition {edition_id} {why}, and a new test copy went to the editors; look at it, "
                f"then `distrib approve {edition_id}` again"
            )
        if not self.ledger.set_edition_status(edition_id, "awaiting", "sending"):
            raise UsageError(
                f"edition {edition_id} is no longer waiting for approval; see `distrib status`"
            )
        self.ledger.clear_editor_picks(letter.name)  # used up by this edition
        return self.ledger.get_edition(edition_id) or edition

    def reject(self, edition_id: int) -> Edition:
        """Drop an awaiting edition: never sent; its posts go back to the next edition."""
        edition = self._awaiting(edition_id, "reject")
        editor = self.ledger.edition_editor(edition_id)
        if not self.ledger.set_edition_status(edition_id, "awaiting", "rejected"):
            raise UsageError(
                f"edition {edition_id} is no longer waiting for approval; see `distrib status`"
            )
        # Its posts are new again for the next edition: distrib's "seen" mark goes back
        # to where it was before this edition was made.
        if "seen_before" in editor:
            self.ledger.kv_put(f"newsletter:{edition.newsletter}:seen", editor["seen_before"])
        return edition

    def _awaiting(self, edition_id: int, verb: str) -> Edition:
        edition = self.ledger.get_edition(edition_id)
        if edition is None:
            raise UsageError(
                f"no edition {edition_id} in the ledger {self.ledger_path}; `distrib status` lists them"
            )
        if edition.status != "awaiting":
            raise UsageError(
                f"edition {edition_id} is {edition.status}, not waiting for approval; nothing to {verb}"
            )
        return edition

    def refresh_after_edit(self, newsletter: Newsletter) -> list[str]:
        """After `posts --pin/--skip` or `send --note`: re-render a waiting edition now."""
        lines = []
        for edition in self.ledger.awaiting_editions(newsletter.name):
            if self.refresh_awaiting(newsletter, edition):
                lines.append(
                    f"edition {edition.id} rendered again; a new test copy went to "
                    f"{', '.join(self.settings.email.editors)}; `distrib approve {edition.id}` sends it"
                )
        return lines

    def test_send(self, address: str, *, newsletter: str | None = None) -> tuple[Edition, Outcome]:
        """Send the next (or unfinished) edition to one address; records nothing."""
        from email.utils import parseaddr

        from .addresses import normalise_address
        from .model import DeliveryStatus, Outcome

        name, addr = parseaddr(address)
        try:
            # The same rule as every recipient: no header can ride in on the address.
            address = normalise_address(addr if addr and "\n" not in address else address)
        except ValueError as e:
            raise UsageError(f"--to {address!r} is not an email address ({e})") from None
        letter = self.newsletter(newsletter)
        edition, _nothing_new = self.edition_to_show(letter)
        message = self.prepare(edition)
        outcomes: list[Outcome] = []
        with self.mailer() as mailer:
            mailer.deliver(
                message, iter([Recipient(address, name)]), lambda r, o: outcomes.append(o)
            )
        outcome = outcomes[0] if outcomes else Outcome.failed("the mailer reported nothing")
        if outcome.status is not DeliveryStatus.SENT:
            raise DistribError(f"test send to {address} {outcome.status.value}: {outcome.error}")
        return edition, outcome

    def edition_to_show(
        self, letter: Newsletter, *, edition_id: int | None = None, first_look: bool = False
    ) -> tuple[Edition, str | None]:
        """The edition a preview or a test send shows: :meth:`next_edition`, or when there
        is nothing new yet the last edition, which still shows how the digest looks.  The
        second item says what stands in, when something does.  ``first_look`` (preview):
        with no edition yet either, as just after `distrib init URL` on a site with
        nothing in the window, the newest posts the sources give, as an edition would look."""
        try:
            return self.next_edition(letter, edition_id=edition_id), None
        except NothingNew as e:
            last = self.ledger.last_edition(letter.name)
            if last is not None:
                return last, f"{e}; showing the last edition ({last.id}) instead"
            newest = self.posts(all_posts=True)[0][: letter.opts.max_posts] if first_look else []
            if not newest:
                raise
            return self.edition_of(
                letter, newest
            ), f"{e}; showing the newest {len(newest)} posts the sources give instead"

    def next_edition(self, letter: Newsletter, *, edition_id: int | None = None) -> Edition:
        """An edition object for previews and test sends: a past one, the unfinished one,
        or the next one rendered now (not recorded)."""
        if edition_id is not None:
            edition = self.ledger.get_edition(edition_id)
            if edition is None:
                raise UsageError(
                    f"no edition {edition_id} in the ledger {self.ledger_path}; see `distrib status`"
                )
            return edition
        unfinished = self.ledger.unfinished_editions(letter.name) or self.ledger.awaiting_editions(
            letter.name
        )
        if unfinished:
            return unfinished[0]
        fetched = self.fetch(record=False)
        for error in fetched.errors:
            log.warning("%s", error)
        posts = self.select(letter, fetched)
        if not posts:
            raise NothingNew(
                f"{letter.name}: no new posts for the next edition; `distrib posts --all` lists what the sources give"
            )
        return self.edition_of(letter, posts)

    def edition_of(self, letter: Newsletter, posts: list[Post]) -> Edition:
        """An unrecorded edition of ``posts`` (id 0), for previews and test sends."""
        shown, _skipped = split(posts, letter.opts)
        rendered = self.render(letter, shown)
        return Edition(
            id=0,
            newsletter=letter.name,
            post_keys=tuple(p.key for p in shown),
            subject=rendered.subject,
            preheader=rendered.preheader,
            created=self.ctx.now,
            html=rendered.html,
            text=rendered.text,
            markers=rendered.markers,
        )

    def check_share_templates(self) -> None:
        """Load every channel's share templates; a broken one is a TemplateError (exit 2)
        before anything is fetched or sent, not one error per post after the digest."""
        for channel in self.channels:
            try:
                channel.template_names()
            except TemplateError as e:
                raise TemplateError(f"channel {channel.name}: {e}") from None

    def share(
        self,
        *,
        dry_run: bool = False,
        fetched: FetchResult | None = None,
        result: RunResult | None = None,
    ) -> RunResult:
        from .share import run_shares

        result = result or RunResult()
        if fetched is None:
            self.check_share_templates()
            fetched = self.fetch(record=not dry_run)
            result.fetch = fetched
        result.shares = run_shares(self.ctx, self.channels, fetched.posts, dry_run=dry_run)
        return result

    def run(
        self, *, force: bool = False, dry_run: bool = False, progress: Progress | None = None
    ) -> RunResult:
        """The cron job: fetch once, send what is due (``force``: an edition now, whatever
        the cadence says), post the shares."""
        result = RunResult()
        problems = self.compliance_problems()
        if problems:
            raise ConfigError(problems)
        self.check_share_templates()
        fetched = self.fetch(record=not dry_run)
        result.fetch = fetched
        try:
            self.send(
                force=force, dry_run=dry_run, fetched=fetched, progress=progress, result=result
            )
        except DistribError as e:
            # A digest that cannot go out must not stop the shares.
            if e.exit_code != 1:
                raise
            result.errors.append(str(e))
        if self.settings.channels:
            self.share(dry_run=dry_run, fetched=fetched, result=result)
        if not dry_run and self.ledger.outbox_pending():
            # Confirmation emails `distrib serve` queued but could not send (it is down).
            from .signup import send_queued

            try:
                send_queued(self.settings, self.ledger)
            except DistribError as e:
                result.errors.append(f"confirmation emails: {e}")
        return result

    def status(self) -> list[dict[str, Any]]:
        """Every edition's delivery progress (newest first), for `distrib status`."""
        rows = []
        total: int | None = None
        for edition in reversed(self.ledger.editions()):
            counts = self.ledger.email_counts(edition.id)
            done = sum(counts.values())
            row: dict[str, Any] = {
                "edition": edition.id,
                "newsletter": edition.newsletter,
                "subject": edition.subject,
                "created": edition.created.isoformat(),
                "status": edition.status,
                "posts": len(edition.post_keys),
                "layout": self.ledger.kv_get(f"edition:{edition.id}:layout"),
                **counts,
                "pending": 0,
            }
            if edition.status == "awaiting":
                row["eta"] = (
                    f"waiting for approval: `distrib approve {edition.id}` sends it, `distrib reject {edition.id}` drops it"
                )
            if edition.status == "sending":
                if total is None:
                    total = sum(1 for _ in self.recipients(edition.newsletter))
                row["pending"] = max(total - done, 0)
                row["eta"] = self._eta(row["pending"] + counts["deferred"] + counts["claimed"])
            rows.append(row)
        self._add_feedback(rows)
        return rows

    def _add_feedback(self, rows: list[dict[str, Any]]) -> None:
        """Each edition's bounces and complaints as the providers' webhooks reported them,
        their rates, and a warning past the bulk-sender limits of Gmail and Yahoo."""
        feedback = self.ledger.provider_feedback(r["edition"] for r in rows)
        for row in rows:
            got = feedback.get(row["edition"], {})
            handed = row.get("sent", 0) + row.get("in_doubt", 0)
            row["bounced"] = got.get("bounced", 0)
            row["soft_bounced"] = got.get("soft_bounce", 0)
            row["complained"] = got.get("complained", 0)
            row["bounce_rate"] = round(100 * row["bounced"] / handed, 2) if handed else 0.0
            row["complaint_rate"] = round(100 * row["complained"] / handed, 2) if handed else 0.0
            row["warnings"] = feedback_warnings(row, handed)

    def link_clicks(self, limit: int = 10) -> list[dict[str, Any]]:
        """Click counts per tracked link of the ``limit`` newest editions that have them."""
        out: list[dict[str, Any]] = []
        for edition in reversed(self.ledger.editions()):
            links = self.ledger.link_clicks(edition.id)
            if links:
                out.append(
                    {
                        "edition": edition.id,
                        "newsletter": edition.newsletter,
                        "subject": edition.subject,
                        "links": [{"link": n, "url": u, "clicks": c} for n, u, c in links],
                    }
                )
            if len(out) >= limit:
                break
        return out

    def _eta(self, remaining: int) -> str:
        """When an unfinished send will be done, from the mailer's configured quota."""
        opts = mailer_settings(self.settings)
        per_day = opts.get("rate_per_day") or 0
        if not remaining:
            return ""
        if per_day:
            days = -(-remaining // per_day)
            return f"{remaining} to go at {per_day} a day: about {days} more daily run(s)"
        return f"{remaining} to go: the next run sends them"

    def posts(
        self, *, all_posts: bool = False, newsletter: str | None = None
    ) -> tuple[list[Post], list[SourceError], frozenset[str]]:
        """(posts, source errors, keys of the posts dated by when they were first seen)."""
        fetched = self.fetch(record=False)
        if all_posts:
            items = sorted(fetched.posts, key=lambda p: p.published or self.ctx.now, reverse=True)
            return items, fetched.errors, fetched.undated
        return self.select(self.newsletter(newsletter), fetched), fetched.errors, fetched.undated


#: Gmail's and Yahoo's bulk-sender limits (their 2024 sender requirements): a spam
#: complaint rate to stay under 0.3%, and bounces kept near zero, 2% at the very most.
COMPLAINT_LIMIT = 0.3
BOUNCE_LIMIT = 2.0


def feedback_warnings(row: dict[str, Any], handed: int) -> list[str]:
    """One line per limit an edition's rates pass, naming the edition and the fix."""
    out = []
    name = f"edition {row['edition']} [{row['newsletter']}]"
    if handed and 100 * row["complained"] / handed > COMPLAINT_LIMIT:
        out.append(
            f"{name}: {row['complained']} complaints in {handed} sent ({row['complaint_rate']:.2f}%) "
            f"is over the {COMPLAINT_LIMIT}% Gmail and Yahoo allow bulk senders: send only to "
            "people who confirmed (double opt-in through `distrib serve`) and keep the "
            "unsubscribe link plain to see"
        )
    if handed and 100 * row["bounced"] / handed > BOUNCE_LIMIT:
        out.append(
            f"{name}: {row['bounced']} hard bounces in {handed} sent ({row['bounce_rate']:.2f}%) "
            f"is over the {BOUNCE_LIMIT:g}% bulk-sender limit of Gmail and Yahoo: check list "
            "hygiene (drop old and imported-unconfirmed addresses, `distrib subscribers list "
            "--status bounced`) and confirm opt-in"
        )
    return out


def make_app(
    config: str | Path | None = None,
    *,
    strict: bool = False,
    require_secrets: bool = False,
    require_email: bool | None = True,
) -> App:
    return App(
        load_config(
            config, strict=strict, require_secrets=require_secrets, require_email=require_email
        )
    )
