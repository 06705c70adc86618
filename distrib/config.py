"""TOML -> validated settings: distrib's own schema and the loaded config.

The toolkit (option kinds, :class:`Opt`, :class:`Table`, :func:`validate_table`) is in
:mod:`distrib.schema`; this module is the root schema built with it, every section
listed here (``[theme]`` is declared beside its code in :mod:`distrib.render.theme`),
and the rules that span several keys.  Validation reports **every** problem at once;
unknown keys are warnings (errors under ``strict``).  Adapters (sources, mailers,
channels) declare their own options in a class attribute ``options`` and are validated
under their own prefix.

Secrets are never values in the file: a key ending in ``_env`` names the environment
variable that holds the secret, read by :meth:`Settings.secret` when it is needed.
A relative path is relative to the config file's folder.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

from . import registry
from .addresses import recipient_problems
from .errors import AdapterUnavailable, ConfigError
from .render import css
from .schema import Ctx as _SchemaCtx
from .schema import (  # noqa: F401  (re-exported: adapters written against distrib.config)
    Invalid,
    Opt,
    Section,
    Table,
    TableList,
    _got,
    _join,
    _suggest,
    _wrap,
    choice,
    k_address_list,
    k_bool,
    k_count,
    k_dir,
    k_duration,
    k_email,
    k_env_name,
    k_int,
    k_number,
    k_path,
    k_positive,
    k_span,
    k_str,
    k_str_list,
    k_timezone,
    k_url,
    parse_duration,
    validate_table,
)

ENV_VAR = "DISTRIB_CONFIG"
DEFAULT_PATH = "distrib.toml"


@dataclass
class Ctx(_SchemaCtx):
    """A validation of distrib's config: adapters are found through the registry, and a
    misplaced key is looked for in every root section."""

    adapter_options: Callable[[str, str], Mapping[str, Opt | Table | TableList]] | None = (
        registry.options
    )
    root: Table | None = field(default_factory=lambda: _root())


@dataclass(frozen=True)
class Settings:
    """The validated config.  Sections are :class:`Section` views."""

    path: Path
    data: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def __getattr__(self, key: str) -> Any:
        if key in ("path", "data", "warnings"):
            raise AttributeError(key)
        try:
            return _wrap(self.data[key], key, VIEWS[key][1] if key in VIEWS else None)
        except KeyError:
            raise AttributeError(f"config has no section {key!r}") from None

    # The core sections, typed (a section missing from ``data`` is an AttributeError).

    @property
    def site(self) -> SiteSection:
        return cast("SiteSection", self.__getattr__("site"))

    @property
    def sources(self) -> list[SourceSection]:
        return cast("list[SourceSection]", self.__getattr__("sources"))

    @property
    def digest(self) -> DigestSection:
        return cast("DigestSection", self.__getattr__("digest"))

    @property
    def newsletters(self) -> list[NewsletterSection]:
        return cast("list[NewsletterSection]", self.__getattr__("newsletters"))

    @property
    def email(self) -> EmailSection:
        return cast("EmailSection", self.__getattr__("email"))

    @property
    def channels(self) -> list[ChannelSection]:
        return cast("list[ChannelSection]", self.__getattr__("channels"))

    @property
    def ledger(self) -> LedgerSection:
        return cast("LedgerSection", self.__getattr__("ledger"))

    @property
    def templates(self) -> TemplatesSection:
        return cast("TemplatesSection", self.__getattr__("templates"))

    @property
    def check(self) -> CheckSection:
        return cast("CheckSection", self.__getattr__("check"))

    @property
    def theme(self) -> ThemeSection:
        return cast("ThemeSection", self.__getattr__("theme"))

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def secret(self, section: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
        """The value of the environment variable that ``section[key]`` names, or None if unset.

        ``key`` ends in ``_env``.  Raise :class:`ConfigError` naming the variable when the
        option is set but the variable is not.
        """
        name = section.get(key)
        if not name:
            return None
        value = os.environ.get(name)
        if value is None or value == "":
            where = where or (section.where if isinstance(section, Section) else "config")
            state = "is empty" if value == "" else "is not set"
            raise ConfigError(
                f"{where}.{key}: the environment variable {name} {state}; "
                f"export {name}=... before running distrib"
            )
        return value

    def missing_secrets(self) -> list[str]:
        """Every ``*_env`` option whose variable is unset, as problem lines."""
        problems: list[str] = []

        def walk(value: Any, path: str) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    sub = _join(path, k)
                    if k.endswith("_env") and isinstance(v, str) and v and not os.environ.get(v):
                        state = "is empty" if v in os.environ else "is not set"
                        problems.append(
                            f"{sub}: the environment variable {v} {state}; export {v}=..."
                        )
                    else:
                        walk(v, sub)
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    label = f"{path}[{i}]"
                    if isinstance(v, dict) and v.get("name"):
                        label += f" ({v['name']})"
                    walk(v, label)

        walk(self.data, "")
        return problems


# --- the schema of distrib's own sections ---------------------------------------------

SITE = Table(
    {
        "name": Opt(k_str, required=True, doc="the site's name, shown in the digest's header"),
        "url": Opt(
            k_url, required=True, doc="the site's home page, such as 'https://example.org/'"
        ),
        "language": Opt(k_str, "en", "BCP 47 language tag of the site, such as 'en', 'uk', 'ar'"),
        "direction": Opt(
            choice("auto", "ltr", "rtl"), "auto", "text direction; auto from language"
        ),
        "timezone": Opt(
            k_timezone, "UTC", "the zone for dates and the cadence, such as 'Europe/Kyiv'"
        ),
        "postal_address": Opt(
            k_str, "", "the sender's postal address, printed in every email footer"
        ),
        "logo": Opt(k_url, None, "URL of the logo shown in the header"),
        "description": Opt(k_str, "", "one line about the site"),
    },
    doc="the site whose posts are distributed",
)

SOURCE = Table(
    {
        "name": Opt(k_str, required=True, doc="a short name for this source, such as 'blog'"),
        "type": Opt(k_str, required=True, doc="feed, wordpress, markdown or a registered source"),
    },
    adapter_group="distrib.sources",
)

NEWSLETTER_OPTIONS: dict[str, Opt | Table | TableList] = {
    "window": Opt(k_span, parse_duration("7d"), "how far back posts are taken, such as '7d'"),
    "max_posts": Opt(
        k_positive,
        10,
        "the most posts one edition shows in full; the rest of what is new goes below as title links",
    ),
    "overflow": Opt(
        choice("list", "skip"),
        "list",
        "new posts beyond max_posts: list (title links in the same edition) or skip (left out, counted)",
    ),
    "max_per_day": Opt(
        k_positive,
        3,
        "per-post: the most emails a reader gets in 24 hours; a bigger burst is one digest",
    ),
    "min_posts": Opt(k_count, 1, "below this many new posts nothing is sent"),
    "cadence": Opt(
        choice("per-run", "per-post", "daily", "weekly", "monthly"),
        "per-run",
        "when an edition is due: per-run (whenever there is something new), per-post, daily, weekly, monthly",
    ),
    "day": Opt(k_str, "monday", "weekly: the day; monthly: the day of the month (1-28)"),
    "time": Opt(k_str, "08:00", "the local time (site.timezone) an edition is due at, HH:MM"),
    "subject": Opt(
        k_str,
        "{{ site.name }}: {{ posts[0].title }}{% if posts|length > 1 %} {{ t('and_more', n=posts|length - 1) }}{% endif %}",
        "Jinja2 template of the subject line",
    ),
    "preheader": Opt(
        k_str,
        "{{ posts|map(attribute='title')|join(' · ') }}",
        "Jinja2 template of the preview text shown after the subject",
    ),
    "template": Opt(k_str, "digest", "the email template (templates/email/NAME.mjml.j2)"),
    "size_budget_kb": Opt(
        k_positive, 90, "the most KB of HTML one message may have (Gmail clips at ~102)"
    ),
    "include_tags": Opt(k_str_list, (), "only posts with one of these tags"),
    "exclude_tags": Opt(k_str_list, (), "never posts with one of these tags"),
    "include_categories": Opt(k_str_list, (), "only posts in one of these categories"),
    "exclude_categories": Opt(k_str_list, (), "never posts in one of these categories"),
    "include_authors": Opt(k_str_list, (), "only posts by one of these authors"),
    "exclude_authors": Opt(k_str_list, (), "never posts by one of these authors"),
    "sources": Opt(k_str_list, (), "only posts from these sources (by name); empty: all"),
    "backfill": Opt(
        k_count, None, "first run: take the newest N posts; unset: every post in the window"
    ),
    "intro_file": Opt(
        k_path, None, "a Markdown file shown above the posts (the editor's note) while it exists"
    ),
    "approval": Opt(
        k_bool,
        False,
        "render and store a due edition, send a test copy to email.editors, and send "
        "nothing until `distrib approve N`",
    ),
    "sponsor": Table(
        {
            "title": Opt(k_str, "", "the block's heading"),
            "text": Opt(k_str, "", "its text, Markdown"),
            "file": Opt(k_path, None, "a Markdown file with the text, instead of text"),
            "url": Opt(k_url, None, "where the block links"),
            "link_text": Opt(k_str, "", "the link's words under the text, such as 'Get tickets'"),
            "image": Opt(k_url, None, "an image shown in the block"),
            "label": Opt(
                k_str, "", "the mark above it; default 'Sponsored' in the site's language"
            ),
        },
        doc="a sponsor or announcement block, after the lead story, counted in the size budget",
    ),
}

DIGEST = Table(NEWSLETTER_OPTIONS, doc="what an edition takes and when it is due")

NEWSLETTER = Table(
    {"name": Opt(k_str, required=True, doc="a short name for this newsletter, such as 'weekly'")}
    | NEWSLETTER_OPTIONS
)

DKIM = Table(
    {
        "domain": Opt(k_str, "", "the signing domain (d=); default: the domain of email.from"),
        "selector": Opt(
            k_str,
            "",
            "the selector of the key: its public key is at <selector>._domainkey.<domain>",
        ),
        "key_file": Opt(
            k_path,
            None,
            "PEM file of the private key (RSA or Ed25519); `distrib dkim-keygen` makes one",
        ),
        "key_env": Opt(
            k_env_name,
            None,
            "environment variable holding the PEM private key, instead of key_file",
        ),
        "ed25519_selector": Opt(
            k_str, "", "a second, Ed25519 signature (RFC 8463) under this selector"
        ),
        "ed25519_key_file": Opt(k_path, None, "PEM file of the Ed25519 private key"),
        "ed25519_key_env": Opt(
            k_env_name, None, "environment variable holding the Ed25519 PEM key"
        ),
    },
    doc="DKIM signatures on every message distrib builds (smtp, outbox, mailgun, ses raw)",
)

EMAIL = Table(
    {
        "mailer": Opt(k_str, "outbox", "outbox, smtp or a registered mailer"),
        # Required by the commands that mail (see load_config's require_email), not by
        # share or posts, which need no email settings.
        "from": Opt(k_email, None, "the From address, such as 'News <news@example.org>'"),
        "reply_to": Opt(k_email, None, "a Reply-To address"),
        "recipients": Opt(k_address_list, (), "addresses that receive the digest"),
        "recipients_file": Opt(
            k_path, None, "a CSV file of recipients: a column 'email', optional 'name'"
        ),
        "editors": Opt(k_str_list, (), "who gets the test copy of an edition waiting for approval"),
        "unsubscribe_url": Opt(
            k_str,
            None,
            "https URL of the unsubscribe endpoint; {token} and {email} are filled in per recipient",
        ),
        "allow_insecure_unsubscribe": Opt(
            k_bool,
            False,
            "accept an http:// unsubscribe_url (a local test only: one-click unsubscribe, RFC 8058, needs https)",
        ),
        "unsubscribe_mailto": Opt(k_email, None, "an address that unsubscribes whoever mails it"),
        "secret_env": Opt(
            k_env_name, None, "environment variable holding the key that signs unsubscribe tokens"
        ),
        "resend_in_doubt": Opt(
            k_bool,
            False,
            "resend messages whose request timed out after it was sent (the provider may have them)",
        ),
        "dkim": DKIM,
    },
    doc="how the digest is sent; [email.<mailer>] holds the mailer's own options",
    open_subtables=True,
)

CHANNEL = Table(
    {
        "name": Opt(k_str, required=True, doc="a short name for this account, such as 'x-main'"),
        "type": Opt(
            k_str, required=True, doc="outbox, x, mastodon, bluesky or a registered channel"
        ),
        "max_age": Opt(k_span, parse_duration("3d"), "posts older than this are never shared"),
        "max_per_run": Opt(k_positive, 5, "the most posts shared on this account in one run"),
        "hashtags": Opt(k_count, 3, "the most hashtags in one share post"),
        "template": Opt(
            k_str, None, "the share template (templates/share/NAME.j2); default: by type"
        ),
        "utm": Opt(k_bool, True, "add utm_source/utm_medium/utm_campaign to links"),
        "per_hour": Opt(k_positive, None, "the most posts shared on this account in any hour"),
        "per_day": Opt(k_positive, None, "the most posts shared on this account in any 24 hours"),
        "min_gap": Opt(k_duration, None, "the least time between two share posts, such as '30m'"),
        "baseline": Opt(
            k_bool,
            True,
            "first run on this account: share nothing that exists now, only later posts (false: share every post within max_age)",
        ),
        "backfill": Opt(
            k_count, 0, "first run on this account: share the newest N posts that exist now anyway"
        ),
    },
    adapter_group="distrib.channels",
)


def k_postgres_url(v: Any, ctx: _SchemaCtx) -> str:
    """A PostgreSQL URL, without a password (a secret is never a value in the file)."""
    if not isinstance(v, str) or not v.startswith(("postgresql://", "postgres://")):
        raise Invalid("a PostgreSQL URL such as 'postgresql://distrib@db.example.org/distrib'")
    try:
        u = urlsplit(v)
        u.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise Invalid(f"a PostgreSQL URL ({e})") from None
    if u.password:
        raise Invalid(
            "a URL without a password: put the whole URL in an environment variable and name "
            "it in url_env instead (or use a ~/.pgpass file)",
            got=f"one with a password ({u.scheme}://{u.username}:…@{u.hostname}…)",
        )
    return v


LEDGER = Table(
    {
        "path": Opt(k_path, None, "the SQLite ledger file; default distrib.sqlite beside the config"),
        "url": Opt(
            k_postgres_url, None,
            "a PostgreSQL database instead of the SQLite file: postgresql://user@host/db (no password here)",
        ),
        "url_env": Opt(k_env_name, None, "environment variable holding the PostgreSQL URL, password and all"),
    }
)  # fmt: skip

# [webhooks]: used by distrib.hooks.
WEBHOOKS = Table(
    {
        "postmark_auth_env": Opt(
            k_env_name,
            None,
            "the environment variable holding 'user:password' of the Postmark webhook's basic auth",
        ),
        "mailgun_key_env": Opt(
            k_env_name, None, "the environment variable holding Mailgun's webhook signing key"
        ),
        "soft_bounces": Opt(k_int, 3, "soft bounces in a row that suppress an address"),
        "ses": Opt(k_bool, False, "accept Amazon SES notifications through SNS at POST /hooks/ses"),
        "ses_topic_arn": Opt(
            k_str,
            None,
            "accept SNS messages of this topic only, such as "
            "'arn:aws:sns:eu-west-1:123456789012:ses-bounces'; default: any topic",
        ),
        "sns_cert_url_prefix": Opt(
            k_str,
            None,
            "where signing certificates may come from instead of "
            "https://sns.<region>.amazonaws.com/ (for tests only)",
        ),
        "sns_max_age": Opt(
            k_duration,
            timedelta(hours=1),
            "SNS messages whose signed Timestamp is older than this are refused (403) as "
            "replays, such as '1h'; one more than 5 minutes in the future is refused too",
        ),
    },
    doc="bounce and complaint webhooks of `distrib serve` (POST /hooks/postmark, /hooks/mailgun)",
)

# [signup]: used by distrib.signup.
SIGNUP = Table(
    {
        "base_url": Opt(
            k_str,
            None,
            "the public URL `distrib serve` answers under, such as 'https://news.example.org'; "
            "default: the scheme and host of email.unsubscribe_url",
        ),
        "confirm_ttl": Opt(
            k_duration, timedelta(days=7), "how long a confirmation link works, such as '7d'"
        ),
        "per_ip": Opt(k_int, 10, "signups one client IP may make in an hour (then 429)"),
        "per_address": Opt(k_int, 3, "confirmation emails one address gets in a day at most"),
        "welcome": Opt(
            k_bool,
            True,
            "after a first confirmation, send a welcome email (templates email/welcome.html.j2 "
            "and email/welcome.txt.j2); false: none",
        ),
    },
    doc="the signup form (POST /subscribe) and its confirmation emails",
)


def k_network_list(v: Any, ctx: _SchemaCtx) -> tuple[str, ...]:
    """Addresses or CIDR networks, such as ["127.0.0.1", "10.0.0.0/8", "::1"]."""
    example = '["127.0.0.1", "10.0.0.0/8"]'
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise Invalid(f"an array of addresses or networks such as {example}")
    for entry in v:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise Invalid(
                f"addresses or networks such as {example} ({entry!r} is neither)"
            ) from None
    return tuple(x.strip() for x in v)


# [serve]: used by distrib.serve (and distrib.web, which applies it).
SERVE = Table(
    {
        "trusted_proxies": Opt(
            k_network_list,
            (),
            "the reverse proxies (addresses or CIDR networks) whose X-Forwarded-For or "
            "Forwarded header names the client; default: none, every header is ignored",
        ),
    },
    doc="`distrib serve` behind a reverse proxy",
)

# [tracking]: used by distrib.tracking.
TRACKING = Table(
    {
        "clicks": Opt(
            k_bool,
            False,
            "count clicks per link: each link of an edition goes through "
            "<signup.base_url>/c/<edition>/<link>/<sig> on `distrib serve` (no reader is "
            "identified; link scanners can inflate the counts)",
        ),
    },
    doc="click counts per link of each edition (off by default)",
)

TEMPLATES = Table(
    {"dir": Opt(k_dir, None, "a folder of templates that override the built-in ones")}
)

CHECK = Table(
    {
        "domain": Opt(
            k_bool,
            None,
            "check the sending domain's DNS (SPF, DKIM, DMARC, MX) in `distrib check`; "
            "default: when [email.dkim] is set",
        ),
        "nameservers": Opt(
            k_str_list,
            (),
            "DNS servers for those look-ups, such as ['9.9.9.9'] or ['127.0.0.1:5353']; "
            "default: the system's",
        ),
        "dns_timeout": Opt(k_number, 5.0, "seconds to wait for each DNS answer"),
    },
    doc="what `distrib check` looks at beyond the config",
)

# [theme]: how the email digest looks (used by distrib.render.theme).


def k_color(v: Any, ctx: _SchemaCtx) -> str:
    try:
        return css.color(v) if isinstance(v, str) else css.color("")
    except ValueError:
        raise Invalid("a CSS colour: hex such as '#1a56db' or a name such as 'navy'") from None


def k_font_stack(v: Any, ctx: _SchemaCtx) -> str:
    # Family names only, so the value is CSS in a style attribute and a style block alike.
    try:
        return css.font_stack(v) if isinstance(v, str) else css.font_stack("")
    except ValueError:
        raise Invalid(
            "a CSS font-family list such as \"Georgia, 'Times New Roman', serif\""
        ) from None


SOCIAL = Table(
    {
        "name": Opt(k_str, required=True, doc="the network's name as shown, such as 'Mastodon'"),
        "url": Opt(k_url, required=True, doc="the profile URL"),
    }
)

THEME = Table(
    {
        "brand_color": Opt(k_color, "#1f4e79", "the header and link colour, '#rrggbb'"),
        "accent_color": Opt(k_color, "#c2410c", "buttons and highlights, '#rrggbb'"),
        "background_color": Opt(k_color, "#f2f4f7", "the colour around the email's body"),
        "text_color": Opt(k_color, "#1f2933", "body text colour"),
        "logo": Opt(k_url, None, "URL of the header logo; default [site] logo"),
        "logo_width": Opt(k_positive, 120, "the logo's width in pixels"),
        "font_family": Opt(
            k_font_stack,
            "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
            "the CSS font stack of the email",
        ),
        "heading_font_family": Opt(
            k_font_stack, None, "the font stack of headings; default font_family"
        ),
        "web_font_name": Opt(
            k_str, None, "a web font to load, such as 'Merriweather' (add it to font_family)"
        ),
        "web_font_url": Opt(k_url, None, "the CSS URL of that web font (Google Fonts or your own)"),
        "dark_mode": Opt(k_bool, True, "adapt colours when the reader's client is in dark mode"),
        "layout": Opt(
            choice("by-date", "by-category"), "by-date", "group posts by date or by category"
        ),
        "lead_story": Opt(k_bool, True, "show the first post as a lead story with a large image"),
        "images": Opt(k_bool, True, "show each post's image"),
        "excerpt_chars": Opt(k_positive, 260, "the longest excerpt, in characters"),
        "date_format": Opt(
            k_str,
            "medium",
            "Babel date format: short, medium, long, full or a pattern such as 'd MMM y'",
        ),
        "social": TableList(SOCIAL, doc="links shown in the footer: [[theme.social]] name, url"),
        "archive_url": Opt(
            k_url, None, "where `distrib archive` output is published; enables 'view in browser'"
        ),
    },
    doc="how the email digest looks",
)

ROOT = Table(
    {
        "site": SITE,
        "sources": TableList(SOURCE),
        "digest": DIGEST,
        "newsletters": TableList(NEWSLETTER),
        "email": EMAIL,
        "channels": TableList(CHANNEL),
        "ledger": LEDGER,
        "templates": TEMPLATES,
        "check": CHECK,
        "theme": THEME,
        "webhooks": WEBHOOKS,
        "signup": SIGNUP,
        "tracking": TRACKING,
        "serve": SERVE,
    }
)


# --- typed views of the core sections ---------------------------------------------------
# Each annotates the options of its table (the defaults are the schema's, above); mypy
# sees ``settings.email.resend_in_doubt`` as a bool.  tests/test_config_types.py checks
# each view names exactly its table's options.


class SiteSection(Section):
    __slots__ = ()
    name: str
    url: str
    language: str
    direction: str
    timezone: str
    postal_address: str
    logo: str | None
    description: str


class SourceSection(Section):
    """``[[sources]]``: name and type; the source's own options are read as a Mapping."""

    __slots__ = ()
    name: str
    type: str


class SponsorSection(Section):
    __slots__ = ()
    title: str
    text: str
    file: Path | None
    url: str | None
    link_text: str
    image: str | None
    label: str


class DigestSection(Section):
    __slots__ = ()
    tables: ClassVar[Mapping[str, type[Section]]] = {"sponsor": SponsorSection}
    window: timedelta
    max_posts: int
    overflow: str
    max_per_day: int
    min_posts: int
    cadence: str
    day: str
    time: str
    subject: str
    preheader: str
    template: str
    size_budget_kb: int
    include_tags: tuple[str, ...]
    exclude_tags: tuple[str, ...]
    include_categories: tuple[str, ...]
    exclude_categories: tuple[str, ...]
    include_authors: tuple[str, ...]
    exclude_authors: tuple[str, ...]
    sources: tuple[str, ...]
    backfill: int | None
    intro_file: Path | None
    approval: bool
    sponsor: SponsorSection


class NewsletterSection(DigestSection):
    __slots__ = ()
    name: str


class DkimSection(Section):
    __slots__ = ()
    domain: str
    selector: str
    key_file: Path | None
    key_env: str | None
    ed25519_selector: str
    ed25519_key_file: Path | None
    ed25519_key_env: str | None


class EmailSection(Section):
    """``[email]``; ``email["from"]`` (a keyword), and ``email[email.mailer]`` is the
    mailer's own table (read as a Mapping, or through the mailer's typed view)."""

    __slots__ = ()
    tables: ClassVar[Mapping[str, type[Section]]] = {"dkim": DkimSection}
    mailer: str
    reply_to: str | None
    recipients: tuple[str, ...]
    recipients_file: Path | None
    editors: tuple[str, ...]
    unsubscribe_url: str | None
    allow_insecure_unsubscribe: bool
    unsubscribe_mailto: str | None
    secret_env: str | None
    resend_in_doubt: bool
    dkim: DkimSection


class ChannelSection(Section):
    """``[[channels]]``: the options every channel has; its own are read as a Mapping."""

    __slots__ = ()
    name: str
    type: str
    max_age: timedelta
    max_per_run: int
    hashtags: int
    template: str | None
    utm: bool
    per_hour: int | None
    per_day: int | None
    min_gap: timedelta | None
    baseline: bool
    backfill: int


class LedgerSection(Section):
    __slots__ = ()
    path: Path | None
    url: str | None
    url_env: str | None


class WebhooksSection(Section):
    __slots__ = ()
    postmark_auth_env: str | None
    mailgun_key_env: str | None
    soft_bounces: int
    ses: bool
    ses_topic_arn: str | None
    sns_cert_url_prefix: str | None
    sns_max_age: timedelta


class SignupSection(Section):
    __slots__ = ()
    base_url: str | None
    confirm_ttl: timedelta
    per_ip: int
    per_address: int
    welcome: bool


class ServeSection(Section):
    __slots__ = ()
    trusted_proxies: tuple[str, ...]


class TrackingSection(Section):
    __slots__ = ()
    clicks: bool


class TemplatesSection(Section):
    __slots__ = ()
    dir: Path | None


class CheckSection(Section):
    __slots__ = ()
    domain: bool | None
    nameservers: tuple[str, ...]
    dns_timeout: float


class SocialSection(Section):
    __slots__ = ()
    name: str
    url: str


class ThemeSection(Section):
    __slots__ = ()
    tables: ClassVar[Mapping[str, type[Section]]] = {"social": SocialSection}
    brand_color: str
    accent_color: str
    background_color: str
    text_color: str
    logo: str | None
    logo_width: int
    font_family: str
    heading_font_family: str | None
    web_font_name: str | None
    web_font_url: str | None
    dark_mode: bool
    layout: str
    lead_story: bool
    images: bool
    excerpt_chars: int
    date_format: str
    social: list[SocialSection]
    archive_url: str | None


#: Each root section's table and typed view.
VIEWS: dict[str, tuple[Table, type[Section]]] = {
    "site": (SITE, SiteSection),
    "sources": (SOURCE, SourceSection),
    "digest": (DIGEST, DigestSection),
    "newsletters": (NEWSLETTER, NewsletterSection),
    "email": (EMAIL, EmailSection),
    "channels": (CHANNEL, ChannelSection),
    "ledger": (LEDGER, LedgerSection),
    "templates": (TEMPLATES, TemplatesSection),
    "check": (CHECK, CheckSection),
    "theme": (THEME, ThemeSection),
    "webhooks": (WEBHOOKS, WebhooksSection),
    "signup": (SIGNUP, SignupSection),
    "tracking": (TRACKING, TrackingSection),
    "serve": (SERVE, ServeSection),
}


def _root() -> Table:
    return ROOT


def find_config(path: str | os.PathLike[str] | None) -> Path:
    """``--config``, else ``./distrib.toml``, else ``$DISTRIB_CONFIG``."""
    if path:
        return Path(path)
    default = Path(DEFAULT_PATH)
    if default.exists():
        return default
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return default


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    require_secrets: bool = False,
    require_email: bool | None = True,
) -> Settings:
    """Read and validate the config; raise :class:`ConfigError` with every problem.

    ``require_email``: True for the commands that mail (``email.from`` must be set),
    False for those that need no email settings (share, posts), None for check: needed
    unless the config only shares (no ``[email]`` table and some ``[[channels]]``).
    """
    p = find_config(path)
    data = _read_toml(p, named=bool(path))
    ctx = Ctx(base_dir=p.resolve().parent)
    out = validate_table(ROOT, data, "", ctx)
    _check_cross(out, data, ctx)
    _check_email_from(out, data, ctx, require_email)
    if strict:
        ctx.problems.extend(ctx.warnings)
        ctx.warnings = []
    settings = Settings(path=p.resolve(), data=out, warnings=tuple(ctx.warnings))
    if require_secrets:
        ctx.problems.extend(settings.missing_secrets())
    if ctx.problems:
        # A misspelt key or section ("[emial]") is often the cause of the problems it
        # comes with ("email.from: missing"): show it with them, not only as a warning.
        ctx.problems.extend(w for w in ctx.warnings if "did you mean" in w)
        raise ConfigError(ctx.problems, str(p))
    return settings


def _read_toml(p: Path, *, named: bool) -> dict[str, Any]:
    """The config file's TOML; one ConfigError line when it is missing, unreadable, not
    UTF-8 or not TOML.  ``named``: the path came from --config."""
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if not named and os.environ.get(ENV_VAR) and str(p) == os.environ[ENV_VAR]:
            raise ConfigError(
                f"no config file at {p} (named by ${ENV_VAR}); fix {ENV_VAR} or pass --config PATH"
            ) from None
        raise ConfigError(
            f"no config file at {p}; run `distrib init` to write a commented one there, "
            f"or pass --config PATH (or set {ENV_VAR})"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read the config file {p}: {e.strerror}") from None
    try:
        # utf-8-sig: Windows editors (Notepad) save UTF-8 with a byte order mark, which
        # TOML does not allow; it carries no meaning, so it is dropped.
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError("the config file is not UTF-8 text", str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", str(p)) from None


def _check_email_from(
    out: dict[str, Any], data: dict[str, Any], ctx: Ctx, require_email: bool | None
) -> None:
    """``email.from`` is required by the commands that mail (see load_config)."""
    shares_only = "email" not in data and bool(out.get("channels"))
    if not (require_email or (require_email is None and not shares_only)):
        return
    if (
        isinstance(out.get("email"), dict)
        and out["email"].get("from") is None
        and "from" not in (data.get("email") or {})
    ):
        ctx.problems.append(f"email.from: missing; {EMAIL.options['from'].doc}")


# --- rules that span several keys ------------------------------------------------------
#
# Each rule reads the validated tables (``out``) and the raw TOML (``data``: what the
# file itself says, before defaults) and adds its problems and warnings to ``ctx``.
# They run in the order of _CROSS_RULES, which is the order their lines are shown in.


def _check_cross(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """Rules that span several keys."""
    for rule in _CROSS_RULES:
        rule(out, data, ctx)


def _check_one_ledger(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """``[ledger]``: at most one of path, url and url_env."""
    ledger_keys = [
        k for k in ("path", "url", "url_env") if (data.get("ledger") or {}).get(k) is not None
    ]
    if len(ledger_keys) > 1:
        ctx.problems.append(
            f"ledger: {' and '.join(ledger_keys)} are both set; keep one (path: an SQLite file, "
            "url or url_env: a PostgreSQL database)"
        )


def _check_newsletter_cadence(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """Each newsletter's cadence keys agree, and min_posts is not above max_posts."""
    from .cadence import check as check_cadence

    letters = [("digest", out.get("digest") or {})] + [
        (f"newsletters[{i}]", n) for i, n in enumerate(out.get("newsletters") or [])
    ]
    for where, letter in letters:
        for problem in check_cadence(letter):
            ctx.problems.append(problem if problem.startswith(where) else f"{where}: {problem}")
        low, high = letter.get("min_posts"), letter.get("max_posts")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            # A contradiction, not a type error: a warning for `run`, an error for `check`.
            ctx.warnings.append(
                f"{where}.min_posts: {low} is more than max_posts {high}: no edition goes until "
                f"{low} posts are new, and then only {high} are shown in full; lower min_posts "
                "or raise max_posts"
            )


def _check_unique_names(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """No two sources, channels or newsletters share a name."""
    for group in ("sources", "channels", "newsletters"):
        seen: set[str] = set()
        for i, item in enumerate(out.get(group) or []):
            name = item.get("name")
            if name in seen:
                ctx.problems.append(
                    f"{group}[{i}].name: {name!r} is used twice; names must be unique"
                )
            seen.add(name)


def _check_digest_alone(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """``[digest]`` and ``[[newsletters]]`` are not both set."""
    if "digest" in data and data.get("newsletters"):
        # Each [[newsletters]] table stands alone; a [digest] beside them would be
        # silently ignored, and the user surely expects it to be sent.
        ctx.problems.append(
            "digest: not used when [[newsletters]] tables are set; make it one of the "
            "[[newsletters]] (with a name) or remove it"
        )


def _check_unsubscribe_url(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """``email.unsubscribe_url``: an https URL that says who unsubscribes."""
    email_out = out.get("email") or {}
    unsub = email_out.get("unsubscribe_url")
    if not (isinstance(unsub, str) and unsub):
        return
    parts = urlsplit(unsub)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        ctx.problems.append(
            "email.unsubscribe_url: expected an https URL such as "
            f"'https://news.example.org/unsubscribe?token={{token}}', got {_got(unsub)}"
        )
    elif parts.scheme == "http" and not email_out.get("allow_insecure_unsubscribe"):
        # Without https there is no List-Unsubscribe-Post header, which Gmail and
        # Yahoo require from bulk senders: the mail would go out non-compliant.
        ctx.problems.append(
            f"email.unsubscribe_url: {unsub!r} is http; one-click unsubscribe (RFC 8058, "
            "required by Gmail and Yahoo) needs https: serve it over https "
            "(`distrib serve` behind your reverse proxy), or set "
            "allow_insecure_unsubscribe = true for a local test"
        )
    elif "{token}" not in unsub and "{email}" not in unsub:
        # RFC 8058 one-click: the URL itself must say who unsubscribes.
        ctx.problems.append(
            "email.unsubscribe_url: has no {token} (or {email}), so every message would carry "
            "the same link and no one could be unsubscribed by it; add ?token={token}"
        )


def _check_addresses(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """``email.editors`` and ``email.recipients`` follow the address rule."""
    email_out = out.get("email") or {}
    if email_out.get("editors"):
        ctx.problems.extend(
            p.replace("email.recipients", "email.editors")
            for p in recipient_problems(email_out["editors"])
        )
    if email_out.get("recipients"):
        # Checked here too (not only when sending) so that they come with the rest.
        ctx.problems.extend(recipient_problems(email_out["recipients"]))


def _check_some_source(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """At least one ``[[sources]]`` table."""
    if "sources" in data and not out.get("sources"):
        ctx.problems.append("sources: expected at least one [[sources]] table, got none")
    elif "sources" not in data:
        ctx.problems.append(
            "sources: missing; add a [[sources]] table with name, type and url or path"
        )


def _check_mailer_tables(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """Each ``[email.<mailer>]`` table validated by its mailer's options, and the chosen
    mailer's table made (with its defaults) when the file has none."""
    email: dict[str, Any] = data["email"] if isinstance(data.get("email"), dict) else {}
    mailer = email.get("mailer", "outbox")
    if not isinstance(mailer, str):
        return
    for key, value in email.items():
        if isinstance(value, dict) and key not in EMAIL.options:
            _check_mailer_table(out, ctx, key, value, email=email, mailer=mailer)
    if mailer not in email or not isinstance(email.get(mailer), dict):
        try:
            cls = registry.load("distrib.mailers", mailer)
        except ConfigError as e:
            ctx.problems.append(f"email.mailer: {e.problems[0]}")
        except AdapterUnavailable as e:
            ctx.problems.append(f"email.mailer: {e}")
        else:
            out["email"][mailer] = validate_table(Table(cls.options), {}, f"email.{mailer}", ctx)


def _check_mailer_table(
    out: dict[str, Any],
    ctx: Ctx,
    key: str,
    value: dict[str, Any],
    *,
    email: dict[str, Any],
    mailer: str,
) -> None:
    """One ``[email.<key>]`` table: a known mailer's options validated into ``out``; an
    unknown name warned about (an error when it is surely the chosen mailer misspelt)."""
    if key not in registry.names("distrib.mailers"):
        names = list(registry.names("distrib.mailers"))
        hint = _suggest(key, names)
        line = f"email.{key}: unknown mailer table{hint}"
        if hint and hint == _suggest(key, [mailer]) and mailer not in email:
            # "[email.smpt]" with mailer = "smtp": the mailer's settings
            # are in the misspelt table; sending with defaults would fail.
            ctx.problems.append(line)
        else:
            ctx.warnings.append(line)
        return
    try:
        cls = registry.load("distrib.mailers", key)
    except (ConfigError, AdapterUnavailable) as e:
        if key == mailer:
            ctx.problems.append(f"email.mailer: {e}")
        return
    out["email"][key] = validate_table(Table(cls.options), value, f"email.{key}", ctx)


def _check_tracking(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """Tracked links point at `distrib serve`: its public URL must be known."""
    if not (out.get("tracking") or {}).get("clicks"):
        return
    base = (out.get("signup") or {}).get("base_url")
    unsub = (out.get("email") or {}).get("unsubscribe_url")
    if not base and not unsub:
        ctx.problems.append(
            "tracking.clicks: true, but the public URL of `distrib serve` is not set; set "
            "[signup] base_url (such as 'https://news.example.org') or email.unsubscribe_url, "
            "or set clicks = false"
        )


#: The rules of _check_cross, in the order their problems are reported.
_CROSS_RULES: tuple[Callable[[dict[str, Any], dict[str, Any], Ctx], None], ...] = (
    _check_one_ledger,
    _check_newsletter_cadence,
    _check_unique_names,
    _check_digest_alone,
    _check_unsubscribe_url,
    _check_addresses,
    _check_some_source,
    _check_mailer_tables,
    _check_tracking,
)


def mailer_settings(settings: Settings) -> Section:
    """The ``[email.<mailer>]`` table of the configured mailer."""
    email = settings.email
    table: Section = email[email.mailer]
    return table
