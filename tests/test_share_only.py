"""Sharing and listing need no email settings; commands that mail say which key is missing.

Also: `distrib posts --all` marks the posts dated by when distrib first saw them.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from .conftest import run_distrib

SHARE_ONLY = """
[site]
name = "Share only"
url = "https://share.example/"

[[sources]]
name = "sample"
type = "sample"

[[channels]]
name = "o"
type = "outbox"
backfill = 5  # the first run shares what exists (by default it takes a baseline)
"""


def config(tmp_path: Path, text: str = SHARE_ONLY) -> Path:
    path = tmp_path / "distrib.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_posts_needs_no_email_table(tmp_path: Path) -> None:
    path = config(tmp_path)
    proc = run_distrib("posts", "--all", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "email" not in proc.stderr and proc.stdout.strip()


def test_share_needs_no_email_table(tmp_path: Path) -> None:
    path = config(tmp_path)
    dry = run_distrib("share", "--dry-run", "--config", str(path))
    assert dry.returncode == 0, dry.stderr
    real = run_distrib("share", "--config", str(path))
    assert real.returncode == 0, real.stderr
    assert list((tmp_path / "outbox" / "shares").glob("*.json"))


def test_check_passes_a_share_only_config(tmp_path: Path) -> None:
    path = config(tmp_path)
    proc = run_distrib("check", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "shares only" in proc.stdout and proc.stdout.rstrip().endswith(": OK")


def test_commands_that_mail_name_the_missing_key(tmp_path: Path) -> None:
    path = config(tmp_path)
    for command in (["run"], ["send", "--dry-run"], ["preview"]):
        proc = run_distrib(*command, "--config", str(path))
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "email.from: missing" in lines[0], (command, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_an_email_table_without_from_still_fails_check(tmp_path: Path) -> None:
    path = config(tmp_path, SHARE_ONLY + '\n[email]\nmailer = "outbox"\n')
    proc = run_distrib("check", "--config", str(path))
    assert proc.returncode == 2 and "email.from: missing" in proc.stderr


def test_posts_all_marks_undated_posts(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "dated.md").write_text(
        "---\ntitle: Dated\ndate: 2025-10-01\n---\nx\n", encoding="utf-8"
    )
    (content / "undated.md").write_text("---\ntitle: Undated\n---\nx\n", encoding="utf-8")
    text = SHARE_ONLY.replace(
        'name = "sample"\ntype = "sample"',
        'name = "md"\ntype = "markdown"\npath = "content"\nbase_url = "https://share.example/"\nundated = "first-seen"',
    )
    path = config(tmp_path, text)
    proc = run_distrib("posts", "--all", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    undated = next(line for line in proc.stdout.splitlines() if "Undated" in line)
    dated = next(line for line in proc.stdout.splitlines() if "  Dated" in line or " Dated" in line)
    # after the site time and its offset ("2026-12-01 09:30 +0000*")
    assert undated[22] == "*" and dated[22] == " "
    assert "dated by when distrib first saw it" in proc.stdout
    rows = json.loads(run_distrib("posts", "--all", "--json", "--config", str(path)).stdout)
    assert {r["title"]: r["undated"] for r in rows} == {"Dated": False, "Undated": True}

    skipped = run_distrib(
        "posts",
        "--all",
        "--config",
        str(config(tmp_path, text.replace('undated = "first-seen"', ""))),
    )
    assert "Undated" not in skipped.stdout and "Dated" in skipped.stdout
    assert "skipped 1 post without a date (undated.md)" in skipped.stderr
