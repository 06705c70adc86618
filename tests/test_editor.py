"""The editor's hand: a note, pins and skips, a sponsor block, approval before sending.

Each runs the real command line on the bundled sample site; approval's test copies and
sends go to a real SMTP server (aiosmtpd) on 127.0.0.1.
"""

from __future__ import annotations

import json
import textwrap
from email import message_from_bytes, policy
from pathlib import Path

from .conftest import SmtpServer, run_distrib


def _parts(eml: bytes) -> tuple[str, str]:
    msg = message_from_bytes(eml, policy=policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return html, text


def _outbox(tmp_path: Path, address: str = "a@example.com") -> list[Path]:
    return sorted((tmp_path / "outbox").rglob(f"*{address}*.eml"))


NOTE = textwrap.dedent(
    """\
    **Hello readers**, a short note from the desk.

    Read [our appeal](https://harbourlight.example/appeal/) and [this](javascript:alert(1)).

    <script>alert("x")</script><img src=x onerror=alert(1)>
    """
)


def _posts(path: Path, *args: str) -> list[dict]:
    proc = run_distrib("posts", "--json", *args, "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_send_note_is_rendered_sanitised_above_the_posts_in_both_parts(
    make_config, tmp_path: Path
) -> None:
    path = make_config()
    (tmp_path / "note.md").write_text(NOTE, encoding="utf-8")
    proc = run_distrib("send", "--note", "note.md", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    (eml,) = [p for p in (tmp_path / "outbox").rglob("*.eml") if "a@example.com" in p.name]
    html, text = _parts(eml.read_bytes())
    assert "<strong>Hello readers</strong>" in html
    assert 'href="https://harbourlight.example/appeal/"' in html
    for bad in ("<script", "<img src=x", 'href="javascript:'):
        assert bad not in html  # raw HTML in the note is shown as text, inert
    assert "&lt;script&gt;" in html
    first_post = _first_title(text)
    assert html.index("Hello readers") < html.index(first_post + "</a>")
    assert "Hello readers, a short note from the desk." in text
    flat = " ".join(text.split())  # the text part is wrapped at 72 columns
    assert "Read our appeal (https://harbourlight.example/appeal/) and" in flat, flat[
        :400
    ]  # links keep their address
    assert text.index("Hello readers") < text.index(first_post)
    # The note was for that edition only: it is gone from the ledger, and the next has none.
    import sqlite3

    with sqlite3.connect(tmp_path / "distrib.sqlite") as db:
        assert db.execute("SELECT count(*) FROM kv WHERE key LIKE 'editor:%'").fetchone() == (0,)
    preview = run_distrib("preview", "--edition", "1", "--out", "pv", "--config", str(path))
    assert preview.returncode == 0, preview.stderr
    assert "Hello readers" in (tmp_path / "pv" / "digest.html").read_text(
        encoding="utf-8"
    )  # kept in edition 1


def _first_title(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    # header: name, date, rule; then the note's lines, then the lead title
    idx = next(
        i for i, line in enumerate(lines) if line.startswith("https://harbourlight.example/20")
    )
    return lines[idx - 1]


def test_intro_file_is_shown_in_preview(make_config, tmp_path: Path) -> None:
    (tmp_path / "intro.md").write_text("From the editor: *the harbour issue*.\n", encoding="utf-8")
    path = make_config('[digest]\nintro_file = "intro.md"\n')
    proc = run_distrib("preview", "--out", "pv", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "From the editor: <em>the harbour issue</em>." in (
        tmp_path / "pv" / "digest.html"
    ).read_text(encoding="utf-8")
    assert "From the editor: the harbour issue." in (tmp_path / "pv" / "digest.txt").read_text(
        encoding="utf-8"
    )


def test_a_missing_note_file_is_one_line_exit_2(make_config, tmp_path: Path) -> None:
    path = make_config()
    proc = run_distrib("send", "--note", "nope.md", "--config", str(path))
    assert proc.returncode == 2
    assert "--note: no file at" in proc.stderr and "Traceback" not in proc.stderr
    assert (
        not list((tmp_path / "outbox").rglob("*.eml")) if (tmp_path / "outbox").exists() else True
    )


def test_pin_and_skip_hold_for_the_next_edition_only(make_config, tmp_path: Path) -> None:
    import sqlite3

    path = make_config('[digest]\nwindow = "2d"\n')
    all_posts = _posts(path, "--all")
    natural = [p["key"] for p in _posts(path)]
    oldest = all_posts[-1]  # outside the window: a pin brings it in, first
    assert oldest["key"] not in natural and len(natural) >= 2
    skipped = natural[0]
    proc = run_distrib("posts", "--pin", oldest["url"], "--skip", skipped, "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "pinned" in proc.stdout and "skipped" in proc.stdout
    listed = [p["key"] for p in _posts(path)]
    assert listed[0] == oldest["key"] and skipped not in listed and len(listed) == len(natural)
    sent = run_distrib("send", "--config", str(path))
    assert sent.returncode == 0, sent.stderr
    (eml,) = _outbox(tmp_path)
    html, _ = _parts(eml.read_bytes())
    assert oldest["title"].split()[0] in html
    skipped_title = next(p["title"] for p in all_posts if p["key"] == skipped)
    assert skipped_title not in html
    # Used up by that edition: no pin or skip is left for the next one.
    with sqlite3.connect(tmp_path / "distrib.sqlite") as db:
        assert db.execute("SELECT count(*) FROM editor_picks").fetchone() == (0,)
    assert oldest["key"] not in [p["key"] for p in _posts(path)]


def test_pin_of_an_unknown_post_is_exit_2(make_config) -> None:
    path = make_config()
    proc = run_distrib("posts", "--pin", "https://nowhere.example/x", "--config", str(path))
    assert proc.returncode == 2 and "no post with the key or URL" in proc.stderr


SPONSOR = """
[digest.sponsor]
title = "Port Avery Regatta"
text = "Tickets for the **regatta** are on sale."
url = "https://regatta.example/tickets"
link_text = "Get tickets"
"""


def test_sponsor_block_after_the_lead_marked_and_in_the_budget(make_config, tmp_path: Path) -> None:
    path = make_config(SPONSOR)
    proc = run_distrib("preview", "--out", "pv", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "pv" / "digest.html").read_text(encoding="utf-8")
    text = (tmp_path / "pv" / "digest.txt").read_text(encoding="utf-8")
    titles = [p["title"] for p in _posts(path)]
    at = html.index("Port Avery Regatta")
    assert html.index(titles[0] + "</a>") < at < html.index(titles[1] + "</a>")
    assert ">Sponsored</p>" in html and 'href="https://regatta.example/tickets"' in html
    assert "<strong>regatta</strong>" in html
    assert "[SPONSORED]" in text and text.index(titles[0]) < text.index(
        "Port Avery Regatta"
    ) < text.index(titles[1])

    # It counts against the size budget: with a budget the posts just fit, the sponsor
    # pushes one out to the "more" links.
    def overflow(extra: str) -> bool:
        p = make_config(extra, name="b.toml")
        out = run_distrib("preview", "--out", "pv2", "--config", str(p))
        assert out.returncode == 0, out.stderr
        return "More in this edition" in (tmp_path / "pv2" / "digest.html").read_text(
            encoding="utf-8"
        )

    plain_size = _size_kb(tmp_path, make_config, "[digest]\nmax_posts = 50\n")
    budget = int(plain_size) + 1
    assert not overflow(f"[digest]\nmax_posts = 50\nsize_budget_kb = {budget}\n")
    big = (
        '[digest.sponsor]\ntitle = "Port Avery Regatta"\nurl = "https://regatta.example/t"\ntext = "'
        + "Sail with us. " * 200
        + '"\n'
    )
    assert overflow(f"[digest]\nmax_posts = 50\nsize_budget_kb = {budget}\n" + big)


def _size_kb(tmp_path: Path, make_config, extra: str) -> float:
    p = make_config(extra, name="s.toml")
    out = run_distrib("preview", "--out", "pv3", "--config", str(p))
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split(" KB of ")[0].rsplit("(", 1)[1])


def _approval_config(make_config, smtp: SmtpServer, extra: str = "") -> Path:
    email = textwrap.dedent(
        f"""
        [email]
        mailer = "smtp"
        from = "Test News <news@test.example>"
        recipients = ["a@example.com", "b@example.com"]
        editors = ["Ed Itor <ed@example.com>"]
        unsubscribe_url = "https://test.example/unsubscribe?token={{token}}"

        [email.smtp]
        host = "{smtp.host}"
        port = {smtp.port}
        security = "none"
        """
    )
    return make_config("[digest]\napproval = true\n" + extra, email=email)


def test_approval_holds_the_edition_until_approved(
    make_config, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    path = _approval_config(make_config, smtp_server)
    first = run_distrib("run", "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert "edition 1" in first.stdout and "waiting for approval" in first.stdout
    (copy,) = smtp_server.received
    assert copy.rcpt_tos == ["ed@example.com"]
    assert copy.message["Subject"].startswith("[for approval: edition 1] ")
    # Cron keeps running: nothing goes to the readers, no second test copy.
    for _ in range(2):
        again = run_distrib("run", "--config", str(path))
        assert again.returncode == 0, again.stderr
        assert "edition 1 is waiting for approval" in again.stdout
    assert len(smtp_server.received) == 1
    dry = run_distrib("run", "--dry-run", "--config", str(path))
    assert (
        dry.returncode == 0
        and "edition 1 is waiting for approval; nothing new would be made" in dry.stdout
    )
    status = run_distrib("status", "--config", str(path))
    assert (
        "edition 1 [digest]" in status.stdout
        and "awaiting" in status.stdout
        and "distrib approve 1" in status.stdout
    )
    # A note given now re-renders it and sends the editors a new test copy.
    (tmp_path / "note.md").write_text("Thanks to **our volunteers**.\n", encoding="utf-8")
    noted = run_distrib("send", "--note", "note.md", "--config", str(path))
    assert noted.returncode == 0, noted.stderr
    assert "edition 1 rendered again" in noted.stdout
    assert len(smtp_server.received) == 2 and smtp_server.received[1].rcpt_tos == ["ed@example.com"]
    assert "<strong>our volunteers</strong>" in _parts(smtp_server.received[1].data)[0]
    assert not any(r for r in smtp_server.received if "a@example.com" in r.rcpt_tos)
    # Approve: sent to every reader once, with the note.
    ok = run_distrib("approve", "1", "--config", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "edition 1 approved" in ok.stdout and "2 delivered" in ok.stdout
    by = smtp_server.by_recipient()
    assert len(by["a@example.com"]) == 1 and len(by["b@example.com"]) == 1
    assert "<strong>our volunteers</strong>" in _parts(by["a@example.com"][0].data)[0]
    assert not by["a@example.com"][0].message["Subject"].startswith("[for approval")
    rerun = run_distrib("run", "--config", str(path))
    assert rerun.returncode == 0 and len(smtp_server.by_recipient()["a@example.com"]) == 1
    twice = run_distrib("approve", "1", "--config", str(path))
    assert twice.returncode == 2 and "not waiting for approval" in twice.stderr


def test_a_change_before_approve_renders_again_and_asks_once_more(
    make_config, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    (tmp_path / "intro.md").write_text("First words.\n", encoding="utf-8")
    path = _approval_config(make_config, smtp_server, 'intro_file = "intro.md"\n')
    assert run_distrib("run", "--config", str(path)).returncode == 0
    assert len(smtp_server.received) == 1
    (tmp_path / "intro.md").write_text("Better words.\n", encoding="utf-8")
    refused = run_distrib("approve", "1", "--config", str(path))
    assert refused.returncode == 1 and "changed since its test copy" in refused.stderr
    assert (
        len(smtp_server.received) == 2
        and "Better words." in _parts(smtp_server.received[1].data)[1]
    )
    assert "a@example.com" not in smtp_server.by_recipient()
    ok = run_distrib("approve", "1", "--config", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "Better words." in _parts(smtp_server.by_recipient()["a@example.com"][0].data)[1]


def test_skip_while_waiting_rerenders_and_reject_gives_the_posts_back(
    make_config, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    path = _approval_config(make_config, smtp_server)
    assert run_distrib("run", "--config", str(path)).returncode == 0
    lead = _parts(smtp_server.received[0].data)[1]
    keys = [p["key"] for p in _posts(path, "--all")]
    first_key = keys[0]
    skip = run_distrib("posts", "--skip", first_key, "--config", str(path))
    assert skip.returncode == 0, skip.stderr
    assert "edition 1 rendered again" in skip.stdout and len(smtp_server.received) == 2
    assert _parts(smtp_server.received[1].data)[1] != lead
    rej = run_distrib("reject", "1", "--config", str(path))
    assert rej.returncode == 0 and "rejected" in rej.stdout
    st = json.loads(run_distrib("status", "--json", "--config", str(path)).stdout)
    assert st[0]["status"] == "rejected"
    # Nobody got it; its posts go to the next edition (the skip still holds for that one).
    assert "a@example.com" not in smtp_server.by_recipient()
    nxt = run_distrib("run", "--config", str(path))
    assert nxt.returncode == 0, nxt.stderr
    assert "edition 2" in nxt.stdout and "waiting for approval" in nxt.stdout
    assert "a@example.com" not in smtp_server.by_recipient()


def test_approval_without_editors_is_a_config_problem(make_config) -> None:
    path = make_config("[digest]\napproval = true\n")
    proc = run_distrib("run", "--config", str(path))
    assert (
        proc.returncode == 2
        and "digest.approval: true, but [email] editors is empty" in proc.stderr
    )


def test_a_test_copy_that_did_not_go_out_is_sent_by_the_next_run(
    make_config, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    from .conftest import free_port

    down = SmtpServer("127.0.0.1", free_port())  # nothing listens there
    path = _approval_config(make_config, down)
    first = run_distrib("run", "--config", str(path))
    assert first.returncode == 1, first.stdout + first.stderr
    assert "edition 1: the test copy to the editors was not sent (smtp" in first.stderr
    assert "the next run tries again" in first.stderr and "Traceback" not in first.stderr
    status = json.loads(run_distrib("status", "--json", "--config", str(path)).stdout)
    assert status[0]["status"] == "awaiting"
    # The mail server is back: the next run sends the missing test copy, once.
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            f"port = {down.port}", f"port = {smtp_server.port}"
        ),
        encoding="utf-8",
    )
    second = run_distrib("run", "--config", str(path))
    assert second.returncode == 0, second.stderr
    assert "its test copy had not gone out" in second.stdout
    assert [r.rcpt_tos for r in smtp_server.received] == [["ed@example.com"]]
    third = run_distrib("run", "--config", str(path))
    assert third.returncode == 0 and len(smtp_server.received) == 1


def test_the_archive_leaves_out_editions_not_sent(
    make_config, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    path = _approval_config(make_config, smtp_server)
    assert run_distrib("run", "--config", str(path)).returncode == 0
    proc = run_distrib("archive", "--out", "arch", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert not list((tmp_path / "arch").glob("*1*.html"))
    assert "for approval" not in (tmp_path / "arch" / "index.html").read_text(encoding="utf-8")
    subject = smtp_server.received[0].message["Subject"].split("] ", 1)[1]
    assert subject not in (tmp_path / "arch" / "index.html").read_text(encoding="utf-8")
