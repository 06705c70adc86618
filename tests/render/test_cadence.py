"""cadence: is_due / next_due for per-run, per-post, daily, weekly and monthly newsletters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from distrib.cadence import check, is_due, next_due
from distrib.errors import ConfigError

KYIV = "Europe/Kyiv"  # UTC+2 in winter, +3 in summer


def nl(cadence: str, **kw: str) -> dict[str, str]:
    return {"cadence": cadence, "time": "08:00", "day": "monday"} | kw


def kyiv(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(KYIV))


@pytest.mark.parametrize("cadence", ["per-run", "per-post"])
def test_unscheduled_cadences_are_always_due(cadence):
    now = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert is_due(nl(cadence), KYIV, None, now)
    assert is_due(nl(cadence), KYIV, now - timedelta(seconds=1), now)
    assert next_due(nl(cadence), KYIV, now, now) is None


def test_daily_is_due_once_after_the_local_time():
    daily = nl("daily")
    # 07:59 Kyiv: yesterday's 08:00 instant was already served by yesterday's edition.
    assert not is_due(daily, KYIV, kyiv(2026, 11, 27, 8, 5), kyiv(2026, 11, 28, 7, 59))
    # 08:00 Kyiv (06:00 UTC) on the day: due.
    assert is_due(daily, KYIV, kyiv(2026, 11, 27, 8, 5), kyiv(2026, 11, 28, 8, 0))
    assert is_due(daily, KYIV, kyiv(2026, 11, 27, 8, 5), datetime(2026, 11, 28, 6, 0, tzinfo=UTC))
    assert not is_due(
        daily, KYIV, kyiv(2026, 11, 27, 8, 5), datetime(2026, 11, 28, 5, 59, tzinfo=UTC)
    )
    # Once sent at 08:02, not again that day.
    assert not is_due(daily, KYIV, kyiv(2026, 11, 28, 8, 2), kyiv(2026, 11, 28, 23, 0))
    # A missed day (machine off) is caught up by the next run, once.
    assert is_due(daily, KYIV, kyiv(2026, 11, 25, 8, 1), kyiv(2026, 11, 28, 7, 0))
    # Never sent: due.
    assert is_due(daily, KYIV, None, kyiv(2026, 11, 28, 7, 0))


def test_daily_next_due():
    daily = nl("daily", time="18:30")
    assert next_due(daily, KYIV, kyiv(2026, 11, 28, 18, 31), kyiv(2026, 11, 28, 20, 0)) == kyiv(
        2026, 11, 29, 18, 30
    )
    # Due now: the owed instant.
    assert next_due(daily, KYIV, kyiv(2026, 11, 27, 18, 31), kyiv(2026, 11, 28, 20, 0)) == kyiv(
        2026, 11, 28, 18, 30
    )


def test_weekly_on_the_named_day():
    weekly = nl("weekly", day="friday", time="17:00")
    # 2026-11-27 is a Friday.
    assert kyiv(2026, 11, 27).weekday() == 4
    last = kyiv(2026, 11, 20, 17, 1)
    assert not is_due(weekly, KYIV, last, kyiv(2026, 11, 27, 16, 59))
    assert is_due(weekly, KYIV, last, kyiv(2026, 11, 27, 17, 0))
    assert is_due(weekly, KYIV, last, kyiv(2026, 11, 30, 9, 0))  # missed Friday: Monday's run sends
    assert not is_due(weekly, KYIV, kyiv(2026, 11, 27, 17, 1), kyiv(2026, 12, 4, 16, 0))
    assert next_due(weekly, KYIV, kyiv(2026, 11, 27, 17, 1), kyiv(2026, 11, 28, 9, 0)) == kyiv(
        2026, 12, 4, 17, 0
    )
    assert is_due(nl("weekly", day="fri", time="17:00"), KYIV, last, kyiv(2026, 11, 27, 17, 0))


def test_monthly_on_the_day_of_month_across_the_year_end():
    monthly = nl("monthly", day="1", time="09:00")
    last = kyiv(2026, 12, 1, 9, 0, 30)
    assert not is_due(monthly, KYIV, last, kyiv(2026, 12, 31, 23, 59))
    assert is_due(monthly, KYIV, last, kyiv(2027, 1, 1, 9, 0))
    assert next_due(monthly, KYIV, last, kyiv(2026, 12, 15)) == kyiv(2027, 1, 1, 9, 0)
    # Before the day this month: the previous month's instant counts.
    assert is_due(monthly, KYIV, kyiv(2026, 10, 1, 9, 1), kyiv(2026, 11, 20, 12, 0))


def test_monthly_on_a_weekday_means_its_first_one_in_the_month():
    monthly = nl("monthly", day="monday", time="08:00")  # "monday" is the config default
    # First Mondays: 2026-11-02, 2026-12-07.
    assert not is_due(monthly, KYIV, kyiv(2026, 11, 2, 8, 1), kyiv(2026, 12, 6, 23, 0))
    assert is_due(monthly, KYIV, kyiv(2026, 11, 2, 8, 1), kyiv(2026, 12, 7, 8, 0))
    assert next_due(monthly, KYIV, kyiv(2026, 11, 2, 8, 1), kyiv(2026, 11, 20)) == kyiv(
        2026, 12, 7, 8, 0
    )
    assert next_due(monthly, KYIV, kyiv(2026, 12, 7, 8, 1), kyiv(2026, 12, 20)) == kyiv(
        2027, 1, 4, 8, 0
    )


def test_local_time_holds_across_daylight_saving():
    daily = nl("daily")
    # Kyiv moves to UTC+3 on 2027-03-28: 08:00 local is 05:00 UTC from then on.
    last = kyiv(2027, 3, 27, 8, 1)
    assert not is_due(daily, KYIV, last, datetime(2027, 3, 28, 4, 59, tzinfo=UTC))
    assert is_due(daily, KYIV, last, datetime(2027, 3, 28, 5, 0, tzinfo=UTC))


def test_bad_day_and_time_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match=r"digest\.time: expected a local time HH:MM"):
        is_due(nl("daily", time="8am"), KYIV, None, kyiv(2026, 11, 28))
    with pytest.raises(ConfigError, match=r"digest\.day: expected a day of the week"):
        is_due(nl("weekly", day="someday"), KYIV, None, kyiv(2026, 11, 28))
    with pytest.raises(
        ConfigError, match=r"newsletters \(monthly\)\.day: expected a day of the month from 1 to 28"
    ):
        is_due(nl("monthly", day="31", name="monthly"), KYIV, None, kyiv(2026, 11, 28))
    assert check(nl("monthly", day="31", time="25:00")) == [
        "digest.time: expected a local time HH:MM such as '08:00', got '25:00'",
        "digest.day: expected a day of the month from 1 to 28 (or a weekday such as 'monday' "
        "for the month's first one) for a monthly cadence, got '31'",
    ]
    assert check(nl("per-run", day="whenever")) == []
    from distrib.config import Section

    with pytest.raises(ConfigError, match=r"^newsletters\[2\]\.time: "):
        is_due(Section(nl("daily", time="noon"), "newsletters[2]"), KYIV, None, kyiv(2026, 11, 28))
