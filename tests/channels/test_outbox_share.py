"""The outbox channel and the share loop (plan, claim, publish, mark) over a real ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from distrib.model import DeliveryStatus, Outcome
from distrib.share import plan_shares, run_shares, share_key
from tests.channels.conftest import make_post


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_outbox_writes_one_json_file_per_post_and_nothing_on_the_second_run(env, tmp_path):
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    posts = [make_post(1, age=timedelta(hours=5)), make_post(2, age=timedelta(hours=1))]

    report = run_shares(ctx, channels, posts, dry_run=False)

    folder = tmp_path / "outbox" / "shares"
    files = _files(folder)
    assert [i.post_key for i in report.sent] == [posts[1].key, posts[0].key]  # newest first
    assert len(files) == 2
    record = json.loads(files[0].read_text(encoding="utf-8"))
    assert record["channel"] == "preview"
    assert record["limit"] == 500
    assert record["length"] <= 500
    assert record["link"].startswith(
        posts[record["post"] == posts[1].key].url + "?utm_source=outbox"
    )
    assert record["text"].startswith("Harbour council votes")
    assert "#Ferries" in record["text"] or "#ferries" in record["text"]
    assert {f["type"] for f in record["facets"]} == {"link", "tag"}
    assert env.ledger.share_row(posts[0].key, "preview").status == "sent"
    assert report.summary_lines()[0].startswith("shares: preview: 2 posted to ")

    again = run_shares(
        ctx, env.channels({"name": "preview", "type": "outbox"})[1], posts, dry_run=False
    )
    assert again.sent == [] and again.failed == []
    assert len(_files(folder)) == 2
    assert again.summary_lines() == ["shares: nothing new to post"]


def test_dry_run_plans_without_writing_or_recording(env, tmp_path):
    ctx, channels = env.channels({"name": "preview", "type": "outbox"}, dry_run=True)
    post = make_post(1)
    report = run_shares(ctx, channels, [post], dry_run=True)
    assert [s.post_key for s in report.planned] == [post.key]
    out = report.planned[0].to_json()
    assert set(out) >= {"channel", "post", "text", "length", "limit"}
    assert _files(tmp_path / "outbox" / "shares") == []
    assert env.ledger.share_row(post.key, "preview") is None


def test_a_share_left_claimed_by_a_dead_run_is_reconciled_not_posted_twice(env, tmp_path):
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    post = make_post(1)
    [(channel, _, snippet)] = plan_shares(ctx, channels, [post])
    # The dead run: claimed and published, killed before the mark.
    assert env.ledger.claim_share(post.key, "preview", snippet.text)
    channel.publish(snippet, post, share_key(post.key, "preview"))

    report = run_shares(ctx, channels, [post], dry_run=False)

    assert len(report.sent) == 1
    assert len(_files(tmp_path / "outbox" / "shares")) == 1
    row = env.ledger.share_row(post.key, "preview")
    assert row.status == "sent" and row.attempts == 1  # reconciled, not claimed again


def test_a_share_claimed_but_never_published_is_published_with_the_same_text(env, tmp_path):
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    post = make_post(1)
    env.ledger.claim_share(
        post.key, "preview", "the text that was in flight https://news.example/posts/1"
    )
    report = run_shares(ctx, channels, [post], dry_run=False)
    [file] = _files(tmp_path / "outbox" / "shares")
    assert (
        json.loads(file.read_text())["text"]
        == "the text that was in flight https://news.example/posts/1"
    )
    assert report.sent[0].post_key == post.key
    assert env.ledger.share_row(post.key, "preview").attempts == 2


def test_limits_old_posts_and_order(env, tmp_path):
    posts = [make_post(n, age=timedelta(hours=10 - n)) for n in range(1, 6)]
    old = make_post(9, age=timedelta(days=4))
    ctx, channels = env.channels({"name": "preview", "type": "outbox", "max_per_run": 2})
    report = run_shares(ctx, channels, [*reversed(posts), old], dry_run=False)
    assert [i.post_key for i in report.sent] == [posts[4].key, posts[3].key]  # newest first
    assert len(report.skipped) == 3
    assert old.key not in {i.post_key for i in report.sent + report.skipped}

    # per_hour counts what went out in the last hour, across runs
    ctx, channels = env.channels(
        {"name": "preview", "type": "outbox", "max_per_run": 5, "per_hour": 3}
    )
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert [i.post_key for i in report.sent] == [posts[2].key]

    ctx, channels = env.channels({"name": "preview", "type": "outbox", "min_gap": "30m"})
    assert plan_shares(ctx, channels, posts) == []


def test_min_gap_allows_one_per_run(env):
    posts = [make_post(n) for n in range(1, 4)]
    ctx, channels = env.channels({"name": "preview", "type": "outbox", "min_gap": "30m"})
    assert len(plan_shares(ctx, channels, posts)) == 1


def test_baseline_channel_shares_only_later_posts(env, clock):
    before = make_post(1)
    ctx, channels = env.channels({"name": "preview", "type": "outbox", "baseline": True})
    env.ledger.record_posts([before])
    assert run_shares(ctx, channels, [before], dry_run=False).sent == []
    clock[0] = clock[0] + timedelta(minutes=5)
    later = make_post(2, age=timedelta(minutes=1))
    env.ledger.record_posts([later])
    report = run_shares(
        ctx,
        env.channels({"name": "preview", "type": "outbox", "baseline": True})[1],
        [before, later],
        dry_run=False,
    )
    assert [i.post_key for i in report.sent] == [later.key]


def test_one_failing_channel_does_not_stop_the_others(env, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    ctx, channels = env.channels(
        {"name": "broken", "type": "outbox", "dir": str(blocker / "sub")},
        {"name": "good", "type": "outbox"},
    )
    posts = [make_post(1), make_post(2)]
    report = run_shares(ctx, channels, posts, dry_run=False)
    # The folder is at fault, not the post: one error line, the share stays owed.
    assert [i.channel for i in report.deferred] == ["broken"]
    assert [i.channel for i in report.skipped] == ["broken"]
    assert len(report.errors) == 1 and "channel broken: cannot write" in report.errors[0]
    assert [i.channel for i in report.sent] == ["good", "good"]
    assert env.ledger.share_row(posts[0].key, "broken").status == DeliveryStatus.DEFERRED


def test_a_share_the_outbox_folder_refused_is_posted_once_the_folder_is_fixed(env, tmp_path, clock):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    post = make_post(1)
    ctx, channels = env.channels({"name": "o", "type": "outbox", "dir": str(blocker / "sub")})
    first = run_shares(ctx, channels, [post], dry_run=False)
    assert first.sent == [] and first.failed == [] and len(first.errors) == 1

    blocker.unlink()
    ctx, channels = env.channels({"name": "o", "type": "outbox", "dir": str(blocker / "sub")})
    clock[0] = ctx.now = clock[0] + timedelta(minutes=1)  # the next cron run
    second = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.post_key for i in second.sent] == [post.key]
    assert len(_files(blocker / "sub")) == 1
    assert env.ledger.share_row(post.key, "o").status == DeliveryStatus.SENT


def test_a_post_that_cannot_fit_is_an_error_naming_post_and_channel(env):
    ctx, channels = env.channels({"name": "tiny", "type": "outbox", "limit": 30})
    post = make_post(1)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert report.sent == []
    assert report.errors == [
        f"post {post.key} cannot fit channel tiny (138 > 30): shorten the title or use a shorter template"
    ]
    assert env.ledger.share_row(post.key, "tiny") is None  # nothing recorded: retried once fixed


def test_deferred_share_waits_for_its_time(env, clock):
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    post = make_post(1)
    env.ledger.claim_share(post.key, "preview", "x")
    env.ledger.mark_share(post.key, "preview", Outcome.deferred("rate limited", retry_after=600))
    assert plan_shares(ctx, channels, [post]) == []
    clock[0] = clock[0] + timedelta(minutes=11)
    ctx.now = clock[0]
    assert len(plan_shares(ctx, channels, [post])) == 1


def test_dry_run_does_not_take_the_channel_baseline(env):
    # The dry run decides as the first real run will (the post is held back by the
    # baseline) and says so, but records no baseline.
    ctx, channels = env.channels(
        {"name": "preview", "type": "outbox", "baseline": True}, dry_run=True
    )
    post = make_post(1)
    env.ledger.record_posts([post])
    report = run_shares(ctx, channels, [post], dry_run=True)
    assert report.planned == []
    assert [i.post_key for i in report.held] == [post.key]
    assert (
        "held back: 1 there before the channel's first run" in report.summary_lines(dry_run=True)[0]
    )
    assert env.ledger.baseline("channel:preview") is None


def test_in_flight_share_is_settled_even_if_the_template_no_longer_fits(env, tmp_path):
    post = make_post(1)
    env.ledger.claim_share(post.key, "tiny", "in flight https://news.example/posts/1")
    ctx, channels = env.channels({"name": "tiny", "type": "outbox", "limit": 10})
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert [i.text for i in report.sent] == ["in flight https://news.example/posts/1"]
    assert env.ledger.share_row(post.key, "tiny").status == DeliveryStatus.SENT


def test_a_post_dated_in_the_future_waits_for_its_time(env):
    ctx, channels = env.channels({"name": "preview", "type": "outbox"})
    scheduled = make_post(1, age=-timedelta(hours=2))
    assert plan_shares(ctx, channels, [scheduled]) == []


def test_a_channel_template_from_the_users_folder(env, tmp_path):
    from distrib.adapters import Context
    from distrib.registry import load

    user = tmp_path / "mytemplates" / "share"
    user.mkdir(parents=True)
    (user / "mine.j2").write_text("📰 {{ title | upper }} → {{ link }}\n", encoding="utf-8")
    settings = env.settings(
        [{"name": "preview", "type": "outbox", "template": "mine", "utm": False}]
    )
    settings.data["templates"] = {"dir": tmp_path / "mytemplates"}
    ctx = Context(settings=settings, now=env.context().now, ledger=env.ledger)
    channel = load("distrib.channels", "outbox")("preview", settings.channels[0], ctx)
    assert channel.template_names() == ["share/mine.j2"]
    snippet = channel.compose(make_post(1, title="Ferry & fares"))
    assert snippet.text == "📰 FERRY & FARES → https://news.example/posts/1"


def test_a_missing_template_is_a_one_line_template_error(env):
    import pytest

    from distrib.errors import TemplateError

    ctx, [channel] = env.channels({"name": "preview", "type": "outbox", "template": "nosuch"})
    with pytest.raises(TemplateError) as e:
        channel.compose(make_post(1))
    assert "share/nosuch.j2" in str(e.value) and "\n" not in str(e.value)
