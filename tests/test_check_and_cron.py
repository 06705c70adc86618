"""`check` that catches what cron would hit, and cron that is not noisy.

Each test feeds exactly the mistake a new publisher made and runs distrib as they do
(a subprocess; a real SMTP server where a send is involved).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import SmtpServer, run_distrib


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_string_of_recipients_is_an_error_with_the_type_and_an_example(make_config, tmp_path):
    path = make_config(
        email="""
        [email]
        from = "n@test.example"
        recipients = "a@example.com, b@example.com"
        unsubscribe_url = "https://test.example/u?t={token}"
        """
    )
    for command in ("check", "run"):
        proc = run_distrib(command, "--config", str(path))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert (
            'email.recipients: expected an array of addresses such as ["a@example.com", "b@example.com"], '
            "got a string 'a@example.com, b@example.com'"
        ) in proc.stderr
    assert not (tmp_path / "outbox").exists()  # only a@ used to get mail


MISTAKES = """
[digets]
max_posts = 3

[digest]
recipents = ["c@example.com"]
min_posts = 20
max_posts = 10
"""


def test_check_treats_unknown_keys_and_contradictions_as_errors_run_warns(make_config):
    path = make_config(MISTAKES)
    check = run_distrib("check", "--config", str(path))
    assert check.returncode == 2, check.stdout + check.stderr
    assert "OK" not in check.stdout
    for expected in (
        "digets: unknown key (did you mean 'digest'?)",
        "digest.recipents: unknown key (did you mean 'recipients' in [email]?)",
        "digest.min_posts: 20 is more than max_posts 10",
    ):
        assert expected in check.stderr, check.stderr
    run = run_distrib("run", "--dry-run", "--config", str(path))
    assert run.returncode == 0, run.stderr
    assert (
        "warning: digets: unknown key" in run.stderr
        and "warning: digest.min_posts: 20" in run.stderr
    )
    strict = run_distrib("run", "--dry-run", "--strict", "--config", str(path))
    assert strict.returncode == 2 and "digest.min_posts: 20" in strict.stderr


def test_a_dry_run_and_a_real_run_say_the_same_about_no_recipients(make_config, tmp_path):
    path = make_config(
        email="""
        [email]
        from = "n@test.example"
        unsubscribe_url = "https://test.example/u?t={token}"
        """
    )
    dry = run_distrib("run", "--dry-run", "--config", str(path))
    real = run_distrib("run", "--config", str(path))
    assert dry.returncode == real.returncode == 0, dry.stderr + real.stderr
    line = (
        "digest: no recipients (all suppressed, or none configured); nothing sent, the posts wait"
    )
    assert line in dry.stdout and line in real.stdout
    assert "0 recipients" not in dry.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "80000"),
        ("serve", "--port", "-1"),
        ("preview", "--serve", "--port", "80000"),
    ],
)
def test_a_port_out_of_range_is_one_line_and_exit_2(make_config, args):
    proc = run_distrib(*args, "--config", str(make_config()), timeout=30)
    assert proc.returncode == 2
    assert "expected a port from 1 to 65535" in one_line(proc.stderr)


def test_preview_serve_does_not_default_to_the_test_smtp_port():
    proc = run_distrib("preview", "--help")
    assert "[default: 8025]" not in proc.stdout and "--port" in proc.stdout


def test_help_and_the_missing_config_error_point_at_distrib_init(tmp_path):
    assert "distrib init" in run_distrib("--help").stdout
    assert "distrib init" in run_distrib("run", "--help").stdout
    proc = run_distrib("run", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "run `distrib init`" in line and "config.example.toml" not in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "email,name\njérôme@example.com,Jérôme\n".encode("cp1252"),
            "not UTF-8 text (it looks like Windows-1252",
        ),
        (b"", "the file is empty"),
        (b"email,name\n", "the file has a header but no rows"),
    ],
)
def test_a_csv_that_cannot_be_imported_says_why_with_exit_2(
    make_config, tmp_path, content: bytes, expected: str
):
    (tmp_path / "readers.csv").write_bytes(content)
    proc = run_distrib(
        "subscribers", "import", "readers.csv", "--config", str(make_config()), cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in one_line(proc.stderr)
    assert "added 0" not in proc.stdout


def test_csv_columns_that_are_not_read_are_named(make_config, tmp_path):
    (tmp_path / "readers.csv").write_text(
        "email,name,phone,City\nana@example.com,Ana,123,Lisbon\n", encoding="utf-8"
    )
    proc = run_distrib(
        "subscribers", "import", "readers.csv", "--config", str(make_config()), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "ignored columns 'phone', 'City'" in proc.stderr and "added 1" in proc.stdout


def test_posts_prints_the_site_time_with_its_offset(make_config):
    path = make_config()
    path.write_text(path.read_text().replace("[site]\n", '[site]\ntimezone = "Asia/Kolkata"\n'))
    proc = run_distrib("posts", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first[16:22] == " +0530", first


# --- cron: a long send, a second tick, an interrupted run --------------------------------


def _slow_server(delay: float):
    from aiosmtpd.controller import Controller

    from .conftest import _Handler, free_port

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_Handler(server, delay=delay), hostname="127.0.0.1", port=server.port)
    controller.start()
    return controller, server


def _long_send(
    make_config, tmp_path: Path, server: SmtpServer
) -> tuple[Path, subprocess.Popen[str]]:
    (tmp_path / "subs.csv").write_text(
        "email\n" + "".join(f"r{i}@example.com\n" for i in range(300))
    )
    path = make_config(
        email=f"""
        [email]
        mailer = "smtp"
        from = "n@test.example"
        recipients_file = "subs.csv"
        unsubscribe_url = "https://test.example/u?t={{token}}"
        [email.smtp]
        host = "{server.host}"
        port = {server.port}
        security = "none"
        """
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "distrib", "run", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not server.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.received, "the first run never started sending"
    return path, first


def test_a_quiet_tick_while_a_send_holds_the_lock_is_silent_and_status_shows_the_send(
    make_config, tmp_path
):
    controller, server = _slow_server(delay=0.05)
    try:
        path, first = _long_send(make_config, tmp_path, server)
        try:
            quiet = run_distrib("run", "-q", "--config", str(path))
            loud = run_distrib("run", "--config", str(path))
            status = run_distrib("status", "--config", str(path))
        finally:
            first.kill()
            first.communicate()
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")  # cron mails nothing
        assert loud.returncode == 1 and "another distrib run (pid" in one_line(loud.stderr)
        assert status.returncode == 0 and f"a run is sending now (pid {first.pid}" in status.stdout
    finally:
        controller.stop()


def test_an_interrupted_run_without_a_terminal_prints_its_summary(make_config, tmp_path):
    controller, server = _slow_server(delay=0.02)
    try:
        path, first = _long_send(make_config, tmp_path, server)
        time.sleep(0.3)
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
    finally:
        controller.stop()
    assert first.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("distrib: interrupted")]
    assert lines and "edition 1: " in lines[0] and " delivered" in lines[0], err
    delivered = int(lines[0].split("edition 1: ")[1].split(" delivered")[0])
    assert delivered == len(server.received) > 0  # what it says is what the server got
