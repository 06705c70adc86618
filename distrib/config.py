"""TOML -> validated settings.

The schema is declarative: each option is an :class:`Opt` with a kind, a default and a
line of documentation.  Validation walks the whole file and reports **every** problem
at once, each with its dotted path and "expected X, got Y"; unknown keys are warnings
(errors under ``strict``).  Adapters (sources, mailers, channels) declare their own
options in a class attribute ``options`` and are validated under their own prefix.

Secrets are never values in the file: a key ending in ``_env`` names the environment
variable that holds the secret, read by :meth:`Settings.secret` when it is needed.
A relative path is relative to the config file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import AdapterUnavailable, ConfigError

ENV_VAR = "DISTRIB_CONFIG"
DEFAULT_PATH = "distrib.toml"

_MISSING: Any = object()


class Invalid(ValueError):
    """Raised by a kind's converter; the message is the "expected ..." part."""


# --- kinds: each converts a TOML value or raises Invalid ----------------------------


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _got(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _type_name(value)
    return f"{_type_name(value)} {value!r}"


def k_str(v: Any, ctx: Ctx) -> str:
    if not isinstance(v, str):
        raise Invalid("a string")
    return v


def k_bool(v: Any, ctx: Ctx) -> bool:
    if not isinstance(v, bool):
        raise Invalid("true or false")
    return v


def k_int(v: Any, ctx: Ctx) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid("an integer")
    return v


def k_count(v: Any, ctx: Ctx) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise Invalid("an integer of 0 or more")
    return v


def k_positive(v: Any, ctx: Ctx) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise Invalid("an integer of 1 or more")
    return v


def k_number(v: Any, ctx: Ctx) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid("a number")
    return float(v)


def k_str_list(v: Any, ctx: Ctx) -> tuple[str, ...]:
    if isinstance(v, str):
        if "," in v:
            # "a, b" where ["a", "b"] was meant: taking it as one item would silently
            # keep only part of what the user wrote.
            items = ", ".join(repr(x.strip()) for x in v.split(",") if x.strip())
            raise Invalid(f"an array of strings such as [{items}]".replace("'", '"'))
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise Invalid('an array of strings such as ["one", "two"]')
    return tuple(v)


def k_address_list(v: Any, ctx: Ctx) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        example = (
            ", ".join(f'"{x.strip()}"' for x in v.split(",") if x.strip())
            if isinstance(v, str)
            else '"ana@example.org", "Bo Li <bo@example.net>"'
        )
        raise Invalid(f"an array of addresses such as [{example}]")
    return tuple(v)


def k_url(v: Any, ctx: Ctx) -> str:
    if not isinstance(v, str):
        raise Invalid("an http(s) URL")
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("an http(s) URL such as 'https://example.org/'")
    return v


def k_path(v: Any, ctx: Ctx) -> Path:
    if not isinstance(v, str) or not v:
        raise Invalid("a path")
    p = Path(os.path.expanduser(v))
    return p if p.is_absolute() else (ctx.base_dir / p)


def k_email(v: Any, ctx: Ctx) -> str:
    if not isinstance(v, str) or not _EMAIL_RE.match(_address_part(v)):
        raise Invalid("an email address such as 'News <news@example.org>'")
    if "\r" in v or "\n" in v:
        raise Invalid("an email address on one line")
    from .subscribers import normalise_address  # the one address rule, as for recipients

    try:
        normalise_address(_address_part(v))
    except ValueError as e:
        raise Invalid(f"an email address such as 'News <news@example.org>' ({e})") from None
    return v


def k_timezone(v: Any, ctx: Ctx) -> str:
    if not isinstance(v, str):
        raise Invalid("a time zone name such as 'Europe/Kyiv'")
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid("a time zone name such as 'Europe/Kyiv'") from None
    return v


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    m = _DURATION_RE.match(text)
    if not m:
        raise Invalid("a duration such as '90m', '12h', '7d' or '2w'")
    return timedelta(**{_DURATION_UNITS[m.group(2)]: int(m.group(1))})


def k_duration(v: Any, ctx: Ctx) -> timedelta:
    if not isinstance(v, str):
        raise Invalid("a duration such as '90m', '12h', '7d' or '2w'")
    return parse_duration(v)


def k_span(v: Any, ctx: Ctx) -> timedelta:
    """A duration longer than zero: a window of "0d" would take nothing, ever."""
    span = k_duration(v, ctx)
    if span <= timedelta(0):
        raise Invalid("a duration longer than zero, such as '90m', '12h', '7d' or '2w'")
    return span


def k_dir(v: Any, ctx: Ctx) -> Path:
    """A folder that must already exist (one distrib reads, such as templates)."""
    p = k_path(v, ctx)
    if not p.is_dir():
        what = "a file" if p.exists() else "nothing"
        raise Invalid(f"a folder that exists ({what} at {p})")
    return p


def k_env_name(v: Any, ctx: Ctx) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise Invalid("the name of an environment variable, such as 'SMTP_PASSWORD'")
    return v


_EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def _address_part(v: str) -> str:
    m = re.search(r"<([^<>]*)>\s*$", v)
    return m.group(1) if m else v.strip()


def choice(*values: str) -> Callable[[Any, Ctx], str]:
    def k_choice(v: Any, ctx: Ctx) -> str:
        if v not in values:
            raise Invalid("one of " + ", ".join(repr(x) for x in values))
        return v

    return k_choice


# --- schema -------------------------------------------------------------------------


@dataclass(frozen=True)
class Opt:
    kind: Callable[[Any, Ctx], Any]
    default: Any = None
    doc: str = ""
    required: bool = False


@dataclass(frozen=True)
class Table:
    """A TOML table whose keys are known.  ``adapter`` makes it open to an adapter's options."""

    options: Mapping[str, Opt | Table | TableList]
    doc: str = ""
    #: a group name such as "distrib.channels": the table's ``type`` key names the
    #: adapter, whose class attribute ``options`` is validated as part of the table.
    adapter_group: str | None = None
    #: sub-tables not in ``options`` are validated by the caller (``[email.<mailer>]``).
    open_subtables: bool = False


@dataclass(frozen=True)
class TableList:
    """An array of tables (``[[sources]]``): each element validated against ``table``."""

    table: Table
    doc: str = ""


@dataclass
class Ctx:
    base_dir: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate_table(schema: Table, data: Any, path: str, ctx: Ctx) -> dict[str, Any]:
    if not isinstance(data, dict):
        ctx.problems.append(f"{path}: expected a table, got {_got(data)}")
        return {}
    options: dict[str, Opt | Table | TableList] = dict(schema.options)
    if schema.adapter_group and isinstance(data.get("type"), str):
        from . import registry

        try:
            cls = registry.load(schema.adapter_group, data["type"])
        except ConfigError as e:
            ctx.problems.append(f"{_join(path, 'type')}: {e.problems[0]}")
        except AdapterUnavailable as e:
            ctx.problems.append(f"{_join(path, 'type')}: {e}")
        else:
            options.update(getattr(cls, "options", {}))
    out: dict[str, Any] = {}
    for key, spec in options.items():
        sub = _join(path, key)
        if key in data:
            out[key] = _validate_value(spec, data[key], sub, ctx)
        elif isinstance(spec, Opt):
            if spec.required:
                ctx.problems.append(f"{sub}: missing; {spec.doc or 'required'}")
            out[key] = spec.default
        elif isinstance(spec, Table):
            out[key] = validate_table(spec, {}, sub, ctx)
        else:
            out[key] = []
    for key in data:
        if schema.open_subtables and isinstance(data[key], dict):
            continue
        if key not in options:
            hint = _suggest(key, options) or (_elsewhere(key) if path else "")
            ctx.warnings.append(f"{_join(path, key)}: unknown key{hint}")
    return out


def _validate_value(spec: Opt | Table | TableList, value: Any, path: str, ctx: Ctx) -> Any:
    if isinstance(spec, Table):
        return validate_table(spec, value, path, ctx)
    if isinstance(spec, TableList):
        if not isinstance(value, list):
            ctx.problems.append(f"{path}: expected an array of tables ([[...]]), got {_got(value)}")
            return []
        items = []
        for i, item in enumerate(value):
            label = f"{path}[{i}]"
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                label += f" ({item['name']})"
            items.append(validate_table(spec.table, item, label, ctx))
        return items
    try:
        return spec.kind(value, ctx)
    except Invalid as e:
        ctx.problems.append(f"{path}: expected {e}, got {_got(value)}")
        return spec.default


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(key: str, options: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _elsewhere(key: str) -> str:
    """A hint for a key put in the wrong section: "recipents" under [digest]."""
    import difflib

    for section, table in _root().options.items():
        if isinstance(table, Table):
            close = difflib.get_close_matches(key, list(table.options), n=1, cutoff=0.8)
            if close:
                return f" (did you mean {close[0]!r} in [{section}]?)"
    return ""


# --- the settings object ------------------------------------------------------------


class Section(Mapping[str, Any]):
    """Read-only view of a validated table: ``s.name`` or ``s["name"]``."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, Any], path: str = ""):
        self._data = data
        self._path = path

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key], _join(self._path, key))

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"{self._path or 'config'} has no option {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Section({self._path!r}, {self._data!r})"

    @property
    def where(self) -> str:
        """The dotted path of this table in the config ("email.smtp"), for messages.

        (Not ``path``: that is an option name, as in ``[ledger] path``.)"""
        return self._path


def _wrap(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return Section(value, path)
    if isinstance(value, list):
        return [_wrap(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


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
            return _wrap(self.data[key], key)
        except KeyError:
            raise AttributeError(f"config has no section {key!r}") from None

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
        "url": Opt(k_url, required=True, doc="the site's home page, such as 'https://example.org/'"),
        "language": Opt(k_str, "en", "BCP 47 language tag of the site, such as 'en', 'uk', 'ar'"),
        "direction": Opt(choice("auto", "ltr", "rtl"), "auto", "text direction; auto from language"),
        "timezone": Opt(k_timezone, "UTC", "the zone for dates and the cadence, such as 'Europe/Kyiv'"),
        "postal_address": Opt(k_str, "", "the sender's postal address, printed in every email footer"),
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
        k_positive, 10, "the most posts one edition shows in full; the rest of what is new goes below as title links"
    ),
    "overflow": Opt(
        choice("list", "skip"),
        "list",
        "new posts beyond max_posts: list (title links in the same edition) or skip (left out, counted)",
    ),
    "max_per_day": Opt(
        k_positive, 3, "per-post: the most emails a reader gets in 24 hours; a bigger burst is one digest"
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
    "size_budget_kb": Opt(k_positive, 90, "the most KB of HTML one message may have (Gmail clips at ~102)"),
    "include_tags": Opt(k_str_list, (), "only posts with one of these tags"),
    "exclude_tags": Opt(k_str_list, (), "never posts with one of these tags"),
    "include_categories": Opt(k_str_list, (), "only posts in one of these categories"),
    "exclude_categories": Opt(k_str_list, (), "never posts in one of these categories"),
    "include_authors": Opt(k_str_list, (), "only posts by one of these authors"),
    "exclude_authors": Opt(k_str_list, (), "never posts by one of these authors"),
    "sources": Opt(k_str_list, (), "only posts from these sources (by name); empty: all"),
    "backfill": Opt(k_count, None, "first run: take the newest N posts; unset: every post in the window"),
    "intro_file": Opt(k_path, None, "a Markdown file shown above the posts (the editor's note) while it exists"),
    "approval": Opt(
        k_bool, False, "render and store a due edition, send a test copy to email.editors, and send "
        "nothing until `distrib approve N`"
    ),
    "sponsor": Table(
        {
            "title": Opt(k_str, "", "the block's heading"),
            "text": Opt(k_str, "", "its text, Markdown"),
            "file": Opt(k_path, None, "a Markdown file with the text, instead of text"),
            "url": Opt(k_url, None, "where the block links"),
            "link_text": Opt(k_str, "", "the link's words under the text, such as 'Get tickets'"),
            "image": Opt(k_url, None, "an image shown in the block"),
            "label": Opt(k_str, "", "the mark above it; default 'Sponsored' in the site's language"),
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
            k_str, "", "the selector of the key: its public key is at <selector>._domainkey.<domain>"
        ),
        "key_file": Opt(k_path, None, "PEM file of the private key (RSA or Ed25519); `distrib dkim-keygen` makes one"),
        "key_env": Opt(k_env_name, None, "environment variable holding the PEM private key, instead of key_file"),
        "ed25519_selector": Opt(k_str, "", "a second, Ed25519 signature (RFC 8463) under this selector"),
        "ed25519_key_file": Opt(k_path, None, "PEM file of the Ed25519 private key"),
        "ed25519_key_env": Opt(k_env_name, None, "environment variable holding the Ed25519 PEM key"),
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
        "recipients_file": Opt(k_path, None, "a CSV file of recipients: a column 'email', optional 'name'"),
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
        "secret_env": Opt(k_env_name, None, "environment variable holding the key that signs unsubscribe tokens"),
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
        "type": Opt(k_str, required=True, doc="outbox, x, mastodon, bluesky or a registered channel"),
        "max_age": Opt(k_span, parse_duration("3d"), "posts older than this are never shared"),
        "max_per_run": Opt(k_positive, 5, "the most posts shared on this account in one run"),
        "hashtags": Opt(k_count, 3, "the most hashtags in one share post"),
        "template": Opt(k_str, None, "the share template (templates/share/NAME.j2); default: by type"),
        "utm": Opt(k_bool, True, "add utm_source/utm_medium/utm_campaign to links"),
        "per_hour": Opt(k_positive, None, "the most posts shared on this account in any hour"),
        "per_day": Opt(k_positive, None, "the most posts shared on this account in any 24 hours"),
        "min_gap": Opt(k_duration, None, "the least time between two share posts, such as '30m'"),
        "baseline": Opt(
            k_bool,
            True,
            "first run on this account: share nothing that exists now, only later posts (false: share every post within max_age)",
        ),
        "backfill": Opt(k_count, 0, "first run on this account: share the newest N posts that exist now anyway"),
    },
    adapter_group="distrib.channels",
)

LEDGER = Table({"path": Opt(k_path, None, "the SQLite ledger file; default distrib.sqlite beside the config")})

TEMPLATES = Table({"dir": Opt(k_dir, None, "a folder of templates that override the built-in ones")})

CHECK = Table(
    {
        "domain": Opt(
            k_bool, None, "check the sending domain's DNS (SPF, DKIM, DMARC, MX) in `distrib check`; "
            "default: when [email.dkim] is set"
        ),
        "nameservers": Opt(
            k_str_list, (), "DNS servers for those look-ups, such as ['9.9.9.9'] or ['127.0.0.1:5353']; "
            "default: the system's"
        ),
        "dns_timeout": Opt(k_number, 5.0, "seconds to wait for each DNS answer"),
    },
    doc="what `distrib check` looks at beyond the config",
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
    }
)

#: Extra root sections registered by other modules (theme, share, serve ...), so each
#: feature keeps its options next to its code.
EXTRA_SECTIONS: dict[str, Table] = {}


def register_section(name: str, table: Table) -> None:
    EXTRA_SECTIONS[name] = table


def _root() -> Table:
    return Table(dict(ROOT.options) | EXTRA_SECTIONS)


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
    from . import extensions  # noqa: F401  (registers the extra sections)

    p = find_config(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if not path and os.environ.get(ENV_VAR) and str(p) == os.environ[ENV_VAR]:
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
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError("the config file is not UTF-8 text", str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", str(p)) from None
    ctx = Ctx(base_dir=p.resolve().parent)
    out = validate_table(_root(), data, "", ctx)
    _check_cross(out, data, ctx)
    shares_only = "email" not in data and bool(out.get("channels"))
    if require_email or (require_email is None and not shares_only):
        if isinstance(out.get("email"), dict) and out["email"].get("from") is None and "from" not in (data.get("email") or {}):
            ctx.problems.append(f"email.from: missing; {EMAIL.options['from'].doc}")
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


def _check_cross(out: dict[str, Any], data: dict[str, Any], ctx: Ctx) -> None:
    """Rules that span several keys."""
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
    for group in ("sources", "channels", "newsletters"):
        seen: set[str] = set()
        for i, item in enumerate(out.get(group) or []):
            name = item.get("name")
            if name in seen:
                ctx.problems.append(f"{group}[{i}].name: {name!r} is used twice; names must be unique")
            seen.add(name)
    if "digest" in data and data.get("newsletters"):
        # Each [[newsletters]] table stands alone; a [digest] beside them would be
        # silently ignored, and the user surely expects it to be sent.
        ctx.problems.append(
            "digest: not used when [[newsletters]] tables are set; make it one of the "
            "[[newsletters]] (with a name) or remove it"
        )
    email_out = out.get("email") or {}
    unsub = email_out.get("unsubscribe_url")
    if isinstance(unsub, str) and unsub:
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
    if email_out.get("editors"):
        from .subscribers import recipient_problems as _problems

        ctx.problems.extend(p.replace("email.recipients", "email.editors") for p in _problems(email_out["editors"]))
    if email_out.get("recipients"):
        # Checked here too (not only when sending) so that they come with the rest.
        from .subscribers import recipient_problems

        ctx.problems.extend(recipient_problems(email_out["recipients"]))
    if "sources" in data and not out.get("sources"):
        ctx.problems.append("sources: expected at least one [[sources]] table, got none")
    elif "sources" not in data:
        ctx.problems.append("sources: missing; add a [[sources]] table with name, type and url or path")
    email = data.get("email") if isinstance(data.get("email"), dict) else {}
    mailer = email.get("mailer", "outbox")
    if isinstance(mailer, str):
        from . import registry

        for key, value in email.items():
            if isinstance(value, dict) and key not in EMAIL.options:
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
                    continue
                try:
                    cls = registry.load("distrib.mailers", key)
                except (ConfigError, AdapterUnavailable) as e:
                    if key == mailer:
                        ctx.problems.append(f"email.mailer: {e}")
                    continue
                out["email"][key] = validate_table(
                    Table(getattr(cls, "options", {})), value, f"email.{key}", ctx
                )
        if mailer not in email or not isinstance(email.get(mailer), dict):
            try:
                cls = registry.load("distrib.mailers", mailer)
            except ConfigError as e:
                ctx.problems.append(f"email.mailer: {e.problems[0]}")
            except AdapterUnavailable as e:
                ctx.problems.append(f"email.mailer: {e}")
            else:
                out["email"][mailer] = validate_table(
                    Table(getattr(cls, "options", {})), {}, f"email.{mailer}", ctx
                )


def mailer_settings(settings: Settings) -> Section:
    """The ``[email.<mailer>]`` table of the configured mailer."""
    email = settings.email
    return email[email.mailer]
