"""When a newsletter's next edition is due.

``distrib run`` is started by a frequent cron (every 15 minutes, say); each run asks
:func:`is_due`.  A scheduled newsletter (daily, weekly, monthly) is due when the most
recent scheduled instant at or before now is later than the last edition it created:
so a run that was missed (machine off at 08:00) still sends at the next run, and
runs after the edition went out do not send again until the next instant.

Scheduled instants are wall-clock times in the site's time zone; across a daylight
saving change "08:00" stays 08:00 local.  A time that does not exist that day (inside
the spring-forward gap) falls to the same wall time read with the offset before the
gap, as :mod:`zoneinfo` does (PEP 495, fold=0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ConfigError
from .schema import Section

ALWAYS = ("per-run", "per-post")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _where(newsletter: Mapping[str, Any], key: str) -> str:
    base = (newsletter.where if isinstance(newsletter, Section) else "") or (
        f"newsletters ({newsletter['name']})" if newsletter.get("name") else "digest"
    )
    return f"{base}.{key}"


def _at(newsletter: Mapping[str, Any]) -> time:
    value = str(newsletter.get("time") or "08:00").strip()
    m = _TIME_RE.match(value)
    if not m:
        raise ConfigError(
            f"{_where(newsletter, 'time')}: expected a local time HH:MM such as '08:00', got {value!r}"
        )
    return time(int(m.group(1)), int(m.group(2)))


def _weekday(newsletter: Mapping[str, Any]) -> int:
    value = str(newsletter.get("day") or "monday").strip().lower()
    for i, name in enumerate(DAYS):
        if value in (name, name[:3]):
            return i
    raise ConfigError(
        f"{_where(newsletter, 'day')}: expected a day of the week such as 'monday' for a weekly cadence, got {value!r}"
    )


def _monthday(newsletter: Mapping[str, Any]) -> int | str:
    """A day of the month (1-28), or a weekday name meaning the month's first such day."""
    value = str(newsletter.get("day") or "1").strip().lower()
    if value.isdigit() and 1 <= int(value) <= 28:
        return int(value)
    for name in DAYS:
        if value in (name, name[:3]):
            return name
    # 29-31 do not exist in every month; refusing them beats silently skipping February.
    raise ConfigError(
        f"{_where(newsletter, 'day')}: expected a day of the month from 1 to 28 (or a weekday "
        f"such as 'monday' for the month's first one) for a monthly cadence, got {value!r}"
    )


def _day_in_month(month: date, day: int | str) -> date:
    if isinstance(day, int):
        return month.replace(day=day)
    first = month.replace(day=1)
    return first + timedelta(days=(DAYS.index(day) - first.weekday()) % 7)


def check(newsletter: Mapping[str, Any]) -> list[str]:
    """The problems with a newsletter's cadence options, for `distrib check`."""
    cadence = newsletter.get("cadence") or "per-run"
    problems: list[str] = []
    checks: list[Callable[[Mapping[str, Any]], object]] = (
        [_at] if cadence in ("daily", "weekly", "monthly") else []
    )
    if cadence == "weekly":
        checks.append(_weekday)
    elif cadence == "monthly":
        checks.append(_monthday)
    for fn in checks:
        try:
            fn(newsletter)
        except ConfigError as e:
            problems.extend(e.problems)
    return problems


def _local(d: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(d, at, tzinfo=zone)


def _month_add(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    return d.replace(year=d.year + y, month=m + 1)


def last_scheduled(newsletter: Mapping[str, Any], tz: str, now: datetime) -> datetime | None:
    """The most recent scheduled instant at or before ``now`` (None: not a scheduled cadence)."""
    cadence = newsletter.get("cadence") or "per-run"
    if cadence in ALWAYS:
        return None
    zone = ZoneInfo(tz)
    at = _at(newsletter)
    today = now.astimezone(zone).date()
    step: Callable[[date], date]
    if cadence == "daily":
        candidate = _local(today, at, zone)
        step = lambda d: d - timedelta(days=1)  # noqa: E731
    elif cadence == "weekly":
        day = today - timedelta(days=(today.weekday() - _weekday(newsletter)) % 7)
        candidate = _local(day, at, zone)
        step = lambda d: d - timedelta(days=7)  # noqa: E731
    elif cadence == "monthly":
        day_of = _monthday(newsletter)
        candidate = _local(_day_in_month(today, day_of), at, zone)
        step = lambda d: _day_in_month(_month_add(d.replace(day=1), -1), day_of)  # noqa: E731
    else:
        raise ConfigError(f"{_where(newsletter, 'cadence')}: unknown cadence {cadence!r}")
    if candidate > now:
        candidate = _local(step(candidate.date()), at, zone)
    return candidate


def next_scheduled(newsletter: Mapping[str, Any], tz: str, now: datetime) -> datetime | None:
    """The first scheduled instant strictly after ``now``."""
    cadence = newsletter.get("cadence") or "per-run"
    last = last_scheduled(newsletter, tz, now)
    if last is None:
        return None
    zone = ZoneInfo(tz)
    at = _at(newsletter)
    if cadence == "daily":
        d = last.date() + timedelta(days=1)
    elif cadence == "weekly":
        d = last.date() + timedelta(days=7)
    else:
        d = _day_in_month(_month_add(last.date().replace(day=1), 1), _monthday(newsletter))
    return _local(d, at, zone)


def is_due(
    newsletter: Mapping[str, Any], tz: str, last_created: datetime | None, now: datetime
) -> bool:
    """Whether an edition of ``newsletter`` is due at ``now``.

    per-run and per-post: always (the selection decides whether there is anything new).
    daily, weekly, monthly: when the latest scheduled instant <= now is later than the
    last edition's creation time (or there was none).
    """
    instant = last_scheduled(newsletter, tz, now)
    if instant is None:
        return True
    return last_created is None or last_created < instant


def next_due(
    newsletter: Mapping[str, Any], tz: str, last_created: datetime | None, now: datetime
) -> datetime | None:
    """When the next edition is due: the owed instant if one is due now, else the next
    scheduled one; None for per-run and per-post (due whenever there is something new)."""
    instant = last_scheduled(newsletter, tz, now)
    if instant is None:
        return None
    if last_created is None or last_created < instant:
        return instant
    return next_scheduled(newsletter, tz, now)
