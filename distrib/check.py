"""`distrib check`: everything that can be validated without fetching or sending."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import registry
from .adapters import BASES, load_channel, load_source
from .errors import DistribError

if TYPE_CHECKING:
    from .app import App
    from .config import Settings


@dataclass
class _Findings:
    """What `distrib check` found so far: problems (exit 2) and notes, in order."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_checks(app: App) -> tuple[list[str], list[str]]:
    """(problems, notes).  Problems make `distrib check` exit 2.

    The config itself was validated when the app was made; here: secrets present, the
    rules of bulk mail, every newsletter's templates rendered on sample posts, every
    channel's share templates, and the adapters' optional libraries.
    """
    settings = app.settings
    found = _Findings(problems=list(settings.missing_secrets()))
    # No email.from got past load_config only for a config that shares and never mails
    # (no [email] table): the rules of bulk mail and the email templates do not apply.
    mails = settings.email["from"] is not None
    _check_email_rules(app, found, mails=mails)
    missing = _missing_libraries(settings, found, mails=mails)
    _check_sources(app, found, missing)
    if mails and settings.email.mailer not in missing:
        _check_mailer(app, found)
    _check_dkim(settings, found)
    _check_channels(app, found)
    return found.problems, found.notes


def _check_email_rules(app: App, found: _Findings, *, mails: bool) -> None:
    """The rules of bulk mail, and every newsletter's templates rendered on samples."""
    from .render.email import check_templates

    if not mails:
        found.notes.append(
            "no [email] table: this config shares only (commands that mail need email.from)"
        )
        return
    found.problems += app.compliance_problems()
    letters = app.newsletters
    template_problems = check_templates(
        app.settings, [(n.name, n.opts) for n in letters], app.ctx.now
    )
    found.problems += template_problems
    if not template_problems:
        found.notes += [
            f"newsletter {n.name}: templates render ({n.opts.cadence})" for n in letters
        ]


def _missing_libraries(settings: Settings, found: _Findings, *, mails: bool) -> list[str]:
    """The adapters in use whose optional library is not installed (each a problem with
    its install hint)."""
    groups = (
        ("distrib.sources", [s.type for s in settings.sources]),
        ("distrib.mailers", [settings.email.mailer] if mails else []),
        ("distrib.channels", [c.type for c in settings.channels]),
    )
    missing = []
    for group, used in groups:
        for info in registry.describe(group, BASES[group]):
            if info.name in used and not info.available:
                found.problems.append(info.hint)
                missing.append(info.name)
    return missing


def _check_sources(app: App, found: _Findings, missing: list[str]) -> None:
    """Every source built as a run would (nothing is fetched), so that its own option
    rules ("exactly one of url and path") are checked; then a note on what each feed
    source's url turned out to be."""
    settings = app.settings
    for opts in settings.sources:
        if opts.type in missing:
            continue
        try:
            load_source(opts.type)(opts.name, opts, app.ctx)
        except DistribError as e:
            found.problems.append(str(e))
    for opts in settings.sources:
        if opts.type == "feed" and opts.get("url") and "feed" not in missing:
            # A home page as the url works: say which feed it leads to.
            from .discover import describe_feed_source

            found.notes.append(describe_feed_source(opts.name, opts["url"], app.ctx.http))


def _check_mailer(app: App, found: _Findings) -> None:
    """The mailer built as a run would (nothing is sent), and its own notes."""
    try:
        mailer = app.mailer()
    except DistribError as e:
        found.problems.append(str(e))
    else:
        found.notes += mailer.check_notes()


def _check_dkim(settings: Settings, found: _Findings) -> None:
    """The DKIM keys load; a note per key that signs."""
    try:
        from .render.message import dkim_signer

        signer = dkim_signer(settings)
    except DistribError as e:
        found.problems.append(str(e))
        return
    if signer is not None:
        found.notes += [
            f"email: signed with DKIM, {k.algorithm} under {k.selector}._domainkey.{signer.domain}"
            for k in signer.keys
        ]


def _check_channels(app: App, found: _Findings) -> None:
    """Every channel built, its share templates found, and its date-bound warnings."""
    for channel_opts in app.settings.channels:
        try:
            channel = load_channel(channel_opts.type)(channel_opts.name, channel_opts, app.ctx)
            names = channel.template_names()
        except DistribError as e:
            found.problems.append(f"channel {channel_opts.name}: {e}")
            continue
        found.notes.append(
            f"channel {channel_opts.name}: {channel_opts.type}, templates {', '.join(names) or 'built in'}"
        )
        # Warnings that need today's date (the real clock; tests set it): a
        # LinkedIn version near its sunset.
        bad, warnings = channel.check_warnings(app.ctx.now.date())
        found.problems += bad
        found.notes += [f"warning: {w}" for w in warnings]


def ledger_file_warnings(path: Path) -> list[str]:
    """A warning when an existing ledger can be read by other users.

    It holds the unsubscribe signing key, platform sessions and the subscriber list;
    distrib makes it 0600, but a copy, a restore or an old ledger may be wider.  Its
    -wal and -shm are made with the database file's mode, so fixing that one is enough.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return []
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return []
    return [
        f"other users can read the ledger {path} (mode {mode:04o}): it holds the signing key, "
        f"sessions and subscribers; chmod 600 {path}"
    ]


def domain_wanted(settings: Settings, flag: bool | None) -> bool:
    """Whether `check` looks at the sending domain's DNS: ``--domain/--no-domain``, else
    ``[check] domain``, else when DKIM signing is configured."""
    if flag is not None:
        return flag
    opts = settings.data.get("check") or {}
    if opts.get("domain") is not None:
        return bool(opts["domain"])
    dkim = (settings.data.get("email") or {}).get("dkim") or {}
    return bool(dkim.get("selector") or dkim.get("ed25519_selector"))
