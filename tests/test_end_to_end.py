"""The whole job as a user runs it: real processes, a real SMTP server, real HTTP feeds."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import venv
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from .conftest import REPO, SmtpServer, free_port, run_distrib

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The README's first two shell commands (its contract with new users)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "outbox", "preview", "*.sqlite*", ".pytest_cache"
    )
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "config.example.toml"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("distrib", "templates"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


def test_readme_first_command_on_a_fresh_checkout(tmp_path: Path):
    """`pip install . && distrib run --config config.example.toml` in a fresh folder and
    venv: the outbox gets the digest and the shares; the second run sends nothing."""
    first, second = readme_commands()
    # The venv step a newcomer needs comes first; here the test's own venv (which can
    # see the already installed dependencies: nothing is downloaded) stands in for it.
    venv_step = "python3 -m venv .venv && . .venv/bin/activate && "
    assert first == venv_step + "pip install . && distrib run --config config.example.toml"
    first = first.removeprefix(venv_step)
    assert "pytest" in second
    project = copy_project(tmp_path / "site")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    env = dict(os.environ, PATH=f"{env_dir / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(env_dir))
    env.pop("DISTRIB_CONFIG", None)
    env.pop("PYTHONPATH", None)  # the installed wheel must be what runs, not a checkout
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(
        ["bash", "-c", first], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the templates came from inside the installed wheel, not from the source folder
    where = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "import distrib.paths as p; print(p.templates_dir()); print(p.example_config())",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    templates, example = Path(where[0]), Path(where[1])
    assert str(env_dir) in str(templates) and (templates / "email").is_dir()
    assert str(env_dir) in str(example) and example.is_file()  # for `distrib init`
    emails = sorted((project / "outbox").glob("*.eml"))
    shares = sorted((project / "outbox" / "shares").glob("*.json"))
    assert len(emails) == 3, proc.stdout
    assert len(shares) >= 5
    assert "outbox" in proc.stdout
    again = subprocess.run(
        ["bash", "-c", "distrib run --config config.example.toml"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "nothing new" in again.stdout
    assert sorted((project / "outbox").glob("*.eml")) == emails
    assert sorted((project / "outbox" / "shares").glob("*.json")) == shares


def smtp_config(make_config, server: SmtpServer, recipients: str, extra_smtp: str = "") -> Path:
    return make_config(
        "[digest]\nmax_posts = 20\n",
        email=f"""
        [email]
        mailer = "smtp"
        from = "Test News <news@test.example>"
        {recipients}
        unsubscribe_url = "https://test.example/unsubscribe?token={{token}}"
        unsubscribe_mailto = "unsubscribe@test.example"
        [email.smtp]
        host = "{server.host}"
        port = {server.port}
        security = "none"
        {extra_smtp}
        """,
    )


def test_smtp_delivery_of_the_digest(make_config, smtp_server: SmtpServer, tmp_path: Path):
    path = smtp_config(
        make_config,
        smtp_server,
        'recipients = ["ana@example.com", "Bo Li <bo@example.net>", "chen@example.org"]',
    )
    posts = run_distrib("posts", "--config", str(path), "--json")
    assert posts.returncode == 0, posts.stderr
    import json

    selected = json.loads(posts.stdout)
    assert selected and all(
        {
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
        }
        <= set(p)
        for p in selected
    )
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    by_rcpt = smtp_server.by_recipient()
    assert set(by_rcpt) == {"ana@example.com", "bo@example.net", "chen@example.org"}
    for address, got in by_rcpt.items():
        assert len(got) == 1
        msg = got[0].message
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]  # text first
        assert address in msg["To"].lower()
        assert msg["Message-ID"] and msg["Date"] and msg["Subject"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "<https://test.example/unsubscribe?token=" in msg["List-Unsubscribe"]
        assert "mailto:unsubscribe@test.example" in msg["List-Unsubscribe"]
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        from html import unescape

        for post in selected:
            assert post["title"] in text
            assert post["title"] in unescape(html)
        assert "1 Test Street, Testville" in html
        token = re.search(r"token=([A-Za-z0-9_.\-]+)", msg["List-Unsubscribe"]).group(1)
        assert token in html  # the visible link is the recipient's own
    again = run_distrib("send", "--config", str(path))
    assert again.returncode == 0
    assert "nothing new" in again.stdout
    assert sum(len(v) for v in smtp_server.by_recipient().values()) == 3


def test_test_send_records_nothing(make_config, smtp_server: SmtpServer):
    path = smtp_config(make_config, smtp_server, 'recipients = ["ana@example.com"]')
    proc = run_distrib("send", "--config", str(path), "--to", "me@example.org")
    assert proc.returncode == 0, proc.stderr
    assert [r.rcpt_tos for r in smtp_server.received] == [["me@example.org"]]
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "ana@example.com" in smtp_server.by_recipient()  # the real send still happens


def _slow_smtp_server(delay: float) -> tuple[object, SmtpServer]:
    from aiosmtpd.controller import Controller

    from .conftest import _Handler

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_Handler(server, delay=delay), hostname="127.0.0.1", port=server.port)
    controller.start()
    return controller, server


@pytest.mark.parametrize("connections", [1, 4])
def test_kill_mid_send_then_rerun_delivers_everyone_once(
    make_config, tmp_path: Path, connections: int
):
    """SIGKILL a real `distrib send` part-way; the rerun completes the edition and only the
    recipients in flight at the kill (still 'claimed' in the ledger) may get it twice."""
    controller, server = _slow_smtp_server(delay=0.01)
    try:
        addresses = [f"reader{i:03d}@example.com" for i in range(300)]
        with open(tmp_path / "subscribers.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["email", "name"])
            for i, a in enumerate(addresses):
                w.writerow([a, f"Reader {i}"])
        path = smtp_config(
            make_config,
            server,
            'recipients_file = "subscribers.csv"',
            f"connections = {connections}",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "distrib", "send", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 60
        while len(server.received) < 100 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        assert proc.poll() is None, "the send finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        db = sqlite3.connect(tmp_path / "distrib.sqlite")
        in_flight = {
            r[0]
            for r in db.execute("SELECT address FROM email_deliveries WHERE status = 'claimed'")
        }
        db.close()
        got_before = len(server.received)
        assert 0 < got_before < 300
        rerun = run_distrib("send", "--config", str(path))
        assert rerun.returncode == 0, rerun.stderr
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert set(counts) == set(addresses)  # everyone has it
        twice = {a for a, n in counts.items() if n > 1}
        assert twice <= in_flight, (twice, in_flight)
        assert len(twice) <= connections  # at most one message in flight per connection
        # and a third run sends nothing at all
        before = len(server.received)
        third = run_distrib("send", "--config", str(path))
        assert third.returncode == 0 and len(server.received) == before
    finally:
        controller.stop()


def test_second_concurrent_run_is_refused(make_config, tmp_path: Path):
    controller, server = _slow_smtp_server(delay=0.05)
    try:
        with open(tmp_path / "subs.csv", "w") as f:
            f.write("email\n" + "".join(f"r{i}@example.com\n" for i in range(200)))
        path = smtp_config(make_config, server, 'recipients_file = "subs.csv"')
        first = subprocess.Popen(
            [sys.executable, "-m", "distrib", "run", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not server.received and time.monotonic() < deadline:
            time.sleep(0.01)
        second = run_distrib("run", "--config", str(path))
        first.kill()
        first.wait()
        assert second.returncode == 1
        assert "another distrib run (pid" in second.stderr
        assert second.stderr.count("\n") == 1  # one line
    finally:
        controller.stop()


BROKEN_HTML = (
    "<!doctype html><html><head><title>Oops</title></head><body><p>Not a feed</p></body></html>"
)
BROKEN_XML = '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><title>half'


@pytest.mark.parametrize(
    "body,ctype", [(BROKEN_HTML, "text/html"), (BROKEN_XML, "application/rss+xml")]
)
def test_broken_feed_names_the_source_and_others_still_go_out(
    make_config, httpserver, tmp_path: Path, body: str, ctype: str
):
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type=ctype)
    path = make_config(
        sources=f"""
        [[sources]]
        name = "newsroom"
        type = "sample"

        [[sources]]
        name = "wire"
        type = "feed"
        url = "{httpserver.url_for("/feed.xml")}"
        """
    )
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "wire" in line]
    assert len(lines) == 1 and lines[0].startswith("distrib: source 'wire':"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2  # the sample source still went out


HOSTILE_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile</title><link>https://evil.example/</link>
<item>
  <title>Breaking&#13;&#10;Bcc: victim@example.com&#13;&#10;X-Evil: yes</title>
  <link>https://evil.example/post</link>
  <guid>https://evil.example/post</guid>
  <pubDate>{date}</pubDate>
  <description><![CDATA[<p>Hi<script>alert(1)</script><iframe src="https://evil.example/x"></iframe>
  <img src="https://evil.example/i.png" onerror="alert(2)" alt="i">
  <a href="javascript:alert(3)">click</a> <a href="https://evil.example/ok" onclick="x()">ok</a></p>]]></description>
</item></channel></rss>"""


def test_hostile_post_reaches_the_output_inert(make_config, httpserver, tmp_path: Path):
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    date = format_datetime(datetime.now(UTC) - timedelta(hours=1))
    httpserver.expect_request("/feed.xml").respond_with_data(
        HOSTILE_FEED.format(date=date), content_type="application/rss+xml"
    )
    path = make_config(
        sources=f"""
        [[sources]]
        name = "wire"
        type = "feed"
        url = "{httpserver.url_for("/feed.xml")}"
        """
    )
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    msg = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert "Breaking" in msg["Subject"] and "\n" not in msg["Subject"]
    html = msg.get_body(("html",)).get_content().lower()
    for bad in ("<script", "<iframe", "onerror", "onclick", "javascript:"):
        assert bad not in html, bad
    assert "https://evil.example/post" in html  # the post itself is there, made inert
