"""Issue 10, "Links and order" and "Posts that are dropped": UTM links changed byte for
byte only by what is appended, titles that cannot be cut between words, the share order,
the first-run baseline, and ``min_gap`` under a cron clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from distrib.render.length import graphemes
from distrib.render.snippets import ELLIPSIS, add_utm
from distrib.share import run_shares
from tests.channels.conftest import make_post
from tests.conftest import FIXED_NOW

UTM = {"source": "x", "medium": "social", "campaign": "distrib"}
TAIL = "utm_source=x&utm_medium=social&utm_campaign=distrib"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://news.example/a?ref=a%20b", f"https://news.example/a?ref=a%20b&{TAIL}"),
        ("https://news.example/a?path=a%2Fb", f"https://news.example/a?path=a%2Fb&{TAIL}"),
        ("https://news.example/a?flag", f"https://news.example/a?flag&{TAIL}"),
        ("https://news.example/a?a=1;b=2", f"https://news.example/a?a=1;b=2&{TAIL}"),
        (
            "https://news.example/a?q=caf%C3%A9&x=%7E+1",
            f"https://news.example/a?q=caf%C3%A9&x=%7E+1&{TAIL}",
        ),
        ("https://news.example/a", f"https://news.example/a?{TAIL}"),
        ("https://news.example/a?", f"https://news.example/a?{TAIL}"),
        ("https://news.example/a?x=1&", f"https://news.example/a?x=1&{TAIL}"),
        ("https://news.example/a?x=1#part-2", f"https://news.example/a?x=1&{TAIL}#part-2"),
        (
            "https://news.example/a#frag?not-a-query",
            f"https://news.example/a?{TAIL}#frag?not-a-query",
        ),
        ("https://news.example/Caf%C3%A9/", f"https://news.example/Caf%C3%A9/?{TAIL}"),
    ],
)
def test_utm_parameters_are_appended_and_nothing_else_changes(url, expected):
    assert add_utm(url, **UTM) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://news.example/a?utm_source=newsletter",
            "https://news.example/a?utm_source=newsletter&utm_medium=social&utm_campaign=distrib",
        ),
        (
            "https://news.example/a?x=1&utm_campaign=spring%20sale",
            "https://news.example/a?x=1&utm_campaign=spring%20sale&utm_source=x&utm_medium=social",
        ),
        (
            "https://news.example/a?UTM_Medium=email;y=2&utm_source=a+b&utm_campaign=c",
            "https://news.example/a?UTM_Medium=email;y=2&utm_source=a+b&utm_campaign=c",
        ),
    ],
)
def test_a_link_with_its_own_utm_keeps_it(url, expected):
    assert add_utm(url, **UTM) == expected


def test_the_share_link_is_the_posts_url_plus_utm(env):
    _, [channel] = env.channels({"name": "preview", "type": "outbox"})
    post = make_post(1, url="https://news.example/search?ref=a%20b&path=a%2Fb&flag")
    snippet = channel.compose(post)
    assert snippet.link == (
        "https://news.example/search?ref=a%20b&path=a%2Fb&flag"
        "&utm_source=outbox&utm_medium=social&utm_campaign=distrib"
    )
    assert snippet.link in snippet.text


# --- titles that have no word boundary ----------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Donaudampfschifffahrtsgesellschaftskapitän" * 12,  # one long word
        "🏳️‍🌈" * 150,  # only emoji, each a ZWJ sequence of four code points
        "🇺🇦🇬🇭" * 80,  # flags: pairs of regional indicators
        "👩🏽‍🚒" * 200,
    ],
    ids=["one-long-word", "zwj-flags", "regional-flags", "skin-tone-zwj"],
)
def test_a_title_without_word_boundaries_is_cut_between_graphemes(env, title):
    _, [outbox, x] = env.channels(
        {"name": "preview", "type": "outbox", "limit": 120},
        {
            "name": "x-main",
            "type": "x",
            "consumer_key_env": "K",
            "consumer_secret_env": "S",
            "access_token_env": "T",
            "access_token_secret_env": "U",
        },
    )
    post = make_post(1, title=title, summary="", tags=(), categories=())
    whole = graphemes(title)
    for channel in (outbox, x):
        snippet = channel.compose(post)  # before: "cannot fit", never shared
        assert snippet.length <= snippet.limit
        first_line = snippet.text.split("\n")[0]
        assert first_line.endswith(ELLIPSIS)
        cut = graphemes(first_line[: -len(ELLIPSIS)])
        assert cut and cut == whole[: len(cut)]  # whole graphemes, from the start
        assert snippet.text.rstrip().endswith(snippet.link)  # the link is never cut
        assert snippet.link.startswith(post.url + "?utm_source=")


# --- order and the first run ---------------------------------------------------------


def test_newest_first_so_todays_story_does_not_wait_behind_older_ones(env):
    posts = [make_post(n, age=timedelta(hours=n)) for n in range(1, 9)]  # 1 is the newest
    ctx, channels = env.channels({"name": "preview", "type": "outbox", "max_per_run": 3})
    report = run_shares(ctx, channels, list(reversed(posts)), dry_run=False)
    assert [i.post_key for i in report.sent] == [posts[0].key, posts[1].key, posts[2].key]


def test_first_run_takes_a_baseline_by_default_and_dry_run_says_why(env, clock):
    env.baseline = None  # the default
    existing = [make_post(n, age=timedelta(hours=n)) for n in range(1, 4)]
    env.ledger.record_posts(existing)
    ctx, channels = env.channels({"name": "preview", "type": "outbox"}, dry_run=True)
    report = run_shares(ctx, channels, existing, dry_run=True)
    assert report.planned == []
    [line] = report.summary_lines(dry_run=True)
    assert line.startswith("shares: preview: would post 0 ")
    assert "held back: 3 there before the channel's first run (set backfill = N" in line
    assert env.ledger.baseline("channel:preview") is None  # a dry run records nothing

    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    assert run_shares(ctx, channels, existing, dry_run=False).sent == []

    clock[0] += timedelta(minutes=10)
    fresh = make_post(9, age=timedelta(minutes=2))
    env.ledger.record_posts([fresh])
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    ctx.now = clock[0]
    report = run_shares(ctx, channels, [fresh, *existing], dry_run=False)
    assert [i.post_key for i in report.sent] == [fresh.key]


def test_backfill_shares_the_newest_n_of_what_exists_even_across_runs(env, clock):
    env.baseline = None
    existing = [make_post(n, age=timedelta(hours=n)) for n in range(1, 6)]
    env.ledger.record_posts(existing)
    raw = {"name": "preview", "type": "outbox", "backfill": 3, "max_per_run": 2}
    ctx, channels = env.channels(raw)
    report = run_shares(ctx, channels, existing, dry_run=False)
    assert [i.post_key for i in report.sent] == [existing[0].key, existing[1].key]
    clock[0] += timedelta(minutes=10)
    ctx, channels = env.channels(raw)
    ctx.now = clock[0]
    report = run_shares(ctx, channels, existing, dry_run=False)
    assert [i.post_key for i in report.sent] == [
        existing[2].key
    ]  # the third of the backfill, no more


def test_dry_run_names_the_limit_that_holds_posts_back(env):
    posts = [make_post(n, age=timedelta(hours=n)) for n in range(1, 5)]
    ctx, channels = env.channels(
        {"name": "preview", "type": "outbox", "max_per_run": 1}, dry_run=True
    )
    report = run_shares(ctx, channels, posts, dry_run=True)
    [line] = report.summary_lines(dry_run=True)
    assert line.startswith("shares: preview: would post 1 ")
    assert "held back: 3 waiting for the channel's limits (max_per_run 1)" in line


# --- min_gap under cron ----------------------------------------------------------------


def test_min_gap_is_measured_from_the_runs_start(env, clock):
    """min_gap = 30m with a run every 10 minutes: shares at 09:00, 09:30, 10:00, 10:30,
    11:00, though each is recorded a moment after its run started (20 s here)."""
    start = FIXED_NOW.replace(hour=9, minute=0)
    posts = [make_post(n, age=timedelta(minutes=n)) for n in range(1, 30)]
    shared_at = []
    for run in range(13):  # 09:00 ... 11:00
        when = start + timedelta(minutes=10 * run)
        clock[0] = when + timedelta(seconds=20)  # the ledger records a moment later
        ctx, channels = env.channels(
            {"name": "preview", "type": "outbox", "min_gap": "30m", "max_age": "7d"}
        )
        ctx.now = when
        if run_shares(ctx, channels, posts, dry_run=False).sent:
            shared_at.append(when.strftime("%H:%M"))
    assert shared_at == ["09:00", "09:30", "10:00", "10:30", "11:00"]


def test_share_dry_run_on_a_first_run_says_what_is_held_back_and_why(make_config, tmp_path):
    from tests.conftest import run_distrib

    path = make_config('[[channels]]\nname = "out"\ntype = "outbox"\n')
    proc = run_distrib("share", "--dry-run", "--config", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("shares: out:")]
    assert line.startswith("shares: out: would post 0 ")
    assert "there before the channel's first run (set backfill = N to share the newest N)" in line
    real = run_distrib("share", "--config", str(path), cwd=tmp_path)
    assert real.returncode == 0 and not list((tmp_path / "outbox" / "shares").glob("*.json"))


def test_the_baseline_covers_posts_recorded_a_moment_after_the_run_started(env, clock):
    """The run's clock is read at its start; the fetch records the posts a second or two
    later.  They were there at the first run all the same: none is shared."""
    env.baseline = None
    existing = [make_post(n, age=timedelta(hours=n)) for n in range(1, 4)]
    clock[0] = FIXED_NOW + timedelta(seconds=2)  # the ledger's clock when the fetch records
    env.ledger.record_posts(existing)
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    assert ctx.now == FIXED_NOW
    assert run_shares(ctx, channels, existing, dry_run=False).sent == []
