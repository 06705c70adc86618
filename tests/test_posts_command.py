"""`distrib posts`: the table, the JSON and the editor's picks, as a user sees them.

Runs the real command line on the bundled sample site (the outbox mailer: nothing is
sent).  These pin the command's output: where each post goes in the next edition
(in full, listed, skipped), and what each of --pin, --skip, --unpick and --clear says.
"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_distrib


def _json(path: Path, *args: str) -> list[dict]:
    proc = run_distrib("posts", "--json", *args, "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_posts_beyond_max_posts_are_marked_listed_in_the_table_and_the_json(
    make_config,
) -> None:
    path = make_config('[digest]\nmax_posts = 2\nwindow = "30d"\n')
    rows = _json(path)
    assert len(rows) > 2
    assert [r["edition"] for r in rows] == ["full", "full"] + ["listed"] * (len(rows) - 2)
    assert all(r["undated"] is False for r in rows)
    table = run_distrib("posts", "--config", str(path))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows, strict=True):
        assert row["title"] in line
        assert line.endswith("  [listed]") == (row["edition"] == "listed")
    # --all lists every post the sources give, without a place in an edition.
    every = _json(path, "--all")
    assert len(every) >= len(rows) and all("edition" not in r for r in every)
    table_all = run_distrib("posts", "--all", "--config", str(path))
    assert "[listed]" not in table_all.stdout


def test_overflow_skip_marks_the_posts_beyond_max_posts_skipped(make_config) -> None:
    path = make_config('[digest]\nmax_posts = 1\noverflow = "skip"\nwindow = "30d"\n')
    rows = _json(path)
    assert [r["edition"] for r in rows] == ["full"] + ["skipped"] * (len(rows) - 1)
    table = run_distrib("posts", "--config", str(path))
    assert table.stdout.count("  [skipped]") == len(rows) - 1


def test_no_posts_for_the_next_edition_says_try_all(make_config) -> None:
    path = make_config('[digest]\nwindow = "1m"\n')
    table = run_distrib("posts", "--config", str(path))
    assert table.returncode == 0, table.stderr
    assert table.stdout == "no posts for the next edition (try --all)\n"


def test_unpick_and_clear_say_what_they_did_and_quiet_says_nothing(make_config) -> None:
    path = make_config('[digest]\nwindow = "30d"\n')
    first, second = _json(path)[:2]
    pin = run_distrib(
        "posts", "--pin", first["key"], "--skip", second["url"], "--config", str(path)
    )
    assert pin.returncode == 0, pin.stderr
    assert f"digest: pinned {first['title']!r} for the next edition" in pin.stdout
    assert f"digest: skipped {second['title']!r} for the next edition" in pin.stdout
    assert second["key"] not in [r["key"] for r in _json(path)]
    unpick = run_distrib("posts", "--unpick", second["key"], "--config", str(path))
    assert f"digest: {second['title']!r} is neither pinned nor skipped now" in unpick.stdout
    assert second["key"] in [r["key"] for r in _json(path)]
    # Unpicking a post that is not picked says nothing.
    again = run_distrib("posts", "--unpick", second["key"], "--config", str(path))
    assert "is neither pinned nor skipped now" not in again.stdout
    run_distrib("posts", "-q", "--skip", second["key"], "--config", str(path))
    quiet = run_distrib("posts", "-q", "--clear", "--config", str(path))
    assert quiet.returncode == 0, quiet.stderr
    assert "the pins, skips and note" not in quiet.stdout
    assert second["key"] in [r["key"] for r in _json(path)]
    run_distrib("posts", "--skip", second["key"], "--config", str(path))
    clear = run_distrib("posts", "--clear", "--config", str(path))
    assert "digest: the pins, skips and note for the next edition are forgotten" in clear.stdout
    assert second["key"] in [r["key"] for r in _json(path)]
