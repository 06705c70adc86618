"""Share posts: what is due on each channel, and posting it exactly once.

``plan_shares`` decides, per channel, which posts are due: not yet shared there (the
ledger's share_deliveries row), not older than ``max_age``, not from before the
channel's first-run baseline, oldest first, within ``max_per_run``, ``per_hour``,
``per_day`` and ``min_gap``; the rest wait for a later run.

``run_shares`` posts them one at a time: claim (a committed ledger row) -> publish ->
mark (committed).  A row a dead run left ``claimed`` is first reconciled with the network
(``Channel.reconcile``) and re-published only when its fate is unknown, with the same
share key, which each channel passes on as its idempotency key (Mastodon's
Idempotency-Key, Bluesky's record key, the outbox file name; X refuses the duplicate
text).  A deferred answer (429) stops that channel for this run; a failing channel
does not stop the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .adapters import Channel, Context
from .errors import ChannelUnavailable, ConfigError, Deferred, DistribError, TemplateError
from .ledger import Ledger, ShareRow
from .model import DeliveryStatus, Outcome, Post, Snippet

if TYPE_CHECKING:
    from .deliver import StopRequest

log = logging.getLogger("distrib.share")

#: ``min_gap`` is measured from the start of the run, less this much (at most a tenth of it).
GAP_SLACK = timedelta(minutes=1)


def share_key(post_key: str, channel: str) -> str:
    """The stable key of one share (post, channel/account): the idempotency key.

    The same on every run and every retry, so a re-publish after a kill is recognised by
    the network as the same request.
    """
    return hashlib.sha256(f"{post_key}\0{channel}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ShareItem:
    """One share's result, for the summary and ``--json``."""

    channel: str
    post_key: str
    text: str = ""
    remote_id: str = ""
    error: str = ""


@dataclass
class ShareReport:
    sent: list[ShareItem] = field(default_factory=list)
    deferred: list[ShareItem] = field(default_factory=list)
    failed: list[ShareItem] = field(default_factory=list)
    #: due but left for a later run (limits, a deferred channel, a snippet that
    #: cannot be composed).
    skipped: list[ShareItem] = field(default_factory=list)
    #: not due and why (the first-run baseline, max_age, a deferral not yet over):
    #: what ``share --dry-run`` says is held back.
    held: list[ShareItem] = field(default_factory=list)
    #: dry run: the snippets that would be posted.
    planned: list[Snippet] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: channel name -> where it posts (Channel.describe()).
    targets: dict[str, str] = field(default_factory=dict)

    def summary_lines(self, *, dry_run: bool = False) -> list[str]:
        """One line per channel that had something to do."""
        lines = [
            self._dry_run_line(name) if dry_run else self._done_line(name)
            for name in self._channels(dry_run=dry_run)
        ]
        return lines or ["shares: nothing new to post"]

    def _channels(self, *, dry_run: bool) -> list[str]:
        """The channels that had something to do, in order of first appearance (a dry
        run counts the ones that only held posts back)."""
        names = [i.channel for i in (*self.sent, *self.deferred, *self.failed, *self.skipped)]
        names += [s.channel for s in self.planned]
        if dry_run:
            names += [i.channel for i in self.held]
        return list(dict.fromkeys(names))

    def _target(self, name: str) -> str:
        """Where the channel posts, after a space; empty when it does not say."""
        target = self.targets.get(name, "")
        return f" {target}" if target else ""

    def _dry_run_line(self, name: str) -> str:
        """A dry run's line: how many would be posted, and why the rest are held back."""
        n = sum(1 for s in self.planned if s.channel == name)
        line = f"shares: {name}: would post {n}{self._target(name)}"
        held = _reasons([*self.skipped, *self.held], name)
        if held:
            line += "; held back: " + "; ".join(held)
        return line

    def _done_line(self, name: str) -> str:
        """A run's line: posted, deferred (and why), failed, waiting."""
        parts = [f"{_count(self.sent, name)} posted{self._target(name)}"]
        deferred = _count(self.deferred, name)
        if deferred:
            parts.append(f"{deferred} deferred{self._why_deferred(name)}")
        for label, items in (("failed", self.failed), ("waiting", self.skipped)):
            n = _count(items, name)
            if n:
                parts.append(f"{n} {label}")
        return f"shares: {name}: " + ", ".join(parts)

    def _why_deferred(self, name: str) -> str:
        """Why the channel deferred, in brackets after a space; empty when an error line
        says it already."""
        # A deferral prints no error line, and an unreachable host would otherwise show
        # as "1 deferred" run after run.
        error = next(i.error for i in self.deferred if i.channel == name)
        why = error.removeprefix(f"channel {name}: ")
        return f" ({why})" if why and error not in self.errors else ""


def _reasons(items: Iterable[ShareItem], channel: str) -> list[str]:
    """'3 there before the channel's first run', one per reason, in order of appearance."""
    counts: dict[str, int] = {}
    for item in items:
        if item.channel == channel:
            why = item.error.removeprefix(f"channel {channel}: ")
            counts[why] = counts.get(why, 0) + 1
    return [f"{n} {why}" for why, n in counts.items()]


def _count(items: Iterable[ShareItem], channel: str) -> int:
    return sum(1 for i in items if i.channel == channel)


# --- planning ----------------------------------------------------------------------


@dataclass
class _Due:
    channel: Channel
    post: Post
    snippet: Snippet
    row: ShareRow | None


def _opt(channel: Channel, key: str, default: Any = None) -> Any:
    opts = channel.opts
    value = opts.get(key, default) if hasattr(opts, "get") else default
    return default if value is None else value


#: A share in one of these states is not planned again (a claimed one is resumed first).
_SETTLED = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.CLAIMED)


@dataclass
class _Timeline:
    """This run's posts, newest first, and the time each counts from: its date, else
    when distrib first saw it, else now."""

    now: datetime
    seen: dict[str, datetime]
    by_key: dict[str, Post]
    newest_first: list[Post] = field(default_factory=list)

    @classmethod
    def of(cls, ctx: Context, posts: list[Post]) -> _Timeline:
        ledger = ctx.ledger
        seen = ledger.first_seen(p.key for p in posts) if ledger is not None else {}
        timeline = cls(ctx.now, seen, {p.key: p for p in posts})
        # Newest first: today's story must not wait behind a backlog of older ones.
        timeline.newest_first = sorted(posts, key=timeline.when, reverse=True)
        return timeline

    def when(self, post: Post) -> datetime:
        return post.published or self.seen.get(post.key) or self.now


@dataclass
class _Queue:
    """One channel's candidates in the order they go: shares in flight at a kill, then
    shares owed (deferred before, oldest first), then fresh ones; and each one's ledger
    row (None for a fresh one)."""

    max_age: timedelta
    baseline: datetime | None = None
    backfilled: set[str] = field(default_factory=set)
    rows: dict[str, ShareRow | None] = field(default_factory=dict)
    resume: list[Post] = field(default_factory=list)
    owed: list[Post] = field(default_factory=list)
    fresh: list[Post] = field(default_factory=list)

    def posts(self) -> list[Post]:
        return self.resume + self.owed + self.fresh


def _plan(
    ctx: Context,
    channels: list[Channel],
    posts: list[Post],
    report: ShareReport,
    *,
    dry_run: bool = False,
) -> list[_Due]:
    """Every channel's due shares; what is not due is recorded in the report (held,
    skipped, failed) with why."""
    timeline = _Timeline.of(ctx, posts)
    due: list[_Due] = []
    for channel in channels:
        report.targets[channel.name] = channel.describe()
        queue = _queue(ctx, channel, timeline, report, dry=dry_run or ctx.dry_run)
        allowed = _allowance(ctx, channel, len(queue.posts()))
        due += _compose_due(channel, queue, allowed, report)
    return due


def _queue(
    ctx: Context, channel: Channel, timeline: _Timeline, report: ShareReport, *, dry: bool
) -> _Queue:
    """The channel's candidates, in order; the posts not due are held in the report."""
    max_age = _opt(channel, "max_age", timedelta(days=3))
    assert isinstance(max_age, timedelta)
    queue = _Queue(max_age)
    ledger = ctx.ledger
    if ledger is not None:
        _resume_claimed(ledger, channel.name, timeline, queue)
        queue.baseline, queue.backfilled = _baseline(
            ctx, channel, timeline.newest_first, timeline.when, max_age, timeline.seen, dry=dry
        )
    for post in timeline.newest_first:
        if post.key in queue.rows:
            continue
        row = ledger.share_row(post.key, channel.name) if ledger is not None else None
        if row is not None and row.status in _SETTLED:
            continue
        why = _why_not_due(post, row, timeline, queue)
        if why:
            report.held.append(ShareItem(channel.name, post.key, error=why))
            continue
        queue.rows[post.key] = row
        # A share already tried (deferred) is owed before new ones.
        (queue.owed if row is not None else queue.fresh).append(post)
    queue.owed.reverse()  # the oldest debt first
    return queue


def _resume_claimed(ledger: Ledger, name: str, timeline: _Timeline, queue: _Queue) -> None:
    """In-flight shares of a dead run come first, whatever their age: they must be
    settled (reconciled, or re-posted with the same key)."""
    for key in ledger.claimed_shares(name):
        post = timeline.by_key.get(key) or ledger.get_post(key)
        if post is not None:
            queue.rows[key] = ledger.share_row(key, name)
            queue.resume.append(post)


def _why_not_due(
    post: Post, row: ShareRow | None, timeline: _Timeline, queue: _Queue
) -> str | None:
    """Why the post is held back on this channel now, or None when it is due."""
    now = timeline.now
    if row is not None:
        # Tried before: owed its post unless deferred until later, whatever its age.
        if row.not_before is not None and row.not_before > now:
            return f"deferred until {row.not_before.astimezone(now.tzinfo):%Y-%m-%d %H:%M}"
        return None
    if now - timeline.when(post) > queue.max_age:
        return f"older than max_age ({_span(queue.max_age)})"
    if timeline.when(post) > now + timedelta(minutes=5):
        return "dated in the future"  # scheduled: shared once its time comes
    if (
        queue.baseline is not None
        and post.key not in queue.backfilled
        and timeline.seen.get(post.key, now) <= queue.baseline
    ):
        return "there before the channel's first run (set backfill = N to share the newest N)"
    return None


def _tried_text(row: ShareRow | None) -> str | None:
    """The text a share was first composed with, when it was tried before (in flight at
    a kill, or deferred after an answer that may have posted); else None."""
    if row is not None and row.status in (DeliveryStatus.CLAIMED, DeliveryStatus.DEFERRED):
        return row.text or None
    return None


def _compose_due(channel: Channel, queue: _Queue, allowed: int, report: ShareReport) -> list[_Due]:
    """The snippet of each share the channel's limits allow now; the rest wait."""
    name = channel.name
    why_waiting = _limit_reason(channel)
    broken_template = ""
    due: list[_Due] = []
    for i, post in enumerate(queue.posts()):
        if i >= allowed and post not in queue.resume:
            report.skipped.append(ShareItem(name, post.key, error=why_waiting))
            continue
        row = queue.rows.get(post.key)
        # A share tried before is re-posted exactly as it was first composed: X's
        # duplicate check compares the text, and an edited post must not go out twice.
        tried = _tried_text(row)
        if broken_template and tried is None:
            report.skipped.append(ShareItem(name, post.key, error=broken_template))
            continue
        try:
            snippet = channel.compose(post)
        except DistribError as e:
            if isinstance(e, TemplateError):
                # The template, not this post, is at fault: say it once per channel.
                broken_template = str(e)
            if tried is None:
                report.failed.append(ShareItem(name, post.key, error=str(e)))
                report.errors.append(str(e))
                continue
            # The template changed since: what was in flight is still what to settle.
            snippet = Snippet(name, post.key, "", post.url, 0, 0, image=post.image)
        if tried is not None:
            snippet = dataclasses.replace(snippet, text=tried)
        due.append(_Due(channel, post, snippet, row))
    return due


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _limit_reason(channel: Channel) -> str:
    parts = [f"max_per_run {_opt(channel, 'max_per_run', 5)}"]
    for key in ("per_hour", "per_day"):
        if _opt(channel, key):
            parts.append(f"{key} {_opt(channel, key)}")
    gap = _opt(channel, "min_gap")
    if isinstance(gap, timedelta) and gap:
        parts.append(f"min_gap {_span(gap)}")
    return "waiting for the channel's limits (" + ", ".join(parts) + ")"


def _baseline(
    ctx: Context,
    channel: Channel,
    newest_first: list[Post],
    when: Callable[[Post], datetime],
    max_age: timedelta,
    seen: dict[str, datetime],
    *,
    dry: bool,
) -> tuple[datetime | None, set[str]]:
    """The channel's first-run baseline and the posts ``backfill`` exempts from it.

    On the first run on an account (no baseline yet, nothing shared there), everything
    that exists counts as seen: only later posts are shared, except the newest
    ``backfill`` ones.  ``baseline = false`` turns this off (every post within
    ``max_age`` is shared).  A dry run decides the same way and records nothing.
    """
    ledger = ctx.ledger
    assert ledger is not None
    scope = f"channel:{channel.name}"
    baseline = ledger.baseline(scope)
    if baseline is not None:
        saved = ledger.kv_get(f"backfill:{scope}") or []
        return baseline, set(saved)
    if not _opt(channel, "baseline", True) or ledger.shared_keys(channel.name):
        return None, set()
    now = ctx.now
    count = int(_opt(channel, "backfill", 0))
    recent = [
        p
        for p in newest_first
        if now - when(p) <= max_age and when(p) <= now + timedelta(minutes=5)
    ]
    backfilled = [p.key for p in recent[:count]]
    # Everything this run fetched is "there now", though the ledger may have recorded it
    # a second after the run started.
    taken = max([now, *seen.values()])
    if not dry:
        ledger.kv_put(f"backfill:{scope}", backfilled)
        ledger.set_baseline(scope, taken)
    return taken, set(backfilled)


def _allowance(ctx: Context, channel: Channel, wanted: int) -> int:
    """How many shares this channel may post now, under its per-run/hour/day/gap limits."""
    allowed = min(wanted, int(_opt(channel, "max_per_run", 5)))
    ledger = ctx.ledger
    if ledger is None:
        return allowed
    now = ctx.now
    per_hour = _opt(channel, "per_hour")
    if per_hour:
        allowed = min(
            allowed,
            max(
                0, int(per_hour) - len(ledger.shares_since(channel.name, now - timedelta(hours=1)))
            ),
        )
    per_day = _opt(channel, "per_day")
    if per_day:
        allowed = min(
            allowed,
            max(0, int(per_day) - len(ledger.shares_since(channel.name, now - timedelta(days=1)))),
        )
    min_gap = _opt(channel, "min_gap")
    if isinstance(min_gap, timedelta) and min_gap:
        # One post per run at most, and none if the last one is too recent: cron runs
        # space them out; nothing sleeps in here.
        # Measured from this run's start, with a minute of slack: the last share was
        # recorded a moment after its own run started, so "30m" with a cron every 10
        # minutes must post at 09:00, 09:30, 10:00 (not 09:40, 10:20).
        recent = ledger.shares_since(channel.name, now - min_gap + min(GAP_SLACK, min_gap / 10))
        allowed = min(allowed, 0 if recent else 1)
    return allowed


def plan_shares(
    ctx: Context, channels: list[Channel], posts: list[Post]
) -> list[tuple[Channel, Post, Snippet]]:
    """What is due now, per channel, oldest first, within the channels' limits."""
    return [(d.channel, d.post, d.snippet) for d in _plan(ctx, channels, posts, ShareReport())]


# --- posting -----------------------------------------------------------------------


def _publish(channel: Channel, snippet: Snippet, post: Post, key: str) -> tuple[Outcome, str]:
    """The outcome, and an error line when the user must act (the share stays owed)."""
    try:
        return channel.publish(snippet, post, key), ""
    except (ChannelUnavailable, ConfigError) as e:
        # A folder that cannot be written, a missing credential: nothing was posted;
        # keep the share owed for when it is fixed, and say so (exit 1).  The next run
        # tries again at once (no rate-limit backoff): the user may have fixed it.
        return Outcome.deferred(str(e), retry_after=1), str(e)
    except Deferred as e:
        return Outcome.deferred(str(e), retry_after=e.retry_after), ""
    except DistribError as e:
        return Outcome.failed(str(e)), ""
    except Exception as e:  # a bug: record it on the row, keep the other channels going
        log.exception("channel %s: publishing %s", channel.name, post.key)
        return Outcome.failed(f"channel {channel.name}: internal error {type(e).__name__}: {e}"), ""


def _reconcile(channel: Channel, snippet: Snippet, post: Post, key: str) -> Outcome | None:
    """The network's word on a share tried before; None when unknown.  A refused
    credential (ChannelUnavailable) is raised: the channel stops, as a post would."""
    try:
        return channel.reconcile(snippet, post, key)
    except ChannelUnavailable:
        raise
    except DistribError as e:
        log.warning(
            "channel %s: could not check %s (%s); posting it again with the same key",
            channel.name,
            post.key,
            e,
        )
    except Exception:
        log.exception("channel %s: reconciling %s", channel.name, post.key)
    return None


def run_shares(
    ctx: Context, channels: list[Channel], posts: list[Post], *, dry_run: bool
) -> ShareReport:
    """Post every share that is due: claim, publish, mark, one at a time."""
    from .deliver import StopRequest

    report = ShareReport()
    stop = StopRequest()
    try:
        due = _plan(ctx, channels, posts, report, dry_run=dry_run)
        ledger = ctx.ledger
        if dry_run or ledger is None:
            report.planned.extend(d.snippet for d in due)
            return report
        stopped: dict[str, str] = {}
        with stop:
            _post_due(ledger, due, report, stopped, stop)
        if stop.requested:
            # Ctrl-C: the share being posted was finished and marked; the rest wait.
            raise KeyboardInterrupt
        return report
    finally:
        for channel in channels:
            channel.close()


def _post_due(
    ledger: Ledger, due: list[_Due], report: ShareReport, stopped: dict[str, str], stop: StopRequest
) -> None:
    """Claim, publish, mark each due share; stop between two when asked (Ctrl-C)."""
    for item in due:
        if stop.requested:
            return
        name = item.channel.name
        if name in stopped:
            report.skipped.append(ShareItem(name, item.post.key, error=stopped[name]))
            continue
        key = share_key(item.post.key, name)
        if item.row is not None and item.row.status in (
            DeliveryStatus.CLAIMED,
            DeliveryStatus.DEFERRED,
        ):
            # In flight at a kill, or deferred after an answer that may have posted
            # (a 5xx, a dropped connection): look on the network before posting again.
            try:
                outcome = _reconcile(item.channel, item.snippet, item.post, key)
            except ChannelUnavailable as e:
                # Credentials refused while looking: the share stays owed (still to be
                # looked up next run) and the channel stops, as a refused post would.
                outcome = Outcome.deferred(str(e), retry_after=1)
                ledger.mark_share(item.post.key, name, outcome)
                _record(report, item, outcome)
                report.errors.append(str(e))
                stopped[name] = f"channel {name} deferred for this run"
                continue
            if outcome is not None:
                ledger.mark_share(item.post.key, name, outcome)
                _record(report, item, outcome)
                continue
        if not ledger.claim_share(item.post.key, name, item.snippet.text):
            continue  # settled meanwhile (another run)
        outcome, error = _publish(item.channel, item.snippet, item.post, key)
        ledger.mark_share(item.post.key, name, outcome)
        _record(report, item, outcome)
        if error:
            report.errors.append(error)
        if outcome.status is DeliveryStatus.DEFERRED:
            stopped[name] = f"channel {name} deferred for this run"


def _record(report: ShareReport, item: _Due, outcome: Outcome) -> None:
    entry = ShareItem(
        item.channel.name, item.post.key, item.snippet.text, outcome.remote_id, outcome.error
    )
    if outcome.status is DeliveryStatus.SENT:
        report.sent.append(entry)
    elif outcome.status is DeliveryStatus.DEFERRED:
        report.deferred.append(entry)
    else:
        report.failed.append(entry)
        report.errors.append(outcome.error)
