"""Mistakes a new user makes, run as the user runs distrib: one clear line, the right
exit code, no traceback, and nothing fetched or sent when the mistake is theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_distrib


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--report", "a-file/report.json"),
        ("archive", "--out", "a-file/archive"),
        ("preview", "--out", "a-file/preview"),
        ("subscribers", "export", "a-file/backup.csv"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_anything_is_sent(
    make_config, tmp_path: Path, args
):
    config = make_config()
    (tmp_path / "a-file").write_text("a file where a folder is needed")
    proc = run_distrib(*args, "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "a-file is a file, not a folder" in proc.stderr
    assert not (tmp_path / "outbox").exists()  # nothing was sent


def test_a_report_in_a_folder_that_does_not_exist_yet_is_written(make_config, tmp_path: Path):
    config = make_config()
    proc = run_distrib(
        "send", "--report", "reports/send.json", "--config", str(config), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert '"sent": 2' in (tmp_path / "reports" / "send.json").read_text()


def _share_override(tmp_path: Path, text: str) -> str:
    folder = tmp_path / "my-templates" / "share"
    folder.mkdir(parents=True)
    (folder / "default.j2").write_text(text, encoding="utf-8")
    return '[templates]\ndir = "my-templates"\n[[channels]]\nname = "o"\ntype = "outbox"\nbackfill = 5\n'


@pytest.mark.parametrize("command", [("run",), ("share",), ("share", "--dry-run", "--json")])
def test_a_share_template_with_a_syntax_error_stops_everything_before_the_fetch(
    make_config, tmp_path: Path, command
):
    config = make_config(_share_override(tmp_path, "{{ post.title }} {{ post.url\n"))
    proc = run_distrib(*command, "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(
        f"distrib: channel o: {tmp_path / 'my-templates' / 'share' / 'default.j2'}:1: "
    )
    assert line.endswith("fix the template syntax")
    assert proc.stdout == "" and not (tmp_path / "outbox").exists()


def test_a_share_template_with_a_wrong_variable_is_one_line_and_no_share_is_lost(
    make_config, tmp_path: Path
):
    config = make_config(_share_override(tmp_path, "{{ post.titel }} {{ post.url }}\n"))
    proc = run_distrib("run", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 1
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("distrib: ")]
    assert "default.j2:1: " in line and "'titel'" in line and "check the spelling" in line
    assert "1 delivered" not in proc.stdout and "2 delivered" in proc.stdout  # the digest went
    assert not (tmp_path / "outbox" / "shares").exists()

    (tmp_path / "my-templates" / "share" / "default.j2").write_text(
        "{{ post.title }} {{ post.url }}\n"
    )
    again = run_distrib("run", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "outbox" / "shares").glob("*.json"))) == 5  # max_per_run: none lost


def test_a_test_send_after_everything_was_sent_sends_the_last_edition(make_config, tmp_path: Path):
    config = make_config("[digest]\nmax_posts = 20\n")
    assert run_distrib("run", "--config", str(config), cwd=tmp_path).returncode == 0
    proc = run_distrib("send", "--to", "me@example.org", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "to me@example.org (edition 1; a test send, nothing recorded)" in proc.stdout
    assert (tmp_path / "outbox" / "1-me@example.org.eml").exists()
    status = run_distrib("status", "--json", "--config", str(config), cwd=tmp_path)
    assert '"sent": 2' in status.stdout  # the test send is recorded nowhere


@pytest.mark.parametrize(
    "ledger,expect",
    [
        ("notes.txt", "is not a distrib ledger"),
        ("a-file/distrib.sqlite", "a-file is a file, not a folder"),
    ],
)
def test_a_ledger_that_cannot_be_used_is_one_line_before_the_fetch(
    make_config, tmp_path: Path, ledger, expect
):
    (tmp_path / "notes.txt").write_text("my notes, not a database\n" * 50)
    (tmp_path / "a-file").write_text("not a folder")
    config = make_config(f'[ledger]\npath = "{ledger}"\n')
    proc = run_distrib("run", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert expect in line and "[ledger] path" in line
    assert proc.stdout == "" and not (tmp_path / "outbox").exists()


def test_an_smtp_server_that_refuses_the_connection_says_not_sent_and_the_next_run_sends(
    make_config, tmp_path: Path, smtp_server
):
    from .conftest import free_port

    def config(port: int) -> Path:
        return make_config(
            email=f"""
            [email]
            mailer = "smtp"
            from = "Test News <news@test.example>"
            recipients = ["a@example.com", "b@example.com"]
            unsubscribe_url = "https://test.example/unsubscribe?token={{token}}"
            [email.smtp]
            host = "127.0.0.1"
            port = {port}
            security = "none"
            """
        )

    closed = free_port()
    proc = run_distrib("run", "--config", str(config(closed)), cwd=tmp_path)
    assert proc.returncode == 1
    assert (
        f"not sent: 0 delivered, to 127.0.0.1:{closed}; unfinished: the next run delivers the rest"
        in proc.stdout
    )
    [error] = proc.stderr.splitlines()
    assert f"127.0.0.1:{closed}: cannot connect" in error and "Traceback" not in proc.stderr

    again = run_distrib("run", "--config", str(config(smtp_server.port)), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "edition 1 (11 posts) resumed: 2 delivered" in again.stdout
    assert sorted(smtp_server.by_recipient()) == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("command", [("serve",), ("preview", "--serve")])
def test_a_port_already_taken_is_one_line_naming_host_port_and_the_fix(
    make_config, tmp_path: Path, command
):
    import socket

    config = make_config()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_distrib(
            *command, "--port", str(port), "--config", str(config), cwd=tmp_path, timeout=30
        )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"distrib: cannot listen on 127.0.0.1:{port}: " in proc.stderr
    assert proc.stderr.rstrip().endswith("pick another with --port")
    assert "serving" not in proc.stdout and "endpoint on" not in proc.stdout


def test_share_json_without_dry_run_posts_nothing(make_config, tmp_path: Path):
    config = make_config('[[channels]]\nname = "o"\ntype = "outbox"\n')
    proc = run_distrib("share", "--json", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "distrib: --json lists what would be posted: use it with --dry-run\n"
    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize("keys", ["", 'url = "https://blog.example/feed.xml"\npath = "feed.xml"\n'])
def test_check_and_run_agree_on_a_feed_source_without_exactly_one_of_url_and_path(
    make_config, tmp_path: Path, keys
):
    config = make_config(sources=f'[[sources]]\nname = "blog"\ntype = "feed"\n{keys}')
    for command in ("check", "run"):
        proc = run_distrib(command, "--config", str(config), cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert (
            "distrib: sources[0]: set exactly one of url and path for a feed source\n"
            in proc.stderr
        )
    assert not (tmp_path / "outbox").exists()


def test_previewing_an_edition_that_does_not_exist_is_a_usage_error(make_config, tmp_path: Path):
    config = make_config()
    proc = run_distrib("preview", "--edition", "99", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"distrib: no edition 99 in the ledger {tmp_path / 'distrib.sqlite'}; see `distrib status`\n"
    )


@pytest.mark.parametrize(
    "address", ["not an address", "me@localhost", "me@example.org\nBcc: victim@example.org"]
)
def test_a_test_send_to_something_that_is_not_an_address_sends_nothing(
    make_config, tmp_path: Path, address
):
    config = make_config()
    proc = run_distrib("send", "--to", address, "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"distrib: --to {address!r} is not an email address (")
    assert not (tmp_path / "outbox").exists()
