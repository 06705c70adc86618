"""Editions that come when they should, over many runs: the cadence as cron meets it.

The clock is injected (``distrib.ledger.now``, which every part of distrib reads) and
each run goes through the command line's own code path (``distrib run -q`` in
process), so what is tested is what cron runs.  The burst tests deliver over real SMTP
(aiosmtpd on 127.0.0.1) from real ``distrib`` processes on the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from distrib.cli import cli
from distrib.ledger import open_ledger

from .conftest import SmtpServer, run_distrib

DUBLIN = ZoneInfo("Europe/Dublin")


def write_feed(path: Path, posts: list[tuple[str, datetime]]) -> None:
    items = "".join(
        f"<item><title>Story {key}</title><link>https://site.example/{key}</link>"
        f"<guid>https://site.example/{key}</guid><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>Body of story {key}.</description></item>"
        for key, when in posts
    )
    path.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>'
        f"<link>https://site.example/</link>{items}</channel></rss>",
        encoding="utf-8",
    )


def cli_run(path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["run", "--config", str(path), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# --- scheduled cadences across the end of summer time ---------------------------------

# Summer time in Ireland ends on Sunday 2026-10-25 at 01:00 UTC (IST, UTC+1 -> GMT).
# The first run is at 06:00 UTC, the moment the first post appears (as in the report
# where every edition then went out at 06:00); the last at 12:00 UTC 16 days later.
START = datetime(2026, 10, 17, 6, 0, tzinfo=UTC)
HOURS = 16 * 24 + 6
NO_POST_ON = datetime(2026, 10, 28).date()  # a day with nothing new: its slot is passed


def daily_posts(upto: datetime) -> list[tuple[str, datetime]]:
    """One new post a day at 06:00 UTC from 2026-10-17, as the feed shows it at ``upto``."""
    out = []
    day = datetime(2026, 10, 17, 6, 0, tzinfo=UTC)
    while day <= upto:
        if day.date() != NO_POST_ON:
            out.append((day.strftime("%m%d"), day))
        day += timedelta(days=1)
    return out


def test_daily_weekly_monthly_over_16_days_across_the_end_of_summer_time(
    make_config, clock, tmp_path
):
    path = make_config(
        """
        [[newsletters]]
        name = "daily"
        cadence = "daily"
        time = "08:00"

        [[newsletters]]
        name = "weekly"
        cadence = "weekly"
        day = "monday"
        time = "08:00"

        [[newsletters]]
        name = "monthly"
        cadence = "monthly"
        day = "1"
        time = "08:00"
        window = "35d"
        """,
        sources='[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n',
        email='[email]\nmailer = "outbox"\nfrom = "n@test.example"\nrecipients = ["a@example.com"]\n'
        'unsubscribe_url = "https://test.example/u?t={token}"\n',
    )
    text = path.read_text().replace("[site]\n", '[site]\ntimezone = "Europe/Dublin"\n')
    path.write_text(text)
    feed = tmp_path / "feed.xml"
    for hour in range(HOURS + 1):  # an hourly cron
        clock[0] = START + timedelta(hours=hour)
        write_feed(feed, daily_posts(clock[0]))
        cli_run(path, "-q")
    with open_ledger(tmp_path / "distrib.sqlite") as ledger:
        sent = {
            name: [(e.created, e.post_keys) for e in ledger.editions(name)]
            for name in ("daily", "weekly", "monthly")
        }
    # daily: at the first run at or after 08:00 local, never when the post appears at
    # 06:00 UTC; 07:00 UTC in summer time, 08:00 UTC after it.
    for created, _ in sent["daily"]:
        local = created.astimezone(DUBLIN)
        assert (local.hour, local.minute) == (8, 0), created
    days = [created.date() for created, _ in sent["daily"]]
    # The first edition waited for the first slot (the run of Oct 17 06:00 sent nothing;
    # the slot was 08:00 IST = 07:00 UTC).  Oct 28 had nothing new: its slot was passed,
    # not carried to Oct 29's 06:00 post.
    expected = [datetime(2026, 10, 17) + timedelta(days=i) for i in range(17)]
    assert days == [d.date() for d in expected if d.date() != NO_POST_ON]
    assert [c.hour for c, _ in sent["daily"]][:8] == [7] * 8  # Oct 17-24, IST
    assert [c.hour for c, _ in sent["daily"]][8:] == [8] * 8  # from Oct 25, GMT
    assert all(len(keys) == 1 for _, keys in sent["daily"])  # each day's own post, once
    # weekly: Mondays 08:00 local across the change
    assert [c for c, _ in sent["weekly"]] == [
        datetime(2026, 10, 19, 7, 0, tzinfo=UTC),
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
    ]
    assert [len(k) for _, k in sent["weekly"]] == [
        3,
        7,
        6,
    ]  # every post once: 17-19, 20-26, 27-02 less the 28th
    # monthly: the 1st at 08:00 local (GMT by then), with the month's posts
    assert [c for c, _ in sent["monthly"]] == [datetime(2026, 11, 1, 8, 0, tzinfo=UTC)]
    assert len(sent["monthly"][0][1]) == 15


def test_force_sends_the_first_scheduled_edition_now(make_config, clock, tmp_path):
    path = make_config(
        '[digest]\ncadence = "daily"\ntime = "08:00"\n',
        sources='[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n',
    )
    clock[0] = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    write_feed(tmp_path / "feed.xml", [("a", clock[0] - timedelta(hours=1))])
    out = cli_run(path)
    assert (
        "the first edition goes at the first daily slot; the next slot is 2026-11-21 08:00 +0000"
        in out
    )
    assert "edition 1" in cli_run(path, "--force")


# --- per-run: everything new in one edition --------------------------------------------


def smtp_config(make_config, server: SmtpServer, digest: str) -> Path:
    return make_config(
        digest,
        sources='[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n',
        email=f"""
        [email]
        mailer = "smtp"
        from = "Test News <news@test.example>"
        recipients = ["ana@example.com", "bo@example.net", "chen@example.org"]
        unsubscribe_url = "https://test.example/unsubscribe?token={{token}}"
        [email.smtp]
        host = "{server.host}"
        port = {server.port}
        security = "none"
        """,
    )


def live_posts(n: int, prefix: str = "p") -> list[tuple[str, datetime]]:
    now = datetime.now(UTC)
    return [(f"{prefix}{i}", now - timedelta(minutes=10 + i)) for i in range(n)]


@pytest.mark.parametrize("command", ["run", "send"])
def test_twenty_posts_max_five_six_runs_then_three_more(
    make_config, smtp_server: SmtpServer, tmp_path, command
):
    path = smtp_config(make_config, smtp_server, "[digest]\nmax_posts = 5\n")
    old = live_posts(20)
    write_feed(tmp_path / "feed.xml", old)
    for _ in range(6):
        proc = run_distrib(command, "--config", str(path))
        assert proc.returncode == 0, proc.stderr
    by = smtp_server.by_recipient()
    assert sorted(by) == ["ana@example.com", "bo@example.net", "chen@example.org"]
    assert all(len(msgs) == 1 for msgs in by.values()), {k: len(v) for k, v in by.items()}
    html = by["ana@example.com"][0].message.get_body(("html",)).get_content()
    assert "More in this edition" in html
    for key, _ in old:  # all 20: five in full, fifteen as title links
        assert f"https://site.example/{key}" in html
    status = run_distrib("status", "--config", str(path)).stdout
    assert "20 posts: 5 in full, 15 listed" in status
    new = live_posts(3, prefix="n")
    write_feed(tmp_path / "feed.xml", old + new)
    for _ in range(2):
        assert run_distrib(command, "--config", str(path)).returncode == 0
    by = smtp_server.by_recipient()
    assert all(len(msgs) == 2 for msgs in by.values())
    second = by["ana@example.com"][1].message.get_body(("html",)).get_content()
    assert all(f"https://site.example/{k}" in second for k, _ in new)
    assert not any(f'https://site.example/{k}"' in second for k, _ in old)


def test_overflow_skip_counts_what_it_leaves_out(make_config, smtp_server: SmtpServer, tmp_path):
    path = smtp_config(make_config, smtp_server, '[digest]\nmax_posts = 5\noverflow = "skip"\n')
    old = live_posts(20)
    write_feed(tmp_path / "feed.xml", old)
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert '15 skipped (overflow = "skip")' in proc.stdout
    assert run_distrib("run", "--config", str(path)).returncode == 0
    by = smtp_server.by_recipient()
    assert all(len(msgs) == 1 for msgs in by.values())
    html = by["ana@example.com"][0].message.get_body(("html",)).get_content()
    assert "More in this edition" not in html
    assert sum(f'https://site.example/{k}"' in html for k, _ in old) == 5
    assert "20 posts: 5 in full, 15 skipped" in run_distrib("status", "--config", str(path)).stdout


# --- per-post: a burst is one digest ----------------------------------------------------


def test_per_post_burst_is_one_digest_and_max_per_day_caps_singles(
    make_config, smtp_server: SmtpServer, tmp_path
):
    path = smtp_config(make_config, smtp_server, '[digest]\ncadence = "per-post"\nmax_posts = 5\n')
    old = live_posts(20)
    write_feed(tmp_path / "feed.xml", old)
    for _ in range(2):
        assert run_distrib("run", "--config", str(path)).returncode == 0
    by = smtp_server.by_recipient()
    assert all(len(msgs) == 1 for msgs in by.values())  # not 12 then 8
    # Two more posts, one at a time: each its own email (3 in 24 hours, max_per_day 3)...
    posts = list(old)
    for i in range(2):
        posts.append((f"single{i}", datetime.now(UTC) - timedelta(minutes=1)))
        write_feed(tmp_path / "feed.xml", posts)
        assert run_distrib("run", "--config", str(path)).returncode == 0
    assert all(len(msgs) == 3 for msgs in smtp_server.by_recipient().values())
    # ...then the day's allowance is used: the next post waits, and says so.
    posts.append(("late", datetime.now(UTC) - timedelta(minutes=1)))
    write_feed(tmp_path / "feed.xml", posts)
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 0 and "max_per_day 3" in proc.stdout
    assert all(len(msgs) == 3 for msgs in smtp_server.by_recipient().values())
