"""Dates as real feeds write them: RFC 822 and RFC 3339, and the ways they go wrong.

Handled: named zones beyond RFC 822's list (CEST, EEST, MSK, JST ...), localised month
and weekday names (fr, de, es, it, pt, nl, uk, ru, pl), a missing weekday or a wrong
one, a date without a time or a zone (taken as UTC).  Impossible values (31 February,
25:00) give None, never a guess: the app then uses the time the post was first seen.
Contains no business logic.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

#: Zones feeds write by name; RFC 822 only defines the US ones and UT/GMT/Z.
NAMED_ZONES = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "IST": 330,
    "CET": 60, "CEST": 120, "MET": 60, "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180,
    "EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360,
    "PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600,
    "JST": 540, "KST": 540, "HKT": 480, "SGT": 480, "AWST": 480, "ACST": 570,
    "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "WIB": 420, "PKT": 300,
}  # fmt: skip

_MONTHS = {
    1: "janvier janv jänner januar januari enero ene gennaio genn janeiro jan januari "
    "січня січень января январь stycznia styczeń",
    2: "février févr fevrier februar februari febrero feb febbraio fevereiro fev "
    "лютого лютий февраля февраль lutego luty",
    3: "mars märz maerz marzo mar março marco maart березня березень марта март marca marzec",
    4: "avril avr april abril abr aprile apr квітня квітень апреля апрель kwietnia kwiecień",
    5: "mai mayo maggio mag maio mei травня травень мая май maja maj",
    6: "juin juni junio jun giugno giu junho червня червень июня июнь czerwca czerwiec",
    7: "juillet juil juli julio jul luglio lug julho липня липень июля июль lipca lipiec",
    8: "août aout august agosto ago augustus серпня серпень августа август sierpnia sierpień",
    9: "septembre sept september septiembre sep settembre set setembro вересня вересень "
    "сентября сентябрь września wrzesień",
    10: "octobre oct oktober octubre ottobre ott outubro out жовтня жовтень октября октябрь "
    "października październik",
    11: "novembre nov november noviembre novembro листопада листопад ноября ноябрь "
    "listopada listopad",
    12: "décembre déc decembre dezember dezembro diciembre dic dicembre dez december "
    "грудня грудень декабря декабрь grudnia grudzień",
}
_EN = ["", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTH_WORDS = {w: _EN[n] for n, words in _MONTHS.items() for w in words.split()}
_WEEKDAY_RE = re.compile(r"^\s*[^\W\d_]{2,}\.?,?\s+(?=\d)", re.UNICODE)
_ZONE_RE = re.compile(r"\s\(?([A-Za-z]{1,5})\)?\s*$")
_WORD_RE = re.compile(r"[^\W\d_]+\.?", re.UNICODE)


def parse_date(raw: str | None) -> datetime | None:
    """An aware UTC datetime from a feed's date text, or None when it has no usable date."""
    if not raw or not isinstance(raw, str):
        return None
    text = " ".join(raw.split())
    if not text:
        return None
    iso = _iso(text)
    if iso is not None:
        return iso
    text = _WEEKDAY_RE.sub("", text)  # a wrong or localised weekday must not fail the date
    text = re.sub(r"\s(?:de|del)\s", " ", text)  # "11 de mayo de 2026"
    text = _WORD_RE.sub(_english_month, text)
    offset: int | None = None
    m = _ZONE_RE.search(text)
    if m and m.group(1).upper() in NAMED_ZONES:
        offset = NAMED_ZONES[m.group(1).upper()]
        text = text[: m.start()]
    try:
        dt = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return _day_first(text, offset)
    if dt is None:
        return None
    if offset is not None:
        dt = dt.replace(tzinfo=timezone(timedelta(minutes=offset)))
    elif dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _sane(dt.astimezone(UTC))


def _english_month(m: re.Match[str]) -> str:
    word = m.group(0)
    return _MONTH_WORDS.get(word.rstrip(".").lower(), word)


def _iso(text: str) -> datetime | None:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return None
    candidate = text.replace(" ", "T", 1) if re.match(r"^\d{4}-\d{2}-\d{2} \d", text) else text
    candidate = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", candidate)
    try:
        dt = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _sane(dt.astimezone(UTC))


_DMY_RE = re.compile(r"^(\d{1,2})[./](\d{1,2})[./](\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _day_first(text: str, offset: int | None) -> datetime | None:
    """``11.05.2026 10:00`` (day first, as most of the world writes it)."""
    m = _DMY_RE.match(text.strip())
    if not m:
        return None
    day, month, year, hh, mm, ss = m.groups()
    tz = timezone(timedelta(minutes=offset or 0))
    try:
        dt = datetime(
            int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=tz
        )
    except ValueError:
        return None
    return _sane(dt.astimezone(UTC))


def _sane(dt: datetime) -> datetime | None:
    # Year 1 or 9999 is a placeholder, not a date.
    if dt.year < 1995 or dt.year > 2200:
        return None
    return dt
