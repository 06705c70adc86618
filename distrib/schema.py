"""The config toolkit: option kinds, tables, validation and the read-only view of a table.

Every adapter declares its options with it (``options = {"url": Opt(k_url, ...)}``), and
:mod:`distrib.config` builds distrib's own schema from it.  The schema is declarative:
each option is an :class:`Opt` with a kind, a default and a line of documentation.
:func:`validate_table` walks a whole table and reports **every** problem at once, each
with its dotted path and "expected X, got Y"; unknown keys are warnings.

A leaf module: it imports nothing of distrib but the errors and the address rule, so
any module may import it without a cycle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .addresses import address_part, normalise_address
from .errors import AdapterUnavailable, ConfigError


class Invalid(ValueError):
    """Raised by a kind's converter; the message is the "expected ..." part; ``got``,
    when given, is shown instead of the value (which may hold a secret)."""

    def __init__(self, message: str, got: str | None = None):
        super().__init__(message)
        self.got = got


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
    """An address as the config writes it ('News <news@example.org>'); the address in it
    must pass :func:`distrib.addresses.normalise_address`, the rule every recipient passes."""
    if not isinstance(v, str):
        raise Invalid("an email address such as 'News <news@example.org>'")
    if "\r" in v or "\n" in v:
        raise Invalid("an email address on one line")
    try:
        normalise_address(address_part(v))
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


def choice(*values: str) -> Callable[[Any, Ctx], str]:
    def k_choice(v: Any, ctx: Ctx) -> str:
        if v not in values:
            raise Invalid("one of " + ", ".join(repr(x) for x in values))
        return str(v)

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
    """One validation: where relative paths start, and the problems and warnings found."""

    base_dir: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the options of the adapter a table's ``type`` names, as ``(group, name) -> options``,
    #: for a table with ``adapter_group`` (distrib.config passes ``registry.options``).
    adapter_options: Callable[[str, str], Mapping[str, Opt | Table | TableList]] | None = None
    #: the root table, for the hint "did you mean 'x' in [section]?" on a misplaced key.
    root: Table | None = None


def validate_table(schema: Table, data: Any, path: str, ctx: Ctx) -> dict[str, Any]:
    if not isinstance(data, dict):
        ctx.problems.append(f"{path}: expected a table, got {_got(data)}")
        return {}
    options: dict[str, Opt | Table | TableList] = dict(schema.options)
    if schema.adapter_group and isinstance(data.get("type"), str) and ctx.adapter_options:
        try:
            adapter_options = ctx.adapter_options(schema.adapter_group, data["type"])
        except ConfigError as e:
            ctx.problems.append(f"{_join(path, 'type')}: {e.problems[0]}")
        except AdapterUnavailable as e:
            ctx.problems.append(f"{_join(path, 'type')}: {e}")
        else:
            options.update(adapter_options)
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
            hint = _suggest(key, options) or (_elsewhere(key, ctx.root) if path else "")
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
        ctx.problems.append(f"{path}: expected {e}, got {e.got or _got(value)}")
        return spec.default


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(key: str, options: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _elsewhere(key: str, root: Table | None) -> str:
    """A hint for a key put in the wrong section: "recipents" under [digest]."""
    import difflib

    for section, table in (root.options if root else {}).items():
        if isinstance(table, Table):
            close = difflib.get_close_matches(key, list(table.options), n=1, cutoff=0.8)
            if close:
                return f" (did you mean {close[0]!r} in [{section}]?)"
    return ""


# --- the settings object ------------------------------------------------------------


class Section(Mapping[str, Any]):
    """Read-only view of a validated table: ``s.name`` or ``s["name"]``.

    A subclass types a known table for mypy: it annotates each option (``name: str``)
    without a value, so reads still go to the validated data and the default stays the
    one its :class:`Opt` declares; ``tables`` names the classes of its sub-tables.
    """

    __slots__ = ("_data", "_path")
    #: the view class of each sub-table (or array of tables) by key; others are Section
    tables: ClassVar[Mapping[str, type[Section]]] = {}

    def __init__(self, data: Mapping[str, Any], path: str = ""):
        self._data = data
        self._path = path

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key], _join(self._path, key), self.tables.get(key, Section))

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


def with_defaults(
    options: Mapping[str, Opt | Table | TableList], data: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``data`` with every option it lacks set to that option's declared default: an
    adapter given a partial table (built by hand, not validated) reads the same defaults
    as a validated one, declared once, in its :class:`Opt`."""
    out = {key: spec.default for key, spec in options.items() if isinstance(spec, Opt)}
    out.update(data or {})
    return out


def _wrap(value: Any, path: str, view: type[Section] | None = None) -> Any:
    if isinstance(value, dict):
        return (view or Section)(value, path)
    if isinstance(value, list):
        return [_wrap(v, f"{path}[{i}]", view) for i, v in enumerate(value)]
    return value
