"""The core object over a real ledger and a feed file we control: selection modes,
cadence, several newsletters, resumption, and the rules a bulk send must keep."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from distrib.app import make_app
from distrib.errors import ConfigError

from .conftest import FIXED_NOW, run_distrib


def write_feed(path: Path, posts: list[tuple[int, float, str]], now=FIXED_NOW) -> Path:
    """posts: (number, hours before ``now``, tag)."""
    items = "".join(
        f"""<item><title>Story {n}</title><link>https://site.example/{n}</link>
        <guid>https://site.example/{n}</guid><category>{tag}</category>
        <pubDate>{format_datetime(now - timedelta(hours=h))}</pubDate>
        <description>Body of story {n}.</description></item>"""
        for n, h, tag in posts
    )
    path.write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>'
        f"<link>https://site.example/</link>{items}</channel></rss>",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    return write_feed(tmp_path / "feed.xml", [(1, 5, "news"), (2, 3, "sport"), (3, 1, "news")])


@pytest.fixture
def live_feed(tmp_path: Path) -> Path:
    """For tests that run distrib in a subprocess, on the real clock."""
    return write_feed(
        tmp_path / "feed.xml", [(1, 5, "news"), (2, 3, "sport")], now=datetime.now(UTC)
    )


def feed_config(make_config, extra: str = "") -> Path:
    return make_config(
        extra, sources='[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n'
    )


def run(path: Path, **kw):
    with make_app(path) as app:
        app.lock()
        return app.run(**kw)


def eml_count(tmp_path: Path) -> int:
    return len(list((tmp_path / "outbox").glob("*.eml")))


def test_baseline_first_run_sends_nothing_then_only_new_posts(make_config, feed, clock, tmp_path):
    path = feed_config(make_config, "[digest]\nbackfill = 0\n")
    result = run(path)
    assert not result.editions and "baseline" in result.skipped[0]
    clock[0] = FIXED_NOW + timedelta(hours=2)
    write_feed(feed, [(1, 5, "news"), (2, 3, "sport"), (3, 1, "news"), (4, -1, "news")])
    result = run(path)
    assert [e.edition.post_keys for e in result.editions] == [("https://site.example/4",)]


def test_backfill_takes_the_newest_n_on_the_first_run_only(make_config, feed, clock):
    path = feed_config(make_config, "[digest]\nbackfill = 1\n")
    first = run(path)
    assert first.editions[0].edition.post_keys == ("https://site.example/3",)
    clock[0] = FIXED_NOW + timedelta(minutes=5)
    # The older posts the backfill left out were there at the first edition: they never
    # form an edition of older news by themselves (they used to, in the next run).
    second = run(path)
    assert not second.editions and "nothing new" in second.skipped[0]
    clock[0] = FIXED_NOW + timedelta(hours=2)
    write_feed(feed, [(1, 5, "news"), (2, 3, "sport"), (3, 1, "news"), (4, -1, "news")])
    third = run(path)
    assert [e.edition.post_keys for e in third.editions] == [("https://site.example/4",)]


def test_edited_post_is_not_new(make_config, feed, clock):
    path = feed_config(make_config)
    assert len(run(path).editions) == 1
    text = feed.read_text().replace("Body of story 3.", "Body of story 3, corrected.")
    feed.write_text(text)
    result = run(path)
    assert not result.editions and "nothing new" in result.skipped[0]


def test_two_newsletters_keep_their_own_history(make_config, feed, clock, tmp_path):
    path = feed_config(
        make_config,
        """
        [[newsletters]]
        name = "sport"
        include_tags = ["sport"]
        subject = "Sport: {{ posts[0].title }}"

        [[newsletters]]
        name = "all"
        """,
    )
    result = run(path)
    by_name = {r.newsletter: r.edition for r in result.editions}
    assert by_name["sport"].post_keys == ("https://site.example/2",)
    assert by_name["sport"].subject == "Sport: Story 2"
    assert len(by_name["all"].post_keys) == 3
    assert eml_count(tmp_path) == 4  # 2 recipients x 2 newsletters
    assert not run(path).editions


def test_a_reader_who_left_one_newsletter_still_gets_the_other(make_config, feed, clock, tmp_path):
    # What a "sport" unsubscribe link does (tests/serve/test_tokens.py): an opt-out of
    # that newsletter alone; the dry run counts each newsletter's own readers.
    path = feed_config(
        make_config,
        '[[newsletters]]\nname = "sport"\ninclude_tags = ["sport"]\n\n[[newsletters]]\nname = "all"\n',
    )
    with make_app(path) as app:
        app.ledger.opt_out("a@example.com", "sport", "one-click")
        assert [r.email for r in app.recipients("sport")] == ["b@example.com"]
        assert [r.email for r in app.recipients("all")] == ["a@example.com", "b@example.com"]
    from click.testing import CliRunner

    from distrib.cli import cli

    dry = CliRunner().invoke(cli, ["send", "--dry-run", "--config", str(path)])
    assert dry.exit_code == 0, dry.output
    lines = {
        line.split(":", 1)[0]: line for line in dry.output.splitlines() if "would send" in line
    }
    assert "for 1 recipient," in lines["sport"] and "for 2 recipients," in lines["all"]
    result = run(path)
    sent = {r.newsletter: r.report.sent for r in result.editions}
    assert sent == {"sport": 1, "all": 2}
    assert eml_count(tmp_path) == 3


def test_per_post_cadence_sends_one_edition_per_post_oldest_first(make_config, feed, clock):
    path = feed_config(make_config, '[digest]\ncadence = "per-post"\n')
    result = run(path)
    assert [r.edition.post_keys for r in result.editions] == [
        ("https://site.example/1",),
        ("https://site.example/2",),
        ("https://site.example/3",),
    ]


def test_weekly_cadence_waits_for_its_day_and_force_sends_now(make_config, feed, clock):
    # FIXED_NOW is Friday 2026-11-20 09:30 UTC
    path = feed_config(
        make_config, '[digest]\ncadence = "weekly"\nday = "friday"\ntime = "08:00"\n'
    )
    # The first edition waits for the first slot (it used to go at once, before any slot).
    first = run(path)
    assert not first.editions and "first weekly slot" in first.skipped[0]
    assert "2026-11-27 08:00 +0000" in first.skipped[0]
    with make_app(path) as app:
        assert len(app.send(force=True).editions) == 1
    clock[0] = FIXED_NOW + timedelta(days=1)
    write_feed(feed, [(5, 2, "news")])  # new post, but Saturday: not due
    write_feed(feed, [(5, -20, "news")])
    result = run(path)
    assert not result.editions and "not due" in result.skipped[0]
    with make_app(path) as app:
        assert len(app.send(force=True).editions) == 1
    clock[0] = FIXED_NOW + timedelta(days=7)
    assert not run(path).editions  # forced edition took the post: nothing new on Friday


def test_send_refuses_without_postal_address_or_unsubscribe(make_config, live_feed, tmp_path):
    path = make_config(
        sources='[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n',
        email='[email]\nfrom = "n@test.example"\nrecipients = ["a@example.com"]\n',
    )
    text = path.read_text().replace('postal_address = "1 Test Street, Testville"', "")
    path.write_text(text)
    with pytest.raises(ConfigError) as info, make_app(path) as app:
        app.send()
    assert len(info.value.problems) == 2
    proc = run_distrib("send", "--config", str(path))
    assert (
        proc.returncode == 2
        and "postal_address" in proc.stderr
        and "unsubscribe_url" in proc.stderr
    )
    assert eml_count(tmp_path) == 0


def test_status_and_report(make_config, live_feed, tmp_path):
    path = feed_config(make_config)
    report_file = tmp_path / "report.json"
    proc = run_distrib("send", "--config", str(path), "--report", str(report_file))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_file.read_text())
    assert report["sent"] == 2 and report["failed"] == 0 and report["editions"][0]["finished"]
    status = json.loads(run_distrib("status", "--json", "--config", str(path)).stdout)
    assert status[0]["sent"] == 2 and status[0]["status"] == "done"
    assert "edition 1 [digest]" in run_distrib("status", "--config", str(path)).stdout


def test_suppressed_addresses_are_not_sent_to(make_config, live_feed, tmp_path):
    path = feed_config(make_config)
    assert run_distrib("unsubscribe", "b@example.com", "--config", str(path)).returncode == 0
    assert run_distrib("send", "--config", str(path)).returncode == 0
    names = sorted(p.name for p in (tmp_path / "outbox").glob("*.eml"))
    assert len(names) == 1 and "a@example.com" in names[0]


class _Picky:
    """An SMTP handler that defers one address (451) until told otherwise and refuses
    another for good (550 5.1.1)."""

    def __init__(self):
        self.defer = {"later@example.com"}
        self.delivered: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.defer:
            return "451 4.7.1 Greylisted, try again later"
        if address == "gone@example.com":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.delivered.extend(envelope.rcpt_tos)
        return "250 OK"


def test_deferred_recipient_finishes_the_edition_in_a_later_run(make_config, feed, clock, tmp_path):
    from aiosmtpd.controller import Controller

    from .conftest import free_port

    handler = _Picky()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        path = make_config(
            "[digest]\nmax_posts = 2\n",
            sources='[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n',
            email=f"""
            [email]
            mailer = "smtp"
            from = "n@test.example"
            recipients = ["now@example.com", "later@example.com", "gone@example.com"]
            unsubscribe_url = "https://test.example/u?t={{token}}"
            [email.smtp]
            host = "127.0.0.1"
            port = {port}
            security = "none"
            retries = 0
            """,
        )
        first = run(path)
        rep = first.editions[0].report
        assert (rep.sent, rep.deferred, rep.failed, rep.finished) == (1, 1, 1, False)
        assert first.failed  # exit 1: a failure was recorded
        with make_app(path) as app:
            assert app.ledger.is_suppressed("gone@example.com")  # a hard bounce
        # the next run, too early: the deferred one waits, and the new post waits too
        write_feed(feed, [(1, 5, "news"), (2, 3, "sport"), (3, 1, "news"), (4, 0.5, "news")])
        clock[0] = FIXED_NOW + timedelta(minutes=1)
        second = run(path)
        assert [r.resumed for r in second.editions] == [True]
        assert second.editions[0].report.skipped == 2 and not second.editions[0].report.finished
        assert any("still being delivered" in s for s in second.skipped)
        handler.defer.clear()
        clock[0] = FIXED_NOW + timedelta(hours=1)
        third = run(path)
        # Finishing the resumed edition is this run's email: the new post waits for the
        # next run (it used to go out as edition 2 in the same minute).
        assert [(r.edition.id, r.resumed, r.report.sent) for r in third.editions] == [(1, True, 1)]
        assert len(third.editions[0].edition.post_keys) == 3  # max_posts 2 in full, one listed
        clock[0] = FIXED_NOW + timedelta(hours=1, minutes=15)
        fourth = run(path)
        assert [(r.edition.id, r.resumed, r.report.sent) for r in fourth.editions] == [
            (2, False, 2)
        ]
        assert fourth.editions[0].edition.post_keys == ("https://site.example/4",)
        assert sorted(handler.delivered) == sorted(
            ["now@example.com", "later@example.com", "now@example.com", "later@example.com"]
        )
    finally:
        controller.stop()


def test_a_post_without_a_date_gets_its_first_seen_time(make_config, tmp_path, clock):
    (tmp_path / "feed.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>S</title><link>https://site.example/</link>'
        "<item><title>Undated</title><link>https://site.example/u</link><description>x</description></item>"
        "<item><title>Bad date</title><link>https://site.example/b</link><pubDate>Blursday, 45 Smarch 2026</pubDate></item>"
        "</channel></rss>",
        encoding="utf-8",
    )
    path = feed_config(make_config)
    with make_app(path) as app:
        fetched = app.fetch()
    assert {p.key: p.published for p in fetched.posts} == {
        "https://site.example/u": FIXED_NOW,
        "https://site.example/b": FIXED_NOW,
    }
    clock[0] = FIXED_NOW + timedelta(days=2)
    with make_app(path) as app:
        later = app.fetch()  # the time first seen is kept, not today's
    assert all(p.published == FIXED_NOW for p in later.posts)


def test_preview_of_a_past_edition_and_the_archive(make_config, live_feed, tmp_path):
    path = feed_config(make_config, '[theme]\narchive_url = "https://site.example/letters/"\n')
    assert run_distrib("run", "--config", str(path)).returncode == 0
    proc = run_distrib(
        "preview", "--edition", "1", "--out", str(tmp_path / "pv"), "--config", str(path)
    )
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "pv" / "digest.html").read_text(encoding="utf-8")
    assert "https://site.example/letters/1/" in html  # "view in browser"
    assert (
        run_distrib("preview", "--edition", "9", "--config", str(path)).returncode == 2
    )  # usage: no such edition
    proc = run_distrib("archive", "--out", str(tmp_path / "site"), "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "site" / "1" / "index.html").read_text(encoding="utf-8")
    assert "Story 2" in page and "a@example.com" not in page
    assert (tmp_path / "site" / "index.html").exists()


def test_no_recipients_uses_no_posts_up(make_config, feed, clock, tmp_path):
    path = feed_config(make_config)
    for address in ("a@example.com", "b@example.com"):
        assert run_distrib("unsubscribe", address, "--config", str(path)).returncode == 0
    result = run(path)
    assert not result.editions and "no recipients" in result.skipped[-1]
    with make_app(path) as app:
        app.ledger.add_subscriber("new@example.com")
    result = run(path)  # the posts waited for a reader
    assert len(result.editions[0].edition.post_keys) == 3 and result.editions[0].report.sent == 1
