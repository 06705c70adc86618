"""The Markdown source's rarer rules, one step each: unreadable files, JSON front matter
outside Hugo, Eleventy's "Last Modified" date, drafts and our permalink option, the
generic rules' expiry date and templated URLs."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from distrib.errors import SourceError

from .test_sites import MakeCtx, fetch, urls, write


def test_a_file_that_is_not_utf8_is_skipped_with_its_name(
    tmp_path: Path, make_ctx: MakeCtx, caplog: Any
) -> None:
    root = tmp_path / "site"
    write(root, "good.md", "---\ntitle: Good\ndate: 2025-10-01\n---\nx\n")
    (root / "latin.md").write_bytes(b"---\ntitle: Caf\xe9\ndate: 2025-10-01\n---\nx\n")
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = fetch(make_ctx, root, "https://g.example/")
    assert [p.title for p in posts] == ["Good"]
    (line,) = [r.getMessage() for r in caplog.records if "latin.md" in r.getMessage()]
    assert "latin.md: not UTF-8 text" in line
    (root / "good.md").unlink()
    with pytest.raises(SourceError, match=r"latin.md: not UTF-8 text; fix the front matter"):
        fetch(make_ctx, root, "https://g.example/")


def test_json_front_matter_is_body_outside_hugo(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(root, "posts/j.md", '{"title": "From JSON", "date": "2025-10-01"}\n\nThe body.\n')
    posts = fetch(
        make_ctx, root, "https://e.example/", 'generator = "eleventy"\nundated = "first-seen"'
    )
    (post,) = posts
    assert post.url == "https://e.example/posts/j/"
    assert post.published is None  # the JSON was not read as front matter
    assert post.title != "From JSON" and "From JSON" in post.content


def test_eleventy_dates_drafts_and_our_permalink(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(root, "posts/mod.md", "---\ntitle: Modified\ndate: Last Modified\n---\nx\n")
    when = datetime(2025, 10, 4, 12, 0, tzinfo=UTC)
    os.utime(root / "posts/mod.md", (when.timestamp(), when.timestamp()))
    write(root, "posts/git.md", "---\ntitle: Git\ndate: git Last Modified\n---\nx\n")
    write(root, "posts/draft.md", "---\ntitle: Draft\ndate: 2025-10-01\ndraft: true\n---\nx\n")
    write(root, "posts/2025-10-02-named.md", "---\ntitle: Named\n---\nx\n")
    posts = fetch(
        make_ctx,
        root,
        "https://e.example/",
        'generator = "eleventy"\npermalink = "/{section}/{year}/{slug}/"',
    )
    assert urls(posts) == {
        "https://e.example/posts/2025/mod/",
        "https://e.example/posts/2025/named/",
    }
    by_title = {p.title: p for p in posts}
    assert by_title["Modified"].published == when
    assert by_title["Named"].published == datetime(2025, 10, 2, tzinfo=UTC)


def test_generic_expiry_and_templated_urls(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(root, "gone.md", "---\ntitle: Gone\ndate: 2025-10-01\nexpiryDate: 2025-10-05\n---\nx\n")
    write(
        root,
        "kept.md",
        "---\ntitle: Still Here\ndate: 2025-10-01\nexpirydate: 2099-01-01\n"
        "url: /{{ title | slugify }}/now/\n---\nx\n",
    )
    write(
        root,
        "notes/2025-10-03-slugged.md",
        "---\ntitle: S\npermalink: /n/{{ page.fileSlug }}/\n---\nx\n",
    )
    posts = fetch(make_ctx, root, "https://g.example/")
    assert urls(posts) == {"https://g.example/still-here/now/", "https://g.example/n/slugged/"}
    dated = next(p for p in posts if p.title == "S")
    assert dated.published == datetime(2025, 10, 3, tzinfo=UTC)
