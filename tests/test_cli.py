"""The command-line contract: help with examples, fast start, exit codes, dry runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from distrib.cli import cli

from .conftest import run_distrib


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if isinstance(cmd, click.Group):
            out += all_commands(cmd, prefix + name + " ")
    return out


@pytest.mark.parametrize(
    "name,cmd", all_commands(cli), ids=lambda x: x if isinstance(x, str) else ""
)
def test_every_command_has_an_example_and_documented_options(name: str, cmd: click.Command):
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, f"`distrib {name} --help` has no example"
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, f"distrib {name} {param.opts[0]} has no help"
    if not isinstance(cmd, click.Group):
        assert "--config" in result.output and "--quiet" in result.output


def test_help_imports_nothing_heavy():
    code = (
        "import sys, distrib.cli; from click.testing import CliRunner; "
        "CliRunner().invoke(distrib.cli.cli, ['--help']); "
        "print(','.join(m for m in ('tweepy','atproto','boto3','mjml','feedparser','httpx','jinja2','nh3','babel','PIL') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    ).stdout.strip()
    assert out == ""


def test_dry_run_sends_and_records_nothing(make_config, tmp_path: Path):
    # backfill: the first run shares what exists (the default first run takes a baseline).
    path = make_config('[[channels]]\nname = "out"\ntype = "outbox"\nbackfill = 5\n')
    proc = run_distrib("run", "--dry-run", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "would send" in proc.stdout and "would post" in proc.stdout
    assert not (tmp_path / "outbox").exists()
    # and the real run afterwards still has everything to do
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2
    assert list((tmp_path / "outbox" / "shares").glob("*.json"))


def test_nothing_to_do_exits_0_and_says_so(make_config):
    path = make_config()
    assert run_distrib("run", "--config", str(path)).returncode == 0
    again = run_distrib("run", "-q", "--config", str(path))
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""


def test_posts_json_contract(make_config):
    path = make_config()
    proc = run_distrib("posts", "--all", "--json", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    posts = json.loads(proc.stdout)
    assert len(posts) >= 12
    for p in posts:
        assert {
            "key",
            "url",
            "title",
            "author",
            "published",
            "tags",
            "categories",
            "summary",
            "image",
            "source",
        } <= set(p)
        assert p["source"] == "newsroom"
        assert p["published"] is None or "T" in p["published"]
    table = run_distrib("posts", "--config", str(path))
    assert table.returncode == 0 and posts[0]["title"] in table.stdout


def test_preview_writes_the_three_files(make_config, tmp_path: Path):
    path = make_config()
    proc = run_distrib("preview", "--config", str(path), "--out", str(tmp_path / "pv"))
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "pv" / "digest.html").read_text(encoding="utf-8")
    assert "<mj-" not in html and "Test News" in html
    assert (tmp_path / "pv" / "digest.txt").read_text(encoding="utf-8").strip()
    assert (tmp_path / "pv" / "digest.eml").read_bytes().startswith(b"From:") or b"\r\nFrom:" in (
        tmp_path / "pv" / "digest.eml"
    ).read_bytes()
    assert not (tmp_path / "outbox").exists()


def test_check_reports_problems_and_exits_2(make_config, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = make_config(
        '[[channels]]\nname = "m"\ntype = "mastodon"\ninstance = "https://social.example"\ntoken_env = "NOPE_TOKEN"\n'
    )
    proc = run_distrib("check", "--config", str(path))
    assert proc.returncode == 2
    assert "NOPE_TOKEN is not set" in proc.stderr
    ok = run_distrib("check", "--config", str(make_config(name="ok.toml")))
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_subscribers_commands(make_config, tmp_path: Path):
    path = make_config()
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(
        "email,name\nana@example.com,Ana\nnot-an-address,X\nana@example.com,Ana again\n",
        encoding="utf-8",
    )
    proc = run_distrib("subscribers", "import", str(csv_file), "--config", str(path))
    assert proc.returncode == 1  # a bad row was reported
    assert "line 3" in proc.stderr and "added 1" in proc.stdout
    assert run_distrib("unsubscribe", "ana@example.com", "--config", str(path)).returncode == 0
    listed = run_distrib("subscribers", "list", "--config", str(path))
    assert "ana@example.com\tAna\tunsubscribed" in listed.stdout
    bad = run_distrib("subscribers", "add", "nope", "--config", str(path))
    assert bad.returncode == 2 and "not an email address" in bad.stderr


def test_subscribers_export_then_import_elsewhere_keeps_the_suppressed(make_config, tmp_path: Path):
    path = make_config()
    for args in (
        ("subscribers", "add", "Ana <ana@example.com>"),
        ("subscribers", "add", "bo@example.com"),
        ("unsubscribe", "bo@example.com", "--as", "bounced"),
        ("subscribers", "export", str(tmp_path / "all.csv")),
    ):
        assert run_distrib(*args, "--config", str(path)).returncode == 0, args
    other = make_config(name="other.toml").read_text(encoding="utf-8")
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "distrib.toml").write_text(other, encoding="utf-8")
    proc = run_distrib("subscribers", "import", str(tmp_path / "all.csv"), cwd=moved)
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout
        == "added 2, already known 0, bad rows 0, 1 suppressed as the file's status column says\n"
    )
    listed = run_distrib("subscribers", "list", cwd=moved).stdout
    assert "ana@example.com\tAna\tactive" in listed and "bo@example.com\t\tbounced" in listed


def test_broken_override_template_names_file_and_line_and_sends_nothing(
    make_config, tmp_path: Path
):
    (tmp_path / "mytemplates" / "email").mkdir(parents=True)
    (tmp_path / "mytemplates" / "email" / "digest.mjml.j2").write_text(
        '{% extends "!default/email/digest.mjml.j2" %}\n{% block nope %}\n{{ posts[0].title }\n{% endblock %}\n',
        encoding="utf-8",
    )
    path = make_config('[templates]\ndir = "mytemplates"\n')
    check = run_distrib("check", "--config", str(path))
    assert check.returncode == 2
    assert "digest.mjml.j2:3" in check.stderr, check.stderr
    run = run_distrib("run", "--config", str(path))
    assert (
        run.returncode == 2 and "digest.mjml.j2:3" in run.stderr and "Traceback" not in run.stderr
    )
    assert not (tmp_path / "outbox").exists()


def test_bad_cadence_is_a_config_error_before_fetching(make_config, tmp_path: Path):
    path = make_config('[digest]\ncadence = "weekly"\nday = "caturday"\n')
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 2 and "digest.day" in proc.stderr
    assert not (tmp_path / "distrib.sqlite").exists()


def test_a_dry_run_says_to_whom_and_where_the_digest_would_go(make_config, tmp_path: Path):
    path = make_config()
    proc = run_distrib("send", "--dry-run", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    # Every new post: 10 (max_posts) in full and the 11th listed, not left for a later edition.
    assert (
        f"(11 posts) for 2 recipients, to the folder {tmp_path / 'outbox'} [dry run]" in proc.stdout
    )
    assert "11 posts: 10 in full, 1 listed" in proc.stdout
    assert run_distrib("send", "--dry-run", "-q", "--config", str(path)).stdout == ""


def test_unsubscribe_records_why(make_config):
    path = make_config()
    proc = run_distrib(
        "unsubscribe",
        "a@example.com",
        "--as",
        "complained",
        "--reason",
        "ESP report",
        "--config",
        str(path),
    )
    assert proc.returncode == 0 and "a@example.com: complained" in proc.stdout
    again = run_distrib("unsubscribe", "a@example.com", "--config", str(path))
    assert again.returncode == 0 and "already suppressed" in again.stdout
    listed = run_distrib("subscribers", "list", "--status", "complained", "--config", str(path))
    assert "a@example.com\t\tcomplained  (ESP report)" in listed.stdout
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "1 delivered" in proc.stdout  # b@ only: the complaint is never mailed again


def test_init_writes_a_config_that_runs(tmp_path: Path):
    proc = run_distrib("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "distrib.toml").read_text(encoding="utf-8").startswith("# distrib")
    assert run_distrib("check", cwd=tmp_path).returncode == 0  # found as ./distrib.toml
    again = run_distrib("init", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    assert run_distrib("init", "--force", cwd=tmp_path).returncode == 0


def test_an_edition_of_one_post_says_post_not_posts(make_config, tmp_path: Path):
    path = make_config(
        '[digest]\nwindow = "3650d"\nbackfill = 1\n'
    )  # max_posts no longer limits the edition
    dry = run_distrib("send", "--dry-run", "--config", str(path))
    assert dry.returncode == 0, dry.stderr
    assert "(1 post) for 2 recipients" in dry.stdout
    sent = run_distrib("send", "--config", str(path))
    assert sent.returncode == 0, sent.stderr
    assert "edition 1 (1 post) sent: 2 delivered" in sent.stdout
