"""`distrib check`: everything that can be validated without fetching or sending."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from . import registry
from .adapters import BASES, load_channel, load_source
from .errors import DistribError

if TYPE_CHECKING:
    from .app import App
    from .config import Settings


def run_checks(app: App) -> tuple[list[str], list[str]]:
    """(problems, notes).  Problems make `distrib check` exit 2.

    The config itself was validated when the app was made; here: secrets present, the
    rules of bulk mail, every newsletter's templates rendered on sample posts, every
    channel's share templates, and the adapters' optional libraries.
    """
    from .render.email import check_templates

    settings = app.settings
    problems: list[str] = list(settings.missing_secrets())
    notes: list[str] = []
    # No email.from got past load_config only for a config that shares and never mails
    # (no [email] table): the rules of bulk mail and the email templates do not apply.
    mails = settings.email["from"] is not None
    if mails:
        problems += app.compliance_problems()
        letters = app.newsletters
        template_problems = check_templates(
            settings, [(n.name, n.opts) for n in letters], app.ctx.now
        )
        problems += template_problems
        if not template_problems:
            notes += [f"newsletter {n.name}: templates render ({n.opts.cadence})" for n in letters]
    else:
        notes.append(
            "no [email] table: this config shares only (commands that mail need email.from)"
        )
    groups = (
        ("distrib.sources", [s.type for s in settings.sources]),
        ("distrib.mailers", [settings.email.mailer] if mails else []),
        ("distrib.channels", [c.type for c in settings.channels]),
    )
    missing = []
    for group, used in groups:
        for info in registry.describe(group, BASES[group]):
            if info.name in used and not info.available:
                problems.append(info.hint)
                missing.append(info.name)
    # Build the sources and the mailer as a run would (nothing is fetched or sent), so
    # that their own option rules ("exactly one of url and path") are checked here too.
    for opts in settings.sources:
        if opts.type in missing:
            continue
        try:
            load_source(opts.type)(opts.name, opts, app.ctx)
        except DistribError as e:
            problems.append(str(e))
    for opts in settings.sources:
        if opts.type == "feed" and opts.get("url") and "feed" not in missing:
            # A home page as the url works: say which feed it leads to.
            from .discover import describe_feed_source

            notes.append(describe_feed_source(opts.name, opts["url"], app.ctx.http))
    if mails and settings.email.mailer not in missing:
        try:
            mailer = app.mailer()
        except DistribError as e:
            problems.append(str(e))
        else:
            notes += mailer.check_notes()
    try:
        from .render.message import dkim_signer

        signer = dkim_signer(settings)
    except DistribError as e:
        problems.append(str(e))
    else:
        if signer is not None:
            notes += [
                f"email: signed with DKIM, {k.algorithm} under {k.selector}._domainkey.{signer.domain}"
                for k in signer.keys
            ]
    for channel_opts in settings.channels:
        try:
            channel = load_channel(channel_opts.type)(channel_opts.name, channel_opts, app.ctx)
            names = channel.template_names()
        except DistribError as e:
            problems.append(f"channel {channel_opts.name}: {e}")
        else:
            notes.append(
                f"channel {channel_opts.name}: {channel_opts.type}, templates {', '.join(names) or 'built in'}"
            )
            # Warnings that need today's date (the real clock; tests set it): a
            # LinkedIn version near its sunset.
            bad, warnings = channel.check_warnings(app.ctx.now.date())
            problems += bad
            notes += [f"warning: {w}" for w in warnings]
    return problems, notes


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
