"""The command line: each command is a few lines over distrib.app.App.

Errors a user can cause are DistribErrors; they are shown as one line on stderr with
the exit code of the contract: 0 done or nothing to do, 1 something failed and was
recorded, 2 bad config or usage.  Heavy modules are imported inside the commands so
``distrib --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from .errors import EXIT_FAILED, EXIT_USAGE, DistribError, LockedError
from .safetext import terminal_safe

if TYPE_CHECKING:
    from .app import App, EditionResult, RunResult
    from .model import Edition, Post, RenderedEdition
    from .share import ShareReport

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class UserError(click.ClickException):
    """A DistribError on its way out: one line, the right exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        lines = self.format_message().split("\n")  # a config's problems: one per line
        click.echo("distrib: " + "\n".join(terminal_safe(line) for line in lines), err=True)


class OutputPath(click.Path):
    """A file or folder distrib will write: checked before anything is fetched or sent.

    The nearest part of the path that exists must be a folder we may write in, so that
    ``--report``, ``--out`` and export paths fail at once with exit 2, not with a
    traceback after the send.
    """

    def __init__(self, *, folder: bool):
        super().__init__(file_okay=not folder, dir_okay=folder, path_type=Path)
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import os

        path = cast(Path, super().convert(value, param, ctx))  # path_type=Path
        probe = Path(os.path.abspath(path))
        if self.folder and probe.exists() and not probe.is_dir():
            self.fail(f"{path} is a file; give a folder", param, ctx)
        parent = probe if self.folder else probe.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            self.fail(f"cannot write {path}: {parent} is a file, not a folder", param, ctx)
        if not os.access(parent, os.W_OK | os.X_OK):
            self.fail(f"cannot write {path}: the folder {parent} is not writable", param, ctx)
        return path


class Port(click.IntRange):
    """A TCP port, 1-65535: anything else is one line and exit 2, before any server starts."""

    name = "port"

    def __init__(self) -> None:
        super().__init__(1, 65535)

    def fail(
        self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None
    ) -> Any:
        option = param.opts[0] if param is not None and param.opts else "--port"
        value = message.split(" is not", 1)[0].strip("'") if " is not" in message else message
        raise UserError(
            f"{option} {value}: expected a port from 1 to 65535, such as 8080", EXIT_USAGE
        )


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    logging.basicConfig(
        level=level, format="distrib: %(levelname)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setFormatter(_SafeFormatter("distrib: %(levelname)s: %(message)s"))


class _SafeFormatter(logging.Formatter):
    """Log lines quote addresses, titles and server replies: their control characters
    are escaped (see :func:`terminal_safe`), line breaks of the record kept."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(terminal_safe(line) for line in super().format(record).split("\n"))


def common(
    needs_secrets: bool = False,
    lock: bool = False,
    needs_email: bool | None = True,
    always_strict: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--config, -v, -q, --strict on every command; builds the App and maps errors.

    ``needs_email``: whether the command needs ``email.from`` (see load_config).
    ``always_strict``: `distrib check` treats what `run` only warns about (unknown keys,
    contradictions) as errors: it is there to find what cron would hit."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=None,
            help="The config file [default: ./distrib.toml, then $DISTRIB_CONFIG]; `distrib init` writes one.",
        )
        @click.option("-v", "--verbose", count=True, help="Say more (-vv: debug).")
        @click.option("-q", "--quiet", is_flag=True, help="Only errors (for cron).")
        @click.option("--strict", is_flag=True, help="Treat unknown config keys as errors.")
        @functools.wraps(fn)
        def wrapper(
            config_path: Path | None, verbose: int, quiet: bool, strict: bool, **kwargs: Any
        ) -> Any:
            from .app import make_app

            _setup_logging(verbose, quiet)
            try:
                app = make_app(
                    config_path,
                    strict=strict or always_strict,
                    require_secrets=needs_secrets,
                    require_email=needs_email,
                )
                for warning in app.settings.warnings:
                    if not quiet:
                        click.echo(f"distrib: warning: {warning}", err=True)
                with app:
                    if lock:
                        app.lock()
                    return fn(app, quiet=quiet, **kwargs)
            except LockedError as e:
                if quiet:
                    # cron: a long send still holds the lock; this tick has nothing to do
                    # and must not mail the publisher an error every 15 minutes.
                    sys.exit(0)
                raise UserError(str(e), e.exit_code) from None
            except DistribError as e:
                raise UserError(str(e), e.exit_code) from None
            except OSError as e:
                if e.filename is None:
                    raise
                # A file or folder the user named went away or turned read-only meanwhile.
                raise UserError(
                    f"{e.filename}: {e.strerror}; check the path and its permissions", EXIT_FAILED
                ) from None
            except KeyboardInterrupt as e:
                done = "; " + e.summary() if hasattr(e, "summary") else ""
                raise UserError(
                    f"interrupted; run again to finish (nothing is sent twice){done}", EXIT_FAILED
                ) from None

        return wrapper

    return decorate


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="distrib", message="distrib %(version)s")
def cli() -> None:
    """Distribute a site's recent posts: an email digest and share posts, never twice.

    \b
    Example (a commented config that runs on the bundled sample site, offline):
      distrib init && distrib run
    """


def _exit(result: RunResult) -> None:
    if result.failed:
        sys.exit(EXIT_FAILED)


def _n_posts(n: int) -> str:
    return f"{n} post" if n == 1 else f"{n} posts"


def _layout_line(n: int, layout: dict[str, int] | None) -> str:
    """'20 posts: 5 in full, 15 listed': how an edition showed what it took."""
    if not layout or (
        not layout.get("listed") and not layout.get("more") and not layout.get("skipped")
    ):
        return ""
    parts = [f"{layout.get('full', 0)} in full"]
    if layout.get("listed"):
        parts.append(f"{layout['listed']} listed")
    if layout.get("more"):
        parts.append(f'{layout["more"]} counted in the "more stories" line')
    if layout.get("skipped"):
        parts.append(f'{layout["skipped"]} skipped (overflow = "skip")')
    return f"{_n_posts(n)}: " + ", ".join(parts)


def _echo_run(app: App, result: RunResult, *, quiet: bool, dry_run: bool = False) -> None:
    # Lines quote titles, addresses and servers' replies: shown with controls escaped.
    def say(text: str) -> None:
        if not quiet:
            click.echo(terminal_safe(text))

    if result.fetch is not None:
        f = result.fetch
        n_sources = len(app.settings.sources)
        say(f"fetched {len(f.posts)} posts from {n_sources - len(f.errors)} of {n_sources} sources")
        for source_error in f.errors:
            click.echo(f"distrib: {source_error}", err=True)
    _echo_planned(app, result, say, quiet=quiet)
    for r in result.editions:
        say(_edition_line(r))
        layout = _layout_line(len(r.edition.post_keys), r.layout)
        if layout:
            say(f"  {layout}")
        for error in r.report.errors:  # may quote an address or a server's reply
            click.echo(f"distrib: {r.newsletter}: {terminal_safe(error)}", err=True)
    for line in result.skipped:
        say(line)
    for error in result.errors:
        click.echo(f"distrib: {terminal_safe(error)}", err=True)
    if result.shares is not None:
        _echo_shares(result.shares, say, dry_run=dry_run)


def _echo_planned(app: App, result: RunResult, say: Callable[[str], None], *, quiet: bool) -> None:
    """A dry run's editions: to whom and where, as a real run would say (its point)."""
    if not result.planned or quiet:
        return
    from .app import layout_of

    mailer = app.mailer()

    def whom(newsletter: str) -> str:
        if mailer.handoff:
            return f"for the {app.settings.email.mailer} platform's list"
        n = sum(1 for _ in app.recipients(newsletter))  # less those who left this one
        return f"for {n} recipient{'s' if n != 1 else ''}, {mailer.describe()}"

    for plan in result.planned:
        say(
            f"{plan.newsletter.name}: would send {plan.rendered.subject!r} "
            f"({_n_posts(len(plan.posts))}) {whom(plan.newsletter.name)}"
            + (
                " once approved (a test copy to the editors first)"
                if plan.newsletter.opts.get("approval")
                else ""
            )
            + " [dry run]"
        )
        layout = _layout_line(len(plan.posts), layout_of(plan.rendered, plan.skipped))
        if layout:
            say(f"  {layout}")


def _edition_line(r: EditionResult) -> str:
    """One edition's summary: sent or resumed, how many delivered, deferred, failed..."""
    rep = r.report
    verb = "resumed" if r.resumed else "sent"
    if not rep.sent and rep.errors:
        verb = "not sent"  # the mailer could not start (server down, folder not writable)
    line = (
        f"{r.newsletter}: edition {r.edition.id} ({_n_posts(len(r.edition.post_keys))}) {verb}: "
        f"{rep.sent} delivered"
    )
    if rep.deferred:
        line += f", {rep.deferred} deferred to the next run"
    if rep.failed:
        line += f", {rep.failed} failed"
    if getattr(rep, "in_doubt", 0):
        line += f", {rep.in_doubt} in doubt (no answer; not resent)"
    if rep.skipped:
        line += f", {rep.skipped} already done"
    if r.target:
        line += f", {r.target}"
    if not rep.finished:
        line += "; unfinished: the next run delivers the rest"
    return line


def _echo_shares(report: ShareReport, say: Callable[..., None], *, dry_run: bool) -> None:
    for line in report.summary_lines(dry_run=dry_run):
        say(line)
    for error in report.errors:
        click.echo(f"distrib: {terminal_safe(error)}", err=True)


@cli.command()
@click.argument("site_url", metavar="[URL]", required=False)
@click.option(
    "--config",
    "path",
    type=OutputPath(folder=False),
    default=Path("distrib.toml"),
    show_default=True,
    help="Where to write the config.",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@click.option(
    "-v", "--verbose", count=True, help="Say more (no effect here; every command takes it)."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def init(site_url: str | None, path: Path, force: bool, verbose: int, quiet: bool) -> None:
    """Write a starter config to distrib.toml: for your site when given its URL.

    With a URL, distrib reads the page and finds its sources (a WordPress REST API,
    preferred, or the feeds it declares, or a feed at a common path) and its identity
    (name, language, logo, brand colour, time zone, postal address), and writes a
    commented config with TODO only where you must decide.  Without one, it writes the
    bundled example, which runs as it is on the sample site.

    \b
    Examples:
      distrib init https://blog.example.org && distrib preview --open
      distrib init && distrib run --dry-run
    """
    import shutil

    from .paths import example_config

    if path.exists() and not force:
        raise UserError(f"{path} exists; keep it, or pass --force to replace it", EXIT_USAGE)
    if site_url:
        from .discover import discover, render_config
        from .http import HttpClient

        try:
            with HttpClient(max_bytes=5_000_000, timeout=15) as http:
                found = discover(site_url, http)
        except DistribError as e:
            raise UserError(str(e), e.exit_code) from None
        text = render_config(found)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not quiet:
            click.echo(terminal_safe(found.why()))
            for note in found.notes:
                click.echo(terminal_safe(f"note: {note}"))
            todo = sum(1 for line in text.splitlines() if "# TODO" in line)
            click.echo(
                f"wrote {path} for {terminal_safe(found.name or found.url)} ({todo} TODO to decide before sending)"
            )
            where = "" if path == Path("distrib.toml") else f" --config {path}"
            click.echo(f"next: distrib preview{where} --open")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_config(), path)
    if not quiet:
        click.echo(f"wrote {path}; edit [site], [[sources]] and [email], then run `distrib check`")


@cli.command("dkim-keygen")
@click.option(
    "--out",
    "path",
    type=OutputPath(folder=False),
    required=True,
    help="Where to write the private key (PEM, mode 0600).",
)
@click.option("--ed25519", is_flag=True, help="An Ed25519 key (RFC 8463) instead of RSA 2048.")
@click.option(
    "--selector",
    default=None,
    help="The selector the record is shown under [default: [email.dkim] selector, else distrib].",
)
@click.option(
    "--domain",
    default=None,
    help="The signing domain [default: [email.dkim] domain, else the domain of email.from].",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config whose domain and selector to use [default: ./distrib.toml if there].",
)
@click.option(
    "-v", "--verbose", count=True, help="Say more (no effect here; every command takes it)."
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the DNS record.")
def dkim_keygen(
    path: Path,
    ed25519: bool,
    selector: str | None,
    domain: str | None,
    force: bool,
    config_path: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Make a DKIM private key and print the DNS record to publish for it.

    Point [email.dkim] key_file at the file and set its selector; `distrib check --domain`
    then confirms the record is published.

    \b
    Example:
      distrib dkim-keygen --out dkim.pem --domain news.example.org --selector distrib
    """
    import os
    from email.utils import parseaddr

    from .dkim import generate_key, load_key
    from .preflight import quoted_txt

    if path.exists() and not force:
        raise UserError(f"{path} exists; keep it, or pass --force to replace it", EXIT_USAGE)
    if config_path is not None or Path("distrib.toml").exists():
        from .config import load_config

        try:
            email = load_config(config_path).data.get("email") or {}
        except DistribError as e:
            raise UserError(str(e), e.exit_code) from None
        dkim = email.get("dkim") or {}
        selector = selector or dkim.get("ed25519_selector" if ed25519 else "selector") or None
        domain = (
            domain
            or dkim.get("domain")
            or parseaddr(email.get("from") or "")[1].rpartition("@")[2]
            or None
        )
    selector = selector or "distrib"
    domain = domain or "example.org"
    algorithm = "ed25519-sha256" if ed25519 else "rsa-sha256"
    pem = generate_key(algorithm)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)
    key = load_key(pem, selector, str(path))
    if not quiet:
        click.echo(f"wrote {path} ({algorithm}); publish this TXT record:")
    click.echo(f"{selector}._domainkey.{domain} TXT {quoted_txt(key.record())}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Fetch, select and render; send and record nothing.")
@click.option(
    "--force", is_flag=True, help="Send an edition now even if the cadence says it is not due."
)
@click.option(
    "--workers",
    "n_workers",
    type=click.IntRange(1, 64),
    metavar="N",
    help="Send the edition with N worker processes of this host (a PostgreSQL ledger).",
)
@common(needs_secrets=True, lock=True)
def run(app: App, *, quiet: bool, dry_run: bool, force: bool, n_workers: int | None) -> None:
    """The cron job: fetch, send the digest when due, post the shares.

    \b
    Examples:
      */15 * * * * cd /srv/site && distrib run -q    # crontab, every 15 minutes
      distrib run --workers 4    # the send by 4 processes (the ledger in PostgreSQL)
    """
    from .deliver import Progress
    from .workers import Workers

    progress = Progress(None, sys.stderr, enabled=sys.stderr.isatty() and not quiet)
    workers = Workers(n_workers) if n_workers else None
    result = app.run(force=force, dry_run=dry_run, progress=progress, workers=workers)
    _echo_run(app, result, quiet=quiet, dry_run=dry_run)
    _exit(result)


@cli.command()
@click.option(
    "--all",
    "all_posts",
    is_flag=True,
    help="Every post the sources give, not just the next edition's.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON list of objects (key, url, title, author, published, ...).",
)
@click.option("--newsletter", help="Which newsletter's next edition (default: the first).")
@click.option(
    "--pin",
    multiple=True,
    metavar="KEY",
    help="Put this post (key or URL) first in the next edition.",
)
@click.option(
    "--skip",
    multiple=True,
    metavar="KEY",
    help="Leave this post (key or URL) out of the next edition.",
)
@click.option("--unpick", multiple=True, metavar="KEY", help="Undo a pin or skip of this post.")
@click.option("--clear", is_flag=True, help="Forget every pin, skip and note for the next edition.")
@common(needs_email=False)
def posts(
    app: App,
    *,
    quiet: bool,
    all_posts: bool,
    as_json: bool,
    newsletter: str | None,
    pin: tuple[str, ...],
    skip: tuple[str, ...],
    unpick: tuple[str, ...],
    clear: bool,
) -> None:
    """List the posts the next edition would take; pin or skip posts for it.

    Pins and skips (by post key or URL) hold for the next edition of the newsletter
    only: pinned posts come first, in the order pinned; skipped ones are left out.  With
    approval on, an edition waiting for it is rendered again and a new test copy goes
    to the editors.

    \b
    Examples:
      distrib posts --all --json | jq '.[].title'
      distrib posts --pin https://example.org/2026/11/big-story/ --skip https://example.org/minor/
      distrib posts --clear                 # forget the pins, skips and note
    """
    if pin or skip or unpick or clear:
        _edit_picks(app, newsletter, pin=pin, skip=skip, unpick=unpick, clear=clear, quiet=quiet)
    items, errors, undated = app.posts(all_posts=all_posts, newsletter=newsletter)
    for error in errors:
        click.echo(f"distrib: {error}", err=True)
    places = {} if all_posts else _edition_places(app, items, newsletter)
    if as_json:
        _echo_posts_json(items, undated, places)
    else:
        _echo_posts_table(app, items, undated, places, all_posts=all_posts)
    if errors:
        sys.exit(EXIT_FAILED)


def _edit_picks(
    app: App,
    newsletter: str | None,
    *,
    pin: tuple[str, ...],
    skip: tuple[str, ...],
    unpick: tuple[str, ...],
    clear: bool,
    quiet: bool,
) -> None:
    """`posts --clear/--pin/--skip/--unpick`: the editor's picks for the next edition,
    then an edition waiting for approval rendered again."""
    letter = app.newsletter(newsletter)
    if clear:
        app.ledger.clear_editor_picks(letter.name)
        if not quiet:
            click.echo(
                f"{letter.name}: the pins, skips and note for the next edition are forgotten"
            )
    for action, keys in (("pin", pin), ("skip", skip)):
        for text in keys:
            post = app.find_post(text)
            app.ledger.set_editor_pick(letter.name, post.key, action)
            if not quiet:
                verb = "pinned" if action == "pin" else "skipped"
                click.echo(
                    terminal_safe(f"{letter.name}: {verb} {post.title!r} for the next edition")
                )
    for text in unpick:
        post = app.find_post(text)
        if app.ledger.clear_editor_picks(letter.name, post.key) and not quiet:
            click.echo(
                terminal_safe(f"{letter.name}: {post.title!r} is neither pinned nor skipped now")
            )
    for line in app.refresh_after_edit(letter):
        click.echo(line)


def _edition_places(app: App, items: list[Post], newsletter: str | None) -> dict[str, str]:
    """How the next edition shows each post: in full, listed as a title link, or skipped."""
    opts = app.newsletter(newsletter).opts
    beyond = "skipped" if opts.overflow == "skip" else "listed"
    return {p.key: "full" if i < opts.max_posts else beyond for i, p in enumerate(items)}


def _echo_posts_json(items: list[Post], undated: frozenset[str], places: dict[str, str]) -> None:
    """`posts --json`: one object per post."""
    # "undated": the post has no date of its own; "published" is when distrib first saw it.
    rows = [
        p.to_json() | {"undated": p.key in undated} | ({"edition": places[p.key]} if places else {})
        for p in items
    ]
    click.echo(json.dumps(rows, ensure_ascii=False, indent=2))


def _echo_posts_table(
    app: App,
    items: list[Post],
    undated: frozenset[str],
    places: dict[str, str],
    *,
    all_posts: bool,
) -> None:
    """`posts`: one line per post (date, source, title, author, place in the edition)."""
    if not items:
        click.echo("no posts" + ("" if all_posts else " for the next edition (try --all)"))
    for p in items:
        # The site's time, with its offset: the email groups posts by the site's days.
        date = app.site_time(p.published) if p.published else "????-??-?? ??:?? ?????"
        mark = "*" if p.key in undated else " "
        author = f"  ({p.author})" if p.author else ""
        place = f"  [{places[p.key]}]" if places.get(p.key, "full") != "full" else ""
        click.echo(terminal_safe(f"{date}{mark} {p.source:<10.10}  {p.title}{author}{place}"))
    if any(p.key in undated for p in items):
        click.echo(
            '* no date of its own: dated by when distrib first saw it (undated = "first-seen")'
        )


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=OutputPath(folder=True),
    default=Path("preview"),
    show_default=True,
    help="Folder for digest.html, digest.txt and digest.eml.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a browser.")
@click.option("--serve", is_flag=True, help="Serve the preview on 127.0.0.1 and reload on changes.")
@click.option(
    "--port",
    type=Port(),
    default=8765,
    show_default=True,
    help="Port for --serve (not 8025, where test SMTP servers usually listen).",
)
@click.option("--edition", "edition_id", type=int, help="Preview a past edition by its number.")
@click.option("--newsletter", help="Which newsletter (default: the first).")
@click.option(
    "--note",
    "note_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Try an editor's note (Markdown file) above the posts; nothing is kept.",
)
@click.option(
    "--cards",
    is_flag=True,
    help="Also write cards.html: the digest beside each post's share card on each network.",
)
@common()
def preview(
    app: App,
    *,
    quiet: bool,
    out_dir: Path,
    open_browser: bool,
    serve: bool,
    port: int,
    edition_id: int | None,
    newsletter: str | None,
    note_file: Path | None,
    cards: bool,
) -> None:
    """Render the next edition without sending or recording anything.

    The editor's note (`send --note`, [digest] intro_file), pins, skips and the sponsor
    block show as they will be sent.

    \b
    Examples:
      distrib preview --config config.example.toml --out preview --open
      distrib preview --note note.md --open
      distrib preview --cards --open     # the digest beside the share cards of its posts
    """
    from . import preview as pv

    letter = app.newsletter(newsletter)
    if note_file is not None:
        from .editor import read_markdown

        app.note_override = read_markdown(note_file, "--note")

    def build() -> tuple[RenderedEdition, bytes]:
        edition, stand_in = app.edition_to_show(letter, edition_id=edition_id, first_look=True)
        if stand_in:
            click.echo(stand_in, err=True)
        rendered = _rendered_of(app, edition)
        return rendered, app.prepare(edition).preview_bytes()

    if serve:
        watch = [app.settings.path]
        if app.settings.templates.dir:
            watch.append(app.settings.templates.dir)

        def rebuild() -> tuple[RenderedEdition, bytes]:
            # Re-read the config on every change, so edits to it show too.
            from .app import make_app

            nonlocal app, letter
            fresh = make_app(app.settings.path)
            fresh.note_override = app.note_override
            app.close()
            app, letter = fresh, fresh.newsletter(newsletter)
            return build()

        pv.serve_preview(
            rebuild,
            watch,
            port=port,
            open_browser=open_browser,
            budget_kb=letter.opts.size_budget_kb,
            on_ready=lambda url: click.echo(f"serving the preview on {url} (Ctrl-C to stop)"),
        )
        return
    rendered, eml = build()
    summary = pv.write_preview(out_dir, rendered, eml, budget_kb=letter.opts.size_budget_kb)
    if not quiet:
        click.echo(f"subject: {rendered.subject}")
        click.echo(
            f"wrote {out_dir / 'digest.html'}, digest.txt and digest.eml ({summary.get('size_kb', 0):.1f} KB of {letter.opts.size_budget_kb} KB)"
        )
        if rendered.overflow_keys:
            listed = len(rendered.overflow_keys) - rendered.more
            line = f"{listed} posts listed as title links (beyond max_posts or the size budget)"
            if rendered.more:
                line += f', {rendered.more} counted in one "more stories" line'
            click.echo(line)
    page = "digest.html"
    if cards:
        from .cards import MAX_POSTS, cards_html, preflight

        by_key = {p.key: p.url for p in app.posts(all_posts=True)[0]}
        for key in rendered.full_keys:
            if key not in by_key and (post := app.ledger.get_post(key)) is not None:
                by_key[key] = post.url
        urls = [by_key[k] for k in rendered.full_keys if k in by_key][:MAX_POSTS]
        (out_dir / "cards.html").write_text(cards_html(preflight(urls)), encoding="utf-8")
        page = "cards.html"
        if not quiet:
            click.echo(
                f"wrote {out_dir / 'cards.html'}: the digest beside the share cards of {len(urls)} posts"
            )
    if open_browser:
        import webbrowser

        webbrowser.open((out_dir / page).resolve().as_uri())


def _rendered_of(app: App, edition: Edition) -> RenderedEdition:
    from .model import RenderedEdition

    return RenderedEdition(
        subject=edition.subject,
        preheader=edition.preheader,
        html=edition.html,
        text=edition.text,
        full_keys=edition.post_keys,
        markers=edition.markers,
    )


@cli.command()
@click.option(
    "--to",
    "to_address",
    metavar="ADDRESS",
    help="A test send to this one address; records nothing.",
)
@click.option("--force", is_flag=True, help="Send now even if the cadence says it is not due.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send and record nothing.")
@click.option("--newsletter", help="Only this newsletter.")
@click.option(
    "--report", "report_file", type=OutputPath(folder=False), help="Write a JSON summary here."
)
@click.option(
    "--retry-failed",
    "retry_edition",
    type=int,
    metavar="EDITION",
    help="Re-queue the failed recipients of this edition (once per edition), then send.",
)
@click.option(
    "--note",
    "note_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An editor's note (a Markdown file) above the posts of the next edition.",
)
@click.option(
    "--worker",
    is_flag=True,
    help="Send the editions being sent beside other workers (a PostgreSQL ledger); plans nothing.",
)
@click.option(
    "--lease",
    type=click.FloatRange(1, 86400),
    default=120.0,  # distrib.workers.DEFAULT_LEASE
    show_default=True,
    metavar="SECONDS",
    help="With --worker: how long claimed recipients stay a stopped worker's before another takes them.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10000),
    default=50,  # distrib.workers.DEFAULT_BATCH
    show_default=True,
    metavar="N",
    help="With --worker: recipients claimed at a time.",
)
@common(needs_secrets=True, lock=False)
def send(
    app: App,
    *,
    quiet: bool,
    to_address: str | None,
    force: bool,
    dry_run: bool,
    newsletter: str | None,
    report_file: Path | None,
    retry_edition: int | None,
    note_file: Path | None,
    worker: bool,
    lease: float,
    batch: int,
) -> None:
    """Build and deliver the next edition now.

    \b
    Examples:
      distrib send --to me@example.org      # a test send, recorded nowhere
      distrib send --force --report send.json
      distrib send --retry-failed 12        # after fixing what made edition 12 fail
      distrib send --note note.md           # the note goes above the posts of the next edition
      distrib send --worker                 # on each host: send the edition `distrib run` made
      distrib send --worker --lease 300 --batch 20   # a slow server: longer leases, smaller batches
    """
    from .deliver import Progress

    if worker:
        flags = {"--to": to_address, "--force": force, "--dry-run": dry_run, "--note": note_file}
        flags["--retry-failed"] = retry_edition is not None
        clash = [flag for flag, given in flags.items() if given]
        _send_as_worker(app, quiet, newsletter, report_file, (lease, batch), clash)
        return
    app.lock()

    if note_file is not None:
        from .editor import read_markdown

        text = read_markdown(note_file, "--note")
        if dry_run or to_address:
            app.note_override = text  # this command only
        else:
            # Kept in the ledger for the next edition (a rerun, or a re-render before approval).
            letters = app.newsletters if newsletter is None else [app.newsletter(newsletter)]
            for letter in letters:
                app.ledger.set_editor_note(letter.name, text)
                for line in app.refresh_after_edit(letter):
                    click.echo(line)

    if retry_edition is not None and not dry_run:
        n = app.retry_failed(retry_edition)
        if not quiet:
            click.echo(
                f"edition {retry_edition}: {n} failed recipient{'s' if n != 1 else ''} re-queued"
            )

    if to_address:
        edition, outcome = app.test_send(to_address, newsletter=newsletter)
        if not quiet:
            which = f"edition {edition.id}" if edition.id else "the next edition"
            click.echo(
                f"sent {edition.subject!r} to {to_address} ({which}; a test send, nothing recorded)"
            )
        return
    progress = Progress(None, sys.stderr, enabled=sys.stderr.isatty() and not quiet)
    result = app.send(newsletter=newsletter, force=force, dry_run=dry_run, progress=progress)
    _echo_run(app, result, quiet=quiet, dry_run=dry_run)
    if report_file:
        _write_report(report_file, result)
    _exit(result)


def _send_as_worker(
    app: App,
    quiet: bool,
    newsletter: str | None,
    report_file: Path | None,
    lease_batch: tuple[float, int],
    clash: list[str],
) -> None:
    """`send --worker`: one of the processes sending the editions being sent."""
    from .workers import Workers

    if clash:
        raise UserError(
            f"send --worker: {' and '.join(clash)} do not go with --worker (a worker only sends "
            "the editions being sent)",
            EXIT_USAGE,
        )
    result = app.work(newsletter=newsletter, workers=Workers(1, *lease_batch))
    _echo_run(app, result, quiet=quiet)
    if report_file:
        _write_report(report_file, result)
    _exit(result)


def _write_report(report_file: Path, result: RunResult) -> None:
    from .paths import make_private_dir, private_opener

    # It lists recipients' addresses: owner-only, like the ledger.
    make_private_dir(report_file.parent)
    with open(report_file, "w", encoding="utf-8", opener=private_opener) as f:
        f.write(json.dumps(_send_report(result), indent=2) + "\n")


def _send_report(result: RunResult) -> dict[str, Any]:
    eds: list[dict[str, Any]] = [
        {
            "newsletter": r.newsletter,
            "edition": r.edition.id,
            "resumed": r.resumed,
            "sent": r.report.sent,
            "deferred": r.report.deferred,
            "failed": r.report.failed,
            "in_doubt": r.report.in_doubt,
            "skipped": r.report.skipped,
            "finished": r.report.finished,
            "duration": round(r.report.seconds, 3),
            "errors": r.report.errors,
        }
        for r in result.editions
    ]
    return {
        "editions": eds,
        "sent": sum(e["sent"] for e in eds),
        "deferred": sum(e["deferred"] for e in eds),
        "failed": sum(e["failed"] for e in eds),
        "duration": round(sum(e["duration"] for e in eds), 3),
        "skipped": result.skipped,
    }


@cli.command()
@click.option("--dry-run", is_flag=True, help="Compose the share posts; post and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the snippets as JSON.")
@common(lock=False, needs_email=False)
def share(app: App, *, quiet: bool, dry_run: bool, as_json: bool) -> None:
    """Post the share posts that are due on every channel.

    \b
    Examples:
      distrib share --dry-run --json     # channel, post, text, length, limit
      distrib share
    """
    if as_json and not dry_run:
        # Posting for real while asking for a listing is almost surely a slip.
        raise UserError("--json lists what would be posted: use it with --dry-run", EXIT_USAGE)
    if not dry_run:
        problems = app.settings.missing_secrets()
        if problems:
            from .errors import ConfigError

            raise ConfigError(problems, str(app.settings.path))
        app.lock()
    result = app.share(dry_run=dry_run)
    if as_json and dry_run:
        for source_error in result.fetch.errors if result.fetch else []:
            click.echo(f"distrib: {source_error}", err=True)
        shares = result.shares
        assert shares is not None  # App.share always reports
        click.echo(json.dumps([s.to_json() for s in shares.planned], ensure_ascii=False, indent=2))
        for error in shares.errors:
            click.echo(f"distrib: {error}", err=True)
    else:
        _echo_run(app, result, quiet=quiet, dry_run=dry_run)
    _exit(result)


@cli.command()
@click.option(
    "--domain/--no-domain",
    default=None,
    help="Check the sending domain's DNS (SPF, DKIM, DMARC, MX, rDNS) [default: when [email.dkim] is set].",
)
@click.option(
    "--cards",
    is_flag=True,
    help="Fetch the recent posts' pages and report their share cards on X, Mastodon, Bluesky, LinkedIn and Slack.",
)
@common(needs_secrets=False, needs_email=None, always_strict=True)
def check(app: App, *, quiet: bool, domain: bool | None, cards: bool) -> None:
    """Validate the config, templates and credentials; send nothing.

    Unknown keys and contradictions (a misspelt [digets], min_posts above max_posts),
    which `run` only warns about, are errors here (exit 2).

    With --domain (the default when [email.dkim] is set) it also asks DNS what receiving
    mail servers will ask: SPF, DKIM, DMARC, MX and reverse DNS of the sender, one line
    each with the record to publish; exit 1 when a rule fails.

    \b
    Examples:
      distrib check --config distrib.toml --strict
      distrib check --domain
      distrib check --cards          # each recent post's card: image, description, title length
    """
    from .check import domain_wanted, ledger_file_warnings, run_checks

    problems, notes = run_checks(app)
    if not quiet:
        for note in notes:
            click.echo(note)
    for warning in ledger_file_warnings(app.ledger_path):
        click.echo(f"distrib: warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"distrib: {problem}", err=True)
    if problems:
        sys.exit(EXIT_USAGE)
    if cards:
        from .cards import MAX_POSTS, preflight, report_lines

        items, errors, _ = app.posts(all_posts=True)
        for error in errors:
            click.echo(f"distrib: {error}", err=True)
        for line in report_lines(preflight(p.url for p in items[:MAX_POSTS])):
            click.echo(terminal_safe(line))
    if domain_wanted(app.settings, domain):
        from .preflight import preflight as domain_preflight

        if not (app.settings.data.get("email") or {}).get("from"):
            raise UserError(
                "check --domain needs [email] from: the domain it checks is its", EXIT_USAGE
            )

        findings = domain_preflight(app.settings)
        for finding in findings:
            if finding.failed:
                click.echo(f"distrib: {finding.line()}", err=True)
            elif not quiet:
                click.echo(finding.line())
        failed = [f for f in findings if f.failed]
        if failed:
            raise UserError(
                f"the sending domain fails {len(failed)} rule(s) of the bulk-sender requirements; "
                "publish the records named above, then run `distrib check --domain` again",
                EXIT_FAILED,
            )
    if not quiet:
        click.echo(f"{app.settings.path}: OK")


@cli.command()
@click.argument("edition_id", metavar="N", type=int)
@click.option("--later", is_flag=True, help="Approve only; the next `distrib run` sends it.")
@common(needs_secrets=True, lock=True)
def approve(app: App, *, quiet: bool, edition_id: int, later: bool) -> None:
    """Approve edition N, waiting since [digest] approval = true made it, and send it.

    If the note, pins, skips or sponsor changed since its test copy, it is rendered
    again, a new test copy goes to [email] editors, and nothing is approved (exit 1).

    \b
    Examples:
      distrib status                 # edition 7 ... awaiting
      distrib approve 7
    """
    from .app import RunResult
    from .deliver import Progress, deliver_edition

    edition = app.approve(edition_id)
    if not quiet:
        click.echo(terminal_safe(f"edition {edition.id} approved: {edition.subject!r}"))
    if later:
        if not quiet:
            click.echo("the next `distrib run` (or `distrib send`) sends it")
        return
    progress = Progress(None, sys.stderr, enabled=sys.stderr.isatty() and not quiet)
    result = RunResult()
    result.editions.append(app._deliver(edition, False, deliver_edition, progress))
    _echo_run(app, result, quiet=quiet)
    _exit(result)


@cli.command()
@click.argument("edition_id", metavar="N", type=int)
@common(lock=True)
def reject(app: App, *, quiet: bool, edition_id: int) -> None:
    """Drop edition N, waiting for approval: it is never sent.

    Its posts go back to the next edition (skip them with `distrib posts --skip`); the
    pins, skips and note stay for it.

    \b
    Example:
      distrib reject 7
    """
    edition = app.reject(edition_id)
    if not quiet:
        click.echo(
            terminal_safe(f"edition {edition.id} rejected: {edition.subject!r} will not be sent")
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of editions with their counts.")
@click.option(
    "--links",
    "with_links",
    is_flag=True,
    help="Also the click counts per link of the 10 newest editions with [tracking] clicks.",
)
@common()
def status(app: App, *, quiet: bool, as_json: bool, with_links: bool) -> None:
    """Show each edition's delivery progress and when an unfinished one will finish.

    With the bounce and complaint webhooks of `distrib serve` set up, each edition also
    shows its bounces and complaints, and a warning line when they pass the limits Gmail
    and Yahoo hold bulk senders to (0.3% complaints, 2% bounces).  Warnings do not change
    the exit code.

    \b
    Examples:
      distrib status
      distrib status --links     # clicks per link ([tracking] clicks = true)
      distrib status --json
    """
    rows = app.status()
    clicks = app.link_clicks() if with_links else []
    if as_json:
        out: Any = {"editions": rows, "links": clicks} if with_links else rows
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    holder = app.ledger.lock_holder()
    if holder:
        click.echo(
            f"a run is sending now ({holder}); `distrib run -q` ticks meanwhile exit 0 quietly"
        )
    if not rows:
        click.echo("no editions yet; `distrib run` makes the first")
    for r in rows:
        _echo_status_row(r)
    if with_links:
        _echo_links(clicks)


def _echo_status_row(r: dict[str, Any]) -> None:
    line = (
        f"edition {r['edition']} [{r['newsletter']}] {r['created'][:16]} {r['status']}: "
        f"{r['sent']} sent, {r['deferred']} deferred, {r['failed']} failed, "
        f"{r['claimed']} in flight, {r['pending']} pending  {r['subject']!r}"
    )
    if r.get("in_doubt"):
        line += f"\n  {r['in_doubt']} in doubt: sent, but no answer came (see the provider's log)"
    click.echo(line)
    layout = _layout_line(r["posts"], r.get("layout"))
    if layout:
        click.echo(f"  {layout}")
    if r.get("eta"):
        click.echo(f"  {r['eta']}")
    if r.get("bounced") or r.get("soft_bounced") or r.get("complained"):
        click.echo(
            f"  reported by the provider: {r['bounced']} hard bounces ({r['bounce_rate']:.2f}%), "
            f"{r['soft_bounced']} soft bounces, {r['complained']} complaints "
            f"({r['complaint_rate']:.2f}%)"
        )
    for warning in r.get("warnings") or []:
        click.echo(f"  warning: {warning}")


def _echo_links(editions: list[dict[str, Any]]) -> None:
    if not editions:
        click.echo(
            "no tracked links yet: with [tracking] clicks = true, the next edition's links are counted"
        )
    for e in editions:
        total = sum(link["clicks"] for link in e["links"])
        click.echo(
            terminal_safe(
                f"clicks in edition {e['edition']} [{e['newsletter']}] {e['subject']!r}: {total}"
            )
        )
        for link in e["links"]:
            click.echo(terminal_safe(f"  {link['clicks']:>6}  #{link['link']:<3} {link['url']}"))


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=OutputPath(folder=True),
    required=True,
    help="Folder for the archive pages and feed.",
)
@common()
def archive(app: App, *, quiet: bool, out_dir: Path) -> None:
    """Write every sent edition as a web page, an index page and an Atom feed.

    \b
    Example:
      distrib archive --out public/newsletter
    """
    from .archive import write_archive

    # An edition waiting for approval, or rejected, was never sent: not public.
    sent = [e for e in app.ledger.editions() if e.status not in ("awaiting", "rejected")]
    written = write_archive(app.settings, sent, out_dir)
    if not quiet:
        click.echo(f"wrote {len(written)} files to {out_dir}")


@cli.group("ledger")
def ledger_group() -> None:
    """Move the ledger between SQLite and PostgreSQL.

    \b
    Examples:
      distrib ledger copy --to "$DISTRIB_LEDGER_URL"
      distrib ledger copy --to backup.sqlite
    """


@ledger_group.command("copy")
@click.option(
    "--to", "target", required=True, metavar="URL|FILE",
    help="A PostgreSQL URL (postgresql://user:pw@host/db) or a new SQLite file; it must be empty.",
)  # fmt: skip
@common(lock=True, needs_email=False)
def ledger_copy(app: App, *, quiet: bool, target: str) -> None:
    """Copy this config's ledger (subscribers, suppressions, editions, deliveries, shares,
    keys) into an empty PostgreSQL database or a new SQLite file, under the run lock.
    Then point [ledger] at the copy (url_env, url or path).

    \b
    Examples:
      distrib ledger copy --to "$DISTRIB_LEDGER_URL"
      distrib ledger copy --to distrib-copy.sqlite
    """
    from .ledger.postgres import copy_ledger, open_target

    dst, where = open_target(target)
    with dst:
        copied = copy_ledger(app.ledger, dst, where=where)
    if not quiet:
        rows = (
            ", ".join(f"{n} {name}" for name, n in copied.items() if n)
            or "nothing (the ledger is empty)"
        )
        click.echo(f"copied to {terminal_safe(where)}: {rows}")


@cli.command()
@common()
def form(app: App, *, quiet: bool) -> None:
    """Print an accessible HTML signup form (label, input, button, honeypot) to paste
    into the site; it posts to `distrib serve`'s /subscribe.

    \b
    Example:
      distrib form > layouts/partials/signup.html
    """
    from .errors import ConfigError
    from .signup import base_url, form_snippet

    if not base_url(app.settings):
        raise ConfigError(
            "signup.base_url: missing; set it to the public URL of `distrib serve`, "
            "such as 'https://news.example.org'"
        )
    click.echo(form_snippet(app.settings), nl=False)


@cli.group()
def subscribers() -> None:
    """Manage the subscribers kept in the ledger (and the suppression list).

    \b
    Examples:
      distrib subscribers import readers.csv
      distrib subscribers list --status bounced
    """


@subscribers.command("add")
@click.argument("address")
@click.option("--name", default="", help="The subscriber's name.")
@common()
def subscribers_add(app: App, *, quiet: bool, address: str, name: str) -> None:
    """Add one subscriber.

    \b
    Example:
      distrib subscribers add ana@example.com --name "Ana Silva"
    """
    from . import subscribers as subs

    added = _address_call(subs.add, app.ledger, address, name)
    address = terminal_safe(address)
    click.echo(f"added {address}" if added else f"{address} is already known; left as it is")


@subscribers.command("remove")
@click.argument("address")
@common()
def subscribers_remove(app: App, *, quiet: bool, address: str) -> None:
    """Unsubscribe one subscriber (kept on the suppression list).

    \b
    Example:
      distrib subscribers remove ana@example.com
    """
    from . import subscribers as subs

    removed = _address_call(subs.remove, app.ledger, address)
    address = terminal_safe(address)
    click.echo(f"removed {address}" if removed else f"{address} is not an active subscriber")


@subscribers.command("forget")
@click.argument("address")
@common()
def subscribers_forget(app: App, *, quiet: bool, address: str) -> None:
    """Erase a person's data (the right to erasure): their subscriber row, consent
    record and queued mail go; only a keyed hash stays on the suppression list, so a
    later import or `subscribers add` cannot re-add them (their own confirmation of a
    new signup can).

    \b
    Example:
      distrib subscribers forget ana@example.com
    """
    from .addresses import normalise_address

    try:
        normalised = normalise_address(address)
    except ValueError as e:
        raise click.UsageError(f"{terminal_safe(address)} is not an email address ({e})") from None
    known = app.ledger.forget(normalised)
    if not quiet:
        what = "erased" if known else "was not in the ledger; kept"
        click.echo(
            f"{terminal_safe(normalised)} {what} (a keyed hash stays on the suppression list)"
        )


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and count; add nothing.")
@common()
def subscribers_import(app: App, *, quiet: bool, csv_file: Path, dry_run: bool) -> None:
    """Import subscribers from a CSV file (an "email" column, optional "name").

    \b
    Example:
      distrib subscribers import readers.csv --dry-run
    """
    from . import subscribers as subs

    try:
        report = subs.import_csv(app.ledger, csv_file, dry_run=dry_run)
    except ValueError as e:
        # The file itself is wrong (not UTF-8, not CSV): nothing was imported; exit 2.
        raise UserError(f"{csv_file}: {e}", EXIT_USAGE) from None
    if not report.rows:
        blank = not csv_file.read_bytes().strip()
        what = "the file is empty" if blank else "the file has a header but no rows"
        raise UserError(
            f"{csv_file}: {what}; nothing imported: give a CSV with an email column", EXIT_USAGE
        )
    if report.ignored_columns:
        click.echo(
            f"distrib: {csv_file}: ignored columns {', '.join(repr(c) for c in report.ignored_columns)} "
            "(read: email, name, status, reason)",
            err=True,
        )
    for line_no, text, reason in report.bad:
        click.echo(f"distrib: {csv_file}, line {line_no}: {text!r}: {reason}", err=True)
    verb = "would add" if dry_run else "added"
    line = f"{verb} {report.added}, already known {report.already}, bad rows {report.bad_count}"
    if report.marked_suppressed:
        # an export's unsubscribed/bounced/complained rows: say they were not made active
        line += f", {report.marked_suppressed} {'would be ' if dry_run else ''}suppressed as the file's status column says"
    click.echo(line)
    if report.bad_count:
        sys.exit(EXIT_FAILED)


@subscribers.command("export")
@click.argument("csv_file", type=OutputPath(folder=False), required=False)
@click.option(
    "--status",
    type=click.Choice(["active", "unsubscribed", "bounced", "complained"]),
    help="Only these.",
)
@common()
def subscribers_export(app: App, *, quiet: bool, csv_file: Path | None, status: str | None) -> None:
    """Export subscribers as CSV (to a file, or standard output).

    A file is created readable by you only (0600).  A cell that starts with "=", "+",
    "-" or "@" is written with a leading "'" so that no spreadsheet runs it as a
    formula; `subscribers import` drops that "'" again.

    \b
    Example:
      distrib subscribers export backup.csv
    """
    from . import subscribers as subs

    if csv_file:
        from .paths import make_private_dir

        make_private_dir(csv_file.parent)
    n = subs.export_csv(app.ledger, csv_file if csv_file else sys.stdout, status)
    if csv_file and not quiet:
        click.echo(f"exported {n} subscribers to {csv_file}")


@subscribers.command("list")
@click.option(
    "--status",
    type=click.Choice(["active", "unsubscribed", "bounced", "complained"]),
    help="Only these.",
)
@common()
def subscribers_list(app: App, *, quiet: bool, status: str | None) -> None:
    """List subscribers and their status.

    \b
    Example:
      distrib subscribers list --status unsubscribed
    """
    from . import subscribers as subs

    for sub in subs.list_subscribers(app.ledger, status):
        # Names, addresses and bounce reasons came from outside: their control
        # characters (an ESC ] 0 ; ... BEL retitles the terminal) are shown escaped.
        reason = f"  ({terminal_safe(sub.reason)})" if sub.reason else ""
        click.echo(f"{terminal_safe(sub.email)}\t{terminal_safe(sub.name)}\t{sub.status}{reason}")
    if not quiet:
        counts = subs.counts(app.ledger)
        click.echo(", ".join(f"{n} {k}" for k, n in counts.items()), err=True)


@cli.command()
@click.argument("address")
@click.option(
    "--as",
    "status",
    type=click.Choice(["unsubscribed", "bounced", "complained"]),
    default="unsubscribed",
    show_default=True,
    help="Why: an unsubscribe, or a bounce or complaint your provider reported.",
)
@click.option("--reason", default="manual", show_default=True, help="A note kept with the address.")
@common()
def unsubscribe(app: App, *, quiet: bool, address: str, status: str, reason: str) -> None:
    """Put an address on the suppression list by hand; no send mails it again.

    \b
    Examples:
      distrib unsubscribe reader@example.com
      distrib unsubscribe angry@example.com --as complained --reason "Postmark spam complaint"
    """
    from . import subscribers as subs

    done = _address_call(subs.unsubscribe, app.ledger, address, reason, status)
    address = terminal_safe(address)
    click.echo(f"{address}: {status}" if done else f"{address} was already suppressed")


def _address_call(fn: Callable[..., bool], *args: Any) -> bool:
    try:
        return fn(*args)
    except ValueError as e:
        raise UserError(f"{args[1]!r} is not an email address ({e})", EXIT_USAGE) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=Port(), default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--max-connections",
    type=click.IntRange(16, 100_000),
    default=2000,
    show_default=True,
    help="Open connections at most; at the cap the slowest unfinished ones are closed.",
)
@common()
def serve(app: App, *, quiet: bool, host: str, port: int, max_connections: int) -> None:
    """Serve the one-click unsubscribe endpoint (put it behind your reverse proxy),
    the signup form's /subscribe and /confirm, each reader's /preferences page and the
    bounce and complaint webhooks (/hooks/...).

    It runs on waitress with limits for a public endpoint: a request's headers within
    10 s, its body within 10 s and at most 64 KiB, idle connections closed after 15 s,
    ambiguous framing refused with 400.

    \b
    Examples:
      distrib serve --host 127.0.0.1 --port 8080
      distrib serve --port 8080 --max-connections 5000
    """
    from .serve import serve as run_server
    from .web import Limits

    def ready(url: str) -> None:
        if not quiet:
            click.echo(f"unsubscribe endpoint on {url}/ for {app.settings.email.unsubscribe_url}")

    limits = Limits(max_connections=max_connections)
    run_server(
        app.settings, app.ledger_url or app.ledger_path, host, port, on_ready=ready, limits=limits
    )


def main() -> None:
    cli(prog_name="distrib")


if __name__ == "__main__":
    main()
